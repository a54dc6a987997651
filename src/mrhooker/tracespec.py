"""One description of each function `mrhooker trace` shows: what a record keeps of each argument, how the
reader shows it, how the function fails and whether it returns.

A traced function's prototype comes from the headers (cdecl). What a prototype can't say — that open's second
argument holds O_* flags, that write's buffer is as long as its third argument, that execve returns only when it
fails — is said here, once: FUNCTIONS has one entry per function, one kind per parameter, in the spirit of
strace's syscall table and uftrace's annotated prototypes. A function the table doesn't list gets the kinds its
parameters' types and names imply (default_kind), which is right for most library functions (SSL_write's
buffer and length, a socket address and its length, a struct timespec).

A kind (the classes below) is the one place that knows a kind of value: what the target copies of it (its
capture: trace.h's mrh_capture_desc, which trace.c applies), how the reader shows it in lines and JSON alike (its
case of reader.h's enum mrh_kind, in decode.c) and the constants it names (from the system headers, by
tracing.symbols; decoders.py writes them out). Adding a decoder is one kind, or one entry below.
"""
RET = 255   # a capture of the result

# Capture kinds and modes (runtime/tracefile.h, trace.h).
CAP_STRING, CAP_BYTES, CAP_SOCKADDR, CAP_PATH, CAP_STRV, CAP_STRUCT = 1, 2, 3, 4, 5, 6
# When a capture is taken: always (memory the caller handed over; copied safely if the call failed; strings and
# vectors also at the entry of a call that may not return), only when the call worked (memory it filled), or
# only when it returned more than 0.
ALWAYS, IF_OK, IF_POSITIVE = 0, 1, 2
# How long it is: to its NUL (strings), a fixed size, an argument, the result up to an argument (bytes a read
# filled), the unsigned int an argument points to once the call worked (socklen_t *), a count of strings.
LEN_NUL, LEN_FIXED, LEN_ARG, LEN_RET_UPTO_ARG, LEN_DEREF_ARG, LEN_STRINGS = 0, 1, 2, 3, 4, 5


class Capture:
    """What a record keeps of the memory argument `which` (or the result: RET) points to."""

    def __init__(self, which, kind, when=ALWAYS, length=LEN_NUL, ref=0, size=0):
        self.which, self.kind, self.when, self.length, self.ref, self.size = which, kind, when, length, ref, size

    def fields(self, params):
        """trace.h's mrh_capture_desc: which, kind, when, length, ref, ref_signed, size."""
        ref_type = params[self.ref].type if self.length == LEN_ARG and self.ref < len(params) else None
        ref_signed = bool(ref_type and ref_type.kind == "int" and ref_type.signed)
        return (self.which, self.kind, self.when, self.length, self.ref, int(ref_signed), self.size)


# ---- kinds ------------------------------------------------------------------------------------------------

class Kind:
    """How one value is recorded and shown. reader: its case in decode.c (MRH_K_*)."""

    reader = "MRH_K_INT"
    name = "int"

    def capture(self, which, params):
        """The Capture of argument `which` (params: the function's parameters), or None: its bits alone."""
        return None

    def table(self, tables):
        """The C name of the table this kind shows values with (tables.emit makes it once), or NULL."""
        return "NULL"

    def shown_if(self, symbols):
        """(MRH_SHOWN_*, ref, mask, names of the unless table): when a variadic argument was passed at all."""
        return ("MRH_SHOWN", 0, 0, None)

    def __repr__(self):
        return self.name


class _Simple(Kind):
    def __init__(self, name, reader):
        self.name, self.reader = name, reader


INT = _Simple("int", "MRH_K_INT")
UINT = _Simple("uint", "MRH_K_UINT")
HEX = _Simple("hex", "MRH_K_HEX")          # an address
DOUBLE = _Simple("double", "MRH_K_DOUBLE")
FD = _Simple("fd", "MRH_K_FD")
DIRFD = _Simple("dirfd", "MRH_K_DIRFD")    # AT_FDCWD or a descriptor
VOID = _Simple("void", "MRH_K_VOID")
SIGNAL = _Simple("signal", "MRH_K_SIGNAL")


