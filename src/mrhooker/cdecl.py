"""C function prototypes, parsed into the few argument kinds mrhooker forwards.

A hook names its target either by a full prototype (``"int unlink(const char *pathname)"``) or by
a bare name (``"send"``).  Both become a Prototype whose types are reduced to what a
trampoline needs: a kind ('void', 'int', 'float', 'bytes', 'pointer'), a builtin C spelling that
passes the value in the same registers, and its size.  Names from the system headers work in
prototypes because the headers are preprocessed and parsed once (with pycparser), giving a table
of typedefs and every declared function; that result is cached in memory and, in the cache
directory the caller names (the build cache), as JSON on disk, keyed by a hash of the
preprocessed text.

Types mrhooker cannot forward are refused with a one-line MrhookerError: structs and
unions by value, ``_Complex``, ``__int128``, ``_FloatN``/``_FloatNx`` and vector types.

Variadic functions: the variable arguments can only be forwarded when we know what they are.
This table says which are forwarded (x86_64 and aarch64 pass an int and a pointer in the same
register, hence one 'unsigned long' for fcntl/ioctl):

    open, open64, openat, openat64   mode (unsigned int, mode_t)
    fcntl, fcntl64, ioctl            arg (unsigned long)
    prctl                            arg2, arg3, arg4, arg5 (unsigned long)
    syscall                          arg1 .. arg6 (long)
    sem_open                         mode (unsigned int, mode_t), value (unsigned int)
    mq_open                          mode (unsigned int, mode_t), attr (void *, struct mq_attr *)

Any other variadic function (printf, execl, ...) is refused with a hint to hook its va_list or
array variant (vprintf, execv, ...).  Such functions are absent from known_names(), but
looking one up by name raises that same hint.

Other choices worth knowing:

- ``f()`` is read as ``f(void)``, as in C23.
- Parameter names from the headers lose their reserved leading underscores (``__fd`` -> ``fd``);
  names that are Python keywords get a trailing underscore (``lambda`` -> ``lambda_``), unnamed
  parameters are called a0, a1, ...
- Glibc's transparent unions (``__CONST_SOCKADDR_ARG``) are passed as their first member, so a
  header prototype shows and forwards them as that pointer (``const struct sockaddr *``).
- Pointers to struct tags the headers never declare are accepted: an opaque pointer to a
  library's own struct is forwarded like any other pointer. So are pointers to type names no
  header declares (``SSL *``), unless the name is a typo of a known one (``chr *``, ``sizet *``:
  one letter off, or ``_t`` left off), which is refused with the suggestion.
"""

import copy
import dataclasses
import difflib
import hashlib
import json
import keyword
import os
import re
import stat
import threading
from dataclasses import dataclass
from typing import List, Optional

import pycparser
from pycparser import c_ast, c_generator, c_parser

from mrhooker import cache, toolchain
from mrhooker.errors import MrhookerError


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
# Variadic functions

_MODE = ("mode", "unsigned int", "mode_t")
_ARG = ("arg", "unsigned long", "unsigned long")
# name -> (number of fixed parameters, ((name, builtin C type, spelling), ...) after them)
_VARIADIC_EXTRA = {
    "open": (2, (_MODE,)),
    "open64": (2, (_MODE,)),
    "openat": (3, (_MODE,)),
    "openat64": (3, (_MODE,)),
    "fcntl": (2, (_ARG,)),
    "fcntl64": (2, (_ARG,)),
    "ioctl": (2, (_ARG,)),
    "prctl": (1, tuple(("arg%d" % i, "unsigned long", "unsigned long") for i in range(2, 6))),
    "syscall": (1, tuple(("arg%d" % i, "long", "long") for i in range(1, 7))),
    "sem_open": (2, (_MODE, ("value", "unsigned int", "unsigned int"))),
    "mq_open": (2, (_MODE, ("attr", "void *", "struct mq_attr *"))),
}

# Functions the runtime defines itself in every preload library (runtime/signals.c, preload.c) or calls on every
# path: not hookable or traceable, so not among the known names. Each with why, for the one-line refusal.
RUNTIME_SYMBOLS = {
    "sigaction": "mrhooker's runtime wraps it itself (signal handlers run their hooked calls unhooked)",
    "signal": "mrhooker's runtime wraps it itself (signal handlers run their hooked calls unhooked)",
    "vfork": "mrhooker's runtime wraps it itself (vfork runs as fork)",
    "__errno_location": "it is how mrhooker's runtime (and every program) reaches errno",
}


def runtime_refusal(name):
    """Why the function `name` can't be hooked or traced because the runtime owns it (one line), or None."""
    reason = RUNTIME_SYMBOLS.get(name)
    return "%s cannot be hooked or traced: %s" % (name, reason) if reason else None


# Variadic functions whose array-taking sibling is not simply 'v' + name.
_VARIADIC_ALTERNATIVE = {"execl": "execv", "execlp": "execvp", "execle": "execve"}


def _variadic_refusal(name, has_function):
    candidates = [_VARIADIC_ALTERNATIVE.get(name), "v" + name, re.sub(r"(printf|scanf)", r"v\1", name)]
    for alternative in candidates:
        if alternative and alternative != name and has_function(alternative):
            return "variadic function %s cannot be forwarded; hook %s instead" % (name, alternative)
    return (
        "variadic function %s cannot be forwarded (mrhooker knows the variable arguments of "
        "open, openat, fcntl, ioctl, prctl, syscall, sem_open and mq_open only)" % name
    )


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

# Names gcc predefines that pycparser does not know, so they are declared as typedefs before
# parsing; their shapes come from this table.
_BUILTIN_TYPEDEFS = {
    # x86_64: va_list is 'struct __va_list_tag[1]', so it decays to a pointer when passed.
    # (aarch64's 32-byte struct is passed by address too, so the pointer is right there as well.)
    "__builtin_va_list": ("array", ("aggregate", "struct", "__va_list_tag")),
    "__int128_t": ("unsupported", "__int128"),
    "__uint128_t": ("unsupported", "unsigned __int128"),
    "__float128": ("unsupported", "__float128"),
    "__float80": ("unsupported", "__float80"),
    "__ibm128": ("unsupported", "__ibm128"),
    "__bf16": ("unsupported", "__bf16"),
    "_Decimal32": ("unsupported", "_Decimal32"),
    "_Decimal64": ("unsupported", "_Decimal64"),
    "_Decimal128": ("unsupported", "_Decimal128"),
}
for _bits in ("16", "32", "64", "128"):
    _BUILTIN_TYPEDEFS["_Float" + _bits] = ("unsupported", "_Float" + _bits)
    _BUILTIN_TYPEDEFS["_Float" + _bits + "x"] = ("unsupported", "_Float" + _bits + "x")
