"""`mrhooker trace`: trace a command's library calls, with no script. The command line (cli.py) makes a
TraceRequest; Tracer builds what records those calls, runs the command with it, drains the records as they come
and hands them to the outputs (traceout.py)."""
import fnmatch
import os
import signal
import time

from mrhooker import launch, tracefile, traceout
from mrhooker.errors import MrhookerError, counted, say


class TraceRequest:
    def __init__(self, specs=(), strsize=32, follow=True, output=None, per_process=False, append=False,
                 timestamps=0, relative=False, durations=False, callers=False, failed_only=False, summary=False, lines=True,
                 json_path=None, timeline_path=None, timeline_limit=1_000_000, scaffold_path=None,
                 buffer_mb=64, inject=(), seed=0, fake_time=None, quiet=False, duration=None, entry=False,
                 chosen_only=False):
        self.specs = list(specs)
        self.strsize = strsize
        self.follow = follow
        self.output = output
        self.per_process = per_process
        self.append = append
        self.timestamps, self.relative, self.durations = timestamps, relative, durations
        self.callers = callers            # -i: each call's site (its return address)
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
        self.duration = duration          # -p: detach after this many seconds (None: at Ctrl-C or their end)
        self.entry = entry                # --entry: every function at its entry (atentry.py), not only its PLT
        self.chosen_only = chosen_only    # --chosen-only: record only the calls an --inject rule chose

    @property
    def needs_records(self):
        return bool(self.lines or self.json_path or self.timeline_path or self.scaffold_path)


def _one_file_each(named):
    """Two outputs named the same file (`-o t --json t`) would each write it from its own offset, over the other:
    refused. A device or a pipe (/dev/null, /dev/stdout) may take both."""
    seen = {}
    for option, path in named:
        if not path:
            continue
        try:
            st = os.stat(path)
        except OSError:
            key = os.path.realpath(path)   # a file still to be made
        else:
            import stat
            if not stat.S_ISREG(st.st_mode):
                continue
            key = (st.st_dev, st.st_ino)
        if key in seen:
            raise MrhookerError("%s and %s name the same file, %s: each would write over the other's lines"
                                % (seen[key], option, path))
        seen[key] = option


class _Outputs:
    """The descriptors reader.c writes to: the lines (stderr, -o FILE, or -ff's FILE.PID), --json, --timeline.
    Opened before the program runs (a typo must not cost the run), closed at the end."""

    def __init__(self, request):
        self.request = request
        self.files = []
        self.per_pid = {}
        _one_file_each([("-o", request.output if not request.per_process else None), ("--json", request.json_path),
                        ("--timeline", request.timeline_path), ("--scaffold", request.scaffold_path)])
        self.lines_fd = self._open(request.output) if request.output and not request.per_process else 2
        self.json_fd = self._open(request.json_path) if request.json_path else -1
        self.timeline_fd = self._open(request.timeline_path) if request.timeline_path else -1

    def _open(self, path, append=None):
        append = self.request.append if append is None else append
        try:
            f = open(path, "ab" if append else "wb", buffering=0)
        except OSError as e:
            raise MrhookerError("cannot write %s: %s" % (path, e.strerror))
        self.files.append(f)
        return f.fileno()

    def for_pid(self, pid):
        """-ff: a new descriptor of FILE.PID, which reader.c owns (it closes it when the process has ended); -1 if
        it can't be made: that process's lines are counted as lost. Opened again (lines of a pid used again, after
        its end), it is appended to."""
        path = "%s.%d" % (self.request.output, pid)
        again = pid in self.per_pid
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if again or self.request.append else os.O_TRUNC)
        try:
            self.per_pid[pid] = os.open(path, flags, 0o666)
        except OSError as e:
            if not again or self.per_pid[pid] >= 0:   # said once
                say("cannot write %s: %s" % (path, e.strerror))
            self.per_pid[pid] = -1
        return self.per_pid[pid]

    def path_of(self, which, pid):
        r = self.request
        if which == "json":
            return r.json_path
        if which == "timeline":
            return r.timeline_path
        if pid is not None:
            return "%s.%d" % (r.output, pid)
        return r.output or "stderr"

    def close(self):
        for f in self.files:
            f.close()


