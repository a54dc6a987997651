"""The build cache: where builds live, who may write there, keys, publishing and checking builds, pruning.

A library in the cache runs inside every hooked program, so:
- every directory on the resolved path to it (and the files) must belong to the user or root and be writable by
  no one else (check_private); the launcher hands the loader resolved paths only, so no symlink another user
  owns can be re-pointed between the check and the load;
- a build is made in a temporary directory and renamed into place (publish), with a manifest holding the
  SHA-256 of each file and its stamp, checked before every use (verify): a truncated or altered file is
  rebuilt, never loaded;
- temporary directories left by a killed build (their pid is gone) are removed (prune).
"""
import json
import os
import stat
import time

from mrhooker.errors import MrhookerError

MANIFEST = "manifest.json"
WEEK = 7 * 86400


def default_root():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mrhooker")


def _refuse_owner(path, what, st):
    return MrhookerError("%s %s is owned by another user (uid %d): a library there would run in every hooked "
                         "program; use a directory of your own (--build-dir)" % (what, path, st.st_uid))


def check_private(path, what, above=False):
    """Refuses a file or directory that another user could change or replace, checking every directory on its
    resolved path (a sticky directory above, such as /tmp, is fine: others can't replace what is ours there).
    above: path is a directory to create ours in, so it may be sticky itself. Returns the resolved path, the
    one to use from now on."""
    resolved = os.path.realpath(path)
    uid = os.getuid()
    current = resolved
    while True:
        try:
            st = os.stat(current)
        except OSError as e:
            raise MrhookerError("cannot check %s %s: %s" % (what, current, e.strerror))
        if st.st_uid not in (uid, 0):
            raise _refuse_owner(current, what, st)
        writable_by_others = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        sticky_above = (above or current != resolved) and stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        if writable_by_others and not sticky_above:
            raise MrhookerError("%s %s is writable by %s (mode %o): anyone could replace the hooks loaded into your "
                                "programs; fix it with: chmod go-w %s" % (
                                    what, current, "others" if st.st_mode & stat.S_IWOTH else "its group",
                                    stat.S_IMODE(st.st_mode), current))
        parent = os.path.dirname(current)
        if parent == current:
            return resolved
        current = parent


class private_umask:
    """What a build writes is for this user only, whatever the umask (000 would make the libraries writable by
    anyone, which check_private then refuses). The umask is restored after, so the target does not inherit it.
    (A class, not contextlib's decorator: contextlib's import is ~2 ms of a warm start.)"""

    def __enter__(self):
        self.umask = os.umask(0o077)

    def __exit__(self, *exc):
        os.umask(self.umask)


