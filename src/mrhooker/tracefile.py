"""The trace file shared with traced processes (its layout: runtime/trace.h): made here, drained here.

TraceFile makes the file (in /dev/shm, private, named so that a stale one can be recognised), and Reader
drains its ring into Call objects, keeping the ring's read position and the heartbeat that tells writers the
reader is alive. Nothing here formats: that is traceout's job.
"""
import errno
import mmap
import os
import struct
import time

from mrhooker import cache
from mrhooker.errors import MrhookerError

MAGIC = 0x4D52485452414345
VERSION = 2
RECORD_MAGIC = 0x524D
PAD = 0xFFFF
RET = 255
FAILED, ENTRY_ONLY, UNSAFE, INJECTED, DELAYED = 1, 2, 4, 16, 32   # runtime/trace.h
EXEC_DONE = 8   # the reader's own: an exec's entry record, once the exec is known to have worked
CLOCK_MONOTONIC, CLOCK_TSC = 1, 2
HEADER_SIZE = 4096
COUNTERS_OFFSET = 4096

# mrh_trace_header, as uint64 words: the index of each field.
_FIELDS = ("magic", "version", "ring_offset", "ring_size", "nfn", "records_on", "counts_on", "strsize",
           "clock_state", "clock", "tsc_hz", "anchor_tsc", "anchor_ns", "inject_offset", "inject_seed",
           "fake_time_on", "fake_anchor_real_ns", "fake_anchor_ns", "fake_rate_ppm")
WORD = {name: i for i, name in enumerate(_FIELDS)}
WORD["write_pos"] = len(_FIELDS) + 10
WORD["read_pos"] = WORD["write_pos"] + 8
WORD["heartbeat_ns"] = WORD["read_pos"] + 1
WORD["dropped"] = WORD["read_pos"] + 2

_CAPTURE = struct.Struct("<HHIII")            # 16 bytes
_INJECT_RULE = struct.Struct("<IiqIIQQQQQ")   # mrh_inject_rule: 64 bytes
DIRECTORY = "/dev/shm"


class Call:
    """One recorded call."""

    __slots__ = ("fn", "pid", "tid", "ts_ns", "dur_ns", "ret", "err", "flags", "args", "captures")

    def __init__(self, fn, pid, tid, ts_ns, dur_ns, ret, err, flags, args, captures):
        self.fn = fn              # index into the trace's plans
        self.pid, self.tid = pid, tid
        self.ts_ns = ts_ns        # CLOCK_MONOTONIC at entry
        self.dur_ns = dur_ns
        self.ret = ret            # the result's 64 bits
        self.err = err            # errno the call set (0: none)
        self.flags = flags
        self.args = args          # tuple of 64-bit values
        self.captures = captures  # {which: (bytes, full length)}

    @property
    def failed(self):
        return bool(self.flags & FAILED)

    @property
    def entry_only(self):
        return bool(self.flags & ENTRY_ONLY)


