"""One description of each function `mrhooker trace` shows: what a record keeps of each argument, how the
reader shows it, how the function fails and whether it returns.

A traced function's prototype comes from the headers (cdecl). What a prototype can't say — that open's second
argument holds O_* flags, that write's buffer is as long as its third argument, that execve returns only when it
fails — is said here, once: FUNCTIONS has one entry per function, one kind per parameter, in the spirit of
strace's syscall table and uftrace's annotated prototypes. A function the table doesn't list gets the kinds its
parameters' types and names imply (default_kind), which is right for most library functions (SSL_write's
buffer and length, a socket address and its length, a struct timespec).

A kind (the classes below) is the one place that knows a kind of value: what the target copies of it (its
captures: trace.h's mrh_capture_desc, which trace.c applies), how the reader shows it in lines and JSON alike (its
case of reader.h's enum mrh_kind, in decode.c) and the constants it names (their values from the system
headers, tracing.symbols; decoders.py writes the tables). Adding a decoder is one kind, or one entry below.
strace is the reference for how a value reads: its xlat tables' order where names overlap, its spellings.
"""

RET = 255   # a capture of the result

# Capture kinds (runtime/tracefile.h).
(CAP_STRING, CAP_BYTES, CAP_SOCKADDR, CAP_PATH, CAP_STRV, CAP_STRUCT, CAP_IOV, CAP_IOV_READ, CAP_MSG,
 CAP_MSG_READ) = range(1, 11)
# When a capture is taken (trace.h: MRH_WHEN_*): always (memory the caller handed over; copied safely if the call
# failed; strings and vectors also at the entry of a call that may not return), only when the call worked (memory
# it filled), only when it returned more than 0, or before the call (memory the call changes, as it was passed);
# SHARED: a struct passed in, before the call if it is also argument `ref`, the output the call fills
# (`sigprocmask(SIG_BLOCK, &s, &s)`, `sigaction(sig, &sa, &sa)`: after the call it is the old one), else as ALWAYS.
ALWAYS, IF_OK, IF_POSITIVE, BEFORE, SHARED = 0, 1, 2, 3, 4
# How long it is (trace.h: MRH_LEN_*).
(LEN_NUL, LEN_FIXED, LEN_ARG, LEN_RET_UPTO_ARG, LEN_DEREF_ARG, LEN_STRINGS, LEN_ARG_TIMES, LEN_ARG_BITS,
 LEN_RET_TIMES, LEN_ITEMS, LEN_NUL_UPTO_ARG, LEN_ARG_READ_RET, LEN_ARG_PAGES) = range(13)

# Sizes of the C types the reader's compound kinds read (x86-64, checked by a test against the compiler).
SIZEOF = {"int": 4, "time_t": 8, "struct timespec": 16, "struct timeval": 16, "siginfo_t": 128, "struct flock": 32,
          "struct pollfd": 8, "fd_set": 128, "kernel sigset": 8, "struct epoll_event": 12, "struct winsize": 8,
          "struct sigaction": 152, "struct msghdr": 56}


class Capture:
    """What a record keeps of the memory argument `which` (or the result: RET) points to; only_if, values: only
    when argument only_if is one of those constants' values."""

    def __init__(self, which, kind, when=ALWAYS, length=LEN_NUL, ref=0, size=0, only_if=0, values=()):
        self.which, self.kind, self.when, self.length, self.ref, self.size = which, kind, when, length, ref, size
        self.only_if, self.values = only_if, values

    def fields(self, params):
        """trace.h's mrh_capture_desc, less its values: which, kind, when, length, ref, ref_signed, only_if,
        nvalues, size."""
        by_arg = self.length in (LEN_ARG, LEN_NUL_UPTO_ARG, LEN_ARG_READ_RET)
        ref_type = params[self.ref].type if by_arg and self.ref < len(params) else None
        ref_signed = bool(ref_type and ref_type.kind == "int" and ref_type.signed)
        return (self.which, self.kind, self.when, self.length, self.ref, int(ref_signed), self.only_if,
                len(self.values), self.size)


# ---- kinds ------------------------------------------------------------------------------------------------

class Kind:
    """How one value is recorded and shown. reader: its case in decode.c (MRH_K_*); ref: an argument its showing
    depends on."""

    reader = "MRH_K_INT"
    name = "int"
    ref = 0

    def captures(self, which, params):
        """The Captures of argument `which` (params: the function's parameters): none, its bits are enough."""
        return []

    def table(self, tables):
        """The C name of the table this kind shows values with (tables makes it once), or NULL."""
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
SIG_HANDLER = _Simple("sig_handler", "MRH_K_SIG_HANDLER")   # SIG_DFL, SIG_IGN, SIG_ERR or an address
ID = _Simple("id", "MRH_K_ID")             # a uid_t or gid_t: -1 is "none" (chown's "leave it")
EAI = _Simple("eai", "MRH_K_EAI")          # getaddrinfo's result: 0, or an EAI_* code
ERRNO_RESULT = _Simple("errno_result", "MRH_K_ERRNO_RESULT")   # 0, or an error number, errno unset (--inject too)
SELECT_RESULT = _Simple("select_result", "MRH_K_SELECT_RESULT")
TIME_RESULT = _Simple("time_result", "MRH_K_TIME_RESULT")   # seconds since the epoch, its local date beside


class Mode(Kind):
    """A file mode in octal (0644); with if_bits_of (the index of open's flags), shown only when those flags say
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
    share a value, the first given (or the preferred) is shown. An unknown value reads `0x7 /* SEEK_??? */`.
    kernel: names strace knows that the headers no longer define, for values no header name has."""

    reader = "MRH_K_ENUM"

    def __init__(self, name, names=(), prefix=None, exclude=(), preferred=(), unknown=None, kernel=None):
        self.name, self.names, self.prefix, self.exclude, self.preferred = name, names, prefix, exclude, preferred
        self.kernel = kernel or {}
        self.unknown = unknown if unknown is not None else (prefix + "???" if prefix else None)

    def table(self, tables):
        return tables.enum(self)


class EnumBy(Kind):
    """An enumeration chosen by argument `ref`'s value: {constant naming that value: Enum}; others: the number."""

    name, reader = "enum_by", "MRH_K_ENUM_BY"

    def __init__(self, name, ref, cases):
        self.name, self.ref, self.cases = name, ref, cases

    def table(self, tables):
        return tables.switch(self)


class Flags(Kind):
    """Bits by name: `low` names the value's bits under low_mask as one number first (O_RDONLY, SOCK_STREAM,
    AT_STATX_SYNC_AS_STAT); then `bits` (or every name with `prefix`), in their order except that a name of more
    bits comes before the names of its parts (O_SYNC before O_DSYNC); what is left in hex; `zero` is how 0 reads
    when there is no low field. kernel: values the kernel gives names whose userspace value is 0 (O_LARGEFILE on
    x86-64, where every file is large: the kernel's bit still shows in F_GETFL and in a 32-bit program's opens).
    unknown: strace's comment for a value none of whose bits has a name (`0x4 /* O_??? */`; strace spells some
    oddly: "?_OK", "W???", "RENAME_??")."""

    reader = "MRH_K_FLAGS"

    def __init__(self, name, bits=None, prefix=None, exclude=(), low=None, low_mask=0, zero="0", kernel=None,
                 spellings=None, unknown=None):
        self.name, self.bits, self.prefix, self.exclude, self.unknown = name, bits, prefix, exclude, unknown
        self.low, self.low_mask, self.zero = low, low_mask, zero
        self.kernel = kernel or {}
        self.spellings = spellings or {}   # strace's name for a header's: {"O_ASYNC": "FASYNC"}

    def table(self, tables):
        return tables.flagset(self)


class FcntlArg(Kind):
    """fcntl's third argument, by its command (argument `ref`): open flags for F_SETFL, FD_CLOEXEC for F_SETFD,
    seals, a struct flock for the lock commands (kept), a number otherwise; absent for the commands that take
    none."""

    name, reader = "fcntl_arg", "MRH_K_FCNTL_ARG"
    NO_ARG = ("F_GETFD", "F_GETFL", "F_GETOWN", "F_GETSIG", "F_GETPIPE_SZ", "F_GET_SEALS", "F_GETLEASE")
    LOCKS = ("F_GETLK", "F_SETLK", "F_SETLKW", "F_OFD_GETLK", "F_OFD_SETLK", "F_OFD_SETLKW")

    def __init__(self, ref):
        self.ref = ref

    def captures(self, which, params):
        return [Capture(which, CAP_STRUCT, ALWAYS, LEN_FIXED, size=SIZEOF["struct flock"], only_if=self.ref,
                        values=self.LOCKS)]

    def shown_if(self, symbols):
        return ("MRH_SHOWN_UNLESS_IN", self.ref, 0, self.NO_ARG)


class FcntlResult(Kind):
    """fcntl's result, by its command (argument `ref`): F_GETFL's flags, F_GETFD's, F_GET_SEALS's."""

    name, reader = "fcntl_result", "MRH_K_FCNTL_RESULT"

    def __init__(self, ref):
        self.ref = ref


class IoctlRequest(Enum):
    """ioctl's request, by the names the headers give (TCGETS, FIONREAD), an unknown one as _IOC(...)."""

    reader = "MRH_K_IOCTL_REQUEST"
    NO_ARG = ("FIOCLEX", "FIONCLEX", "TIOCNOTTY", "TIOCEXCL", "TIOCNXCL", "TIOCCONS", "TIOCSBRK", "TIOCCBRK")


class IoctlArg(Kind):
    """ioctl's third argument, by its request (argument `ref`): the int it points to ([5], for the requests that
    take an int * (kept)), the struct winsize of TIOCSWINSZ (kept) and TIOCGWINSZ (kept once filled), a number
    (for the requests that take an int), an address otherwise; absent for the requests that take none."""

    name, reader = "ioctl_arg", "MRH_K_IOCTL_ARG"
    INT_POINTERS = ("FIONREAD", "TIOCINQ", "TIOCOUTQ", "FIONBIO", "FIOASYNC", "TIOCGPGRP", "TIOCSPGRP", "TIOCMGET",
                    "TIOCMSET", "TIOCMBIS", "TIOCMBIC", "TIOCGETD", "TIOCSETD", "TIOCGPTN", "TIOCSPTLCK", "TIOCGSID",
                    "FIGETBSZ", "BLKSSZGET")
    INT_VALUES = ("TCSBRK", "TCSBRKP", "TCXONC", "TCFLSH", "TIOCSCTTY", "FICLONE", "TIOCGPTPEER")

    def __init__(self, ref):
        self.ref = ref

    def captures(self, which, params):
        return [Capture(which, CAP_STRUCT, ALWAYS, LEN_FIXED, size=SIZEOF["int"], only_if=self.ref,
                        values=self.INT_POINTERS),
                Capture(which, CAP_STRUCT, ALWAYS, LEN_FIXED, size=SIZEOF["struct winsize"], only_if=self.ref,
                        values=("TIOCSWINSZ",)),
                Capture(which, CAP_STRUCT, IF_OK, LEN_FIXED, size=SIZEOF["struct winsize"], only_if=self.ref,
                        values=("TIOCGWINSZ",))]

    def table(self, tables):
        return tables.names("ioctl_int_values", [(n, tables.symbols[n]) for n in self.INT_VALUES
                                                 if n in tables.symbols])

    def shown_if(self, symbols):
        return ("MRH_SHOWN_UNLESS_IN", self.ref, 0, IoctlRequest.NO_ARG)


def _string_capture(which, path, when, upto):
    """A C string's capture: a path kept whole, else cut at -s; to its NUL, or no further than argument upto."""
    kind = CAP_PATH if path else CAP_STRING
    return Capture(which, kind, when, LEN_NUL_UPTO_ARG, upto) if upto is not None else Capture(which, kind, when)


