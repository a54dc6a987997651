"""A trace's warm start: what a request's selection came to (the build that records and shows its calls, its
--inject rules, whether the clock is faked), remembered in the cache directory, one small file per request.

A request seen before, with mrhooker, the compiler and every header it was planned from unchanged, reads that
file and checks its build (cache.verify) instead of loading the header databases, planning, generating the
sources and hashing them again: the warm start of `mrhooker trace` is then Python's own start, argparse, and
the run. What the key holds is what a plan depends on; what can change under an unchanged key (a header
upgraded, the build pruned or altered) is checked on every use, and a miss is a cold start, never a stale one.
"""
import json
import os

from mrhooker import __version__, cache, toolchain

DIRECTORY = "trace-plans"   # in the cache root
KEPT = 64                   # plans kept; the least recently used go first
_SCHEMA = 2
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def request_key(request, headers, cflags, fake_rate):
    """What decides a plan and its build: the selection (-e, --inject, -q, the fake clock's rate, whether the lines
    follow children), the headers and flags, the compiler, and mrhooker's own sources (by size and mtime: a changed
    file is a new key)."""
    compiler = toolchain.c_compiler()
    lines = request.follow and request.lines   # children's ends: the waits traced for them (tracer._hidden_waits)
    parts = [str(_SCHEMA), __version__, json.dumps([request.specs, request.inject, request.quiet, fake_rate, lines,
                                                     list(headers), list(cflags), list(compiler)]),
             toolchain.tool_identity(compiler[0]), _package_stamps()]
    for header in headers:   # a header of the user's, named by its path
        if os.path.isabs(header) or header.startswith("."):
            parts.append(toolchain.tool_identity(os.path.abspath(header)))
    return cache.key(parts, length=32)


def _package_stamps():
    stamps = []
    for directory in (_PACKAGE_DIR, os.path.join(_PACKAGE_DIR, "cdecl"), os.path.join(_PACKAGE_DIR, "runtime")):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        stamps += [toolchain.tool_identity(os.path.join(directory, n)) for n in names
                   if n.endswith((".py", ".c", ".h", ".pxd"))]
    return "\n".join(stamps)


def lookup(root, key):
    """The remembered plan of key, if it still holds: (build directory, its manifest, rules), else None. A plan
    another user could have written (its rules inject faults) is refused as a build is; one of another shape
    (edited, or written by another version) is not used."""
    entry = cache.recall(os.path.join(root, DIRECTORY), key + ".json", "trace plan")
    try:
        if entry.get("schema") != _SCHEMA:
            return None
        for path, stamp in entry["headers"].items():
            st = os.stat(path)
            if [st.st_size, st.st_mtime_ns] != stamp:
                return None
        directory = os.path.join(root, entry["build"])
        if os.path.dirname(directory) != root:   # a name, not a path elsewhere
            return None
        manifest = cache.verify(directory)
        if manifest is None:
            return None
        cache.touch(directory)
        rules = [(fn, chain) for fn, chain in entry["rules"]]
        if not all(_is_rule(fn, chain, len(manifest["functions"])) for fn, chain in rules):
            return None
        return directory, manifest, rules
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _is_rule(fn, chain, nfn):
    """Whether (fn, chain) has the shape of planned --inject rules (faults.Rule.entry()'s fields) for one of nfn
    functions: the trace file's rule table is written from them as they are."""
    return (type(fn) is int and 0 <= fn < nfn and isinstance(chain, list) and chain
            and all(isinstance(fields, list) and len(fields) == 10 and all(type(x) in (int, bool) for x in fields)
                    for fields in chain))


def remember(root, key, directory, rules, header_stamps):
    """Writes key's plan (a plan that can't be written only costs the next run its warm start)."""
    entry = {"schema": _SCHEMA, "build": os.path.basename(directory), "rules": rules, "headers": header_stamps}
    cache.remember(os.path.join(root, DIRECTORY), key + ".json", entry, KEPT)
