"""Differential testing of `mrhooker trace` against strace (and, for library functions, ltrace or the headers).

A program runs twice in the same fresh directory: under `strace -f` (system calls) and under `mrhooker trace -f`
(library calls). Both outputs are parsed into calls; each library call is paired with the system call glibc 2.36
makes for it (MAPPING, verified with strace on this machine), on the same process or thread, in order (an
order-preserving alignment per thread: Comparison._align); and the two are compared field by field, after the mapping's transform of the library call's arguments into the system
call's. Whatever disagrees is a Disagreement, unless DELIBERATE lists it (with the reason).

What compares how:
- fields are split at top-level commas (quotes, braces, brackets, parentheses and /* comments */ respected) and
  compared as text, except that
- two addresses (0x...) agree (an address is an address), as members too (iov_base=0x...), but an address never
  agrees with a decoded value;
- process and thread ids agree when they name the same process of the two runs (pids differ between runs: the
  processes are paired by the forks that made them);
- values that change from run to run (clocks read, what a call leaves of a timeout, a kernel's garbage in
  waitid's si_utime, an ephemeral port) are compared by their shape alone (digits as N);
- results compare as value, errno name, errno text and strace's note (`(Timeout)`, `(flags O_RDWR)`, ...).
"""
import json
import re
import subprocess

from mrhooker import tracespec

# ---- parsing ----------------------------------------------------------------------------------------------

_OPEN = {"(": ")", "[": "]", "{": "}"}


def _scan(text, start, stop_chars):
    """Index of the first of stop_chars at nesting depth 0 from start (quotes, brackets and /* */ skipped), or
    len(text)."""
    depth, i, n = 0, start, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n - 1 if end < 0 else end + 1
        elif ch in _OPEN:
            depth += 1
        elif ch in ")]}":
            if depth == 0 and ch in stop_chars:
                return i
            depth -= 1
        elif depth == 0 and ch in stop_chars:
            return i
        i += 1
    return n


def split_fields(text):
    """`a, {b, c}, "d, e" /* f, g */` -> ['a', '{b, c}', '"d, e" /* f, g */']."""
    fields, at = [], 0
    text = text.strip()
    if not text:
        return []
    while at <= len(text):
        end = _scan(text, at, ",")
        fields.append(text[at:end].strip())
        at = end + 1
    return fields


class Call:
    """One line: a call's name, its fields, its result (value, errno, errno text, note), and where it was."""

    def __init__(self, tid, name, args, result, line, index):
        self.tid = tid
        self.name = name
        self.args = args
        self.value, self.errno, self.errno_text, self.note = result
        self.line = line
        self.index = index       # position among its thread's calls
        self.paired = False
        self.section = None

    @property
    def result(self):
        text = self.value
        if self.errno:
            text += " %s (%s)" % (self.errno, self.errno_text)
        if self.note is not None:
            text += " (%s)" % self.note
        return text

    def __repr__(self):
        return "<%s %s>" % (self.tid, self.line)


_RESULT = re.compile(r"^(?P<value>\"(?:[^\"\\]|\\.)*\"(?:\.\.\.)?|\S+)"
                     r"(?: (?P<errno>E[A-Z0-9_]+|ERESTART\w*) \((?P<text>[^)]*)\))?(?: \((?P<note>.*)\))?$")


def parse_call(text):
    """`name(fields) = result` -> (name, [field], (value, errno, errno text, note)), or None for other lines."""
    m = re.match(r"([A-Za-z_]\w*)\(", text)
    if not m:
        return None
    close = _scan(text, m.end(), ")")
    if close >= len(text):
        return None
    rest = text[close + 1:].strip()
    rest = re.sub(r"\s+<\d+\.\d+>$", "", rest)                     # -T
    rest = re.sub(r"\s+\((?:INJECTED|DELAYED)\)$", "", rest)
    if not rest.startswith("="):
        return None
    result = rest[1:].strip()
    r = _RESULT.match(result)
    parsed = (r.group("value"), r.group("errno"), r.group("text"), r.group("note")) if r else (result, None, None,
                                                                                               None)
    return m.group(1), split_fields(text[m.end():close]), parsed


