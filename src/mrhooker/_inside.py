"""The Python side of the runtime inside a hooked process: hook output, loading the hook script, errors, exit.

It runs in the hooks' own interpreter (see runtime/mrhooker_rt.h): never the target's, even when the target is
Python, so it may set sys.stdout and sys.stderr freely. Called by runtime/pyrt.c; loaded into every hooked
process at its first hooked call, so it imports only what the interpreter has loaded already when it starts
(sys, io, _thread, posix, and importlib's frozen bootstrap): `os` and `importlib.machinery` (with `warnings`) would
add ~250 kB to every hooked process.
"""
import _frozen_importlib
import _frozen_importlib_external
import _thread
import io
import posix
import sys

from mrhooker import _native


class HookOutput(io.TextIOBase):
    """sys.stdout and sys.stderr of the hooks: text to the hook output (runtime/output.h), never into the
    target's own files. Each thread's text is gathered until a line ends, and every run of whole lines goes out
    in one write, so lines from threads and processes never mix, whatever their length (print() writes its
    text and its "\\n" separately)."""

    encoding = "utf-8"
    errors = "backslashreplace"

    def __init__(self):
        super().__init__()
        self._pending = {}   # thread id -> [str]: the start of a line not ended yet

    def writable(self):
        return True

    def isatty(self):
        return False

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        ident = _thread.get_ident()
        end = text.rfind("\n") + 1
        if end == 0:
            if text:
                self._pending.setdefault(ident, []).append(text)
            return len(text)
        head = text[:end]
        pending = self._pending.pop(ident, None)
        if pending:
            head = "".join(pending) + head
        if end < len(text):
            self._pending[ident] = [text[end:]]
        _native.write_output(head.encode(self.encoding, self.errors))
        return len(text)

    def flush(self):
        """Writes this thread's unfinished line too (print(..., end="", flush=True) means it)."""
        pending = self._pending.pop(_thread.get_ident(), None)
        if pending:
            _native.write_output("".join(pending).encode(self.encoding, self.errors))

    def flush_all(self):
        for ident in list(self._pending):
            pending = self._pending.pop(ident, None)
            if pending:
                _native.write_output("".join(pending).encode(self.encoding, self.errors))


_output = HookOutput()


def _import_hooks(kind, module, script, hooks_path):
    # importlib.machinery's classes, from the frozen modules it takes them from (already loaded at start)
    class ScriptLoader(_frozen_importlib_external.SourceFileLoader):
        def get_code(self, fullname):
            # Always the source as it is now: a .pyc of the same size and mtime second (an edit made within the
            # second) must never run instead. Nothing is written next to the script either. Compiled by the runtime
            # (what the builtin compile() does, without creating Python's AST classes: ~200 kB a process).
            return _native.compile(self.get_data(self.path), self.path)

    if kind == "pyx":
        loader, origin = _frozen_importlib_external.ExtensionFileLoader(module, hooks_path), hooks_path
    else:
        loader, origin = ScriptLoader(module, script), script
    spec = _frozen_importlib.ModuleSpec(module, loader, origin=origin)
    spec.has_location = True
    mod = _frozen_importlib.module_from_spec(spec)
    sys.modules[module] = mod
    try:
        loader.exec_module(mod)
    except BaseException:
        del sys.modules[module]
        raise
    return mod


build_dir = None   # the build's directory: its views.json holds the struct layouts (_views.py)
_forks_followed = False   # start() registered the fork protocol's callbacks


def start(kind, module, script, hooks_path):
    """Sets up hook output and imports the hook script. Returns False (having said why) if hooks can't run."""
    global build_dir, _forks_followed
    build_dir = hooks_path.rpartition("/")[0]   # an absolute path (os.path.dirname's result)
    sys.stdout = sys.stderr = sys.__stdout__ = sys.__stderr__ = _output
    if not _forks_followed:   # once: an attached process's later builds start here again (pyrt.c, mrh_hook_restart)
        # The runtime's part in this interpreter's fork protocol (runtime/pyrt.c, fork_prepare).
        posix.register_at_fork(before=_native.fork_begins, after_in_parent=_native.fork_ended,
                               after_in_child=_native.fork_ended_in_child)
        _forks_followed = True
    try:
        _import_hooks(kind, module, script, hooks_path)
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
    except Exception:
        pass


def report_hook_error(name, where, exc, outcome):
    """A hook raised (or returned a wrong value): its traceback, then the target carries on."""
    _print_exception("mrhooker: hook %s (%s) failed; %s:" % (name, where, outcome), exc)


def at_exit():
    """The target is exiting normally: run the hook script's atexit handlers, flush hook output."""
    import atexit

    try:
        atexit._run_exitfuncs()
    finally:
        _output.flush_all()
