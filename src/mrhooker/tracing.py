"""What `mrhooker trace` traces, and how each function's arguments are recorded and shown.

- Selection: -e SPEC (names, globs over the known prototypes, !exclusions, %classes) -> the traced prototypes.
- Plans: for each traced prototype, what its record keeps of each argument (a string, the bytes of a buffer, a
  socket address: copied in the target; everything else as its bits) and how the reader shows it (open flags,
  a signal's name, a file descriptor, hex).
- Symbols: the values of the C constants those decoders print (O_*, AF_*, SIG*, E*, ...), read from the system
  headers with `cc -dM -E` and cached beside the builds, never from hand-written tables.

The classes below are the one table of what each holds (strace's spellings, for library functions).
"""
import fnmatch
import json
import os
import re

from mrhooker import cache, toolchain
from mrhooker.errors import MrhookerError

# Each name stands for the function and its large-file twin (open: open and open64; see select).
CLASSES = {
    "file": "open openat creat fopen freopen access faccessat stat lstat fstatat statx unlink unlinkat rename "
            "renameat renameat2 mkdir mkdirat rmdir chdir getcwd opendir readlink readlinkat symlink symlinkat link "
            "linkat chmod fchmodat chown lchown fchownat truncate realpath mkstemp mkostemp mkdtemp utime utimes "
            "utimensat statfs statvfs chroot mount umount",
    "desc": "close fclose fdopen fdopendir closedir dup dup2 dup3 read write pread pwrite readv writev lseek fcntl "
            "ioctl fsync fdatasync poll ppoll select pselect epoll_create epoll_create1 epoll_ctl epoll_wait "
            "epoll_pwait pipe pipe2 fstat fchdir fchmod fchown ftruncate futimens fstatfs fstatvfs sendfile "
            "copy_file_range splice posix_fadvise posix_fallocate",
    "net": "socket socketpair connect bind listen accept accept4 send sendto sendmsg sendmmsg recv recvfrom recvmsg "
           "recvmmsg shutdown getsockopt setsockopt getsockname getpeername getaddrinfo gethostbyname "
           "gethostbyname2 gethostbyaddr getnameinfo",
    "process": "fork execve execv execvp execvpe fexecve posix_spawn posix_spawnp system popen pclose wait waitpid "
               "wait3 wait4 waitid exit _exit _Exit abort kill killpg raise pthread_create pthread_join setsid "
               "setpgid setuid setgid prctl",
    "memory": "malloc calloc realloc free posix_memalign aligned_alloc memalign valloc mmap munmap mprotect "
              "madvise brk sbrk",
    "time": "time gettimeofday clock_gettime clock_getres clock_nanosleep nanosleep sleep usleep alarm setitimer "
            "getitimer timer_create timer_settime localtime localtime_r gmtime gmtime_r mktime",
    "env": "getenv secure_getenv setenv unsetenv putenv clearenv",
    "signal": "kill killpg raise sigprocmask pthread_sigmask sigsuspend sigwait sigtimedwait",
}
CLASSES = {name: tuple(functions.split()) for name, functions in CLASSES.items()}
DEFAULT_CLASSES = ("file", "desc", "net", "process", "time", "env")


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
        """names, each followed by its large-file twin (open, open64): the function a program built with
        -D_FILE_OFFSET_BITS=64 (Python, SQLite, ...) calls when its source says open."""
        return [n for name in names for n in (name, self.twins.get(name)) if n]


def select(specs, cache_dir, headers=()):
    """The prototypes -e SPEC... selects, in a stable order. SPEC: comma lists of names, globs (open*),
    !name or !glob to exclude, %class, or a written-out prototype ("int foo(int x)") for a function the
    headers don't declare. None or empty: the default classes. A name, a class's or a glob's, stands for the
    function and its large-file twin, as strace's `open` stands for the system call whatever the libc calls it:
    `open` selects open and open64, `!open` leaves both out, `open64` is open64 alone. Each is traced (and shown)
    under its own name: the lines say which the program called."""
    from mrhooker import cdecl

    known = _Known(cache_dir, headers)
    chosen, excluded, written = [], set(), {}
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
    excluded_symbols = {(written.get(n) or cdecl.prototype_for(n, cache_dir, headers)).symbol for n in excluded}
    prototypes, symbols = [], set()
    for name in chosen:
        proto = written.get(name) or cdecl.prototype_for(name, cache_dir, headers)
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


# ---- plans ----------------------------------------------------------------------------------------------