del _bits


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


def _with_const(shape):
    # Only a const scalar matters (the 'const char' in 'const char *'); other qualifiers are
    # irrelevant to how a value is passed.
    if shape[0] == "scalar":
        return ("scalar", shape[1], True)
    return shape


def _shape(node, typedefs):
    """The shape of a pycparser type node."""
    if isinstance(node, c_ast.TypeDecl):
        const = "const" in node.quals
        base = node.type
        if isinstance(base, c_ast.IdentifierType):
            if len(base.names) == 1 and base.names[0] in typedefs:
                shape = typedefs[base.names[0]]
                return _with_const(shape) if const else shape
            return _builtin_shape(base.names, const)
        if isinstance(base, c_ast.Struct):
            return ("aggregate", "struct", base.name or "")
        if isinstance(base, c_ast.Union):
            return ("aggregate", "union", base.name or "")
        if isinstance(base, c_ast.Enum):
            # gcc makes an enum 'unsigned int' when no value is negative: same size and register.
            return ("scalar", "int", const)
    elif isinstance(node, c_ast.PtrDecl):
        return ("pointer", _shape(node.type, typedefs))
    elif isinstance(node, c_ast.ArrayDecl):
        return ("array", _shape(node.type, typedefs))
    elif isinstance(node, c_ast.FuncDecl):
        return ("function",)
    raise _BadDeclaration("unrecognized type")


def _tuples(value):
    """JSON lists back into shape tuples."""
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    return value


# --------------------------------------------------------------------------------------------
# The ABI: sizes as the C compiler sees them (its predefined macros), read in the same cc run.

_ABI_MARKER = "__mrhooker_abi__"
_ABI_MACROS = (
    ("short", "__SIZEOF_SHORT__"),
    ("int", "__SIZEOF_INT__"),
    ("long", "__SIZEOF_LONG__"),
    ("long long", "__SIZEOF_LONG_LONG__"),
    ("float", "__SIZEOF_FLOAT__"),
    ("double", "__SIZEOF_DOUBLE__"),
    ("long double", "__SIZEOF_LONG_DOUBLE__"),
    ("pointer", "__SIZEOF_POINTER__"),
)


def _abi_source_line():
    return " ".join([_ABI_MARKER] + [macro for _, macro in _ABI_MACROS] + ["__CHAR_UNSIGNED__"])


def _read_abi(preprocessed):
    match = re.search(r"^%s ([^\n]*)$" % _ABI_MARKER, preprocessed, re.M)
    if match is None:
        raise MrhookerError("cannot read type sizes from the C compiler's preprocessor output")
    words = match.group(1).split()
    try:
        sizes = [int(word) for word in words[: len(_ABI_MACROS)]]
    except ValueError:
        raise MrhookerError("cannot read type sizes from the C compiler's preprocessor output")
    abi = {name: size for (name, _), size in zip(_ABI_MACROS, sizes)}
    abi["char_signed"] = words[-1] != "1"
    return abi


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