class String(Kind):
    """A C string the caller passes, cut at -s; a path is kept whole (as strace shows it). upto: the argument
    that bounds it (strncmp's n): the call reads at most that many bytes, so the string needs no NUL within them
    and nothing past them is read (the next byte may be unmapped: reading on would crash the program)."""

    name, reader = "string", "MRH_K_STRING"

    def __init__(self, path=False, upto=None):
        self.path, self.upto = path, upto

    def captures(self, which, params):
        return [_string_capture(which, self.path, ALWAYS, self.upto)]


class StringOut(Kind):
    """A buffer the call fills with a C string (getcwd's is a path, kept whole); upto: the argument that says how
    long the buffer is (as String's: getdomainname fills it without a NUL when the name is longer, and says 0)."""

    name, reader = "string", "MRH_K_STRING"

    def __init__(self, path=False, upto=None):
        self.path, self.upto = path, upto

    def captures(self, which, params):
        return [_string_capture(which, self.path, IF_OK, self.upto)]


class StringResult(Kind):
    """A char * result: the string the caller gets (getcwd's, realpath's a path, kept whole as strace shows
    paths); upto: as String's (strncpy's, whose n bytes may hold no NUL)."""

    name, reader = "string", "MRH_K_STRING"

    def __init__(self, path=False, upto=None):
        self.path, self.upto = path, upto

    def captures(self, which, params):
        return [_string_capture(RET, self.path, IF_OK, self.upto)]


class Bytes(Kind):
    """A buffer the caller passes, as long as argument `length` (a negative signed length: nothing). counted: the
    call returns how many of them it read (write's), and read no more: a short write of a buffer whose end is
    unmapped is a success, so the bytes past its result are copied through the kernel, never read directly."""

    name, reader = "bytes", "MRH_K_BYTES"

    def __init__(self, length, counted=False):
        self.length, self.counted = length, counted

    def captures(self, which, params):
        return [Capture(which, CAP_BYTES, ALWAYS, LEN_ARG_READ_RET if self.counted else LEN_ARG, self.length)]


class BytesOut(Kind):
    """A buffer the call fills, with as many bytes as it returns (up to argument `length`): "" for none."""

    name, reader = "bytes", "MRH_K_BYTES"

    def __init__(self, length):
        self.length = length

    def captures(self, which, params):
        return [Capture(which, CAP_BYTES, IF_OK, LEN_RET_UPTO_ARG, self.length)]


class Items(Kind):
    """A buffer of items of argument `size` bytes each: as many as argument `count` says, which the caller passes
    (fwrite's: size * nmemb bytes), or, `filled`, as many as the call returns, which it filled (fread's: size *
    its result; "" for none)."""

    name, reader = "bytes", "MRH_K_BYTES"

    def __init__(self, size, count=None, filled=False):
        self.size, self.count, self.filled = size, count, filled

    def captures(self, which, params):
        if self.filled:
            return [Capture(which, CAP_BYTES, IF_OK, LEN_ITEMS, RET, size=self.size)]
        return [Capture(which, CAP_BYTES, ALWAYS, LEN_ITEMS, self.count, size=self.size)]


class Sockaddr(Kind):
    """A socket address the caller passes (its length: argument `length`), or, with `filled`, one the call
    fills (its length: what argument `length`, a socklen_t *, says once the call worked)."""

    name, reader = "sockaddr", "MRH_K_SOCKADDR"

    def __init__(self, length, filled=False):
        self.length, self.filled = length, filled

    def captures(self, which, params):
        if self.filled:
            return [Capture(which, CAP_SOCKADDR, IF_OK, LEN_DEREF_ARG, self.length)]
        return [Capture(which, CAP_SOCKADDR, ALWAYS, LEN_ARG, self.length)]


class Length(Kind):
    """A socklen_t * the call reads and writes: [128 => 16], kept before the call and after it."""

    name, reader = "length", "MRH_K_LENGTH"

    def captures(self, which, params):
        return [Capture(which, CAP_STRUCT, BEFORE, LEN_FIXED, size=4), Capture(which, CAP_STRUCT, IF_OK, LEN_FIXED, size=4)]


class Offset(Kind):
    """An off64_t * a call reads a file's offset from: [0], as it was passed (copy_file_range's, splice's); with
    `moved`, also where the call left it once it moved data ([0] => [3], sendfile's), as strace shows them.
    unsigned: shown as an unsigned number (strace shows sendfile's so: [18446744073709551611] for -5)."""

    name, reader = "offset", "MRH_K_OFFSET"

    def __init__(self, moved=False, unsigned=False):
        self.moved = moved
        if unsigned:
            self.name, self.reader = "offset_unsigned", "MRH_K_OFFSET_UNSIGNED"

    def captures(self, which, params):
        before = [Capture(which, CAP_STRUCT, BEFORE, LEN_FIXED, size=8)]
        return before + [Capture(which, CAP_STRUCT, IF_POSITIVE, LEN_FIXED, size=8)] if self.moved else before


class Strings(Kind):
    """A NULL-terminated vector of strings: argv is shown (its first `kept` strings), envp counted."""

    def __init__(self, name, kept):
        self.name, self.kept = name, kept
        self.reader = "MRH_K_ARGV" if name == "argv" else "MRH_K_ENVP"

    def captures(self, which, params):
        return [Capture(which, CAP_STRV, ALWAYS, LEN_STRINGS, size=self.kept)]


class Struct(Kind):
    """A struct shown by its members (layouts.py measures it); `filled`: the call writes it, so it is kept only
    when the call worked; `changed`: the call changes it (select's timeout), so it is kept as it was passed too."""

    reader = "MRH_K_STRUCT"

    def __init__(self, struct_name, filled=False, changed=False, size=None):
        self.name, self.struct_name, self.filled, self.changed, self.size = (struct_name, struct_name, filled,
                                                                             changed, size)

    def captures(self, which, params):
        if self.changed:
            return [Capture(which, CAP_STRUCT, BEFORE, LEN_FIXED, size=self.size),
                    Capture(which, CAP_STRUCT, IF_OK, LEN_FIXED, size=self.size)]
        return [Capture(which, CAP_STRUCT, IF_OK if self.filled else ALWAYS, LEN_FIXED, size=self.size)]

    def table(self, tables):
        return tables.layout(self.struct_name)


class Fixed(Kind):
    """A fixed-size object decode.c reads as the C type it is (a wait status, a siginfo_t, a sigset, two
    timespecs, pipe's two descriptors), kept always, only when the call worked, or when it returned > 0."""

    def __init__(self, name, reader, size, when=ALWAYS):
        self.name, self.reader, self.size, self.when = name, reader, size, when

    def captures(self, which, params):
        return [Capture(which, CAP_STRUCT, self.when, LEN_FIXED, size=self.size)]


class Sigaction(Fixed):
    """A struct sigaction by its members (its flags: SA_FLAGS); `filled`: the old action, kept once the call
    worked."""

    def __init__(self, filled=False):
        super().__init__("sigaction", "MRH_K_SIGACTION", SIZEOF["struct sigaction"], IF_OK if filled else ALWAYS)

    def table(self, tables):
        return tables.flagset(SA_FLAGS)


class Array(Kind):
    """Argument `ref` elements of `size` bytes (struct pollfd[]), or an fd_set of argument `ref` bits (kept as it
    was passed: the call changes it; and after, for the result)."""

    def __init__(self, name, reader, ref, size, bits=False):
        self.name, self.reader, self.ref, self.size, self.bits = name, reader, ref, size, bits

    def captures(self, which, params):
        if self.bits:
            return [Capture(which, CAP_STRUCT, BEFORE, LEN_ARG_BITS, self.ref, self.size),
                    Capture(which, CAP_STRUCT, IF_OK, LEN_ARG_BITS, self.ref, self.size)]
        return [Capture(which, CAP_STRUCT, ALWAYS, LEN_ARG_TIMES, self.ref, self.size)]


class CpuSet(Kind):
    """A CPU set of argument `size` bytes, by the numbers of its CPUs: [0 1] (the first 1024, then ..., as strace
    shows a set passed); `filled`: the call fills it (sched_getaffinity), kept once it worked, and shown whole:
    glibc zeroes what the kernel's mask (which strace shows) doesn't cover."""

    def __init__(self, size, filled=False):
        self.size, self.filled = size, filled
        self.name, self.reader = ("cpu_set_out", "MRH_K_CPU_SET_OUT") if filled else ("cpu_set", "MRH_K_CPU_SET")

    def captures(self, which, params):
        return [Capture(which, CAP_STRUCT, IF_OK if self.filled else ALWAYS, LEN_ARG, self.size)]


class PageVector(Kind):
    """mincore's vector, a byte per page of argument `length` bytes, filled by the call: [1, 0, 1] (cut at -s
    elements, as strace shows it)."""

    name, reader = "page_vector", "MRH_K_BYTE_LIST"

    def __init__(self, length):
        self.length = length

    def captures(self, which, params):
        return [Capture(which, CAP_BYTES, IF_OK, LEN_ARG_PAGES, self.length)]


class Iovec(Kind):
    """An iovec array of argument `count` elements, each with its bytes: [{iov_base="hi", iov_len=2}]; `filled`:
    the call fills the buffers (readv: as many bytes as it returns, spread over them; none shown when it fails),
    else it passes them (writev)."""

    name, reader = "iovec", "MRH_K_IOVEC"

    def __init__(self, count, filled=False):
        self.count, self.filled = count, filled

    def captures(self, which, params):
        return [Capture(which, CAP_IOV_READ if self.filled else CAP_IOV, ALWAYS, LEN_ARG, self.count)]


class Msghdr(Kind):
    """A struct msghdr by its members, as strace shows one: {msg_name=..., msg_namelen=..., msg_iov=[...],
    msg_iovlen=N, msg_control=[{cmsg_len=.., cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[3]}],
    msg_controllen=N, msg_flags=0}; `filled`: the call fills it (recvmsg: its name, data and control as it left
    them, msg_namelen as passed too: 110 => 5; a failed call's only {msg_namelen=N}), else it passes it (sendmsg).
    The kind's table: the names it shows (MSG_*, the levels and types of control messages)."""

    name, reader = "msghdr", "MRH_K_MSGHDR"

    def __init__(self, filled=False):
        self.filled = filled

    def captures(self, which, params):
        size = SIZEOF["struct msghdr"]
        kept = [Capture(which, CAP_MSG_READ if self.filled else CAP_MSG, ALWAYS, LEN_FIXED, size=size)]
        return [Capture(which, CAP_STRUCT, BEFORE, LEN_FIXED, size=size)] + kept if self.filled else kept

    def table(self, tables):
        ident = "msghdr_names"
        if ident not in tables.made:
            tables.made.add(ident)
            tables.lines += ["static const mrh_msghdr_names %s = {%s, %s, %s, %s};" % (
                ident, tables.flagset(MSG_FLAGS), tables.enum(SOCKOPT_LEVEL), tables.switch(CMSG_TYPE),
                tables.names("cmsg_decoded", [(n, tables.symbols[n]) for n in ("SOL_SOCKET", "SCM_RIGHTS",
                                                                               "SCM_CREDENTIALS")
                                              if n in tables.symbols])), ""]
        return "&" + ident


