"""`mrhooker sweep`: fail each call site once, and say which failures the program doesn't survive.

1. A clean run, traced (`mrhooker trace --json`, the command's process alone): each call of the chosen functions
   with its caller, and the process's memory map (MRHOOKER_MAPS), which turn the callers into sites
   (sites.py: object+offset, function, line). A site is (function, object, offset): a loop calling malloc 10,000
   times from one place is one site. A second clean run says what differs from run to run anyway (a pid or a
   date in the output): that is not compared.
2. One run per site: the same command, with that site's first call (or, with all_calls, each call) made to fail
   with the function's usual errno (`--inject NAME:error=E:when=N`, N its number among the function's calls in
   the clean run), recording that call alone (--chosen-only). In parallel, each with a timeout. The injected call's record says where it was: a run whose
   failed call came from elsewhere (a program that doesn't call in the same order each time) says so.
3. Each run classified against the clean one: crash (killed by a signal), hang (timeout), output (same status,
   different output: the worst, a failure nobody is told about), exit (status changed, nothing on stderr),
   handled (status changed, with a message), silent (same status and output).

Runs are subprocesses of `mrhooker trace`, the command line a user would type to reproduce one, kept apart by a
directory each (their traces, maps, and `{}` in the command's arguments). Only the command's own process is
swept (--no-follow): a shell's children are not.
"""
import concurrent.futures
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from mrhooker import cache, sites, tracespec
from mrhooker.errors import MrhookerError, counted

DEFAULT_SPEC = "%memory,%file,%desc,%net,%process"

# The failure a function most often meets, by name prefix (the first that matches).
USUAL_ERRNO = (
    (("malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc", "memalign", "valloc",
      "strdup", "strndup", "mmap", "mremap", "brk", "sbrk"), "ENOMEM"),
    (("write", "pwrite", "fwrite", "fputs", "fputc", "putc", "fflush", "ftruncate", "fallocate", "posix_fallocate",
      "fsync", "fdatasync", "copy_file_range", "sendfile", "splice"), "ENOSPC"),
    (("send", "recv"), "ECONNRESET"),
    (("connect",), "ECONNREFUSED"),
    (("bind",), "EADDRINUSE"),
    (("socket", "accept", "dup", "pipe", "epoll_create", "eventfd", "inotify_init", "timerfd_create"), "EMFILE"),
    (("fork", "vfork", "clone", "posix_spawn", "system", "popen", "pthread_create"), "EAGAIN"),
    (("open", "fopen", "freopen", "creat", "opendir", "fdopendir", "access", "faccessat", "exec", "fexecve",
      "mkdir", "rename", "unlink", "rmdir", "link", "symlink", "chmod", "chown", "truncate", "utime"), "EACCES"),
    (("stat", "lstat", "fstat", "statx", "__xstat", "__lxstat", "__fxstat", "readlink", "realpath"), "ENOENT"),
)
CLEAN_TIMEOUT = 600   # seconds the clean run may take without --timeout
KINDS = ("crash", "hang", "output", "exit", "handled", "silent", "refused")
FATAL = ("crash", "hang")   # what makes the sweep's exit status 1


def usual_errno(name):
    name = tracespec.checks(name) or name   # __open_2: open's
    for prefixes, errno_name in USUAL_ERRNO:
        if name.startswith(prefixes):
            return errno_name
    return "EIO"


class Outcome:
    """How one run ended: its status (a signal's as 128+N), output digest, stderr and trace's last line."""

    def __init__(self, status, out, err, end_line, seconds, timed_out=False, refusal=None):
        self.status, self.digest, self.err, self.end_line = status, hashlib.sha256(out).hexdigest(), err, end_line
        self.seconds, self.timed_out = seconds, timed_out
        self.refusal = refusal            # mrhooker's message when it refused the run (no such function...)

    @property
    def signal_name(self):
        """SIGSEGV... when trace said the command was killed by one."""
        if self.end_line.startswith("+++ killed by "):
            return self.end_line.split()[3]
        return None

    def first_error_line(self):
        for line in self.err.splitlines():
            if line.strip() and not line.startswith("mrhooker:"):
                return line.strip()
        return ""


class Site:
    """A call site of one function: where, how many calls it made in the clean run, the number (among the
    function's calls) of its first, and of each."""

    def __init__(self, function, where, first):
        self.function, self.where, self.calls = function, where, [first]

    @property
    def key(self):
        return (self.function,) + self.where.key