class Trace:
    """The calls of one run, per thread, in order; each process's end (`exited with 0`, `killed by SIGKILL`)."""

    def __init__(self):
        self.calls = {}          # tid -> [Call]
        self.order = []          # every Call, in the file's order
        self.exits = {}          # pid -> text between +++
        self.first_tid = None

    def add(self, tid, text, line):
        if self.first_tid is None:
            self.first_tid = tid
        m = re.match(r"\+\+\+ (.*) \+\+\+$", text)
        if m:
            self.exits[tid] = m.group(1)
            return
        parsed = parse_call(text)
        if parsed is None:
            return
        calls = self.calls.setdefault(tid, [])
        call = Call(tid, parsed[0], parsed[1], parsed[2], line, len(calls))
        calls.append(call)
        self.order.append(call)


def parse_strace(text):
    """`strace -f -o` output: `PID name(...) = r`; an <unfinished ...> call is joined with its <... resumed> rest."""
    trace, pending = Trace(), {}
    for line in text.splitlines():
        m = re.match(r"(?:\[pid\s+)?(\d+)\]?\s+(.*)$", line)
        if not m:
            continue
        tid, body = int(m.group(1)), m.group(2)
        if body.endswith("<unfinished ...>"):
            pending[tid] = body[:-len("<unfinished ...>")].rstrip()
            if trace.first_tid is None:
                trace.first_tid = tid
            continue
        resumed = re.match(r"<\.\.\. (\w+) resumed>\s?(.*)$", body)
        if resumed:
            body = pending.pop(tid, resumed.group(1) + "(") + resumed.group(2)
        trace.add(tid, body, "%d %s" % (tid, body))
    return trace


def parse_mrhooker(text, json_text=""):
    """`mrhooker trace -f -o` output: the command's main thread unprefixed, others `[pid N] `. Its pid, which the
    lines don't say, comes from the same run's --json records (the one tid no line is prefixed with)."""
    prefixed = {int(t) for t in re.findall(r"^\[pid (\d+)\] ", text, re.M)}
    tids = {json.loads(line)["tid"] for line in json_text.splitlines() if line.strip()}
    main = (sorted(tids - prefixed) or ["main"])[0]
    trace = Trace()
    trace.first_tid = main
    for line in text.splitlines():
        m = re.match(r"\[pid (\d+)\] (.*)$", line)
        tid, body = (int(m.group(1)), m.group(2)) if m else (main, line)
        trace.add(tid, body, line)
    return trace


# ---- the mapping: library call -> the system call glibc 2.36 makes for it --------------------------------

class Self:
    """A field that is the calling process's (or thread's) own id."""

    def __repr__(self):
        return "<the caller's pid>"


SELF = Self()
SKIP = object()          # a field the library call has no counterpart for


class Rule:
    """syscall: its name; args: library fields -> the system call's (None: not compared at all); pids: indexes
    of the system call's fields that are process ids; result: "pid", "address", "size" (the library's 0 for the
    system call's length, positive), or None (as text); volatile:
    indexes of fields whose numbers change between runs; none_if: library fields -> True when no system call is
    made (the vDSO's clocks); key: the fields that find the system call among its namesakes."""

    def __init__(self, syscall, args=lambda a: a, pids=(), result=None, volatile=(), none_if=None, key=(0,)):
        self.syscall = syscall
        self.args = args
        self.pids = pids
        self.result = result
        self.volatile = volatile
        self.none_if = none_if
        self.key = key


def _timeval_to_timespec(field):
    m = re.fullmatch(r"\{tv_sec=(\d+), tv_usec=(\d+)\}", field)
    return "{tv_sec=%s, tv_nsec=%d}" % (m.group(1), int(m.group(2)) * 1000) if m else field


def _pselect_mask(field):
    return "NULL" if field == "NULL" else "{sigmask=%s, sigsetsize=8}" % field


def _fcntl(a):
    if a[1:2] == ["F_GETOWN"]:        # glibc asks the kernel with F_GETOWN_EX (verified with strace)
        return [a[0], "F_GETOWN_EX", SKIP]
    return a


