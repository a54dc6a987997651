"""What `mrhooker trace` traces, and how each function's arguments are recorded and shown.

- Selection: -e SPEC (names, globs over the known prototypes, !exclusions, %classes) -> the traced prototypes.
- How each traced function is recorded and shown is tracespec's (one description per function).
- Symbols: the values of the C constants those decoders print (O_*, AF_*, SIG*, E*, ...), read from the system
  headers with `cc -dM -E` and cached beside the builds, never from hand-written tables.

The classes (-e %file) are tracespec's: each function's description says which it belongs to.
"""
import fnmatch
import json
import os
import re

from mrhooker import cache, toolchain, tracespec
from mrhooker.errors import MrhookerError

# Each name stands for the function and its large-file twin (open: open and open64; see select).
CLASSES = {name: tuple(functions) for name, functions in tracespec.CLASSES.items()}
DEFAULT_CLASSES = tracespec.DEFAULT_CLASSES




def known_names(cache_dir):
    from mrhooker import cdecl
    return set(cdecl.known_names(cache_dir))


def items(spec):
    """A -e SPEC's comma-separated items; commas inside a written-out prototype's parentheses don't count."""
    found, depth, start = [], 0, 0
    for i, ch in enumerate(spec):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            found.append(spec[start:i])
            start = i + 1
    found.append(spec[start:])
    return [item.strip() for item in found if item.strip()]


class _Known:
    """The functions -e may name: the system headers', and the libraries' (cdecl.LIBRARY_HEADERS and -H) once
    a name or glob needs them (reading those headers takes seconds the first time); and their large-file
    twins."""

    def __init__(self, cache_dir, headers):
        from mrhooker import cdecl
        self.lists = [lambda: (cdecl.known_names(cache_dir, headers), cdecl.large_file_twins(cache_dir, headers)),
                      lambda: (cdecl.known_names(cache_dir, headers, libraries=True),
                               cdecl.large_file_twins(cache_dir, headers, libraries=True))]
        self.widen()

    def widen(self):
        """Adds the libraries' functions; False if there are no more to add."""
        if not self.lists:
            return False
        self.names, self.twins = self.lists.pop(0)()
        self.set = set(self.names)
        return True

    def with_twins(self, names):
        return with_twins(names, self.twins)


def with_twins(names, twins):
    """names, each followed by its large-file twin (open, open64; twins: the database's): the function a program
    built with -D_FILE_OFFSET_BITS=64 (Python, SQLite, ...) calls when its source says open; and each one's checked
    versions (__open_2, __open64_2), which a program built with -D_FORTIFY_SOURCE calls instead."""
    plain = [n for name in names for n in (name, twins.get(name)) if n]
    return [n for name in plain for n in [name] + tracespec.fortified_of(name)]


def prototype_for(name, cache_dir, headers=()):
    """A known function's prototype: the headers', or, for a checked version (__open_2), the one written out in
    tracespec.FORTIFIED (the headers the database reads declare them only in a -D_FORTIFY_SOURCE build)."""
    from mrhooker import cdecl
    return cdecl.prototype_for(tracespec.FORTIFIED[name][1] if name in tracespec.FORTIFIED else name, cache_dir,
                               headers)


def select(specs, cache_dir, headers=()):
    """The prototypes -e SPEC... selects, in a stable order. SPEC: comma lists of names, globs (open*),
    !name or !glob to exclude, %class, or a written-out prototype ("int foo(int x)") for a function the
    headers don't declare. None or empty: the default classes. A name, a class's or a glob's, stands for the
    function and its large-file twin, as strace's `open` stands for the system call whatever the libc calls it:
    `open` selects open and open64 (and their checked versions, __open_2 and __open64_2), `!open` leaves them
    out, `open64` is open64 (and __open64_2). Each is traced (and shown) under its own name: the lines say which
    the program called."""
    from mrhooker import cdecl

    known = _Known(cache_dir, headers)
    chosen, excluded, written = [], set(), {}

    def prototype(name):
        return written.get(name) or prototype_for(name, cache_dir, headers)
    for spec in specs or []:
        if not items(spec):   # -e '' (an empty variable, say): not the default classes without a word
            raise MrhookerError("-e %r names no function" % spec)
    wanted = [item for spec in (specs or []) for item in items(spec)]
    if not any(not item.startswith("!") for item in wanted):
        wanted = ["%" + c for c in DEFAULT_CLASSES] + wanted

    def names_for(item):
        if "(" in item:
            proto = cdecl.prototype_for(item, cache_dir, headers)
            written[proto.symbol] = proto
            return [proto.symbol]
        if item.startswith("%"):
            name = item[1:]
            if name not in CLASSES:
                raise MrhookerError("unknown class %s; the classes are %s" % (
                    item, ", ".join("%" + c for c in sorted(CLASSES))))
            return known.with_twins(n for n in CLASSES[name] if n in known.set)
        if any(ch in item for ch in "*?["):
            matched = fnmatch.filter(known.names, item)
            while not matched and known.widen():
                matched = fnmatch.filter(known.names, item)
            if not matched:
                raise MrhookerError("no known function matches %s" % item)
            return known.with_twins(matched)
        if not re.fullmatch(r"[A-Za-z_]\w*", item):
            raise MrhookerError("bad -e item %r: a function name, a glob, !NAME or %%CLASS" % item)
        if item in tracespec.FORTIFIED:
            return [item]
        while item not in known.set and known.widen():
            pass
        if item in known.set:
            return known.with_twins([item])
        refused = cdecl.refusal(item, cache_dir, headers)
        if refused:   # printf, execl: say why, and what to trace instead
            raise MrhookerError(refused.replace("; hook ", "; trace "))
        import difflib
        close = difflib.get_close_matches(item, known.names, n=3)
        raise MrhookerError("no prototype known for %s%s (mrhooker trace --list shows the known ones)" % (
            item, " (did you mean %s?)" % ", ".join(close) if close else ""))

    for item in wanted:
        if item.startswith("!"):
            excluded.update(names_for(item[1:]))
        else:
            chosen += [n for n in names_for(item) if n not in chosen]
    # an alias is left out with the function it names (!sched_yield leaves out pthread_yield)
    excluded_symbols = {prototype(n).symbol for n in excluded}
    prototypes, symbols = [], set()
    for name in chosen:
        proto = prototype(name)
        if proto.symbol in symbols or proto.symbol in excluded_symbols:
            continue
        refused = cdecl.runtime_refusal(proto.symbol)   # a written-out prototype of the runtime's own
        if refused:
            raise MrhookerError(refused)
        symbols.add(proto.symbol)
        prototypes.append(proto)
    if not prototypes:
        raise MrhookerError("nothing to trace: -e selects no function")
    return prototypes


