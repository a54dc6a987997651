"""Hook script -> C -> a cached pair of shared libraries (the preload library and the hook library).

A .pyx script is compiled by Cython into the hook library; a .py script's @hook prototypes become generated
trampolines, and the script itself is imported at run time (so editing its Python never rebuilds). Builds are
cached by content: the key covers the script (for .py: its hook prototypes), the files it includes, the
runtime's sources, and the Python, Cython and compiler in use. A build is made in a temporary directory and
renamed into place, so concurrent runs never see half a build.
"""
import hashlib
import json
import os
import stat
import sys
import sysconfig

from mrhooker import __version__
from mrhooker.errors import MrhookerError

# A warm run (the build is cached) must start fast: what only building needs (Cython, subprocess, the code
# generator, tempfile, ...) is imported where it is used.

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
RUNTIME_DIR = os.path.join(PACKAGE_DIR, "runtime")
RUNTIME_FILES = ("mrhooker_rt.h", "preload.c", "pyrt.h", "pyrt.c")
# mrhooker's own sources that shape a build: a change to any of them is a new build.
GENERATOR_FILES = ("build.py", "codegen.py", "cdecl.py", "__init__.pxd")

CFLAGS = ["-O2", "-fPIC", "-fno-strict-aliasing", "-Wall", "-Wno-unused-function", "-Wno-unused-label",
          "-Wno-unused-variable", "-Wno-unused-but-set-variable"]


def _quiet(_msg):
    pass


class BuildOptions:
    def __init__(self, build_dir=None, include_dirs=(), cflags=(), ldflags=(), rebuild=False, log=_quiet,
                 status=_quiet):
        self.build_dir = build_dir                # None: the user's cache
        self.include_dirs = list(include_dirs)    # for cimport and `cdef extern from` headers
        self.cflags = list(cflags)
        self.ldflags = list(ldflags)
        self.rebuild = rebuild
        self.log = log                            # -v lines
        self.status = status                      # transient progress ("building ...")


class Build:
    def __init__(self, script, kind, module, directory, cached, symbols):
        self.script = script          # absolute path
        self.kind = kind              # "pyx" or "py"
        self.module = module
        self.directory = directory
        self.preload = os.path.join(directory, "preload.so")   # the library to LD_PRELOAD
        self.hooks = os.path.join(directory, "hooks.so")       # loaded by it at the first hooked call
        self.cached = cached
        self.symbols = symbols


class PythonInfo:
    def __init__(self, version, include_dir, libpython, home, path):
        self.version = version            # "3.11"
        self.include_dir = include_dir
        self.libpython = libpython        # the shared libpython, loaded into targets that are not Python
        self.home = home                  # sys.base_prefix
        self.path = path                  # sys.path of this Python: the hooks' imports see the same packages


def python_info():
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
    path = [p for p in sys.path if p and ":" not in p and os.path.isabs(p)]
    return PythonInfo("%d.%d" % sys.version_info[:2], include_dir, os.path.realpath(libpython),
                      sys.base_prefix, path)


def _which(name):
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(d, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def find_compiler():
    cc = os.environ.get("CC") or "cc"
    argv = cc.split()
    path = _which(argv[0]) if argv else None
    if not path:
        raise MrhookerError("no C compiler found (%s); install gcc, e.g. apt-get install gcc" % cc)
    return [path] + argv[1:]


# ---- the cache, and why it must be private ---------------------------------------------------------------

def default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mrhooker")


def check_private_dir(path, what):
    """Refuses a directory (or any directory above it) that another user could write to: anything placed there
    would be loaded into every hooked process."""
    uid = os.getuid()
    current = os.path.realpath(path)
    while True:
        st = os.stat(current)
        if st.st_uid not in (uid, 0):
            raise MrhookerError("%s %s is owned by another user (uid %d): a library there would run in every "
                                "hooked program; use a directory of your own (--build-dir)" % (what, current, st.st_uid))
        writable_by_others = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if writable_by_others and not (current != os.path.realpath(path) and st.st_mode & stat.S_ISVTX):
            raise MrhookerError("%s %s is writable by %s (mode %o): anyone could replace the hooks loaded into "
                                "your programs; fix it with: chmod go-w %s" % (
                                    what, current, "others" if st.st_mode & stat.S_IWOTH else "its group",
                                    stat.S_IMODE(st.st_mode), current))
        parent = os.path.dirname(current)
        if parent == current:
            return
        current = parent


def prepare_dir(path, what):
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as e:
        raise MrhookerError("cannot create %s %s: %s" % (what, path, e.strerror))
    check_private_dir(path, what)
    return path


# ---- keys ---------------------------------------------------------------------------------------------

def _hash_files(paths):
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode() + b"\0")
        try:
            with open(p, "rb") as f:
                h.update(f.read())
        except OSError:
            h.update(b"<missing>")
    return h.hexdigest()


