"""The build side as a house: its stages import downward only, the generated C is kept and readable, and the
adaptation of Cython's output fails loudly, naming the Cython version, when Cython changes its text."""
import ast
import os
import re

import pytest

from mrhooker import codegen
from mrhooker.errors import MrhookerError

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "mrhooker")
HOOK_SIDE = {"__init__", "_inside", "_views"}   # what runs inside the target


def _modules():
    """module -> its file: 'cdecl' for a package's __init__.py, 'cdecl.parse' for its modules (and '__init__' for
    mrhooker's own)."""
    modules = {}
    for directory, _subdirectories, names in os.walk(PACKAGE):
        package = os.path.relpath(directory, PACKAGE).replace(os.sep, ".")
        for name in names:
            if name.endswith(".py"):
                module = name[:-3]
                if package != ".":
                    module = package if module == "__init__" else package + "." + module
                modules[module] = os.path.join(directory, name)
    return modules


def _imports():
    """module -> the mrhooker modules it imports (at any depth of its code)."""
    modules = _modules()

    def module_of(dotted):   # 'cdecl.model.CType' -> 'cdecl.model': the longest prefix that is a module
        parts = dotted.split(".")
        while parts and ".".join(parts) not in modules:
            parts.pop()
        return ".".join(parts)

    graph = {}
    for module, path in modules.items():
        tree = ast.parse(open(path).read())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mrhooker":
                within = node.module[len("mrhooker."):]
                found.update(module_of(within + "." + a.name if within else a.name) for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(module_of(a.name[len("mrhooker."):]) for a in node.names if a.name.startswith("mrhooker."))
        graph[module] = {m for m in found if m and m != module}
    return graph


def test_no_import_loops():
    graph = _imports()
    seen, stack = set(), []

    def visit(module):
        assert module not in stack, "import loop: " + " -> ".join(stack[stack.index(module):] + [module])
        if module in seen:
            return
        stack.append(module)
        for m in sorted(graph.get(module, ())):
            visit(m)
        stack.pop()
        seen.add(module)

    for module in sorted(graph):
        visit(module)


def test_the_hook_side_imports_nothing_of_the_build_side():
    graph = _imports()
    for module in HOOK_SIDE:
        assert graph[module] <= HOOK_SIDE, (module, graph[module])


def _build_dir_of(r):
    match = re.search(r"LD_PRELOAD=(\S+)/preload\.so", r.err)
    assert match, r
    return match.group(1)


def test_the_generated_c_is_kept_beside_the_libraries(mrhooker, script, tmp_path):
    py = script("kept.py", 'from mrhooker import hook\n@hook("getpid")\ndef getpid():\n    return getpid.original()\n')
    r = mrhooker("-v", "--build-dir", tmp_path / "b", py, "true")
    assert r.returncode == 0, r
    directory = _build_dir_of(r)
    assert sorted(os.listdir(directory)) == ["entries.c", "guard", "hooks.so", "manifest.json", "preload.so",
                                             "pyrt.so", "trampolines.c", "views.json"]
    entries = open(os.path.join(directory, "entries.c")).read()
    assert 'MRH_ENTRY(int, 0, "getpid", (void))' in entries
    trampolines = open(os.path.join(directory, "trampolines.c")).read()
    assert "MRH_HOOK_BEGIN(0);" in trampolines and "MRH_ORIGINAL_CALL(" in trampolines


def test_the_adapted_cython_output_has_what_the_runtime_needs(mrhooker, script, tmp_path):
    pyx = script("kept_pyx.pyx", "cdef extern int getpid() with gil:\n    raise ValueError('x')\n")
    r = mrhooker("-v", "--build-dir", tmp_path / "b", pyx, "true")
    assert r.returncode == 0, r
    directory = _build_dir_of(r)
    source = open(os.path.join(directory, "kept_pyx.c")).read()
    assert "#define __Pyx_PyGILState_Ensure mrh_gil_ensure" in source
    assert re.search(r"^\s+mrh_pyx_unraisable\(\"kept_pyx\.getpid\"", source, re.M)
    assert 'MRH_ENTRY(int, 0, "getpid", (void))' in open(os.path.join(directory, "entries.c")).read()


def test_a_change_in_cythons_output_is_an_error_naming_the_version(tmp_path):
    gil = ('/* NoFastGil.proto */\n#define __Pyx_PyGILState_Ensure PyGILState_Ensure\n'
           '#define __Pyx_PyGILState_Release PyGILState_Release\n')
    use = "  PyGILState_STATE s = __Pyx_PyGILState_Ensure();\n"
    unraisable = '  __Pyx_WriteUnraisable("m.f", 0, 0, NULL, 1, 0);\n'
    adapted = codegen.pyx_adapt(gil + use + unraisable, "3.3.1")
    assert "mrh_gil_ensure" in adapted and "mrh_pyx_unraisable(" in adapted
    for broken in (use + unraisable, gil.replace("PyGILState_Ensure\n", "PyGILState_Ensure  \n") + use,
                   gil + use + unraisable.replace("  __Pyx", "__Pyx")):
        with pytest.raises(MrhookerError) as caught:
            codegen.pyx_adapt(broken, "9.9")
        assert "Cython 9.9" in str(caught.value) and codegen.SUPPORTED_CYTHON in str(caught.value)
    with pytest.raises(MrhookerError) as caught:
        codegen.pyx_exports("int f(int __pyx_v_x) {\n", "s.pyx", "9.9", lambda name: "")
    assert "Early includes" in str(caught.value) and "Cython 9.9" in str(caught.value)


def _sealed_build(root, text):
    from mrhooker import cache
    tmp = cache.temp_dir(str(root), "t")
    with open(os.path.join(tmp, "lib.so"), "w") as f:
        f.write(text)
    cache.seal(tmp, ["lib.so"], {"text": text})
    return tmp


def test_publishing_never_leaves_the_build_path_missing(tmp_path):
    """Runs that build the same thing at once (or a --rebuild beside running ones) must never make another run
    find the build missing between its check and its load: the one there is kept, or swapped in one step."""
    import threading
    from mrhooker import cache
    final = str(tmp_path / "b")
    cache.publish(_sealed_build(tmp_path, "first"), final)
    assert cache.verify(final)["text"] == "first"
    second = _sealed_build(tmp_path, "second")
    cache.publish(second, final)   # another run got there first: theirs is kept
    assert cache.verify(final)["text"] == "first" and cache.verify(second)["text"] == "second"
    stop, missing = threading.Event(), []

    def watch():
        while not stop.is_set():
            if not all(os.path.isfile(os.path.join(final, f)) for f in ("lib.so", cache.MANIFEST)):
                missing.append(1)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for i in range(200):
            tmp = _sealed_build(tmp_path, "rebuilt %d" % i)
            cache.publish(tmp, final, rebuild=True)
            assert cache.verify(tmp)["text"] != "rebuilt %d" % i   # tmp now holds the old one
            __import__("shutil").rmtree(tmp)
    finally:
        stop.set()
        watcher.join()
    assert not missing and cache.verify(final)["text"] == "rebuilt 199"
    with open(os.path.join(final, "lib.so"), "w") as f:
        f.write("damaged")
    cache.publish(_sealed_build(tmp_path, "repaired"), final)
    assert cache.verify(final)["text"] == "repaired"
