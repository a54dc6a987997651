"""Struct layouts as the C compiler sees them, for struct views (`p.cast("struct timespec")` in a hook).

cdecl gives a struct's members (names, nesting, arrays, pointers) from the headers' text; the compiler gives
every number: a probe program, built with the same headers, prints each member's offsetof and sizeof, and for
scalars whether they are floating and signed. No layout is ever computed here, so packing, alignment, bitfield
neighbours and the target's ABI come out as the compiler lays them out.

A layout, as views.json in the build directory holds it (one per type name):

    {"size": 16, "fields": {"tv_sec": {"offset": 0, "size": 8, "kind": "int"}, ...}, "aliases": {...}}

A field's kind: "int", "uint", "float", "pointer" (+ "pointee": an aggregate's name or ""), "struct" (+ its
own "size", "fields"), "array" (+ "count", 0 for a flexible one, and "element", a field at offset 0),
"bitfield" or "opaque" (not readable by name). Offsets are from the start of the enclosing struct.
"aliases" maps the headers' member macros (st_atime -> st_atim.tv_sec, s6_addr -> __in6_u.__u6_addr8) to
their paths.
"""
import re

from mrhooker import cdecl, toolchain
from mrhooker.errors import MrhookerError

_CLASS_REAL = 8   # __builtin_classify_type's real_type_class (float, double, long double)


def measure_cached(names, cache_dir):
    """measure() of the system headers' structs, kept in cache_dir (a trace measures them on every run) while
    the headers' database is the same."""
    import json
    import os

    from mrhooker import cache
    names = sorted(set(names))
    if not names:
        return {}
    compiler = toolchain.c_compiler()
    key = cache.key(["layouts 1", cdecl.database_key(cache_dir), " ".join(compiler),
                     toolchain.tool_identity(compiler[0])] + names)
    path = os.path.join(cache_dir, "layouts-%s.json" % key)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        pass
    try:
        layouts = measure(names, cache_dir)
    except MrhookerError:
        return {}   # a trace shows those structs as addresses rather than fail
    try:
        cache.write_atomic(path, json.dumps(layouts))
    except OSError:
        pass   # the cache only saves time
    return layouts


def measure(names, cache_dir, headers=()):
    """{type name: layout} for the struct, union and typedef names given, measured by the compiler."""
    trees = {name: cdecl.aggregate_members(name, cache_dir, headers) for name in sorted(set(names))}
    if not trees:
        return {}
    lines = []
    for name, tree in trees.items():
        _probe_lines(name, tree, lines)
    includes = cdecl.include_source(headers)
    # Member names the headers also define as macros (sa_handler, st_atime) must reach the compiler as written.
    undefs = "".join("#undef %s\n" % n for n in sorted(_member_names(trees.values())))
    source = ("#define _GNU_SOURCE\n" + includes + "#include <stddef.h>\n#include <stdio.h>\n" + undefs +
              "#define SCALAR(T, m) (int)__builtin_classify_type(((T *)0)->m), "
              "(int)((__typeof__(((T *)0)->m))-1 < 0)\n"
              "int main(void)\n{\n" + "".join(lines) + "    return 0;\n}\n")
    errors, out = toolchain.compile_and_run(source)
    if errors is not None:
        first = next((l for l in errors.splitlines() if " error: " in l), errors.strip()[:200])
        raise MrhookerError("cannot measure the layout of %s: %s" % (", ".join(trees), first))
    # The numbers come in the order _probe_lines wrote them, which is the order _layout reads them in.
    numbers = iter([tuple(int(v) for v in line.split()) for line in out.splitlines()])
    aliases = _member_macros(includes)
    layouts = {}
    for name, tree in trees.items():
        layout = _layout(tree, numbers)
        layout["aliases"] = {a: p for a, p in aliases.items() if _has_path(layout, p)}
        layouts[name] = layout
    return layouts