def _restorer(act):
    """A new action as glibc passes it on: SA_RESTORER and its restorer added (any address agrees), the int
    sa_flags sign-extended into the kernel's unsigned long (SA_RESETHAND is bit 31)."""
    if not act.startswith("{") or "SA_RESTORER" in act:   # (an old action passed back keeps its own)
        return act
    m = re.match(r"(.*sa_flags=)([^,}]*)(.*)}$", act)
    flags = re.sub(r" /\* .* \*/$", "", m.group(2))   # with a named bit, no comment for the unnamed ones
    flags = "SA_RESTORER" + ("" if flags == "0" else "|" + flags)
    if "SA_RESETHAND" in flags:
        flags += "|0xffffffff00000000"
    return "%s%s%s, sa_restorer=0x7f0000000000}" % (m.group(1), flags, m.group(3))


VDSO_CLOCKS = ("CLOCK_REALTIME", "CLOCK_MONOTONIC", "CLOCK_BOOTTIME", "CLOCK_TAI", "CLOCK_REALTIME_COARSE",
               "CLOCK_MONOTONIC_COARSE", "CLOCK_MONOTONIC_RAW", "0", "1", "4", "5", "6", "7", "11")
_STAT = lambda a: ["AT_FDCWD", a[0], a[1], "0"]
_LSTAT = lambda a: ["AT_FDCWD", a[0], a[1], "AT_SYMLINK_NOFOLLOW"]
_FSTAT = lambda a: [a[0], '""', a[1], "AT_EMPTY_PATH"]
_AT_FDCWD = lambda a: ["AT_FDCWD"] + a

# The one table: what each library function becomes in the kernel (glibc 2.36, x86_64), checked with strace.
MAPPING = {
    "open": Rule("openat", _AT_FDCWD, key=(1,)), "open64": Rule("openat", _AT_FDCWD, key=(1,)),
    "openat": Rule("openat", key=(0, 1)), "openat64": Rule("openat", key=(0, 1)),
    # the checked versions a -D_FORTIFY_SOURCE build calls (tar, xz): the same system calls
    "__open_2": Rule("openat", _AT_FDCWD, key=(1,)), "__open64_2": Rule("openat", _AT_FDCWD, key=(1,)),
    "__openat_2": Rule("openat", key=(0, 1)), "__openat64_2": Rule("openat", key=(0, 1)),
    "__read_chk": Rule("read", lambda a: a[:3]),
    "creat": Rule("creat"), "creat64": Rule("creat"),
    "stat": Rule("newfstatat", _STAT, key=(1,)), "stat64": Rule("newfstatat", _STAT, key=(1,)),
    "lstat": Rule("newfstatat", _LSTAT, key=(1,)), "lstat64": Rule("newfstatat", _LSTAT, key=(1,)),
    "fstat": Rule("newfstatat", _FSTAT, key=(0, 1)), "fstat64": Rule("newfstatat", _FSTAT, key=(0, 1)),
    "fstatat": Rule("newfstatat", key=(0, 1)), "fstatat64": Rule("newfstatat", key=(0, 1)),
    "faccessat": Rule("faccessat2", key=(1,)),
    "lseek64": Rule("lseek"), "mmap64": Rule("mmap", result="address", key=(1, 4)),
    "mmap": Rule("mmap", result="address", key=(1, 4)),
    "ftruncate64": Rule("ftruncate"), "fcntl": Rule("fcntl", _fcntl), "fcntl64": Rule("fcntl", _fcntl),
    "posix_fadvise": Rule("fadvise64"), "posix_fadvise64": Rule("fadvise64"),
    "pipe": Rule("pipe2", lambda a: a + ["0"], key=()), "pipe2": Rule("pipe2", key=()),
    "send": Rule("sendto", lambda a: a + ["NULL", "0"]), "recv": Rule("recvfrom", lambda a: a + ["NULL", "NULL"]),
    "select": Rule("pselect6", lambda a: a[:4] + [_timeval_to_timespec(a[4]), "NULL"], key=()),
    "pselect": Rule("pselect6", lambda a: a[:5] + [_pselect_mask(a[5])], key=()),
    "poll": Rule("poll", key=()), "ppoll": Rule("ppoll", lambda a: a + ["8"], key=()),
    # glibc keeps signals 32 and 33 (SIGCANCEL, SIGSETXID) for itself: EINVAL with no system call
    "sigaction": Rule("rt_sigaction", lambda a: [a[0], _restorer(a[1])] + a[2:] + ["8"], key=(),
                      none_if=lambda a: a[0] in ("SIGRTMIN", "SIGRT_1")),
    "sigprocmask": Rule("rt_sigprocmask", lambda a: a + ["8"], key=()),
    "pthread_sigmask": Rule("rt_sigprocmask", lambda a: a + ["8"], key=()),
    "raise": Rule("tgkill", lambda a: [SELF, SELF] + a, pids=(0, 1), key=()),
    "kill": Rule("kill", pids=(0,)),
    "fork": Rule("clone", None, result="pid", key=()),
    "waitpid": Rule("wait4", lambda a: a + ["NULL"], pids=(0,), result="pid"),
    "wait": Rule("wait4", lambda a: ["-1"] + a + ["0", "NULL"], pids=(0,), result="pid"),
    "wait4": Rule("wait4", pids=(0,), result="pid"),
    "waitid": Rule("waitid", lambda a: a + ["NULL"], pids=(1,), key=()),
    "execv": Rule("execve", lambda a: a + [SKIP]),
    "exit": Rule("exit_group", key=()), "_exit": Rule("exit_group", key=()), "_Exit": Rule("exit_group", key=()),
    "nanosleep": Rule("clock_nanosleep", lambda a: ["CLOCK_REALTIME", "0"] + a, key=()),
    "clock_nanosleep": Rule("clock_nanosleep", key=()),
    "clock_gettime": Rule("clock_gettime", volatile=(1,), none_if=lambda a: a[0] in VDSO_CLOCKS, key=()),
    "getsockname": Rule("getsockname", volatile=(1,)),
    "statfs64": Rule("statfs"), "fstatfs64": Rule("fstatfs"),
    "futimens": Rule("utimensat", lambda a: [a[0], "NULL"] + a[1:] + ["0"]),
    # flags 0: the kernel's fchmodat has no flags argument (AT_SYMLINK_NOFOLLOW goes through an O_PATH open)
    "fchmodat": Rule("fchmodat", lambda a: a[:3] if a[3:] == ["0"] else a),
    "socket": Rule("socket", key=()), "socketpair": Rule("socketpair", key=()),
    "eventfd": Rule("eventfd2", key=()),
    "getrlimit": Rule("prlimit64", lambda a: ["0", a[0], "NULL", a[1]], key=(1,)),
    "setrlimit": Rule("prlimit64", lambda a: ["0", a[0], a[1], "NULL"], key=(1,)),
    # glibc returns 0, the system call the size of the kernel's mask (glibc zeroes the caller's set past it)
    "sched_getaffinity": Rule("sched_getaffinity", result="size"),
}
# Functions whose library line has no system call to compare with (library functions strace can't see).
NO_SYSCALL = ("getaddrinfo", "freeaddrinfo", "getenv", "fopen", "fopen64", "fclose", "fdopen", "opendir",
              "closedir", "readdir", "readdir64", "fdopendir", "malloc", "free", "localtime", "isatty")


