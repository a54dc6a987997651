"""The trace file shared with traced processes: made here, laid out, filled in and read by the trace build's
reader.so (runtime/reader.c, through ctypes). Python never reads the file's bytes: runtime/tracefile.h is the one
description of its layout, and reader.c the one reader of its records.

TraceFile makes the file (in /dev/shm, private, exclusive, named so that a stale one can be recognised and
removed), and Reader drains its ring into the outputs (lines, JSON, a timeline), keeping the read position and
the heartbeat that tells writers the reader is alive.
"""
import ctypes
import errno
import os
import threading

from mrhooker import cache, threads
from mrhooker.errors import MrhookerError

DIRECTORY = "/dev/shm"
BATCH = 20000   # records a drain takes at most: each batch gives the writers their space back
ALWAYS = 0xFFFFFFFF   # an inject rule's probability: every call its when= allows

_u64, _i64, _i32, _u32, _int, _p = (ctypes.c_uint64, ctypes.c_int64, ctypes.c_int32, ctypes.c_uint32, ctypes.c_int,
                                    ctypes.c_void_p)
OPEN_FOR_PID = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint32)
_SIGNATURES = {   # reader.c's exported functions: (result, arguments)
    "mrh_trace_file_size": (_u64, [_u64, _u64, _u64]),
    "mrh_trace_map": (_p, [_int, _u64]),
    "mrh_trace_unmap": (None, [_p, _u64]),
    "mrh_trace_init": (None, [_p, _u64, _u64, _u64, _int, _int, _u64, _u64]),
    "mrh_trace_add_rule": (None, [_p, _u64, _i32, _i64, _int, _u32, _u64, _u64, _u64, _u64, _u64]),
    "mrh_trace_set_fake_time": (None, [_p, _i64, _i64, _i64, _u64, _int]),
    "mrh_trace_beat": (None, [_p, _int]),
    "mrh_trace_dropped": (_u64, [_p]),
    "mrh_trace_abandoned": (_u64, [_p]),
    "mrh_trace_unmapped": (_u64, [_p]),
    "mrh_trace_counters": (None, [_p, _u64, ctypes.POINTER(_u64)]),
    "mrh_reader_new": (_p, [_p]),
    "mrh_reader_lines": (None, [_p, _int, _int, _int, _int, _int, _int, _int, OPEN_FOR_PID, _i64]),
    "mrh_reader_command_pid": (None, [_p, ctypes.c_uint32]),
    "mrh_reader_json": (None, [_p, _int, _i64]),
    "mrh_reader_timeline": (None, [_p, _int, _u64]),
    "mrh_reader_drain": (ctypes.c_long, [_p, _int, ctypes.c_long]),
    "mrh_reader_finish": (None, [_p]),
    "mrh_reader_exited": (None, [_p, ctypes.c_uint32, _int]),
    "mrh_reader_duration_ns": (_u64, [_p, _u64]),
    "mrh_reader_lost": (_u64, [_p]),
    "mrh_reader_timeline_count": (_u64, [_p]),
    "mrh_reader_timeline_left_out": (_u64, [_p]),
    "mrh_reader_output_error": (_int, [_p, _int, ctypes.POINTER(_u64), ctypes.POINTER(_u64),
                                       ctypes.POINTER(ctypes.c_uint32)]),
    "mrh_reader_broken_pipe": (_int, [_p]),
    "mrh_reader_discard": (ctypes.c_long, [_p]),
    "mrh_reader_counts": (None, [_p, _int, ctypes.POINTER(_u64)]),
    "mrh_reader_seen": (_int, [_p, ctypes.POINTER(_int), _int]),
    "mrh_reader_free": (None, [_p]),
}


def load(path):
    """A trace build's reader.so (a private build's: cache.check_private has vouched for it)."""
    lib = ctypes.CDLL(path)
    for name, (restype, argtypes) in _SIGNATURES.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = restype, argtypes
    return lib


class _Allocator(threading.Thread):
    """Allocates the trace file's pages in a thread of its own, a piece at a time from the start (where the
    writers begin), until done or stopped (the run ended: pages never written need not be allocated, nor freed
    when the file goes); then closes fd, its own. Should /dev/shm fill up between TraceFile's check and this
    (another program's files), the pages not allocated are allocated when written, as without it."""

    PIECE = 4 << 20

    def __init__(self, fd, size):
        super().__init__(name="mrhooker trace file", daemon=True)
        self.fd, self.size = fd, size
        self.stopping = False

    def run(self):
        try:
            for offset in range(0, self.size, self.PIECE):
                if self.stopping:
                    break
                os.posix_fallocate(self.fd, offset, min(self.PIECE, self.size - offset))
        except OSError:
            pass
        finally:
            os.close(self.fd)

    def stop(self):
        self.stopping = True
        if self.ident is not None:   # (never started: no thread to be had)
            self.join()