# --------------------------------------------------------------------------------------------
# Tokens: GNU extensions are removed or renamed before pycparser sees the text.

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<string>L?"(?:[^"\\\n]|\\.)*")
    | (?P<char>L?'(?:[^'\\\n]|\\.)*')
    | (?P<word>[A-Za-z_$][A-Za-z0-9_$]*)
    | (?P<number>\.?[0-9](?:[eEpP][+-]|[A-Za-z0-9_.])*)
    | (?P<punct>\.\.\.|<<=|>>=|->|\+\+|--|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^]=|[^\s])
    """,
    re.X | re.S,
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_IDENTIFIERS_IN = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")

# GNU spellings -> what pycparser understands; None drops the token (no effect on the ABI).
_RESPELL = {
    "__restrict": None,
    "__restrict__": None,
    "restrict": None,
    "__extension__": None,
    "__inline": "inline",
    "__inline__": "inline",
    "__signed": "signed",
    "__signed__": "signed",
    "__const": "const",
    "__const__": "const",
    "__volatile": "volatile",
    "__volatile__": "volatile",
    "__alignof": "_Alignof",
    "__alignof__": "_Alignof",
    "__thread": "_Thread_local",
    "__complex__": "_Complex",
}
_ATTRIBUTE_WORDS = ("__attribute__", "__attribute")
_ASM_WORDS = ("__asm__", "__asm", "asm")
# Attributes that change how a typedef'd value is passed, so they must not just be dropped.
_TYPE_CHANGING_ATTRIBUTES = ("transparent_union", "vector_size", "mode")


def _tokenize(text):
    return [m.group() for m in _TOKEN.finditer(text) if m.lastgroup != "space"]


@dataclass
class _Chunk:
    """One top-level declaration (or definition) of the token stream."""

    tokens: List[str]
    kind: str  # 'typedef', 'declaration' (has a parenthesis at top level), 'definition', 'other'
    symbol: Optional[str]  # the __asm__("...") label, if any
    attributes: frozenset  # the type-changing attributes seen at top level


def _matching_paren(tokens, start):
    """Index just past the ')' matching the '(' at tokens[start] (start itself if it is no '(')."""
    if start >= len(tokens) or tokens[start] != "(":
        return start
    depth = 0
    for index in range(start, len(tokens)):
        if tokens[index] == "(":
            depth += 1
        elif tokens[index] == ")":
            depth -= 1
            if depth == 0:
                return index + 1
    return len(tokens)


class _PendingChunk:
    """The declaration being collected by _split_declarations."""

    def __init__(self):
        self.tokens = []
        self.symbol = None
        self.attributes = set()
        self.is_typedef = self.has_paren = self.has_body = False

    def chunk(self):
        if not self.tokens or self.tokens == [";"]:
            return None
        if self.has_body:
            kind = "definition"
        elif self.is_typedef:
            kind = "typedef"
        elif self.has_paren:
            kind = "declaration"
        else:
            kind = "other"
        return _Chunk(self.tokens, kind, self.symbol, frozenset(self.attributes))


def _split_declarations(tokens):
    """Top-level declarations, with GNU attributes and asm labels taken out (and noted)."""
    chunks = []
    pending = _PendingChunk()
    depth = 0
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token in _ATTRIBUTE_WORDS or token in _ASM_WORDS:
            end = _matching_paren(tokens, index + 1)
            inner = tokens[index + 2 : end - 1]
            if depth == 0 and token in _ASM_WORDS:
                pending.symbol = "".join(t[1:-1] for t in inner if t.startswith('"'))
            elif depth == 0:
                pending.attributes.update(
                    w.strip("_") for w in inner if w.strip("_") in _TYPE_CHANGING_ATTRIBUTES
                )
            index = max(end, index + 1)
            continue
        index += 1
        if token in _RESPELL:
            token = _RESPELL[token]
            if token is None:
                continue
        if depth == 0:
            if token == "typedef":
                pending.is_typedef = True
            elif token == "(":
                pending.has_paren = True
            elif token == "{" and pending.tokens and pending.tokens[-1] == ")":
                pending.has_body = True
        pending.tokens.append(token)
        if token in ("(", "[", "{"):
            depth += 1
        elif token in (")", "]", "}"):
            depth = max(depth - 1, 0)
        if depth == 0 and (token == ";" or (token == "}" and pending.has_body)):
            chunk = pending.chunk()
            if chunk is not None:
                chunks.append(chunk)
            pending = _PendingChunk()
    chunk = pending.chunk()
    if chunk is not None:
        chunks.append(chunk)
    return chunks


def _chunk_line(chunk):
    line = " ".join(chunk.tokens)
    return line if line.endswith((";", "}")) else line + " ;"


# --------------------------------------------------------------------------------------------
# Rendering declarations back to text

_GENERATOR = c_generator.CGenerator()


def _tidy(text):
    text = " ".join(text.split())
    text = re.sub(r"\* (?=const|volatile|\*)", "*", text)
    text = re.sub(r"\( ", "(", text)
    return re.sub(r" \)", ")", text)


def _innermost_typedecl(node):
    while not isinstance(node, c_ast.TypeDecl):
        node = node.type
    return node


def _spelling(type_node):
    """The type as written, without a name: 'const char *', 'void (*)(int)'."""
    typedecl = _innermost_typedecl(type_node)
    saved, typedecl.declname = typedecl.declname, None
    try:
        return _tidy(_GENERATOR.visit(c_ast.Typename(None, [], None, type_node)))
    finally:
        typedecl.declname = saved


def _render(name, functype):
    return _tidy(_GENERATOR.visit(c_ast.Decl(name, [], [], [], [], functype, None, None)))


# --------------------------------------------------------------------------------------------
# Declarations -> Prototype

# Predefined as macros by gcc in its default GNU modes, so unusable as C parameter names.
_PREDEFINED_MACROS = ("linux", "unix", "i386")


def _param_names(raw_names, from_header):
    """Usable, distinct names: declared ones kept (headers' '__' dropped), a0.. for unnamed."""
    names = []
    for raw in raw_names:
        name = raw
        if name is not None and from_header:
            name = name.lstrip("_")
        if not name or not _IDENTIFIER.match(name):
            name = None
        elif keyword.iskeyword(name) or name in _PREDEFINED_MACROS:
            name += "_"
        names.append(name)
    used = set()
    result = []
    for name in names:
        if name is not None:
            while name in used:
                name += "_"
            used.add(name)
        result.append(name)
    for index, name in enumerate(result):
        if name is None:
            name = "a%d" % index
            while name in used:
                name += "_"
            used.add(name)
            result[index] = name
    return result


def _prototype_from_decl(
    decl,
    typedefs,
    abi,
    has_function,
    symbol,
    from_header,
):
    """The prototype of a function declaration; raises _Refused or _BadDeclaration."""
    functype = decl.type
    name = decl.name
    params = list(functype.args.params) if functype.args is not None else []
    variadic = bool(params) and isinstance(params[-1], c_ast.EllipsisParam)
    if variadic:
        params.pop()
    for param in params:
        if isinstance(param, c_ast.ID):
            # pycparser reads 'f(foo_t)' as an old-style identifier list when foo_t is no type.
            raise _UnknownType(param.name)
    if (
        len(params) == 1
        and not variadic
        and isinstance(params[0], c_ast.Typename)
        and isinstance(params[0].type, c_ast.TypeDecl)
        and isinstance(params[0].type.type, c_ast.IdentifierType)
        and params[0].type.type.names == ["void"]
        and not params[0].type.quals
    ):
        params = []
    names = _param_names([getattr(p, "name", None) for p in params], from_header)
    for param, param_name in zip(params, names):
        _innermost_typedecl(param.type).declname = param_name
        if isinstance(param, c_ast.Decl):
            param.name = param_name
    if functype.args is None:
        functype.args = c_ast.ParamList([])
    functype.args.params = params + ([c_ast.EllipsisParam()] if variadic else [])
    if not params and not variadic:
        # Render 'f(void)' rather than 'f()'.
        functype.args.params = [
            c_ast.Typename(None, [], None, c_ast.TypeDecl(None, [], None, c_ast.IdentifierType(["void"])))
        ]
    text = _render(name, functype)
    try:
        ret = _ctype(_shape(functype.type, typedefs), _spelling(functype.type), abi, None)
        forwarded = tuple(
            Param(param_name, _ctype(_shape(param.type, typedefs), _spelling(param.type), abi, param_name))
            for param, param_name in zip(params, names)
        )
        extra = ()
        if variadic:
            if name not in _VARIADIC_EXTRA:
                raise _Unforwardable(_variadic_refusal(name, has_function))
            fixed, extras = _VARIADIC_EXTRA[name]
            if len(params) != fixed:
                raise _BadDeclaration(
                    "variadic function %s takes %d fixed parameter%s before '...', not %d"
                    % (name, fixed, "" if fixed == 1 else "s", len(params))
                )
            used = set(names)
            extra_params = []
            for extra_name, c_name, spelling in extras:
                while extra_name in used:
                    extra_name += "_"
                used.add(extra_name)
                shape = (
                    ("pointer", ("scalar", "void", False))
                    if c_name == "void *"
                    else ("scalar", c_name, False)
                )
                extra_params.append(Param(extra_name, _ctype(shape, spelling, abi, extra_name)))
            extra = tuple(extra_params)
    except _Unforwardable as error:
        raise _Refused(text, str(error))
    return Prototype(name, symbol, ret, forwarded, variadic, extra, text)


# --------------------------------------------------------------------------------------------
# The database of the system headers

_HEADERS = (
    "stdio.h stdlib.h string.h strings.h unistd.h fcntl.h sys/stat.h sys/types.h sys/socket.h "
    "netdb.h arpa/inet.h netinet/in.h sys/time.h time.h sys/wait.h signal.h dirent.h sys/mman.h "
    "sys/uio.h poll.h sys/select.h sys/epoll.h sys/ioctl.h dlfcn.h pthread.h sys/resource.h "
    "sys/utsname.h pwd.h grp.h spawn.h sys/random.h sys/sendfile.h sys/statvfs.h utime.h "
    "termios.h locale.h sched.h semaphore.h sys/file.h sys/prctl.h mqueue.h sys/xattr.h "
    "errno.h stdarg.h sys/inotify.h sys/eventfd.h sys/timerfd.h sys/signalfd.h sys/sysinfo.h "
    "sys/statfs.h sys/mount.h sys/un.h ifaddrs.h net/if.h glob.h fnmatch.h libgen.h syslog.h "
    "sys/shm.h sys/sem.h sys/msg.h getopt.h ftw.h wchar.h ctype.h inttypes.h err.h error.h "
    "sys/auxv.h malloc.h execinfo.h link.h pty.h sys/times.h shadow.h sys/pidfd.h threads.h "
    "sys/ptrace.h utmp.h sys/personality.h sys/fsuid.h sys/reboot.h sys/swap.h langinfo.h "
    "iconv.h sys/sysmacros.h math.h fenv.h wctype.h regex.h wordexp.h aio.h sys/ipc.h sys/timex.h "
    "netinet/tcp.h search.h mntent.h crypt.h sys/vfs.h nl_types.h sys/klog.h sys/acct.h "
    "sys/quota.h argz.h envz.h monetary.h sys/timeb.h"
).split()
# Libraries' headers, read (when installed) only for a name or type the headers above lack, with any the user
# names (-H, the config file's `headers`): parsing them costs seconds, once per cache directory.
LIBRARY_HEADERS = ("openssl/ssl.h openssl/err.h openssl/evp.h openssl/hmac.h openssl/rand.h zlib.h "
                   "sqlite3.h").split()

# Bump when the database layout or its parsing changes, so old cache files are rebuilt.
_SCHEMA = 3
_BATCH = 400  # declarations per pycparser run: a failure then re-parses only its batch

_lock = threading.RLock()
_databases = {}
# How often the headers were parsed by pycparser / loaded from a cache file in this process
# (tests check that a cache file really spares the parse).
_stats = {"header_parses": 0, "cache_file_loads": 0}


class _Database:
    """What the headers declare: typedef shapes, prototypes and refusals, by name."""

    def __init__(self, data):
        self.data = data  # the JSON form, kept to write it to a cache directory set later
        self.abi = data["abi"]
        self.typedefs = {name: _tuples(shape) for name, shape in data["typedefs"].items()}
        self.functions = data["functions"]  # name -> JSON form of a Prototype
        self.refused = data["refused"]  # name -> one-line message
        self.aggregates = data["aggregates"]  # 'struct tag' / 'union tag' -> its definition's text
        self.typedef_lines = data["typedef_lines"]  # typedef of an aggregate or array -> its text
        self._prototypes = {}
        self.saved_in = set()  # cache directories known to hold this database

    def has_function(self, name):
        return name in self.functions or name in self.refused

    def prototype(self, name):
        prototype = self._prototypes.get(name)
        if prototype is None and name in self.functions:
            prototype = _prototype_from_json(self.functions[name])
            self._prototypes[name] = prototype
        return prototype


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


def _include_line(header):
    """The #include of a header named as on an include line (zlib.h) or by its path (./api.h, /x/api.h). A
    library's header that isn't installed is skipped; a user's that can't be found is an error."""
    if os.sep in header and (header.startswith(".") or os.path.isabs(header)):
        return '#include "%s"\n' % os.path.abspath(header)
    if header not in _HEADERS and header not in LIBRARY_HEADERS:
        return "#include <%s>\n" % header
    return "#if __has_include(<%s>)\n#include <%s>\n#endif\n" % (header, header)


def _preprocess(compiler, headers=None, extra=(), defines=()):
    for header in extra:
        if '"' in header or "\n" in header or not header.strip():
            raise MrhookerError("bad header name %r" % header)
    source = "".join(_include_line(h) for h in list(_HEADERS) + list(extra))
    source += _abi_source_line() + "\n"
    return toolchain.preprocess(source, ["-D_GNU_SOURCE"] + list(defines), compiler, headers)


def _large_file_twins(compiler, extra, functions):
    """{name: twin} for the functions whose name the headers bind to another symbol in a program built with
    large-file support (-D_FILE_OFFSET_BITS=64, as Python, SQLite and much of a distribution are): open ->
    open64, fcntl -> fcntl64, readdir_r -> readdir64_r. The headers' own asm labels say so; both names must be
    known functions."""
    twins = {}
    for chunk in _split_declarations(_tokenize(_preprocess(compiler, None, extra, ["-D_FILE_OFFSET_BITS=64"]))):
        if chunk.kind != "declaration" or not chunk.symbol or "(" not in chunk.tokens:
            continue
        name = chunk.tokens[chunk.tokens.index("(") - 1]
        if name in functions and chunk.symbol in functions and chunk.symbol != functions[name]["symbol"]:
            twins[name] = chunk.symbol
    return twins


_ERROR_LINE = re.compile(r":(\d+):(?:\d+:)? ")


def _parse_lines(
    parser, lines, typedef_names
):
    """Parse declarations, one per line; returns (line index, node) and skips lines that fail.

    typedef_names are the names declared by earlier lines; each run declares the ones it uses.
    """
    if not lines:
        return []
    used = set(_IDENTIFIERS_IN.findall("\n".join(lines))) & typedef_names
    prefix = ["typedef int %s;" % name for name in sorted(used)]
    try:
        ast = parser.parse("\n".join(prefix + lines))
    except c_parser.ParseError as error:
        match = _ERROR_LINE.search(str(error))
        bad = int(match.group(1)) - len(prefix) - 1 if match else -1
        if 0 <= bad < len(lines):
            before = _parse_lines(parser, lines[:bad], typedef_names)
            before += _unparsed_typedef(bad, lines[bad])
            names = typedef_names | _typedef_names(node for _, node in before)
            after = _parse_lines(parser, lines[bad + 1 :], names)
            return before + [(bad + 1 + i, node) for i, node in after]
        if len(lines) == 1:
            return _unparsed_typedef(0, lines[0])
        half = len(lines) // 2
        before = _parse_lines(parser, lines[:half], typedef_names)
        names = typedef_names | _typedef_names(node for _, node in before)
        return before + [(half + i, node) for i, node in _parse_lines(parser, lines[half:], names)]
    return [(node.coord.line - len(prefix) - 1, node) for node in ast.ext[len(prefix) :]]


def _unparsed_typedef(index, line):
    """For a typedef pycparser rejects, a stand-in without a type, found by a guess at its name.

    Without it, every later declaration using the name would fail to parse too.
    """
    if not line.startswith("typedef "):
        return []
    match = re.search(r"\( \* ([A-Za-z_]\w*) \)", line)  # typedef int (*name)(...);
    if match is None:
        match = re.search(r"([A-Za-z_]\w*) (?:\[[^]]*\] )*;$", line)  # typedef ... name[...];
    if match is None:
        return []
    return [(index, c_ast.Typedef(match.group(1), [], ["typedef"], None))]


def _typedef_names(nodes):
    return {node.name for node in nodes if isinstance(node, c_ast.Typedef)}


def _build_database(preprocessed):
    abi = _read_abi(preprocessed)
    text = re.sub(r"^%s [^\n]*$" % _ABI_MARKER, "", preprocessed, flags=re.M)
    # Only typedefs and function declarations are parsed: not variables, nor inline function bodies (GNU
    # code). Struct and union definitions are kept as text, parsed only when a struct view needs one.
    every = _split_declarations(_tokenize(text))
    aggregates = {}
    for c in every:
        if (c.kind == "other" and len(c.tokens) > 3 and c.tokens[0] in ("struct", "union")
                and _IDENTIFIER.match(c.tokens[1]) and c.tokens[2] == "{"):
            aggregates.setdefault("%s %s" % (c.tokens[0], c.tokens[1]), _chunk_line(c))
    chunks = [c for c in every if c.kind in ("typedef", "declaration")]
    lines = [_chunk_line(c) for c in chunks]
    parser = c_parser.CParser()
    typedef_names = set(_BUILTIN_TYPEDEFS)
    parsed = []
    for start in range(0, len(lines), _BATCH):
        batch = _parse_lines(parser, lines[start : start + _BATCH], typedef_names)
        typedef_names |= _typedef_names(node for _, node in batch)
        parsed.extend((start + index, node) for index, node in batch)

    typedefs = dict(_BUILTIN_TYPEDEFS)
    typedef_lines = {}  # typedef name -> its declaration, for those that name an aggregate or an array
    transparent = {}  # typedef name -> its union's first member type
    declarations = {}
    for index, node in parsed:
        chunk = chunks[index]
        if isinstance(node, c_ast.Typedef):
            if node.name in typedefs:
                continue
            try:
                if node.type is None:
                    typedefs[node.name] = ("unsupported", "a type mrhooker cannot parse")
                elif "transparent_union" in chunk.attributes:
                    union = node.type.type
                    member = union.decls[0].type
                    transparent[node.name] = member
                    typedefs[node.name] = _shape(member, typedefs)
                elif "vector_size" in chunk.attributes:
                    typedefs[node.name] = ("unsupported", "a vector type")
                elif "mode" in chunk.attributes:
                    typedefs[node.name] = ("unsupported", "a type with a mode attribute")
                else:
                    typedefs[node.name] = _shape(node.type, typedefs)
                    if typedefs[node.name][0] in ("aggregate", "array"):
                        typedef_lines[node.name] = lines[index]
            except (_BadDeclaration, AttributeError, IndexError, TypeError):
                typedefs[node.name] = ("unsupported", "an unrecognized type")
        elif isinstance(node, c_ast.Decl) and isinstance(node.type, c_ast.FuncDecl):
            symbol = chunk.symbol or node.name
            if node.name not in declarations:
                declarations[node.name] = (node, symbol)
            elif chunk.symbol:
                # A later redeclaration with an asm label renames the symbol (gcc's rule).
                declarations[node.name] = (declarations[node.name][0], symbol)

    functions, refused = {}, {}
    for name, (decl, symbol) in declarations.items():
        functype = decl.type
        if functype.args is not None:
            for param in functype.args.params:
                base = getattr(param, "type", None)
                if (
                    isinstance(base, c_ast.TypeDecl)
                    and isinstance(base.type, c_ast.IdentifierType)
                    and len(base.type.names) == 1
                    and base.type.names[0] in transparent
                ):
                    param.type = copy.deepcopy(transparent[base.type.names[0]])
        try:
            prototype = _prototype_from_decl(
                decl, typedefs, abi, lambda n: n in declarations, symbol, from_header=True
            )
        except _Refused as error:
            text, reason = error.args
            refused[name] = "prototype '%s': %s" % (text, reason)
            continue
        except (_BadDeclaration, AttributeError, KeyError, TypeError):
            continue  # something pycparser parsed that is not a usable declaration
        functions[name] = _prototype_to_json(prototype)
    return {"abi": abi, "typedefs": typedefs, "functions": functions, "refused": refused,
            "aggregates": aggregates, "typedef_lines": typedef_lines}


def _usable_cache_dir(path):
    """path, if it may hold the cache (the same rule as for the builds beside it); else None."""
    if path is None:
        return None
    try:
        if not stat.S_ISDIR(os.stat(path).st_mode):
            return None
        return cache.check_private(os.fspath(path), "cache directory")
    except (OSError, MrhookerError):
        return None


def _cache_file(directory, extra):
    if not extra:
        return os.path.join(directory, "cdecl-headers.json")
    named = hashlib.sha256("\0".join(os.path.abspath(h) if os.path.isabs(h) or h.startswith(".") else h
                                     for h in extra).encode()).hexdigest()[:16]
    return os.path.join(directory, "cdecl-headers-%s.json" % named)


def _load_cache(directory, extra, key=None):
    """The cached database in directory (with that key, if given), or None."""
    try:
        with open(_cache_file(directory, extra), encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema") != _SCHEMA or (key is not None and data.get("key") != key):
        return None
    return data


def _write_cache(directory, extra, data):
    try:
        cache.write_atomic(_cache_file(directory, extra), json.dumps(data, separators=(",", ":")))
    except OSError:
        pass  # the cache only saves time


def _header_stamps(files):
    """{path: [size, mtime_ns]} of every header the preprocessor read and of their directories (a header
    installed since, found by `__has_include`, changes its directory)."""
    stamps = {}
    for path in files | {os.path.dirname(f) for f in files}:
        try:
            st = os.stat(path)
        except OSError:
            continue
        stamps[path] = [st.st_size, st.st_mtime_ns]
    return stamps


def _unchanged_headers(data, compiler):
    """Does a cached database still hold, judged without preprocessing: the same compiler (its identity) and
    every header it was read from unchanged (size, mtime)? Saves the ~0.1 s `cc -E` on every run."""
    stamps = data.get("headers")
    if not isinstance(stamps, dict) or not stamps or data.get("compiler") != _compiler_identity(compiler):
        return False
    for path, stamp in stamps.items():
        try:
            st = os.stat(path)
        except OSError:
            return False
        if [st.st_size, st.st_mtime_ns] != stamp:
            return False
    return True


def _compiler_identity(compiler):
    # the list of headers too: a header added to it is a database to read again, though no header changed
    return "%d\0%s\0%s\0%s\0%s" % (_SCHEMA, pycparser.__version__, " ".join(compiler),
                                   toolchain.tool_identity(compiler[0]), " ".join(_HEADERS))


def _database(cache_dir=None, extra=()):
    """The header database for the C compiler in use, of the system headers and the `extra` ones: from memory,
    else from cache_dir's file (when its headers are unchanged, or the preprocessed headers give its key), else
    parsed (and then written to cache_dir, when it is given and private)."""
    with _lock:
        compiler = toolchain.c_compiler()
        extra = tuple(extra)
        database = _databases.get((compiler, extra))
        directory = _usable_cache_dir(cache_dir)
        if database is not None:
            if directory is not None and directory not in database.saved_in:
                # A database this process has already: saved for the next process, once per directory.
                if _load_cache(directory, extra, database.data["key"]) is None:
                    _write_cache(directory, extra, database.data)
                database.saved_in.add(directory)
            return database
        data = _load_cache(directory, extra) if directory is not None else None
        if data is not None and _unchanged_headers(data, compiler):
            _stats["cache_file_loads"] += 1
        else:
            headers = set()
            preprocessed = _preprocess(compiler, headers, extra)
            key = hashlib.sha256(
                # pycparser's version too: its generator spells the types in the prototypes' text.
                ("%d\0%s\0%s\0%s" % (_SCHEMA, pycparser.__version__, " ".join(compiler), preprocessed)).encode()
            ).hexdigest()
            if data is not None and data.get("key") == key:
                _stats["cache_file_loads"] += 1
            else:
                data = _build_database(preprocessed)
                data["large_file_twins"] = _large_file_twins(compiler, extra, data["functions"])
                _stats["header_parses"] += 1
                data["schema"], data["key"] = _SCHEMA, key
            data["headers"], data["compiler"] = _header_stamps(headers), _compiler_identity(compiler)
            if directory is not None:
                _write_cache(directory, extra, data)
        database = _Database(data)
        if directory is not None:
            database.saved_in.add(directory)
        _databases[(compiler, extra)] = database
        return database


def database_key(cache_dir=None):
    """What identifies the system headers' database (a hash of the preprocessed headers)."""
    return _database(cache_dir).data["key"]


def include_source(headers=()):
    """The #include lines of every header the databases read: the system's, the libraries', the user's."""
    return "".join(_include_line(h) for h in list(_HEADERS) + list(LIBRARY_HEADERS) + list(headers))


def has_aggregate(name, cache_dir=None, headers=()):
    """Do the headers define a struct, union or typedef of one by this name? (The libraries' headers only if
    they have been read already: a pointer parameter's type alone doesn't make them worth reading.)"""
    extended = (toolchain.c_compiler(), tuple(LIBRARY_HEADERS) + tuple(headers))
    for database in [_database(cache_dir)] + ([_databases[extended]] if extended in _databases else []):
        if name in database.aggregates or name in database.typedef_lines:
            return True
    return False


def _databases_for(cache_dir, headers):
    """The databases to look a name up in, in order, each made only when asked for: the system headers', then
    theirs with the libraries' and the user's headers."""
    yield _database(cache_dir)
    yield _database(cache_dir, tuple(LIBRARY_HEADERS) + tuple(headers))


def _forget_databases():
    """Drop the in-memory databases (for tests: the next use loads from disk or parses)."""
    with _lock:
        _databases.clear()


# --------------------------------------------------------------------------------------------
# Public entry points

_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if "
    "inline int long register restrict return short signed sizeof static struct switch typedef "
    "union unsigned void volatile while _Alignas _Alignof _Atomic _Bool _Complex _Generic "
    "_Imaginary _Noreturn _Static_assert _Thread_local __int128".split()
)


def _one_line(text):
    return " ".join(text.split())


def _uses_type_name(node, name):
    if isinstance(node, c_ast.IdentifierType):
        return name in node.names
    return any(_uses_type_name(child, name) for _, child in node.children())


_QUALIFIERS = frozenset(("const", "volatile", "extern", "static", "inline", "_Noreturn"))


def _find_unknown_type(parser, tokens, typedefs):
    """The first unknown identifier standing where a type name goes, if declaring it fixes the parse.

    Such a place: at the start, after '(' ',' or a qualifier, and followed by a name or '*'
    ('foo_t x', 'foo_t *p'); or starting a parameter, followed by ',' ')' or '('
    ('(foo_t)', ', foo_t (*cb)(int)').
    """
    known = set(typedefs)
    candidates = []
    for index, token in enumerate(tokens):
        if not _IDENTIFIER.match(token) or token in _C_KEYWORDS or token in known:
            continue
        before = tokens[index - 1] if index else ""
        after = tokens[index + 1] if index + 1 < len(tokens) else ";"
        if before not in ("", "(", ",") and before not in _QUALIFIERS:
            continue
        if after == "*" or _IDENTIFIER.match(after) or (before in ("(", ",") and after in (",", ")", "(")):
            if token not in candidates:
                candidates.append(token)
    if not candidates:
        return None
    prefix = ["typedef int %s;" % name for name in sorted(set(tokens) & known) + candidates]
    try:
        ast = parser.parse("\n".join(prefix + [" ".join(tokens) + " ;"]))
    except c_parser.ParseError:
        return None
    for name in candidates:
        if any(_uses_type_name(node, name) for node in ast.ext[len(prefix) :]):
            return name
    return None


# What a type name can be besides a typedef: the words C builds types of (a misspelt keyword, 'stuct', ends up
# where a type name goes too).
_TYPE_WORDS = ("void", "char", "short", "int", "long", "float", "double", "signed", "unsigned", "_Bool", "struct",
               "union", "enum", "const")


def _edits(a, b):
    """Letters added, dropped, changed or two neighbours swapped to make a into b (optimal string alignment)."""
    previous2, previous = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]


