"""A hook script -> its cached build: the three libraries a hooked process loads, and mrhooker's guardian.

    preload.so   target side: the runtime's target-side objects + the generated entries.c (LD_PRELOADed)
    pyrt.so      hook side: the runtime's Python side, linked with libpython (one per Python; copied in)
    hooks.so     hook side: the Cython module (.pyx) or the generated trampolines (.py)
    guard        not in the target: the program that ends what mrhooker started if it dies (guardian.py)
    libmrhooker-tls-KEY.so   an attach's build only (-p): the target side's thread-local variables, which every
                 attach build of a process shares (runtime/tls.c says why); a launched build has them in preload.so

The stages, each its own module: script (read the script, find its hooks) -> cdecl (their prototypes, .py) ->
codegen (the C) -> toolchain (Cython, cc) -> cache (keys, publish, verify). This module only orders them.
A build is keyed by everything that shapes it: the script (for .py, only its @hook prototypes: editing the
Python never rebuilds), the files it includes, mrhooker's runtime and generator, the Python, Cython and
compiler, and the options.
"""
import json
import os
import sys

from mrhooker import __version__, cache, toolchain
from mrhooker.errors import MrhookerError

# A warm run (the build is cached) must start fast: codegen and cdecl are imported only to build.

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
RUNTIME_DIR = os.path.join(PACKAGE_DIR, "runtime")
TARGET_SIDE = ("preload.c", "resolve.c", "follow.c", "signals.c", "attach.c", "patch.c", "tls.c")   # the preload
#                                                                                            library's runtime
TRACE_SIDE = ("trace.c", "faketime.c")                               # ... and a trace's
READER_SIDE = ("reader.c", "decode.c")                                # a trace's reader.so, in mrhooker
HOOK_SIDE = ("pyrt.c", "namespace.c")                                 # pyrt.so
GUARDIAN = "guard"                                                    # guard.c: a program (guardian.py)
TLS_LIBRARY = "libmrhooker-tls-%s.so"   # tls.c alone, for attach builds (its soname; %s: the runtime's key)
RUNTIME_FILES = TARGET_SIDE + TRACE_SIDE + READER_SIDE + HOOK_SIDE + (
    GUARDIAN + ".c", "mrhooker_rt.h", "preload.h", "entry.h", "output.h", "pyrt.h", "trace.h", "faketime.h",
    "tracefile.h", "reader.h")
# mrhooker's own sources that shape a build: a change to any of them is a new build (a package: any of its files).
GENERATOR_FILES = ("build.py", "codegen.py", "cdecl", "script.py", "toolchain.py", "tracing.py", "tracespec.py",
                   "decoders.py", "faults.py", "layouts.py", "__init__.pxd")
LIBRARIES = ("preload.so", "pyrt.so", "hooks.so")
VIEWS = "views.json"   # a .py build's struct layouts (layouts.py), read by the hooks' views (_views.py)

# The hook library's links to the hook side's runtime (see runtime/pyrt.c): a Cython hook's dlsym(RTLD_NEXT)
# and errno are the target's.
HOOKS_LDFLAGS = ["-Wl,--wrap=dlsym", "-Wl,--wrap=__errno_location"]


def _quiet(_msg):
    pass


def _unwatched(_what):
    import contextlib
    return contextlib.nullcontext()


def _generator_paths():
    """The paths of GENERATOR_FILES, a package (a directory) as every .py file in it, sorted."""
    paths = []
    for name in GENERATOR_FILES:
        path = os.path.join(PACKAGE_DIR, name)
        if os.path.isdir(path):
            paths += [os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(".py")]
        else:
            paths.append(path)
    return paths


class BuildOptions:
    def __init__(self, build_dir=None, include_dirs=(), cflags=(), ldflags=(), rebuild=False, log=_quiet,
                 progress=_quiet, headers=(), preparing=_unwatched, attach=False):
        self.build_dir = build_dir                # None: the user's cache
        self.include_dirs = list(include_dirs)    # for cimport and `cdef extern from` headers
        self.cflags = list(cflags)
        self.ldflags = list(ldflags)
        self.headers = list(headers)              # more headers to find prototypes in (cdecl)
        self.rebuild = rebuild
        self.log = log                            # -v lines
        self.progress = progress                  # progress("building ..."): a step of a first run starts
        self.preparing = preparing                # preparing(what): a context around all of a run's preparation
        #                                           (cli.Console's: says what takes time, and how long it took)
        self.attach = attach                      # for a running process (-p): its own build (tls.c says why)