class Mode(Kind):
    """A file mode in octal (0644); with `if_bits` (the index of open's flags), shown only when those flags say
    the mode was passed (O_CREAT, O_TMPFILE)."""

    name, reader = "mode", "MRH_K_MODE"

    def __init__(self, if_bits_of=None):
        self.if_bits_of = if_bits_of

    def shown_if(self, symbols):
        if self.if_bits_of is None:
            return ("MRH_SHOWN", 0, 0, None)
        # O_TMPFILE's own bit: it includes O_DIRECTORY's, which alone passes no mode
        mask = symbols.get("O_CREAT", 0) | (symbols.get("O_TMPFILE", 0) & ~symbols.get("O_DIRECTORY", 0))
        return ("MRH_SHOWN_IF_BITS", self.if_bits_of, mask, None)


class Enum(Kind):
    """One name for one value: the names given and those with a prefix (less the excluded); where two names
    share a value, the preferred one (or the first in order) is shown."""

    reader = "MRH_K_ENUM"

    def __init__(self, name, names=None, prefix=None, exclude=(), preferred=()):
        self.name, self.names, self.prefix, self.exclude, self.preferred = name, names, prefix, exclude, preferred

    def table(self, tables):
        return tables.enum(self)


class Flags(Kind):
    """Bits by name: `low` names the value's low bits (under low_mask) as one number first; then `bits` (or
    every name with `prefix` that is a set of bits), names of more bits before the names of their parts (O_SYNC
    before O_DSYNC), what is left in hex; `zero` is how 0 reads when there is no low field."""

    reader = "MRH_K_FLAGS"

    def __init__(self, name, bits=None, prefix=None, exclude=(), low=None, low_mask=0, zero="0"):
        self.name, self.bits, self.prefix, self.exclude = name, bits, prefix, exclude
        self.low, self.low_mask, self.zero = low, low_mask, zero

    def table(self, tables):
        return tables.flagset(self)


class FcntlArg(Kind):
    """fcntl's third argument, by its command (argument `cmd`): open flags for F_SETFL, FD_CLOEXEC for F_SETFD,
    a number otherwise; absent for the commands that take none."""

    name, reader = "fcntl_arg", "MRH_K_FCNTL_ARG"
    NO_ARG = ("F_GETFD", "F_GETFL", "F_GETOWN", "F_GETSIG", "F_GETPIPE_SZ", "F_GET_SEALS", "F_GETLEASE")

    def __init__(self, cmd):
        self.cmd = cmd

    def shown_if(self, symbols):
        return ("MRH_SHOWN_UNLESS_IN", self.cmd, 0, self.NO_ARG)


class String(Kind):
    """A C string the caller passes, cut at -s; a path is kept whole (as strace shows it)."""

    name, reader = "string", "MRH_K_STRING"

    def __init__(self, path=False):
        self.path = path

    def capture(self, which, params):
        return Capture(which, CAP_PATH if self.path else CAP_STRING, ALWAYS)


class StringOut(Kind):
    """A buffer the call fills with a C string (getcwd, readlink's is not: see BytesOut)."""

    name, reader = "string", "MRH_K_STRING"

    def capture(self, which, params):
        return Capture(which, CAP_STRING, IF_OK)


class StringResult(Kind):
    """A char * result: the string the caller gets."""

    name, reader = "string", "MRH_K_STRING"

    def capture(self, which, params):
        return Capture(RET, CAP_STRING, IF_OK)


class Bytes(Kind):
    """A buffer the caller passes, as long as argument `length` (a negative signed length: nothing)."""

    name, reader = "bytes", "MRH_K_BYTES"

    def __init__(self, length):
        self.length = length

    def capture(self, which, params):
        return Capture(which, CAP_BYTES, ALWAYS, LEN_ARG, self.length)


class BytesOut(Kind):
    """A buffer the call fills, with as many bytes as it returns (up to argument `length`)."""

    name, reader = "bytes", "MRH_K_BYTES"

    def __init__(self, length):
        self.length = length

    def capture(self, which, params):
        return Capture(which, CAP_BYTES, IF_OK, LEN_RET_UPTO_ARG, self.length)


class Sockaddr(Kind):
    """A socket address the caller passes (its length: argument `length`), or, with `filled`, one the call
    fills (its length: what argument `length`, a socklen_t *, says once the call worked)."""

    name, reader = "sockaddr", "MRH_K_SOCKADDR"

    def __init__(self, length, filled=False):
        self.length, self.filled = length, filled

    def capture(self, which, params):
        if self.filled:
            return Capture(which, CAP_SOCKADDR, IF_OK, LEN_DEREF_ARG, self.length)
        return Capture(which, CAP_SOCKADDR, ALWAYS, LEN_ARG, self.length)