class TraceFile:
    """The shared file: created private and exclusive, removed by close()."""

    def __init__(self, lib, nfn, ring_size, records, counts, strsize, rules=(), seed=0, fake_time=None):
        """rules: (function index, [Rule.entry() fields, in the order they decide]) of the functions that have
        --inject rules; fake_time: (real anchor ns, fake anchor ns, rate in millionths, whether the elapsed clocks
        run at the rate too) or None."""
        self.lib = lib
        cache.remove_orphans(DIRECTORY, "mrhooker-trace")
        ring_size = 1 << max(ring_size - 1, 1 << 16).bit_length()   # a power of two (the writers mask)
        rules = list(rules)
        # the rule table: a slot per function, and the functions' further rules after them
        nrules = nfn + sum(len(chain) - 1 for _fn, chain in rules) if rules else 0
        self.size = lib.mrh_trace_file_size(nfn, ring_size, nrules)
        for _attempt in range(100):
            path = os.path.join(DIRECTORY, "mrhooker-trace-%d-%s" % (os.getpid(), os.urandom(6).hex()))
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                break
            except FileExistsError:
                continue
            except OSError as e:
                raise MrhookerError("cannot make the trace file in %s: %s" % (DIRECTORY, e.strerror))
        else:
            raise MrhookerError("cannot make a trace file in %s" % DIRECTORY)
        try:
            # /dev/shm too small fails here, not as a SIGBUS in the target when it writes a page there is no room
            # for. The pages are allocated (zeroed) by a thread of their own as the program starts: 64 MB take
            # ~20 ms, longer than a short command runs, and a page the program writes first is allocated then.
            vfs = os.statvfs(DIRECTORY)
            if vfs.f_bavail * vfs.f_frsize < self.size:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.ftruncate(fd, self.size)
            self.map = lib.mrh_trace_map(fd, self.size)
            if not self.map:
                raise OSError(ctypes.get_errno() or errno.ENOMEM, os.strerror(ctypes.get_errno() or errno.ENOMEM))
            st = os.fstat(fd)
        except OSError as e:
            os.close(fd)
            os.unlink(path)
            raise MrhookerError("cannot make the trace file %s (%d MB): %s%s" % (
                path, self.size >> 20, e.strerror, " (a smaller --buffer-size?)" if e.errno == errno.ENOSPC else ""))
        # the thread takes no signal: launch.Signals waits for them in a thread of its own
        self._allocator = _Allocator(fd, self.size)
        try:
            threads.start(self._allocator)
        except MrhookerError:   # no thread to be had (ulimit -u): the pages are allocated as they are written
            self._allocator.stopping = True
            os.close(fd)
        self.path, self.identity = path, "%d:%d" % (st.st_dev, st.st_ino)
        # a record over a quarter of the ring is dropped whole (trace.c), and one keeps up to 8 buffers: each is
        # shown up to a 64th of the ring (-s 99999999999: 1 MB of the default ring; 2**64 no longer wraps)
        strsize = min(strsize, ring_size // 64)
        lib.mrh_trace_init(self.map, nfn, ring_size, nrules, int(records), int(counts), strsize,
                           seed & ((1 << 64) - 1))
        for fn, chain in rules:
            for fields in chain:
                _armed, error, retval, fail, probability, first, last, step, enter_ns, exit_ns = fields
                lib.mrh_trace_add_rule(self.map, fn, error, retval, fail, probability, first, last, step, enter_ns,
                                       exit_ns)
        if fake_time:
            real, fake, rate, elapsed = fake_time
            lib.mrh_trace_set_fake_time(self.map, real, fake // 1000000000, fake % 1000000000, rate, int(elapsed))

    def environment(self):
        return {"MRHOOKER_TRACE": self.path, "MRHOOKER_TRACE_ID": self.identity}

    def dropped(self):
        return self.lib.mrh_trace_dropped(self.map)

    def abandoned(self):
        return self.lib.mrh_trace_abandoned(self.map)

    def unmapped(self):
        return self.lib.mrh_trace_unmapped(self.map)

    def counters(self, nfn):
        """[(calls, errors, time units)] per function (for -c), in the writers' clock units."""
        out = (_u64 * 3)()
        counts = []
        for fn in range(nfn):
            self.lib.mrh_trace_counters(self.map, fn, out)
            counts.append(tuple(out))
        return counts

    def close(self):
        self._allocator.stop()
        if self.map:
            self.lib.mrh_trace_beat(self.map, 0)   # writers stop waiting for a reader
            self.lib.mrh_trace_unmap(self.map, self.size)
            self.map = None
        try:
            os.unlink(self.path)
        except OSError:
            pass


_NEXT = 10   # the index of mrh_inject_rule's `next`: after the fields of faults.Rule.entry, before `pad`


def _rule_table(nfn, inject):
    """mrh_inject_rule rows: each function's first rule in its own slot (a zeroed one if it has none), its others
    after the nfn slots, each row's `next` the index of the function's next rule (0: none)."""
    rows = [[0] * (_NEXT + 2) for _ in range(nfn)]
    for fn, chain in enumerate(inject):
        previous = None
        for fields in chain or ():
            index = fn if previous is None else len(rows)
            if previous is not None:
                rows.append(None)
                rows[previous][_NEXT] = index
            rows[index] = list(fields) + [0, 0]
            previous = index
    return rows


class Reader:
    """Drains a TraceFile's ring into the outputs reader.c writes (it owns no descriptor: the caller opens and
    closes them)."""

    def __init__(self, trace):
        self.lib = trace.lib
        self.trace = trace
        self.handle = self.lib.mrh_reader_new(trace.map)
        if not self.handle:
            raise MemoryError("the trace reader")
        self._open_for_pid = None   # kept alive while C may call it

    def lines(self, fd, timestamps, relative, durations, callers, failed_only, per_process, open_for_pid,
              wall_offset_ns):
        self._open_for_pid = OPEN_FOR_PID(open_for_pid or (lambda pid: -1))
        self.lib.mrh_reader_lines(self.handle, fd, timestamps, relative, int(durations), int(callers),
                                  int(failed_only),
                                  int(per_process), self._open_for_pid, wall_offset_ns)

    def command_pid(self, pid):
        self.lib.mrh_reader_command_pid(self.handle, pid)

    def json(self, fd, wall_offset_ns):
        self.lib.mrh_reader_json(self.handle, fd, wall_offset_ns)

    def timeline(self, fd, limit):
        self.lib.mrh_reader_timeline(self.handle, fd, limit)

    def drain(self, final=False, budget=BATCH):
        """Shows the calls committed since the last drain (at most `budget`); returns how many it took."""
        return self.lib.mrh_reader_drain(self.handle, int(final), budget)

    def finish(self):
        self.lib.mrh_reader_finish(self.handle)

    def discard(self):
        """Skips what is left in the ring, unread (its writers are gone, or its reader); returns how many calls
        that was."""
        return self.lib.mrh_reader_discard(self.handle)

    def broken_pipe(self):
        """Has an output's reader gone away (EPIPE)?"""
        return bool(self.lib.mrh_reader_broken_pipe(self.handle))

    def exited(self, pid, wait_status):
        """A process mrhooker reaped: its last line (`+++ exited with 0 +++`)."""
        self.lib.mrh_reader_exited(self.handle, pid, wait_status)

    def duration_ns(self, ticks):
        return self.lib.mrh_reader_duration_ns(self.handle, ticks)

    @property
    def lost(self):
        return self.lib.mrh_reader_lost(self.handle)

    def timeline_counts(self):
        return self.lib.mrh_reader_timeline_count(self.handle), self.lib.mrh_reader_timeline_left_out(self.handle)

    def output_errors(self):
        """[(which, pid, errno, lines lost, lines written before)] of the outputs that failed (but a closed pipe):
        which is "lines", "json", "timeline"."""
        failed, which = [], 0
        lost, written, pid = _u64(), _u64(), ctypes.c_uint32()
        while True:
            err = self.lib.mrh_reader_output_error(self.handle, which, ctypes.byref(lost), ctypes.byref(written),
                                                   ctypes.byref(pid))
            if err < 0:
                return failed
            if err and err != errno.EPIPE:
                failed.append((("lines", "json", "timeline")[which] if which < 3 else "lines", pid.value or None,
                               err, lost.value, written.value))
            which += 1

    def counts(self, nfn):
        out = (_u64 * 3)()
        rows = []
        for fn in range(nfn):
            self.lib.mrh_reader_counts(self.handle, fn, out)
            rows.append(tuple(out))
        return rows

    def seen(self, nfn):
        out = (_int * max(nfn, 1))()
        n = self.lib.mrh_reader_seen(self.handle, out, nfn)
        return list(out[:n])

    def close(self):
        if self.handle:
            self.lib.mrh_reader_free(self.handle)
            self.handle = None