class Build:
    """A finished build: its directory (resolved, checked) and what the launcher needs from it."""

    def __init__(self, script, directory, symbols, entry=(), entry_at=None):
        self.script = script          # script.Script
        self.directory = directory
        self.preload = os.path.join(directory, "preload.so")
        self.runtime = os.path.join(directory, "pyrt.so")
        self.hooks = os.path.join(directory, "hooks.so")
        self.guardian = os.path.join(directory, GUARDIAN)
        self.symbols = symbols        # the hooked symbols
        self.entry = list(entry)      # those hooked at their entry (@hook(..., at="entry"); atentry.py)
        self.entry_at = dict(entry_at or {})   # those of them given by address in the program: {symbol: address}


# The runtime's objects, in two parts, each compiled once per compiler and runtime source (every Python's builds
# share them) and only when a build needs it: "target", what every preload library links (and the guardian,
# which builds copy); "trace", what only a trace's libraries link (its recorders, the fake clock, the reader).
RUNTIME_PARTS = {"target": TARGET_SIDE, "trace": TRACE_SIDE + READER_SIDE}
_runtime_jobs = {}   # (cache root, part) -> (pool, the Future of its _runtime_objects), by start_runtime_objects


def start_runtime_objects(root, log, parts=("target", "trace")):
    """Starts _runtime_objects of each part in a thread of its own, so that the compilers work while mrhooker
    plans (a first trace reads the headers meanwhile, on the other core); the build then waits for them.
    Nothing but a check when they are cached."""
    from concurrent.futures import ThreadPoolExecutor

    for part in parts:
        if (root, part) not in _runtime_jobs:
            pool = ThreadPoolExecutor(1)
            _runtime_jobs[(root, part)] = (pool, pool.submit(_compile_runtime_objects, root, part, log))


def _runtime_objects(root, part, log):
    """_compile_runtime_objects' result: from start_runtime_objects' thread if one started them (the thread then
    gone: see settle_runtime_objects), else compiled (or found) now."""
    started = _runtime_jobs.pop((root, part), None)
    if started is None:
        return _compile_runtime_objects(root, part, log)
    pool, job = started
    try:
        return job.result()
    finally:
        pool.shutdown(wait=True)


def settle_runtime_objects():
    """Waits for the threads start_runtime_objects started and no build took (a build found cached after all),
    so that none is left when the target runs: their workers take signals (the compilers they start must, as
    their children), and one taken there while the target runs would unwind mrhooker (threads.py)."""
    for root, part in list(_runtime_jobs):
        try:
            _runtime_objects(root, part, lambda msg: None)
        except Exception:   # not needed after all: a failure to build them is a later build's to report
            pass