# How the reader shows an integer argument, by function and parameter name (the values come from the
# headers: see symbols()).
DECODERS = {
    ("open", "oflag"): "open_flags", ("open64", "oflag"): "open_flags", ("openat", "oflag"): "open_flags",
    ("openat64", "oflag"): "open_flags", ("open", "mode"): "mode", ("open64", "mode"): "mode",
    ("openat", "mode"): "mode", ("openat64", "mode"): "mode", ("creat", "mode"): "mode",
    ("creat64", "mode"): "mode", ("mkdir", "mode"): "mode", ("mkdirat", "mode"): "mode", ("chmod", "mode"): "mode",
    ("fchmod", "mode"): "mode", ("fchmodat", "mode"): "mode",
    ("access", "type"): "access_mode", ("faccessat", "type"): "access_mode",
    ("socket", "domain"): "address_family", ("socketpair", "domain"): "address_family",
    ("socket", "type"): "socket_type", ("socketpair", "type"): "socket_type",
    ("mmap", "prot"): "prot", ("mmap64", "prot"): "prot", ("mprotect", "prot"): "prot",
    ("mmap", "flags"): "map_flags", ("mmap64", "flags"): "map_flags",
    ("kill", "sig"): "signal", ("killpg", "sig"): "signal", ("raise", "sig"): "signal",
    ("lseek", "whence"): "whence", ("lseek64", "whence"): "whence",
    ("fcntl", "cmd"): "fcntl_cmd", ("fcntl", "arg"): "fcntl_arg", ("fcntl64", "cmd"): "fcntl_cmd",
    ("fcntl64", "arg"): "fcntl_arg", ("pipe2", "flags"): "fd_flags", ("dup3", "flags"): "fd_flags",
    ("waitpid", "options"): "wait_options", ("wait4", "options"): "wait_options",
    ("waitid", "options"): "wait_options",
    ("accept4", "flags"): "socket_type", ("clock_gettime", "clock_id"): "clock",
    ("clock_getres", "clock_id"): "clock", ("clock_nanosleep", "clock_id"): "clock",
    ("shutdown", "how"): "shutdown_how",
    ("send", "flags"): "msg_flags", ("sendto", "flags"): "msg_flags", ("sendmsg", "flags"): "msg_flags",
    ("recv", "flags"): "msg_flags", ("recvfrom", "flags"): "msg_flags", ("recvmsg", "flags"): "msg_flags",
    ("setsockopt", "level"): "sockopt_level", ("getsockopt", "level"): "sockopt_level",
    ("socket", "protocol"): "ip_protocol",
}
DIRFD_FUNCTIONS = ("openat", "openat64", "faccessat", "fstatat", "fstatat64", "statx", "unlinkat", "renameat",
                   "renameat2", "mkdirat", "readlinkat", "symlinkat", "linkat", "fchmodat", "fchownat",
                   "utimensat", "fdopendir")

# Capture kinds (runtime/trace.h: MRH_CAP_*). A path is shown whole (as strace does), other strings and
# buffers cut at -s.
STRING, BYTES, SOCKADDR, PATH, STRV, STRUCT = 1, 2, 3, 4, 5, 6
# Structs a trace shows by their members, as strace does (their layouts measured by layouts.py).
SHOWN_STRUCTS = ("struct timespec", "struct timeval", "struct stat", "struct stat64", "struct itimerspec",
                 "struct timezone", "struct rlimit", "struct utsname")
ARGV_KEPT = 32   # the strings of an argv a record keeps (strace shows them all; a command line is rarely longer)
PATH_PARAMS = ("file", "path", "filename", "pathname", "oldpath", "newpath", "old", "new", "from", "to", "dir",
               "name", "target", "linkpath", "template", "resolved", "special_file", "dev", "dir_name")
EXEC = ("execve", "execv", "execvp", "execvpe", "execveat", "fexecve")
NORETURN = ("exit", "_exit", "_Exit", "abort", "pthread_exit") + EXEC


class Capture:
    """What a record keeps of one argument (or the result: which == RET), and when. The C expressions may use
    the arguments a0, a1, ..., the result r, and r_ok (the call did not fail)."""

    def __init__(self, which, kind, length=None, condition=None):
        self.which = which          # argument index, or RET
        self.kind = kind            # STRING, PATH, BYTES, SOCKADDR, STRV, STRUCT
        self.length = length        # BYTES/SOCKADDR: the length to keep (before the -s cut); STRV: the strings
        self.condition = condition  # when to keep it at all (else the pointer alone is shown)


RET = 255