class Strings(Kind):
    """A NULL-terminated vector of strings: argv is shown (its first `kept` strings), envp counted."""

    reader = "MRH_K_ARGV"

    def __init__(self, name, kept):
        self.name, self.kept = name, kept
        self.reader = "MRH_K_ARGV" if name == "argv" else "MRH_K_ENVP"

    def capture(self, which, params):
        return Capture(which, CAP_STRV, ALWAYS, LEN_STRINGS, size=self.kept)


class Struct(Kind):
    """A struct shown by its members (layouts.py measures it); `filled`: the call writes it, so it is kept only
    when the call worked."""

    reader = "MRH_K_STRUCT"

    def __init__(self, struct_name, filled):
        self.name, self.struct_name, self.filled = struct_name, struct_name, filled
        self.size = None   # set from the layout by describe()

    def capture(self, which, params):
        return Capture(which, CAP_STRUCT, IF_OK if self.filled else ALWAYS, LEN_FIXED, size=self.size)

    def table(self, tables):
        return tables.layout(self.struct_name)


ARGV_KEPT = 32   # the strings of an argv a record keeps (strace shows them all; a command line is rarely longer)
ARGV = Strings("argv", ARGV_KEPT)
ENVP = Strings("envp", 0)
PATH = String(path=True)
STRING = String()

# ---- the names kinds show (values from the headers, tracing.symbols) ----------------------------------------

OPEN_FLAGS = Flags("open_flags", low=("O_RDONLY", "O_WRONLY", "O_RDWR"), low_mask=3, bits=(
    "O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC", "O_APPEND", "O_NONBLOCK", "O_SYNC", "O_DSYNC", "O_DIRECT",
    "O_LARGEFILE", "O_NOFOLLOW", "O_NOATIME", "O_CLOEXEC", "O_PATH", "O_TMPFILE", "O_DIRECTORY", "O_ASYNC"))
FD_FLAGS = Flags("fd_flags", bits=OPEN_FLAGS.bits)   # pipe2's, dup3's: O_CLOEXEC and the like, no access mode
ACCESS_MODE = Flags("access_mode", bits=("R_OK", "W_OK", "X_OK"), zero="F_OK")
PROT = Flags("prot", bits=("PROT_READ", "PROT_WRITE", "PROT_EXEC", "PROT_SEM", "PROT_GROWSDOWN", "PROT_GROWSUP"),
             zero="PROT_NONE")
MAP_FLAGS = Flags("map_flags", low=("MAP_SHARED", "MAP_PRIVATE", "MAP_SHARED_VALIDATE"), low_mask=3, bits=(
    "MAP_FIXED", "MAP_ANONYMOUS", "MAP_32BIT", "MAP_GROWSDOWN", "MAP_DENYWRITE", "MAP_EXECUTABLE", "MAP_LOCKED",
    "MAP_NORESERVE", "MAP_POPULATE", "MAP_NONBLOCK", "MAP_STACK", "MAP_HUGETLB", "MAP_SYNC",
    "MAP_FIXED_NOREPLACE", "MAP_UNINITIALIZED"))
SOCKET_TYPE = Flags("socket_type", low=("SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "SOCK_RDM", "SOCK_SEQPACKET",
                                     "SOCK_DCCP", "SOCK_PACKET"), low_mask=0xF, bits=("SOCK_NONBLOCK", "SOCK_CLOEXEC"))
MSG_FLAGS = Flags("msg_flags", prefix="MSG_")
WAIT_OPTIONS = Flags("wait_options", bits=("WNOHANG", "WUNTRACED", "WCONTINUED", "WEXITED", "WSTOPPED",
                                           "WNOWAIT", "__WNOTHREAD", "__WALL", "__WCLONE"))
AT_FLAGS = Flags("at_flags", bits=("AT_SYMLINK_NOFOLLOW", "AT_REMOVEDIR", "AT_SYMLINK_FOLLOW", "AT_NO_AUTOMOUNT",
                                   "AT_EMPTY_PATH", "AT_STATX_FORCE_SYNC", "AT_STATX_DONT_SYNC", "AT_EACCESS",
                                   "AT_RECURSIVE"))
