"""`mrhooker trace`: trace a command's library calls, with no script. The command line (cli.py) makes a
TraceRequest; Tracer builds what records those calls, runs the command with it, drains the records as they come
and hands them to the outputs (traceout.py)."""
import errno
import fnmatch
import os
import select
import signal
import sys
import time

from mrhooker import tracing
from mrhooker.errors import MrhookerError


class TraceRequest:
    def __init__(self, specs=(), strsize=32, follow=True, output=None, per_process=False, append=False,
                 timestamps=0, relative=False, durations=False, failed_only=False, summary=False, lines=True,
                 json_path=None, timeline_path=None, timeline_limit=1_000_000, scaffold_path=None,
                 buffer_mb=64, inject=(), seed=0, fake_time=None, quiet=False):
        self.specs = list(specs)
        self.strsize = strsize
        self.follow = follow
        self.output = output
        self.per_process = per_process
        self.append = append
        self.timestamps, self.relative, self.durations = timestamps, relative, durations
        self.failed_only = failed_only
        self.summary = summary            # -c or -C
        self.lines = lines                # False for -c alone
        self.json_path = json_path
        self.timeline_path = timeline_path
        self.timeline_limit = timeline_limit
        self.scaffold_path = scaffold_path
        self.buffer_mb = buffer_mb
        self.inject = list(inject)        # --inject specs (faults.py)
        self.seed = seed
        self.fake_time = fake_time        # --fake-time spec, or None
        self.quiet = quiet                # -q: no call lines (then -e defaults to what is injected)

    @property
    def needs_records(self):
        return bool(self.lines or self.json_path or self.timeline_path or self.scaffold_path)


class _Sink:
    """A file the trace is written to (stderr, -o FILE, --json FILE...), by descriptor, in chunks of CHUNK bytes,
    so that what reached it is known to the line. The first error writing it (a full disk, EIO, a closed pipe)
    stops it, and only it: the program runs on, the other outputs too; report() says what it lost. A closed pipe
    (EPIPE) means its reader is gone: see Tracer.run."""

    CHUNK = 1 << 16

    def __init__(self, fd, name, own=True, error=None):
        self.fd, self.name, self.own = fd, name, own   # own: close fd at the end
        self.pending, self.size = [], 0
        self.written = 0      # lines that reached the file
        self.lost = 0         # lines that didn't
        self.error = error    # the OSError that stopped it

    @property
    def broken_pipe(self):
        return self.error is not None and self.error.errno == errno.EPIPE

    def write(self, text):
        if self.error is not None:
            self.lost += text.count("\n")
            return
        self.pending.append(text)
        self.size += len(text)
        if self.size >= self.CHUNK:
            self.flush()

    def flush(self):
        if not self.pending:
            return
        data = "".join(self.pending).encode("utf-8", "backslashreplace")
        self.pending, self.size = [], 0
        done = 0
        try:
            while done < len(data):
                try:
                    done += os.write(self.fd, data[done:])
                except BlockingIOError:   # a descriptor someone made non-blocking (a terminal): wait for it
                    select.select([], [self.fd], [])
        except OSError as e:
            self.error = e
            self.lost += data.count(b"\n", done)
        self.written += data.count(b"\n", 0, done)

    def close(self):
        self.flush()
        if self.own and self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def report(self):
        """The line saying what was lost, or None."""
        if self.error is None or self.broken_pipe:
            return None
        where = "from line %d on" % (self.written + 1) if self.written else "from its start"
        return "cannot write %s: %s (%d lines of the trace are missing there, %s; the program ran on)" % (
            self.name, self.error.strerror or self.error, self.lost, where)