class Plan:
    """A traced function: its prototype and how each argument is recorded and shown."""

    def __init__(self, proto, captures, shown):
        self.proto = proto
        self.captures = captures    # [Capture]
        self.shown = shown          # per argument: "int", "uint", "hex", "fd", "dirfd", "string", "bytes",
        #                             "sockaddr", "argv", "envp", "double", or a decoder name
        self.noreturn = proto.symbol in NORETURN
        self.failure = failure_test(proto)   # a C condition on r that says the call failed, or None

    @property
    def params(self):
        return list(self.proto.params) + list(self.proto.extra)

    def to_json(self):
        return {"name": self.proto.symbol, "text": self.proto.text, "params": [p.name for p in self.params],
                "shown": self.shown, "ret": _shown_type(self.proto.ret, None, None),
                "ret_signed": self.proto.ret.signed, "ret_size": self.proto.ret.size,
                "captures": [[c.which, c.kind] for c in self.captures], "noreturn": self.noreturn}


def failure_test(proto):
    """The C test of a call's failure, from its prototype: -1 for signed integers, NULL for pointers (with an
    errno set, which the runtime checks); None: its result says nothing (void, unsigned)."""
    if proto.ret.kind == "int" and proto.ret.signed:
        return "r == -1"
    if proto.ret.kind in ("pointer", "bytes"):
        return "r == 0"
    return None


def _shown_type(ctype, function, name):
    decoder = DECODERS.get((function, name))
    if decoder:
        return decoder
    if ctype.kind == "int":
        return "int" if ctype.signed else "uint"
    if ctype.kind == "float":
        return "double"
    if ctype.kind == "bytes":
        return "string"
    if ctype.kind == "void":
        return "void"
    if ctype.spelling.strip().startswith("char *") or ctype.spelling.strip() == "char*":
        return "string"   # a char * result: a string the caller gets
    return "hex"


# Functions whose (pointer, length) is an address range, not data: shown as an address.
NOT_BUFFERS = ("munmap", "mprotect", "pkey_mprotect", "madvise", "posix_madvise", "msync", "mlock", "mlock2",
               "munlock", "mremap", "mincore", "remap_file_pages")
LENGTH_PARAMS = ("n", "len", "num", "count", "size", "length", "nbytes", "inl")


def _is_length(param):
    """Does this parameter say how long the buffer before it is? A size_t, or an int named like a length
    (SSL_write's `int num`)."""
    t = param.type
    return t.kind == "int" and ((t.size == 8 and not t.signed) or (t.size == 4 and param.name in LENGTH_PARAMS))


def struct_pointee(ctype):
    """The struct a pointer parameter points to, if it is one a trace shows by its members; else None."""
    words = ctype.spelling.replace("*", " * ").split()
    if ctype.kind != "pointer" or words[-1:] != ["*"] or "*" in words[:-1]:
        return None
    name = " ".join(w for w in words[:-1] if w not in ("const", "volatile"))
    return name if name in SHOWN_STRUCTS else None


def plan(proto, layouts=None):
    """How a traced function's arguments are recorded and shown. layouts: {struct name: layout} of the structs
    (SHOWN_STRUCTS) its parameters point to, as layouts.measure gives them."""
    layouts = layouts or {}
    params = list(proto.params) + list(proto.extra)
    name = proto.symbol
    captures, shown = [], []
    for i, p in enumerate(params):
        spelling = p.type.spelling.replace(" ", "")
        following = params[i + 1] if i + 1 < len(params) else None
        if name in DIRFD_FUNCTIONS and i == 0 and p.type.kind == "int":
            shown.append("dirfd")
        elif p.type.kind == "int" and p.name in ("fd", "fildes", "sockfd") and p.type.size == 4:
            shown.append(DECODERS.get((name, p.name), "fd"))
        elif p.name in ("argv", "envp") and p.type.kind == "pointer":
            # strace's way: the arguments, and how many variables the environment has
            shown.append(p.name)
            captures.append(Capture(i, STRV, str(ARGV_KEPT) if p.name == "argv" else "0"))
        elif p.type.kind == "bytes":
            shown.append("string")
            captures.append(Capture(i, PATH if p.name.rstrip("_") in PATH_PARAMS else STRING))
        elif "sockaddr" in spelling and following is not None:
            shown.append("sockaddr")
            if following.type.kind == "int":          # const struct sockaddr *, socklen_t: an input
                captures.append(Capture(i, SOCKADDR, "a%d" % (i + 1)))
            elif following.type.kind == "pointer":    # struct sockaddr *, socklen_t *: filled by the call
                captures.append(Capture(i, SOCKADDR, "(a%d && a%d && r >= 0 ? *(const unsigned *)a%d : 0)"
                                        % (i, i + 1, i + 1)))
        elif struct_pointee(p.type) in layouts and p.name not in ("rem", "remaining"):   # rem: only on EINTR
            struct_name = struct_pointee(p.type)
            shown.append(struct_name)
            size = layouts[struct_name]["size"]
            # read by the call: kept as it was given; filled by it: kept when the call worked
            captures.append(Capture(i, STRUCT, str(size) if spelling.startswith("const") else "(r_ok ? %d : 0)" % size))
        elif (p.type.kind == "pointer" and spelling in ("constvoid*", "void*", "char*", "constchar*")
              and name not in NOT_BUFFERS
              and following is not None and _is_length(following)):
            shown.append("bytes")
            n = "a%d" % (i + 1)
            if following.type.signed:   # an int length: a negative one keeps nothing
                n = "((long)%s > 0 ? (unsigned long)%s : 0UL)" % (n, n)
            if spelling.startswith("const"):     # written by the call's caller (copied safely if the call failed)
                captures.append(Capture(i, BYTES, n))
            elif proto.ret.kind == "int":        # filled by the call: as many bytes as it says
                captures.append(Capture(i, BYTES, "(r_ok && (long)r > 0 ? (unsigned long)r < %s ? "
                                                  "(unsigned long)r : %s : 0)" % (n, n)))
            else:                                # getcwd and the like: a string in it, if the call made one
                captures.append(Capture(i, STRING, condition="r_ok"))
        else:
            shown.append(_shown_type(p.type, name, p.name))
    if _shown_type(proto.ret, None, None) == "string":
        captures.append(Capture(RET, STRING))
    return Plan(proto, captures, shown)


