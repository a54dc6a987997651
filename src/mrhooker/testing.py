"""mrhooker from a test suite: run a program with faults injected, a fake clock, a trace or hooks, and look at
what it did.

    from mrhooker.testing import run

    r = run(["./myprog", "data.txt"], inject=["connect:error=ECONNREFUSED"], trace=["open*", "connect"])
    assert r.returncode == 3
    assert r.calls("connect")[0].errno == "ECONNREFUSED" and r.calls("connect")[0].injected

Each run is `python -m mrhooker trace` (or `run`, for hooks=) in a subprocess, so a test's process never loads
anything of the target's; the build is cached (the user's cache, or build_dir=), made once for a whole test
session, and safe under `pytest -n` (builds are published atomically). The pytest plugin
(mrhooker.pytest_plugin) gives the same as the `mrhooker` fixture.
"""
import json
import os
import subprocess
import sys
import tempfile

CLEAN_UP_WAIT = 10   # seconds testing.run waits, once it killed mrhooker, for what mrhooker started to be gone


class MrhookerRunError(Exception):
    """mrhooker refused the request (a bad --inject spec, an unknown function, ...): its one-line message."""


class Call:
    """One recorded call: as in `mrhooker trace --json` (README), with attributes."""

    __slots__ = ("name", "args", "ret", "errno", "pid", "tid", "caller", "ts_ns", "dur_ns", "injected", "delayed",
                 "cut")

    def __init__(self, record):
        self.name, self.args, self.ret = record["name"], record["args"], record["ret"]
        self.caller = int(record["caller"], 16)
        self.errno, self.pid, self.tid = record["errno"], record["pid"], record["tid"]
        self.ts_ns, self.dur_ns = record["ts_ns"], record["dur_ns"]
        self.injected, self.delayed = record.get("injected", False), record.get("delayed", False)
        self.cut = frozenset(record.get("cut", ()))   # the arguments ("ret": the result) shown cut at -s

    @property
    def failed(self):
        return self.errno is not None

    def __repr__(self):
        return "<Call %s(%s) = %r%s%s>" % (self.name, ", ".join("%s=%r" % kv for kv in self.args.items()), self.ret,
                                          " %s" % self.errno if self.errno else "", " INJECTED" if self.injected else "")


class Result(subprocess.CompletedProcess):
    """subprocess.CompletedProcess (stdout and stderr as bytes; .out and .err as text) plus the calls recorded."""

    def __init__(self, args, returncode, stdout, stderr, calls):
        super().__init__(args, returncode, stdout, stderr)
        self._calls = calls

    @property
    def out(self):
        return self.stdout.decode(errors="replace")

    @property
    def err(self):
        return self.stderr.decode(errors="replace")

    def calls(self, name=None):
        """The calls recorded (of the function `name`, if given), in the order they ended."""
        return [c for c in self._calls if name is None or c.name == name]


def run(args, inject=(), trace=(), fake_time=None, seed=0, hooks=None, timeout=None, env=None, cwd=None,
        input=None, strsize=4096, follow=True, build_dir=None, check=False):
    """Runs args (a list, or a string naming the program alone, as for subprocess.run) under mrhooker and
    returns a Result.

    inject: --inject specs ("write:error=ENOSPC:when=3+"); trace: the functions whose calls to record (names,
    globs, %classes, as -e takes them; default: those inject names); fake_time: as --fake-time ("2000-01-01",
    "+1d x10"); seed: --seed; hooks: a hook script (.py or .pyx) to run the program with instead (not with the
    others: one run either hooks or traces); strsize: bytes of strings and buffers kept in the calls.
    Raises MrhookerRunError when mrhooker refuses the request, subprocess.TimeoutExpired past `timeout` (mrhooker
    is killed, as subprocess.run kills, and with it the program and what it started: nothing is left running,
    nor a trace file, when this returns), and subprocess.CalledProcessError with check=True when the program
    fails.
    """
    args = [args] if isinstance(args, (str, bytes, os.PathLike)) else args
    args = [os.fspath(a) for a in args]
    if isinstance(inject, str) or isinstance(trace, str):
        raise TypeError("inject= and trace= take lists of specs")
    if isinstance(input, str):   # before mrhooker starts: it was killed, the TypeError raised twice, chained
        raise TypeError("input= takes bytes, as subprocess.run's without text=True: input=%r" % input.encode())
    if hooks is not None and (inject or trace or fake_time is not None):
        raise ValueError("hooks= can't be combined with inject=, trace= or fake_time=: one run either runs a hook "
                         "script or traces")
    with tempfile.TemporaryDirectory(prefix="mrhooker-run-") as tmp:
        calls_path, error_path = os.path.join(tmp, "calls.jsonl"), os.path.join(tmp, "error")
        common = ["--build-dir", os.fspath(build_dir)] if build_dir else []
        if hooks is not None:
            command = [sys.executable, "-m", "mrhooker", "run"] + common + [os.fspath(hooks), "--"] + args
        else:
            command = [sys.executable, "-m", "mrhooker", "trace", "-q", "--json", calls_path, "-s", str(strsize),
                       "--seed", str(seed)] + common
            command += ["-e", ",".join(trace)] if trace else []
            command += [x for spec in inject for x in ("--inject", spec)]
            command += ["--fake-time=" + fake_time] if fake_time is not None else []
            command += [] if follow else ["--no-follow"]
            command += ["--"] + args
        full_env = dict(os.environ if env is None else env, MRHOOKER_ERROR_FILE=error_path)
        proc = _run(command, args, input, timeout, full_env, cwd)
        if os.path.exists(error_path):
            with open(error_path, encoding="utf-8", errors="replace") as f:
                raise MrhookerRunError(f.read().strip())
        calls = []
        if os.path.exists(calls_path):
            with open(calls_path, encoding="utf-8") as f:
                calls = [Call(json.loads(line)) for line in f if line.strip()]
    result = Result(args, proc.returncode, proc.stdout, proc.stderr, calls)
    if check:
        result.check_returncode()
    return result