class _Streams:
    """Where the trace goes: stderr, -o FILE, -ff's FILE.PID, --json and --timeline files, each a _Sink."""

    def __init__(self, request):
        self.request = request
        self.sinks = []
        self._by_pid = {}
        self._main = None

    def _open(self, path, append):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC), 0o666)
        return self._add(_Sink(fd, path))

    def _add(self, sink):
        self.sinks.append(sink)
        return sink

    def open_file(self, path):
        """A file opened before the program starts: failing to is an error of the request."""
        try:
            return self._open(path, False)
        except OSError as e:
            raise MrhookerError("cannot write %s: %s" % (path, e.strerror))

    def main(self):
        if self._main is None:
            if not self.request.output:
                sys.stderr.flush()   # mrhooker's own lines so far, before the trace's
                self._main = self._add(_Sink(2, "stderr", own=False))
            else:
                try:
                    self._main = self._open(self.request.output, self.request.append)
                except OSError as e:
                    raise MrhookerError("cannot write %s: %s" % (self.request.output, e.strerror))
        return self._main

    def for_pid(self, pid):
        if not (self.request.per_process and self.request.output):
            return self.main()
        sink = self._by_pid.get(pid)
        if sink is None:   # opened while the program runs: failing to stops this file, not the trace
            path = "%s.%d" % (self.request.output, pid)
            try:
                sink = self._open(path, self.request.append)
            except OSError as e:
                sink = self._add(_Sink(None, path, error=e))
            self._by_pid[pid] = sink
        return sink

    @property
    def broken_pipe(self):
        return any(sink.broken_pipe for sink in self.sinks)

    def flush(self):
        for sink in self.sinks:
            sink.flush()

    def close(self):
        for sink in self.sinks:
            sink.close()