def _tool_identity(path):
    try:
        st = os.stat(path)
        return "%s:%d:%d" % (path, st.st_size, st.st_mtime_ns)
    except OSError:
        return path + ":?"


def _cython_identity():
    import importlib.util   # find_spec does not import Cython itself (which takes long)
    spec = importlib.util.find_spec("Cython")
    if spec is None or not spec.submodule_search_locations:
        return None
    return _tool_identity(os.path.join(list(spec.submodule_search_locations)[0], "Shadow.py"))


def _build_key(kind, module, content, pyinfo, cc, options):
    h = hashlib.sha256()
    parts = [__version__, kind, module, sys.version, sysconfig.get_config_var("SOABI") or "",
             " ".join(_tool_identity(c) if i == 0 else c for i, c in enumerate(cc)),
             repr(options.include_dirs), repr(options.cflags), repr(options.ldflags), pyinfo.libpython]
    if kind == "pyx":
        identity = _cython_identity()
        if identity is None:
            raise MrhookerError("Cython is not installed for %s; install it: %s -m pip install cython"
                                % (sys.executable, sys.executable))
        parts.append(identity)
    for p in parts:
        h.update(p.encode() + b"\0")
    h.update(content)
    h.update(_hash_files([os.path.join(RUNTIME_DIR, f) for f in RUNTIME_FILES]
                         + [os.path.join(PACKAGE_DIR, f) for f in GENERATOR_FILES]).encode())
    return h.hexdigest()[:24]


# ---- .py scripts: which @hook prototypes they declare -----------------------------------------------------

def scan_hooks(source, path):
    """The @hook("...") specs of a .py script, in order, read from its syntax tree without running it.
    Returns [(spec, line)]."""
    import ast
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as e:
        raise MrhookerError("%s:%s:%s: %s" % (path, e.lineno, e.offset, e.msg))
    hook_names, module_names = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "mrhooker":
            hook_names.update(a.asname or a.name for a in node.names if a.name == "hook")
        elif isinstance(node, ast.Import):
            module_names.update(a.asname or a.name for a in node.names if a.name == "mrhooker")

    def is_hook(func):
        if isinstance(func, ast.Name):
            return func.id in hook_names
        return (isinstance(func, ast.Attribute) and func.attr == "hook" and isinstance(func.value, ast.Name)
                and func.value.id in module_names)

    specs = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for deco in node.decorator_list:
                if is_hook(deco):
                    raise MrhookerError('%s:%d: @hook needs the C prototype, e.g. @hook("int unlink(const char '
                                        '*path)") or @hook("unlink")' % (path, deco.lineno))
        if isinstance(node, ast.Call) and is_hook(node.func):
            arg = node.args[0] if len(node.args) == 1 else None
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                raise MrhookerError("%s:%d: @hook takes one string literal (mrhooker reads the prototypes before "
                                    "the script runs)" % (path, node.lineno))
            for keyword in node.keywords:
                if keyword.arg != "blocks":
                    raise MrhookerError("%s:%d: @hook has no option %s (only blocks=False)"
                                        % (path, node.lineno, keyword.arg))
            specs.append((arg.value, node.lineno))
    specs.sort(key=lambda s: s[1])
    return specs