class SweepRun:
    """One run of a sweep: as `mrhooker sweep --json` writes it (README), with attributes: function, site
    ("gzip+0x1234 (main+0x56, gzip.c:78)"), object, offset, call (its number among the function's calls), errno,
    kind (crash, hang, output, exit, handled, silent, refused), detail, status, reproduce (a trace command line)."""

    def __init__(self, record):
        self.__dict__.update(record)

    def __repr__(self):
        return "<SweepRun %s %s call %d at %s: %s>" % (self.kind, self.function, self.call, self.site, self.detail)


def sweep(args, functions=(), jobs=None, run_timeout=None, limit=None, all_calls=False, errno=None, input=None,
          check=None, timeout=None, env=None, cwd=None):
    """`mrhooker sweep`: each call site of `functions` (as -e takes them; default: sweep's) made to fail once,
    one run of args each; returns the runs ([SweepRun]), worst first is up to the caller:

        runs = sweep(["./myprog", "data.txt"], functions=["malloc", "open*", "read", "write"])
        assert not [r for r in runs if r.kind in ("crash", "hang")], runs

    run_timeout: seconds before a run is a hang; input: bytes each run reads on its standard input; check: a shell
    command run after each run ("cmp data {}/copy"), whose output and status count as the run's; timeout: for
    the whole sweep (subprocess.TimeoutExpired). Raises MrhookerRunError when mrhooker refuses the request."""
    args = [args] if isinstance(args, (str, bytes, os.PathLike)) else args
    args = [os.fspath(a) for a in args]
    if isinstance(functions, str):
        raise TypeError("functions= takes a list of specs")
    with tempfile.TemporaryDirectory(prefix="mrhooker-sweep-") as tmp:
        runs_path, error_path = os.path.join(tmp, "runs.jsonl"), os.path.join(tmp, "error")
        command = [sys.executable, "-m", "mrhooker", "sweep", "--json", runs_path]
        command += ["-e", ",".join(functions)] if functions else []
        command += ["-j", str(jobs)] if jobs else []
        command += ["--timeout", str(run_timeout)] if run_timeout else []
        command += ["--limit", str(limit)] if limit is not None else []
        command += ["--all"] if all_calls else []
        command += ["--errno", errno] if errno else []
        command += ["--check", check] if check else []
        if input is not None:
            input_path = os.path.join(tmp, "input")
            with open(input_path, "wb") as f:
                f.write(input)
            command += ["--input", input_path]
        command += ["--"] + args
        full_env = dict(os.environ if env is None else env, MRHOOKER_ERROR_FILE=error_path)
        _run(command, args, None, timeout, full_env, cwd)
        if os.path.exists(error_path):
            with open(error_path, encoding="utf-8", errors="replace") as f:
                raise MrhookerRunError(f.read().strip())
        with open(runs_path, encoding="utf-8") as f:
            return [SweepRun(json.loads(line)) for line in f if line.strip()]


def _run(command, args, input, timeout, env, cwd):
    """subprocess.run(command), but past the timeout (or on any exception, e.g. Ctrl-C) it waits, after killing
    mrhooker, for mrhooker's guardian to have killed the program and removed the trace file: the guardian holds
    mrhooker's stderr until it is done (guardian.py), so that is the end of the stderr pipe."""
    with subprocess.Popen(command, stdin=subprocess.PIPE if input is not None else None, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env, cwd=cwd) as proc:
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout)
        except BaseException as e:
            proc.kill()
            try:   # a daemon the program started in a session of its own may hold the pipes on: don't wait for it
                stdout, stderr = proc.communicate(timeout=CLEAN_UP_WAIT)
            except subprocess.TimeoutExpired:
                stdout = stderr = None
            if isinstance(e, subprocess.TimeoutExpired):
                raise subprocess.TimeoutExpired(args, timeout, stdout, stderr) from None
            raise
        return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)

