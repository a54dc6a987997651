"""Fixtures of the unit layer: mrhooker's modules called in this process, no target program run.

The reader's tests compile a trace's reader.so (runtime/reader.c, decode.c and a generated decoders.c) and a
record writer (ring_writer.c, with runtime/tracefile.h's layout), then put records into a trace file's ring
and read what the reader shows.
"""
import ctypes
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from mrhooker import build, cdecl, decoders, layouts, tracefile, tracespec, tracing  # noqa: E402

RUNTIME = os.path.join(SRC, "mrhooker", "runtime")


@pytest.fixture(scope="session")
def unit_cache(tmp_path_factory):
    """A private cache directory for the header database, the constants and the layouts."""
    d = tmp_path_factory.mktemp("unit-cache")
    os.chmod(d, 0o700)
    return str(d)


@pytest.fixture(scope="session")
def symbols(unit_cache):
    return tracing.symbols(unit_cache)


def _cc(args):
    subprocess.run(["cc", "-O1", "-fPIC", "-Wall", "-Werror", "-I" + RUNTIME] + args, check=True)


@pytest.fixture(scope="session")
def ring_writer(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("writer") / "ring_writer.so")
    _cc(["-shared", "-o", out, os.path.join(HERE, "ring_writer.c")])
    lib = ctypes.CDLL(out)
    p, u, u64 = ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint64
    lib.ring_put.argtypes = [p, u, u, u, u64, u64, u64, ctypes.c_int, u, u, ctypes.POINTER(u64), u,
                             ctypes.POINTER(u), ctypes.POINTER(u), ctypes.POINTER(u), ctypes.POINTER(ctypes.c_char_p),
                             ctypes.POINTER(u), ctypes.c_int]
    lib.ring_clock.argtypes = [p]
    lib.rule_chain.argtypes = [p, u, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    return lib


class Built:
    """A trace's reader.so for some functions, and their plans (in slot order)."""

    def __init__(self, lib, plans, names):
        self.lib, self.plans, self.names = lib, plans, names

    def fn(self, name):
        return self.names.index(name)


@pytest.fixture(scope="session")
def reader_for(unit_cache, symbols, tmp_path_factory):
    """reader_for(names or prototypes) -> Built: compiled once per set."""
    made = {}
    objects_dir = tmp_path_factory.mktemp("reader-objects")
    objects = []
    for source in build.READER_SIDE:
        obj = str(objects_dir / (source[:-2] + ".o"))
        _cc(["-c", "-fvisibility=hidden", "-o", obj, os.path.join(RUNTIME, source)])
        objects.append(obj)

    def make(specs):
        key = tuple(specs)
        if key not in made:
            protos = [cdecl.prototype_for(s, unit_cache) for s in specs]
            shown = layouts.measure_cached(tracespec.struct_names(protos), unit_cache)
            plans = [tracespec.plan(p, shown) for p in protos]
            d = tmp_path_factory.mktemp("reader")
            (d / "decoders.c").write_text(decoders.source(plans, symbols, shown))
            _cc(["-shared", "-fvisibility=hidden", "-o", str(d / "reader.so"), str(d / "decoders.c")] + objects
                + ["-lm"])
            made[key] = Built(tracefile.load(str(d / "reader.so")), plans, [p.symbol for p in plans])
        return made[key]

    return make


class Ring:
    """A trace file with a reader whose lines and JSON go to files; put() writes records, show() drains."""

    def __init__(self, built, writer, tmp_path, strsize=32, ring_size=1 << 16, **lines):
        self.built, self.writer, self.tmp = built, writer, tmp_path
        self.trace = tracefile.TraceFile(built.lib, len(built.plans), ring_size, True, False, strsize)
        writer.ring_clock(self.trace.map)
        self.reader = tracefile.Reader(self.trace)
        self.lines_path, self.json_path = tmp_path / "lines.txt", tmp_path / "calls.jsonl"
        self.files = [open(self.lines_path, "wb", buffering=0), open(self.json_path, "wb", buffering=0)]
        options = dict(timestamps=0, relative=False, durations=False, callers=False, failed_only=False,
                       per_process=False, open_for_pid=None, wall_offset_ns=0)
        options.update(lines)
        self.reader.lines(self.files[0].fileno(), **options)
        self.reader.json(self.files[1].fileno(), 0)
        self.reader.command_pid(100)

    def put(self, name, args, ret=0, err=0, flags=0, captures=(), pid=100, tid=None, ts=1000, dur=10, commit=True):
        """captures: [(which, kind, data, full)]."""
        n = len(captures)
        u = ctypes.c_uint
        values = [a & ((1 << 64) - 1) for a in args]
        ok = self.writer.ring_put(
            self.trace.map, self.built.fn(name), pid, tid or pid, ts, dur, ret & ((1 << 64) - 1), err, flags,
            len(values), (ctypes.c_uint64 * max(len(values), 1))(*values), n,
            (u * max(n, 1))(*[c[0] for c in captures]), (u * max(n, 1))(*[c[1] for c in captures]),
            (u * max(n, 1))(*[c[3] if len(c) > 3 else len(c[2]) for c in captures]),
            (ctypes.c_char_p * max(n, 1))(*[c[2] for c in captures]), (u * max(n, 1))(*[len(c[2]) for c in captures]),
            int(commit))
        assert ok == 0, "the ring is full"

    def show(self, final=True):
        self.reader.drain(final)
        self.reader.finish()
        return self.lines_path.read_text(), [json.loads(line) for line in self.json_path.read_text().splitlines()]

    def close(self):
        self.reader.close()
        for f in self.files:
            f.close()
        self.trace.close()


@pytest.fixture
def ring(ring_writer, tmp_path):
    """ring(built, **line options) -> Ring, closed after the test."""
    made = []

    def make(built, **options):
        r = Ring(built, ring_writer, tmp_path, **options)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()
