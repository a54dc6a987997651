"""What `mrhooker trace` shows of the recorded calls: strace-like lines, JSON lines, a timeline (Chrome's trace
event format, which Perfetto and chrome://tracing open), a summary (-c), and a hook script to start from.

Decoding (Decoder) turns a Call's bits into values, using the trace's plans (tracing.Plan.to_json) and the
headers' constants (tracing.symbols); each output takes decoded calls. Nothing here reads the trace file.
"""
import datetime
import errno as errno_module
import ipaddress
import json
import keyword
import os
import socket
import struct
import time

from mrhooker.tracefile import DELAYED, ENTRY_ONLY, EXEC_DONE, INJECTED

# Decoders' names, in order of preference when two share a value (aliases: AF_LOCAL for AF_UNIX, ...).
_OPEN_FLAGS = ("O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC", "O_APPEND", "O_NONBLOCK", "O_DSYNC", "O_ASYNC",
               "O_DIRECT", "O_LARGEFILE", "O_DIRECTORY", "O_NOFOLLOW", "O_NOATIME", "O_CLOEXEC", "O_PATH",
               "O_TMPFILE", "O_SYNC")
_MAP_FLAGS = ("MAP_FIXED", "MAP_ANONYMOUS", "MAP_32BIT", "MAP_GROWSDOWN", "MAP_DENYWRITE", "MAP_EXECUTABLE",
              "MAP_LOCKED", "MAP_NORESERVE", "MAP_POPULATE", "MAP_NONBLOCK", "MAP_STACK", "MAP_HUGETLB",
              "MAP_SYNC", "MAP_FIXED_NOREPLACE")
_FCNTL = ("F_DUPFD", "F_GETFD", "F_SETFD", "F_GETFL", "F_SETFL", "F_GETLK", "F_SETLK", "F_SETLKW", "F_SETOWN",
          "F_GETOWN", "F_SETSIG", "F_GETSIG", "F_DUPFD_CLOEXEC", "F_SETPIPE_SZ", "F_GETPIPE_SZ", "F_OFD_GETLK",
          "F_OFD_SETLK", "F_OFD_SETLKW", "F_ADD_SEALS", "F_GET_SEALS")
_WAIT_OPTIONS = ("WNOHANG", "WUNTRACED", "WCONTINUED", "WEXITED", "WSTOPPED", "WNOWAIT")
_FCNTL_NO_ARG = ("F_GETFD", "F_GETFL", "F_GETOWN", "F_GETSIG", "F_GETPIPE_SZ", "F_GET_SEALS", "F_GETLEASE")
_PREFERRED = {"AF_UNIX", "SIGCHLD", "SIGIO", "SIGABRT", "SIGSYS", "EAGAIN", "EDEADLK", "EOPNOTSUPP", "SEEK_SET",
              "IPPROTO_IP", "IPPROTO_TCP", "IPPROTO_UDP", "IPPROTO_IPV6", "CLOCK_REALTIME", "CLOCK_MONOTONIC"}


_UNPACK = {"int": {1: "b", 2: "h", 4: "i", 8: "q"}, "uint": {1: "B", 2: "H", 4: "I", 8: "Q"},
           "float": {4: "f", 8: "d"}, "pointer": {8: "Q", 4: "I"}}
# A struct's members that a line shows (then "..."), where strace abbreviates; others show every member.
_STRUCT_MEMBERS_SHOWN = {"struct stat": ("st_mode", "st_size"), "struct stat64": ("st_mode", "st_size"),
                         "struct utsname": ("sysname", "nodename")}