def _check_symbols(names, path):
    from mrhooker import codegen
    for name in names:
        if name in codegen.RUNTIME_SYMBOLS:
            raise MrhookerError("%s: %s cannot be hooked: mrhooker's runtime wraps it itself (signal handlers run "
                                "their hooked calls unhooked; vfork runs as fork)" % (path, name))


# ---- compiling ------------------------------------------------------------------------------------------

def _run(argv, what, log, cwd=None):
    import shlex
    import subprocess
    log("run: " + " ".join(shlex.quote(a) for a in argv))
    try:
        proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace")
    except OSError as e:
        raise MrhookerError("cannot run %s: %s" % (argv[0], e.strerror))
    if proc.returncode != 0:
        raise MrhookerError("%s failed:\n%s" % (what, proc.stdout.rstrip()))
    return proc.stdout


def _cython_error(output, script):
    """Cython's first error as SCRIPT:LINE:COL: message, with the source line and a caret."""
    import re
    match = re.search(r"^(\S[^\n]*?):(\d+):(\d+): (.+)$", output, re.M)
    if not match:
        return "Cython failed on %s:\n%s" % (script, output.strip())
    line, col, msg = int(match.group(2)), int(match.group(3)), match.group(4).strip()   # col: 0-based
    try:
        with open(script, encoding="utf-8", errors="replace") as f:
            source_line = f.read().splitlines()[line - 1]
    except (OSError, IndexError):
        return "%s:%d:%d: %s" % (script, line, col + 1, msg)
    return "%s:%d:%d: %s\n    %s\n    %s^" % (script, line, col + 1, msg, source_line.rstrip(), " " * col)


def _cythonize(script, module, out_c, include_dirs, log):
    """Cython -> C. Python 3 semantics, unless the script does not parse so and sets no language_level: the
    2011-era scripts (print statements) then compile as Python 2, as they were written."""
    import re
    base = [sys.executable, "-m", "cython", "--module-name", module, "-M", "-I", os.path.dirname(PACKAGE_DIR)]
    for d in include_dirs:
        base += ["-I", d]
    base += ["-o", out_c, script]
    try:
        return _run(base[:3] + ["-3"] + base[3:], "Cython", log)
    except MrhookerError as first:
        with open(script, encoding="utf-8", errors="replace") as f:
            if re.search(r"^#\s*cython:.*\blanguage_level\b", f.read(), re.M):
                raise MrhookerError(_cython_error(str(first), script))
        try:
            out = _run(base[:3] + ["-2"] + base[3:], "Cython", log)
            log("compiled as Python 2 (language_level=2): the script does not parse as Python 3")
            return out
        except MrhookerError:
            raise MrhookerError(_cython_error(str(first), script))


def _read_depfile(path):
    """Files listed in a make-style dependency file (Cython's -M, gcc's -MMD)."""
    try:
        with open(path) as f:
            text = f.read().replace("\\\n", " ")
    except OSError:
        return []
    _, _, deps = text.partition(":")
    return [os.path.abspath(d) for d in deps.split()]


def _compile(cc, sources, output, include_dirs, cflags, log, what, ldflags=()):
    # Libraries after the objects that use them: with --as-needed (Debian's default) a -l given before them
    # is dropped.
    argv = (list(cc) + CFLAGS + ["-I" + d for d in include_dirs] + list(cflags) + list(sources)
            + ["-o", output] + list(ldflags))
    return _run(argv, what, log)