# ---- the constants decoders print -----------------------------------------------------------------------

SYMBOL_HEADERS = ("poll.h", "fcntl.h", "sys/stat.h", "sys/socket.h", "netinet/in.h", "netinet/tcp.h", "netinet/udp.h",
                  "sys/mman.h", "signal.h", "errno.h", "unistd.h", "time.h", "sys/un.h", "sys/wait.h", "sys/ioctl.h",
                  "netdb.h", "linux/netlink.h", "linux/fs.h", "sys/resource.h", "sys/epoll.h", "sys/eventfd.h",
                  "sys/time.h", "sys/prctl.h", "linux/capability.h", "linux/magic.h", "sys/statvfs.h")
SYMBOL_PREFIXES = ("O_", "AT_", "AF_", "SOCK_", "PROT_", "MAP_", "SIG", "E", "SEEK_", "F_", "CLOCK_", "SHUT_", "STATX_",
                   "SOL_", "SO_", "TCP_", "IP_", "IPV6_", "UDP_", "NETLINK_", "POLL", "POSIX_FADV_", "P_", "CLD_",
                   "FD_CLOEXEC", "TC", "TIOC", "FIO", "FICLONE", "FIDEDUPE", "FIGETBSZ", "FIBMAP", "FS_IOC_", "BLK",
                   "SIOC", "UTIME_", "CAP_",
                   "R_OK", "W_OK", "X_OK", "F_OK", "MSG_", "SOL_", "IPPROTO_", "S_IF", "WNOHANG", "WUNTRACED",
                   "WCONTINUED", "WEXITED", "WSTOPPED", "WNOWAIT")
_SCHEMA = 5


def symbols(cache_dir):
    """{name: value} of the headers' constants the decoders use: their names from `cc -dM -E` (macros with the
    prefixes above), their values from the compiler itself (a program that prints them: enums such as
    SOCK_STREAM, and macros defined by other macros, come out right). Cached in cache_dir."""
    compiler = toolchain.c_compiler()
    includes = "".join("#include <%s>\n" % h for h in SYMBOL_HEADERS)
    named = tracespec.named_constants()   # enumerators too (P_ALL is no macro), which -dM doesn't list
    key = cache.key([str(_SCHEMA), " ".join(compiler), toolchain.tool_identity(compiler[0]), includes]
                    + sorted(named))
    path = os.path.join(cache_dir, "trace-symbols-%s.json" % key) if cache_dir else None
    if path:
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            pass
    defines = toolchain.preprocess(includes, ["-D_GNU_SOURCE", "-dM"], compiler)
    names = sorted({m.group(1) for m in re.finditer(r"^#define (\w+) \S", defines, re.M)
                    if m.group(1).startswith(SYMBOL_PREFIXES)} | named)
    values = _compiled_values(compiler, includes, names)
    if path:
        cache.write_atomic(path, json.dumps(values))
    return values


def _compiled_values(compiler, includes, names):
    """The values of integer constants, printed by a program the compiler builds. A name that is no integer
    constant (a string, a function-like use, a request whose struct the headers leave incomplete) makes the
    compiler complain on its line: it is left out and the rest tried again."""
    head = "#define _GNU_SOURCE\n" + includes + "#include <stdio.h>\nint main(void)\n{\n"
    first_line = head.count("\n") + 1   # the line of the first name's printf
    for _attempt in range(8):
        body = "".join('    printf("%%s %%lld\\n", "%s", (long long)(%s));\n' % (n, n) for n in names)
        errors, out = toolchain.compile_and_run(head + body + "    return 0;\n}\n", compiler)
        if errors is None:
            return {name: int(value) for name, value in (line.split() for line in out.splitlines())}
        bad = {names[int(n) - first_line] for n in re.findall(r"s\.c:(\d+):\d+: error", errors)
               if 0 <= int(n) - first_line < len(names)}
        if not bad:
            return {}
        names = [n for n in names if n not in bad]
    return {}