class PrctlArg(Kind):
    """prctl's argument `position` (1 to 4), by its option (argument `ref`), as strace shows them: none for the
    options that take none (PR_GET_DUMPABLE), the first alone for those that take one; a name (PR_SET_NAME's,
    kept; PR_GET_NAME's, kept once filled), a signal (PR_SET_PDEATHSIG), an int the call filled ([SIGTERM],
    [0]), SUID_DUMP_*, a capability (CAP_CHOWN), else a number; an unknown option's in hex. With `result`, its
    result: PR_GET_DUMPABLE's 1 (SUID_DUMP_USER)."""

    name, reader = "prctl_arg", "MRH_K_PRCTL_ARG"
    ref = 0
    NO_ARG = ("PR_GET_DUMPABLE", "PR_GET_KEEPCAPS", "PR_GET_TIMING", "PR_GET_SECCOMP", "PR_GET_SECUREBITS",
              "PR_GET_TIMERSLACK", "PR_TASK_PERF_EVENTS_DISABLE", "PR_TASK_PERF_EVENTS_ENABLE", "PR_MCE_KILL_GET",
              "PR_GET_FP_MODE", "PR_GET_IO_FLUSHER")
    ONE_ARG = ("PR_SET_PDEATHSIG", "PR_GET_PDEATHSIG", "PR_SET_DUMPABLE", "PR_SET_KEEPCAPS", "PR_SET_NAME",
               "PR_GET_NAME", "PR_CAPBSET_READ", "PR_CAPBSET_DROP", "PR_SET_SECUREBITS", "PR_SET_TIMERSLACK",
               "PR_SET_CHILD_SUBREAPER", "PR_GET_CHILD_SUBREAPER", "PR_SET_TIMING", "PR_GET_TSC", "PR_SET_TSC",
               "PR_SET_FP_MODE", "PR_GET_TID_ADDRESS", "PR_GET_UNALIGN", "PR_SET_UNALIGN", "PR_GET_FPEMU",
               "PR_SET_FPEMU", "PR_GET_FPEXC", "PR_SET_FPEXC", "PR_GET_ENDIAN", "PR_SET_ENDIAN")
    FILLED_INTS = ("PR_GET_PDEATHSIG", "PR_GET_CHILD_SUBREAPER", "PR_GET_TSC", "PR_GET_UNALIGN", "PR_GET_FPEMU",
                   "PR_GET_FPEXC", "PR_GET_ENDIAN")

    def __init__(self, position=1, result=False):
        self.position, self.result = position, result
        self.name = "prctl_arg%d" % position   # (its shown_if's table is made by this name)
        if result:
            self.name, self.reader = "prctl_result", "MRH_K_PRCTL_RESULT"

    def captures(self, which, params):
        if self.position != 1 or self.result:
            return []
        # PR_SET_NAME's: the kernel reads 15 bytes (TASK_COMM_LEN less its NUL; strace adds ... to a longer name, but
        # the 16th byte may be unmapped), PR_GET_NAME's: it writes 16
        return [Capture(which, CAP_STRING, ALWAYS, LEN_FIXED, size=15, only_if=self.ref, values=("PR_SET_NAME",)),
                Capture(which, CAP_STRING, IF_OK, LEN_FIXED, size=16, only_if=self.ref, values=("PR_GET_NAME",)),
                Capture(which, CAP_STRUCT, IF_OK, LEN_FIXED, size=SIZEOF["int"], only_if=self.ref,
                        values=self.FILLED_INTS)]

    def shown_if(self, symbols):
        if self.result:
            return ("MRH_SHOWN", 0, 0, None)
        return ("MRH_SHOWN_UNLESS_IN", self.ref, 0, self.NO_ARG if self.position == 1 else self.NO_ARG + self.ONE_ARG)

    def table(self, tables):
        ident = "prctl_names"
        if ident not in tables.made:
            tables.made.add(ident)
            tables.lines += ["static const mrh_prctl_names %s = {%s, %s};" % (
                ident, tables.names("names_prctl_option", [(n, tables.symbols[n]) for n in PRCTL_OPTION.names
                                                           if n in tables.symbols]),
                tables.enum(CAPABILITY)), ""]
        return "&" + ident



class EpollEvents(Kind):
    """struct epoll_event: the one the caller passes (epoll_ctl's: shown for the ops that read it, by argument
    `op`, as strace), or, `filled`, the array the call fills with as many as it returns (epoll_wait's)."""

    def __init__(self, filled=False, op=0):
        self.filled, self.op = filled, op
        self.name, self.reader = ("epoll_events", "MRH_K_EPOLL_EVENTS") if filled else ("epoll_event",
                                                                                        "MRH_K_EPOLL_EVENT")

    def captures(self, which, params):
        size = SIZEOF["struct epoll_event"]
        if self.filled:
            return [Capture(which, CAP_STRUCT, IF_OK, LEN_RET_TIMES, size=size)]
        return [Capture(which, CAP_STRUCT, ALWAYS, LEN_FIXED, size=size, only_if=self.op,
                        values=("EPOLL_CTL_ADD", "EPOLL_CTL_MOD"))]

    def table(self, tables):
        return tables.flagset(EPOLL_EVENTS)


class SockoptValue(Kind):
    """A socket option's value ([1], {l_onoff=1, l_linger=5}), by its level (argument `ref`) and name (`ref` + 1):
    its length is argument `length`, or, `filled` (getsockopt), what that socklen_t * says after the call."""

    name, reader = "sockopt_value", "MRH_K_SOCKOPT"

    def __init__(self, ref, length, filled=False):
        self.ref, self.length, self.filled = ref, length, filled

    def captures(self, which, params):
        if self.filled:
            return [Capture(which, CAP_STRUCT, IF_OK, LEN_DEREF_ARG, self.length)]
        return [Capture(which, CAP_STRUCT, ALWAYS, LEN_ARG, self.length)]


class PollResult(Kind):
    """poll's result with the descriptors (argument `ref`) that have events: 1 ([{fd=3, revents=POLLIN}])."""

    name, reader = "poll_result", "MRH_K_POLL_RESULT"

    def __init__(self, ref):
        self.ref = ref


ARGV_KEPT = 1024   # the most strings of an argv a record keeps (strace shows -s of them; a record, its share)
ARGV = Strings("argv", ARGV_KEPT)
ENVP = Strings("envp", 0)
PATH = String(path=True)
STRING = String()
WAIT_STATUS = Fixed("wait_status", "MRH_K_WAIT_STATUS", SIZEOF["int"], IF_POSITIVE)
SIGINFO = Fixed("siginfo", "MRH_K_SIGINFO", SIZEOF["siginfo_t"], IF_OK)
SIGSET = Fixed("sigset", "MRH_K_SIGSET", SIZEOF["kernel sigset"])
SIGSET_OUT = Fixed("sigset", "MRH_K_SIGSET", SIZEOF["kernel sigset"], IF_OK)
FD_PAIR = Fixed("fds", "MRH_K_INTS", 2 * SIZEOF["int"], IF_OK)
TIME_OUT = Fixed("time", "MRH_K_TIME", SIZEOF["time_t"], IF_OK)   # time()'s filled time_t
TIMESPECS = Fixed("timespecs", "MRH_K_TIMESPECS", 2 * SIZEOF["struct timespec"])
LENGTH = Length()

# ---- the names kinds show (values from the headers, tracing.symbols; strace's order where names overlap) -----

OPEN_FLAGS = Flags("open_flags", low=("O_RDONLY", "O_WRONLY", "O_RDWR"), low_mask=3, bits=(
    "O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC", "O_APPEND", "O_NONBLOCK", "O_SYNC", "O_DSYNC", "O_DIRECT",
    "O_LARGEFILE", "O_NOFOLLOW", "O_NOATIME", "O_CLOEXEC", "O_PATH", "O_TMPFILE", "O_DIRECTORY", "O_ASYNC"),
    kernel={"O_LARGEFILE": 0o100000}, spellings={"O_ASYNC": "FASYNC"})
FD_FLAGS = Flags("fd_flags", bits=OPEN_FLAGS.bits, kernel=OPEN_FLAGS.kernel, spellings=OPEN_FLAGS.spellings,
                 unknown="O_???")
CLOEXEC_FLAG = Flags("cloexec_flag", bits=("FD_CLOEXEC",), unknown="FD_???")
SEALS = Flags("seals", bits=("F_SEAL_SEAL", "F_SEAL_SHRINK", "F_SEAL_GROW", "F_SEAL_WRITE", "F_SEAL_FUTURE_WRITE",
                             "F_SEAL_EXEC"), unknown="F_SEAL_???")
ACCESS_MODE = Flags("access_mode", bits=("R_OK", "W_OK", "X_OK"), zero="F_OK", unknown="?_OK")
PROT = Flags("prot", bits=("PROT_READ", "PROT_WRITE", "PROT_EXEC", "PROT_SEM", "PROT_GROWSDOWN", "PROT_GROWSUP"),
             zero="PROT_NONE", unknown="PROT_???")
MAP_FLAGS = Flags("map_flags", low=("MAP_SHARED", "MAP_PRIVATE", "MAP_SHARED_VALIDATE"), low_mask=3, bits=(
    "MAP_DROPPABLE", "MAP_FIXED", "MAP_ANONYMOUS", "MAP_32BIT", "MAP_ABOVE4G", "MAP_NORESERVE", "MAP_POPULATE",
    "MAP_NONBLOCK", "MAP_GROWSDOWN", "MAP_DENYWRITE", "MAP_EXECUTABLE", "MAP_LOCKED", "MAP_STACK",
    "MAP_HUGETLB", "MAP_SYNC", "MAP_UNINITIALIZED", "MAP_FIXED_NOREPLACE"))
SOCKET_TYPE = Flags("socket_type", low=("SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "SOCK_RDM", "SOCK_SEQPACKET",
                                        "SOCK_DCCP", "SOCK_PACKET"), low_mask=0xF,
                    bits=("SOCK_CLOEXEC", "SOCK_NONBLOCK"))
SOCK_FLAGS = Flags("sock_flags", bits=("SOCK_CLOEXEC", "SOCK_NONBLOCK"), unknown="SOCK_???")   # accept4's
EPOLL_FLAGS = Flags("epoll_flags", bits=("EPOLL_CLOEXEC",), unknown="EPOLL_???")
SA_FLAGS = Flags("sa_flags", bits=(   # strace's order
    "SA_RESTORER", "SA_ONSTACK", "SA_RESTART", "SA_INTERRUPT", "SA_NODEFER", "SA_RESETHAND", "SA_SIGINFO",
    "SA_NOCLDSTOP", "SA_NOCLDWAIT"), kernel={"SA_RESTORER": 0x04000000}, unknown="SA_???")   # (the kernel's)
EPOLL_EVENTS = Flags("epoll_events", bits=(   # strace's order
    "EPOLLIN", "EPOLLPRI", "EPOLLOUT", "EPOLLERR", "EPOLLHUP", "EPOLLNVAL", "EPOLLRDNORM", "EPOLLRDBAND",
    "EPOLLWRNORM", "EPOLLWRBAND", "EPOLLMSG", "EPOLLRDHUP", "EPOLL_URING_WAKE", "EPOLLEXCLUSIVE", "EPOLLWAKEUP",
    "EPOLLONESHOT", "EPOLLET"), kernel={"EPOLLNVAL": 0x20}, unknown="EPOLL???")   # (the kernel's name glibc leaves out)
RWF_FLAGS = Flags("rwf_flags", bits=("RWF_HIPRI", "RWF_DSYNC", "RWF_SYNC", "RWF_NOWAIT", "RWF_APPEND", "RWF_NOAPPEND",
                                     "RWF_ATOMIC", "RWF_DONTCACHE"), unknown="RWF_???")
EFD_FLAGS = Flags("efd_flags", bits=("EFD_SEMAPHORE", "EFD_CLOEXEC", "EFD_NONBLOCK"),   # strace's order
                  unknown="EFD_???")