def _typo_of(name, database):
    """The known type names that `name`, unknown, is most likely a typo of: one letter added, dropped, changed,
    or two swapped, the first one kept (letter case aside), or '_t' left off: 'chr', 'sizet', 'uint23_t',
    'stuct', 'FILe', 'pid'. A library's own type names ('lua_State', 'ctx_t', 'node_t') are rarely so close
    to the system's."""
    lower = name.lower()
    near = {}
    for known in _TYPE_WORDS + tuple(n for n in database.typedefs if not n.startswith("_")):
        if known == name + "_t":
            near[known] = 2
        elif known[:1].lower() == lower[:1] and abs(len(known) - len(name)) <= 1:
            distance = _edits(lower, known.lower())
            if distance <= 1:
                near[known] = distance
    return sorted(near, key=lambda known: (near[known], known))[:3]


def _unknown_type_message(name, database, behind_pointer=False):
    public = [n for n in database.typedefs if not n.startswith("_")]
    close = _typo_of(name, database) or difflib.get_close_matches(name, public, n=3)
    hint = " (did you mean %s?)" % ", ".join("'%s'" % c for c in close) if close else ""
    if behind_pointer:
        hint += "; a pointer to a type no header declares is written 'void *' or 'struct %s *'" % name
    return "unknown type name '%s'%s" % (name, hint)