ADDRESS_FAMILY = Enum("address_family", prefix="AF_", preferred=("AF_UNIX",))
IP_PROTOCOL = Enum("ip_protocol", prefix="IPPROTO_", preferred=("IPPROTO_IP", "IPPROTO_TCP", "IPPROTO_UDP",
                                                                 "IPPROTO_IPV6"))
SOCKOPT_LEVEL = Enum("sockopt_level", names=("SOL_SOCKET",), prefix="IPPROTO_",
                     preferred=("SOL_SOCKET", "IPPROTO_IP", "IPPROTO_TCP", "IPPROTO_IPV6"))
WHENCE = Enum("whence", prefix="SEEK_", preferred=("SEEK_SET",))
CLOCK = Enum("clock", prefix="CLOCK_", preferred=("CLOCK_REALTIME", "CLOCK_MONOTONIC"))
SHUTDOWN_HOW = Enum("shutdown_how", prefix="SHUT_")
FCNTL_CMD = Enum("fcntl_cmd", names=(
    "F_DUPFD", "F_GETFD", "F_SETFD", "F_GETFL", "F_SETFL", "F_GETLK", "F_SETLK", "F_SETLKW", "F_SETOWN", "F_GETOWN",
    "F_SETSIG", "F_GETSIG", "F_SETOWN_EX", "F_GETOWN_EX", "F_SETLEASE", "F_GETLEASE", "F_NOTIFY",
    "F_DUPFD_CLOEXEC", "F_SETPIPE_SZ", "F_GETPIPE_SZ", "F_OFD_GETLK", "F_OFD_SETLK", "F_OFD_SETLKW",
    "F_ADD_SEALS", "F_GET_SEALS"))


# ---- the functions ----------------------------------------------------------------------------------------

class Fn:
    """A function's description: the kinds of its parameters (in order; None: as its type implies) and of its
    result, the trace classes (-e %file) it belongs to, and how it returns."""

    def __init__(self, *kinds, ret=None, classes=(), exec_=False, noreturn=False, wait=False):
        self.kinds = kinds
        self.ret = ret
        self.classes = classes.split() if isinstance(classes, str) else tuple(classes)
        self.exec = exec_             # returns only if it failed: recorded at entry too
        self.noreturn = noreturn or exec_
        self.wait = wait              # returns a child's pid (the reader notes its end)