def _compile_runtime_objects(root, part, log):
    """The runtime's objects of part that link into builds, compiled at once: they depend on the compiler and the
    runtime's sources only. Returns the objects in RUNTIME_PARTS' order, and for "target" the files builds copy:
    (objects, the guardian, the thread-local library), else (objects, None, None)."""
    import shutil
    cc = toolchain.c_compiler()
    key = cache.key([__version__, part, " ".join(cc), toolchain.tool_identity(cc[0])],
                    [os.path.join(RUNTIME_DIR, f) for f in RUNTIME_FILES], length=20)
    final = os.path.join(root, "runtime-%s-%s" % (part, key))
    sources = RUNTIME_PARTS[part]
    tls_library = TLS_LIBRARY % key
    names = [f[:-2] + ".o" for f in sources] + ([GUARDIAN, tls_library] if part == "target" else [])
    paths = [os.path.join(final, name) for name in names]
    result = (paths[:-2],) + tuple(paths[-2:]) if part == "target" else (paths, None, None)
    if cache.verify(final) is not None:
        for path in paths:   # linked into, or copied into, every build
            cache.check_private(path, "mrhooker's runtime file")
        return result
    tmp = cache.temp_dir(root, "runtime")
    try:
        # mrhooker's own side (the reader) may use the compiler's builtins; the target side must not (its
        # lookups must not call memcpy or strlen, which a trace or a hook may have taken over)
        jobs = [(["-c", "-fvisibility=hidden"] + (["-fbuiltin"] if source in READER_SIDE else
                                                   ["-fno-tree-loop-distribute-patterns"])
                 + [os.path.join(RUNTIME_DIR, source)], os.path.join(tmp, source[:-2] + ".o"), [RUNTIME_DIR], [],
                 "compiling mrhooker's runtime (%s)" % source, []) for source in sources]
        if part == "target":
            jobs.append(([os.path.join(RUNTIME_DIR, GUARDIAN + ".c")], os.path.join(tmp, GUARDIAN), [RUNTIME_DIR],
                         [], "compiling mrhooker's guardian", []))
            jobs.append((["-shared", "-nostdlib", "-DMRH_TLS_LIBRARY", os.path.join(RUNTIME_DIR, "tls.c")],
                         os.path.join(tmp, tls_library), [RUNTIME_DIR], [], "compiling mrhooker's thread-local library",
                         ["-Wl,-soname," + tls_library]))
        _compile_together(jobs, log)
        cache.seal(tmp, names, {})
        cache.publish(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _runtime_link(objects, tls_library, tmp, options):
    """What a preload library links of the runtime's target side: (objects, ldflags, the files copied beside it).
    A launched build has tls.o in it; an attach build the thread-local library instead, copied beside it and found
    there ($ORIGIN) by its soname, which a process loads once for all its attach builds (tls.c says why)."""
    import shutil
    if not options.attach:
        return objects, [], []
    shutil.copy(tls_library, os.path.join(tmp, os.path.basename(tls_library)))
    return ([o for o in objects if os.path.basename(o) != "tls.o"] + [os.path.join(tmp, os.path.basename(tls_library))],
            ["-Wl,-rpath,$ORIGIN"], [os.path.basename(tls_library)])


def _python_runtime(root, pyinfo, log):
    """The hook side's pyrt.so for this Python (one per Python: it links its libpython), copied into builds."""
    import shutil
    cc = toolchain.c_compiler()
    key = cache.key([__version__, pyinfo.include_dir, pyinfo.libpython, " ".join(cc), toolchain.tool_identity(cc[0])],
                    [os.path.join(RUNTIME_DIR, f) for f in RUNTIME_FILES], length=20)
    final = os.path.join(root, "pyrt-" + key)
    if cache.verify(final) is not None:
        return cache.check_private(os.path.join(final, "pyrt.so"), "mrhooker's runtime file")
    tmp = cache.temp_dir(root, "pyrt")
    try:
        toolchain.compile_c(["-shared"] + [os.path.join(RUNTIME_DIR, f) for f in HOOK_SIDE] + [pyinfo.libpython],
                            os.path.join(tmp, "pyrt.so"), [RUNTIME_DIR, pyinfo.include_dir], [], log,
                            "compiling mrhooker's runtime (pyrt.so)",
                            ["-Wl,-rpath," + pyinfo.libdir, "-Wl,--disable-new-dtags", "-ldl", "-lpthread"])
        cache.seal(tmp, ["pyrt.so"], {"python": pyinfo.version})
        cache.publish(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return os.path.join(final, "pyrt.so")


def _compile_libraries(tmp, hook_sources, pyinfo, runtime, options, what):
    """Compiles a build's preload and hook libraries at once (they don't depend on each other); runtime: the
    runtime's (objects, ldflags) for the preload library (_runtime_link)."""
    runtime_objects, runtime_ldflags = runtime
    _compile_together([
        (["-shared"] + hook_sources, os.path.join(tmp, "hooks.so"),
         [RUNTIME_DIR, pyinfo.include_dir] + options.include_dirs, options.cflags, what,
         HOOKS_LDFLAGS + options.ldflags),
        (["-shared", "-fvisibility=hidden", os.path.join(tmp, "entries.c")] + runtime_objects,
         os.path.join(tmp, "preload.so"), [RUNTIME_DIR] + options.include_dirs, options.cflags,
         "compiling the preload library", ["-ldl", "-lpthread"] + runtime_ldflags)], options.log)


def _write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _build_pyx(script, tmp, pyinfo, runtime, options, root):
    from mrhooker import script as scripts
    from mrhooker import cdecl, codegen

    out_c = os.path.join(tmp, script.module + ".c")
    toolchain.cythonize(script.path, script.module, out_c, options.include_dirs, options.log)
    with open(out_c, encoding="utf-8", errors="replace") as f:
        c_source = f.read()
    version = toolchain.cython_version()
    entries, includes = codegen.pyx_exports(c_source, script.path, version,
                                            lambda name: cdecl.pyx_variadic_refusal(name, root))
    if not entries:   # as a .py script with no @hook: nothing would ever run
        raise MrhookerError("%s exports no hooks: define the C functions to replace with `cdef extern` or `cdef "
                            "public` and a body (cdef extern ssize_t write(int fd, const void *buf, size_t n) with "
                            "gil: ...)" % script.path)
    scripts.check_symbols([e.symbol for e in entries], script.path)
    _write(out_c, codegen.pyx_adapt(c_source, version))
    _write(os.path.join(tmp, "entries.c"), codegen.entries_source(entries, includes))
    _compile_libraries(tmp, ["-MMD", "-MF", os.path.join(tmp, "hooks.d"), out_c], pyinfo, runtime, options,
                       "compiling %s" % os.path.basename(script.path))
    deps = [d for d in toolchain.read_depfile(out_c + ".dep") if d != script.path]
    deps += [d for d in toolchain.read_depfile(os.path.join(tmp, "hooks.d"))
             if not d.startswith((tmp, RUNTIME_DIR, pyinfo.include_dir)) and d != script.path]
    for name in ("hooks.d", script.module + ".c.dep"):
        os.unlink(os.path.join(tmp, name))
    return [e.symbol for e in entries], sorted(set(deps))


def _build_py(script, tmp, pyinfo, runtime, options, root):
    from mrhooker import script as scripts
    from mrhooker import codegen, layouts

    hooks = scripts.find_hooks(script, root, options.headers)   # the header database is cached beside the builds
    entries = [codegen.entry_for_prototype(slot, h.prototype) for slot, h in enumerate(hooks)]
    pointees = {(h.prototype.symbol, p.name): layouts.pointee_name(p.type.spelling, root, options.headers)
                for h in hooks for p in list(h.prototype.params) + list(h.prototype.extra) if p.type.kind == "pointer"}
    pointees = {k: v for k, v in pointees.items() if v}
    views = layouts.measure(set(scripts.scan_casts(script.content, script.path)) | set(pointees.values()), root,
                            options.headers)
    _write(os.path.join(tmp, VIEWS), json.dumps(views, indent=1))
    _write(os.path.join(tmp, "entries.c"), codegen.entries_source(entries))
    _write(os.path.join(tmp, "trampolines.c"), codegen.trampolines_source(hooks, entries, pointees))
    _compile_libraries(tmp, [os.path.join(tmp, "trampolines.c")], pyinfo, runtime, options,
                       "compiling the hook trampolines")
    return [h.prototype.symbol for h in hooks], [h for h in options.headers if os.path.isabs(h)]


SCANS = "script-scans"   # in the cache root: a .py script's scan (_scanned), one small file per script text
SCANS_KEPT = 64          # the most recently used kept


def _scanned(root, script):
    """What a .py script's build depends on, read from its syntax tree: its @hook specs with their places, and the
    types it casts to (as JSON texts). Remembered by the script's text, so that a warm run neither imports ast
    (~9 ms) nor parses the script; a scan another user could have written is refused, as a build is."""
    from mrhooker import script as scripts
    directory, name = os.path.join(root, SCANS), cache.key([script.content], length=32) + ".json"
    scanned = cache.recall(directory, name, "script scan")
    if isinstance(scanned, list) and len(scanned) == 2 and all(isinstance(x, str) for x in scanned):
        return scanned
    scanned = [json.dumps([[spec, at] for spec, _line, at in scripts.scan_hooks(script.content, script.path)]),
               json.dumps(scripts.scan_casts(script.content, script.path))]   # the layouts measured
    cache.remember(directory, name, scanned, SCANS_KEPT)
    return scanned


def _build_key(root, script, pyinfo, options):
    import sysconfig
    cc = toolchain.c_compiler()
    parts = [__version__, script.kind, script.module, sys.version, sysconfig.get_config_var("SOABI") or "",
             " ".join([toolchain.tool_identity(cc[0])] + list(cc[1:])), repr(options.include_dirs),
             repr(options.cflags), repr(options.ldflags), repr(options.headers), pyinfo.libpython,
             "attach" if options.attach else "launch"]
    if script.kind == "pyx":
        identity = toolchain.cython_identity()
        if identity is None:
            raise MrhookerError("Cython is not installed for %s; install it: %s -m pip install cython"
                                % (sys.executable, sys.executable))
        parts += [identity, script.content]
    else:
        parts += _scanned(root, script)
    # mrhooker's own files by their stamps (path, size, mtime), as a warm trace's plan is keyed (tracecache.py),
    # not their contents: a warm run reads none of them
    parts += [toolchain.tool_identity(path) for path in [os.path.join(RUNTIME_DIR, f) for f in RUNTIME_FILES]
              + _generator_paths()]
    return cache.key(parts)


def build(path, options):
    """Builds (or finds in the cache) the libraries for the hook script at path."""
    with cache.private_umask():
        return _build(path, options)


def _build(path, options):
    from mrhooker import script as scripts

    script = scripts.read(path)
    pyinfo = toolchain.python_info()
    root = cache.build_root(options.build_dir, preloaded=not options.attach)
    key = _build_key(root, script, pyinfo, options)
    index = os.path.join(root, "%s-%s.deps" % (script.module, key))   # the files the script includes
    options.log("script: %s (module %s, %s)" % (script.path, script.module, script.kind))

    def final_dir(deps):
        return os.path.join(root, "%s-%s" % (script.module, cache.key([key], deps, length=20)))

    if not options.rebuild:
        try:
            with open(index) as f:
                deps = json.load(f)
            if not (isinstance(deps, list) and all(isinstance(d, str) for d in deps)):
                raise ValueError(index)
            final = final_dir(deps)
            manifest = cache.verify(final)
            if manifest is not None:
                cache.touch(final)
                options.log("cache hit: %s" % final)
                return Build(script, cache.check_private(final, "build"), manifest["symbols"],
                             manifest.get("entry", ()), manifest.get("entry_at"))
            options.log("cache: %s is missing or damaged: building it again" % final)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    options.log("cache miss: building in %s" % root)
    options.progress("building %s" % os.path.basename(script.path))
    import shutil
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool:   # the Python runtime compiles while the target side's objects do
        python_runtime = pool.submit(_python_runtime, root, pyinfo, options.log)
        runtime_objects, guardian, tls_library = _runtime_objects(root, "target", options.log)
        pyrt = python_runtime.result()
    tmp = cache.temp_dir(root, script.module)
    try:
        shutil.copyfile(pyrt, os.path.join(tmp, "pyrt.so"))
        shutil.copy(guardian, os.path.join(tmp, GUARDIAN))
        runtime_objects, runtime_ldflags, copies = _runtime_link(runtime_objects, tls_library, tmp, options)
        runtime = (runtime_objects, runtime_ldflags)
        entry, entry_at = [], {}
        if script.kind == "pyx":
            symbols, deps = _build_pyx(script, tmp, pyinfo, runtime, options, root)
        else:
            symbols, deps = _build_py(script, tmp, pyinfo, runtime, options, root)
            entry = [h.prototype.symbol for h in script.hooks if h.at != "plt"]
            entry_at = {h.prototype.symbol: h.at for h in script.hooks if isinstance(h.at, int)}
        cache.seal(tmp, LIBRARIES + (GUARDIAN,) + tuple(copies) + ((VIEWS,) if script.kind == "py" else ()), {"script": script.path, "kind": script.kind, "module": script.module,
                                    "symbols": symbols, "entry": entry, "entry_at": entry_at, "deps": deps, "mrhooker": __version__})
        final = final_dir(deps)
        cache.publish(tmp, final, rebuild=options.rebuild)
        cache.write_atomic(index, json.dumps(deps))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cache.prune(root, script.module, final)
    options.log("built: %s" % final)
    return Build(script, cache.check_private(final, "build"), symbols, entry, entry_at)


# ---- traces ---------------------------------------------------------------------------------------------

class TraceBuild:
    """A trace's libraries: the preload library that records calls, and reader.so that shows them (their
    generated entries.c and decoders.c beside them), with what mrhooker needs of each traced function."""

    def __init__(self, directory, functions):
        self.directory = directory
        self.preload = os.path.join(directory, "preload.so")
        self.reader = os.path.join(directory, "reader.so")
        self.guardian = os.path.join(directory, GUARDIAN)
        self.functions = functions    # [{"name", "text", "params"}], in slot order


def build_trace(plans, symbols, layouts, options):
    """Builds (or finds in the cache) the libraries that record and show calls of the functions planned
    (tracespec.Plan); symbols and layouts: the headers' constants and the structs the plans show."""
    with cache.private_umask():
        return _build_trace(plans, symbols, layouts, options)


def _build_trace(plans, symbols, layouts, options):
    import shutil
    from mrhooker import codegen, decoders

    root = cache.build_root(options.build_dir, preloaded=not options.attach)
    entries = codegen.trace_entries_sources(plans, symbols, os.cpu_count() or 1)
    shown = decoders.source(plans, symbols, layouts)
    functions = [dict({"name": p.symbol, "text": p.proto.text, "params": [q.name for q in p.params]},
                      **({"hidden": True} if p.hidden else {})) for p in plans]
    cc = toolchain.c_compiler()
    key = cache.key([__version__, "trace", "attach" if options.attach else "launch"] + entries + [shown, repr(options.cflags),
                     " ".join([toolchain.tool_identity(cc[0])] + list(cc[1:]))],
                    [os.path.join(RUNTIME_DIR, f) for f in RUNTIME_FILES]
                    + _generator_paths(), length=20)
    final = os.path.join(root, "trace-" + key)
    if not options.rebuild:
        manifest = cache.verify(final)
        if manifest is not None:
            cache.touch(final)
            options.log("cache hit: %s" % final)
            return TraceBuild(cache.check_private(final, "build"), manifest["functions"])
    count = sum(not p.hidden for p in plans)   # (not the waits traced for the children's ends)
    what = "building the trace of " + ("1 function" if count == 1 else "%d functions" % count)
    options.log("cache miss: %s in %s" % (what, root))
    options.progress(what)
    start_runtime_objects(root, options.log)   # (started already while the trace was planned, on a first run)
    target_objects, guardian, tls_library = _runtime_objects(root, "target", options.log)
    trace_objects, _, _ = _runtime_objects(root, "trace", options.log)
    target_objects += trace_objects[:len(TRACE_SIDE)]
    reader_objects = trace_objects[len(TRACE_SIDE):]
    tmp = cache.temp_dir(root, "trace")
    try:
        # entries.c in pieces compiled at once (a trace of every function is 2000 entry points), then linked
        pieces = []
        for i, text in enumerate(entries):
            pieces.append(os.path.join(tmp, "entries%s.c" % (i or "")))
            _write(pieces[-1], text)
        _write(os.path.join(tmp, "decoders.c"), shown)
        shutil.copy(guardian, os.path.join(tmp, GUARDIAN))
        target_objects, runtime_ldflags, copies = _runtime_link(target_objects, tls_library, tmp, options)
        _compile_together([(["-c", "-fvisibility=hidden", piece], piece[:-2] + ".o", [RUNTIME_DIR], options.cflags,
                            "compiling the trace library", []) for piece in pieces] + [
            (["-shared", "-fvisibility=hidden", os.path.join(tmp, "decoders.c")] + reader_objects,
             os.path.join(tmp, "reader.so"), [RUNTIME_DIR], [], "compiling the trace's reader", ["-lm"])],
            options.log)
        toolchain.compile_c(["-shared", "-fvisibility=hidden"] + [p[:-2] + ".o" for p in pieces] + target_objects,
                            os.path.join(tmp, "preload.so"), [RUNTIME_DIR], options.cflags, options.log,
                            "linking the trace library", ["-ldl", "-lpthread"] + runtime_ldflags)
        for piece in pieces:
            os.unlink(piece[:-2] + ".o")
        cache.seal(tmp, ["preload.so", "reader.so", GUARDIAN] + copies, {"functions": functions, "mrhooker": __version__})
        cache.publish(tmp, final, rebuild=options.rebuild)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cache.prune(root, "trace", final)
    options.log("built: %s" % final)
    return TraceBuild(cache.check_private(final, "build"), functions)


def _compile_together(jobs, log):
    """Compiles (sources, output, include dirs, cflags, what, ldflags) jobs at once, in threads; one failing
    stops the others."""
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    with ThreadPoolExecutor(min(len(jobs), os.cpu_count() or 1)) as pool:
        futures = [pool.submit(toolchain.compile_c, sources, output, includes, cflags, log, what, ldflags)
                   for sources, output, includes, cflags, what, ldflags in jobs]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            # the job that failed first is the one to report: those killed because of it fail too, saying nothing
            failed = [f for f in done if f.exception() is not None]
            if failed:
                raise failed[0].exception()
        except BaseException:
            toolchain.kill_running()
            raise
