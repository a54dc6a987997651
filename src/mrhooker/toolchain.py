"""The tools a build runs: the Python whose libpython the hooks embed, the C compiler, Cython.

This module finds them and runs them; what they build is the business of codegen (the sources) and build (the
order). Every external command goes through run_tool(), which puts it in a process group of its own, so that an
interrupted mrhooker (Ctrl-C, SIGTERM) kills the whole tree it started (cc and its cc1, as, ld) instead of
leaving it writing into a build directory.

Cython: 3.0 or newer (3.0 to 3.3 are tested); codegen checks that the parts of its output mrhooker adapts are
there, and names the version when they are not.
"""
import functools
import os
import signal
import sys
import threading

from mrhooker.errors import MrhookerError

# -fno-builtin: the generated code defines functions named like builtins (memcpy, strlen), under asm labels.
CFLAGS = ["-O2", "-fPIC", "-fno-strict-aliasing", "-fno-builtin", "-Wall", "-Wno-unused-function",
          "-Wno-unused-label", "-Wno-unused-variable", "-Wno-unused-but-set-variable"]
CYTHON_MIN = (3, 0)


class PythonInfo:
    """The Python running mrhooker, whose libpython runs the hooks inside the target."""

    def __init__(self, version, include_dir, libpython, home, path, executable):
        self.version = version            # "3.11"
        self.include_dir = include_dir
        self.libpython = libpython        # resolved path of the shared libpython
        self.libdir = os.path.dirname(libpython)
        self.home = home                  # sys.base_prefix
        self.path = path                  # sys.path: the hooks' imports see the same packages
        self.executable = executable


@functools.lru_cache(maxsize=None)
def python_info():
    import sysconfig
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        raise MrhookerError(
            "this Python (%s) has no shared libpython, which mrhooker loads into the target; use a Python built "
            "with --enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install %s; Debian: "
            "apt-get install python3-dev)" % (sys.executable, "%d.%d" % sys.version_info[:2]))
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    soname = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY") or ""
    candidates = [os.path.join(libdir, soname)]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        candidates.append(os.path.join(libdir, multiarch, soname))
    libpython = next((c for c in candidates if os.path.isfile(c)), None)
    if libpython is None:
        raise MrhookerError("cannot find this Python's shared library %s (looked in %s); install it (Debian: "
                            "apt-get install libpython%d.%d)" % (soname, libdir, *sys.version_info[:2]))
    include_dir = sysconfig.get_config_var("INCLUDEPY")
    if not os.path.isfile(os.path.join(include_dir, "Python.h")):
        raise MrhookerError("Python.h not found in %s: install this Python's headers (Debian: apt-get install "
                            "python3-dev)" % include_dir)
    path = [p for p in sys.path if p and os.path.isabs(p) and "\n" not in p]
    return PythonInfo("%d.%d" % sys.version_info[:2], include_dir, os.path.realpath(libpython), sys.base_prefix,
                      path, sys.executable)


def _which(name):
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(d, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def c_compiler():
    """The C compiler's command ($CC, shell-quoted, or cc) with its program's full path, as a tuple."""
    return _compiler_for(os.environ.get("CC") or "cc", os.environ.get("PATH", os.defpath))


@functools.lru_cache(maxsize=None)
def _compiler_for(cc, _path):
    try:
        if any(c in cc for c in "'\"\\"):   # quoting to undo (shlex's import is ~1 ms of a warm start)
            import shlex
            argv = shlex.split(cc)
        else:
            argv = cc.split()
    except ValueError as e:
        raise MrhookerError("bad $CC %r: %s" % (cc, e))
    path = _which(argv[0]) if argv else None
    if not path:
        raise MrhookerError("no C compiler found (%s); install gcc, e.g. apt-get install gcc" % cc)
    return (path,) + tuple(argv[1:])


def tool_identity(path):
    """What distinguishes a tool's version cheaply: its path, size and modification time."""
    try:
        st = os.stat(path)
        return "%s:%d:%d" % (path, st.st_size, st.st_mtime_ns)
    except OSError:
        return path + ":?"


def cython_identity():
    """Cython's identity for cache keys, without importing it (which takes long); None if not installed."""
    import importlib.util
    spec = importlib.util.find_spec("Cython")
    if spec is None or not spec.submodule_search_locations:
        return None
    return tool_identity(os.path.join(list(spec.submodule_search_locations)[0], "Shadow.py"))


def cython_version():
    import importlib.metadata
    try:
        return importlib.metadata.version("Cython")
    except importlib.metadata.PackageNotFoundError:
        return None


# ---- running ----------------------------------------------------------------------------------------------

_running = set()                # the Popen objects of commands running now (any thread)
_running_lock = threading.Lock()


def kill_running():
    """Kills every command run_tool() has running, with their children: for an interrupted build."""
    with _running_lock:
        procs = list(_running)
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass


def run_tool(argv, what, log, input=None):
    """Runs a command; returns its output (stdout and stderr together). Fails with MrhookerError saying `what`
    failed, with the output."""
    import subprocess
    import shlex
    log("run: " + " ".join(shlex.quote(a) for a in argv))
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                                start_new_session=True)
    except OSError as e:
        raise MrhookerError("cannot run %s: %s" % (argv[0], e.strerror))
    with _running_lock:
        _running.add(proc)
    try:
        output, _ = proc.communicate(input)
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        raise
    finally:
        with _running_lock:
            _running.discard(proc)
    if proc.returncode != 0:
        raise MrhookerError("%s failed:\n%s" % (what, output.rstrip()))
    return output