_PATH1 = Fn(PATH, classes="file")
FUNCTIONS = {
    # files
    "open": Fn(PATH, OPEN_FLAGS, Mode(if_bits_of=1), classes="file"),
    "openat": Fn(DIRFD, PATH, OPEN_FLAGS, Mode(if_bits_of=2), classes="file"),
    "creat": Fn(PATH, Mode(), classes="file"),
    "fopen": Fn(PATH, STRING, classes="file"),
    "freopen": Fn(PATH, STRING, None, classes="file"),
    "access": Fn(PATH, ACCESS_MODE, classes="file"),
    "faccessat": Fn(DIRFD, PATH, ACCESS_MODE, AT_FLAGS, classes="file"),
    "stat": Fn(PATH, None, classes="file"),
    "lstat": Fn(PATH, None, classes="file"),
    "fstatat": Fn(DIRFD, PATH, None, AT_FLAGS, classes="file"),
    "statx": Fn(DIRFD, PATH, AT_FLAGS, Flags("statx_mask", prefix="STATX_", exclude=("STATX_ALL",
                                                                                    "STATX_BASIC_STATS")),
                None, classes="file"),
    "unlink": _PATH1, "rmdir": _PATH1, "chdir": _PATH1, "chroot": _PATH1,
    "unlinkat": Fn(DIRFD, PATH, AT_FLAGS, classes="file"),
    "rename": Fn(PATH, PATH, classes="file"),
    "renameat": Fn(DIRFD, PATH, DIRFD, PATH, classes="file"),
    "renameat2": Fn(DIRFD, PATH, DIRFD, PATH, None, classes="file"),
    "mkdir": Fn(PATH, Mode(), classes="file"),
    "mkdirat": Fn(DIRFD, PATH, Mode(), classes="file"),
    "chmod": Fn(PATH, Mode(), classes="file"),
    "fchmodat": Fn(DIRFD, PATH, Mode(), AT_FLAGS, classes="file"),
    "chown": Fn(PATH, None, None, classes="file"),
    "lchown": Fn(PATH, None, None, classes="file"),
    "fchownat": Fn(DIRFD, PATH, None, None, AT_FLAGS, classes="file"),
    "readlink": Fn(PATH, BytesOut(2), None, classes="file"),
    "readlinkat": Fn(DIRFD, PATH, BytesOut(3), None, classes="file"),
    "symlink": Fn(PATH, PATH, classes="file"),
    "symlinkat": Fn(PATH, DIRFD, PATH, classes="file"),
    "link": Fn(PATH, PATH, classes="file"),
    "linkat": Fn(DIRFD, PATH, DIRFD, PATH, AT_FLAGS, classes="file"),
    "getcwd": Fn(StringOut(), None, ret=StringResult(), classes="file"),
    "truncate": Fn(PATH, None, classes="file"),
    "realpath": Fn(PATH, StringOut(), ret=StringResult(), classes="file"),
    "opendir": Fn(PATH, classes="file"),
    "utimensat": Fn(DIRFD, PATH, None, AT_FLAGS, classes="file"),
    "utime": Fn(PATH, None, classes="file"),
    "utimes": Fn(PATH, None, classes="file"),
    "statfs": Fn(PATH, None, classes="file"),
    "statvfs": Fn(PATH, None, classes="file"),
    "mkstemp": Fn(STRING, classes="file"), "mkostemp": Fn(STRING, FD_FLAGS, classes="file"),
    "mkdtemp": Fn(STRING, classes="file"),
    "mount": Fn(PATH, PATH, STRING, None, None, classes="file"),
    "umount": _PATH1,
    # descriptors
    "close": Fn(FD, classes="desc"), "fclose": Fn(None, classes="desc"), "fdopen": Fn(FD, STRING, classes="desc"),
    "fdopendir": Fn(FD, classes="desc"), "closedir": Fn(None, classes="desc"),
    "dup": Fn(FD, classes="desc"), "dup2": Fn(FD, FD, classes="desc"), "dup3": Fn(FD, FD, FD_FLAGS, classes="desc"),
    "read": Fn(FD, BytesOut(2), None, classes="desc"),
    "write": Fn(FD, Bytes(2), None, classes="desc"),
    "pread": Fn(FD, BytesOut(2), None, None, classes="desc"),
    "pwrite": Fn(FD, Bytes(2), None, None, classes="desc"),
    "readv": Fn(FD, None, None, classes="desc"), "writev": Fn(FD, None, None, classes="desc"),
    "lseek": Fn(FD, None, WHENCE, classes="desc"),
    "fcntl": Fn(FD, FCNTL_CMD, FcntlArg(cmd=1), classes="desc"),
    "ioctl": Fn(FD, HEX, None, classes="desc"),
    "fsync": Fn(FD, classes="desc"), "fdatasync": Fn(FD, classes="desc"),
    "poll": Fn(None, None, None, classes="desc"), "ppoll": Fn(None, None, None, None, classes="desc"),
    "select": Fn(None, None, None, None, None, classes="desc"),
    "pselect": Fn(None, None, None, None, None, None, classes="desc"),
    "epoll_create": Fn(None, classes="desc"), "epoll_create1": Fn(FD_FLAGS, classes="desc"),
    "epoll_ctl": Fn(FD, None, FD, None, classes="desc"),
    "epoll_wait": Fn(FD, None, None, None, classes="desc"),
    "epoll_pwait": Fn(FD, None, None, None, None, classes="desc"),
    "pipe": Fn(None, classes="desc"), "pipe2": Fn(None, FD_FLAGS, classes="desc"),
    "fstat": Fn(FD, None, classes="desc"), "fchdir": Fn(FD, classes="desc"),
    "fchmod": Fn(FD, Mode(), classes="desc"), "fchown": Fn(FD, None, None, classes="desc"),
    "ftruncate": Fn(FD, None, classes="desc"), "futimens": Fn(FD, None, classes="desc"),
    "fstatfs": Fn(FD, None, classes="desc"), "fstatvfs": Fn(FD, None, classes="desc"),
    "sendfile": Fn(FD, FD, None, None, classes="desc"),
    "copy_file_range": Fn(FD, None, FD, None, None, None, classes="desc"),
    "splice": Fn(FD, None, FD, None, None, None, classes="desc"),
    "posix_fadvise": Fn(FD, None, None, None, classes="desc"),
    "posix_fallocate": Fn(FD, None, None, classes="desc"),
    # network
    "socket": Fn(ADDRESS_FAMILY, SOCKET_TYPE, IP_PROTOCOL, classes="net"),
    "socketpair": Fn(ADDRESS_FAMILY, SOCKET_TYPE, IP_PROTOCOL, None, classes="net"),
    "connect": Fn(FD, Sockaddr(2), None, classes="net"),
    "bind": Fn(FD, Sockaddr(2), None, classes="net"),
    "listen": Fn(FD, None, classes="net"),
    "accept": Fn(FD, Sockaddr(2, filled=True), None, classes="net"),
    "accept4": Fn(FD, Sockaddr(2, filled=True), None, SOCKET_TYPE, classes="net"),
    "send": Fn(FD, Bytes(2), None, MSG_FLAGS, classes="net"),
    "sendto": Fn(FD, Bytes(2), None, MSG_FLAGS, Sockaddr(5), None, classes="net"),
    "sendmsg": Fn(FD, None, MSG_FLAGS, classes="net"), "sendmmsg": Fn(FD, None, None, MSG_FLAGS, classes="net"),
    "recv": Fn(FD, BytesOut(2), None, MSG_FLAGS, classes="net"),
    "recvfrom": Fn(FD, BytesOut(2), None, MSG_FLAGS, Sockaddr(5, filled=True), None, classes="net"),
    "recvmsg": Fn(FD, None, MSG_FLAGS, classes="net"),
    "recvmmsg": Fn(FD, None, None, MSG_FLAGS, None, classes="net"),
    "shutdown": Fn(FD, SHUTDOWN_HOW, classes="net"),
    "getsockopt": Fn(FD, SOCKOPT_LEVEL, None, None, None, classes="net"),
    "setsockopt": Fn(FD, SOCKOPT_LEVEL, None, None, None, classes="net"),
    "getsockname": Fn(FD, Sockaddr(2, filled=True), None, classes="net"),
    "getpeername": Fn(FD, Sockaddr(2, filled=True), None, classes="net"),
    "getaddrinfo": Fn(STRING, STRING, None, None, classes="net"),
    "gethostbyname": Fn(STRING, classes="net"), "gethostbyname2": Fn(STRING, ADDRESS_FAMILY, classes="net"),
    "gethostbyaddr": Fn(None, None, ADDRESS_FAMILY, classes="net"),
    "getnameinfo": Fn(None, None, None, None, None, None, None, classes="net"),
    # processes
    "fork": Fn(classes="process"),
    "execve": Fn(PATH, ARGV, ENVP, classes="process", exec_=True),
    "execv": Fn(PATH, ARGV, classes="process", exec_=True),
    "execvp": Fn(PATH, ARGV, classes="process", exec_=True),
    "execvpe": Fn(PATH, ARGV, ENVP, classes="process", exec_=True),
    "execveat": Fn(DIRFD, PATH, ARGV, ENVP, AT_FLAGS, classes="process", exec_=True),
    "fexecve": Fn(FD, ARGV, ENVP, classes="process", exec_=True),
    "posix_spawn": Fn(None, PATH, None, None, ARGV, ENVP, classes="process"),
    "posix_spawnp": Fn(None, PATH, None, None, ARGV, ENVP, classes="process"),
    "system": Fn(STRING, classes="process"), "popen": Fn(STRING, STRING, classes="process"),
    "pclose": Fn(None, classes="process"),
    "wait": Fn(None, classes="process", wait=True),
    "waitpid": Fn(None, None, WAIT_OPTIONS, classes="process", wait=True),
    "wait3": Fn(None, WAIT_OPTIONS, None, classes="process", wait=True),
    "wait4": Fn(None, None, WAIT_OPTIONS, None, classes="process", wait=True),
    "waitid": Fn(None, None, None, WAIT_OPTIONS, classes="process"),
    "exit": Fn(None, classes="process", noreturn=True), "_exit": Fn(None, classes="process", noreturn=True),
    "_Exit": Fn(None, classes="process", noreturn=True), "abort": Fn(classes="process", noreturn=True),
    "pthread_exit": Fn(None, noreturn=True),
    "kill": Fn(None, SIGNAL, classes="process signal"), "killpg": Fn(None, SIGNAL, classes="process signal"),
    "raise": Fn(SIGNAL, classes="process signal"),
    "pthread_create": Fn(None, None, None, None, classes="process"),
    "pthread_join": Fn(None, None, classes="process"),
    "setsid": Fn(classes="process"), "setpgid": Fn(None, None, classes="process"),
    "setuid": Fn(None, classes="process"), "setgid": Fn(None, classes="process"),
    "prctl": Fn(None, None, None, None, None, classes="process"),
    # memory
    "malloc": Fn(None, classes="memory"), "calloc": Fn(None, None, classes="memory"),
    "realloc": Fn(None, None, classes="memory"), "free": Fn(None, classes="memory"),
    "posix_memalign": Fn(None, None, None, classes="memory"), "aligned_alloc": Fn(None, None, classes="memory"),
    "memalign": Fn(None, None, classes="memory"), "valloc": Fn(None, classes="memory"),
    "mmap": Fn(HEX, None, PROT, MAP_FLAGS, FD, None, classes="memory"),
    "munmap": Fn(HEX, None, classes="memory"),
    "mprotect": Fn(HEX, None, PROT, classes="memory"),
    "madvise": Fn(HEX, None, None, classes="memory"),
    "brk": Fn(HEX, classes="memory"), "sbrk": Fn(None, classes="memory"),
    # time
    "time": Fn(None, classes="time"), "gettimeofday": Fn(None, None, classes="time"),
    "clock_gettime": Fn(CLOCK, None, classes="time"), "clock_getres": Fn(CLOCK, None, classes="time"),
    "clock_nanosleep": Fn(CLOCK, None, None, None, classes="time"),
    "nanosleep": Fn(None, None, classes="time"), "sleep": Fn(None, classes="time"),
    "usleep": Fn(None, classes="time"), "alarm": Fn(None, classes="time"),
    "setitimer": Fn(None, None, None, classes="time"), "getitimer": Fn(None, None, classes="time"),
    "timer_create": Fn(CLOCK, None, None, classes="time"), "timer_settime": Fn(None, None, None, None, classes="time"),
    "localtime": Fn(None, classes="time"), "localtime_r": Fn(None, None, classes="time"),
    "gmtime": Fn(None, classes="time"), "gmtime_r": Fn(None, None, classes="time"),
    "mktime": Fn(None, classes="time"),
    # the environment
    "getenv": Fn(STRING, ret=StringResult(), classes="env"),
    "secure_getenv": Fn(STRING, ret=StringResult(), classes="env"),
    "setenv": Fn(STRING, STRING, None, classes="env"), "unsetenv": Fn(STRING, classes="env"),
    "putenv": Fn(None, classes="env"), "clearenv": Fn(classes="env"),
    # signals
    "sigprocmask": Fn(None, None, None, classes="signal"), "pthread_sigmask": Fn(None, None, None, classes="signal"),
    "sigsuspend": Fn(None, classes="signal"), "sigwait": Fn(None, None, classes="signal"),
    "sigtimedwait": Fn(None, None, None, classes="signal"),
}

