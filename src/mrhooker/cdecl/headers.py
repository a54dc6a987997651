"""The database of the headers: what the system headers (and, when needed, the libraries' and the user's)
declare — typedef shapes, the functions' prototypes and refusals, the text of struct and union definitions.

The headers are preprocessed by the C compiler in use and parsed once (with pycparser, parse.py); the result
is cached in memory and, in the cache directory the caller names (the build cache), as JSON on disk, keyed by
a hash of the preprocessed text. A cached file whose headers and compiler are unchanged is used without
preprocessing, and without importing pycparser.
"""

import hashlib
import importlib.util
import json
import os
import re
import stat
import threading

from mrhooker import cache, toolchain
from mrhooker.cdecl.model import _prototype_from_json, _tuples
from mrhooker.cdecl.tokens import _IDENTIFIER, _chunk_line, _split_declarations, _tokenize
from mrhooker.errors import MrhookerError

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


# --------------------------------------------------------------------------------------------
# Preprocessing; the ABI: sizes as the C compiler sees them (its predefined macros), read in the same cc run.

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


def _build_database(preprocessed):
    from mrhooker.cdecl import parse   # pycparser: imported only when headers are parsed, not on a warm start

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
    typedefs, typedef_lines, functions, refused = parse._header_declarations(chunks, abi)
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
    return "%d\0%s\0%s\0%s\0%s" % (_SCHEMA, _pycparser_identity(), " ".join(compiler),
                                   toolchain.tool_identity(compiler[0]), " ".join(_HEADERS))


def _pycparser_identity():
    """The pycparser installed, by its __init__.py (which holds its version): path, size and mtime, as a header
    is judged. Its version would mean importing it, and so its parser, which a warm start does not need."""
    spec = importlib.util.find_spec("pycparser")
    try:
        st = os.stat(spec.origin)
    except (AttributeError, TypeError, OSError):   # not installed: the key's import will say so
        return "no pycparser"
    return "%s %d %d" % (spec.origin, st.st_size, st.st_mtime_ns)


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
            import pycparser   # here only: a warm start does without it

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


def loaded_header_stamps():
    """{path: [size, mtime_ns]} of every header the databases this process holds were read from: what a result
    computed from them (a trace's plan, tracecache.py) depends on."""
    with _lock:
        stamps = {}
        for database in _databases.values():
            stamps.update(database.data.get("headers") or {})
        return stamps