def compile_c(sources, output, include_dirs, cflags, log, what, ldflags=()):
    """cc: sources (and objects) -> output. Libraries come after the objects that use them: with --as-needed
    (Debian's default) a -l given before them is dropped."""
    argv = (list(c_compiler()) + CFLAGS + ["-I" + d for d in include_dirs] + list(cflags) + list(sources)
            + ["-o", output] + list(ldflags))
    return run_tool(argv, what, log)


def compile_and_run(source, compiler=None):
    """Builds a C program from source (warnings off) and runs it, for what only the compiler knows (constants'
    values, struct layouts). Returns (compiler's stderr, None) if it doesn't compile, else (None, its stdout)."""
    import subprocess
    import tempfile
    compiler = compiler or c_compiler()
    with tempfile.TemporaryDirectory(prefix="mrhooker-probe-") as tmp:
        path, program = os.path.join(tmp, "s.c"), os.path.join(tmp, "s")
        with open(path, "w") as f:
            f.write(source)
        try:
            built = subprocess.run(list(compiler) + ["-w", "-o", program, path], capture_output=True, text=True)
        except OSError as e:
            raise MrhookerError("cannot run %s: %s" % (compiler[0], e.strerror))
        if built.returncode != 0:
            return built.stderr, None
        ran = subprocess.run([program], capture_output=True, text=True)
        if ran.returncode != 0:
            raise MrhookerError("a probe program the C compiler built failed (exit status %d)" % ran.returncode)
        return None, ran.stdout


def preprocess(source, args, compiler, headers=None):
    """cc -E of a C source text (cdecl's system headers). Fails with one line: the compiler's first complaint.
    headers: a set to add the paths of the headers read to (from -H)."""
    import subprocess
    argv = list(compiler) + ["-E", "-P"] + (["-H"] if headers is not None else []) + list(args) + ["-x", "c", "-"]
    try:
        proc = subprocess.run(argv, input=source, capture_output=True, encoding="utf-8", errors="replace")
    except OSError as e:
        raise MrhookerError("cannot run %s: %s" % (argv[0], e.strerror))
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if " error: " in line] or lines   # not -H's list of the headers read
        raise MrhookerError("'%s' failed on the headers: %s" % (
            " ".join(argv), errors[0] if errors else "exit status %d" % proc.returncode))
    if headers is not None:
        headers.update(line.lstrip(".")[1:] for line in proc.stderr.splitlines() if line.startswith(". ") or
                       line.startswith("..") and " /" in line)
    return proc.stdout


def _cython_error(output, script):
    """Cython's errors (up to 10) as SCRIPT:LINE:COL: message, each with its source line and a caret: all of
    them, so that one run shows what to mend."""
    import re
    errors = []
    for match in re.finditer(r"^(\S[^\n]*?):(\d+):(\d+): (.+)$", output, re.M):
        error = (int(match.group(2)), int(match.group(3)), match.group(4).strip())   # col: 0-based
        if error not in errors:
            errors.append(error)
    if not errors:
        return "Cython failed on %s:\n%s" % (script, output.strip())
    try:
        with open(script, encoding="utf-8", errors="replace") as f:
            source = f.read().splitlines()
    except OSError:
        source = []
    shown = []
    for line, col, msg in errors[:10]:
        shown.append("%s:%d:%d: %s" % (script, line, col + 1, msg))
        if 0 < line <= len(source):
            shown += ["    " + source[line - 1].rstrip(), "    " + " " * col + "^"]
    if len(errors) > 10:
        shown.append("(%d more)" % (len(errors) - 10))
    return "\n".join(shown)


def cythonize(script, module, out_c, include_dirs, log):
    """Cython -> C. Python 3 semantics, unless the script does not parse so and sets no language_level: the
    2011-era scripts (print statements) then compile as Python 2, as they were written. Returns Cython's
    output (its warnings)."""
    import re
    version = cython_version()
    if version is None:
        raise MrhookerError("Cython is not installed for %s; install it: %s -m pip install cython"
                            % (sys.executable, sys.executable))
    if tuple(int(x) for x in re.findall(r"\d+", version)[:2]) < CYTHON_MIN:
        raise MrhookerError("Cython %s is too old: mrhooker needs Cython >= %d.%d (%s -m pip install -U cython)"
                            % (version, CYTHON_MIN[0], CYTHON_MIN[1], sys.executable))
    try:
        script.encode("utf-8")   # Cython writes the name into its C as UTF-8: a traceback of its own otherwise
    except UnicodeEncodeError:
        raise MrhookerError("Cython can't compile %s: its path is not UTF-8 (move the script, or rename its directory)"
                            % script)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # for `cimport mrhooker`
    base = [sys.executable, "-m", "cython", "--module-name", module, "-M", "-I", package_parent]
    for d in include_dirs:
        base += ["-I", d]
    base += ["-o", out_c, script]
    try:
        return run_tool(base[:3] + ["-3"] + base[3:], "Cython", log)
    except MrhookerError as first:
        with open(script, encoding="utf-8", errors="replace") as f:
            if re.search(r"^#\s*cython:.*\blanguage_level\b", f.read(), re.M):
                raise MrhookerError(_cython_error(str(first), script))
        try:
            out = run_tool(base[:3] + ["-2"] + base[3:], "Cython", log)
            log("compiled as Python 2 (language_level=2): the script does not parse as Python 3")
            return out
        except MrhookerError:
            raise MrhookerError(_cython_error(str(first), script))


def read_depfile(path):
    """Files listed in a make-style dependency file (Cython's -M, gcc's -MMD)."""
    try:
        with open(path) as f:
            text = f.read().replace("\\\n", " ")
    except OSError:
        return []
    _, _, deps = text.partition(":")
    return [os.path.abspath(d) for d in deps.split()]
