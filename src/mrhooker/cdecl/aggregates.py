"""The members of structs and unions, for struct views: their shape here, their offsets and sizes from the
compiler (layouts.py), which is the only authority on a layout."""

import difflib
import re

from pycparser import c_ast, c_parser

from mrhooker.cdecl.headers import _databases_for
from mrhooker.cdecl.model import _BadDeclaration, _builtin_shape
from mrhooker.cdecl.tokens import _IDENTIFIERS_IN
from mrhooker.errors import MrhookerError

_MAX_NESTING = 12


def aggregate_members(name, cache_dir=None, headers=()):
    """The member tree of a struct, union or typedef of one, by its C name ('struct timespec', 'div_t'):
    {"type": name, "kind": "aggregate", "members": [member, ...]} where each member is a dict with its "name",
    its "path" (the member designator from the outer type: 'sin_addr.s_addr', 'a[0].b') and a "kind":
    'scalar', 'pointer' (with "pointee": the aggregate it points to, or ''), 'aggregate' (with "members"),
    'array' (with "element", a member whose path ends in [0], and "flexible"), 'bitfield' or 'opaque'. The
    members of an anonymous struct or union stand in its place, as C lets them be named."""
    name = " ".join(str(name).split())
    if not re.fullmatch(r"(?:(?:struct|union) )?[A-Za-z_]\w*", name):
        raise MrhookerError("bad type name %r: write 'struct NAME', 'union NAME' or a typedef's name" % name)
    database = None
    for database in _databases_for(cache_dir, headers):
        if name in database.aggregates or name in database.typedef_lines:
            break
    else:
        known = list(database.aggregates) + [n for n in database.typedef_lines if not n.startswith("_")]
        close = difflib.get_close_matches(name, known, n=3)
        raise MrhookerError("no struct or union known as '%s'%s" % (
            name, " (did you mean %s?)" % ", ".join("'%s'" % c for c in close) if close else ""))
    tree = _classify(_named_type(name, database), "", database, 0)
    if tree["kind"] != "aggregate":
        raise MrhookerError("'%s' is not a struct or union" % name)
    tree["type"] = name
    return tree


def _named_type(name, database):
    """The type node of an aggregate's definition, or of a typedef's, parsed from the text kept for it."""
    line = database.aggregates.get(name) or database.typedef_lines[name]
    own = name.split()[-1] if name in database.typedef_lines else None
    used = sorted((set(_IDENTIFIERS_IN.findall(line)) & set(database.typedefs)) - {own})
    ast = c_parser.CParser().parse("\n".join(["typedef int %s;" % n for n in used] + [line]))
    node = ast.ext[-1]
    return node.type


def _classify(node, path, database, depth):
    if depth > _MAX_NESTING:
        return {"kind": "opaque"}
    if isinstance(node, c_ast.PtrDecl):
        return {"kind": "pointer", "pointee": _aggregate_name(node.type, database)}
    if isinstance(node, c_ast.ArrayDecl):
        return {"kind": "array", "flexible": node.dim is None,
                "element": dict(_classify(node.type, path + "[0]", database, depth + 1), path=path + "[0]")}
    if isinstance(node, (c_ast.Struct, c_ast.Union)):
        if node.decls is not None:
            return {"kind": "aggregate", "members": _members(node.decls, path, database, depth + 1)}
        tag = "%s %s" % ("struct" if isinstance(node, c_ast.Struct) else "union", node.name)
        if node.name and tag in database.aggregates:
            return _classify(_named_type(tag, database), path, database, depth + 1)
        return {"kind": "opaque"}
    if isinstance(node, c_ast.TypeDecl):
        base = node.type
        if isinstance(base, (c_ast.Struct, c_ast.Union)):
            return _classify(base, path, database, depth)
        if isinstance(base, c_ast.Enum):
            return {"kind": "scalar"}
        if isinstance(base, c_ast.IdentifierType) and len(base.names) == 1 and base.names[0] in database.typedefs:
            typedef = base.names[0]
            if typedef in database.typedef_lines:
                return _classify(_named_type(typedef, database), path, database, depth + 1)
            shape = database.typedefs[typedef]
            if shape[0] == "scalar":
                return {"kind": "scalar"}
            if shape[0] == "pointer":
                return {"kind": "pointer", "pointee": ""}
            return {"kind": "opaque"}
        if isinstance(base, c_ast.IdentifierType):
            try:
                return {"kind": "scalar" if _builtin_shape(base.names, False)[0] == "scalar" else "opaque"}
            except _BadDeclaration:
                return {"kind": "opaque"}
    return {"kind": "opaque"}


def _aggregate_name(node, database):
    """The name of the aggregate a pointer points to ('struct timespec', 'div_t'), or ''."""
    if isinstance(node, c_ast.TypeDecl):
        base = node.type
        if isinstance(base, (c_ast.Struct, c_ast.Union)) and base.name:
            return "%s %s" % ("struct" if isinstance(base, c_ast.Struct) else "union", base.name)
        if isinstance(base, c_ast.IdentifierType) and len(base.names) == 1:
            shape = database.typedefs.get(base.names[0])
            if shape is not None and shape[0] == "aggregate":
                return base.names[0]
    return ""


def _members(decls, prefix, database, depth):
    members = []
    for decl in decls:
        if decl.name is None:   # an anonymous struct or union: its members are the outer one's
            inner = _classify(decl.type, prefix, database, depth)
            members.extend(inner.get("members", []))
            continue
        path = prefix + "." + decl.name if prefix else decl.name
        if decl.bitsize is not None:
            members.append({"name": decl.name, "path": path, "kind": "bitfield"})
            continue
        member = _classify(decl.type, path, database, depth)
        member.update(name=decl.name, path=path)
        members.append(member)
    return members
