"""The reader (runtime/reader.c, decode.c): records put into a ring, read back as lines and JSON, compared with
strace's spelling of the same values."""
import errno
import json

from mrhooker import tracespec

CAP_STRING, CAP_BYTES, CAP_SOCKADDR, CAP_PATH, CAP_STRV, CAP_STRUCT = (tracespec.CAP_STRING, tracespec.CAP_BYTES,
                                                                       tracespec.CAP_SOCKADDR, tracespec.CAP_PATH,
                                                                       tracespec.CAP_STRV, tracespec.CAP_STRUCT)
FAILED, ENTRY_ONLY, INJECTED, DELAYED = 1, 2, 16, 32   # runtime/tracefile.h

FUNCTIONS = ["open", "openat", "write", "read", "socket", "connect", "fcntl", "kill", "execve", "getenv", "mmap",
             "waitpid", "clock_gettime", "stat", "malloc"]


def test_open_flags_as_strace_names_them(reader_for, ring, symbols):
    r = ring(reader_for(FUNCTIONS))
    s = symbols
    r.put("open", [0x1000, s["O_WRONLY"] | s["O_CREAT"] | s["O_SYNC"], 0o644], ret=3,
          captures=[(0, CAP_PATH, b"f")])
    r.put("open", [0x1000, s["O_RDWR"] | s["O_TMPFILE"], 0o600], ret=3, captures=[(0, CAP_PATH, b".")])
    r.put("open", [0x1000, s["O_RDONLY"] | s["O_CLOEXEC"], 0o777], ret=-1, err=errno.ENOENT, flags=FAILED,
          captures=[(0, CAP_PATH, b"/nowhere")])
    lines, calls = r.show()
    assert lines.splitlines() == [
        'open("f", O_WRONLY|O_CREAT|O_SYNC, 0644) = 3',
        'open(".", O_RDWR|O_TMPFILE, 0600) = 3',
        'open("/nowhere", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)',   # no mode passed
    ]
    assert calls[0]["args"] == {"file": "f", "oflag": "O_WRONLY|O_CREAT|O_SYNC", "mode": "0644"}
    assert calls[2]["ret"] == -1 and calls[2]["errno"] == "ENOENT" and "mode" not in calls[2]["args"]


def test_bytes_escaped_as_strace_does(reader_for, ring):
    r = ring(reader_for(FUNCTIONS), strsize=32)
    data = b"\x80\x011A\n\x007"
    r.put("write", [3, 0x1000, len(data)], ret=7, captures=[(1, CAP_BYTES, data)])
    r.put("write", [1, 0x1000, 5], ret=5, captures=[(1, CAP_BYTES, b'"\\\t\r\x0b')])
    r.put("write", [1, 0x1000, 100], ret=100, captures=[(1, CAP_BYTES, b"x" * 32, 100)])   # cut at -s
    lines, calls = r.show()
    assert lines.splitlines() == [
        r'write(3, "\200\0011A\n\0007", 7) = 7',
        r'write(1, "\"\\\t\r\v", 5) = 5',
        'write(1, "%s"..., 100) = 100' % ("x" * 32),
    ]
    assert calls[0]["args"]["buf"] == "\\x80\x011A\n\x007"   # not UTF-8: \x80 as text; a backslash doubled
    assert calls[1]["args"]["buf"] == '"\\\\\t\r\x0b'
    assert calls[2]["args"]["buf"] == "x" * 32 and calls[2]["cut"] == ["buf"]   # the bytes kept, exactly
    assert "cut" not in calls[0] and "cut" not in calls[1]


def test_json_records_stay_one_line_for_any_line_splitter(reader_for, ring):
    """U+0085, U+2028 and U+2029 are valid UTF-8 that Python's str.splitlines (and JavaScript) break lines at:
    random bytes (sqlite3's read of /dev/urandom) held one, and a record read with splitlines() was cut in two."""
    r = ring(reader_for(FUNCTIONS), strsize=32)
    data = "a\x85b\u2028c\u2029d\u00e9".encode()
    r.put("write", [1, 0x1000, len(data)], ret=len(data), captures=[(1, CAP_BYTES, data)])
    r.show()
    text = r.json_path.read_text()
    assert len(text.splitlines()) == 1 and "\\u2028" in text, text
    assert json.loads(text)["args"]["buf"] == data.decode()   # the same text, escaped


