"""The Python side of the runtime inside a hooked process: hook output, loading the hook script, errors, exit.

Called by runtime/pyrt.c. Loaded into every hooked process at its first hooked call, so it imports only what
the interpreter has loaded already (sys, os, io) plus importlib's machinery.
"""
import io
import os
import sys

from mrhooker import _native

_output = None   # the text stream hooks print to


class _HookSink(io.RawIOBase):
    """Writes hook output to its destination, and never into the target's own files.

    The destination is a path (a file given with -o, or mrhooker's stderr as /proc/PID/fd/N), opened by this
    process with O_APPEND. Before each write the descriptor is checked to be still the file opened: the target
    may close every descriptor (daemons do) and reuse the number for a file of its own; then the path is opened
    again, or the output is dropped.
    """

    def __init__(self, path):
        super().__init__()
        self._path = path
        self._fd = -1
        self._identity = None
        wanted = os.environ.get("MRHOOKER_OUTPUT_ID", "")
        self._wanted = tuple(int(x) for x in wanted.split(":")) if wanted.count(":") == 1 else None

    def writable(self):
        return True

    def _usable(self):
        if self._fd < 0:
            return False
        try:
            st = os.fstat(self._fd)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._identity

    def _open(self):
        self._fd = -1
        if self._path:
            try:
                fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOCTTY)
            except OSError:
                return
        else:
            try:
                fd = os.dup(2)   # no launcher: this process's stderr as it is now
                os.set_inheritable(fd, False)
            except OSError:
                return
        st = os.fstat(fd)
        identity = (st.st_dev, st.st_ino)
        if self._wanted is not None and identity != self._wanted:
            os.close(fd)   # the path names something else now (a reused pid in /proc): drop the output
            return
        self._fd, self._identity = fd, identity

    def write(self, data):
        if not self._usable():
            self._open()
            if self._fd < 0:
                return len(data)
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except InterruptedError:
                continue
            except OSError:
                return len(data)
            view = view[n:]
        return len(data)


class _HookAwareStream:
    """sys.stdout/sys.stderr of a Python target: the target's stream, except for code running in a hook."""

    def __init__(self, target_stream, hook_stream):
        self.__dict__["_target"] = target_stream
        self.__dict__["_hook"] = hook_stream

    def _current(self):
        return self._hook if _native.in_hook() else self._target

    def write(self, text):
        return self._current().write(text)

    def flush(self):
        stream = self._current()
        if stream is not None:
            stream.flush()

    def __getattr__(self, name):
        return getattr(self._current(), name)

    def __setattr__(self, name, value):
        setattr(self._target, name, value)


def _route_hook_atexit(atexit):
    """In a Python target, atexit handlers that the hook script registers (while it is imported, or from a
    hook) run as hook code, so that what they print goes to the hook output, not into the target's stdout."""
    register = atexit.register

    def register_as_hook(func, *args, **kwargs):
        if _native.in_hook() and not kwargs:
            register(_native.run_in_hook, func, *args)
            return func
        return register(func, *args, **kwargs)

    atexit.register = register_as_hook


def _make_output(path):
    # No BufferedWriter between the text layer and the sink: its lock, held by a thread printing while another
    # thread forks, would stay locked forever in the child. The text layer gathers each line and hands it to
    # the sink in one write, so lines from threads and processes don't mix.
    return io.TextIOWrapper(_HookSink(path), encoding="utf-8", errors="backslashreplace", line_buffering=True)


def _hook_print(*args, file=None, **kwargs):
    """print() for a .py hook script in a Python target: to the hook output even after the target replaces
    sys.stdout (the _HookAwareStream is then gone)."""
    import builtins

    builtins.print(*args, file=_output if file is None else file, **kwargs)


def _import_hooks(kind, module, script, hooks_path, attached):
    from importlib.machinery import ExtensionFileLoader, ModuleSpec, SourceFileLoader
    import importlib._bootstrap as bootstrap

    name = module if module not in sys.modules else "mrhooker_hooks." + module
    if kind == "pyx":
        loader, origin = ExtensionFileLoader(name, hooks_path), hooks_path
    else:
        loader, origin = SourceFileLoader(name, script), script
    spec = ModuleSpec(name, loader, origin=origin)
    spec.has_location = True
    mod = bootstrap.module_from_spec(spec)
    if attached and kind == "py":
        mod.print = _hook_print
    sys.modules[name] = mod
    try:
        loader.exec_module(mod)
    except BaseException:
        del sys.modules[name]
        raise
    return mod


def start(kind, module, script, hooks_path, output, attached):
    """Sets up hook output and imports the hook script. Returns False (having said why) if hooks can't run."""
    global _output
    _output = _make_output(output)
    if attached:
        import atexit
        # Registered before the hook script's own handlers, so it runs after them: once Python is shutting
        # down, hooked calls go to their originals.
        atexit.register(_native.disable)
        _route_hook_atexit(atexit)
        sys.stdout = _HookAwareStream(sys.stdout, _output)
        sys.stderr = _HookAwareStream(sys.stderr, _output)
    else:
        sys.stdout = sys.stderr = sys.__stdout__ = sys.__stderr__ = _output
    try:
        _import_hooks(kind, module, script, hooks_path, attached)
    except BaseException as exc:
        _print_exception("mrhooker: the hook script %s failed to load; this process runs unhooked:"
                         % (script or module), exc)
        return False
    return True


def _print_exception(header, exc):
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        _output.write(header + "\n" + text)
        _output.flush()
    except Exception:
        pass


def report_hook_error(name, where, exc, outcome):
    """A hook raised (or returned a wrong value): its traceback, then the target carries on."""
    _print_exception("mrhooker: hook %s (%s) failed; %s:" % (name, where, outcome), exc)


def at_exit():
    """The target is exiting normally: run the hook script's atexit handlers, flush hook output."""
    import atexit

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