MSG_FLAGS = Flags("msg_flags", prefix="MSG_", exclude=("MSG_TRYHARD",), unknown="MSG_???")
WAIT_OPTIONS = Flags("wait_options", bits=("WNOHANG", "WUNTRACED", "WCONTINUED", "WEXITED", "WSTOPPED",
                                           "WNOWAIT", "__WNOTHREAD", "__WALL", "__WCLONE"), unknown="W???")
AT_FLAGS = Flags("at_flags", bits=("AT_SYMLINK_NOFOLLOW", "AT_REMOVEDIR", "AT_SYMLINK_FOLLOW", "AT_NO_AUTOMOUNT",
                                   "AT_EMPTY_PATH", "AT_RECURSIVE"), unknown="AT_???")
FACCESSAT_FLAGS = Flags("faccessat_flags", bits=("AT_SYMLINK_NOFOLLOW", "AT_EACCESS", "AT_EMPTY_PATH"),
                        unknown="AT_???")
STATX_FLAGS = Flags("statx_flags", low=("AT_STATX_SYNC_AS_STAT", "AT_STATX_FORCE_SYNC", "AT_STATX_DONT_SYNC"),
                    low_mask=0x6000, bits=AT_FLAGS.bits)
STATX_MASK = Flags("statx_mask", bits=(
    "STATX_ALL", "STATX_BASIC_STATS", "STATX_TYPE", "STATX_MODE", "STATX_NLINK", "STATX_UID", "STATX_GID",
    "STATX_ATIME", "STATX_MTIME", "STATX_CTIME", "STATX_INO", "STATX_SIZE", "STATX_BLOCKS", "STATX_BTIME",
    "STATX_MNT_ID", "STATX_DIOALIGN", "STATX_MNT_ID_UNIQUE", "STATX_SUBVOL"), unknown="STATX_???")
STATX_ATTRS = Flags("statx_attrs", bits=(   # statx's stx_attributes (strace's order)
    "STATX_ATTR_COMPRESSED", "STATX_ATTR_IMMUTABLE", "STATX_ATTR_APPEND", "STATX_ATTR_NODUMP", "STATX_ATTR_ENCRYPTED",
    "STATX_ATTR_AUTOMOUNT", "STATX_ATTR_MOUNT_ROOT", "STATX_ATTR_VERITY", "STATX_ATTR_DAX", "STATX_ATTR_WRITE_ATOMIC"),
    unknown="STATX_ATTR_???")
POLL_EVENTS = Flags("poll_events", bits=("POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL",
                                         "POLLRDNORM", "POLLRDBAND", "POLLWRNORM", "POLLWRBAND", "POLLMSG",
                                         "POLLREMOVE", "POLLRDHUP"), unknown="POLL???")
RENAME_FLAGS = Flags("rename_flags", bits=("RENAME_NOREPLACE", "RENAME_EXCHANGE", "RENAME_WHITEOUT"),
                     unknown="RENAME_??")   # (strace's spelling)
MSYNC_FLAGS = Flags("msync_flags", bits=("MS_SYNC", "MS_ASYNC", "MS_INVALIDATE"), unknown="MS_???")  # strace's order
SPLICE_FLAGS = Flags("splice_flags", bits=("SPLICE_F_MOVE", "SPLICE_F_NONBLOCK", "SPLICE_F_MORE", "SPLICE_F_GIFT"),
                     unknown="SPLICE_F_???")
FLOCK_OPS = Flags("flock_ops", bits=("LOCK_SH", "LOCK_EX", "LOCK_NB", "LOCK_UN", "LOCK_MAND", "LOCK_READ",
                                     "LOCK_WRITE"), unknown="LOCK_???")
TIMER_FLAGS = Flags("timer_flags", bits=("TIMER_ABSTIME",), unknown="TIMER_???")
MLOCK_FLAGS = Flags("mlock_flags", bits=("MLOCK_ONFAULT",), unknown="MLOCK_???")
STATFS_FLAGS = Flags("statfs_flags", bits=(   # a struct statfs's f_flags (ST_VALID, ST_NOSYMFOLLOW: the kernel's)
    "ST_RDONLY", "ST_NOSUID", "ST_NODEV", "ST_NOEXEC", "ST_SYNCHRONOUS", "ST_VALID", "ST_MANDLOCK", "ST_NOATIME",
    "ST_NODIRATIME", "ST_RELATIME", "ST_NOSYMFOLLOW"), kernel={"ST_VALID": 0x20, "ST_NOSYMFOLLOW": 0x2000})
ADDRESS_FAMILY = Enum("address_family", prefix="AF_", preferred=("AF_UNIX",))
IP_PROTOCOL = Enum("ip_protocol", prefix="IPPROTO_", preferred=("IPPROTO_IP", "IPPROTO_TCP", "IPPROTO_UDP",
                                                                 "IPPROTO_IPV6"))
NETLINK_PROTOCOL = Enum("netlink_protocol", prefix="NETLINK_", preferred=("NETLINK_ROUTE",))
SOCKET_PROTOCOL = EnumBy("socket_protocol", 0, {"AF_INET": IP_PROTOCOL, "AF_INET6": IP_PROTOCOL,
                                                "AF_NETLINK": NETLINK_PROTOCOL})
SOCKOPT_LEVEL = Enum("sockopt_level", names=("SOL_IP", "SOL_SOCKET", "SOL_TCP", "SOL_UDP", "SOL_IPV6",
                                             "SOL_ICMPV6", "SOL_RAW", "SOL_PACKET", "SOL_NETLINK", "SOL_TLS"),
                     prefix="SOL_", unknown="SOL_???")
# Socket options by level: the names listed first take their values (the headers' prefixes hold other constants
# of the same values: TCP_COOKIE_IN_ALWAYS is 1, as TCP_NODELAY); strace's tables' order.
SOCKOPT_NAME = EnumBy("sockopt_name", 1, {
    "SOL_SOCKET": Enum("so_names", prefix="SO_", names=(
        "SO_DEBUG", "SO_REUSEADDR", "SO_TYPE", "SO_ERROR", "SO_DONTROUTE", "SO_BROADCAST", "SO_SNDBUF", "SO_RCVBUF",
        "SO_KEEPALIVE", "SO_OOBINLINE", "SO_NO_CHECK", "SO_PRIORITY", "SO_LINGER", "SO_BSDCOMPAT", "SO_REUSEPORT",
        "SO_PASSCRED", "SO_PEERCRED", "SO_RCVLOWAT", "SO_SNDLOWAT", "SO_RCVTIMEO_OLD", "SO_SNDTIMEO_OLD",
        "SO_BINDTODEVICE", "SO_ATTACH_FILTER", "SO_DETACH_FILTER", "SO_PEERNAME", "SO_TIMESTAMP_OLD",
        "SO_ACCEPTCONN", "SO_PEERSEC", "SO_SNDBUFFORCE", "SO_RCVBUFFORCE", "SO_PASSSEC", "SO_MARK",
        "SO_PROTOCOL", "SO_DOMAIN", "SO_RXQ_OVFL", "SO_BUSY_POLL", "SO_INCOMING_CPU", "SO_ZEROCOPY"),
        unknown="SO_???"),
    "SOL_TCP": Enum("tcp_names", prefix="TCP_", names=(
        "TCP_NODELAY", "TCP_MAXSEG", "TCP_CORK", "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_SYNCNT",
        "TCP_LINGER2", "TCP_DEFER_ACCEPT", "TCP_WINDOW_CLAMP", "TCP_INFO", "TCP_QUICKACK", "TCP_CONGESTION",
        "TCP_MD5SIG", "TCP_THIN_LINEAR_TIMEOUTS", "TCP_THIN_DUPACK", "TCP_USER_TIMEOUT", "TCP_REPAIR",
        "TCP_REPAIR_QUEUE", "TCP_QUEUE_SEQ", "TCP_REPAIR_OPTIONS", "TCP_FASTOPEN", "TCP_TIMESTAMP",
        "TCP_NOTSENT_LOWAT", "TCP_CC_INFO", "TCP_SAVE_SYN", "TCP_SAVED_SYN", "TCP_REPAIR_WINDOW",
        "TCP_FASTOPEN_CONNECT", "TCP_ULP", "TCP_MD5SIG_EXT", "TCP_FASTOPEN_KEY", "TCP_FASTOPEN_NO_COOKIE",
        "TCP_ZEROCOPY_RECEIVE", "TCP_INQ", "TCP_TX_DELAY"), unknown="TCP_???"),
    "SOL_IP": Enum("ip_names", prefix="IP_", names=(
        "IP_TOS", "IP_TTL", "IP_HDRINCL", "IP_OPTIONS", "IP_ROUTER_ALERT", "IP_RECVOPTS", "IP_RETOPTS",
        "IP_PKTINFO", "IP_PKTOPTIONS", "IP_MTU_DISCOVER", "IP_RECVERR", "IP_RECVTTL", "IP_RECVTOS", "IP_MTU",
        "IP_FREEBIND", "IP_IPSEC_POLICY", "IP_XFRM_POLICY", "IP_PASSSEC", "IP_TRANSPARENT", "IP_ORIGDSTADDR",
        "IP_MINTTL", "IP_NODEFRAG", "IP_CHECKSUM", "IP_BIND_ADDRESS_NO_PORT", "IP_RECVFRAGSIZE",
        "IP_MULTICAST_IF", "IP_MULTICAST_TTL", "IP_MULTICAST_LOOP", "IP_ADD_MEMBERSHIP", "IP_DROP_MEMBERSHIP"),
        unknown="IP_???"),
    "SOL_IPV6": Enum("ipv6_names", prefix="IPV6_", names=(
        "IPV6_ADDRFORM", "IPV6_2292PKTINFO", "IPV6_2292HOPOPTS", "IPV6_2292DSTOPTS", "IPV6_2292RTHDR",
        "IPV6_2292PKTOPTIONS", "IPV6_CHECKSUM", "IPV6_2292HOPLIMIT", "IPV6_NEXTHOP", "IPV6_FLOWINFO",
        "IPV6_UNICAST_HOPS", "IPV6_MULTICAST_IF", "IPV6_MULTICAST_HOPS", "IPV6_MULTICAST_LOOP",
        "IPV6_ADD_MEMBERSHIP", "IPV6_DROP_MEMBERSHIP", "IPV6_ROUTER_ALERT", "IPV6_MTU_DISCOVER", "IPV6_MTU",
        "IPV6_RECVERR", "IPV6_V6ONLY", "IPV6_JOIN_ANYCAST", "IPV6_LEAVE_ANYCAST", "IPV6_RECVPKTINFO",
        "IPV6_PKTINFO", "IPV6_RECVHOPLIMIT", "IPV6_HOPLIMIT", "IPV6_TCLASS", "IPV6_RECVTCLASS"),
        unknown="IPV6_???"),
    "SOL_UDP": Enum("udp_names", prefix="UDP_", names=("UDP_CORK", "UDP_ENCAP", "UDP_NO_CHECK6_TX",
                                                       "UDP_NO_CHECK6_RX", "UDP_SEGMENT", "UDP_GRO"),
                    unknown="UDP_???")})
# Control messages' types by their level (strace's tables; levels whose types it doesn't name show numbers).
CMSG_TYPE = EnumBy("cmsg_type", 0, {
    "SOL_SOCKET": Enum("scm_names", names=("SCM_RIGHTS", "SCM_CREDENTIALS", "SCM_SECURITY", "SCM_PIDFD"),
                       unknown="SCM_???"),
    "SOL_IP": SOCKOPT_NAME.cases["SOL_IP"], "SOL_IPV6": SOCKOPT_NAME.cases["SOL_IPV6"]})