def test_json_tells_a_cut_value_from_one_that_ends_in_dots(reader_for, ring):
    """A line says "..." after a value cut at -s; JSON holds the bytes kept, exactly, and names the cut values in
    "cut" (dots in the string would be data: "ab..." written whole looked the same)."""
    r = ring(reader_for(FUNCTIONS), strsize=5)
    r.put("write", [1, 0x1000, 5], ret=5, captures=[(1, CAP_BYTES, b"ab...")])
    r.put("write", [1, 0x1000, 9], ret=9, captures=[(1, CAP_BYTES, b"ab...", 9)])
    lines, calls = r.show()
    assert lines.splitlines() == ['write(1, "ab...", 5) = 5', 'write(1, "ab..."..., 9) = 9']
    assert [(c["args"]["buf"], c.get("cut")) for c in calls] == [("ab...", None), ("ab...", ["buf"])], calls


def test_socket_addresses_as_strace_spells_them(reader_for, ring, symbols):
    import socket
    import struct
    r = ring(reader_for(FUNCTIONS))
    inet = struct.pack("<H", socket.AF_INET) + struct.pack(">H", 8000) + socket.inet_aton("127.0.0.1") + bytes(8)
    inet6 = (struct.pack("<H", socket.AF_INET6) + struct.pack(">H", 443) + bytes(4)
             + socket.inet_pton(socket.AF_INET6, "::1") + bytes(4))
    unix = struct.pack("<H", socket.AF_UNIX) + b"/tmp/s\0"
    abstract = struct.pack("<H", socket.AF_UNIX) + b"\0name"
    for address in (inet, inet6, unix, abstract):
        r.put("connect", [3, 0x1000, len(address)], captures=[(1, CAP_SOCKADDR, address)])
    lines, calls = r.show()
    assert lines.splitlines() == [
        'connect(3, {sa_family=AF_INET, sin_port=htons(8000), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
        'connect(3, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", '
        '&sin6_addr), sin6_scope_id=0}, 28) = 0',
        'connect(3, {sa_family=AF_UNIX, sun_path="/tmp/s"}, 9) = 0',
        'connect(3, {sa_family=AF_UNIX, sun_path=@"name"}, 7) = 0',
    ]
    assert calls[0]["args"]["addr"] == {"family": "AF_INET", "address": "127.0.0.1", "port": 8000}
    assert calls[3]["args"]["addr"] == {"family": "AF_UNIX", "path": "@name"}


def test_fcntl_argument_by_command_and_signals(reader_for, ring, symbols):
    s = symbols
    r = ring(reader_for(FUNCTIONS))
    r.put("fcntl", [3, s["F_GETFD"], 0], ret=1)
    r.put("fcntl", [3, s["F_SETFL"], s["O_NONBLOCK"]])
    r.put("fcntl", [3, s["F_SETFD"], 1])
    r.put("kill", [42, 0])
    r.put("kill", [42, s["SIGTERM"]])
    r.put("kill", [42, 35])    # real-time: the kernel's SIGRTMIN is 32
    lines, _calls = r.show()
    assert lines.splitlines() == ["fcntl(3, F_GETFD) = 0x1 (flags FD_CLOEXEC)", "fcntl(3, F_SETFL, O_RDONLY|O_NONBLOCK) = 0",
                                  "fcntl(3, F_SETFD, FD_CLOEXEC) = 0", "kill(42, 0) = 0", "kill(42, SIGTERM) = 0",
                                  "kill(42, SIGRT_3) = 0"]


def test_execs_are_shown_once_as_they_ended(reader_for, ring):
    r = ring(reader_for(FUNCTIONS))
    argv = b"\0/bin/true\0"
    r.put("execve", [0x1000, 0x2000, 0x3000], flags=ENTRY_ONLY, pid=101,
          captures=[(0, CAP_PATH, b"/bin/true"), (1, CAP_STRV, argv, 1), (2, CAP_STRV, b"", 3)])
    r.put("malloc", [16], ret=0x5000, pid=101)    # the new program runs: the exec worked
    r.put("execve", [0x1000, 0x2000, 0x3000], flags=ENTRY_ONLY, pid=102,
          captures=[(0, CAP_PATH, b"/nowhere"), (1, CAP_STRV, b"\0/nowhere\0", 1), (2, CAP_STRV, b"", 3)])
    r.put("execve", [0x1000, 0x2000, 0x3000], ret=-1, err=errno.ENOENT, flags=FAILED, pid=102,
          captures=[(0, CAP_PATH, b"/nowhere"), (1, CAP_STRV, b"\0/nowhere\0", 1), (2, CAP_STRV, b"", 3)])
    lines, calls = r.show()
    assert lines.splitlines() == [
        '[pid 101] execve("/bin/true", ["/bin/true"], 0x3000 /* 3 vars */) = 0',
        "[pid 101] malloc(16) = 0x5000",
        '[pid 102] execve("/nowhere", ["/nowhere"], 0x3000 /* 3 vars */) = -1 ENOENT (No such file or directory)',
    ]
    assert calls[0]["ret"] == 0 and calls[0]["dur_ns"] is None
    assert calls[0]["args"]["argv"] == ["/bin/true"] and calls[0]["args"]["envp"] == {"pointer": "0x3000",
                                                                                       "count": 3}