def runtime_objects(root, pyinfo, cc, log):
    """The runtime's object files, compiled once per Python, compiler and runtime version."""
    import shutil
    import tempfile
    key = hashlib.sha256(("%s\0%s\0%s\0" % (pyinfo.include_dir, " ".join(cc), _tool_identity(cc[0]))).encode()
                         + _hash_files([os.path.join(RUNTIME_DIR, f) for f in RUNTIME_FILES]).encode()).hexdigest()[:20]
    final = os.path.join(root, "runtime-" + key)
    objects = (os.path.join(final, "preload.o"), os.path.join(final, "pyrt.o"))
    if all(os.path.exists(o) for o in objects):
        return objects
    tmp = tempfile.mkdtemp(prefix=".tmp-runtime-", dir=root)
    try:
        _compile(cc, ["-c", os.path.join(RUNTIME_DIR, "preload.c")], os.path.join(tmp, "preload.o"),
                 [RUNTIME_DIR], [], log, "compiling mrhooker's runtime (preload.c)")
        _compile(cc, ["-c", os.path.join(RUNTIME_DIR, "pyrt.c")], os.path.join(tmp, "pyrt.o"),
                 [RUNTIME_DIR, pyinfo.include_dir], [], log, "compiling mrhooker's runtime (pyrt.c)")
        _publish(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return objects


def _publish(tmp, final, replace=False):
    """Renames a finished build directory into place; if another run got there first, keeps theirs (unless
    `replace`: --rebuild)."""
    if replace and os.path.isdir(final):
        import shutil
        old = "%s.old-%d" % (final, os.getpid())
        os.rename(final, old)   # running targets keep the libraries they mapped
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(tmp, final)
    except OSError:
        if not os.path.isdir(final):
            raise


def _compile_libraries(cc, tmp, hook_sources, pyinfo, objects, options, what):
    """Compiles a build's two libraries in tmp, at once (they don't depend on each other): the hook library
    from hook_sources and the runtime's Python side, the preload library from entries.c and its runtime."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(_compile, cc, ["-shared"] + hook_sources + [objects[1]], os.path.join(tmp, "hooks.so"),
                            [RUNTIME_DIR, pyinfo.include_dir] + options.include_dirs, options.cflags, options.log,
                            what, options.ldflags),
                pool.submit(_compile, cc, ["-shared", os.path.join(tmp, "entries.c"), objects[0]],
                            os.path.join(tmp, "preload.so"), [RUNTIME_DIR] + options.include_dirs, options.cflags,
                            options.log, "compiling the preload library", ["-ldl", "-lpthread"])]
        for job in jobs:
            job.result()


def _build_pyx(script, module, tmp, pyinfo, cc, options, objects):
    from mrhooker import codegen

    out_c = os.path.join(tmp, module + ".c")
    _cythonize(script, module, out_c, options.include_dirs, options.log)
    with open(out_c, encoding="utf-8", errors="replace") as f:
        c_source = f.read()
    entries, includes = codegen.pyx_exports(c_source)
    with open(out_c, "w", encoding="utf-8") as f:
        f.write(codegen.pyx_adapt(c_source))
    _check_symbols([e.name for e in entries], script)
    deps = [d for d in _read_depfile(out_c + ".dep") if os.path.abspath(d) != script]
    with open(os.path.join(tmp, "entries.c"), "w") as f:
        f.write(codegen.preload_source(entries, includes))
    _compile_libraries(cc, tmp, ["-MMD", "-MF", os.path.join(tmp, "hooks.d"), out_c], pyinfo, objects, options,
                       "compiling %s" % os.path.basename(script))
    deps += [d for d in _read_depfile(os.path.join(tmp, "hooks.d"))
             if not d.startswith((tmp, RUNTIME_DIR, pyinfo.include_dir)) and d != script]
    return [e.name for e in entries], sorted(set(deps))


def _build_py(script, specs, tmp, pyinfo, cc, options, objects):
    from mrhooker import cdecl, codegen

    cdecl.set_cache_dir(os.path.dirname(tmp))   # the header database is cached beside the builds
    hooks, seen = [], {}
    for spec, line in specs:
        try:
            proto = cdecl.prototype_for(spec)
        except MrhookerError as e:
            raise MrhookerError("%s:%d: %s" % (script, line, e))
        if proto.symbol in seen:
            raise MrhookerError("%s:%d: %s is hooked twice (also on line %d)" % (script, line, proto.symbol,
                                                                                 seen[proto.symbol]))
        seen[proto.symbol] = line
        hooks.append((spec, proto))
    _check_symbols(seen, script)
    entries = [codegen.entry_for_prototype(p) for _s, p in hooks]
    with open(os.path.join(tmp, "entries.c"), "w") as f:
        f.write(codegen.preload_source(entries))
    with open(os.path.join(tmp, "trampolines.c"), "w") as f:
        f.write(codegen.trampolines_source(hooks))
    _compile_libraries(cc, tmp, [os.path.join(tmp, "trampolines.c")], pyinfo, objects, options,
                       "compiling the hook trampolines")
    return [p.symbol for _s, p in hooks], []


def _write_atomic(path, text):
    tmp = "%s.tmp-%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _prune(root, module, keep):
    """Removes this module's builds that have not been used for a week (a running target may still need a
    recent one to exec its children)."""
    import shutil
    import time
    horizon = time.time() - 7 * 86400
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if name.startswith(module + "-") and path != keep and os.path.isdir(path):
            try:
                if os.stat(os.path.join(path, "manifest.json")).st_mtime < horizon:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass


def build(script, options):
    """Builds (or finds in the cache) the libraries for a hook script."""
    script = os.path.abspath(script)
    try:
        with open(script, "rb") as f:
            content = f.read()
    except FileNotFoundError:
        raise MrhookerError("hook script not found: %s" % script)
    except IsADirectoryError:
        raise MrhookerError("hook script is a directory: %s" % script)
    except OSError as e:
        raise MrhookerError("cannot read hook script %s: %s" % (script, e.strerror))
    base, ext = os.path.splitext(os.path.basename(script))
    if ext not in (".pyx", ".py"):
        raise MrhookerError("hook script must be a Cython .pyx or a Python .py file: %s" % script)
    kind = ext[1:]
    module = base
    if not module.isidentifier():
        raise MrhookerError("the hook script's name must be a Python identifier (it names the module): %r" % base)

    pyinfo = python_info()
    cc = find_compiler()
    root = prepare_dir(options.build_dir or default_cache_dir(),
                       "build directory" if options.build_dir else "cache directory")
    if kind == "py":
        specs = scan_hooks(content, script)
        if not specs:
            raise MrhookerError('%s declares no hooks: decorate functions with @hook("prototype") (from mrhooker '
                                'import hook)' % script)
        key_content = json.dumps([s for s, _line in specs]).encode()
    else:
        specs = None
        key_content = content
    key = _build_key(kind, module, key_content, pyinfo, cc, options)
    index = os.path.join(root, "%s-%s.deps" % (module, key))
    options.log("script: %s (module %s, %s)" % (script, module, kind))

    def final_dir(deps):
        return os.path.join(root, "%s-%s" % (module, hashlib.sha256(
            (key + _hash_files(deps)).encode()).hexdigest()[:20]))

    if not options.rebuild:
        try:
            with open(index) as f:
                deps = json.load(f)
            final = final_dir(deps)
            with open(os.path.join(final, "manifest.json")) as f:
                manifest = json.load(f)
            if all(os.path.exists(os.path.join(final, n)) for n in ("preload.so", "hooks.so")):
                os.utime(os.path.join(final, "manifest.json"))
                options.log("cache hit: %s" % final)
                return Build(script, kind, module, final, True, manifest["symbols"])
        except (OSError, ValueError, KeyError):
            pass
    options.log("cache miss: building in %s" % root)
    options.status("mrhooker: building %s ..." % os.path.basename(script))
    import shutil
    import tempfile
    objects = runtime_objects(root, pyinfo, cc, options.log)
    tmp = tempfile.mkdtemp(prefix=".tmp-%s-" % module, dir=root)
    try:
        if kind == "pyx":
            symbols, deps = _build_pyx(script, module, tmp, pyinfo, cc, options, objects)
        else:
            symbols, deps = _build_py(script, specs, tmp, pyinfo, cc, options, objects)
        for name in os.listdir(tmp):   # only the libraries and the manifest are kept
            if name not in ("preload.so", "hooks.so"):
                os.unlink(os.path.join(tmp, name))
        _write_atomic(os.path.join(tmp, "manifest.json"), json.dumps(
            {"script": script, "kind": kind, "module": module, "symbols": symbols, "deps": deps,
             "mrhooker": __version__}, indent=1))
        os.chmod(tmp, 0o700)
        final = final_dir(deps)
        _publish(tmp, final, replace=options.rebuild)
        _write_atomic(index, json.dumps(deps))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _prune(root, module, final)
    options.log("built: %s" % final)
    return Build(script, kind, module, final, False, symbols)