def _say(text):
    """One of mrhooker's own lines on stderr, which may be broken (then it is lost, as anything written there)."""
    try:
        sys.stderr.write("mrhooker: %s\n" % text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class Tracer:
    def __init__(self, request, build_options, log):
        self.request = request
        self.build_options = build_options
        self.log = log

    def run(self, command, program):
        from mrhooker import build, cache, guardian, launch, tracefile, traceout

        request = self.request
        root = cache.prepare(self.build_options.build_dir or cache.default_root(),
                             "build directory" if self.build_options.build_dir else "cache directory")
        from mrhooker import codegen, faults, layouts
        symbols = tracing.symbols(root)
        rules = [faults.parse_inject(spec, symbols) for spec in request.inject]
        fake_time = faults.parse_fake_time(request.fake_time) if request.fake_time is not None else None
        needed = [name for rule in rules for name in rule.functions]
        if fake_time:
            needed += [n for n in codegen.FAKE_TIME_FUNCTIONS if n in tracing.known_names(root)]
        specs = list(request.specs)

        def names_some(specs):
            return any(not item.startswith("!") for spec in specs for item in tracing.items(spec))
        if needed and not names_some(specs) and not request.quiet:   # the default classes, and what is needed
            specs = ["%" + c for c in tracing.DEFAULT_CLASSES] + specs
        # -q with no -e: only what injection and fake time need
        prototypes = tracing.select(specs, root, self.build_options.headers) if names_some(specs) or not needed else []
        missing = [n for n in needed if not any(fnmatch.fnmatchcase(p.symbol, n) for p in prototypes)]
        if missing:
            prototypes = tracing.select(specs + [",".join(missing)], root, self.build_options.headers)
        chosen = faults.rules_for(rules, prototypes)
        inject = [chosen[i].entry(p) if i in chosen else None for i, p in enumerate(prototypes)] if chosen else None
        shown = layouts.measure_cached({tracing.struct_pointee(p.type) for proto in prototypes for p in proto.params}
                                       - {None}, root)
        plans = [tracing.plan(p, shown) for p in prototypes]
        self.log("tracing %d functions: %s" % (len(plans), " ".join(p.proto.symbol for p in plans)))
        trace_build = build.build_trace(plans, self.build_options)
        decoder = traceout.Decoder(trace_build.plans, symbols, request.strsize, shown)
        if fake_time:   # the clock starts from the date given as the program starts, not as mrhooker did
            fake_time = faults.parse_fake_time(request.fake_time)
        trace = tracefile.TraceFile(len(plans), request.buffer_mb << 20, request.needs_records, request.summary,
                                    request.strsize, inject, request.seed, fake_time)
        try:
            guard = guardian.Guardian(trace_build.guardian, trace.path)   # it outlives mrhooker, should it die
        except BaseException:
            trace.close()
            raise
        streams = _Streams(request)
        signals = launch.Signals()
        outputs, reader = [], None
        try:
            lines = None
            if request.output and not request.per_process:
                streams.main()   # opened now: a file that can't be written is refused before the program runs
            if request.lines:
                options = traceout.Options(request.timestamps, request.relative, request.durations,
                                           request.failed_only, per_process=request.per_process)
                lines = traceout.Lines(decoder, options, streams.for_pid)
                outputs.append(lines)
            for path, make in ((request.json_path, lambda f: traceout.JsonLines(decoder, f)),
                               (request.timeline_path, lambda f: traceout.Timeline(decoder, f, request.timeline_limit))):
                if path:
                    outputs.append(make(streams.open_file(path)))
            summary = traceout.Summary(decoder) if request.summary else None
            if summary and request.needs_records:
                outputs.append(summary)
            scaffold = traceout.Scaffold(decoder, request.scaffold_path, command) if request.scaffold_path else None
            if scaffold:
                outputs.append(scaffold)
            reader = tracefile.Reader(trace, decoder.arg_formats())
            adds = [out.add for out in outputs]
            execs = traceout.ExecPairing(decoder)
            pipe_closed = []   # set once a closed pipe ended the program

            def deliver(calls):
                for add in adds:
                    for call in calls:
                        add(call)

            def drain(final=False):
                """Drains the ring, all of it if final, else for a moment at most (so that the launcher notices
                the program's end while a busy program keeps it full); returns whether there is more."""
                until = time.monotonic() + (float("inf") if final else 0.1)
                more = False
                while not pipe_closed:   # in batches: each gives the writers their space back
                    if signals.interrupted:
                        break   # the program is gone, and mrhooker was asked to stop writing what is left
                    calls = reader.drain(final)
                    deliver(execs.pair(calls))
                    if streams.broken_pipe:
                        # The trace's reader is gone (`| head`): as strace does, kill what runs (the tracees die
                        # with strace) and die by SIGPIPE. The rest of the trace has nowhere to go.
                        guard.kill_all()
                        pipe_closed.append(True)
                    more = len(calls) >= 20000
                    if not more or time.monotonic() > until:
                        break
                streams.flush()
                if pipe_closed:
                    reader.discard()
                return more

            def spawned(pid):
                if lines is not None:
                    lines.command_pid = pid

            with signals:
                raw_status, statuses = launch.run_traced(trace_build.preload, trace.environment(), command, program,
                                                         _LaunchOptions(request.follow, self.log), signals, guard,
                                                         drain, spawned)
                drain(final=True)
                unwritten = reader.discard() if signals.interrupted else 0
            deliver(execs.finish())
            problems = []
            for out in outputs:
                try:
                    out.finish()
                except OSError as e:   # the scaffold, written whole at the end
                    problems.append("cannot write %s: %s" % (getattr(out, "path", "?"), e.strerror))
            if request.lines:
                self._exits(statuses, streams)
            if summary:
                if not request.needs_records:
                    summary.add_counts(trace.counters(len(plans)), reader.duration_ns)
                streams.main().write(summary.text())
            streams.flush()
            self._report_losses(reader, outputs)
            for message in problems + [sink.report() for sink in streams.sinks]:
                if message:
                    _say(message)
            if unwritten:
                _say("interrupted (%s): the last %d calls recorded were not written" % (
                    _signal_name(signals.interrupted), unwritten))
        finally:
            if reader is not None:
                reader.close()
            streams.close()
            trace.close()
            guard.close()
        if streams.broken_pipe:
            return launch.die_by(signal.SIGPIPE)
        return launch.exit_status(raw_status)

    def _exits(self, statuses, streams):
        """strace's last lines: how each traced process ended."""
        for pid, raw in sorted(statuses.items()):
            code = os.waitstatus_to_exitcode(raw)
            text = "+++ exited with %d +++" % code if code >= 0 else "+++ killed by %s +++" % _signal_name(-code)
            streams.for_pid(pid).write("[pid %d] %s\n" % (pid, text) if len(statuses) > 1 else text + "\n")

    def _report_losses(self, reader, outputs):
        dropped = reader.dropped()
        if dropped:
            _say("%d calls were not recorded: the trace buffer was full and its reader showed no sign of life "
                 "for 2 s" % dropped)
        if reader.lost:
            _say("%d records were lost: their process died while writing them" % reader.lost)
        for out in outputs:
            left_out = getattr(out, "left_out", 0)
            if left_out:
                _say("the timeline holds the first %d calls; %d more were left out, so that viewers can open it "
                     "(--timeline-limit N)" % (out.count, left_out))


class _LaunchOptions:
    def __init__(self, follow, log):
        self.follow = follow
        self.log = log


def _signal_name(sig):
    import signal
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "signal %d" % sig