def rule_for(name):
    return MAPPING.get(name) or Rule(name)


def syscalls_for(functions):
    """The system calls strace must trace for these library functions (and fork's children: clone, clone3)."""
    names = {rule_for(f).syscall for f in functions if f not in NO_SYSCALL}
    return sorted(names | {"clone", "clone3", "execve", "exit_group"})


# ---- deliberate differences -------------------------------------------------------------------------------

class Deliberate:
    """A difference the test accepts: (function, field) with the reason. field: a system call argument's index,
    "result value" (the value only: the errno and strace's note are still compared), "*" (the whole argument
    list), "result note" (strace's parenthesised note after the result), or "child's line" (fork's). normalize: when
    given, the two are still compared after it. when: a test
    of the library call's fields, for a difference that only some calls have."""

    def __init__(self, function, field, reason, normalize=None, when=None):
        self.function, self.field, self.reason = function, field, reason
        self.normalize, self.when = normalize, when


_NULL_BUFFER = lambda a: a[:1] == ["NULL"]
DELIBERATE = [
    Deliberate("fork", "*", "fork() has no arguments; the clone() glibc makes for it has three that the library "
               "call never sees (its result, the child's pid, is still compared)"),
    Deliberate("fork", "child's line", "mrhooker also shows the child's return from fork (`[pid C] fork() = 0`), as "
               "ltrace does; strace shows the clone once, in the parent"),
    Deliberate("getcwd", "result value", "the library returns the buffer (shown as its string) or NULL; the system "
               "call returns the length or -1"),
] + [Deliberate(name, "result value", "the library returns the error number (`29 ESPIPE (Illegal seek)`), the "
                "system call -1 and errno: the name and text are still compared")
     for name in list(tracespec.FUNCTIONS) + list(tracespec.TWINS)
     if tracespec.described(name).ret is tracespec.ERRNO_RESULT] + [
    Deliberate("getpriority", "result value", "the library returns the nice value (-20..19), the system call 20 "
               "minus it (strace shows 20 for nice 0): the errno is still compared"),
    Deliberate("getcwd", 0, "getcwd(NULL, 0) has glibc allocate the buffer: the system call gets glibc's buffer and "
               "PATH_MAX, the library call NULL and 0", when=_NULL_BUFFER),
    Deliberate("getcwd", 1, "(the same)", when=_NULL_BUFFER),
    Deliberate("execve", 2, "the environment under mrhooker really holds mrhooker's own variables (LD_PRELOAD, "
               "MRHOOKER_*): its size differs, the address is an address",
               normalize=lambda s: re.sub(r"0x[0-9a-f]+ /\* \d+ vars \*/", "0x... /* N vars */", s)),
    Deliberate("execv", 2, "execv passes the caller's environment, which the library call doesn't take"),
    Deliberate("ioctl", 1, "strace names every request that shares a number (`BTRFS_IOC_CLONE or FICLONE`); mrhooker "
               "the one the headers define", normalize=lambda s: s.split(" or ")[-1]),
    Deliberate("ppoll", "result note", "ppoll's timeout is const for its caller: what the kernel leaves of it (strace's "
               "`left {...}`) is in glibc's copy, which a library call never sees",
               normalize=lambda s: re.sub(r", left \{[^}]*\}$", "", s or "")),
    Deliberate("select", "result note", "the library call's timeout is a struct timeval (tv_usec); strace shows the "
               "timespec of the pselect6 system call glibc makes of it (tv_nsec): what is left is compared by shape",
               normalize=lambda s: s),
]