class Run:
    """One failing run: the site, which of its calls failed (its number among the function's calls), and what
    happened."""

    def __init__(self, site, call, errno_name, swept, input_path=None):
        self.site, self.call, self.errno_name = site, call, errno_name
        self.rule = "%s:error=%s:when=%d" % (site.function, errno_name, call)   # its --inject
        # the trace command line that reproduces it (swept: the command the sweep runs)
        self.command = ["mrhooker", "trace", "--no-follow", "-e", site.function, "--inject", self.rule, "--"] + swept
        self.input_path = input_path      # ... with this standard input
        self.kind, self.detail, self.outcome, self.failed_at = None, "", None, None

    def as_json(self):
        return {"function": self.site.function, "site": str(self.site.where), "object": self.site.where.path,
                "offset": self.site.where.offset, "call": self.call, "errno": self.errno_name, "kind": self.kind,
                "detail": self.detail, "status": self.outcome.status if self.outcome else None,
                "failed_at": str(self.failed_at) if self.failed_at else None,
                "reproduce": self.reproduce}

    @property
    def reproduce(self):
        return shlex.join(self.command) + (" < " + shlex.quote(self.input_path) if self.input_path else "")


class SweepRequest:
    def __init__(self, specs=(), jobs=None, timeout=None, limit=None, all_calls=False, errno_name=None,
                 input_path=None, json_path=None, progress=None, check=None):
        self.specs = list(specs) or [DEFAULT_SPEC]
        self.jobs = jobs or os.cpu_count() or 1
        self.timeout = timeout            # seconds per run; None: 10x the clean run's, at least 10
        self.limit = limit                # the most failing runs, None: all
        self.all_calls = all_calls        # every call, not each site's first
        self.errno_name = errno_name      # one errno for every function, None: usual_errno's
        self.input_path = input_path      # each run's standard input (None: /dev/null)
        self.json_path = json_path
        self.progress = progress          # progress(done, total, crashes) or None
        self.check = check                # a shell command run after each run ({}: its directory): its output
                                          # and status count as the run's output