class Decoder:
    """Values of a trace's calls, by their plans and the headers' constants. For each function it compiles once
    the converters of its arguments and result, to text (lines) and to JSON values."""

    def __init__(self, plans, symbols, strsize, layouts=None):
        self.plans = plans            # [dict]: tracing.Plan.to_json()
        self.symbols = symbols
        self.strsize = strsize
        self.layouts = layouts or {}  # {struct name: layout} (layouts.py) of the structs shown by members
        self._names = {}              # (prefix, excluded) -> {value: name}
        self._errno = {}
        self.text = [self._converters(plan, False) for plan in plans]
        self.json = [self._converters(plan, True) for plan in plans]

    def arg_formats(self):
        """The struct codes of each function's arguments, for the Reader: signed where shown signed."""
        return ["".join("q" if kind in _SIGNED_KINDS else "d" if kind == "double" else "Q" for kind in plan["shown"])
                for plan in self.plans]

    def names(self, prefix, exclude=()):
        key = (prefix, exclude)
        if key not in self._names:
            table = {}
            for name in sorted(self.symbols):
                if name.startswith(prefix) and name not in exclude:
                    value = self.symbols[name]
                    if value not in table or name in _PREFERRED:
                        table[value] = name
            self._names[key] = table
        return self._names[key]

    def errno_name(self, e):
        name = self._errno.get(e)
        if name is None:
            name = self._errno[e] = self.names("E").get(e) or errno_module.errorcode.get(e) or str(e)
        return name

    # ---- converters: (value as unpacked, capture or None) -> shown ----

    def _converters(self, plan, json_form):
        shown = plan["shown"]
        args = [self.converter(kind, json_form) for kind in shown]
        # Variadic arguments that weren't passed (else whatever was in a register): (a test of the values, as
        # Python source over `a`, when the last one was passed).
        last_passed = None
        s = self.symbols
        if "mode" in shown[-1:] and "open_flags" in shown:
            # open's mode is an argument only with O_CREAT or O_TMPFILE
            mask = s.get("O_CREAT", 0o100) | (s.get("O_TMPFILE", 0o20200000) & ~s.get("O_DIRECTORY", 0o200000))
            last_passed = "a[%d] & %d" % (shown.index("open_flags"), mask)
        elif "fcntl_cmd" in shown and shown[-1:] == ["fcntl_arg"]:
            no_arg = sorted(s[n] for n in _FCNTL_NO_ARG if n in s)
            last_passed = "a[%d] not in %r" % (shown.index("fcntl_cmd"), tuple(no_arg))
            cmd = shown.index("fcntl_cmd")
            setfl, setfd = s.get("F_SETFL"), s.get("F_SETFD")
            open_flags = lambda v: self.flags(v, _OPEN_FLAGS)
            args[-1] = lambda v, c, a=None: (open_flags(v) if a is not None and a[cmd] == setfl else
                                             ("FD_CLOEXEC" if v == 1 else str(v)) if a is not None and a[cmd] == setfd
                                             else v if json_form else str(v))
        mode_dropped = (last_passed, eval("lambda a: " + last_passed)) if last_passed else None
        ret_kind = plan["ret"]
        ret_signed = ret_kind in _SIGNED_KINDS
        return args, mode_dropped, self.converter(ret_kind, json_form), ret_signed

    def converter(self, kind, json_form):
        s = self.symbols
        pointer = _json_pointer if json_form else _text_pointer
        if kind in ("int", "fd", "uint"):
            return _identity if json_form else _str
        if kind == "dirfd":
            fdcwd = s.get("AT_FDCWD", -100)
            return lambda v, c: "AT_FDCWD" if v == fdcwd else (v if json_form else str(v))
        if kind == "double":
            return _identity if json_form else _repr
        if kind in ("string", "bytes"):
            def text(v, c):
                if c is None:
                    return pointer(v, c)
                data, full = c
                cut = full > len(data)   # the writer stored less than there was (-s, or 4096 for a path)
                if json_form:   # a backslash as \\, so that a byte that isn't UTF-8 (\xff) is told from the text
                    return data.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace") + ("..." if cut else "")
                return quote(data) + ("..." if cut else "")
            return text
        if kind == "sockaddr":
            return lambda v, c: pointer(v, c) if c is None else self.sockaddr(c[0], json_form)
        if kind == "argv":
            return lambda v, c: pointer(v, c) if c is None else _argv(c, json_form)
        if kind == "envp":
            if json_form:
                return lambda v, c: pointer(v, c) if c is None else {"pointer": pointer(v, c), "count": c[1]}
            return lambda v, c: pointer(v, c) if c is None else "%s /* %d vars */" % (pointer(v, c), c[1])
        if kind in ("hex", "void"):
            return pointer
        if kind in self.layouts:
            members = self._struct(kind, json_form)
            return lambda v, c: pointer(v, c) if c is None or not c[0] else members(c[0])
        table = self._table(kind)
        if table is not None:
            return lambda v, c: table.get(v) or str(v)
        flags = self._flags(kind)
        if flags is not None:
            return lambda v, c: flags(v)
        return _identity if json_form else _str

    def _table(self, kind):
        if kind == "address_family":
            return self.names("AF_")
        if kind == "signal":
            table = {value: name for value, name in self.names("SIG", tuple(
                n for n in self.symbols if n.startswith(("SIG_", "SIGEV_", "SIGRTMIN", "SIGRTMAX", "SIGSTKSZ")))).items()}
            table[0] = "0"   # kill(pid, 0): no signal
            return table
        if kind == "whence":
            return self.names("SEEK_")
        if kind == "fcntl_cmd":
            return {self.symbols[n]: n for n in _FCNTL if n in self.symbols}
        if kind == "clock":
            return self.names("CLOCK_")
        if kind == "shutdown_how":
            return self.names("SHUT_")
        if kind == "ip_protocol":
            return self.names("IPPROTO_")
        if kind == "sockopt_level":
            levels = dict(self.names("IPPROTO_"))
            levels.update((v, n) for v, n in self.names("SOL_").items() if n == "SOL_SOCKET")
            return levels
        return None

    def _flags(self, kind):
        s = self.symbols
        if kind == "open_flags":
            return lambda v: self.flags(v, _OPEN_FLAGS, access=True)
        if kind == "fd_flags":   # pipe2's and dup3's: O_CLOEXEC and the like, no access mode
            return lambda v: self.flags(v, _OPEN_FLAGS)
        if kind == "wait_options":
            return lambda v: self.flags(v, _WAIT_OPTIONS)
        if kind == "mode":
            return lambda v: "0%o" % v if v else "000"
        if kind == "access_mode":
            return lambda v: "F_OK" if v == 0 else self.flags(v, ("R_OK", "W_OK", "X_OK"))
        if kind == "socket_type":
            types = self.names("SOCK_", ("SOCK_NONBLOCK", "SOCK_CLOEXEC"))

            def socket_type(v):
                extra = self.flags(v & ~0xF, ("SOCK_NONBLOCK", "SOCK_CLOEXEC")) if v & ~0xF else None
                return types.get(v & 0xF, str(v & 0xF)) + ("|" + extra if extra else "")
            return socket_type
        if kind == "msg_flags":
            names = tuple(n for n in sorted(self.symbols) if n.startswith("MSG_") and self.symbols[n] &
                          (self.symbols[n] - 1) == 0)
            return lambda v: self.flags(v, names) if v else "0"
        if kind == "prot":
            return lambda v: self.flags(v, ("PROT_READ", "PROT_WRITE", "PROT_EXEC")) if v else "PROT_NONE"
        if kind == "map_flags":
            kinds = {s.get("MAP_SHARED", 1): "MAP_SHARED", s.get("MAP_PRIVATE", 2): "MAP_PRIVATE"}

            def map_flags(v):
                rest = self.flags(v & ~0x3, _MAP_FLAGS) if v & ~0x3 else None
                return kinds.get(v & 0x3, hex(v & 0x3)) + ("|" + rest if rest else "")
            return map_flags
        return None

    def _struct(self, name, json_form):
        """bytes -> a struct shown as strace does ({tv_sec=1, tv_nsec=2}; a stat by its type, mode and size),
        or as a JSON object of every member."""
        layout = self.layouts[name]
        shown = _STRUCT_MEMBERS_SHOWN.get(name)

        def value(data, field, offset, member):
            kind, size = field["kind"], field["size"]
            at = offset + field["offset"]
            if at + size > len(data):
                return None
            if kind in _UNPACK:
                v = struct.unpack_from("=" + _UNPACK[kind][size], data, at)[0]
                if member == "st_mode" and not json_form:
                    return self.file_mode(v)
                return v if json_form or kind != "pointer" else _text_pointer(v, None)
            if kind == "struct":
                inner = {m: value(data, f, at, m) for m, f in field["fields"].items()}
                return inner if json_form else "{%s}" % ", ".join("%s=%s" % kv for kv in inner.items())
            if kind == "array" and field["element"]["kind"] in ("int", "uint") and field["element"]["size"] == 1:
                text = data[at:at + size].split(b"\0", 1)[0]   # char[]: a string (utsname's)
                return text.decode("utf-8", "backslashreplace") if json_form else quote(text)
            return None

        def members(data):
            fields = layout["fields"]
            names = list(fields) if json_form or not shown else [m for m in shown if m in fields]
            got = {m: value(data, fields[m], 0, m) for m in names}
            if json_form:
                return got
            text = ", ".join("%s=%s" % (m, v) for m, v in got.items() if v is not None)
            return "{%s%s}" % (text, ", ..." if shown else "")
        return members

    def file_mode(self, mode):
        """st_mode as strace shows it: S_IFREG|0644."""
        types = {v: n for n, v in self.symbols.items() if n.startswith("S_IF") and n != "S_IFMT"}
        kind = mode & self.symbols.get("S_IFMT", 0o170000)
        return "%s|0%o" % (types.get(kind, "0%o" % kind), mode & 0o7777)

    def flags(self, value, names, access=False):
        s = self.symbols
        parts = []
        if access:
            mode = value & 3
            parts.append({0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}.get(mode, str(mode)))
            value &= ~3
        for name in names:
            bit = s.get(name)
            if bit and value & bit == bit:
                parts.append(name)
                value &= ~bit
        if value:
            parts.append("0x%x" % value)
        return "|".join(parts) if parts else "0"

    def sockaddr(self, data, json_form=False):
        if len(data) < 2:
            return {"family": None} if json_form else "{}"
        family = struct.unpack_from("<H", data)[0]
        name = self.names("AF_").get(family, str(family))
        if family == socket.AF_INET and len(data) >= 8:
            port = struct.unpack_from(">H", data, 2)[0]
            address = str(ipaddress.IPv4Address(data[4:8]))
            return ({"family": name, "address": address, "port": port} if json_form
                    else "{%s, %s:%d}" % (name, address, port))
        if family == socket.AF_INET6 and len(data) >= 24:
            port = struct.unpack_from(">H", data, 2)[0]
            address = str(ipaddress.IPv6Address(data[8:24]))
            return ({"family": name, "address": address, "port": port} if json_form
                    else "{%s, [%s]:%d}" % (name, address, port))
        if family == socket.AF_UNIX:
            path = data[2:].split(b"\0", 1)[0] if data[2:3] != b"\0" else b"@" + data[3:].rstrip(b"\0")
            return ({"family": name, "path": path.decode("utf-8", "backslashreplace")} if json_form
                    else "{%s, %s}" % (name, quote(path)))
        return {"family": name} if json_form else "{%s}" % name

    # ---- calls ----

    def arguments(self, call, json_form=False):
        convert, mode_dropped, _r, _s = (self.json if json_form else self.text)[call.fn]
        values, captures = call.args, call.captures
        if mode_dropped is not None and not mode_dropped[1](values):
            values = values[:-1]
        shown = [convert[i](v, captures.get(i) if captures else None) for i, v in enumerate(values)]
        if self.plans[call.fn]["shown"][-1:] == ["fcntl_arg"] and len(values) == len(convert):
            shown[-1] = convert[-1](values[-1], None, values)
        return shown

    def result(self, call, json_form=False):
        """The result as shown, or None for a call that did not return (exit, a successful exec)."""
        if call.entry_only:
            return (0 if json_form else "0") if call.flags & EXEC_DONE else None
        plan = self.plans[call.fn]
        if plan["ret"] == "void":
            return None if json_form else "?"
        if call.failed and plan["ret"] in ("hex", "string"):
            return None if json_form else "NULL"
        _a, _m, convert, signed = (self.json if json_form else self.text)[call.fn]
        ret = call.ret
        if signed and ret >> 63:
            ret -= 1 << 64
        return convert(ret, call.captures.get(255))