def deliberate(function, field, args=None):
    for d in DELIBERATE:
        if d.function == function and d.field == field and (d.when is None or args is None or d.when(args)):
            return d
    return None


# ---- pairing and comparing --------------------------------------------------------------------------------

class Disagreement:
    def __init__(self, section, function, field, strace, mrhooker, strace_line, mrhooker_line, kind=""):
        self.section, self.function, self.field = section, function, field
        self.strace, self.mrhooker = strace, mrhooker
        self.strace_line, self.mrhooker_line = strace_line, mrhooker_line
        self.kind = kind

    def __str__(self):
        return "[%s] %s %s%s: strace %s | mrhooker %s\n      strace:   %s\n      mrhooker: %s" % (
            self.section, self.function, self.field, " (%s)" % self.kind if self.kind else "", self.strace,
            self.mrhooker, self.strace_line, self.mrhooker_line)


ADDRESS = re.compile(r"0x[0-9a-f]+$")
INT = re.compile(r"-?\d+$")
# What a call leaves of a timeout is compared by its shape; select's is a struct timeval for the library call and a
# struct timespec for the pselect6 system call glibc makes (see DELIBERATE): tv_usec and tv_nsec read alike.
# A file system's free blocks and inodes are whatever other processes left them between the two runs.
_RUN_TO_RUN = [(re.compile(r"(si_[us]time=)\d+(?: /\* [^*]* \*/)?"), r"\1N"),
               (re.compile(r"\b(f_bfree|f_bavail|f_ffree)=\d+"), r"\1=N"),
               (re.compile(r"(left \{tv_sec=)\d+, tv_[un]sec=\d+"), r"\1N, tv_Nsec=N")]


def _steady(text):
    for pattern, repl in _RUN_TO_RUN:
        text = pattern.sub(repl, text)
    return text


# an address as a member: iov_base=0x7ffc..., a handler (sa_handler=, sa_restorer=), and a msghdr's name or control
# that wasn't read (msg_control=0x7ffc...)
_MEMBER_ADDRESS = re.compile(r"(?:(?<=_base=)|(?<=_handler=)|(?<=_restorer=)|(?<=msg_name=)|(?<=msg_control=))"
                             r"0x[0-9a-f]+\b")