def _syntax_message(error):
    message = re.sub(r"^[^:]*(:\d+)*: ", "", str(error)).strip()
    match = re.match(r"before: (.*)$", message)
    if match:
        return "unexpected '%s'" % match.group(1)
    if message == "At end of input":
        return "unexpected end of input"
    return message[:1].lower() + message[1:]


def _bracket_problem(tokens):
    pairs = {")": "(", "]": "[", "}": "{"}
    closing = {v: k for k, v in pairs.items()}
    stack = []
    for token in tokens:
        if token in closing:
            stack.append(token)
        elif token in pairs:
            if not stack or stack[-1] != pairs[token]:
                return "unexpected '%s'" % token
            stack.pop()
    if stack:
        return "expected '%s' at end of input" % closing[stack[-1]]
    return None


def parse_prototype(text, cache_dir=None, headers=()):
    """Parse one C function declaration; names from the system headers may be used in it, and the libraries'
    (LIBRARY_HEADERS, headers), read only when the system headers lack a name used. A name no header declares,
    used only behind a pointer (`SSL *`), is an opaque pointer."""
    return _parse_prototype(text, cache_dir, headers)[0]


def _parse_prototype(text, cache_dir, headers):
    """parse_prototype's prototype, and the database that declared its names."""
    shown = _one_line(str(text))
    if not isinstance(text, str):
        raise MrhookerError("bad prototype %r: expected a string" % (text,))

    def bad(reason):
        return MrhookerError("bad prototype '%s': %s" % (shown, reason))

    tokens = _tokenize(text)
    while tokens and tokens[-1] == ";":
        tokens.pop()
    if not tokens:
        raise bad("it is empty")
    problem = _bracket_problem(tokens)
    if problem is not None:
        raise bad(problem)
    chunks = _split_declarations(tokens)
    if len(chunks) > 1:
        raise bad("expected one declaration, found %d" % len(chunks))
    if not chunks:
        raise bad("it is empty")
    chunk = chunks[0]
    if chunk.kind == "definition":
        raise MrhookerError("'%s' is a function definition, not a prototype" % shown)
    databases = _databases_for(cache_dir, headers)
    database = next(databases)
    opaque = []
    while True:
        try:
            prototype = _parse_chunk(chunk, shown, database, opaque)
        except _UnknownType as error:
            unknown = error.args[0]
        except MrhookerError:
            if not opaque:
                raise
            unknown = opaque[-1]   # taking it for a type made things worse: a typo ('unsinged int')
        else:
            break
        wider = next(databases, None)
        if wider is not None:
            database = wider
        elif unknown not in opaque:
            opaque.append(unknown)   # tried as an opaque struct: used by value, it fails again
        else:
            raise MrhookerError("prototype '%s': %s" % (shown, _unknown_type_message(unknown, database)))
    for name in opaque:   # an opaque pointer, unless its name is a typo of a known type's
        if _typo_of(name, database):
            raise MrhookerError("prototype '%s': %s" % (shown, _unknown_type_message(name, database, True)))
    return prototype, database


