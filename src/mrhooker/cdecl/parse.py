"""Declarations into prototypes, with pycparser: the shapes of its type nodes, prototypes rendered back to
text, the headers' declarations read in batches, and one written-out prototype parsed, with the messages that
say what is wrong in it (a syntax error, an unknown type name and the known one it is likely a typo of)."""

import copy
import difflib
import keyword
import re

from pycparser import c_ast, c_generator, c_parser

from mrhooker.cdecl.model import (Param, Prototype, _BadDeclaration, _builtin_shape, _ctype, _prototype_to_json,
                                  _Refused, _UnknownType, _Unforwardable)
from mrhooker.cdecl.tokens import (_C_KEYWORDS, _IDENTIFIER, _IDENTIFIERS_IN, _chunk_line, _split_declarations,
                                   _tokenize)
from mrhooker.cdecl.variadic import _VARIADIC_EXTRA, _variadic_refusal
from mrhooker.errors import MrhookerError

# --------------------------------------------------------------------------------------------
# pycparser's type nodes as shapes (model.py)

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
# The headers' declarations

_BATCH = 400  # declarations per pycparser run: a failure then re-parses only its batch

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


def _header_declarations(chunks, abi):
    """The headers' typedefs and function declarations (their chunks), read with pycparser: (typedef name ->
    shape, typedef name -> text for those of an aggregate or an array, function name -> its prototype's JSON
    form, function name -> why it is refused)."""
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
    return typedefs, typedef_lines, functions, refused


# --------------------------------------------------------------------------------------------
# One written-out prototype

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


def _parse_prototype(text, databases):
    """parse_prototype's prototype, and the database that declared its names: the first of `databases` (an
    iterator, advanced only when a name is missing) that declares them."""
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