class Sweep:
    """The runs of one sweep of `command` (a list of strings; "{}" in an argument: a fresh directory per run)."""

    def __init__(self, request, command):
        if not command:
            raise MrhookerError("no command given: what should be swept?")
        self.request, self.command = request, list(command)
        self.clean, self.sites, self.runs = None, [], []
        self.varies = []   # what differed between two clean runs ("status", "output"): not compared
        self.run_timeout = None   # seconds a failing run may take (--timeout, or from the clean run's)
        self._resolver = sites.Resolver()
        cache.remove_orphans(tempfile.gettempdir(), "mrhooker-sweep")   # an earlier sweep's, killed
        self._dir = tempfile.mkdtemp(prefix="mrhooker-sweep-%d-" % os.getpid())
        self._lock = threading.Lock()
        self._running = set()   # the runs' mrhooker processes (guarded by _lock)
        self._stopping = False

    def run(self):
        try:
            self._clean_run()
            self._failing_runs()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
        if self.request.json_path:
            with open(self.request.json_path, "w") as f:
                for run in self.runs:
                    f.write(json.dumps(run.as_json()) + "\n")
        refused = [run for run in self.runs if run.kind == "refused"]
        if refused:   # a request of ours (--errno EBADF2) mrhooker trace would not run: no sweep was made
            raise MrhookerError("%d of %d failing runs refused: %s" % (len(refused), len(self.runs),
                                                                          refused[0].detail))
        return self

    # ---- the clean run ----------------------------------------------------------------------------------

    def _clean_run(self):
        run_dir = os.path.join(self._dir, "clean")
        timeout = self.request.timeout or CLEAN_TIMEOUT
        args = ["-s", "0", "-e", ",".join(self.request.specs)]
        self._build(os.path.join(self._dir, "build-clean"), args)
        outcome, records, regions = self._trace(run_dir, args, timeout)
        self.clean = outcome
        if outcome.refusal:
            raise MrhookerError(outcome.refusal)
        if outcome.timed_out:
            raise MrhookerError("the clean run did not end in %g s: a command that ends by itself is needed (or a "
                                "longer --timeout)" % timeout)
        # a second clean run: what changes from run to run anyway (a date, a pid, a random name) is no finding
        again, _records, _regions = self._trace(os.path.join(self._dir, "clean-again"),
                                                ["-c", "-e", ",".join(self.request.specs)], timeout)
        self.varies = [what for what, differs in (("status", again.status != outcome.status),
                                                  ("output", again.digest != outcome.digest)) if differs]
        # Read as they come (a program may make millions of calls): numbered in the order they ended, which is the
        # order they started, as --inject counts them, but for calls of one function that overlap in threads (the
        # failing run then says where its failed call came from).
        pid, numbers, found, void, places = None, {}, {}, {}, {}
        for rec in records:
            pid = rec["pid"] if pid is None else pid
            if rec["pid"] != pid:
                continue
            name = rec["name"]
            numbers[name] = numbers.get(name, 0) + 1
            void[name] = void.get(name, True) and rec["ret"] is None
            caller = rec["caller"]
            if caller not in places:
                places[caller] = self._resolver.site(int(caller, 16), _map_of(regions, pid))
            where = places[caller]
            key = (name,) + where.key
            if key in found:
                found[key].calls.append(numbers[name])
            else:
                found[key] = Site(name, where, numbers[name])
        # a function that returned nothing every time (void, or failing already) has nothing to fail
        self.sites = [s for s in found.values() if not void[s.function]]

    # ---- the failing runs ---------------------------------------------------------------------------------

    def _failing_runs(self):
        planned = []
        for site in self.sites:
            errno_name = self.request.errno_name or usual_errno(site.function)
            for call in (site.calls if self.request.all_calls else site.calls[:1]):
                planned.append(Run(site, call, errno_name, self.command, self.request.input_path))
        if self.request.limit is not None:
            planned = planned[:self.request.limit]
        self.runs = planned
        timeout = self.run_timeout = self.request.timeout or max(10.0, 10 * self.clean.seconds)
        done = crashes = 0
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.request.jobs)
        try:
            # each function's trace built first, untimed: a first sweep's build is no run's time (a spurious hang)
            first = {}
            for run in planned:
                first.setdefault(run.site.function, run)
            for future in [pool.submit(self._build, os.path.join(self._dir, "build-%d" % i), self._run_args(run))
                           for i, run in enumerate(first.values())]:
                future.result()
            futures = [pool.submit(self._failing_run, i, run, timeout) for i, run in enumerate(planned)]
            for future in concurrent.futures.as_completed(futures):
                run = future.result()
                done += 1
                crashes += run.kind in FATAL
                if self.request.progress:
                    self.request.progress(done, len(planned), crashes)
        except BaseException:
            # Ctrl-C, SIGTERM: no run starts any more, and those running are stopped (their sessions are their own:
            # the terminal's signal doesn't reach them)
            pool.shutdown(wait=False, cancel_futures=True)
            self._interrupt_runs()
            raise
        finally:
            pool.shutdown(wait=True)

    def _failing_run(self, index, run, timeout):
        run_dir = os.path.join(self._dir, "run-%d" % index)
        outcome, records, regions = self._trace(run_dir, self._run_args(run), timeout)
        run.outcome = outcome
        injected = [r for r in records if r.get("injected")]
        if injected:
            rec = injected[0]
            run.failed_at = self._resolver.site(int(rec["caller"], 16), _map_of(regions, rec["pid"]))
        self._classify(run)
        return run

    @staticmethod
    def _run_args(run):
        # only the failed call's record: the others are counted, not written
        return ["--chosen-only", "-e", run.site.function, "--inject", run.rule]

    def _build(self, run_dir, trace_args):
        """The trace of trace_args built (or found in the cache) before a timed run needs it: `true` traced so.
        A build takes seconds the first time, which --timeout is not about. A refusal is the timed run's to say."""
        self._trace(run_dir, trace_args, CLEAN_TIMEOUT, command=["true"])

    def _classify(self, run):
        o, clean = run.outcome, self.clean
        if o.refusal:
            run.kind, run.detail = "refused", o.refusal
        elif o.timed_out:
            run.kind, run.detail = "hang", "no end in %g s" % self.run_timeout   # (o.seconds: the stopping too)
        elif o.signal_name and o.signal_name != clean.signal_name:
            run.kind, run.detail = "crash", o.signal_name
        elif o.status == clean.status or "status" in self.varies:
            run.kind = "silent" if o.digest == clean.digest or "output" in self.varies else "output"
            run.detail = "" if run.kind == "silent" else "same status %d, different output%s" % (
                o.status, " (or --check's)" if self.request.check else "")
        else:
            message = o.first_error_line()
            run.kind = "handled" if message else "exit"
            run.detail = "status %d%s" % (o.status, ": " + message if message else ", no message")
        if run.failed_at is not None and run.failed_at.key != run.site.where.key:
            run.detail += " (the failed call came from %s)" % run.failed_at

    # ---- one traced run ---------------------------------------------------------------------------------

    def _trace(self, run_dir, trace_args, timeout, command=None):
        """(Outcome, the JSON records, {pid: memory map regions}) of one run of the command under trace."""
        os.makedirs(os.path.join(run_dir, "work"))
        lines, records_path, maps = (os.path.join(run_dir, n) for n in ("lines", "records.jsonl", "maps"))
        building = command is not None   # _build's run of `true`: no --check after it, no input
        command = [a.replace("{}", os.path.join(run_dir, "work")) for a in command or self.command]
        input_path = None if building else self.request.input_path
        argv = [sys.executable, "-m", "mrhooker", "trace", "--no-follow", "-o", lines, "--json", records_path] + \
            trace_args + ["--"] + command
        error = os.path.join(run_dir, "error")   # mrhooker's refusal, told from the program's own failures
        env = dict(os.environ, MRHOOKER_MAPS=maps, MRHOOKER_ERROR_FILE=error)
        stdin = open(input_path, "rb") if input_path else subprocess.DEVNULL
        started = time.monotonic()
        timed_out = False
        try:
            with self._lock:
                if self._stopping:
                    raise MrhookerError("interrupted")
                proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                        start_new_session=True)
                self._running.add(proc)
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                out, err = self._stop(proc)
            except BaseException:   # the clean run, interrupted
                self._stop(proc)
                raise
            finally:
                with self._lock:
                    self._running.discard(proc)
        finally:
            if stdin is not subprocess.DEVNULL:
                stdin.close()
        seconds = time.monotonic() - started
        if self.request.check and not timed_out and not building:
            out += self._check(os.path.join(run_dir, "work"), timeout)
        end_line = ""
        try:
            with open(lines, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
                tail = f.read().decode(errors="replace").splitlines()
            end_line = next((l for l in reversed(tail) if l.startswith("+++ ")), "")
        except OSError:
            pass
        regions = {}
        for name in os.listdir(run_dir):
            if name.startswith("maps.") and name[5:].isdigit():
                regions[int(name[5:])] = sites.read_map(os.path.join(run_dir, name))
        refusal = None
        try:
            with open(error, encoding="utf-8", errors="replace") as f:
                refusal = f.read().strip()
        except OSError:
            pass
        outcome = Outcome(proc.returncode, out, err.decode(errors="replace"), end_line, seconds, timed_out, refusal)
        return outcome, _records(records_path), regions

    def _check(self, directory, timeout):
        """--check's command after a run, `{}` its directory: what it prints and its status, as more output."""
        command = self.request.check.replace("{}", shlex.quote(directory))
        try:
            r = subprocess.run(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=timeout, start_new_session=True)
            return b"\0--check: status %d\n" % r.returncode + r.stdout
        except subprocess.TimeoutExpired:
            return b"\0--check: no end\n"

    def _interrupt_runs(self):
        """No run starts any more; those running get SIGTERM (their threads see them end), SIGKILL after 5 s."""
        with self._lock:
            self._stopping = True
            running = list(self._running)
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running:
                    return
            time.sleep(0.05)
        with self._lock:
            running = list(self._running)
        for proc in running:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass

    @staticmethod
    def _stop(proc):
        """A run past its timeout or interrupted: SIGTERM to mrhooker, which passes it on; then SIGKILL to its
        whole group. A process that left the group (a daemon: setsid) and still holds the run's output is beyond
        reach: its pipes are given up after 5 s more, with what they gave, so the sweep never waits for it."""
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            return proc.communicate(timeout=5)
        except subprocess.TimeoutExpired as e:
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            proc.wait()
            return e.stdout or b"", e.stderr or b""

    # ---- the report ---------------------------------------------------------------------------------------

    def report(self):
        """The lines of the report: the findings first, worst first, then a count of each kind."""
        runs = sorted(self.runs, key=lambda r: (KINDS.index(r.kind), r.site.function, r.call))
        lines = ["clean run: status %d, %s of %s, %s" % (
            self.clean.status, counted(len(self.sites), "site"), counted(len({s.function for s in self.sites}),
                                                                         "function"),
            counted(len(self.runs), "failing run"))]
        if self.varies:
            lines.append("(two clean runs differ in their %s: not compared)" % " and ".join(self.varies))
        for run in runs:
            if run.kind in FATAL + ("output", "exit"):
                lines.append("%-7s %s call %d at %s: %s" % (run.kind, run.site.function, run.call, run.site.where,
                                                           run.detail))
                lines.append("        reproduce: %s" % run.reproduce)
        counts = {kind: sum(r.kind == kind for r in self.runs) for kind in KINDS}
        lines.append(", ".join("%s %d" % (kind, n) for kind, n in counts.items() if n) or "no runs")
        return lines

    def findings(self):
        return [r for r in self.runs if r.kind in FATAL]


def _map_of(regions, pid):
    """pid's memory map; a fork child that never wrote its own has its parent's (as it was at the fork)."""
    return regions.get(pid) or (regions[min(regions)] if regions else [])


def _records(path):
    """The JSON records of a run, one at a time (none if it wrote none)."""
    try:
        with open(path) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
    except (OSError, ValueError):
        return