def _parse_chunk(chunk, shown, database, opaque):
    """A declaration's prototype, with database's typedefs and the names in opaque as opaque struct types.
    Raises _UnknownType for a name that seems to be an undeclared type, MrhookerError for anything else."""

    def bad(reason):
        return MrhookerError("bad prototype '%s': %s" % (shown, reason))

    line = _chunk_line(chunk)
    typedefs = database.typedefs
    if opaque:
        typedefs = dict(typedefs, **{name: ("opaque", name) for name in opaque})
    used = sorted({token for token in chunk.tokens if token in typedefs})
    prefix = ["typedef int %s;" % name for name in used]
    parser = c_parser.CParser()
    try:
        ast = parser.parse("\n".join(prefix + [line]))
    except c_parser.ParseError as error:
        unknown = _find_unknown_type(parser, chunk.tokens, typedefs)
        if unknown is not None:
            raise _UnknownType(unknown)
        for token in chunk.tokens:   # a misspelt keyword: 'stuct stat *buf'
            if _IDENTIFIER.match(token) and token not in typedefs and token not in _C_KEYWORDS:
                words = [w for w in _TYPE_WORDS if w[:1] == token[:1] and _edits(token, w) <= 1]
                if words:
                    raise bad("unknown word '%s' (did you mean '%s'?)" % (token, words[0]))
        raise bad(_syntax_message(error))
    nodes = ast.ext[len(prefix) :]
    if len(nodes) != 1:
        raise bad("expected one declaration, found %d" % len(nodes))
    decl = nodes[0]
    if (
        not isinstance(decl, c_ast.Decl)
        or not isinstance(decl.type, c_ast.FuncDecl)
        or "typedef" in (decl.storage or [])
    ):
        raise MrhookerError("'%s' is not a function prototype" % shown)
    try:
        return _prototype_from_decl(decl, typedefs, database.abi, database.has_function, decl.name,
                                    from_header=False)
    except _Refused as error:
        raise MrhookerError("prototype '%s': %s" % (shown, error.args[1]))
    except _UnknownType:
        raise
    except _BadDeclaration as error:
        raise MrhookerError("prototype '%s': %s" % (shown, error))