class TracePlan:
    """What a trace records: the traced functions (tracespec.Plan, in slot order), the --inject rules of each slot
    that has some ((slot, [Rule.entry fields, in the order they decide])), whether the clock is faked, and what the
    reader needs to show them (the headers' constants, the structs' layouts)."""

    def __init__(self, plans, rules, fake_time, symbols, layouts):
        self.plans, self.rules, self.fake_time, self.symbols, self.layouts = plans, rules, fake_time, symbols, layouts


def plan_trace(request, root, headers):
    """The functions -e (and --inject, --fake-time) select, described, with their rules."""
    from mrhooker import faults, layouts, tracespec, tracing

    symbols = tracing.symbols(root)
    rules = [faults.parse_inject(spec, tracespec.errno_values(symbols)) for spec in request.inject]
    fake_time = request.fake_time is not None
    needed = [name for rule in rules for name in rule.functions]
    if fake_time:   # refused now if it is bad; anchored again as the program starts
        rate = faults.parse_fake_time(request.fake_time)[-1]
        needed += faults.fake_time_functions(rate, tracing.known_names(root))
    specs = list(request.specs)

    def names_some(specs):
        return any(not item.startswith("!") for spec in specs for item in tracing.items(spec))
    if needed and not names_some(specs) and not request.quiet:   # the default classes, and what is needed
        specs = ["%" + c for c in tracespec.DEFAULT_CLASSES] + specs
    # -q with no -e: only what injection and fake time need
    prototypes = tracing.select(specs, root, headers) if names_some(specs) or not needed else []
    missing = [n for n in needed if not any(fnmatch.fnmatchcase(p.symbol, n) for p in prototypes)]
    if missing:
        prototypes = tracing.select(specs + [",".join(missing)], root, headers)
    from mrhooker import cdecl
    chosen = faults.rules_for(rules, prototypes, cdecl.large_file_twins(root, headers) if rules else None)
    rule_fields = [(i, [rule.entry(p) for rule in chosen[i]]) for i, p in enumerate(prototypes) if i in chosen]
    hidden = _hidden_waits(request, prototypes, root, headers)   # after the rules: none of them is injected
    shown = layouts.measure_cached(tracespec.struct_names(prototypes + hidden), root)
    plans = [tracespec.plan(p, shown) for p in prototypes] + [tracespec.plan(p, shown, hidden=True) for p in hidden]
    return TracePlan(plans, rule_fields, fake_time, symbols, shown)




def _hidden_waits(request, prototypes, root, headers):
    """The waits -e left out that a trace's lines need: strace ends each child's lines with how it ended
    (`+++ exited with 0 +++`), which mrhooker learns from the wait that reaped it (dash's wait3, bash's waitpid).
    Traced for the reader only, not shown."""
    from mrhooker import tracespec, tracing

    if not (request.follow and request.lines and not request.quiet):
        return []
    selected = {p.symbol for p in prototypes}
    known = tracing.known_names(root)
    wanted = [name for name in tracespec.WAITS if name not in selected and name in known]
    return [p for p in tracing.select([",".join(wanted)], root, headers) if p.symbol not in selected] if wanted else []


def _tracing_line(functions):
    """-v's line of what a trace traces: functions, [(name, hidden)]."""
    shown = [name for name, hidden in functions if not hidden]
    waits = [name for name, hidden in functions if hidden]
    return "tracing %d functions: %s%s" % (len(shown), " ".join(shown), " (and, for the children's ends, %s)" % (
        " ".join(waits)) if waits else "")