_SIGNED_KINDS = frozenset(("int", "fd", "dirfd", "open_flags", "mode", "access_mode", "address_family",
                           "socket_type", "prot", "map_flags", "signal", "whence", "fcntl_cmd", "clock",
                           "shutdown_how", "msg_flags", "sockopt_level", "ip_protocol", "fd_flags", "wait_options"))


def _identity(v, c):
    return v


def _str(v, c):
    return str(v)


def _repr(v, c):
    return repr(v)


def _text_pointer(v, c):
    return "0x%x" % v if v else "NULL"


def _json_pointer(v, c):
    return "0x%x" % v if v else None


_ESCAPES = {i: "\\%o" % i for i in range(256)}
_ESCAPES.update({i: chr(i) for i in range(32, 127)})
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"})


def _argv(capture, json_form):
    """An argv as a record keeps it (runtime/trace.h, MRH_CAP_STRV): its first strings, each a byte that says
    whether it was cut, its bytes and a NUL; and how many it has. As strace: ["ls", "-l"], "..." for the rest."""
    data, count = capture
    strings, at = [], 0
    while at < len(data):
        stop = data.find(b"\0", at + 1)
        if stop < 0:
            stop = len(data)
        strings.append((data[at + 1:stop], data[at] == 1))
        at = stop + 1
    if json_form:
        return [s.decode("utf-8", "backslashreplace") + ("..." if cut else "") for s, cut in strings] + \
            (["..."] if count > len(strings) else [])
    return "[%s]" % ", ".join([quote(s) + ("..." if cut else "") for s, cut in strings] +
                              (["..."] if count > len(strings) else []))


