"""The model: a C function's prototype reduced to what a trampoline forwards (CType, Param, Prototype), the
shapes of types with typedefs resolved, and how a shape is forwarded on this ABI.

Nothing here parses C (parse.py does, with pycparser): a warm start reads prototypes from the header database's
JSON form without importing the parser.
"""

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class CType:
    """A parameter or return type: how it is forwarded (kind, c) and how it was written (spelling)."""

    kind: str  # 'void', 'int', 'float', 'bytes' or 'pointer'
    c: str  # builtin C spelling with the same ABI, e.g. 'unsigned long' for size_t
    spelling: str  # as written, e.g. 'size_t'
    size: int  # sizeof on this machine, 0 for void
    signed: bool  # only for kind 'int'


@dataclass(frozen=True)
class Param:
    name: str
    type: CType


@dataclass(frozen=True)
class Prototype:
    name: str
    symbol: str
    ret: CType
    params: tuple
    variadic: bool
    extra: tuple
    text: str


# --------------------------------------------------------------------------------------------
# Type shapes
#
# A type with typedefs resolved, as nested tuples (JSON-friendly, so the header table caches):
#   ('scalar', builtin_name, is_const)   builtin_name is canonical: 'unsigned long', 'void', ...
#   ('pointer', target_shape)
#   ('array', element_shape)             decays to a pointer as a parameter
#   ('function',)                        decays to a pointer as a parameter
#   ('aggregate', 'struct' | 'union', tag)
#   ('unsupported', what)                e.g. '_Float128'; refused where it is passed by value

_FLOAT_NAMES = ("float", "double", "long double")


class _Unforwardable(Exception):
    """A well-formed prototype that mrhooker cannot forward; the message says why."""


class _BadDeclaration(Exception):
    """A prototype that is not valid C (or not a function); the message says what is wrong."""


class _UnknownType(_BadDeclaration):
    """A name used as a type that is no type: args[0] is the name."""


class _Refused(Exception):
    """A whole prototype that mrhooker cannot forward: args are its text and the reason."""


_BUILTIN_TYPE_WORDS = frozenset("void _Bool char short int long float double signed unsigned".split())


def _builtin_shape(words, const):
    """Shape of a type written with builtin keywords, e.g. ['long', 'unsigned', 'int']."""
    counts = {}
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    written = " ".join(words)
    if "_Complex" in counts or "_Imaginary" in counts:
        return ("unsupported", written)
    if "__int128" in counts:
        return ("unsupported", written)
    unknown = set(counts) - _BUILTIN_TYPE_WORDS
    if unknown:
        raise _BadDeclaration("invalid type '%s'" % written)
    signed, unsigned, longs = counts.get("signed", 0), counts.get("unsigned", 0), counts.get("long", 0)
    if (signed and unsigned) or signed > 1 or unsigned > 1 or longs > 2:
        raise _BadDeclaration("invalid type '%s'" % written)
    bases = [w for w in ("void", "_Bool", "char", "float", "double") if w in counts]
    if len(bases) > 1 or any(counts[w] > 1 for w in bases) or counts.get("int", 0) > 1:
        raise _BadDeclaration("invalid type '%s'" % written)
    base = bases[0] if bases else "int"
    if base in ("void", "_Bool", "float"):
        if len(words) != 1:
            raise _BadDeclaration("invalid type '%s'" % written)
        return ("scalar", base, const)
    if base == "double":
        if set(counts) - {"double", "long"} or longs > 1:
            raise _BadDeclaration("invalid type '%s'" % written)
        return ("scalar", "long double" if longs else "double", const)
    if base == "char":
        if set(counts) - {"char", "signed", "unsigned"}:
            raise _BadDeclaration("invalid type '%s'" % written)
        return ("scalar", "signed char" if signed else "unsigned char" if unsigned else "char", const)
    if "short" in counts:
        if counts["short"] > 1 or longs:
            raise _BadDeclaration("invalid type '%s'" % written)
        name = "short"
    elif longs == 2:
        name = "long long"
    elif longs == 1:
        name = "long"
    else:
        name = "int"
    return ("scalar", ("unsigned " + name) if unsigned else name, const)


def _tuples(value):
    """JSON lists back into shape tuples."""
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    return value


# --------------------------------------------------------------------------------------------
# How a shape is passed on this ABI (its sizes: headers.py reads them from the C compiler)

def _ctype(shape, spelling, abi, param):
    """How a value of this shape is forwarded, as a return value (param None) or a parameter."""

    def refusal(described, by_value):
        if param is None:
            action = "returns %s" % described
        else:
            action = "passes %s in parameter '%s'" % (described, param)
        return _Unforwardable(action + (" by value" if by_value else "") + ", which mrhooker cannot forward")

    what = shape[0]
    if param is not None and what in ("array", "function"):
        # Arrays and functions decay to pointers when passed.
        shape, what = ("pointer", shape[1] if what == "array" else shape), "pointer"
    if what == "pointer":
        if shape[1] == ("scalar", "char", True):
            return CType("bytes", "const char *", spelling, abi["pointer"], False)
        return CType("pointer", "void *", spelling, abi["pointer"], False)
    if what == "scalar":
        name = shape[1]
        if name == "void":
            if param is not None:
                raise _BadDeclaration("parameter '%s' has type void (only 'f(void)' may say void)" % param)
            return CType("void", "void", spelling, 0, False)
        if name in _FLOAT_NAMES:
            return CType("float", name, spelling, abi[name], False)
        if name in ("_Bool", "char", "signed char", "unsigned char"):
            size = 1
        else:
            size = abi[name[len("unsigned ") :] if name.startswith("unsigned ") else name]
        if name == "char":
            signed = abi["char_signed"]
        else:
            signed = not (name.startswith("unsigned ") or name == "_Bool")
        return CType("int", name, spelling, size, signed)
    if what == "aggregate":
        written = "%s %s" % (shape[1], shape[2]) if shape[2] else "an anonymous " + shape[1]
        described = spelling if spelling == written else "%s (%s)" % (spelling, written)
        raise refusal(described, by_value=True)
    if what == "opaque":   # a name no header declares, tried as an opaque struct: only behind a pointer
        raise _UnknownType(shape[1])
    if what == "unsupported":
        described = spelling if spelling == shape[1] else "%s (%s)" % (spelling, shape[1])
        raise refusal(described, by_value=False)
    raise _BadDeclaration(
        "function returns %s, which C does not allow" % ("an array" if what == "array" else "a function")
    )


def _abi_class(ctype):
    """How a value travels in registers: what two prototypes must agree on to call the same function."""
    if ctype.kind in ("bytes", "pointer"):
        return "a pointer"
    if ctype.kind == "float":
        return ctype.c
    if ctype.kind == "void":
        return "void"
    return "a %d-byte integer" % ctype.size


# --------------------------------------------------------------------------------------------
# The JSON form of a prototype, as the header database caches it

def _prototype_to_json(prototype):
    return dataclasses.asdict(prototype)


def _prototype_from_json(data):
    def param(item):
        return Param(item["name"], CType(**item["type"]))

    return Prototype(
        name=data["name"],
        symbol=data["symbol"],
        ret=CType(**data["ret"]),
        params=tuple(param(p) for p in data["params"]),
        variadic=data["variadic"],
        extra=tuple(param(p) for p in data["extra"]),
        text=data["text"],
    )