# ---- the constants decoders print -----------------------------------------------------------------------

SYMBOL_HEADERS = ("poll.h", "fcntl.h", "sys/stat.h", "sys/socket.h", "netinet/in.h", "netinet/tcp.h", "sys/mman.h", "signal.h",
                  "errno.h", "unistd.h", "time.h", "sys/un.h", "sys/wait.h")
SYMBOL_PREFIXES = ("O_", "AT_", "AF_", "SOCK_", "PROT_", "MAP_", "SIG", "E", "SEEK_", "F_", "CLOCK_", "SHUT_",
                   "R_OK", "W_OK", "X_OK", "F_OK", "MSG_", "SOL_", "IPPROTO_", "S_IF", "WNOHANG", "WUNTRACED",
                   "WCONTINUED", "WEXITED", "WSTOPPED", "WNOWAIT")
_SCHEMA = 4


def symbols(cache_dir):
    """{name: value} of the headers' constants the decoders use: their names from `cc -dM -E` (macros with the
    prefixes above), their values from the compiler itself (a program that prints them: enums such as
    SOCK_STREAM, and macros defined by other macros, come out right). Cached in cache_dir."""
    compiler = toolchain.c_compiler()
    includes = "".join("#include <%s>\n" % h for h in SYMBOL_HEADERS)
    key = cache.key([str(_SCHEMA), " ".join(compiler), toolchain.tool_identity(compiler[0]), includes])
    path = os.path.join(cache_dir, "trace-symbols-%s.json" % key) if cache_dir else None
    if path:
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            pass
    defines = toolchain.preprocess(includes, ["-D_GNU_SOURCE", "-dM"], compiler)
    names = sorted({m.group(1) for m in re.finditer(r"^#define (\w+) \S", defines, re.M)
                    if m.group(1).startswith(SYMBOL_PREFIXES)})
    values = _compiled_values(compiler, includes, names)
    if path:
        cache.write_atomic(path, json.dumps(values))
    return values


def _compiled_values(compiler, includes, names):
    """The values of integer constants, printed by a program the compiler builds. A name that is no integer
    constant (a string, a function-like use) makes the compiler complain: it is left out and the rest tried
    again."""
    for _attempt in range(8):
        body = "".join('    printf("%%s %%lld\\n", "%s", (long long)(%s));\n' % (n, n) for n in names)
        errors, out = toolchain.compile_and_run("#define _GNU_SOURCE\n" + includes + "#include <stdio.h>\n"
                                                "int main(void)\n{\n" + body + "    return 0;\n}\n", compiler)
        if errors is None:
            return {name: int(value) for name, value in (line.split() for line in out.splitlines())}
        bad = set(re.findall(r"\b(%s)\b" % "|".join(map(re.escape, names)),
                             "\n".join(line for line in errors.splitlines() if "error" in line)))
        bad |= {names[int(n) - 7] for n in re.findall(r"s\.c:(\d+):", errors) if 0 <= int(n) - 7 < len(names)}
        if not bad:
            return {}
        names = [n for n in names if n not in bad]
    return {}
