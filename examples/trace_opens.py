"""Trace the files a program opens: path, flags and result (or the error).

    mrhooker examples/trace_opens.py sort /etc/hosts

Programs call open, openat, fopen or their *64 twins (built with large-file support): all are hooked.
"""
import errno
import os

from mrhooker import get_errno, hook

_FLAGS = [(os.O_WRONLY, "O_WRONLY"), (os.O_RDWR, "O_RDWR"), (os.O_CREAT, "O_CREAT"), (os.O_TRUNC, "O_TRUNC"),
          (os.O_APPEND, "O_APPEND"), (os.O_EXCL, "O_EXCL"), (os.O_DIRECTORY, "O_DIRECTORY"),
          (os.O_CLOEXEC, "O_CLOEXEC")]


def _describe(flags):
    names = [name for bit, name in _FLAGS if flags & bit] or ["O_RDONLY"]
    return "|".join(names)


def _report(call, path, how, ok, result):
    if not ok:
        result = "-1 %s" % errno.errorcode.get(get_errno(), get_errno())
    print("%s(%s, %s) = %s" % (call, path.decode(errors="backslashreplace"), how, result))


@hook("open")
def open(path, flags, mode):
    fd = open.original(path, flags, mode)
    _report("open", path, _describe(flags), fd >= 0, fd)
    return fd


@hook("open64")
def open64(path, flags, mode):
    fd = open64.original(path, flags, mode)
    _report("open64", path, _describe(flags), fd >= 0, fd)
    return fd


@hook("openat")
def openat(dirfd, path, flags, mode):
    fd = openat.original(dirfd, path, flags, mode)
    _report("openat", path, _describe(flags), fd >= 0, fd)
    return fd


@hook("openat64")
def openat64(dirfd, path, flags, mode):
    fd = openat64.original(dirfd, path, flags, mode)
    _report("openat64", path, _describe(flags), fd >= 0, fd)
    return fd


@hook("fopen")
def fopen(path, mode):
    stream = fopen.original(path, mode)
    _report("fopen", path, repr(mode.decode()), bool(stream), stream)
    return stream


@hook("fopen64")
def fopen64(path, mode):
    stream = fopen64.original(path, mode)
    _report("fopen64", path, repr(mode.decode()), bool(stream), stream)
    return stream