# The large-file twins (open64, fstat64, ...) are the same functions for a trace: described once.
TWINS = {name + "64": name for name in FUNCTIONS}

CLASSES = {}
for _name, _fn in FUNCTIONS.items():
    for _class in _fn.classes:
        CLASSES.setdefault(_class, []).extend([_name, _name + "64"])   # a twin the headers lack is dropped
DEFAULT_CLASSES = ("file", "desc", "net", "process", "time", "env")


def described(symbol):
    """The table's entry for a function (its large-file twin's too), or None."""
    return FUNCTIONS.get(symbol) or FUNCTIONS.get(TWINS.get(symbol, ""))


# ---- kinds from a prototype ---------------------------------------------------------------------------------

# Parameter names that hold a path, or a descriptor, in the headers' prototypes.
PATH_PARAMS = ("file", "path", "filename", "pathname", "oldpath", "newpath", "old", "new", "from", "to", "dir",
               "name", "target", "linkpath", "template", "resolved", "special_file", "dev", "dir_name")
FD_PARAMS = ("fd", "fildes", "sockfd")
LENGTH_PARAMS = ("n", "len", "num", "count", "size", "length", "nbytes", "inl")
# Structs a trace shows by their members, as strace does (their layouts measured by layouts.py).
SHOWN_STRUCTS = ("struct timespec", "struct timeval", "struct stat", "struct stat64", "struct itimerspec",
                 "struct timezone", "struct rlimit", "struct utsname")


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