def _member_names(trees):
    names = set()

    def walk(member):
        names.update(re.findall(r"[A-Za-z_]\w*", member.get("path") or ""))
        for child in member.get("members", ()):
            walk(child)
        if "element" in member:
            walk(member["element"])

    for tree in trees:
        for member in tree["members"]:
            walk(member)
    return names


def _probe_lines(name, tree, lines):
    """printf lines for the type and each member (in the walk order of _layout): offset size class signed."""
    lines.append('    printf("0 %%zu 0 0\\n", sizeof(%s));\n' % name)

    def walk(member):
        kind, path = member["kind"], member.get("path")
        if kind == "bitfield" or kind == "opaque" and not path:
            lines.append('    printf("0 0 0 0\\n");\n')
            return
        size = "0" if member.get("flexible") else "sizeof(((%s *)0)->%s)" % (name, path)
        if kind == "scalar":
            lines.append('    printf("%%zu %%zu %%d %%d\\n", offsetof(%s, %s), %s, SCALAR(%s, %s));\n'
                         % (name, path, size, name, path))
        else:
            lines.append('    printf("%%zu %%zu 0 0\\n", offsetof(%s, %s), %s);\n' % (name, path, size))
        for child in member.get("members", ()):
            walk(child)
        if kind == "array":
            walk(member["element"])

    for member in tree["members"]:
        walk(member)


def _layout(tree, numbers):
    """The layout of a member tree from the probe's numbers (absolute offsets made relative)."""
    _offset, size, _cls, _signed = next(numbers)
    return {"size": size, "fields": _fields(tree["members"], numbers, 0)}


def _fields(members, numbers, base):
    fields = {}
    for member in members:
        fields[member["name"]] = _field(member, numbers, base)
    return fields


def _field(member, numbers, base):
    offset, size, cls, signed = next(numbers)
    kind = member["kind"]
    field = {"offset": offset - base, "size": size}
    if kind == "scalar":
        if cls == _CLASS_REAL:
            field["kind"] = "float" if size in (4, 8) else "opaque"   # long double: no Python float holds it
        else:
            field["kind"] = "int" if signed else "uint"
            if size not in (1, 2, 4, 8):
                field["kind"] = "opaque"
    elif kind == "pointer":
        field.update(kind="pointer", pointee=member.get("pointee", ""))
    elif kind == "aggregate":
        field.update(kind="struct", fields=_fields(member["members"], numbers, offset))
    elif kind == "array":
        element = _field(member["element"], numbers, offset)
        field.update(kind="array", element=element,
                     count=0 if member["flexible"] or not element["size"] else size // element["size"])
    else:
        field["kind"] = kind   # bitfield, opaque
    return field


def _member_macros(includes):
    """The headers' macros that rename a member (#define st_atime st_atim.tv_sec): name -> path."""
    defines = toolchain.preprocess(includes, ["-D_GNU_SOURCE", "-dM"], toolchain.c_compiler())
    return {m.group(1): m.group(2) for m in re.finditer(r"^#define ([a-z_]\w*) ([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)$",
                                                       defines, re.M)}


def _has_path(layout, path):
    fields = layout["fields"]
    for part in path.split("."):
        field = fields.get(part)
        if field is None:
            return False
        fields = field.get("fields", {})
    return True


def pointee_name(spelling, cache_dir, headers=()):
    """The struct a pointer parameter points to ('const struct timespec *' -> 'struct timespec'), if the
    headers define it; else ''."""
    words = spelling.replace("*", " * ").split()
    if words[-1:] != ["*"] or "*" in words[:-1]:
        return ""
    name = " ".join(w for w in words[:-1] if w not in ("const", "volatile"))
    if not cdecl.has_aggregate(name, cache_dir, headers):
        return ""
    try:
        cdecl.aggregate_members(name, cache_dir, headers)
    except MrhookerError:   # DIR: a typedef of a struct the headers never define
        return ""
    return name