def test_marks_filters_and_a_string_result(reader_for, ring):
    r = ring(reader_for(FUNCTIONS), failed_only=False, durations=True)
    r.put("getenv", [0x1000], ret=0x2000, captures=[(0, CAP_STRING, b"HOME"), (255, CAP_STRING, b"/root")],
          dur=1500000)
    r.put("getenv", [0x1000], ret=0, captures=[(0, CAP_STRING, b"NOPE")], dur=1000)
    r.put("write", [1, 0x1000, 1], ret=-1, err=errno.ENOSPC, flags=FAILED | INJECTED,
          captures=[(1, CAP_BYTES, b"x")], dur=0)
    lines, calls = r.show()
    assert lines.splitlines() == ['getenv("HOME") = "/root" <0.001500>', 'getenv("NOPE") = NULL <0.000001>',
                                  'write(1, "x", 1) = -1 ENOSPC (No space left on device) (INJECTED) <0.000000>']
    assert calls[1]["ret"] is None and calls[1]["errno"] is None
    assert calls[2]["injected"] is True


def test_a_record_left_uncommitted_is_skipped_and_the_ring_wraps(reader_for, ring):
    r = ring(reader_for(FUNCTIONS))
    r.put("write", [1, 0x1000, 1], ret=1, captures=[(1, CAP_BYTES, b"a")])
    r.put("write", [1, 0x1000, 1], ret=1, captures=[(1, CAP_BYTES, b"b")], commit=False)   # its writer died
    r.put("write", [1, 0x1000, 1], ret=1, captures=[(1, CAP_BYTES, b"c")])
    r.reader.drain(False)
    assert r.lines_path.read_text() == 'write(1, "a", 1) = 1\n'   # waits for "b" a while
    r.reader.drain(True)
    assert r.lines_path.read_text() == 'write(1, "a", 1) = 1\nwrite(1, "c", 1) = 1\n' and r.reader.lost == 1
    for i in range(3000):   # several times round the 64 KiB ring, drained as it goes
        r.put("write", [1, 0x1000, 1], ret=1, captures=[(1, CAP_BYTES, b"%d" % (i % 10))])
        if i % 500 == 0:
            r.reader.drain(False)
    r.reader.drain(True)
    assert len(r.lines_path.read_text().splitlines()) == 3002


def test_an_output_that_fails_keeps_the_others_and_counts_what_it_lost(reader_for, ring, tmp_path):
    import os
    r = ring(reader_for(FUNCTIONS))
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        r.reader.lines(full, 0, False, False, False, False, False, None, 0)
        for _ in range(5):
            r.put("write", [1, 0x1000, 1], ret=1, captures=[(1, CAP_BYTES, b"a")])
        r.reader.drain(True)
        r.reader.finish()
        (which, pid, err, lost, written), = r.reader.output_errors()
        assert (which, pid, err, written) == ("lines", None, errno.ENOSPC, 0) and lost == 5
        assert len(r.json_path.read_text().splitlines()) == 5
    finally:
        os.close(full)


def test_several_inject_rules_of_a_function_are_chained_in_order(reader_for, ring_writer):
    import ctypes
    from mrhooker import faults, tracefile
    built = reader_for(FUNCTIONS)
    a, b, c = [(1, e, -1, 1, faults.ALWAYS, n, 0, 0, 0, 0) for e, n in ((5, 1), (28, 3), (9, 7))]
    write, read = built.fn("write"), built.fn("read")
    trace = tracefile.TraceFile(built.lib, len(built.plans), 1 << 16, True, False, 32, [(write, [a, b, c]),
                                                                                         (read, [a])])
    try:
        out = (ctypes.c_int * 8)()
        chain = {fn: list(out[:ring_writer.rule_chain(trace.map, fn, out, 8)]) for fn in (write, read, 0)}
        assert chain == {write: [5, 28, 9], read: [5], 0: []}
    finally:
        trace.close()