PRCTL_OPTION = Enum("prctl_option", names=(   # (the headers' PR_ prefix names their arguments' values too)
    "PR_SET_PDEATHSIG", "PR_GET_PDEATHSIG", "PR_GET_DUMPABLE", "PR_SET_DUMPABLE", "PR_GET_UNALIGN", "PR_SET_UNALIGN",
    "PR_GET_KEEPCAPS", "PR_SET_KEEPCAPS", "PR_GET_FPEMU", "PR_SET_FPEMU", "PR_GET_FPEXC", "PR_SET_FPEXC",
    "PR_GET_TIMING", "PR_SET_TIMING", "PR_SET_NAME", "PR_GET_NAME", "PR_GET_ENDIAN", "PR_SET_ENDIAN",
    "PR_GET_SECCOMP", "PR_SET_SECCOMP", "PR_CAPBSET_READ", "PR_CAPBSET_DROP", "PR_GET_TSC", "PR_SET_TSC",
    "PR_GET_SECUREBITS", "PR_SET_SECUREBITS", "PR_SET_TIMERSLACK", "PR_GET_TIMERSLACK",
    "PR_TASK_PERF_EVENTS_DISABLE", "PR_TASK_PERF_EVENTS_ENABLE", "PR_MCE_KILL", "PR_MCE_KILL_GET", "PR_SET_MM",
    "PR_SET_PTRACER", "PR_SET_CHILD_SUBREAPER", "PR_GET_CHILD_SUBREAPER", "PR_SET_NO_NEW_PRIVS",
    "PR_GET_NO_NEW_PRIVS", "PR_GET_TID_ADDRESS", "PR_SET_THP_DISABLE", "PR_GET_THP_DISABLE",
    "PR_MPX_ENABLE_MANAGEMENT", "PR_MPX_DISABLE_MANAGEMENT", "PR_SET_FP_MODE", "PR_GET_FP_MODE", "PR_CAP_AMBIENT",
    "PR_SVE_SET_VL", "PR_SVE_GET_VL", "PR_GET_SPECULATION_CTRL", "PR_SET_SPECULATION_CTRL", "PR_PAC_RESET_KEYS",
    "PR_SET_TAGGED_ADDR_CTRL", "PR_GET_TAGGED_ADDR_CTRL", "PR_SET_IO_FLUSHER", "PR_GET_IO_FLUSHER",
    "PR_SET_SYSCALL_USER_DISPATCH", "PR_PAC_SET_ENABLED_KEYS", "PR_PAC_GET_ENABLED_KEYS", "PR_SCHED_CORE",
    "PR_SME_SET_VL", "PR_SME_GET_VL", "PR_SET_VMA"), unknown="PR_???")
CAPABILITY = Enum("capability", prefix="CAP_", exclude=("CAP_LAST_CAP",), unknown="CAP_???")
# A struct statfs's f_type: linux/magic.h's names of file systems (EXT2_SUPER_MAGIC also stands for ext3 and ext4).
FS_MAGIC = Enum("fs_magic", names=(
    "EXT2_SUPER_MAGIC", "EXT3_SUPER_MAGIC", "EXT4_SUPER_MAGIC", "TMPFS_MAGIC", "PROC_SUPER_MAGIC", "SYSFS_MAGIC",
    "DEVPTS_SUPER_MAGIC", "CGROUP_SUPER_MAGIC", "CGROUP2_SUPER_MAGIC", "OVERLAYFS_SUPER_MAGIC", "BTRFS_SUPER_MAGIC",
    "XFS_SUPER_MAGIC", "F2FS_SUPER_MAGIC", "FUSE_SUPER_MAGIC", "NFS_SUPER_MAGIC", "SMB2_SUPER_MAGIC",
    "CIFS_SUPER_MAGIC", "SMB_SUPER_MAGIC", "V9FS_MAGIC", "RAMFS_MAGIC", "HUGETLBFS_MAGIC", "SQUASHFS_MAGIC",
    "ISOFS_SUPER_MAGIC", "UDF_SUPER_MAGIC", "MSDOS_SUPER_MAGIC", "EXFAT_SUPER_MAGIC", "EROFS_SUPER_MAGIC",
    "ECRYPTFS_SUPER_MAGIC", "NILFS_SUPER_MAGIC", "OCFS2_SUPER_MAGIC", "CEPH_SUPER_MAGIC", "AUTOFS_SUPER_MAGIC",
    "CRAMFS_MAGIC", "DEBUGFS_MAGIC", "TRACEFS_MAGIC", "SECURITYFS_MAGIC", "SELINUX_MAGIC", "SMACK_MAGIC",
    "PSTOREFS_MAGIC", "EFIVARFS_MAGIC", "BPF_FS_MAGIC", "BINFMTFS_MAGIC", "BINDERFS_SUPER_MAGIC",
    "RDTGROUP_SUPER_MAGIC", "NSFS_MAGIC", "PIPEFS_MAGIC", "SOCKFS_MAGIC", "ANON_INODE_FS_MAGIC", "BDEVFS_MAGIC",
    "DAXFS_MAGIC", "AAFS_MAGIC", "ZONEFS_MAGIC", "DMA_BUF_MAGIC", "SECRETMEM_MAGIC", "JFFS2_SUPER_MAGIC",
    "HOSTFS_SUPER_MAGIC", "OPENPROM_SUPER_MAGIC", "XENFS_SUPER_MAGIC", "USBDEVICE_SUPER_MAGIC", "HPFS_SUPER_MAGIC",
    "MINIX_SUPER_MAGIC", "MINIX2_SUPER_MAGIC", "MINIX3_SUPER_MAGIC", "QNX4_SUPER_MAGIC", "QNX6_SUPER_MAGIC",
    "ADFS_SUPER_MAGIC", "AFFS_SUPER_MAGIC", "AFS_SUPER_MAGIC", "CODA_SUPER_MAGIC", "EFS_SUPER_MAGIC",
    "NCP_SUPER_MAGIC", "FUTEXFS_SUPER_MAGIC", "MTD_INODE_FS_MAGIC"))
WHENCE = Enum("whence", prefix="SEEK_", preferred=("SEEK_SET",))
CLOCK = Enum("clock", prefix="CLOCK_", preferred=("CLOCK_REALTIME", "CLOCK_MONOTONIC"),
             kernel={"CLOCK_SGI_CYCLE": 10})   # (glibc dropped it; the kernel still refuses it by that name)
SHUTDOWN_HOW = Enum("shutdown_how", prefix="SHUT_")
EPOLL_CTL_OP = Enum("epoll_ctl_op", names=("EPOLL_CTL_ADD", "EPOLL_CTL_DEL", "EPOLL_CTL_MOD"), unknown="EPOLL_CTL_???")
RLIMIT_RESOURCE = Enum("rlimit_resource", names=(
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS", "RLIMIT_NPROC",
    "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"), unknown="RLIMIT_???")
SIGPROCMASK_HOW = Enum("sigprocmask_how", names=("SIG_BLOCK", "SIG_UNBLOCK", "SIG_SETMASK"), unknown="SIG_???")
FADVISE = Enum("fadvise", names=("POSIX_FADV_NORMAL", "POSIX_FADV_RANDOM", "POSIX_FADV_SEQUENTIAL",
                                 "POSIX_FADV_WILLNEED", "POSIX_FADV_DONTNEED", "POSIX_FADV_NOREUSE"),
               unknown="POSIX_FADV_???")
MADVISE = Enum("madvise", names=(
    "MADV_NORMAL", "MADV_RANDOM", "MADV_SEQUENTIAL", "MADV_WILLNEED", "MADV_DONTNEED", "MADV_FREE", "MADV_REMOVE",
    "MADV_DONTFORK", "MADV_DOFORK", "MADV_MERGEABLE", "MADV_UNMERGEABLE", "MADV_HUGEPAGE", "MADV_NOHUGEPAGE",
    "MADV_DONTDUMP", "MADV_DODUMP", "MADV_WIPEONFORK", "MADV_KEEPONFORK", "MADV_COLD", "MADV_PAGEOUT",
    "MADV_POPULATE_READ", "MADV_POPULATE_WRITE", "MADV_DONTNEED_LOCKED", "MADV_COLLAPSE", "MADV_HWPOISON",
    "MADV_SOFT_OFFLINE"), unknown="MADV_???")
PRIO_WHICH = Enum("prio_which", names=("PRIO_PROCESS", "PRIO_PGRP", "PRIO_USER"), unknown="PRIO_???")
ITIMER_WHICH = Enum("itimer_which", names=("ITIMER_REAL", "ITIMER_VIRTUAL", "ITIMER_PROF"), unknown="ITIMER_???")
IDTYPE = Enum("idtype", names=("P_ALL", "P_PID", "P_PGID", "P_PIDFD"), unknown="P_???")
FCNTL_CMD = Enum("fcntl_cmd", names=(
    "F_DUPFD", "F_GETFD", "F_SETFD", "F_GETFL", "F_SETFL", "F_GETLK", "F_SETLK", "F_SETLKW", "F_SETOWN", "F_GETOWN",
    "F_SETSIG", "F_GETSIG", "F_SETOWN_EX", "F_GETOWN_EX", "F_SETLEASE", "F_GETLEASE", "F_NOTIFY",
    "F_DUPFD_CLOEXEC", "F_SETPIPE_SZ", "F_GETPIPE_SZ", "F_OFD_GETLK", "F_OFD_SETLK", "F_OFD_SETLKW",
    "F_ADD_SEALS", "F_GET_SEALS"), unknown="F_???")
LOCK_TYPES = Enum("lock_types", names=("F_RDLCK", "F_WRLCK", "F_UNLCK"))
CLD_CODES = Enum("cld_codes", names=("CLD_EXITED", "CLD_KILLED", "CLD_DUMPED", "CLD_TRAPPED", "CLD_STOPPED",
                                     "CLD_CONTINUED"))
EAI_CODES = Enum("eai", prefix="EAI_")
IOCTL_REQUEST = IoctlRequest("ioctl_request", prefix=None, names=(
    "TCGETS", "TCSETS", "TCSETSW", "TCSETSF", "TCGETA", "TCSETA", "TCSETAW", "TCSETAF", "TCSBRK", "TCXONC",
    "TCFLSH", "TIOCEXCL", "TIOCNXCL", "TIOCSCTTY", "TIOCGPGRP", "TIOCSPGRP", "TIOCOUTQ", "TIOCSTI", "TIOCGWINSZ",
    "TIOCSWINSZ", "TIOCMGET", "TIOCMBIS", "TIOCMBIC", "TIOCMSET", "FIONREAD", "TIOCINQ", "TIOCLINUX", "TIOCCONS",
    "TIOCNOTTY", "TIOCSETD", "TIOCGETD", "TIOCSBRK", "TIOCCBRK", "TIOCGSID", "TIOCGPTN", "TIOCSPTLCK",
    "TIOCGPTPEER", "FIONBIO", "FIONCLEX", "FIOCLEX", "FIOASYNC", "FIOQSIZE", "FICLONE", "FICLONERANGE",
    "FIDEDUPERANGE", "FS_IOC_GETFLAGS", "FS_IOC_SETFLAGS", "FIGETBSZ", "FIBMAP", "BLKGETSIZE64", "BLKSSZGET",
    "SIOCGIFCONF", "SIOCGIFFLAGS", "SIOCGIFINDEX", "SIOCGIFADDR", "SIOCATMARK", "SIOCGSTAMP"))


# ---- the functions ----------------------------------------------------------------------------------------