class Tracer:
    def __init__(self, request, build_options, log):
        self.request = request
        self.build_options = build_options
        self.log = log

    def run(self, command, program, attach_to=None):
        """Traces COMMAND (program: its path), or the running processes attach_to (pids) until Ctrl-C, SIGTERM,
        SIGHUP, request.duration seconds or their end; returns mrhooker's exit status."""
        from mrhooker import cache, guardian

        request = self.request
        root = cache.build_root(self.build_options.build_dir, preloaded=not attach_to)
        trace_build, rules, fake_time = self._prepare(root)
        nfn = len(trace_build.functions)
        lib = tracefile.load(trace_build.reader)
        if fake_time:   # the clock starts from the date given as the program starts, not as mrhooker did
            from mrhooker import faults
            # attached, the elapsed clocks stay real: the detach would turn a monotonic clock back
            fake_time = faults.parse_fake_time(request.fake_time) + (not attach_to,)
        records = (2 if request.chosen_only else 1) if request.needs_records else 0   # tracefile.h: MRH_RECORDS_*
        trace = tracefile.TraceFile(lib, nfn, request.buffer_mb << 20, records, request.summary,
                                    request.strsize, rules, request.seed, fake_time)
        try:
            guard = guardian.Guardian(trace_build.guardian, trace.path)   # it outlives mrhooker, should it die
        except BaseException:
            trace.close()
            raise
        outputs = reader = None
        signals = launch.Signals()
        broken = []   # set when the lines' reader went away (a closed pipe): see _run
        try:
            outputs = _Outputs(request)
            reader = tracefile.Reader(trace)
            self._connect(reader, outputs)
            with signals:
                if attach_to:
                    raw_status, statuses = self._attached(reader, trace, trace_build.preload, trace_build.functions,
                                                          root, attach_to, signals, guard, broken)
                else:
                    settings = dict(trace.environment(), **self._entry_setting(trace_build.functions, program, root))
                    raw_status, statuses = self._run(reader, settings, trace_build.preload, command, program,
                                                     signals, guard, broken)
                # a second Ctrl-C once the program is gone: what is left in the ring is not written
                unwritten = reader.discard() if signals.interrupted and not broken else 0
            if not broken:
                if request.lines:
                    self._exits(statuses, reader)
                reader.finish()
                self._summary(reader, trace, outputs, trace_build.functions)
                if request.scaffold_path:
                    self._scaffold(command, [trace_build.functions[fn] for fn in reader.seen(nfn)
                                             if not trace_build.functions[fn].get("hidden")])
                self._report(reader, trace, outputs)
                if unwritten:
                    say("interrupted (%s): the last %d calls recorded were not written" % (
                        signal.Signals(signals.interrupted).name, unwritten))
        finally:
            if reader is not None:
                reader.close()
            if outputs is not None:
                outputs.close()
            trace.close()
            guard.close()
        if broken:
            return launch.die_by(signal.SIGPIPE)
        return launch.exit_status(raw_status)

    def _prepare(self, root):
        """The trace's build, its --inject rules, and whether the clock is faked: as remembered for this request
        (tracecache.py), else planned and built (a first run, or something it depends on changed)."""
        from mrhooker import build, cache, tracecache

        request, options = self.request, self.build_options
        fake_rate = None
        if request.fake_time is not None:   # the functions faked depend on the rate (a frozen clock: fewer)
            from mrhooker import faults
            fake_rate = faults.parse_fake_time(request.fake_time)[-1]
        key = tracecache.request_key(request, options.headers, options.cflags, fake_rate)
        found = None if options.rebuild else tracecache.lookup(root, key)
        if found is not None:
            directory, manifest, rules = found
            functions = manifest["functions"]
            self.log("warm start: %s" % directory)
            self.log(_tracing_line([(f["name"], f.get("hidden", False)) for f in functions]))
            trace_build = build.TraceBuild(cache.check_private(directory, "build"), functions)
            return trace_build, rules, request.fake_time is not None
        with options.preparing("reading the system headers' prototypes"):
            build.start_runtime_objects(root, options.log)
            try:
                planned = plan_trace(request, root, options.headers)
            except BaseException:   # a refused request: its runtime's compilers go too, not waited for
                from mrhooker import toolchain
                toolchain.kill_running()
                raise
            self.log(_tracing_line([(p.symbol, p.hidden) for p in planned.plans]))
            trace_build = build.build_trace(planned.plans, planned.symbols, planned.layouts, options)
            build.settle_runtime_objects()   # (started above, and not needed when the build was cached)
        from mrhooker import cdecl
        tracecache.remember(root, key, trace_build.directory, planned.rules, cdecl.loaded_header_stamps())
        return trace_build, planned.rules, planned.fake_time

    def _connect(self, reader, outputs):
        r = self.request
        wall_offset_ns = time.time_ns() - time.monotonic_ns()
        if r.lines:
            reader.lines(outputs.lines_fd, r.timestamps, r.relative, r.durations, r.callers, r.failed_only,
                         r.per_process, outputs.for_pid if r.per_process else None, wall_offset_ns)
        if r.json_path:
            reader.json(outputs.json_fd, wall_offset_ns)
        if r.timeline_path:
            reader.timeline(outputs.timeline_fd, r.timeline_limit)

    @staticmethod
    def _drainer(reader, signals, guard, broken):
        """drain(final=False): reads what the ring holds, a moment at most unless final, so that the caller
        notices the program's end while a busy program keeps the ring full; true if more is waiting. When an
        output's reader is gone (`| head`: a closed pipe), everything mrhooker started is killed, as strace's
        tracees die with it, and mrhooker dies by SIGPIPE (broken says so)."""
        def drain(final=False):
            until = time.monotonic() + (float("inf") if final else 0.1)
            more = False
            while not broken and not signals.interrupted:   # in batches: each gives the writers their space back
                more = reader.drain(final) >= tracefile.BATCH
                if reader.broken_pipe():
                    guard.kill_all()
                    broken.append(True)
                    reader.discard()
                    break
                if not more or time.monotonic() > until:
                    break
            return more
        return drain

    def _entry_setting(self, functions, program, root):
        """MRHOOKER_ENTRY for this trace: with --entry every traced function at its entry where its first
        instructions can be moved (the others through the PLT, said in one line); without, only the functions
        written out as prototypes (-e 'int compute(int x)') that the program defines and no library exports."""
        if not self.request.entry and not any("(" in spec for spec in self.request.specs):
            return {}   # (a warm start imports nothing of the planning side)
        import re
        from mrhooker import tracing
        written = [item for spec in self.request.specs for item in tracing.items(spec) if "(" in item]
        names = [f["name"] for f in functions]
        own = {name for name in names if any(re.search(r"\b%s\s*\(" % re.escape(name), item) for item in written)}
        if not own and not self.request.entry:
            return {}
        from mrhooker import atentry
        setting = atentry.entry_setting(program, names, True if self.request.entry else set(), own, False, root)
        self.log("hooked at their entry: %s" % " ".join(sorted(setting.patched)))
        if setting.refused and self.request.entry:
            say("traced through the PLT only, %d of the %d functions (their entry can't be patched): %s%s" % (
                len(setting.refused), len(names), ", ".join(sorted(setting.refused)[:8]),
                ", ..." if len(setting.refused) > 8 else ""))
            for name, why in sorted(setting.refused.items()):
                self.log("%s: %s" % (name, why))
        elif setting.refused:
            for why in setting.refused.values():
                say(why)
        return setting.environment()

    def _run(self, reader, settings, preload, command, program, signals, guard, broken):
        """Runs the command, draining the ring as it goes; (its wait status, {pid: wait status})."""
        drain = self._drainer(reader, signals, guard, broken)
        status = launch.run_traced(preload, settings, command, program,
                                   _LaunchOptions(self.request.follow, self.log), signals, guard, drain,
                                   reader.command_pid)
        drain(final=True)
        return status

    def _attached(self, reader, trace, preload, functions, root, pids, signals, guard, broken):
        """Attaches to the running processes pids, drains the ring until they end or mrhooker is asked to stop
        (Ctrl-C, SIGTERM, SIGHUP, --duration), then detaches and drains what is left; (0, {}): their exit
        statuses are their parents' to see. A closed pipe detaches as well (the processes are not mrhooker's to
        kill)."""
        from mrhooker import attached

        signals.ended()   # nothing is forwarded: INT, TERM and HUP say "detach" (signals.interrupted)
        drain = self._drainer(reader, signals, guard, broken)
        sessions = []
        try:
            for pid in pids:
                settings = dict(trace.environment(), **self._entry_setting(functions, "/proc/%d/exe" % pid, root))
                session = attached.Attached(pid, preload, settings, self.request.follow)
                sessions.append(session)
                if len(pids) == 1:   # its lines without [pid N], as strace -p shows one process's
                    reader.command_pid(pid)
                self.log(session.timings())
                say("Process %d attached" % pid)
            attached.wait(sessions, drain, lambda: bool(signals.interrupted or broken), self.request.duration)
        finally:
            attached.detach_all(sessions, lambda line: None if broken else say(line), self.log)
        signals.interrupted = None   # that Ctrl-C asked for the detach; a second one stops the final drain
        drain(final=True)
        return 0, {}

    def _exits(self, statuses, reader):
        """strace's last lines of the processes mrhooker reaped (the command, orphans): how each ended. (The
        reader shows those of the processes a traced wait reaped, as the wait returns.)"""
        for pid, raw in sorted(statuses.items()):
            reader.exited(pid, raw)

    def _summary(self, reader, trace, outputs, functions):
        """-c, -C: the table, after the lines (to -o FILE or stderr)."""
        r = self.request
        if not r.summary:
            return
        nfn = len(functions)
        if r.needs_records and not r.chosen_only:   # (--chosen-only: the records are a few of the calls)
            rows = reader.counts(nfn)
        else:
            rows = [(calls, errors, reader.duration_ns(units)) for calls, errors, units in trace.counters(nfn)]
        rows = [(0, 0, 0) if f.get("hidden") else row for f, row in zip(functions, rows)]   # not the user's
        text = traceout.summary([f["name"] for f in functions], rows).encode()
        try:
            while text:
                text = text[os.write(outputs.lines_fd, text):]
        except OSError as e:
            say("cannot write %s: %s (the summary is lost; the program ran on)" % (outputs.path_of("lines", None),
                                                                                    e.strerror))

    def _scaffold(self, command, functions):
        try:
            traceout.write_scaffold(self.request.scaffold_path, command, functions)
        except OSError as e:
            say("cannot write %s: %s" % (self.request.scaffold_path, e.strerror))

    def _report(self, reader, trace, outputs):
        unmapped = trace.unmapped()
        if unmapped:
            say("%s could not map the trace file (%d MB of address space: ulimit -v?), so %s ran untraced, with "
                "neither --inject nor --fake-time; a smaller --buffer-size needs less" % (
                    counted(unmapped, "process"), max(trace.size >> 20, 1), "it" if unmapped == 1 else "they"))
        dropped = trace.dropped()
        if dropped:
            say("%d calls were not recorded: the trace buffer was full and its reader showed no sign of life "
                 "for 2 s" % dropped)
        abandoned = trace.abandoned()
        if abandoned:
            say("%d calls were not recorded: a signal handler interrupted their records and the program left it "
                "by longjmp" % abandoned)
        if reader.lost:
            say("%d records were lost: their process died (or left a signal handler by longjmp) while writing "
                "them" % reader.lost)
        count, left_out = reader.timeline_counts()
        if left_out:
            say("the timeline holds the first %d calls; %d more were left out, so that viewers can open it "
                 "(--timeline-limit N)" % (count, left_out))
        for which, pid, err, lost, written in reader.output_errors():
            where = "from line %d on" % (written + 1) if written else "from its start"
            missing = "1 line of the trace is" if lost == 1 else "%d lines of the trace are" % lost
            say("cannot write %s: %s (%s missing there, %s; the program ran on)" % (
                outputs.path_of(which, pid), os.strerror(err), missing, where))


class _LaunchOptions:
    def __init__(self, follow, log):
        self.follow = follow
        self.log = log