def _shape(text):
    return re.sub(r"\d+", "N", text)


def _kind(strace, mrhooker):
    """A hint at what differs, for the report."""
    s_parts, m_parts = strace.split("|"), mrhooker.split("|")
    if len(s_parts) > 1 and sorted(s_parts) == sorted(m_parts):
        return "same flags, other order"
    if strace.startswith("-1 E") and not mrhooker.startswith("-1 E"):
        return "a failure strace shows as one"
    if ADDRESS.match(mrhooker) and not ADDRESS.match(strace):
        return "strace decodes what mrhooker shows as an address"
    if INT.match(mrhooker) and not INT.match(strace):
        return "strace names what mrhooker shows as a number"
    return ""


class Comparison:
    """Pairs a mrhooker trace with a strace trace of the same program and lists what disagrees. A library call is
    paired with the next system call of the mapped name on the same thread (after the last one paired with that
    name) whose key fields agree."""

    def __init__(self, strace, mrhooker, ignore=(), unsteady=(), sections=False, reverse=False):
        self.s, self.m = strace, mrhooker
        self.ignore = set(ignore)         # library functions not compared (timing-dependent counts, say)
        self.unsteady = set(unsteady)     # (function, field): data that differs from run to run (random bytes)
        self.disagreements = []
        self.pairs = []                   # (mrhooker Call, strace Call)
        self.pid_map = {}                 # mrhooker tid -> strace tid
        self._map_processes()
        if sections:
            self._sections()
        self._pair()
        if reverse:
            self._unpaired_syscalls()
        self._exits()

    # -- which process is which: the main ones, then the children each fork made, in order ----------------

    def _map_processes(self):
        self.pid_map[self.m.first_tid] = self.s.first_tid
        s_children = {}
        for c in self.s.order:
            if c.name in ("clone", "clone3", "fork", "vfork") and INT.match(c.value) and int(c.value) > 0:
                flags = " ".join(c.args)
                if "CLONE_VM" not in flags and "CLONE_THREAD" not in flags:
                    s_children.setdefault(c.tid, []).append(int(c.value))
        m_children = {}
        for c in self.m.order:
            if c.name == "fork" and INT.match(c.value) and int(c.value) > 0:
                m_children.setdefault(c.tid, []).append(int(c.value))
        changed = True
        while changed:
            changed = False
            for m_tid, s_tid in list(self.pid_map.items()):
                for m_child, s_child in zip(m_children.get(m_tid, []), s_children.get(s_tid, [])):
                    if m_child not in self.pid_map:
                        self.pid_map[m_child] = s_child
                        changed = True
        # threads and processes not made by a traced fork: in order of first appearance
        s_taken = set(self.pid_map.values())
        s_rest = [t for t in self.s.calls if t not in s_taken]
        m_rest = [t for t in self.m.calls if t not in self.pid_map]
        for m_tid, s_tid in zip(m_rest, s_rest):
            self.pid_map[m_tid] = s_tid
        self.s_to_m = {s: m for m, s in self.pid_map.items()}

    def _sections(self):
        """The C corpus marks its sections with access("=NAME", F_OK): each call's section is its thread's last
        marker, or (for a child) its parent's when it forked."""
        for trace, children in ((self.m, "fork"), (self.s, "clone")):
            current, last = {}, None
            for c in trace.order:
                if c.name == "access" and c.args and c.args[0].startswith('"='):
                    current[c.tid] = last = c.args[0][2:-1]
                if c.tid not in current:
                    current[c.tid] = last
                c.section = current[c.tid]
                if c.name == children and INT.match(c.value) and int(c.value) > 0:
                    current[int(c.value)] = current[c.tid]

    # -- pairing ---------------------------------------------------------------------------------------------

    def _pair(self):
        """Per thread, the order-preserving pairing of library calls with system calls that pairs the most calls
        (and, among those, agrees on the most fields): the next system call of the expected name is usually the
        one, but not when the dynamic loader or libc itself made a namesake before it (ld.so's read of libc.so on
        fd 3 before the program's own read on fd 3)."""
        wanted = {}
        for mc in self.m.order:
            if mc.name in NO_SYSCALL or mc.name in self.ignore:
                continue
            rule = rule_for(mc.name)
            if mc.name == "fork" and mc.value == "0" and deliberate("fork", "child's line"):
                continue
            if rule.none_if and rule.none_if(mc.args):
                continue
            if self.pid_map.get(mc.tid) is None:
                self._add(mc, None, "*", "(no such process)", "")
                continue
            wanted.setdefault(mc.tid, []).append((mc, rule, rule.args(mc.args) if rule.args else None))
        for m_tid, calls in wanted.items():
            syscalls = self.s.calls.get(self.pid_map[m_tid], [])
            for (mc, rule, expected), sc in zip(calls, self._align(calls, syscalls)):
                if sc is None:
                    self._add(mc, None, "call", "(no %s system call)" % rule.syscall, "(a line)")
                    continue
                sc.paired = True
                self.pairs.append((mc, sc))
                self._compare(mc, sc, rule, expected)

    def _align(self, calls, syscalls):
        """[system call or None] for each (library call, rule, expected fields): the longest common subsequence
        of the two, where a library call may stand for a system call of its mapped name, weighted by the fields
        that agree (key fields most: a namesake whose key differs is paired only when nothing better is left)."""
        by_name = {}
        for j, sc in enumerate(syscalls):
            by_name.setdefault(sc.name, []).append(j)
        weights = []
        for mc, rule, expected in calls:
            row = {}
            for j in by_name.get(rule.syscall, ()):
                sc = syscalls[j]
                if self._key_agrees(rule, mc, expected, sc):
                    agree = 0 if expected is None else sum(
                        self._same_field(rule, i, e, s, mc) for i, (e, s) in enumerate(zip(expected, sc.args)))
                    row[j] = 1000 + agree + (sc.value == mc.value)
                else:
                    row[j] = 1   # a namesake whose key differs: paired (and its fields compared) only if no other is
            weights.append(row)
        n, m = len(calls), len(syscalls)
        score = [[0] * (m + 1) for _ in range(n + 1)]
        for i in range(n - 1, -1, -1):
            here, below, row = score[i], score[i + 1], weights[i]
            for j in range(m - 1, -1, -1):
                best = below[j] if below[j] > here[j + 1] else here[j + 1]
                w = row.get(j)
                if w is not None and below[j + 1] + w > best:
                    best = below[j + 1] + w
                here[j] = best
        chosen, i, j = [], 0, 0
        while i < n:
            w = weights[i].get(j) if j < m else None
            if j < m and w is not None and score[i][j] == score[i + 1][j + 1] + w:
                chosen.append(syscalls[j])
                i, j = i + 1, j + 1
            elif j < m and score[i][j] == score[i][j + 1]:
                j += 1
            else:
                chosen.append(None)
                i += 1
        return chosen

    def _key_agrees(self, rule, mc, expected, sc):
        if expected is None:
            return True
        for i in rule.key:
            if i >= len(expected) or i >= len(sc.args):
                return False
            e, s = expected[i], sc.args[i]
            if e is SKIP:
                continue
            simple = lambda v: isinstance(v, str) and (INT.match(v) or v.startswith('"') or v == "AT_FDCWD")
            if simple(e) and simple(s) and not self._same_field(rule, i, e, s, mc):
                return False
        return True

    def _same_pid(self, s_value, m_value, mc):
        if m_value is SELF:
            m_value = mc.tid
        if not isinstance(m_value, int):
            if not INT.match(m_value):
                return False
            m_value = int(m_value)
        if not INT.match(s_value):
            return False
        if m_value <= 0:
            return int(s_value) == m_value
        return self.pid_map.get(m_value) == int(s_value)

    def _same_field(self, rule, i, expected, strace, mc):
        if expected is SKIP:
            return True
        if i in rule.pids or expected is SELF:
            return self._same_pid(strace, expected, mc)
        e, s = _steady(expected), _steady(strace)
        # a child's pid inside a struct (waitid's si_pid): through the pairing of the two runs' processes
        e = re.sub(r"(si_pid=)(\d+)", lambda m: m.group(1) + str(self.pid_map.get(int(m.group(2)), m.group(2))), e)
        if ADDRESS.match(e) and ADDRESS.match(s):
            return True
        e, s = _MEMBER_ADDRESS.sub("0x...", e), _MEMBER_ADDRESS.sub("0x...", s)
        if i in rule.volatile:
            e, s = _shape(e), _shape(s)
        return e == s

    def _compare(self, mc, sc, rule, expected):
        function = mc.name
        if expected is not None and not deliberate(function, "*"):
            if len(expected) != len(sc.args):
                self._add(mc, sc, "argument count", "%d fields" % len(sc.args), "%d fields" % len(expected))
            for i, (e, s) in enumerate(zip(expected, sc.args)):
                if (function, i) in self.unsteady:
                    continue
                d = deliberate(function, i, mc.args)
                if d is not None and (d.normalize is None or d.normalize(e) == d.normalize(s)):
                    continue
                if not self._same_field(rule, i, e, s, mc):
                    self._add(mc, sc, "arg %d" % i, s, e)
        if deliberate(function, "result value", mc.args):
            same_value = True
        elif rule.result == "pid" and INT.match(mc.value) and int(mc.value) > 0:
            same_value = self._same_pid(sc.value, mc.value, mc)
        elif rule.result == "size" and mc.value == "0":
            same_value = bool(INT.match(sc.value)) and int(sc.value) > 0
        elif rule.result == "address" or (ADDRESS.match(mc.value) and ADDRESS.match(sc.value)):
            same_value = mc.value == sc.value or bool(ADDRESS.match(mc.value) and ADDRESS.match(sc.value))
        else:
            same_value = mc.value == sc.value
        note_m = _steady(mc.note) if mc.note else mc.note
        note_s = _steady(sc.note) if sc.note else sc.note
        d = deliberate(function, "result note", mc.args)
        if d is not None:
            note_m, note_s = d.normalize(note_m) or None, d.normalize(note_s) or None
        if not (same_value and mc.errno == sc.errno and mc.errno_text == sc.errno_text and note_m == note_s):
            self._add(mc, sc, "result", sc.result, mc.result)

    def _unpaired_syscalls(self):
        """The C corpus calls every traced wrapper through the PLT: each of its system calls of a traced kind, from
        its first section marker (a forked child: from its start) until it execs another program, must have a
        library call paired with it."""
        wanted = {rule_for(c.name).syscall for c in self.m.order} | {"kill", "exit_group"}
        wanted -= {"clone", "clone3"}
        for tid, calls in self.s.calls.items():
            started = tid != self.s.first_tid
            for sc in calls:
                if sc.name == "access" and sc.args and sc.args[0].startswith('"='):
                    started = True
                if not started:
                    continue
                if sc.name == "execve" and sc.value == "0":
                    break   # another program from here on
                if not sc.paired and sc.name in wanted:
                    self.disagreements.append(Disagreement(
                        sc.section or "-", sc.name, "call", sc.line.split(" ", 1)[1], "(no line)", sc.line,
                        "(nothing in mrhooker's trace of process %s)" % self.s_to_m.get(tid),
                        "a call strace shows and mrhooker doesn't"))

    def _exits(self):
        for s_pid, text in self.s.exits.items():
            m_pid = self.s_to_m.get(s_pid)
            got = self.m.exits.get(m_pid)
            if got != text:
                section = None
                calls = self.s.calls.get(s_pid)
                if calls:
                    section = calls[-1].section
                self.disagreements.append(Disagreement(
                    section or "exit", "+++", "end of process", "+++ %s +++" % text,
                    "+++ %s +++" % got if got else "(no line)", "%d +++ %s +++" % (s_pid, text),
                    "(process %s)" % m_pid, "process-level"))

    def _add(self, mc, sc, field, strace, mrhooker):
        self.disagreements.append(Disagreement(
            mc.section or (sc.section if sc else None) or "-", mc.name, field, strace, mrhooker,
            sc.line if sc else "(none)", mc.line, _kind(strace, mrhooker)))

    def unexplained(self, section=None):
        return [d for d in self.disagreements if section is None or d.section == section]


# ---- running ----------------------------------------------------------------------------------------------

def run_strace(args, out, syscalls, cwd, env, timeout, stdin=None, stdout=None):
    """strace -f of a command; its calls to out. -q (not -qq: the +++ exited lines are compared too)."""
    cmd = ["strace", "-f", "-q", "-e", "signal=none", "-e", "trace=" + ",".join(syscalls), "-o", str(out)]
    return subprocess.run(cmd + [str(a) for a in args], cwd=cwd, env=env, timeout=timeout, stdin=stdin,
                          stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE)