class Fn:
    """A function's description: the kinds of its parameters (in order; None: as its type implies) and of its
    result, the trace classes (-e %file) it belongs to, and how it returns: exec_ (only when it failed), noreturn
    (never), may_die (a call that can end its own process: kill, raise), forks (returns twice), wait (returns a
    child's pid and status), fails (its failure value when it isn't what its type implies: mmap's MAP_FAILED)."""

    def __init__(self, *kinds, ret=None, classes=(), exec_=False, noreturn=False, may_die=False, forks=False,
                 wait=False, fails=None):
        self.kinds = kinds
        self.ret = ret
        self.classes = classes.split() if isinstance(classes, str) else tuple(classes)
        self.exec = exec_
        self.noreturn = noreturn or exec_
        self.may_die = may_die
        self.forks = forks
        self.wait = wait
        self.fails = fails

    @property
    def fails_with_result(self):
        """Does it fail by returning an error number, errno left alone (posix_fadvise, pthread_create)?"""
        return self.ret is ERRNO_RESULT


_PATH1 = Fn(PATH, classes="file")
_AT = AT_FLAGS
FUNCTIONS = {
    # files
    "open": Fn(PATH, OPEN_FLAGS, Mode(if_bits_of=1), classes="file"),
    "openat": Fn(DIRFD, PATH, OPEN_FLAGS, Mode(if_bits_of=2), classes="file"),
    "creat": Fn(PATH, Mode(), classes="file"),
    "fopen": Fn(PATH, STRING, classes="file"),
    "freopen": Fn(PATH, STRING, None, classes="file"),
    "access": Fn(PATH, ACCESS_MODE, classes="file"),
    "faccessat": Fn(DIRFD, PATH, ACCESS_MODE, FACCESSAT_FLAGS, classes="file"),
    "stat": Fn(PATH, None, classes="file"),
    "lstat": Fn(PATH, None, classes="file"),
    "fstatat": Fn(DIRFD, PATH, None, _AT, classes="file"),
    "statx": Fn(DIRFD, PATH, STATX_FLAGS, STATX_MASK, Struct("struct statx", filled=True), classes="file"),
    "unlink": _PATH1, "rmdir": _PATH1, "chdir": _PATH1, "chroot": _PATH1,
    "unlinkat": Fn(DIRFD, PATH, _AT, classes="file"),
    "rename": Fn(PATH, PATH, classes="file"),
    "renameat": Fn(DIRFD, PATH, DIRFD, PATH, classes="file"),
    "renameat2": Fn(DIRFD, PATH, DIRFD, PATH, RENAME_FLAGS, classes="file"),
    "mkdir": Fn(PATH, Mode(), classes="file"),
    "mkdirat": Fn(DIRFD, PATH, Mode(), classes="file"),
    "chmod": Fn(PATH, Mode(), classes="file"),
    "fchmodat": Fn(DIRFD, PATH, Mode(), _AT, classes="file"),
    "chown": Fn(PATH, ID, ID, classes="file"),
    "lchown": Fn(PATH, ID, ID, classes="file"),
    "fchownat": Fn(DIRFD, PATH, ID, ID, _AT, classes="file"),
    "readlink": Fn(PATH, BytesOut(2), None, classes="file"),
    "readlinkat": Fn(DIRFD, PATH, BytesOut(3), None, classes="file"),
    "symlink": Fn(PATH, PATH, classes="file"),
    "symlinkat": Fn(PATH, DIRFD, PATH, classes="file"),
    "link": Fn(PATH, PATH, classes="file"),
    "linkat": Fn(DIRFD, PATH, DIRFD, PATH, _AT, classes="file"),
    "getcwd": Fn(StringOut(path=True, upto=1), None, ret=StringResult(path=True), classes="file"),
    "truncate": Fn(PATH, None, classes="file"),
    "realpath": Fn(PATH, StringOut(path=True), ret=StringResult(path=True), classes="file"),
    "opendir": Fn(PATH, classes="file"),
    "utimensat": Fn(DIRFD, PATH, TIMESPECS, _AT, classes="file"),
    "utime": Fn(PATH, None, classes="file"),
    "utimes": Fn(PATH, None, classes="file"),
    "statfs": Fn(PATH, None, classes="file"),
    "statvfs": Fn(PATH, None, classes="file"),
    "mkstemp": Fn(PATH, classes="file"), "mkostemp": Fn(PATH, FD_FLAGS, classes="file"),
    "mkdtemp": Fn(PATH, ret=StringResult(path=True), classes="file"),
    "mount": Fn(PATH, PATH, STRING, None, None, classes="file"),
    "umount": _PATH1,
    # descriptors
    "close": Fn(FD, classes="desc"), "fclose": Fn(None, classes="desc"), "fdopen": Fn(FD, STRING, classes="desc"),
    "fdopendir": Fn(FD, classes="desc"), "closedir": Fn(None, classes="desc"),
    "dup": Fn(FD, classes="desc"), "dup2": Fn(FD, FD, classes="desc"), "dup3": Fn(FD, FD, FD_FLAGS, classes="desc"),
    "read": Fn(FD, BytesOut(2), None, classes="desc"),
    "write": Fn(FD, Bytes(2, counted=True), None, classes="desc"),
    "pread": Fn(FD, BytesOut(2), None, None, classes="desc"),
    "pwrite": Fn(FD, Bytes(2, counted=True), None, None, classes="desc"),
    "readv": Fn(FD, Iovec(2, filled=True), None, classes="desc"), "writev": Fn(FD, Iovec(2), None, classes="desc"),
    "preadv": Fn(FD, Iovec(2, filled=True), None, None, classes="desc"),
    "pwritev": Fn(FD, Iovec(2), None, None, classes="desc"),
    "preadv2": Fn(FD, Iovec(2, filled=True), None, None, RWF_FLAGS, classes="desc"),
    "pwritev2": Fn(FD, Iovec(2), None, None, RWF_FLAGS, classes="desc"),
    "lseek": Fn(FD, None, WHENCE, classes="desc"),
    "fcntl": Fn(FD, FCNTL_CMD, FcntlArg(ref=1), ret=FcntlResult(ref=1), classes="desc"),
    "ioctl": Fn(FD, IOCTL_REQUEST, IoctlArg(ref=1), classes="desc"),
    "fsync": Fn(FD, classes="desc"), "fdatasync": Fn(FD, classes="desc"),
    "flock": Fn(FD, FLOCK_OPS, classes="desc"),
    "poll": Fn(Array("pollfds", "MRH_K_POLLFDS", 1, SIZEOF["struct pollfd"]), None, None, ret=PollResult(0),
               classes="desc"),
    "ppoll": Fn(Array("pollfds", "MRH_K_POLLFDS", 1, SIZEOF["struct pollfd"]), None,
                Struct("struct timespec"), SIGSET, ret=PollResult(0), classes="desc"),
    "select": Fn(None, *[Array("fd_set", "MRH_K_FD_SET", 0, SIZEOF["fd_set"], bits=True)] * 3,
                 Struct("struct timeval", changed=True), ret=SELECT_RESULT, classes="desc"),
    "pselect": Fn(None, *[Array("fd_set", "MRH_K_FD_SET", 0, SIZEOF["fd_set"], bits=True)] * 3,
                  Struct("struct timespec"), SIGSET, ret=SELECT_RESULT, classes="desc"),
    "epoll_create": Fn(None, classes="desc"), "epoll_create1": Fn(EPOLL_FLAGS, classes="desc"),
    "epoll_ctl": Fn(FD, EPOLL_CTL_OP, FD, EpollEvents(op=1), classes="desc"),
    "eventfd": Fn(None, EFD_FLAGS, classes="desc"),
    "epoll_wait": Fn(FD, EpollEvents(filled=True), None, None, classes="desc"),
    "epoll_pwait": Fn(FD, EpollEvents(filled=True), None, None, SIGSET, classes="desc"),
    "epoll_pwait2": Fn(FD, EpollEvents(filled=True), None, Struct("struct timespec"), SIGSET, classes="desc"),
    "pipe": Fn(FD_PAIR, classes="desc"), "pipe2": Fn(FD_PAIR, FD_FLAGS, classes="desc"),
    "fstat": Fn(FD, None, classes="desc"), "fchdir": Fn(FD, classes="desc"),
    "fchmod": Fn(FD, Mode(), classes="desc"), "fchown": Fn(FD, ID, ID, classes="desc"),
    "ftruncate": Fn(FD, None, classes="desc"), "futimens": Fn(FD, TIMESPECS, classes="desc"),
    "fstatfs": Fn(FD, None, classes="desc"), "fstatvfs": Fn(FD, None, classes="desc"),
    "sendfile": Fn(FD, FD, Offset(moved=True, unsigned=True), None, classes="desc"),
    "copy_file_range": Fn(FD, Offset(), FD, Offset(), None, None, classes="desc"),
    "splice": Fn(FD, Offset(), FD, Offset(), None, SPLICE_FLAGS, classes="desc"),
    "posix_fadvise": Fn(FD, None, None, FADVISE, ret=ERRNO_RESULT, classes="desc"),
    "posix_fallocate": Fn(FD, None, None, ret=ERRNO_RESULT, classes="desc"),
    # streams (no class: strace sees their read and write; ltrace's prototypes say as much of them)
    "fwrite": Fn(Items(1, count=2), None, None, None), "fwrite_unlocked": Fn(Items(1, count=2), None, None, None),
    "fread": Fn(Items(1, filled=True), None, None, None),
    "fread_unlocked": Fn(Items(1, filled=True), None, None, None),
    "setbuffer": Fn(None, HEX, None),   # the stream's buffer-to-be: an address
    # strings a call fills; its result is 0 or -1, not a length
    "gethostname": Fn(StringOut(upto=1), None), "getdomainname": Fn(StringOut(upto=1), None),
    "getlogin_r": Fn(StringOut(upto=1), None, ret=ERRNO_RESULT),
    "ttyname_r": Fn(FD, StringOut(path=True, upto=2), None, ret=ERRNO_RESULT),
    "getentropy": Fn(HEX, None),   # random bytes: where they went is what tells
    # strings bounded by a length: the call reads no byte past it, nor may the record (String's upto)
    "strnlen": Fn(String(upto=1), None), "strndup": Fn(String(upto=1), None),
    "strncmp": Fn(String(upto=2), String(upto=2), None),
    "strncasecmp": Fn(String(upto=2), String(upto=2), None),
    "strncasecmp_l": Fn(String(upto=2), String(upto=2), None, None),
    "strncat": Fn(None, String(upto=2), None),
    "strncpy": Fn(None, String(upto=2), None, ret=StringResult(upto=2)),   # dest: n bytes, maybe no NUL
    # where the copy stopped: dest + n is past what it wrote
    "stpncpy": Fn(None, String(upto=2), None, ret=HEX), "__stpncpy": Fn(None, String(upto=2), None, ret=HEX),
    "mblen": Fn(String(upto=1), None), "mbtowc": Fn(None, String(upto=2), None),
    "mbrlen": Fn(String(upto=1), None, None), "__mbrlen": Fn(String(upto=1), None, None),
    "mbrtowc": Fn(None, String(upto=2), None, None),
    "sethostname": Fn(String(upto=1), None), "setdomainname": Fn(String(upto=1), None),
    "re_compile_pattern": Fn(String(upto=1), None, None),
    "re_match": Fn(None, String(upto=2), None, None, None),
    "re_search": Fn(None, String(upto=2), None, None, None, None),
    "re_match_2": Fn(None, String(upto=2), None, String(upto=4), None, None, None, None),
    "re_search_2": Fn(None, String(upto=2), None, String(upto=4), None, None, None, None, None),
    "argz_count": Fn(String(upto=1), None), "__argz_count": Fn(String(upto=1), None),
    "argz_extract": Fn(String(upto=1), None, None), "__argz_extract": Fn(String(upto=1), None, None),
    "argz_next": Fn(String(upto=1), None, None), "__argz_next": Fn(String(upto=1), None, None),
    "argz_stringify": Fn(String(upto=1), None, None), "__argz_stringify": Fn(String(upto=1), None, None),
    "argz_append": Fn(None, None, String(upto=3), None),
    "envz_entry": Fn(String(upto=1), None, None), "envz_get": Fn(String(upto=1), None, None),
    "envz_merge": Fn(None, None, String(upto=3), None, None),
    # bytes, not strings: a message, random bytes, a generator's state; strerror_r may leave its buffer unwritten
    "mq_send": Fn(None, Bytes(2), None, None), "mq_timedsend": Fn(None, Bytes(2), None, None, None),
    "crypt_gensalt": Fn(None, None, Bytes(3), None), "crypt_gensalt_ra": Fn(None, None, Bytes(3), None),
    "crypt_gensalt_r": Fn(None, None, Bytes(3), None, None, None),
    "crypt_gensalt_rn": Fn(None, None, Bytes(3), None, None, None),
    "initstate": Fn(None, HEX, None, ret=HEX), "setstate": Fn(HEX, ret=HEX),
    "strerror_r": Fn(None, HEX, None),
    # network
    "socket": Fn(ADDRESS_FAMILY, SOCKET_TYPE, SOCKET_PROTOCOL, classes="net"),
    "socketpair": Fn(ADDRESS_FAMILY, SOCKET_TYPE, SOCKET_PROTOCOL, FD_PAIR, classes="net"),
    "connect": Fn(FD, Sockaddr(2), None, classes="net"),
    "bind": Fn(FD, Sockaddr(2), None, classes="net"),
    "listen": Fn(FD, None, classes="net"),
    "accept": Fn(FD, Sockaddr(2, filled=True), LENGTH, classes="net"),
    "accept4": Fn(FD, Sockaddr(2, filled=True), LENGTH, SOCK_FLAGS, classes="net"),
    "send": Fn(FD, Bytes(2, counted=True), None, MSG_FLAGS, classes="net"),
    "sendto": Fn(FD, Bytes(2, counted=True), None, MSG_FLAGS, Sockaddr(5), None, classes="net"),
    "sendmsg": Fn(FD, Msghdr(), MSG_FLAGS, classes="net"), "sendmmsg": Fn(FD, None, None, MSG_FLAGS, classes="net"),
    "recv": Fn(FD, BytesOut(2), None, MSG_FLAGS, classes="net"),
    "recvfrom": Fn(FD, BytesOut(2), None, MSG_FLAGS, Sockaddr(5, filled=True), LENGTH, classes="net"),
    "recvmsg": Fn(FD, Msghdr(filled=True), MSG_FLAGS, classes="net"),
    "recvmmsg": Fn(FD, None, None, MSG_FLAGS, None, classes="net"),
    "shutdown": Fn(FD, SHUTDOWN_HOW, classes="net"),
    "getsockopt": Fn(FD, SOCKOPT_LEVEL, SOCKOPT_NAME, SockoptValue(1, 4, filled=True), LENGTH, classes="net"),
    "setsockopt": Fn(FD, SOCKOPT_LEVEL, SOCKOPT_NAME, SockoptValue(1, 4), None, classes="net"),
    "getsockname": Fn(FD, Sockaddr(2, filled=True), LENGTH, classes="net"),
    "getpeername": Fn(FD, Sockaddr(2, filled=True), LENGTH, classes="net"),
    "getaddrinfo": Fn(STRING, STRING, None, None, ret=EAI, classes="net"),
    "getnameinfo": Fn(None, None, None, None, None, None, None, ret=EAI, classes="net"),
    "gethostbyname": Fn(STRING, classes="net"), "gethostbyname2": Fn(STRING, ADDRESS_FAMILY, classes="net"),
    "gethostbyaddr": Fn(None, None, ADDRESS_FAMILY, classes="net"),
    # processes
    "fork": Fn(classes="process", forks=True),
    "execve": Fn(PATH, ARGV, ENVP, classes="process", exec_=True),
    "execv": Fn(PATH, ARGV, classes="process", exec_=True),
    "execvp": Fn(PATH, ARGV, classes="process", exec_=True),
    "execvpe": Fn(PATH, ARGV, ENVP, classes="process", exec_=True),
    "execveat": Fn(DIRFD, PATH, ARGV, ENVP, _AT, classes="process", exec_=True),
    "fexecve": Fn(FD, ARGV, ENVP, classes="process", exec_=True),
    "posix_spawn": Fn(None, PATH, None, None, ARGV, ENVP, ret=ERRNO_RESULT, classes="process"),
    "posix_spawnp": Fn(None, PATH, None, None, ARGV, ENVP, ret=ERRNO_RESULT, classes="process"),
    "system": Fn(STRING, classes="process"), "popen": Fn(STRING, STRING, classes="process"),
    "pclose": Fn(None, classes="process"),
    "wait": Fn(WAIT_STATUS, classes="process", wait=True),
    "waitpid": Fn(None, WAIT_STATUS, WAIT_OPTIONS, classes="process", wait=True),
    "wait3": Fn(WAIT_STATUS, WAIT_OPTIONS, None, classes="process", wait=True),
    "wait4": Fn(None, WAIT_STATUS, WAIT_OPTIONS, None, classes="process", wait=True),
    "waitid": Fn(IDTYPE, None, SIGINFO, WAIT_OPTIONS, classes="process", wait=True),
    "exit": Fn(None, classes="process", noreturn=True), "_exit": Fn(None, classes="process", noreturn=True),
    "_Exit": Fn(None, classes="process", noreturn=True), "abort": Fn(classes="process", noreturn=True),
    "pthread_exit": Fn(None, noreturn=True),
    "kill": Fn(None, SIGNAL, classes="process signal", may_die=True),
    "killpg": Fn(None, SIGNAL, classes="process signal", may_die=True),
    "raise": Fn(SIGNAL, classes="process signal", may_die=True),
    "pthread_kill": Fn(None, SIGNAL, ret=ERRNO_RESULT, classes="signal", may_die=True),
    "pthread_create": Fn(None, None, None, None, ret=ERRNO_RESULT, classes="process"),
    "pthread_join": Fn(None, None, ret=ERRNO_RESULT, classes="process"),
    "setsid": Fn(classes="process"), "setpgid": Fn(None, None, classes="process"),
    # (getpriority's result is the nice value, the system call's 20 minus it: strace shows 20 for nice 0)
    "getpriority": Fn(PRIO_WHICH, None), "setpriority": Fn(PRIO_WHICH, None, None),
    "setuid": Fn(ID, classes="process"), "setgid": Fn(ID, classes="process"),
    "sched_getaffinity": Fn(None, None, CpuSet(1, filled=True)), "sched_setaffinity": Fn(None, None, CpuSet(1)),
    "prctl": Fn(PRCTL_OPTION, *[PrctlArg(i) for i in range(1, 5)], ret=PrctlArg(result=True), classes="process"),
    # the rest of pthreads fail as pthread_create does: 0, or an error number (in no class; pthread_barrier_wait
    # is not here: its -1 is PTHREAD_BARRIER_SERIAL_THREAD, a success)
    **{name: Fn(ret=ERRNO_RESULT) for name in (
        "pthread_mutex_lock pthread_mutex_trylock pthread_mutex_timedlock pthread_mutex_unlock pthread_mutex_init "
        "pthread_mutex_destroy pthread_mutex_consistent pthread_mutexattr_init pthread_mutexattr_settype "
        "pthread_cond_wait pthread_cond_timedwait pthread_cond_signal pthread_cond_broadcast pthread_cond_init "
        "pthread_cond_destroy pthread_rwlock_rdlock pthread_rwlock_wrlock pthread_rwlock_tryrdlock "
        "pthread_rwlock_trywrlock pthread_rwlock_unlock pthread_rwlock_init pthread_rwlock_destroy "
        "pthread_spin_lock pthread_spin_trylock pthread_spin_unlock pthread_detach pthread_cancel pthread_once "
        "pthread_key_create pthread_key_delete pthread_setspecific pthread_attr_init pthread_attr_destroy "
        "pthread_attr_setstacksize pthread_attr_setdetachstate pthread_getattr_np pthread_setaffinity_np "
        "pthread_getaffinity_np pthread_setname_np pthread_getname_np pthread_setschedparam "
        "pthread_getschedparam pthread_barrier_init pthread_barrier_destroy").split()},
    # memory
    "malloc": Fn(None, classes="memory"), "calloc": Fn(None, None, classes="memory"),
    "realloc": Fn(HEX, None, classes="memory"), "free": Fn(None, classes="memory"),
    "reallocarray": Fn(HEX, None, None, classes="memory"),
    "posix_memalign": Fn(None, None, None, ret=ERRNO_RESULT, classes="memory"),
    "aligned_alloc": Fn(None, None, classes="memory"),
    "memalign": Fn(None, None, classes="memory"), "valloc": Fn(None, classes="memory"),
    "mmap": Fn(HEX, None, PROT, MAP_FLAGS, FD, None, classes="memory", fails=-1),
    "munmap": Fn(HEX, None, classes="memory"),
    "mprotect": Fn(HEX, None, PROT, classes="memory"),
    "madvise": Fn(HEX, None, MADVISE, classes="memory"),
    "brk": Fn(HEX, classes="memory"), "sbrk": Fn(None, classes="memory", fails=-1),
    "shmat": Fn(None, HEX, None, fails=-1),
    # memory by its address, never data (in no class: %memory is what sweep injects ENOMEM into)
    "mlock": Fn(HEX, None), "munlock": Fn(HEX, None), "mlock2": Fn(HEX, None, MLOCK_FLAGS),
    "msync": Fn(HEX, None, MSYNC_FLAGS), "mincore": Fn(HEX, None, PageVector(1)),
    "posix_madvise": Fn(HEX, None, None, ret=ERRNO_RESULT),
    "bzero": Fn(HEX, None), "explicit_bzero": Fn(HEX, None),
    "qsort": Fn(HEX, None, None, None), "bsearch": Fn(HEX, HEX, None, None, None),
    # time
    "time": Fn(TIME_OUT, ret=TIME_RESULT, classes="time"), "gettimeofday": Fn(None, None, classes="time"),
    "clock_gettime": Fn(CLOCK, None, classes="time"), "clock_getres": Fn(CLOCK, None, classes="time"),
    "clock_nanosleep": Fn(CLOCK, TIMER_FLAGS, None, None, ret=ERRNO_RESULT, classes="time"),
    "nanosleep": Fn(None, None, classes="time"), "sleep": Fn(None, classes="time"),
    "usleep": Fn(None, classes="time"), "alarm": Fn(None, classes="time"),
    "setitimer": Fn(ITIMER_WHICH, None, None, classes="time"), "getitimer": Fn(ITIMER_WHICH, None, classes="time"),
    "timer_create": Fn(CLOCK, None, None, classes="time"), "timer_settime": Fn(None, None, None, None, classes="time"),
    "localtime": Fn(None, classes="time"), "localtime_r": Fn(None, None, classes="time"),
    "gmtime": Fn(None, classes="time"), "gmtime_r": Fn(None, None, classes="time"),
    "mktime": Fn(None, classes="time"),
    # the environment
    "getenv": Fn(STRING, ret=StringResult(), classes="env"),
    "secure_getenv": Fn(STRING, ret=StringResult(), classes="env"),
    "setenv": Fn(STRING, STRING, None, classes="env"), "unsetenv": Fn(STRING, classes="env"),
    "putenv": Fn(None, classes="env"), "clearenv": Fn(classes="env"),
    # resource limits (no class: strace has none for them either)
    "getrlimit": Fn(RLIMIT_RESOURCE, None), "setrlimit": Fn(RLIMIT_RESOURCE, None),
    "prlimit": Fn(None, RLIMIT_RESOURCE, None, None),
    # signals
    "sigaction": Fn(SIGNAL, Sigaction(), Sigaction(filled=True), classes="signal"),
    "signal": Fn(SIGNAL, SIG_HANDLER, ret=SIG_HANDLER, classes="signal", fails=-1),
    "sigprocmask": Fn(SIGPROCMASK_HOW, SIGSET, SIGSET_OUT, classes="signal"),
    "pthread_sigmask": Fn(SIGPROCMASK_HOW, SIGSET, SIGSET_OUT, ret=ERRNO_RESULT, classes="signal"),
    "sigsuspend": Fn(SIGSET, classes="signal"), "sigwait": Fn(SIGSET, None, classes="signal"),
    "sigtimedwait": Fn(SIGSET, None, None, classes="signal"),
}