def prototype_for(spec, cache_dir=None, headers=()):
    """The prototype for a hook spec: a full C prototype, or a function name from the headers (the system's,
    else the libraries' and the user's)."""
    if not isinstance(spec, str):
        raise MrhookerError("bad hook spec %r: expected a function name or a C prototype" % (spec,))
    name = spec.strip()
    if not _IDENTIFIER.match(name) or name in _C_KEYWORDS:
        prototype, database = _parse_prototype(spec, cache_dir, headers)
        _check_against_headers(prototype, database)
        return prototype
    if runtime_refusal(name):
        raise MrhookerError(runtime_refusal(name))
    for database in _databases_for(cache_dir, headers):
        prototype = database.prototype(name)
        if prototype is not None:
            return prototype
        if name in database.refused:
            raise MrhookerError(database.refused[name])
    close = difflib.get_close_matches(name, list(database.functions), n=3)
    hint = " (did you mean %s?)" % ", ".join("'%s'" % c for c in close) if close else ""
    raise MrhookerError(
        "no prototype known for '%s'%s; write it out: @hook(\"int %s(int x)\")" % (name, hint, name)
    )


def _database_with(name, cache_dir, headers):
    """The first database that declares the function `name`, or the widest one."""
    for database in _databases_for(cache_dir, headers):
        if database.has_function(name):
            break
    return database