def _type_kind(ctype):
    if ctype.kind == "int":
        return INT if ctype.signed else UINT
    if ctype.kind == "float":
        return DOUBLE
    if ctype.kind == "bytes":
        return STRING
    if ctype.kind == "void":
        return VOID
    return HEX


def default_kind(params, i, returns_int):
    """The kind parameter i's type and name imply."""
    p = params[i]
    spelling = p.type.spelling.replace(" ", "")
    following = params[i + 1] if i + 1 < len(params) else None
    if p.type.kind == "int" and p.type.size == 4 and p.name in FD_PARAMS:
        return FD
    if p.name in ("argv", "envp") and p.type.kind == "pointer":
        return ARGV if p.name == "argv" else ENVP
    if p.type.kind == "bytes":
        return PATH if p.name.rstrip("_") in PATH_PARAMS else STRING
    if "sockaddr" in spelling and following is not None:
        if following.type.kind == "int":          # const struct sockaddr *, socklen_t: an input
            return Sockaddr(i + 1)
        if following.type.kind == "pointer":      # struct sockaddr *, socklen_t *: filled by the call
            return Sockaddr(i + 1, filled=True)
    name = struct_pointee(p.type)
    if name and p.name not in ("rem", "remaining"):   # rem: only on EINTR
        return Struct(name, filled=not spelling.startswith("const"))
    if (p.type.kind == "pointer" and spelling in ("constvoid*", "void*", "char*", "constchar*")
            and following is not None and _is_length(following)):
        if spelling.startswith("const"):
            return Bytes(i + 1)
        return BytesOut(i + 1) if returns_int else StringOut()
    return _type_kind(p.type)