def prepare(path, what):
    """The directory at path, created private (mode 0700, also each missing directory above it, whatever the
    umask) and checked. Returns its resolved path."""
    if not path:
        raise MrhookerError("the %s is empty: name a directory" % what)
    path = os.path.abspath(path)
    missing = []
    current = path
    while not os.path.exists(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if missing:   # nothing is made inside a directory that would then be refused
        check_private(current, what, above=True)
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
            os.chmod(d, 0o700)   # the umask may have removed bits; it never adds any we need
        except FileExistsError:
            pass
        except OSError as e:
            raise MrhookerError("cannot create %s %s: %s" % (what, d, e.strerror))
    if not os.path.isdir(path):
        raise MrhookerError("%s %s is not a directory" % (what, path))
    return check_private(path, what)


def build_root(build_dir, preloaded=False):
    """The root builds go into: build_dir (--build-dir), else the user's cache directory, prepared. preloaded: its
    libraries will be loaded through LD_PRELOAD, which splits at spaces and colons: a path with one is refused
    now, before anything is built there."""
    what = "build directory" if build_dir else "cache directory"
    root = prepare(build_dir or default_root(), what)
    if preloaded:
        check_preloadable(root, what)
    return root


def check_preloadable(directory, what):
    """Refuses a directory whose path LD_PRELOAD can't carry (it splits at spaces and colons)."""
    if any(c in directory for c in " :\t\n"):
        raise MrhookerError("the %s %s has a space or colon in its path, which LD_PRELOAD cannot carry; choose "
                            "another one with --build-dir%s" % (what, directory, "" if what == "build directory"
                                                                else " (or $XDG_CACHE_HOME)"))


# ---- keys ---------------------------------------------------------------------------------------------

def _sha256(data=b""):
    """A SHA-256 object for keys (short data): Python's own implementation, which hashlib falls back on, without
    hashlib's import (it loads OpenSSL: ~5 ms of a warm start, which hashes nothing long). hashlib's is ~10x
    faster a byte, so files go through it (_file_sha256)."""
    try:
        from _sha2 import sha256   # Python 3.12+
    except ImportError:
        try:
            from _sha256 import sha256   # 3.9-3.11
        except ImportError:   # a Python built without them
            from hashlib import sha256
    return sha256(data)


def _file_sha256(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_files(paths):
    """The SHA-256 of files' names and contents (a missing file counts as missing)."""
    h = _sha256()
    for p in paths:
        h.update(p.encode() + b"\0")
        try:
            digest = _file_sha256(p)
        except OSError:
            digest = "<missing>"
        h.update(digest.encode())
    return h.hexdigest()


def key(parts, files=(), length=24):
    """A cache key from strings (or bytes) and the contents of files."""
    h = _sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    if files:
        h.update(hash_files(files).encode())
    return h.hexdigest()[:length]


# ---- writing ------------------------------------------------------------------------------------------

def temp_dir(root, prefix):
    """A new private directory in root for a build in progress, named so that prune() knows whose it is."""
    import tempfile
    return tempfile.mkdtemp(prefix=".tmp-%s-%d-" % (prefix, os.getpid()), dir=root)


def write_atomic(path, data):
    """Writes a file so that a reader sees the old one or the new one, never half of one."""
    import tempfile
    fd, tmp = tempfile.mkstemp(prefix=".tmp-file-%d-" % os.getpid(), dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _stamp(st):
    """What changes whenever a file is written, truncated, replaced or copied: the kernel sets ctime itself (no
    call sets it back), so an unchanged stamp is an unchanged file without reading it."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def seal(directory, files, info):
    """Writes directory's manifest: info plus the SHA-256 and the stamp of each of files (names in directory)."""
    manifest = dict(info)
    manifest["files"], manifest["stamps"] = {}, {}
    for name in files:
        path = os.path.join(directory, name)
        before = _stamp(os.lstat(path))
        manifest["files"][name] = _file_sha256(path)
        if _stamp(os.lstat(path)) == before:   # (else it is hashed at its first use)
            manifest["stamps"][name] = before
    write_atomic(os.path.join(directory, MANIFEST), json.dumps(manifest, indent=1))


def verify(directory):
    """The manifest of a sealed directory whose files are all as sealed, or None (missing, truncated, altered:
    build it again). A file whose stamp is as sealed is not read again; one whose stamp moved (the cache was
    copied, or a build sealed before stamps) is hashed, and if it is intact its new stamp is remembered."""
    try:
        with open(os.path.join(directory, MANIFEST)) as f:
            manifest = json.load(f)
        files, stamps = manifest["files"], manifest.setdefault("stamps", {})
        restamped = False
        for name, digest in files.items():
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                return None
            if stamps.get(name) == _stamp(st):
                continue
            if _file_sha256(path) != digest:
                return None
            stamps[name], restamped = _stamp(st), True
        if restamped:
            try:
                write_atomic(os.path.join(directory, MANIFEST), json.dumps(manifest, indent=1))
            except OSError:
                pass
        return manifest
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def publish(tmp, final, rebuild=False):
    """Puts a finished build directory in place. If another run got there first, keeps theirs: runs that
    found it may already be checking or loading it. Replaces it only on --rebuild or when it fails verify, and
    then in one step (the two swap places), so that no run ever finds the path missing; tmp then holds the old
    build, removed with it by the caller."""
    os.chmod(tmp, 0o700)
    try:
        os.rename(tmp, final)
        return
    except OSError:
        if not os.path.isdir(final):
            raise
    if rebuild or verify(final) is None:
        _exchange(tmp, final)


def _exchange(a, b):
    """Swaps two directories atomically (renameat2 RENAME_EXCHANGE; Linux 3.15, glibc 2.28)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_exchange = -100, 2
    if libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) != 0:
        err = ctypes.get_errno()
        raise MrhookerError("cannot replace the build %s: %s" % (b, os.strerror(err)))


def touch(directory):
    """Marks a build as used now (prune keeps builds used within a week)."""
    try:
        os.utime(os.path.join(directory, MANIFEST))
    except OSError:
        pass


# ---- pruning ------------------------------------------------------------------------------------------

def pid_alive(pid):
    """Is there a process with this pid (ours or not)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_orphans(directory, prefix):
    """Removes what mrhooker processes now gone left in a shared directory (killed before they could): this
    user's files and directories named PREFIX-PID-..., PID being theirs (trace files, an attach's socket)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        pid = name[len(prefix) + 1:].split("-", 1)[0]
        if not name.startswith(prefix + "-") or not pid.isdigit() or int(pid) == os.getpid():
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
            if st.st_uid != os.getuid() or pid_alive(int(pid)):
                continue
            if stat.S_ISDIR(st.st_mode):
                import shutil   # (when there is one: shutil's import, with lzma's and bz2's, is ~4 ms of a start)
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except OSError:
            pass


def recall(directory, name, what):
    """The JSON value remembered as directory/name (remember()), touched as used; None when there is none or it
    is not JSON. Raises MrhookerError when another user could have written it (what: how the message names it),
    as for a build: what it says decides what runs."""
    path = os.path.join(directory, name)
    try:
        with open(path, encoding="utf-8") as f:
            check_private(path, what)
            value = json.load(f)
        os.utime(path)
        return value
    except (OSError, ValueError):
        return None


def remember(directory, name, value, kept):
    """Writes value as JSON to directory/name, atomically, keeping the `kept` most recently used of directory's
    files. A value that can't be written only costs the next run what it saves."""
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        check_private(directory, "cache directory")
        write_atomic(os.path.join(directory, name), json.dumps(value, separators=(",", ":")))
        keep_newest(directory, os.path.splitext(name)[1], kept)
    except (OSError, MrhookerError):
        pass


def keep_newest(directory, suffix, kept):
    """Removes directory's files named *suffix but the `kept` most recently used (by their mtime: a use touches
    it)."""
    try:
        names = [n for n in os.listdir(directory) if n.endswith(suffix)]
        if len(names) <= kept:
            return
        names.sort(key=lambda n: os.stat(os.path.join(directory, n)).st_mtime_ns)
        for name in names[:len(names) - kept]:
            os.unlink(os.path.join(directory, name))
    except OSError:
        pass


def prune(root, prefix, keep):
    """Removes root's builds named prefix-* unused for a week (a running target may still need a recent one to
    exec its children), and the temporary directories of builds whose process is gone."""
    import shutil
    horizon = time.time() - WEEK
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        path = os.path.join(root, name)
        if name.startswith(".tmp-"):
            parts = name.split("-")   # .tmp-WHAT-PID-RANDOM
            pid = int(parts[2]) if len(parts) >= 4 and parts[2].isdigit() else None
            try:
                old = os.stat(path).st_mtime < time.time() - 86400
            except OSError:
                continue
            if (pid is not None and pid != os.getpid() and not pid_alive(pid)) or old:
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
        elif name.startswith(prefix + "-") and path != keep and os.path.isdir(path):
            try:
                if os.stat(os.path.join(path, MANIFEST)).st_mtime < horizon:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass
