"""`mrhooker trace`: trace a command's library calls, with no script. The command line (cli.py) makes a
TraceRequest; Tracer builds what records those calls, runs the command with it, drains the records as they come
and hands them to the outputs (traceout.py)."""
import fnmatch
import os
import sys

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


class _Streams:
    """Where the lines go: stderr, -o FILE, or -ff's FILE.PID."""

    def __init__(self, request):
        self.request = request
        self.files = {}

    def _open(self, path):
        try:
            return open(path, "a" if self.request.append else "w", encoding="utf-8", errors="backslashreplace")
        except OSError as e:
            raise MrhookerError("cannot write %s: %s" % (path, e.strerror))

    def main(self):
        if not self.request.output:
            return sys.stderr
        if None not in self.files:
            self.files[None] = self._open(self.request.output)
        return self.files[None]

    def for_pid(self, pid):
        if not (self.request.per_process and self.request.output):
            return self.main()
        if pid not in self.files:
            self.files[pid] = self._open("%s.%d" % (self.request.output, pid))
        return self.files[pid]

    def flush(self):
        for f in self.files.values():
            f.flush()
        sys.stderr.flush()

    def close(self):
        for f in self.files.values():
            f.close()


class Tracer:
    def __init__(self, request, build_options, log):
        self.request = request
        self.build_options = build_options
        self.log = log

    def run(self, command, program):
        from mrhooker import build, cache, launch, tracefile, traceout

        request = self.request
        root = cache.prepare(self.build_options.build_dir or cache.default_root(),
                             "build directory" if self.build_options.build_dir else "cache directory")
        from mrhooker import faults, layouts
        symbols = tracing.symbols(root)
        rules = [faults.parse_inject(spec, symbols) for spec in request.inject]
        fake_time = faults.parse_fake_time(request.fake_time) if request.fake_time is not None else None
        needed = [name for rule in rules for name in rule.functions]
        if fake_time:
            needed += faults.fake_time_functions(fake_time[2], tracing.known_names(root))
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
        inject = [[rule.entry(p) for rule in chosen[i]] if i in chosen else None
                  for i, p in enumerate(prototypes)] if chosen else None
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
        streams = _Streams(request)
        outputs, files, reader = [], [], None
        try:
            lines = None
            if request.lines:
                options = traceout.Options(request.timestamps, request.relative, request.durations,
                                           request.failed_only, per_process=request.per_process)
                lines = traceout.Lines(decoder, options, streams.for_pid)
                outputs.append(lines)
            for path, make in ((request.json_path, lambda f: traceout.JsonLines(decoder, f)),
                               (request.timeline_path, lambda f: traceout.Timeline(decoder, f, request.timeline_limit))):
                if path:
                    try:
                        f = open(path, "w", encoding="utf-8")
                    except OSError as e:
                        raise MrhookerError("cannot write %s: %s" % (path, e.strerror))
                    files.append(f)
                    outputs.append(make(f))
            summary = traceout.Summary(decoder) if request.summary else None
            if summary and request.needs_records:
                outputs.append(summary)
            scaffold = traceout.Scaffold(decoder, request.scaffold_path, command) if request.scaffold_path else None
            if scaffold:
                outputs.append(scaffold)
            reader = tracefile.Reader(trace, decoder.arg_formats())
            adds = [out.add for out in outputs]
            execs = traceout.ExecPairing(decoder)

            def deliver(calls):
                for add in adds:
                    for call in calls:
                        add(call)

            def drain(final=False):
                while True:   # in batches: each gives the writers their space back
                    calls = reader.drain(final)
                    deliver(execs.pair(calls))
                    if len(calls) < 20000:
                        break
                streams.flush()

            def spawned(pid):
                if lines is not None:
                    lines.command_pid = pid

            raw_status, statuses = launch.run_traced(trace_build.preload, trace.environment(), command, program,
                                                     _LaunchOptions(request.follow, self.log), drain, spawned)
            drain(final=True)
            deliver(execs.finish())
            for out in outputs:
                out.finish()
            if request.lines:
                self._exits(statuses, streams)
            if summary:
                if not request.needs_records:
                    summary.add_counts(trace.counters(len(plans)), reader.duration_ns)
                streams.main().write(summary.text())
            self._report_losses(reader, outputs)
        finally:
            if reader is not None:
                reader.close()
            streams.flush()
            streams.close()
            for f in files:
                f.close()
            trace.close()
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
            sys.stderr.write("mrhooker: %d calls were not recorded: the trace buffer was full while mrhooker was "
                             "not reading it (--buffer-size MB makes it larger)\n" % dropped)
        if reader.lost:
            sys.stderr.write("mrhooker: %d records were lost: their process died while writing them\n" % reader.lost)
        for out in outputs:
            left_out = getattr(out, "left_out", 0)
            if left_out:
                sys.stderr.write("mrhooker: the timeline holds the first %d calls; %d more were left out, so that "
                                 "viewers can open it (--timeline-limit N)\n" % (out.count, left_out))


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