def _result_kind(proto):
    if proto.ret.kind == "bytes" or proto.ret.spelling.replace(" ", "") in ("char*",):
        return StringResult()
    return _type_kind(proto.ret)


class Plan:
    """A traced function, described: its prototype and the kind of each argument and of its result."""

    def __init__(self, proto, kinds, ret, noreturn, exec_, wait):
        self.proto = proto
        self.kinds = kinds              # per argument (the variadic ones passed too)
        self.ret = ret
        self.noreturn = noreturn        # recorded at entry too (exec returns only when it fails)
        self.exec = exec_
        self.wait = wait
        self.captures = [c for c in (k.capture(i, self.params) for i, k in enumerate(kinds)) if c is not None]
        ret_capture = ret.capture(RET, self.params)
        if ret_capture is not None:
            self.captures.append(ret_capture)

    @property
    def params(self):
        return list(self.proto.params) + list(self.proto.extra)

    @property
    def symbol(self):
        return self.proto.symbol


def plan(proto, layouts=None):
    """A function's description, from the table or its prototype. layouts: {struct name: layout} of the structs
    (SHOWN_STRUCTS) its parameters point to, as layouts.measure gives them; a struct without one is an
    address."""
    layouts = layouts or {}
    params = list(proto.params) + list(proto.extra)
    entry = described(proto.symbol)
    returns_int = proto.ret.kind == "int"
    kinds = []
    for i in range(len(params)):
        kind = entry.kinds[i] if entry and i < len(entry.kinds) else None
        kinds.append(kind or default_kind(params, i, returns_int))
    for i, kind in enumerate(kinds):
        if isinstance(kind, Struct):
            if kind.struct_name not in layouts:
                kinds[i] = HEX
            else:
                kinds[i] = Struct(kind.struct_name, kind.filled)
                kinds[i].size = layouts[kind.struct_name]["size"]
    ret = entry.ret if entry and entry.ret else _result_kind(proto)
    return Plan(proto, kinds, ret, bool(entry and entry.noreturn), bool(entry and entry.exec),
                bool(entry and entry.wait))


def failure_value(proto):
    """What the function returns on failure, from its prototype: -1 (signed integers), NULL; else None."""
    if proto.ret.kind == "int" and proto.ret.signed:
        return -1
    if proto.ret.kind in ("pointer", "bytes"):
        return 0
    return None

