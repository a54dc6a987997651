"""mrhooker: LD_PRELOAD hooks for any Linux program, written in Python.

This module is what hook scripts import. It is loaded inside every hooked process, so it imports nothing of
mrhooker's build side::

    import errno
    from mrhooker import hook, set_errno

    @hook("int unlink(const char *pathname)")
    def unlink(path):
        if path.endswith(b".keep"):
            set_errno(errno.EACCES)
            return -1
        return unlink.original(path)

Run it with ``mrhooker hooks.py COMMAND ARGS...``.
"""

__version__ = "0.1.0"
__all__ = ["hook", "set_errno", "get_errno", "in_hook", "Pointer", "__version__"]

try:
    from mrhooker import _native   # made by the runtime, only inside a hooked process
except ImportError:
    _native = None


def _outside(*_args, **_kwargs):
    raise RuntimeError("this works only inside a program run by mrhooker")


def hook(prototype, blocks=True, at="plt"):
    """Decorator: the function replaces the C function named by `prototype` in the target.

    `prototype` is a C declaration ("int unlink(const char *path)") or, for common libc/POSIX functions, just
    the name ("send"). It must be a string literal: mrhooker reads it before the script runs, to build the
    trampolines. The decorated function gets an `original` attribute that calls the real function.

    `blocks=False` promises that the original never waits for another thread (no I/O, locks or sleeps): it
    then runs with the GIL held, which saves a GIL hand-over (tens of nanoseconds) per call. With the default,
    the GIL is dropped around it, so that other threads' hooks can run meanwhile.

    `at="entry"` hooks the function at its own first instructions: every call reaches the hook, also those made
    inside the library that defines it (printf's write) and calls of the program's own functions
    ("int compute(int x)"), which are always hooked there. The default, "plt", takes the calls that go from
    one object to another. `at=0x1139` (an integer literal) hooks the program's function whose entry is at that
    address in its file (`objdump -d`), for a stripped program. mrhooker reads it before the script runs.
    """
    if not isinstance(prototype, str):
        raise TypeError("@hook needs the C prototype (or function name) as a string, e.g. @hook(\"send\")")

    def register(func):
        func.original = _native.register(prototype, func, blocks) if _native is not None else _outside
        return func

    return register


def set_errno(value):
    """Sets the C errno that the caller of the hooked function sees after the hook returns."""
    if _native is None:
        _outside()
    _native.set_errno(value)


def get_errno():
    """The C errno left by the last `original` call in this hook (or as it was when the hook was called)."""
    if _native is None:
        _outside()
    return _native.get_errno()


def in_hook():
    """True while the calling thread runs for the target: a hook, the hook script's import at the first hooked
    call, or its atexit handlers at the target's exit; False in a thread of the script's own."""
    return _native is not None and _native.in_hook()


Pointer = _native.Pointer if _native is not None else None