class TraceFile:
    """The shared file: created private and exclusive, removed by close()."""

    def __init__(self, nfn, ring_size, records, counts, strsize, inject=None, seed=0, fake_time=None):
        """inject: per function, the mrh_inject_rule fields (faults.Rule.entry) or None; fake_time: (real anchor
        ns, fake anchor ns, rate in millionths) or None."""
        self._prune_stale()
        ring_size = 1 << max(ring_size - 1, 1 << 16).bit_length()   # a power of two (the writers mask)
        inject_offset = COUNTERS_OFFSET + ((nfn * 24 + 4095) // 4096) * 4096
        ring_offset = inject_offset + (((nfn * _INJECT_RULE.size + 4095) // 4096) * 4096 if inject else 0)
        size = ring_offset + ring_size
        for attempt in range(100):
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
            # Every page allocated now, zeroed, in one call: a traced process's first write to a page is then no
            # allocating fault, and a /dev/shm too small fails here rather than as a SIGBUS in the target.
            os.posix_fallocate(fd, 0, size)
            self.map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            st = os.fstat(fd)
        except OSError as e:
            os.close(fd)
            os.unlink(path)
            raise MrhookerError("cannot make the trace file %s (%d MB): %s%s" % (
                path, size >> 20, e.strerror, " (a smaller --buffer-size?)" if e.errno == errno.ENOSPC else ""))
        os.close(fd)
        self.path, self.identity = path, "%d:%d" % (st.st_dev, st.st_ino)
        self.words = memoryview(self.map)[:HEADER_SIZE].cast("Q")
        w = self.words
        w[WORD["magic"]], w[WORD["version"]] = MAGIC, VERSION
        w[WORD["ring_offset"]], w[WORD["ring_size"]], w[WORD["nfn"]] = ring_offset, ring_size, nfn
        w[WORD["records_on"]], w[WORD["counts_on"]], w[WORD["strsize"]] = int(records), int(counts), strsize
        if inject:
            for fn, fields in enumerate(inject):
                if fields is not None:
                    _INJECT_RULE.pack_into(self.map, inject_offset + fn * _INJECT_RULE.size, *fields)
            w[WORD["inject_offset"]], w[WORD["inject_seed"]] = inject_offset, seed & ((1 << 64) - 1)
        if fake_time:
            real, fake, rate = fake_time
            w[WORD["fake_anchor_real_ns"]] = real & ((1 << 64) - 1)   # int64 bits
            w[WORD["fake_anchor_ns"]] = fake & ((1 << 64) - 1)
            w[WORD["fake_rate_ppm"]], w[WORD["fake_time_on"]] = rate, 1
        self.beat()

    @staticmethod
    def _prune_stale():
        """Removes trace files of ours whose mrhooker is gone (killed before it could)."""
        try:
            names = os.listdir(DIRECTORY)
        except OSError:
            return
        for name in names:
            parts = name.split("-")
            if name.startswith("mrhooker-trace-") and len(parts) == 4 and parts[2].isdigit():
                path = os.path.join(DIRECTORY, name)
                try:
                    if os.lstat(path).st_uid == os.getuid() and not cache.pid_alive(int(parts[2])):
                        os.unlink(path)
                except OSError:
                    pass

    def environment(self):
        return {"MRHOOKER_TRACE": self.path, "MRHOOKER_TRACE_ID": self.identity}

    def beat(self):
        """The reader is alive (writers that find the ring full wait for it only while this is recent). Beaten
        by the reader as it drains, and by the guardian (guardian.py) however slowly the reader goes."""
        self.words[WORD["heartbeat_ns"]] = time.monotonic_ns()

    def counters(self, nfn):
        """[(calls, errors, time units)] per function (for -c), in the writers' clock units."""
        with memoryview(self.map) as whole:
            view = whole[COUNTERS_OFFSET:COUNTERS_OFFSET + 24 * nfn].cast("Q")
            counts = [(view[3 * i], view[3 * i + 1], view[3 * i + 2]) for i in range(nfn)]
            view.release()
        return counts

    def close(self):
        try:
            self.words[WORD["heartbeat_ns"]] = 0   # writers stop waiting for a reader
        except ValueError:
            pass
        self.words.release()
        try:
            os.unlink(self.path)
        except OSError:
            pass
        self.map.close()


class Reader:
    """Drains the ring of a TraceFile into Calls, converting times to CLOCK_MONOTONIC nanoseconds.
    arg_formats: for each function, the struct codes of its arguments ("qQd": signed, unsigned, double)."""

    def __init__(self, trace, arg_formats):
        self.trace = trace
        w = trace.words
        self.ring_offset, self.ring_size = w[WORD["ring_offset"]], w[WORD["ring_size"]]
        self.ring = memoryview(trace.map)[self.ring_offset:self.ring_offset + self.ring_size]
        self.position = w[WORD["read_pos"]]
        self.stuck_since = None   # (position, when) an uncommitted record was first seen there
        self.lost = 0             # records skipped because their writer died writing them
        # One struct per function: the record's fixed part and its arguments, as the function's types.
        self.layouts = [struct.Struct("<IHHIIQQQiBBBB" + codes) for codes in arg_formats]

    def _clock(self):
        """(anchor ticks, anchor ns, ns per tick as a fraction): the writers' clock, fixed once chosen."""
        w = self.trace.words
        if w[WORD["clock"]] == CLOCK_TSC:
            return w[WORD["anchor_tsc"]], w[WORD["anchor_ns"]], 1_000_000_000, max(w[WORD["tsc_hz"]], 1)
        return 0, 0, 1, 1

    def to_ns(self, ticks):
        anchor_ticks, anchor_ns, mul, div = self._clock()
        return anchor_ns + (ticks - anchor_ticks) * mul // div

    def duration_ns(self, ticks):
        _t, _n, mul, div = self._clock()
        return ticks * mul // div

    def dropped(self):
        return self.trace.words[WORD["dropped"]]

    def close(self):
        self.ring.release()

    def drain(self, final=False, budget=20000):
        """The calls committed since the last drain (at most `budget` of them), in the order they were
        reserved. final: the writers are gone, so a record left uncommitted will never be."""
        w = self.trace.words
        calls = []
        size, ring = self.ring_size, self.ring
        end = w[WORD["write_pos"]]
        pos = self.position
        anchor_ticks, anchor_ns, mul, div = self._clock()
        layouts, head, add, read_captures = self.layouts, _HEAD, calls.append, self._captures
        while pos < end and budget:
            at = pos % size
            length, magic, fn = head.unpack_from(ring, at)
            if length == 0 or magic != RECORD_MAGIC:
                if self._skip_stuck(pos, final):
                    pos = self._resynchronise(pos, end)
                    continue
                break
            if fn != PAD:
                layout = layouts[fn]
                fields = layout.unpack_from(ring, at)
                ncaps = fields[11]
                captures = read_captures(at + layout.size, at + length, ncaps) if ncaps else _NO_CAPTURES
                add(Call(fn, fields[3], fields[4], anchor_ns + (fields[5] - anchor_ticks) * mul // div,
                         fields[6] * mul // div, fields[7], fields[8], fields[9], fields[13:], captures))
                budget -= 1
            pos += length
        if pos != self.position:
            # The space is free again only after it is zeroed (a record's size is its commit).
            self._zero(self.position, pos)
            self.position = pos
            w[WORD["read_pos"]] = pos
        self.trace.beat()
        return calls

    def discard(self):
        """Skips what is left in the ring, unread (the writers are gone); returns how many calls that was."""
        skipped = 0
        while True:
            w = self.trace.words
            end, pos = w[WORD["write_pos"]], self.position
            while pos < end:
                length, magic, fn = _HEAD.unpack_from(self.ring, pos % self.ring_size)
                if length == 0 or magic != RECORD_MAGIC:   # left uncommitted by a writer that died
                    break
                skipped += fn != PAD
                pos += length
            if pos == self.position:
                return skipped
            self._zero(self.position, pos)
            self.position = w[WORD["read_pos"]] = pos

    def _captures(self, q, end, ncaps):
        """{which: (bytes, full length)} of a record's captures, which lie between q and the record's end."""
        ring, captures, size = self.ring, {}, _CAPTURE.size
        for _ in range(ncaps):
            if q + size > end:
                break
            which, _kind, full, n, _p = _CAPTURE.unpack_from(ring, q)
            q += size
            if q + n > end:
                n = end - q
            captures[which] = (ring[q:q + n].tobytes(), full)
            q += (n + 7) & ~7
        return captures

    def _zero(self, start, stop):
        size = self.ring_size
        while start < stop:
            at = start % size
            n = min(stop - start, size - at)
            self.ring[at:at + n] = bytes(n)
            start += n

    def _skip_stuck(self, pos, final):
        now = time.monotonic()
        if final:
            return True
        if self.stuck_since is None or self.stuck_since[0] != pos:
            self.stuck_since = (pos, now)
            return False
        return now - self.stuck_since[1] > 2.0

    def _resynchronise(self, pos, end):
        """Past a record whose writer died before committing it: to the next 8-byte boundary that starts a
        committed record (its magic), or to the end."""
        self.lost += 1
        self.stuck_since = None
        pos += 8
        while pos < end:
            length, magic = struct.unpack_from("<IH", self.ring, pos % self.ring_size)
            if magic == RECORD_MAGIC and 0 < length <= self.ring_size and length % 8 == 0:
                return pos
            pos += 8
        return end


_HEAD = struct.Struct("<IHH")
_NO_CAPTURES = {}
