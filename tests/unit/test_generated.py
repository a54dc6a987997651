"""The generated C, pinned: what codegen and decoders write for a few functions that exercise every part of a
traced entry point (a buffer and its length, a path, a variadic mode, captures kept before the call, one kept
only for some commands, a call that may not return, fake time) is compared with files in tests/unit/golden.

The comments in runtime/trace.h, entry.h and pyrt.h point here for what the generated code looks like. After a
deliberate change: MRHOOKER_UPDATE_GOLDEN=1 python -m pytest tests/unit -k generated, then read the diff.
"""
import os

import pytest

from mrhooker import cdecl, codegen, decoders, layouts, script, tracespec

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
TRACED = ["write", "open", "select", "fcntl", "execve", "kill", "clock_gettime", "fork"]


def _check(name, text):
    path = os.path.join(GOLDEN, name)
    if os.environ.get("MRHOOKER_UPDATE_GOLDEN"):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        expected = f.read()
    assert text == expected, "%s differs from what is generated now (see this module's doc)" % path


@pytest.fixture(scope="module")
def plans(unit_cache):
    protos = [cdecl.prototype_for(name, unit_cache) for name in TRACED]
    shown = layouts.measure_cached(tracespec.struct_names(protos), unit_cache)
    return [tracespec.plan(p, shown) for p in protos], shown


def test_traced_entry_points_are_calls_and_data(plans, symbols):
    _check("trace.entries.c", codegen.trace_entries_source(plans[0], symbols))


def test_decoders_are_data(plans, symbols):
    _check("trace.decoders.c", decoders.source(plans[0], symbols, plans[1]))


HOOKS = '''\
from mrhooker import hook

@hook("int unlink(const char *path)")
def unlink(path):
    return unlink.original(path)

@hook("double sqrt(double x)")
def sqrt(x):
    return sqrt.original(x)

@hook("void free(void *p)", blocks=False)
def free(p):
    return free.original(p)

@hook("int clock_gettime(clockid_t clock, struct timespec *ts)")
def clock_gettime(clock, ts):
    return clock_gettime.original(clock, ts)

@hook("open")
def open(path, flags, mode):
    return open.original(path, flags, mode)

@hook("int getpid(void)")
def getpid():
    return getpid.original()
'''


def test_hook_entry_points_and_trampolines_are_calls(unit_cache, tmp_path):
    path = tmp_path / "hooks.py"
    path.write_text(HOOKS)
    read = script.read(str(path))
    hooks = script.find_hooks(read, unit_cache)
    entries = [codegen.entry_for_prototype(slot, h.prototype) for slot, h in enumerate(hooks)]
    _check("hooks.entries.c", codegen.entries_source(entries))
    _check("hooks.trampolines.c", codegen.trampolines_source(hooks, entries, {("clock_gettime", "ts"):
                                                                            "struct timespec"}))


def test_items_and_addresses_are_described_so(unit_cache, symbols):
    """fwrite's buffer: argument 2 items of argument 1 bytes each, kept always; fread's: as many items as it
    returns, kept when it worked; realloc's pointer (and any non-const void * with a length, where the call
    doesn't return a length) an address; a char * with a length, where the call returns a pointer, a string it
    fills (inet_neta's), but strerror_r's, which GNU's leaves unwritten for a known error (its result is the
    string), an address; gethostname's a string it fills, though it returns 0."""
    def plan(name):
        return tracespec.plan(cdecl.prototype_for(name, unit_cache))

    source = codegen.trace_entries_source([plan("fwrite"), plan("fread_unlocked")], symbols)
    assert "{0, MRH_CAP_BYTES, MRH_WHEN_ALWAYS, MRH_LEN_ITEMS, 2, 0, 0, 0, 1, NULL}" in source, source
    assert "{0, MRH_CAP_BYTES, MRH_WHEN_OK, MRH_LEN_ITEMS, 255, 0, 0, 0, 1, NULL}" in source, source
    for name in ("realloc", "reallocarray", "memfrob", "fmemopen", "bzero", "qsort", "mlock", "msync"):
        p = plan(name)
        assert p.kinds[0] is tracespec.HEX and not [c for c in p.captures if c.which == 0], (name, p.kinds)
    assert isinstance(plan("inet_neta").kinds[1], tracespec.StringOut)
    assert plan("strerror_r").kinds[1] is tracespec.HEX
    assert isinstance(plan("gethostname").kinds[0], tracespec.StringOut)
    assert [c.length for c in plan("read").captures] == [tracespec.LEN_RET_UPTO_ARG]   # unchanged