# The large-file twins (open64, fstat64, ...) are the same functions for a trace: described once.
TWINS = dict({name + "64": name for name in FUNCTIONS}, preadv64v2="preadv2", pwritev64v2="pwritev2")

# The checked versions that a program built with -D_FORTIFY_SOURCE (as Debian builds tar, xz, python3) calls
# instead (their prototypes: glibc's bits/*2.h, declared only in such a build, so written out here). `open`
# stands for them too (-e, --inject), as strace's open stands for the system call whatever called it; each is
# traced under its own name, as ltrace shows it. {name: (the function it checks, prototype)}. Those whose
# arguments start as their function's are described by its entry; __recv_chk and __recvfrom_chk put their
# buffer's size before the flags and have their own.
FORTIFIED = {
    "__open_2": ("open", "int __open_2(const char *file, int oflag)"),
    "__open64_2": ("open64", "int __open64_2(const char *file, int oflag)"),
    "__openat_2": ("openat", "int __openat_2(int fd, const char *file, int oflag)"),
    "__openat64_2": ("openat64", "int __openat64_2(int fd, const char *file, int oflag)"),
    "__read_chk": ("read", "ssize_t __read_chk(int fd, void *buf, size_t nbytes, size_t buflen)"),
    "__pread_chk": ("pread", "ssize_t __pread_chk(int fd, void *buf, size_t nbytes, off_t offset, size_t buflen)"),
    "__pread64_chk": ("pread64",
                      "ssize_t __pread64_chk(int fd, void *buf, size_t nbytes, off64_t offset, size_t buflen)"),
    "__readlink_chk": ("readlink", "ssize_t __readlink_chk(const char *path, char *buf, size_t len, size_t buflen)"),
    "__readlinkat_chk": ("readlinkat", "ssize_t __readlinkat_chk(int fd, const char *path, char *buf, size_t len, "
                                       "size_t buflen)"),
    "__getcwd_chk": ("getcwd", "char *__getcwd_chk(char *buf, size_t size, size_t buflen)"),
    "__realpath_chk": ("realpath", "char *__realpath_chk(const char *name, char *resolved, size_t resolvedlen)"),
    "__poll_chk": ("poll", "int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen)"),
    "__ppoll_chk": ("ppoll", "int __ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout, "
                             "const sigset_t *ss, size_t fdslen)"),
    "__recv_chk": ("recv", "ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)"),
    "__recvfrom_chk": ("recvfrom", "ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, "
                                   "struct sockaddr *addr, socklen_t *addr_len)"),
    # not checked, but signal's other names all the same (__sysv_signal: signal() in a program built with -std=c99)
    "__sysv_signal": ("signal", "__sighandler_t __sysv_signal(int sig, __sighandler_t handler)"),
    "sysv_signal": ("signal", "__sighandler_t sysv_signal(int sig, __sighandler_t handler)"),
    "bsd_signal": ("signal", "__sighandler_t bsd_signal(int sig, __sighandler_t handler)"),
}
_OWN_ENTRIES = {
    "__recv_chk": Fn(FD, BytesOut(2), None, None, MSG_FLAGS),
    "__recvfrom_chk": Fn(FD, BytesOut(2), None, None, MSG_FLAGS, Sockaddr(6, filled=True), LENGTH),
}

