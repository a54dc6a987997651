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
Variadic functions are forwarded when mrhooker knows their variable arguments (open, fcntl, ioctl, ...:
variadic.py's table); any other is refused with a hint to hook its va_list or array variant.

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

The package, by job: model.py (CType, Param, Prototype; type shapes), variadic.py, tokens.py (C text into
declarations), parse.py (pycparser: declarations into prototypes, the messages), headers.py (the database and
its caches), aggregates.py (struct and union members). Names with a leading underscore are the package's own,
shared between its modules. pycparser is imported only by the modules that parse (parse.py, aggregates.py),
which are imported when something is parsed: using the cached database needs none of it.
"""

import difflib

from mrhooker.cdecl.headers import (LIBRARY_HEADERS, _databases_for, database_key, has_aggregate,
                                    include_source, loaded_header_stamps)
from mrhooker.cdecl.model import CType, Param, Prototype, _abi_class
from mrhooker.cdecl.tokens import _C_KEYWORDS, _IDENTIFIER
from mrhooker.cdecl.variadic import _pyx_variadic_refusal, _variadic_refusal
from mrhooker.errors import MrhookerError

__all__ = ["CType", "Param", "Prototype", "LIBRARY_HEADERS", "RUNTIME_SYMBOLS", "aggregate_members",
           "database_key", "has_aggregate", "include_source", "known_names", "large_file_twins", "loaded_header_stamps",
           "parse_prototype", "prototype_for", "pyx_variadic_refusal", "refusal", "runtime_refusal",
           "variadic_refusal"]

# Functions the runtime defines itself in every preload library (runtime/preload.c) or calls on every
# path, and those that return twice (no entry point can stand between them and their caller: the second return
# would be into the entry point's frame, long gone): not hookable or traceable, so not among the known names.
# Each with why, for the one-line refusal.
_RETURNS_TWICE = "it returns twice (setjmp): a hook's frame would be gone when it returns the second time"
RUNTIME_SYMBOLS = {
    "vfork": "mrhooker's runtime wraps it itself (vfork runs as fork)",
    "clone": "mrhooker's runtime wraps it itself (a child sharing its parent's memory runs no hooks)",
    "__errno_location": "it is how mrhooker's runtime (and every program) reaches errno",
    "__libc_start_main": "mrhooker's runtime wraps it itself (the hook script's atexit handlers run before the "
                         "libraries' destructors)",
    "setjmp": _RETURNS_TWICE, "_setjmp": _RETURNS_TWICE, "sigsetjmp": _RETURNS_TWICE,
    "__sigsetjmp": _RETURNS_TWICE, "__sigsetjmp_cancel": _RETURNS_TWICE, "getcontext": _RETURNS_TWICE,
    "savectx": _RETURNS_TWICE,
}


def runtime_refusal(name):
    """Why the function `name` can't be hooked or traced because the runtime owns it (one line), or None."""
    reason = RUNTIME_SYMBOLS.get(name)
    return "%s cannot be hooked or traced: %s" % (name, reason) if reason else None


def parse_prototype(text, cache_dir=None, headers=()):
    """Parse one C function declaration; names from the system headers may be used in it, and the libraries'
    (LIBRARY_HEADERS, headers), read only when the system headers lack a name used. A name no header declares,
    used only behind a pointer (`SSL *`), is an opaque pointer."""
    from mrhooker.cdecl import parse   # pycparser: imported only when a prototype is parsed
    return parse._parse_prototype(text, _databases_for(cache_dir, headers))[0]


def prototype_for(spec, cache_dir=None, headers=()):
    """The prototype for a hook spec: a full C prototype, or a function name from the headers (the system's,
    else the libraries' and the user's)."""
    if not isinstance(spec, str):
        raise MrhookerError("bad hook spec %r: expected a function name or a C prototype" % (spec,))
    name = spec.strip()
    if not _IDENTIFIER.match(name) or name in _C_KEYWORDS:
        from mrhooker.cdecl import parse   # pycparser: imported only when a prototype is written out
        prototype, database = parse._parse_prototype(spec, _databases_for(cache_dir, headers))
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


def pyx_variadic_refusal(name, cache_dir=None, headers=()):
    """Why a Cython hook with a '...' is refused: how to declare open's mode instead, or what to hook instead."""
    return _pyx_variadic_refusal(name, _database_with(name, cache_dir, headers).has_function)


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


def aggregate_members(name, cache_dir=None, headers=()):
    """The member tree of a struct, union or typedef of one, by its C name (aggregates.aggregate_members says
    its form)."""
    from mrhooker.cdecl import aggregates   # pycparser: imported only when a struct view needs members
    return aggregates.aggregate_members(name, cache_dir, headers)