def refusal(name, cache_dir=None, headers=()):
    """Why the headers' function `name` can't be forwarded, or is the runtime's own (one line), or None."""
    return runtime_refusal(name) or _database_with(name, cache_dir, headers).refused.get(name)


def variadic_refusal(name, cache_dir=None, headers=()):
    """Why a variadic function can't be hooked, and what to hook instead."""
    return _variadic_refusal(name, _database_with(name, cache_dir, headers).has_function)


def _known_database(cache_dir, headers, libraries):
    databases = _databases_for(cache_dir, headers)
    database = next(databases)
    if libraries:
        database = next(databases)
    return database


def known_names(cache_dir=None, headers=(), libraries=False):
    """Sorted names of the functions whose prototype the system headers (and, with `libraries`, the
    libraries' and the user's headers) give and mrhooker forwards: each can be hooked and traced (the
    runtime's own, RUNTIME_SYMBOLS, are left out)."""
    functions = _known_database(cache_dir, headers, libraries).functions
    return sorted(name for name, data in functions.items()
                  if name not in RUNTIME_SYMBOLS and data["symbol"] not in RUNTIME_SYMBOLS)


def large_file_twins(cache_dir=None, headers=(), libraries=False):
    """{name: twin}: the function a program built with large-file support calls instead of `name` (open ->
    open64), for the known names that have one."""
    return dict(_known_database(cache_dir, headers, libraries).data["large_file_twins"])


def _abi_class(ctype):
    """How a value travels in registers: what two prototypes must agree on to call the same function."""
    if ctype.kind in ("bytes", "pointer"):
        return "a pointer"
    if ctype.kind == "float":
        return ctype.c
    if ctype.kind == "void":
        return "void"
    return "a %d-byte integer" % ctype.size


def _check_against_headers(prototype, database):
    """Refuses a written-out prototype of a function the system headers declare differently: a call through it
    would pass arguments where the real function does not look for them. Pointer types may differ (const char *
    for a const void * buffer, say), as may the signedness of integers; variadic functions may be written with
    their forwarded arguments spelled out."""
    known = database.prototype(prototype.symbol)
    if known is None or prototype.symbol != known.symbol:
        return
    theirs = list(known.params) + list(known.extra)
    ours = list(prototype.params) + list(prototype.extra)
    problem = None
    if _abi_class(prototype.ret) != _abi_class(known.ret):
        problem = "it returns %s, the headers say %s (%s)" % (
            prototype.ret.spelling, known.ret.spelling, _abi_class(known.ret))
    elif len(ours) != len(theirs):
        problem = "it has %d parameter%s, the headers say %d" % (len(ours), "" if len(ours) == 1 else "s", len(theirs))
    else:
        for index, (mine, real) in enumerate(zip(ours, theirs)):
            if _abi_class(mine.type) != _abi_class(real.type):
                problem = "parameter %d (%s) is %s, the headers say %s (%s)" % (
                    index + 1, mine.name, mine.type.spelling, real.type.spelling, _abi_class(real.type))
                break
    if problem:
        raise MrhookerError("prototype '%s' does not match the system headers' '%s': %s" % (
            prototype.text, known.text, problem))


# --------------------------------------------------------------------------------------------
# The members of structs and unions, for struct views: their shape here, their offsets and sizes from the
# compiler (layouts.py), which is the only authority on a layout.

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