CLASSES = {}   # each name stands for the function and its large-file twin (tracing.select)
for _name, _fn in FUNCTIONS.items():
    for _class in _fn.classes:
        CLASSES.setdefault(_class, []).append(_name)
DEFAULT_CLASSES = ("file", "desc", "net", "process", "time", "env")
EXEC = tuple(name for name, fn in FUNCTIONS.items() if fn.exec)
WAITS = tuple(name for name, fn in FUNCTIONS.items() if fn.wait)
NORETURN = tuple(name for name, fn in FUNCTIONS.items() if fn.noreturn and not fn.exec)


# Constants of the headers read (tracing.SYMBOL_HEADERS) whose names start with E but are no errno.
NOT_ERRNO = ("EAI_", "EPOLL", "EFD_")


def errno_values(symbols):
    """{name: value} of the errno constants among the headers' (tracing.symbols): below 4096, as the kernel's are
    (linux/magic.h's EXT2_SUPER_MAGIC is no errno)."""
    return {n: v for n, v in symbols.items() if n.startswith("E") and not n.startswith(NOT_ERRNO) and 0 < v < 4096}


def named_constants():
    """Every constant the kinds name (the tables' names, captures' values): the symbols probe prints them all."""
    names = set()
    kinds = [k for fn in FUNCTIONS.values() for k in fn.kinds + (fn.ret,) if k is not None]
    kinds += [v for v in globals().values() if isinstance(v, Kind)]
    for kind in kinds:
        for attr in ("names", "bits", "low", "NO_ARG", "ONE_ARG", "FILLED_INTS", "LOCKS", "INT_POINTERS",
                     "INT_VALUES"):
            value = getattr(kind, attr, None)
            if isinstance(value, (tuple, list)):
                names.update(value)
        for sub in getattr(kind, "cases", {}).values():
            names.update(sub.names)
        names.update(getattr(kind, "cases", {}).keys())
    return names


def described(symbol):
    """The table's entry for a function (its large-file twin's, its checked version's too), or None."""
    if symbol in FORTIFIED:
        return _OWN_ENTRIES.get(symbol) or described(FORTIFIED[symbol][0])
    return FUNCTIONS.get(symbol) or FUNCTIONS.get(TWINS.get(symbol, ""))


def fortified_of(name):
    """The checked versions of a function (open: __open_2), in FORTIFIED's order."""
    return [checked for checked, (base, _) in FORTIFIED.items() if base == name]


def checks(symbol):
    """The function a checked version checks (__open64_2: open64), or None."""
    return FORTIFIED[symbol][0] if symbol in FORTIFIED else None


# ---- kinds from a prototype ---------------------------------------------------------------------------------

# Parameter names that hold a path, or a descriptor, in the headers' prototypes.
PATH_PARAMS = ("file", "path", "filename", "pathname", "oldpath", "newpath", "old", "new", "from", "to", "dir",
               "name", "target", "linkpath", "template", "resolved", "special_file", "dev", "dir_name")
FD_PARAMS = ("fd", "fildes", "sockfd")
LENGTH_PARAMS = ("n", "len", "num", "count", "size", "length", "nbytes", "inl")
# Structs a trace shows by their members, as strace does (their layouts measured by layouts.py).
SHOWN_STRUCTS = ("struct timespec", "struct timeval", "struct stat", "struct stat64", "struct statx",
                 "struct itimerspec", "struct itimerval", "struct timezone", "struct rlimit", "struct utsname",
                 "struct statfs", "struct statfs64")


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
        if ctype.spelling.strip() in ("uid_t", "gid_t"):
            return ID
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
        if returns_int:
            return BytesOut(i + 1)
        return StringOut(upto=i + 1) if spelling == "char*" else HEX   # a void * is never a string (realloc's)
    return _type_kind(p.type)


def _result_kind(proto):
    if proto.ret.kind == "bytes" or proto.ret.spelling.replace(" ", "") == "char*":
        return StringResult()
    return _type_kind(proto.ret)


class Plan:
    """A traced function, described: its prototype, the kind of each argument and of its result, how it fails
    and returns (see Fn), and what its records keep (the kinds' captures)."""

    def __init__(self, proto, kinds, ret, fn, hidden=False):
        self.proto = proto
        self.hidden = hidden            # traced for the reader's sake only: a wait that tells a child's end
        self.kinds = kinds              # per argument (the variadic ones passed too)
        self.ret = ret
        self.exec = fn.exec
        self.noreturn = fn.noreturn     # recorded at entry too (exec returns only when it fails; exit never)
        self.may_die = fn.may_die       # recorded at entry too: the call may end its own process (kill)
        self.forks = fn.forks
        self.wait = fn.wait
        self.fail_value = fn.fails if fn.fails is not None else failure_value(proto)
        self.fails_with_result = fn.fails_with_result   # returns 0, or an error number (errno left alone)
        params = self.params
        self.captures = [c for i, k in enumerate(kinds) for c in k.captures(i, params)] + ret.captures(RET, params)
        _mark_shared(self.captures)

    @property
    def params(self):
        return list(self.proto.params) + list(self.proto.extra)

    @property
    def symbol(self):
        return self.proto.symbol


def _mark_shared(captures):
    """A fixed-size struct passed in, beside one the call fills: SHARED with it, in case the caller passed the same
    memory as both (the one passed in is then only known before the call)."""
    def fixed(c, whens):
        return c.kind == CAP_STRUCT and c.length == LEN_FIXED and c.which != RET and c.when in whens and not c.only_if
    for c in captures:
        out = next((o for o in captures if fixed(o, (IF_OK,)) and o.which != c.which), None)
        if out and fixed(c, (ALWAYS,)) and not any(o.which == c.which and o is not c for o in captures):
            c.when, c.ref = SHARED, out.which


_PLAIN = Fn()


def plan(proto, layouts=None, hidden=False):
    """A function's description, from the table or its prototype. layouts: {struct name: layout} of the structs
    (SHOWN_STRUCTS) its parameters point to, as layouts.measure gives them; a struct without one is an
    address. hidden: traced, not shown (Plan.hidden)."""
    layouts = layouts or {}
    params = list(proto.params) + list(proto.extra)
    entry = described(proto.symbol) or _PLAIN
    returns_int = proto.ret.kind == "int"
    kinds = []
    for i in range(len(params)):
        kind = entry.kinds[i] if i < len(entry.kinds) else None
        kind = kind or default_kind(params, i, returns_int)
        if isinstance(kind, Struct):
            layout = layouts.get(kind.struct_name)
            kind = Struct(kind.struct_name, kind.filled, kind.changed, layout["size"]) if layout else HEX
        kinds.append(kind)
    ret = entry.ret or _result_kind(proto)
    return Plan(proto, kinds, ret, entry, hidden)


def returns_error_number(proto):
    """Does the function fail by returning an error number, with errno left alone (posix_fadvise, pthread_create:
    the table's ERRNO_RESULT)?"""
    return (described(proto.symbol) or _PLAIN).fails_with_result


def failure_value(proto):
    """What a function returns on failure, by its prototype: -1 (signed integers), NULL; else None. (The table
    says otherwise for a few: mmap's MAP_FAILED.)"""
    entry = described(proto.symbol)
    if entry is not None and entry.fails is not None:
        return entry.fails
    if proto.ret.kind == "int" and proto.ret.signed:
        return -1
    if proto.ret.kind in ("pointer", "bytes"):
        return 0
    return None


def struct_names(prototypes):
    """The structs a trace of these prototypes shows by their members (to measure their layouts)."""
    names = {struct_pointee(p.type) for proto in prototypes for p in list(proto.params) + list(proto.extra)}
    names |= {k.struct_name for proto in prototypes for k in (described(proto.symbol) or _PLAIN).kinds
              if isinstance(k, Struct)}
    return names - {None}