def quote(data):
    """bytes as strace shows a string: in quotes, escaped (\\n, \\t, octal for the unprintable)."""
    return '"%s"' % data.decode("latin-1").translate(_ESCAPES)


# ---- the outputs ----------------------------------------------------------------------------------------

class Options:
    def __init__(self, timestamps=0, relative=False, durations=False, failed_only=False, summary=False,
                 lines=True, per_process=False, output=None, append=False):
        self.timestamps = timestamps      # 0, 1 (-t), 2 (-tt), 3 (-ttt)
        self.relative = relative          # -r
        self.durations = durations        # -T
        self.failed_only = failed_only    # -Z
        self.summary = summary            # -c / -C
        self.lines = lines                # False with -c alone
        self.per_process = per_process    # -ff: FILE.PID
        self.output = output              # -o FILE, or None: stderr
        self.append = append              # -A


class Lines:
    """strace-like lines: one per call, never two calls on a line; `[pid N]` for any thread but the command's
    main one (the launcher sets command_pid). Each function's line is made by a small function compiled for it (_compile_body), so
    that a trace of millions of calls is formatted at a few microseconds a call."""

    def __init__(self, decoder, options, stream_for):
        self.decoder = decoder
        self.options = options
        self.stream_for = stream_for      # pid -> text stream
        self.command_pid = None
        self.previous_ts = None
        self._errno_texts = {}
        self.wall_offset_ns = time.time_ns() - time.monotonic_ns()
        self.stamped = options.timestamps or options.relative
        self.bodies = [self._compile_body(fn) for fn in range(len(decoder.plans))]

    def _compile_body(self, fn):
        """A function: call -> `name(args) = result` (with the errno's name and text if it failed)."""
        d = self.decoder
        plan = d.plans[fn]
        convert, mode_dropped, ret_convert, ret_signed = d.text[fn]
        names = {"errno_text": self.errno_text}
        parts = []
        for i, kind in enumerate(plan["shown"]):
            if kind == "fcntl_arg":
                names["k%d" % i] = convert[i]
                expr = "k%d(a[%d], None, a)" % (i, i)
            elif kind in ("int", "fd", "uint"):
                expr = "str(a[%d])" % i
            elif kind in ("hex", "void"):
                expr = "('0x%%x' %% a[%d] if a[%d] else 'NULL')" % (i, i)
            else:
                names["k%d" % i] = convert[i]
                expr = "k%d(a[%d], c.get(%d))" % (i, i, i)
            if mode_dropped is not None and i == len(plan["shown"]) - 1:
                expr = "((', ' + %s) if %s else '')" % (expr, mode_dropped[0])
                parts.append(expr)
            else:
                parts.append(("', ' + " if i else "") + expr)
        args = " + ".join(parts) if parts else "''"
        ret = plan["ret"]
        if ret == "void":
            result = "'?'"
        else:
            names["kr"] = ret_convert
            value = ("str(r)" if ret in ("int", "fd", "uint") else "('0x%x' % r if r else 'NULL')"
                     if ret in ("hex",) else "kr(r, c.get(255))")
            null = "'NULL'" if ret in ("hex", "string") else value
            result = "(%s + ' ' + errno_text(call.err) if call.flags & 1 else %s)" % (null, value)
        signed = "    if r >> 63:\n        r -= 1 << 64\n" if ret_signed else ""
        source = ("def body(call):\n    a = call.args\n    c = call.captures\n    r = call.ret\n%s"
                  "    if call.flags & %d:\n        return %r + %s + (') = 0' if call.flags & %d else ') = ?')\n"
                  "    return %r + %s + ') = ' + %s\n" % (signed, ENTRY_ONLY, plan["name"] + "(", args, EXEC_DONE,
                                                         plan["name"] + "(", args, result))
        exec(compile(source, "<line of %s>" % plan["name"], "exec"), names)
        return names["body"]

    def add(self, call):
        options = self.options
        if options.failed_only and not call.flags & 1:
            return
        line = self.bodies[call.fn](call)
        if call.tid != (call.pid if options.per_process else self.command_pid):
            line = "[pid %d] " % call.tid + (self._stamp(call.ts_ns) if self.stamped else "") + line
        elif self.stamped:
            line = self._stamp(call.ts_ns) + line
        if call.flags & (INJECTED | DELAYED):   # as strace marks them
            line += " (INJECTED)" if call.flags & INJECTED else " (DELAYED)"
        if options.durations and not call.flags & ENTRY_ONLY:
            line += " <%.6f>" % (call.dur_ns / 1e9)
        self.stream_for(call.pid).write(line + "\n")

    def errno_text(self, e):
        text = self._errno_texts.get(e)
        if text is None:
            text = self._errno_texts[e] = "%s (%s)" % (self.decoder.errno_name(e), os.strerror(e))
        return text

    def _stamp(self, ts_ns):
        o = self.options
        text = ""
        if o.timestamps:
            wall = ts_ns + self.wall_offset_ns
            if o.timestamps >= 3:
                text = "%d.%06d " % (wall // 1_000_000_000, wall % 1_000_000_000 // 1000)
            else:
                t = datetime.datetime.fromtimestamp(wall / 1e9)
                text = t.strftime("%H:%M:%S") + (".%06d" % t.microsecond if o.timestamps == 2 else "") + " "
        if o.relative:
            delta = 0 if self.previous_ts is None else ts_ns - self.previous_ts
            self.previous_ts = ts_ns
            text = "%6d.%06d " % (delta // 1_000_000_000, delta % 1_000_000_000 // 1000) + text
        return text

    def finish(self):
        pass


class ExecPairing:
    """An exec is recorded when it starts (if it works, it never returns) and again if it fails. Before any output
    sees the calls, this makes each exec one call: its failure, or, once its thread is seen doing anything else
    (or at the end), its start marked EXEC_DONE, which shows as `= 0`."""

    def __init__(self, decoder):
        from mrhooker.tracing import EXEC

        self.execs = {fn for fn, plan in enumerate(decoder.plans) if plan["name"] in EXEC}
        self.pending = {}   # tid -> the start of an exec not known to have failed yet

    def pair(self, calls):
        if not self.execs:
            return calls
        paired, pending, execs = [], self.pending, self.execs
        for call in calls:
            if pending:
                started = pending.pop(call.tid, None)
                if started is not None and not (call.fn == started.fn and not call.entry_only):
                    started.flags |= EXEC_DONE   # the thread goes on: in the new program
                    paired.append(started)
            if call.fn in execs and call.entry_only:
                pending[call.tid] = call
            else:
                paired.append(call)
        return paired

    def finish(self):
        """The execs still pending at the end: they worked."""
        rest = list(self.pending.values())
        for call in rest:
            call.flags |= EXEC_DONE
        self.pending.clear()
        return rest


class JsonLines:
    """One JSON object per call (the schema is in the README)."""

    def __init__(self, decoder, stream):
        self.decoder = decoder
        self.stream = stream
        self.wall_offset_ns = time.time_ns() - time.monotonic_ns()

    def add(self, call):
        d = self.decoder
        plan = d.plans[call.fn]
        names = plan["params"]
        values = d.arguments(call, json_form=True)
        record = {"pid": call.pid, "tid": call.tid, "ts_ns": call.ts_ns + self.wall_offset_ns,
                  "dur_ns": None if call.entry_only else call.dur_ns, "name": plan["name"],
                  "args": {names[i] if i < len(names) else "a%d" % i: v for i, v in enumerate(values)},
                  "ret": d.result(call, json_form=True),
                  "errno": d.errno_name(call.err) if call.failed else None}
        if call.flags & INJECTED:
            record["injected"] = True
        elif call.flags & DELAYED:
            record["delayed"] = True
        self.stream.write(json.dumps(record, separators=(",", ":")) + "\n")

    def finish(self):
        pass


class Timeline:
    """Chrome's trace event format: an X event per call (its arguments, its duration), M events naming the
    processes and threads. Capped at `limit` events, so that the viewer can still load the file; what is left
    out is counted and said."""

    def __init__(self, decoder, stream, limit=1_000_000):
        self.decoder = decoder
        self.stream = stream
        self.limit = limit
        self.count = self.left_out = 0
        self.start_ns = None
        self.named = set()
        stream.write('{"displayTimeUnit": "ns", "traceEvents": [\n')
        self.first = True

    def _event(self, event):
        self.stream.write(("" if self.first else ",\n") + json.dumps(event, separators=(",", ":")))
        self.first = False

    def add(self, call):
        if self.count >= self.limit:
            self.left_out += 1
            return
        if self.start_ns is None:
            self.start_ns = call.ts_ns
        for kind, ident in (("process_name", call.pid), ("thread_name", call.tid)):
            if (kind, ident) not in self.named:
                self.named.add((kind, ident))
                self._event({"name": kind, "ph": "M", "pid": call.pid, "tid": call.tid,
                             "args": {"name": _process_name(ident) if kind == "process_name" else
                                      "thread %d" % ident}})
        d = self.decoder
        plan = d.plans[call.fn]
        names = plan["params"]
        args = {names[i] if i < len(names) else "a%d" % i: v for i, v in enumerate(d.arguments(call, json_form=True))}
        args["ret"] = d.result(call, json_form=True)
        if call.failed:
            args["errno"] = d.errno_name(call.err)
        self._event({"name": plan["name"], "cat": "call", "ph": "X", "pid": call.pid, "tid": call.tid,
                     "ts": (call.ts_ns - self.start_ns) / 1000.0,
                     "dur": 0.0 if call.entry_only else call.dur_ns / 1000.0, "args": args})
        self.count += 1

    def finish(self):
        self.stream.write("\n]}\n")


def _process_name(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return "%s (%d)" % (f.read().strip(), pid)
    except OSError:
        return "pid %d" % pid


class Summary:
    """-c: calls, errors and time per function, sorted by time, as strace -c."""

    def __init__(self, decoder):
        self.decoder = decoder
        self.rows = {}   # fn -> [calls, errors, ns]

    def add(self, call):
        row = self.rows.setdefault(call.fn, [0, 0, 0])
        row[0] += 1
        row[1] += call.failed
        row[2] += call.dur_ns

    def finish(self):
        pass

    def add_counts(self, counts, to_ns):
        """The writers' own counters (-c alone: no records)."""
        for fn, (calls, errors, units) in enumerate(counts):
            if calls:
                self.rows[fn] = [calls, errors, to_ns(units)]

    def text(self):
        total_ns = sum(r[2] for r in self.rows.values()) or 1
        lines = ["% time     seconds  usecs/call     calls    errors function",
                 "------ ----------- ----------- --------- --------- ----------------"]
        for fn, (calls, errors, ns) in sorted(self.rows.items(), key=lambda item: (-item[1][2], -item[1][0])):
            lines.append("%6.2f %11.6f %11d %9d %9s %s" % (100.0 * ns / total_ns, ns / 1e9, ns // 1000 // max(calls, 1),
                                                          calls, errors or "", self.decoder.plans[fn]["name"]))
        lines.append("------ ----------- ----------- --------- --------- ----------------")
        calls = sum(r[0] for r in self.rows.values())
        errors = sum(r[1] for r in self.rows.values())
        lines.append("100.00 %11.6f %11d %9d %9s total" % (
            sum(r[2] for r in self.rows.values()) / 1e9, (total_ns // 1000 // max(calls, 1)) if self.rows else 0,
            calls, errors or ""))
        return "\n".join(lines) + "\n"


class Scaffold:
    """A hook script with one @hook stub per function the trace saw called, in the order of their first call:
    `mrhooker FILE.py COMMAND` runs it unchanged, each stub passing its calls through."""

    def __init__(self, decoder, path, command):
        self.decoder = decoder
        self.path = path
        self.command = command
        self.seen = []

    def add(self, call):
        if call.fn not in self.seen:
            self.seen.append(call.fn)

    def finish(self):
        import shlex
        out = ['"""Hooks for %s, one per function `mrhooker trace` saw it call: edit them, then' % " ".join(
                   shlex.quote(a) for a in self.command),
               "", "    mrhooker %s %s" % (os.path.basename(self.path), " ".join(shlex.quote(a) for a in self.command)),
               '"""', "from mrhooker import hook, set_errno, get_errno", ""]
        used = set()
        for fn in self.seen:
            plan = self.decoder.plans[fn]
            name = plan["name"]
            py = name if name.isidentifier() and not keyword.iskeyword(name) and name not in used else name + "_hook"
            used.add(py)
            params = ", ".join(plan["params"])
            out += ["", "@hook(%r)" % plan["text"], "def %s(%s):" % (py, params),
                    "    return %s.original(%s)" % (py, params), ""]
        text = "\n".join(out).rstrip() + "\n"
        from mrhooker import cache
        cache.write_atomic(self.path, text)
