#!/usr/bin/env python3
"""mrhooker's benchmarks, against a hand-written C LD_PRELOAD wrapper, Frida, ltrace and strace.

    python benchmarks/run.py [--quick] [--json FILE] [--runs N] [--only SECTIONS] [--src DIR] [--frida PATH]

Builds everything it needs in a temporary directory (the C programs of benchmarks/c, libbench.so, the hook
scripts of benchmarks/hooks in a build directory of its own), measures, and prints Markdown tables on stdout
(progress goes to stderr). Every figure is the median of several runs, and every ratio compares figures
measured in this same run (the runs of the figures compared go round-robin). A peer that is not installed is
skipped, and the tables say so. --src measures another checkout's mrhooker (its src directory) with this
harness: the "before" figures of a change.

  per call      foo_loop calls foo() from libbench.so in a tight loop and times the loop itself
                (clock_gettime), after 1000 warm-up calls; "added" is hooked minus unhooked ns/call. Every hooked
                run is checked to have gone through the hook for every call (the hooks count the calls).
  instructions  the same loop under valgrind's callgrind, two loops counted apart in one process: instructions
                per call, without start-up (several processes: a Python hook's figure depends on the hash seed
                its interpreter draws).
  start-up      wall time of whole commands on a warm cache (/bin/true bare, under mrhooker's hooks and trace,
                python -c pass, strace, ltrace, Frida), the cost of the preload library in every exec'd
                process, Python's start at the first hooked call.
  cold          first runs in an empty cache (XDG_CACHE_HOME): a trace, a hook script with its runtime.
  lines         write_loop making N write() calls, bare and under `mrhooker trace -o FILE`: lines written a
                second, and the program's own cost a call as the trace buffer fills (the stalled ring).
  dd            dd bs=1 (one write() per byte) bare, and with write() hooked or traced: the slowdown over bare.
  memory        PSS and private memory of a process whose hooks started, traced, unhooked, by mapping.

--quick uses tiny counts and one run, to check that the harness works (tests/test_benchmarks_smoke.py).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HOOKS_DIR = os.path.join(HERE, "hooks")
C_DIR = os.path.join(HERE, "c")

FOO_LOOP_WARMUP = 1000     # calls foo_loop makes before its timed loop (see c/foo_loop.c)
FRIDA_SETTLE_MS = 200      # foo_loop sleeps this long first, under Frida

# How much work each measurement does. The per-call counts are per kind of hook, so that each run lasts a
# fraction of a second whatever the hook costs.
FULL = {
    "attach_calls": 2_000_000,
    "sweep_bytes": 1_000_000,
    # trace: as many records as its 64 MB buffer holds while the loop runs (more: the loop waits for mrhooker)
    "calls": {"fast": 50_000_000, "gil": 5_000_000, "python": 2_000_000, "frida": 2_000_000, "ltrace": 2_000,
              "trace": 500_000},
    "instruction_calls": 20_000,     # the long loop under callgrind (the short one: a tenth)
    "instruction_runs": 5,           # processes per callgrind row (hash seeds)
    "startup_runs": 20,              # start-up figures of a few ms: many runs are cheap
    "exec_loop": 100,                # /bin/true processes in the sh loop
    "cold_runs": 3,                  # first runs in an empty cache (the -e '*' one takes ~30-60 s)
    "cold_all_spec": "*",
    "ring_calls": (200_000, 2_000_000, 20_000_000),   # write() calls traced to a file; lines/s: the middle one
    "ring_runs": 3,
    "memory_group": 50,              # processes with their hooks started at once
    "dd_count": 200_000,
    "runs": 5,
}
QUICK = {
    "attach_calls": 20_000,
    "sweep_bytes": 20_000,
    "calls": {"fast": 100_000, "gil": 20_000, "python": 10_000, "frida": 10_000, "ltrace": 100, "trace": 10_000},
    "instruction_calls": 2_000,
    "instruction_runs": 1,
    "startup_runs": 3,
    "exec_loop": 10,
    "cold_runs": 1,
    "cold_all_spec": "write,open",   # a tiny set: a first '*' build takes ~30-60 s
    "cold_one_cache": True,          # one empty cache for all the cold figures: only the first reads the headers
    "ring_calls": (2_000, 20_000, 40_000),
    "ring_runs": 1,
    "memory_group": 3,
    "dd_count": 2_000,
    "runs": 1,
}


PEERS = ("frida", "frida-trace", "ltrace", "strace")


STARTED = time.time()


def log(msg):
    sys.stderr.write("bench: %5.0fs %s\n" % (time.time() - STARTED, msg))
    sys.stderr.flush()


class Failed(Exception):
    """A measurement that could not be made: the tool failed, or the hook did not see every call."""


class Result:
    def __init__(self, seconds, returncode, stdout, stderr):
        self.seconds = seconds
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def output(self):
        return self.stdout + self.stderr


def run_command(argv, env=None, cwd=None, timeout=900, check=True):
    """Runs argv to completion; returns its wall time in seconds and its output."""
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)
    seconds = time.perf_counter() - start
    result = Result(seconds, proc.returncode, proc.stdout.decode(errors="replace"),
                    proc.stderr.decode(errors="replace"))
    if check and proc.returncode != 0:
        raise Failed("%s exited with status %d: %s" % (os.path.basename(argv[0]), proc.returncode,
                                                       result.output.strip()[-600:]))
    return result


def median(samples):
    return statistics.median(samples)


# ---- the bench: tools, temporary directory, builds --------------------------------------------------------

def find_tools(frida=None):
    """Paths of the peers (None: not installed). Frida's: --frida's (frida-trace beside it: Frida may live in a
    venv of its own), else this Python's bin directory's when they are there (pyenv's shims on PATH would add
    ~50 ms to every spawn), else PATH's."""
    bindir = os.path.dirname(os.path.abspath(frida)) if frida else os.path.dirname(sys.executable)

    def beside(name):
        path = os.path.join(bindir, name)
        return path if os.access(path, os.X_OK) else shutil.which(name)

    return {"frida": os.path.abspath(frida) if frida else beside("frida"), "frida-trace": beside("frida-trace"),
            "ltrace": shutil.which("ltrace"), "strace": shutil.which("strace"), "dd": shutil.which("dd"),
            "sh": shutil.which("sh"), "valgrind": shutil.which("valgrind"),
            "cc": shutil.which(os.environ.get("CC", "cc"))}


class Bench:
    """The temporary directory with everything built, the environments, the tools, the settings."""

    def __init__(self, tmp, settings, runs, src=None, frida=None, without=()):
        self.tmp = tmp
        self.settings = settings
        self.runs = runs
        self.tools = find_tools(frida)
        self._usable = {tool: "left out (--without)" for tool in without}   # tool -> None (usable) or why not
        self.build_dir = os.path.join(tmp, "mrhooker-builds")
        os.mkdir(self.build_dir, 0o700)
        # PYTHONDONTWRITEBYTECODE is left out: a warm start reads mrhooker's modules from their .pyc files.
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("LD_PRELOAD", "PYTHONDONTWRITEBYTECODE") and not k.startswith("MRHOOKER_")}
        # mrhooker sees no user config, and the package under test is this checkout's (or --src's).
        config = os.path.join(tmp, "empty.config")
        open(config, "w").close()
        self.cache_dir = os.path.join(tmp, "cache")
        self.mrhooker_env = dict(self.env, MRHOOKER_CONFIG=config, XDG_CACHE_HOME=self.cache_dir)
        self.src = os.path.abspath(src or os.path.join(REPO, "src"))
        self.mrhooker_env["PYTHONPATH"] = self.src + (os.pathsep + self.env["PYTHONPATH"]
                                                      if self.env.get("PYTHONPATH") else "")
        self.lib_dir = os.path.join(tmp, "lib")
        os.mkdir(self.lib_dir)
        self.libbench = self.foo_loop = self.c_wrapper = self.write_loop = self.foo_wait = None

    def mrhooker(self, script, *command, build_dir=None):
        """argv running COMMAND under mrhooker with SCRIPT, as `python -m mrhooker` (no shim, no wrapper)."""
        return [sys.executable, "-m", "mrhooker", "--build-dir", build_dir or self.build_dir, script] + list(command)

    def trace(self, *args):
        """argv of `python -m mrhooker trace ARGS...`, in the cache of the run (a user's warm start)."""
        return [sys.executable, "-m", "mrhooker", "trace"] + list(args)

    def skipped(self, tool):
        """Why a peer is skipped (not installed, or unusable here), or None."""
        if not self.tools.get(tool) and tool not in self._usable:
            return "%s is not installed" % tool
        if tool not in self._usable:
            self._usable[tool] = probe_peer(self, tool)
        return self._usable[tool]


def probe_peer(bench, tool):
    """None if the peer can do its job on this machine (ptrace may be forbidden in a container, say), else
    why not: one trial run on /bin/true."""
    path = bench.tools[tool]
    if tool in ("strace", "ltrace"):
        argv = [path, "-o", os.devnull, "/bin/true"]
    elif tool == "frida":
        argv = [path, "-q", "-t", "inf", "-f", "/bin/true"]
    elif tool == "frida-trace":
        argv = [path, "-i", "exit", "-f", "/bin/true"]   # exits with status 1 when the process ends
    else:
        return None
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=bench.env, cwd=bench.tmp, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "%s cannot run here: %s" % (tool, e)
    text = proc.stdout.decode(errors="replace")
    if tool == "frida-trace":
        works = "Process terminated" in text
    elif tool == "frida":
        works = frida_failure(text) is None
    else:
        works = proc.returncode == 0
    if works:
        return None
    return "%s cannot run here: %s" % (tool, (text.strip().splitlines() or ["status %d" % proc.returncode])[-1][:160])


def frida_failure(text):
    """Why a `frida -q -t inf -f PROGRAM` run failed, from its output, or None. Its exit status says nothing:
    once the spawned program has ended, Frida 17's CLI exits 0 or 1 at random (frida-tools 14: its handler of
    the session's end sets status 1, its quiet-mode loop then sets 0 unless a script raised, and the two race;
    1 about one run in 25 on a busy machine). A run that worked says "Process terminated" and has no error."""
    errors = re.findall(r"^(?:Failed to .*|Process crashed.*|\w*Error: .*)$", text, re.M)
    if errors:
        return errors[0][:200]
    if "Process terminated" not in text:
        return "frida did not see the process end: %s" % (text.strip().splitlines() or ["no output"])[-1][:200]
    return None


def run_frida(bench, args, **kwargs):
    """`frida -q -t inf ARGS...`, checked by its output (see frida_failure). -t: without a timeout, `frida -q`
    unloads the script as soon as it is loaded, and the program runs unhooked; inf: until the program ends."""
    result = run_command([bench.tools["frida"], "-q", "-t", "inf"] + list(args), check=False, **kwargs)
    why = frida_failure(result.output)
    if why:
        raise Failed("frida (status %d): %s" % (result.returncode, why))
    return result


def compile_c(bench, source, output, flags=()):
    cc = bench.tools["cc"]
    if not cc:
        raise SystemExit("bench: no C compiler (cc) found")
    run_command([cc, "-O2", "-Wall", "-o", output, os.path.join(C_DIR, source)] + list(flags))
    return output


def build_c_programs(bench):
    """libbench.so, foo_loop (linked to it, found through its rpath) and the C wrapper."""
    bench.libbench = compile_c(bench, "libbench.c", os.path.join(bench.lib_dir, "libbench.so"),
                               ["-shared", "-fPIC", "-Wl,-soname,libbench.so"])
    bench.foo_loop = compile_c(bench, "foo_loop.c", os.path.join(bench.tmp, "foo_loop"),
                               ["-L" + bench.lib_dir, "-lbench", "-Wl,-rpath," + bench.lib_dir, "-lpthread"])
    bench.c_wrapper = compile_c(bench, "foo_wrapper.c", os.path.join(bench.tmp, "foo_wrapper.so"),
                                ["-shared", "-fPIC", "-ldl"])
    bench.write_loop = compile_c(bench, "write_loop.c", os.path.join(bench.tmp, "write_loop"))
    bench.write_wait = compile_c(bench, "write_wait.c", os.path.join(bench.tmp, "write_wait"))
    bench.foo_wait = compile_c(bench, "foo_wait.c", os.path.join(bench.tmp, "foo_wait"),
                               ["-L" + bench.lib_dir, "-lbench", "-Wl,-rpath," + bench.lib_dir])


def hook_script(name):
    return os.path.join(HOOKS_DIR, name)


MRHOOKER_SCRIPTS = ("startup_hooks.py", "foo_nogil.pyx", "foo_withgil.pyx", "foo_py.py", "foo_py_nonblocking.py",
                    "write_withgil.pyx", "write_py.py", "startup_hooks.pyx")


def build_hook_scripts(bench):
    """Builds every mrhooker script once (running /bin/true), so that measurements find a warm cache: the first
    alone (it compiles the runtime, which the others share), then two at a time."""
    from concurrent.futures import ThreadPoolExecutor

    def build(name):
        run_command(bench.mrhooker(hook_script(name), "/bin/true"), env=bench.mrhooker_env)

    build(MRHOOKER_SCRIPTS[0])
    with ThreadPoolExecutor(2) as pool:
        for job in [pool.submit(build, name) for name in MRHOOKER_SCRIPTS[1:]]:
            job.result()


def hooked_environment(bench, script):
    """The environment mrhooker gives its target (LD_PRELOAD and MRHOOKER_*), to run programs with the hooks
    preloaded but without mrhooker's launcher. Hook output goes to a file, which should stay empty."""
    result = run_command(bench.mrhooker(script, "/usr/bin/env", "-0"), env=bench.mrhooker_env)
    env = dict(bench.env)
    for item in result.stdout.split("\0"):
        name, _, value = item.partition("=")
        if name == "LD_PRELOAD" or name.startswith("MRHOOKER_"):
            env[name] = value
    if "LD_PRELOAD" not in env:
        raise Failed("mrhooker did not set LD_PRELOAD for its target")
    env["MRHOOKER_OUTPUT"] = os.path.join(bench.tmp, "hook-output.txt")
    env.pop("MRHOOKER_OUTPUT_ID", None)
    open(env["MRHOOKER_OUTPUT"], "w").close()
    return env


def check_hook_output_empty(bench):
    with open(os.path.join(bench.tmp, "hook-output.txt")) as f:
        text = f.read()
    if text.strip():
        raise Failed("the hooks wrote: %s" % text.strip()[-600:])


# ---- per-call overhead ---------------------------------------------------------------------------------

def ns_per_call(result):
    match = re.search(r"^ns_per_call=([0-9.]+)$", result.stdout, re.M)
    if not match:
        raise Failed("foo_loop printed no timing: %s" % result.output.strip()[-600:])
    return float(match.group(1))


def check_hooked_calls(result, expected, who, at_least=False):
    """The hook's own count (hooked_calls=N, printed at exit) must be what the program did."""
    counts = [int(n) for n in re.findall(r"hooked_calls=(\d+)", result.output)]
    if not counts:
        raise Failed("%s reported no call count (did the hook run?): %s" % (who, result.output.strip()[-600:]))
    seen = counts[-1]
    if seen < expected or (seen != expected and not at_least):
        raise Failed("%s saw %d calls, expected %d%s" % (who, seen, expected, " or more" if at_least else ""))


def foo_loop_unhooked(bench, calls, mode):
    return ns_per_call(run_command([bench.foo_loop, str(calls), mode], env=bench.env))


def foo_loop_c_wrapper(bench, calls, mode):
    result = run_command([bench.foo_loop, str(calls), mode], env=dict(bench.env, LD_PRELOAD=bench.c_wrapper))
    if "c_wrapper_loaded" not in result.stderr:
        raise Failed("the C wrapper was not preloaded")
    return ns_per_call(result)


def foo_loop_mrhooker(bench, script, calls, mode):
    result = run_command(bench.mrhooker(hook_script(script), bench.foo_loop, str(calls), mode),
                         env=bench.mrhooker_env)
    check_hooked_calls(result, calls + FOO_LOOP_WARMUP, "mrhooker " + script)
    return ns_per_call(result)


def foo_loop_trace(bench, calls, mode, summary=False, armed=False, entry=False):
    """`mrhooker trace -e 'int foo(int x)'`: every call recorded (lines to a file), or only counted (-c); armed:
    with an --inject rule on foo that no call meets (its cost when it doesn't inject); entry: foo hooked at its
    own entry (--entry) and called through a pointer to it, not the PLT (FOO_LOOP_DIRECT)."""
    out = os.path.join(bench.tmp, "trace-foo.txt")
    argv = [sys.executable, "-m", "mrhooker", "trace", "--build-dir", bench.build_dir, "-e", "int foo(int x)",
            "-o", out] + (["-c"] if summary else []) + (["--inject", "foo:error=EIO:when=4000000000"] if armed else [])
    argv += (["--entry"] if entry else []) + [bench.foo_loop, str(calls), mode]
    result = run_command(argv, env=dict(bench.mrhooker_env, FOO_LOOP_DIRECT="1") if entry else bench.mrhooker_env)
    if "not recorded" in result.stderr:
        raise Failed("the trace dropped calls: %s" % result.stderr.strip()[-600:])
    with open(out) as f:
        text = f.read()
    seen = (int(re.search(r"^ *[0-9.]+ +[0-9.]+ +\d+ +(\d+) .*foo$", text, re.M).group(1)) if summary
            else len(re.findall(r"^(?:\[pid +\d+\] )?foo\(", text, re.M)))
    if seen != calls + FOO_LOOP_WARMUP:
        raise Failed("the trace saw %d calls of foo, the program made %d" % (seen, calls + FOO_LOOP_WARMUP))
    return ns_per_call(result)


def foo_loop_frida(bench, calls, mode):
    result = run_frida(bench, ["-l", hook_script("foo_frida.js"), "-f", bench.foo_loop, str(calls), mode,
                               str(FRIDA_SETTLE_MS)], env=bench.env)
    check_hooked_calls(result, calls + FOO_LOOP_WARMUP, "the Frida script")
    return ns_per_call(result)


def foo_loop_ltrace(bench, calls, mode):
    # ltrace 0.7.3's -e foo@LIB names the library the call is made *from*: foo@libbench.so traces nothing here.
    trace = os.path.join(bench.tmp, "ltrace-foo.txt")
    result = run_command([bench.tools["ltrace"], "-f", "-o", trace, "-e", "foo", bench.foo_loop, str(calls), mode],
                         env=bench.env)
    with open(trace, errors="replace") as f:
        traced = sum(1 for line in f if "foo(" in line)
    if traced != calls + FOO_LOOP_WARMUP:
        raise Failed("ltrace traced %d calls of foo, expected %d" % (traced, calls + FOO_LOOP_WARMUP))
    return ns_per_call(result)


# name, label in the table, which count of FULL/QUICK["calls"], needed tool, measurement
PER_CALL_HOOKS = [
    ("none", "none (baseline)", "fast", None, foo_loop_unhooked),
    ("c_wrapper", "C LD_PRELOAD wrapper, `dlsym(RTLD_NEXT)` cached (the floor)", "fast", None, foo_loop_c_wrapper),
    ("mrhooker_pyx_nogil", "mrhooker `.pyx`, `nogil` pass-through", "fast", None,
     lambda b, n, m: foo_loop_mrhooker(b, "foo_nogil.pyx", n, m)),
    ("mrhooker_pyx_with_gil", "mrhooker `.pyx`, `with gil`, calls a Python function", "gil", None,
     lambda b, n, m: foo_loop_mrhooker(b, "foo_withgil.pyx", n, m)),
    ("mrhooker_py", "mrhooker `.py` `@hook`, counts, returns `foo.original(x)`", "python", None,
     lambda b, n, m: foo_loop_mrhooker(b, "foo_py.py", n, m)),
    ("mrhooker_py_nonblocking", "the same `@hook` with `blocks=False` (GIL kept around `original`)", "python", None,
     lambda b, n, m: foo_loop_mrhooker(b, "foo_py_nonblocking.py", n, m)),
    ("mrhooker_trace", "`mrhooker trace -e 'int foo(int x)' -o FILE`: every call recorded, each line in FILE",
     "trace", None, foo_loop_trace),
    ("mrhooker_trace_c", "`mrhooker trace -c`: every call counted and timed", "fast", None,
     lambda b, n, m: foo_loop_trace(b, n, m, summary=True)),
    ("mrhooker_trace_c_armed", "the same, with an `--inject` rule on `foo` that never fires (`when=4000000000`)",
     "fast", None, lambda b, n, m: foo_loop_trace(b, n, m, summary=True, armed=True)),
    ("mrhooker_trace_c_entry", "`mrhooker trace -c --entry`: the same at foo's own entry, called without the PLT",
     "fast", None, lambda b, n, m: foo_loop_trace(b, n, m, summary=True, entry=True)),
    ("mrhooker_trace_entry", "`mrhooker trace --entry -o FILE`: every call recorded at foo's own entry", "trace",
     None, lambda b, n, m: foo_loop_trace(b, n, m, entry=True)),
    ("frida", "Frida `Interceptor.attach`, one-line JS `onEnter`", "frida", "frida", foo_loop_frida),
    ("ltrace", "ltrace `-e foo`", "ltrace", "ltrace", foo_loop_ltrace),
]
THREAD_MODES = ("main", "thread")


def per_call_overhead(bench):
    """ns/call of foo() under each hook, on the main thread and on another thread. Runs go round-robin over
    the hooks, so that a slow moment of the machine does not fall on one hook only."""
    samples = {(name, mode): [] for name, *_ in PER_CALL_HOOKS for mode in THREAD_MODES}
    results = {}
    active = []
    for name, label, count_kind, tool, measure in PER_CALL_HOOKS:
        reason = bench.skipped(tool) if tool else None
        if reason:
            results[name] = {"label": label, "skipped": reason}
        else:
            active.append((name, label, count_kind, measure))
    for run in range(bench.runs):
        for name, label, count_kind, measure in active:
            if "error" in results.get(name, {}):
                continue
            for mode in THREAD_MODES:
                calls = bench.settings["calls"][count_kind]
                try:
                    ns = measure(bench, calls, mode)
                except Failed as e:
                    log("per call: %s (%s thread) failed: %s" % (name, mode, e))
                    results[name] = {"label": label, "error": str(e)}
                    break
                samples[(name, mode)].append(ns)
                log("per call: run %d/%d %-22s %-6s %10.1f ns/call" % (run + 1, bench.runs, name, mode, ns))
    for name, label, count_kind, _measure in active:
        if name in results:
            continue
        results[name] = {"label": label, "calls": bench.settings["calls"][count_kind]}
        for mode in THREAD_MODES:
            results[name][mode] = {"ns_per_call": median(samples[(name, mode)]), "samples": samples[(name, mode)]}
    for mode in THREAD_MODES:
        if mode not in results["none"]:
            break   # no baseline (it failed): nothing is "added"
        base = results["none"][mode]["ns_per_call"]
        frida = results.get("frida", {}).get(mode)
        frida_added = frida["ns_per_call"] - base if frida else None
        for name, figures in results.items():
            if mode not in figures or name == "none":
                continue
            added = figures[mode]["ns_per_call"] - base
            figures[mode]["added_ns"] = added
            figures[mode]["vs_frida"] = added / frida_added if frida_added else None
    return results


# ---- instructions per call (deterministic) ----------------------------------------------------------------

INSTRUCTION_HOOKS = [
    ("none", "none (baseline)", None),
    ("mrhooker_trace", "`mrhooker trace`, every call recorded", "trace"),
    ("mrhooker_trace_c", "`mrhooker trace -c`, every call counted and timed", "trace -c"),
    ("c_wrapper", "C LD_PRELOAD wrapper, `dlsym(RTLD_NEXT)` cached (the floor)", "c_wrapper"),
    ("mrhooker_pyx_nogil", "mrhooker `.pyx`, `nogil` pass-through", "foo_nogil.pyx"),
    ("mrhooker_pyx_with_gil", "mrhooker `.pyx`, `with gil`, calls a Python function", "foo_withgil.pyx"),
    ("mrhooker_py", "mrhooker `.py` `@hook`, counts, returns `foo.original(x)`", "foo_py.py"),
    ("mrhooker_py_nonblocking", "the same `@hook` with `blocks=False`", "foo_py_nonblocking.py"),
]


def callgrind_part(path):
    """The instructions counted in one part of a callgrind output (its "summary:" line)."""
    try:
        with open(path) as f:
            match = re.search(r"^summary: (\d+)$", f.read(), re.M)
    except OSError:
        match = None
    if not match:
        raise Failed("callgrind wrote no part %s (foo_loop built without valgrind/callgrind.h?)"
                     % os.path.basename(path))
    return int(match.group(1))


def callgrind_per_call(bench, hooks, env):
    """One process: foo_loop's callgrind mode counts a loop of CALLS / 10 calls and one of CALLS apart (parts 1
    and 2 of the output); the difference over the difference of calls is a call's cost, with neither the start
    nor the loop's fixed cost in it, and with one hash seed."""
    calls = bench.settings["instruction_calls"]
    out = os.path.join(bench.tmp, "callgrind.out")
    for name in os.listdir(bench.tmp):
        if name.startswith("callgrind.out"):
            os.unlink(os.path.join(bench.tmp, name))
    argv = [bench.tools["valgrind"], "--tool=callgrind", "--collect-atstart=no", "--callgrind-out-file=" + out,
            bench.foo_loop, str(calls), "callgrind"]
    if hooks.startswith("trace"):   # valgrind runs under `mrhooker trace`, which makes the trace file
        argv = bench.trace("--build-dir", bench.build_dir, "-e", "int foo(int x)", "-o", os.devnull,
                           *hooks.split()[1:]) + argv
    run_command(argv, env=env)
    return (callgrind_part(out + ".2") - callgrind_part(out + ".1")) / (calls - calls // 10)


def instructions_per_call(bench):
    """Instructions per call of foo() under each hook, counted by valgrind's callgrind: the same for the same
    code whatever else the machine does (timings here vary by tens of percent), so the figure to compare a
    change with. A Python hook's figure moves between processes (a few dict lookups probe more or less with
    the hash seed its interpreter draws, which no environment variable sets): the fewest of several processes
    is the figure, the most is shown too. Processes go round-robin over the hooks."""
    if not bench.tools["valgrind"]:
        return {"skipped": "valgrind is not installed"}
    envs, results, samples = {}, {}, {}
    for name, label, hooks in INSTRUCTION_HOOKS:
        try:
            if hooks is None:
                envs[name] = bench.env
            elif hooks.startswith("trace"):
                envs[name] = bench.mrhooker_env
            elif hooks == "c_wrapper":
                envs[name] = dict(bench.env, LD_PRELOAD=bench.c_wrapper)
            else:
                envs[name] = hooked_environment(bench, hook_script(hooks))
            samples[name] = []
        except Failed as e:
            results[name] = {"label": label, "error": str(e)}
    for run in range(bench.settings["instruction_runs"]):
        for name, label, hooks in INSTRUCTION_HOOKS:
            if name in results:
                continue
            try:
                samples[name].append(callgrind_per_call(bench, hooks or "", envs[name]))
            except Failed as e:
                log("instructions: %s failed: %s" % (name, e))
                results[name] = {"label": label, "error": str(e)}
                continue
            log("instructions: run %d/%d %-24s %8.1f per call" % (run + 1, bench.settings["instruction_runs"],
                                                                   name, samples[name][-1]))
    for name, label, _hooks in INSTRUCTION_HOOKS:
        if name not in results:
            results[name] = {"label": label, "instructions": min(samples[name]), "most": max(samples[name]),
                             "samples": samples[name]}
    base = results["none"].get("instructions")
    for figure in results.values():
        if base is not None and "instructions" in figure:
            figure["added"] = figure["instructions"] - base
    results["calls"] = bench.settings["instruction_calls"]
    results["runs"] = bench.settings["instruction_runs"]
    return results


def instructions_table(results, settings):
    lines = ["### Instructions per call (callgrind)", "",
             "`int foo(int)` called in a loop, instructions counted by valgrind's callgrind: the same for the same "
             "code whatever the machine does, so the figure to compare a change with. In one process, a loop of "
             "%s calls and one of %s are counted apart: (long − short) / (difference of calls), so the start "
             "(Python's varies by ~50k instructions) is not in it. A Python hook's figure varies between "
             "processes with the hash seed its interpreter draws (a few dict lookups probe more or less): "
             "*instructions per call* is the fewest of %d processes, *most* the most."
             % ("{:,}".format(settings["instruction_calls"] // 10), "{:,}".format(settings["instruction_calls"]),
                settings["instruction_runs"]), "",
             "| hook | instructions per call | added | most |", "|---|---:|---:|---:|"]
    if "skipped" in results:
        return lines + ["| (%s) | | | |" % results["skipped"]]
    for name, *_ in INSTRUCTION_HOOKS:
        figure = results[name]
        missing = not_measured(figure)
        if missing:
            lines.append("| %s | %s | | |" % (figure["label"], missing))
        else:
            lines.append("| %s | %s | %s | %s |" % (figure["label"], fmt(figure["instructions"]),
                                                    fmt(figure.get("added")), fmt(figure["most"])))
    return lines


# ---- start-up -----------------------------------------------------------------------------------------

PYTHON_FLOOR_IMPORTS = "import argparse, json, hashlib, ctypes"   # what mrhooker's warm start imports at least


def installed_mrhooker_scripts():
    """The console script beside this Python, and pyenv's shim for it if there is one (what a pyenv user's
    shell runs; the shim finds the Python first, which takes time of its own)."""
    scripts = {}
    beside = os.path.join(os.path.dirname(sys.executable), "mrhooker")
    if os.access(beside, os.X_OK):
        scripts["installed_script"] = ("installed script", beside)
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    shim = os.path.join(pyenv_root, "shims", "mrhooker")
    if os.access(shim, os.X_OK):
        scripts["pyenv_shim"] = ("pyenv shim", shim)
    return scripts


def warm_commands(bench):
    """(key, label, argv, env, tool, check) of the warm start-up figures, measured round-robin."""
    py = sys.executable
    empty_js = os.path.join(bench.tmp, "empty.js")
    open(empty_js, "w").close()
    frida = lambda: run_frida(bench, ["-l", empty_js, "-f", "/bin/true"], env=bench.env)
    rows = [
        ("true_bare", "`/bin/true` bare", ["/bin/true"], bench.env, None),
        ("python_start", "`python -c pass` (the reference: 1×)", [py, "-c", "pass"], bench.env, None),
        ("python_start_no_site", "`python -S -c pass` (no site import)", [py, "-S", "-c", "pass"], bench.env, None),
        ("python_imports", "`python -c '%s'` (the floor of a start that parses options and reads a cache)"
         % PYTHON_FLOOR_IMPORTS, [py, "-c", PYTHON_FLOOR_IMPORTS], bench.env, None),
        ("strace_true", "`strace -o /dev/null /bin/true`", [bench.tools["strace"], "-o", os.devnull, "/bin/true"],
         bench.env, "strace"),
        ("ltrace_true", "`ltrace -o /dev/null /bin/true`", [bench.tools["ltrace"], "-o", os.devnull, "/bin/true"],
         bench.env, "ltrace"),
        ("trace_small_true", "`mrhooker trace -e write,open -o /dev/null /bin/true`",
         bench.trace("-e", "write,open", "-o", os.devnull, "/bin/true"), bench.mrhooker_env, None),
        ("trace_default_true", "`mrhooker trace -o /dev/null /bin/true` (the default classes)",
         bench.trace("-o", os.devnull, "/bin/true"), bench.mrhooker_env, None),
        ("hook_py_true", "`mrhooker startup_hooks.py /bin/true` (hooks never called)",
         bench.mrhooker(hook_script("startup_hooks.py"), "/bin/true"), bench.mrhooker_env, None),
        ("true_mrhooker_module", "`mrhooker startup_hooks.pyx /bin/true` (hooks never called)",
         bench.mrhooker(hook_script("startup_hooks.pyx"), "/bin/true"), bench.mrhooker_env, None),
    ]
    rows = [row + (None,) for row in rows]
    for key, (what, path) in installed_mrhooker_scripts().items():
        rows.append(("true_" + key, "`mrhooker startup_hooks.pyx /bin/true` run by the %s `%s`" % (what, path),
                     [path, "--build-dir", bench.build_dir, hook_script("startup_hooks.pyx"), "/bin/true"],
                     bench.mrhooker_env, None, None))
    rows.append(("frida_spawn_true", "`frida -q -t inf -l empty.js -f /bin/true`", None, None, "frida", frida))
    return rows


def warm_start(bench):
    """Wall time of whole commands with every cache warm (each run once untimed first), round-robin: the
    figures of one round are taken at the same moment of the machine, so their ratios hold under load."""
    results, active = {}, []
    for key, label, argv, env, tool, check in warm_commands(bench):
        reason = bench.skipped(tool) if tool else None
        if reason:
            results[key] = {"label": label, "skipped": reason}
            continue
        call = check or (lambda argv=argv, env=env: run_command(argv, env=env))
        try:
            call()
            call()   # the first run may write a cache (a trace's plan, .pyc files) that the second reads
        except Failed as e:
            log("start-up: %s failed: %s" % (key, e))
            results[key] = {"label": label, "error": str(e)}
            continue
        active.append((key, label, call))
        results[key] = {"label": label, "samples": []}
    for run in range(bench.settings["startup_runs"]):
        for key, label, call in active:
            if "error" in results[key]:
                continue
            try:
                results[key]["samples"].append(call().seconds * 1000)
            except Failed as e:
                log("start-up: %s failed: %s" % (key, e))
                results[key] = {"label": label, "error": str(e)}
    for key, figure in results.items():
        if figure.get("samples"):
            figure["ms"] = median(figure["samples"])
            log("start-up: %-22s %8.1f ms" % (key, figure["ms"]))
    bare = results["true_bare"].get("ms")
    python = results["python_start"].get("ms")
    for key, figure in results.items():
        if "ms" in figure and key != "true_bare":
            figure["added_ms"] = figure["ms"] - bare if bare is not None else None
            figure["vs_python"] = figure["ms"] / python if python else None
    return results


def sh_loop_command(bench):
    return [bench.tools["sh"], "-c", "for i in $(seq %d); do /bin/true; done" % bench.settings["exec_loop"]]


def preload_cost_per_process(bench, script):
    """What every exec'd process pays for having the hooks preloaded when it never calls a hooked function:
    an sh loop running /bin/true, with mrhooker's LD_PRELOAD and settings but not its launcher, against the
    same loop bare. Per process: sh, seq and each /bin/true."""
    env = hooked_environment(bench, hook_script(script))
    processes = bench.settings["exec_loop"] + 2
    bare, hooked = [], []
    for _ in range(bench.runs):
        bare.append(run_command(sh_loop_command(bench), env=bench.env).seconds * 1000)
        hooked.append(run_command(sh_loop_command(bench), env=env).seconds * 1000)
    check_hook_output_empty(bench)
    return {"added_ms": (median(hooked) - median(bare)) / processes, "processes": processes,
            "bare_loop_samples_ms": bare, "hooked_loop_samples_ms": hooked}


def first_hooked_call_cost(bench, script):
    """What a process pays when it calls a hooked function: Python starts inside it and imports the hooks.
    foo_loop making 1001 calls, with the hooks preloaded (no launcher), against the same bare."""
    env = hooked_environment(bench, hook_script(script))
    argv = [bench.foo_loop, "1"]
    bare, hooked = [], []
    for _ in range(bench.settings["startup_runs"]):
        bare.append(run_command(argv, env=bench.env).seconds * 1000)
        hooked.append(run_command(argv, env=env).seconds * 1000)
    check_hook_output_empty(bench)
    return {"added_ms": median(hooked) - median(bare), "bare_samples_ms": bare, "hooked_samples_ms": hooked}


def peak_rss_kb(result):
    match = re.search(r"^vm_hwm_kb=(\d+)$", result.stdout, re.M)
    if not match:
        raise Failed("foo_loop printed no peak memory: %s" % result.output.strip()[-600:])
    return int(match.group(1))


def first_hooked_call_memory(bench, script):
    """What a process's memory grows by when its hooks start: the hooks' own libc, libpython and interpreter.
    Peak RSS of foo_loop making 1001 calls with the hooks preloaded, against the same bare."""
    env = hooked_environment(bench, hook_script(script))
    argv = [bench.foo_loop, "1"]
    bare = [peak_rss_kb(run_command(argv, env=bench.env)) for _ in range(bench.runs)]
    hooked = [peak_rss_kb(run_command(argv, env=env)) for _ in range(bench.runs)]
    check_hook_output_empty(bench)
    return {"added_mb": (median(hooked) - median(bare)) / 1024, "bare_kb": bare, "hooked_kb": hooked}


def startup(bench):
    results = warm_start(bench)

    def measure(key, label, func, *args):
        log("start-up: %s" % key)
        try:
            results[key] = dict(func(bench, *args), label=label)
        except Failed as e:
            log("start-up: %s failed: %s" % (key, e))
            results[key] = {"label": label, "error": str(e)}

    measure("preload_per_process_pyx", "preloaded `.pyx` hooks never called, per exec'd process",
            preload_cost_per_process, "startup_hooks.pyx")
    measure("preload_per_process_py", "preloaded `.py` hooks never called, per exec'd process",
            preload_cost_per_process, "startup_hooks.py")
    measure("first_hooked_call_pyx", "first hooked call in a process: Python starts, imports the `.pyx` hooks",
            first_hooked_call_cost, "startup_hooks.pyx")
    measure("first_hooked_call_py", "first hooked call in a process: Python starts, imports the `.py` hooks",
            first_hooked_call_cost, "startup_hooks.py")
    measure("first_hooked_call_memory_py", "memory (peak RSS) a process grows by when its `.py` hooks start",
            first_hooked_call_memory, "startup_hooks.py")
    return results


# ---- cold builds: first runs in an empty cache ------------------------------------------------------------

def said(result):
    """What mrhooker said on stderr while it prepared (its `mrhooker:` lines)."""
    return [line for line in result.stderr.splitlines() if line.startswith("mrhooker:")]


def cold_runs(bench):
    """(key, label, first) per figure; first(cache) runs one first run in the empty cache directory `cache`
    and returns its Result. A script-only figure runs a copy of the script under another name in the cache its
    first figure has just filled: everything is built there but that script."""
    spec = bench.settings["cold_all_spec"]

    def trace(*args):
        return lambda cache: run_command(bench.trace(*args), env=dict(bench.mrhooker_env, XDG_CACHE_HOME=cache))

    def hook(name, renamed=False):
        def first(cache):
            path = hook_script(name)
            if renamed:
                path = os.path.join(tempfile.mkdtemp(prefix="other-", dir=bench.tmp), "other_" + name)
                shutil.copy(hook_script(name), path)
            return run_command([sys.executable, "-m", "mrhooker", path, "/bin/true"],
                               env=dict(bench.mrhooker_env, XDG_CACHE_HOME=cache))
        return first

    all_label = ("first `mrhooker trace -e '*' -o /dev/null /bin/true` (every known function)" if spec == "*" else
                 "first `mrhooker trace -e '%s' -o /dev/null /bin/true` (--quick: a tiny set for `-e '*'`)" % spec)
    return [
        [("trace_default", "first `mrhooker trace -o /dev/null /bin/true` (the default classes)",
          trace("-o", os.devnull, "/bin/true"))],
        [("trace_all", all_label, trace("-e", spec, "-o", os.devnull, "/bin/true"))],
        [("hook_py", "first `mrhooker startup_hooks.py /bin/true` (%d lines; its runtime compiled too)"
          % line_count(hook_script("startup_hooks.py")), hook("startup_hooks.py")),
         ("hook_py_script_only", "then another `.py` (a copy of it): runtime already compiled",
          hook("startup_hooks.py", renamed=True))],
        [("hook_pyx", "first `mrhooker startup_hooks.pyx /bin/true` (%d lines; its runtime compiled too)"
          % line_count(hook_script("startup_hooks.pyx")), hook("startup_hooks.pyx")),
         ("hook_pyx_script_only", "then another `.pyx` (a copy of it): runtime already compiled",
          hook("startup_hooks.pyx", renamed=True))],
    ]


def cold_builds(bench):
    """Wall time of first runs, each group in a fresh empty cache directory (XDG_CACHE_HOME): the system
    headers' prototypes read, the runtime and the build compiled. Groups go round-robin. --quick, which only
    checks the harness, uses one cache for all: the later groups find the headers read and the runtime built."""
    groups = cold_runs(bench)
    if bench.settings.get("cold_one_cache"):
        groups = [[(key, label + " (--quick: in the cache of the row above)" if i else label, first)
                   for i, (key, label, first) in enumerate(sum(groups, []))]]
    results = {key: {"label": label, "samples": []} for group in groups for key, label, _ in group}
    for run in range(bench.settings["cold_runs"]):
        for group in groups:
            cache = tempfile.mkdtemp(prefix="cold-cache-", dir=bench.tmp)
            try:
                for key, label, first in group:
                    if "error" in results[key]:
                        break
                    try:
                        result = first(cache)
                    except Failed as e:
                        log("cold: %s failed: %s" % (key, e))
                        results[key] = {"label": label, "error": str(e)}
                        break
                    results[key]["samples"].append(result.seconds * 1000)
                    results[key]["said"] = said(result)
                    log("cold: run %d/%d %-22s %8.0f ms" % (run + 1, bench.settings["cold_runs"], key,
                                                             result.seconds * 1000))
            finally:
                shutil.rmtree(cache, ignore_errors=True)
    for figure in results.values():
        if figure.get("samples"):
            figure["ms"] = median(figure["samples"])
    return results


def line_count(path):
    with open(path) as f:
        return sum(1 for _ in f)


# ---- trace lines: lines written a second, and the stalled ring ------------------------------------------

def ns_per_call_of(result, who):
    match = re.search(r"^ns_per_call=([0-9.]+)$", result.stdout, re.M)
    if not match:
        raise Failed("%s printed no timing: %s" % (who, result.output.strip()[-600:]))
    return float(match.group(1))


def count_in_file(path, needle, piece_size=1 << 24):
    """Occurrences of needle (bytes) in a file of any size, read a piece at a time."""
    count, tail = 0, b""
    with open(path, "rb") as f:
        while True:
            piece = f.read(piece_size)
            if not piece:
                return count
            data = tail + piece
            count += data.count(needle)
            # the tail, shorter than needle, holds no whole one: a needle cut by the piece's end is counted once
            tail = data[-(len(needle) - 1):] if len(needle) > 1 else b""


WRITE_LOOP_WARMUP = 1000
WRITE_LINE = b', "x", 1) = 1\n'   # the end of a write_loop line: write(N, "x", 1) = 1


def write_loop_bare(bench, calls):
    result = run_command([bench.write_loop, str(calls)], env=bench.env)
    return result.seconds, ns_per_call_of(result, "write_loop")


def write_loop_traced(bench, calls):
    out = os.path.join(bench.tmp, "trace-lines.txt")
    try:
        result = run_command(bench.trace("-e", "write", "-o", out, bench.write_loop, str(calls)),
                             env=bench.mrhooker_env)
        if "not recorded" in result.stderr:
            raise Failed("the trace dropped calls: %s" % result.stderr.strip()[-600:])
        seen = count_in_file(out, WRITE_LINE)
    finally:
        if os.path.exists(out):
            os.unlink(out)   # 20M lines are ~0.5 GB
    if seen != calls + WRITE_LOOP_WARMUP:
        raise Failed("the trace has %d lines of write_loop's writes, it made %d" % (seen, calls + WRITE_LOOP_WARMUP))
    return result.seconds, ns_per_call_of(result, "write_loop")


def trace_lines(bench):
    """write_loop making N write() calls to /dev/null, bare and under `mrhooker trace -e write -o FILE`, for
    each N of ring_calls, round-robin: lines written a second, (N + warm-up) / (traced wall time − bare), and
    the program's own ns a write() (its loop timed inside it), which grows if it waits on a full buffer."""
    counts = bench.settings["ring_calls"]
    samples = {(n, kind): [] for n in counts for kind in ("bare", "traced")}
    results = {}
    try:
        write_loop_traced(bench, 1000)   # the trace's first build, untimed
    except Failed as e:
        log("lines: failed: %s" % e)
        return {"counts": list(counts), "by_calls": {str(n): {"error": str(e)} for n in counts}}
    for run in range(bench.settings["ring_runs"]):
        for n in counts:
            if "error" in results.get(n, {}):
                continue
            try:
                samples[(n, "bare")].append(write_loop_bare(bench, n))
                samples[(n, "traced")].append(write_loop_traced(bench, n))
            except Failed as e:
                log("lines: %d calls failed: %s" % (n, e))
                results[n] = {"error": str(e)}
                continue
            (bs, bns), (ts, tns) = samples[(n, "bare")][-1], samples[(n, "traced")][-1]
            log("lines: run %d/%d %10d calls: bare %7.2f s %6.1f ns/call, traced %7.2f s %6.1f ns/call"
                % (run + 1, bench.settings["ring_runs"], n, bs, bns, ts, tns))
    for n in counts:
        if n in results:
            continue
        figure = {"calls": n}
        for kind in ("bare", "traced"):
            figure[kind + "_seconds"] = median([x[0] for x in samples[(n, kind)]])
            figure[kind + "_ns_per_call"] = median([x[1] for x in samples[(n, kind)]])
            figure[kind + "_samples"] = samples[(n, kind)]
        extra = figure["traced_seconds"] - figure["bare_seconds"]
        figure["lines_per_second"] = (n + WRITE_LOOP_WARMUP) / extra if extra > 0 else None
        results[n] = figure
    first = results.get(counts[0], {}).get("traced_ns_per_call")
    for n in counts:
        if first and "traced_ns_per_call" in results[n]:
            results[n]["vs_first"] = results[n]["traced_ns_per_call"] / first
    return {"counts": list(counts), "by_calls": {str(n): results[n] for n in counts}}


# ---- memory ------------------------------------------------------------------------------------------------

MEMORY_CASES = [
    ("unhooked", "unhooked"),
    ("traced", "`mrhooker trace -e 'int foo(int x)' -o FILE`"),
    ("hooks_py", "`.py` hooks started"),
    ("hooks_pyx", "`.pyx` hooks started"),
]
MEMORY_KINDS = ["program", "libc", "ld.so", "libpython", "mrhooker", "pyext", "otherlib", "heap", "anonymous",
                "shared", "stack", "other"]
MEMORY_KIND_LABELS = {
    "program": "foo_wait and libbench.so",
    "libc": "libc.so.6 (all its copies)",
    "ld.so": "ld.so",
    "libpython": "libpython",
    "mrhooker": "mrhooker's libraries (preload.so, pyrt.so, hooks.so, trace, reader)",
    "pyext": "Python's extension modules",
    "otherlib": "other libraries (libm, ...; their copies)",
    "heap": "`[heap]` (the program's libc's brk heap)",
    "anonymous": "anonymous (Python's arenas and objects, a second libc's malloc, thread stacks)",
    "shared": "shared memory (the trace buffer)",
    "stack": "`[stack]`",
    "other": "other (vdso, locale files, ...)",
}


def mapping_kind(bench, path):
    if not path:
        return "anonymous"
    if path == "[heap]":
        return "heap"
    if path == "[stack]":
        return "stack"
    if path.startswith("["):
        return "other"
    if path in (bench.foo_wait, bench.libbench):
        return "program"
    name = os.path.basename(path)
    if path.startswith("/dev/shm/") or path.startswith("/memfd:") or path.startswith("/SYSV"):
        return "shared"
    if name.startswith("libc.so") or name.startswith("libc-"):
        return "libc"
    if name.startswith("ld-linux") or name.startswith("ld-"):
        return "ld.so"
    if name.startswith("libpython"):
        return "libpython"
    if path.startswith(bench.tmp + os.sep):
        return "mrhooker"
    if "/lib-dynload/" in path or ".cpython-" in name:
        return "pyext"
    if ".so" in name:
        return "otherlib"
    return "other"


def smaps(bench, pid):
    """PSS, RSS and private kB of a process, its PSS by kind of mapping, and how many copies of libc it maps."""
    with open("/proc/%d/smaps_rollup" % pid) as f:
        rollup = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+):\s+(\d+) kB$", f.read(), re.M)}
    kinds = {kind: 0 for kind in MEMORY_KINDS}
    private = {kind: 0 for kind in MEMORY_KINDS}
    libc_copies, kind = 0, "other"
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            header = re.match(r"^[0-9a-f]+-[0-9a-f]+ \S+ ([0-9a-f]+) \S+ \d+\s*(.*)$", line)
            if header:
                path = header.group(2).strip()
                kind = mapping_kind(bench, path)
                if kind == "libc" and int(header.group(1), 16) == 0:
                    libc_copies += 1
            elif line.startswith("Pss:"):
                kinds[kind] += int(line.split()[1])
            elif line.startswith("Private_Clean:") or line.startswith("Private_Dirty:"):
                private[kind] += int(line.split()[1])
    return {"pss_kb": rollup["Pss"], "rss_kb": rollup["Rss"],
            "private_kb": rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0),
            "by_kind_kb": kinds, "private_by_kind_kb": private, "libc_copies": libc_copies}


def start_waiting(argv, env):
    """Starts foo_wait (or a launcher of it) and returns (process, foo_wait's pid) once it has called foo()."""
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    import threading
    timer = threading.Timer(300, proc.kill)
    timer.start()
    try:
        line = proc.stdout.readline().decode(errors="replace")
    finally:
        timer.cancel()
    match = re.match(r"ready (\d+)$", line.strip())
    if not match:
        stop_waiting(proc)
        raise Failed("foo_wait did not start: %s %s" % (line.strip(), proc.stderr.read().decode(errors="replace")[-600:]))
    return proc, int(match.group(1))


def stop_waiting(proc):
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.returncode


def memory_case_argv(bench, case):
    """argv and environment running foo_wait in the case's way."""
    if case == "unhooked":
        return [bench.foo_wait], bench.env
    if case == "traced":
        out = os.path.join(bench.tmp, "trace-memory.txt")
        return bench.trace("-e", "int foo(int x)", "-o", out, bench.foo_wait), bench.mrhooker_env
    script = {"hooks_py": "startup_hooks.py", "hooks_pyx": "startup_hooks.pyx"}[case]
    return [bench.foo_wait], hooked_environment(bench, hook_script(script))


def measure_processes(bench, case, how_many):
    """smaps() of how_many foo_wait processes of one case, all running (and waiting) at once."""
    argv, env = memory_case_argv(bench, case)
    started = []
    try:
        for _ in range(how_many):
            started.append(start_waiting(argv, env))
        figures = [smaps(bench, pid) for _proc, pid in started]
    finally:
        statuses = [stop_waiting(proc) for proc, _pid in started]
    if any(statuses):
        raise Failed("foo_wait (%s) exited with status %s" % (case, statuses))
    if case.startswith("hooks") and not all(f["by_kind_kb"]["libpython"] for f in figures):
        raise Failed("the hooks did not start in foo_wait (no libpython mapped)")
    return figures


def memory(bench):
    """PSS (proportional: a page shared by n processes counts 1/n in each) and private memory of foo_wait while
    it waits after calling foo(): unhooked, traced, and with hooks that started Python; the PSS by kind of
    mapping; and the PSS of memory_group such processes running at once. Runs go round-robin."""
    results = {case: {"label": label, "samples": []} for case, label in MEMORY_CASES}
    for run in range(bench.runs):
        for case, label in MEMORY_CASES:
            if "error" in results[case]:
                continue
            try:
                figure = measure_processes(bench, case, 1)[0]
            except (Failed, OSError) as e:
                log("memory: %s failed: %s" % (case, e))
                results[case] = {"label": label, "error": str(e)}
                continue
            results[case]["samples"].append(figure)
            log("memory: run %d/%d %-10s PSS %6d kB, private %6d kB" % (run + 1, bench.runs, case,
                                                                      figure["pss_kb"], figure["private_kb"]))
    for case, _label in MEMORY_CASES:
        figure = results[case]
        if "error" in figure:
            continue
        samples = figure["samples"]
        figure["pss_kb"] = median([s["pss_kb"] for s in samples])
        figure["rss_kb"] = median([s["rss_kb"] for s in samples])
        figure["private_kb"] = median([s["private_kb"] for s in samples])
        for what in ("by_kind_kb", "private_by_kind_kb"):
            figure[what] = {kind: median([s[what][kind] for s in samples]) for kind in MEMORY_KINDS}
        figure["libc_copies"] = max(s["libc_copies"] for s in samples)
    group = bench.settings["memory_group"]
    for case in ("unhooked", "hooks_py"):
        if "error" in results[case]:
            continue
        try:
            figures = measure_processes(bench, case, group)
        except (Failed, OSError) as e:
            log("memory: %d %s processes failed: %s" % (group, case, e))
            results[case]["group_error"] = str(e)
            continue
        results[case]["group"] = {"processes": group, "pss_kb": sum(f["pss_kb"] for f in figures),
                                  "private_kb": sum(f["private_kb"] for f in figures)}
        log("memory: %d %s processes: PSS %d kB" % (group, case, results[case]["group"]["pss_kb"]))
    return results


# ---- a real workload: dd bs=1 ----------------------------------------------------------------------------

def dd_command(bench):
    return [bench.tools["dd"], "if=/dev/zero", "of=/dev/null", "bs=1", "count=%d" % bench.settings["dd_count"]]


def count_lines(path, needle):
    with open(path, errors="replace") as f:
        return sum(1 for line in f if needle in line)


def dd_bare(bench):
    return run_command(dd_command(bench), env=bench.env)


def dd_mrhooker(bench, script):
    result = run_command(bench.mrhooker(hook_script(script), *dd_command(bench)), env=bench.mrhooker_env)
    check_hooked_calls(result, bench.settings["dd_count"], "mrhooker " + script, at_least=True)
    return result


def dd_strace(bench):
    trace = os.path.join(bench.tmp, "strace-dd.txt")
    result = run_command([bench.tools["strace"], "-o", trace, "-e", "trace=write"] + dd_command(bench),
                         env=bench.env)
    if count_lines(trace, "write(") < bench.settings["dd_count"]:
        raise Failed("strace traced fewer write() calls than dd made")
    return result


def dd_ltrace(bench):
    trace = os.path.join(bench.tmp, "ltrace-dd.txt")
    result = run_command([bench.tools["ltrace"], "-o", trace, "-e", "write"] + dd_command(bench), env=bench.env)
    if count_lines(trace, "write(") < bench.settings["dd_count"]:
        raise Failed("ltrace traced fewer write() calls than dd made")
    return result


def dd_frida_trace(bench):
    # frida-trace keeps its generated handler in __handlers__/ of its working directory: the first run makes
    # it (dd_workload runs it once untimed), later runs load it. It exits with status 1 once the process it
    # spawned has terminated, so its status says nothing: the calls it printed are counted instead.
    result = run_command([bench.tools["frida-trace"], "-i", "write", "-f"] + dd_command(bench), env=bench.env,
                         cwd=bench.tmp, check=False)
    if result.stdout.count("write(") < bench.settings["dd_count"]:
        raise Failed("frida-trace traced fewer write() calls than dd made: %s" % result.output.strip()[-600:])
    return result


def dd_frida_script(bench):
    result = run_frida(bench, ["-l", hook_script("write_frida.js"), "-f"] + dd_command(bench), env=bench.env)
    check_hooked_calls(result, bench.settings["dd_count"], "the Frida script", at_least=True)
    return result


def dd_trace(bench, summary=False):
    """`mrhooker trace -e write` of dd: every call in a file (its lines checked), or -c alone (its count). The
    figure is the whole command's wall time, mrhooker's own start and the decoding of the calls included."""
    out = os.path.join(bench.tmp, "trace-dd.txt")
    argv = [sys.executable, "-m", "mrhooker", "trace", "--build-dir", bench.build_dir, "-e", "write", "-o", out] + \
        (["-c"] if summary else []) + dd_command(bench)
    result = run_command(argv, env=bench.mrhooker_env)
    with open(out) as f:
        text = f.read()
    seen = (int(re.search(r"^ *[0-9.]+ +[0-9.]+ +\d+ +(\d+) .*write$", text, re.M).group(1)) if summary
            else text.count('write(1, "\\0", 1) = 1\n'))
    if seen < bench.settings["dd_count"]:
        raise Failed("mrhooker trace saw %d write() calls, dd made %d" % (seen, bench.settings["dd_count"]))
    return result


DD_RUNS = [
    ("bare", "`dd` bare", None, dd_bare),
    ("mrhooker_trace", "`mrhooker trace -e write -o FILE` (every call a line in FILE)", None, dd_trace),
    ("mrhooker_trace_c", "`mrhooker trace -c -e write` (a summary)", None, lambda b: dd_trace(b, summary=True)),
    ("mrhooker_pyx_with_gil", "mrhooker `.pyx` `with gil` hook on `write`, counting in Python", None,
     lambda b: dd_mrhooker(b, "write_withgil.pyx")),
    ("mrhooker_py", "mrhooker `.py` `@hook` on `write`, counting", None, lambda b: dd_mrhooker(b, "write_py.py")),
    ("frida_script", "`frida -l` with `Interceptor.attach` on `write`, counting (+50 ms pause at exit)", "frida",
     dd_frida_script),
    ("frida_trace", "`frida-trace -i write` (prints every call)", "frida-trace", dd_frida_trace),
    ("strace", "`strace -e trace=write`", "strace", dd_strace),
    ("ltrace", "`ltrace -e write`", "ltrace", dd_ltrace),
]


def dd_workload(bench):
    """Wall time of dd writing N single bytes, bare and with write() hooked or traced; runs go round-robin."""
    results, samples, own_samples, active = {}, {}, {}, []
    for name, label, tool, measure in DD_RUNS:
        reason = bench.skipped(tool) if tool else None
        if reason:
            results[name] = {"label": label, "skipped": reason}
        else:
            active.append((name, label, measure))
            samples[name] = []
    for name, _label, measure in active:
        if name in ("frida_trace", "mrhooker_trace", "mrhooker_trace_c"):
            try:
                measure(bench)   # untimed: frida-trace makes its handler file, mrhooker builds the trace
            except Failed:
                pass             # the timed runs will say what is wrong
    for run in range(bench.runs):
        for name, label, measure in active:
            if name in results:
                continue
            try:
                result = measure(bench)
            except Failed as e:
                log("dd: %s failed: %s" % (name, e))
                results[name] = {"label": label, "error": str(e)}
                continue
            own = re.search(r"copied, ([0-9.]+) s", result.output)   # dd's own time, from its last line
            samples[name].append(result.seconds)
            own_samples.setdefault(name, []).append(float(own.group(1)) if own else None)
            log("dd: run %d/%d %-22s %8.3f s (dd's own %s s)" % (run + 1, bench.runs, name, result.seconds,
                                                                  own.group(1) if own else "?"))
    count = bench.settings["dd_count"]
    bare = median(samples["bare"]) if "bare" not in results else None
    owns = {name: [x for x in xs if x is not None] for name, xs in own_samples.items()}
    bare_own = median(owns["bare"]) if owns.get("bare") else None
    for name, label, _measure in active:
        if name in results:
            continue
        seconds = median(samples[name])
        results[name] = {"label": label, "seconds": seconds, "samples": samples[name]}
        if owns.get(name):
            results[name]["dd_seconds"] = median(owns[name])
        if bare and name != "bare":
            results[name]["slowdown"] = seconds / bare
            results[name]["added_us_per_write"] = (seconds - bare) / count * 1e6
            if bare_own and owns.get(name):
                results[name]["dd_slowdown"] = median(owns[name]) / bare_own
    return results


# ---- attach -----------------------------------------------------------------------------------------------

# A long-running target with many libraries loaded: Python with extension modules and libcurl (~65 objects).
ATTACH_TARGET = ("import ctypes, ssl, sqlite3, decimal, json, hashlib, zlib, bz2, lzma, uuid, signal, sys\n"
                 "ctypes.CDLL('libcurl.so.4')\n"
                 "print(len({l.split()[-1] for l in open('/proc/self/maps') if '.so' in l}), flush=True)\n"
                 "signal.pause()\n")

FRIDA_ATTACH = ("import frida, sys, time\n"
                "t0 = time.perf_counter(); s = frida.attach(int(sys.argv[1])); t1 = time.perf_counter()\n"
                "s.detach(); t2 = time.perf_counter()\n"
                "print('attach %.6f detach %.6f' % (t1 - t0, t2 - t1))\n")


def write_wait_run(bench, how):
    """ns per write() of write_wait: bare, launched under `mrhooker trace -c -e write`, or attached to so."""
    calls = str(bench.settings["attach_calls"])
    trace = [sys.executable, "-m", "mrhooker", "trace", "--build-dir", bench.build_dir, "-c", "-e", "write", "-o",
             os.devnull]
    env = bench.mrhooker_env if how != "bare" else bench.env
    argv = trace + [bench.write_wait, calls] if how == "launched" else [bench.write_wait, calls]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    tracer = None
    try:
        if proc.stdout.readline() != "ready\n":
            raise Failed("write_wait did not start")
        pid = proc.pid
        if how == "launched":   # the program is mrhooker's child
            pid = int(subprocess.run(["pgrep", "-n", "-f", bench.write_wait + " " + calls], stdout=subprocess.PIPE,
                                     text=True).stdout.split()[0])
        if how == "attached":
            tracer = subprocess.Popen(trace + ["-p", str(pid)], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while len(os.listdir("/proc/%d/task" % pid)) < 2:   # the runtime's thread: attached
                if time.monotonic() > deadline:
                    raise Failed("mrhooker trace -p did not attach")
                time.sleep(0.01)
        os.kill(pid, signal.SIGUSR1)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if tracer is not None:
            tracer.wait(timeout=60)
    m = re.search(r"ns_per_call=([0-9.]+)", out)
    if not m:
        raise Failed("write_wait said nothing (%s)" % how)
    return float(m.group(1))


def attach_times(bench):
    """Attaching `mrhooker trace -e write -p PID` to a running Python with ~65 objects loaded, and detaching:
    mrhooker's own figures (-v: the whole attach, the process stopped, the chosen thread stopped; the detach's
    answer), the command's wall time, and Frida's attach and detach of the same process, round-robin."""
    python = shutil.which("python3") or sys.executable
    target = subprocess.Popen([python, "-c", ATTACH_TARGET], stdout=subprocess.PIPE, text=True, env=bench.env)
    try:
        objects = int(target.stdout.readline())
        argv = [sys.executable, "-m", "mrhooker", "trace", "-v", "--build-dir", bench.build_dir, "-e", "write",
                "-D", "0.2", "-p", str(target.pid)]
        run_command(argv, env=bench.mrhooker_env)   # untimed: the build
        frida_python = None if bench.skipped("frida") else script_interpreter(bench.tools["frida"])
        samples = {k: [] for k in ("attach", "stopped", "thread", "detach", "wall", "frida_attach", "frida_detach")}
        for run in range(bench.runs):
            if target.poll() is not None:
                raise Failed("the target died (status %d) before run %d" % (target.returncode, run + 1))
            result = run_command(argv, env=bench.mrhooker_env)
            m = re.search(r"attached to \d+ in ([0-9.]+) ms \(the process stopped ([0-9.]+) ms, one thread ([0-9.]+) "
                          r"ms\)", result.output)
            d = re.search(r"detached from \d+ in ([0-9.]+) ms", result.output)
            if not m or not d:
                raise Failed("mrhooker trace -p said no timings: %s" % result.output[-600:])
            for key, value in zip(("attach", "stopped", "thread", "detach"), m.groups() + d.groups()):
                samples[key].append(float(value) / 1e3)
            samples["wall"].append(result.seconds - 0.2)   # -D 0.2 s attached
            time.sleep(0.2)
            if frida_python:
                time.sleep(0.2)   # Frida's agent unloads after its detach returns: not while mrhooker attaches
                f = run_command([frida_python, "-c", FRIDA_ATTACH, str(target.pid)], env=bench.env, check=False)
                t = re.search(r"attach ([0-9.]+) detach ([0-9.]+)", f.output)
                if t:
                    samples["frida_attach"].append(float(t.group(1)))
                    samples["frida_detach"].append(float(t.group(2)))
            if target.poll() is not None:
                raise Failed("the target died (status %d) in run %d" % (target.returncode, run + 1))
            log("attach: run %d/%d: %s" % (run + 1, bench.runs, " ".join(
                "%s %.1f ms" % (k, v[-1] * 1e3) for k, v in samples.items() if v)))
    finally:
        target.kill()
        target.wait()
    per_call = {how: [] for how in ("bare", "launched", "attached")}
    write_wait_run(bench, "launched")   # untimed: the build of -c
    for run in range(bench.runs):
        for how in per_call:
            per_call[how].append(write_wait_run(bench, how))
        log("attach: per call, run %d/%d: %s" % (run + 1, bench.runs, " ".join(
            "%s %.1f ns" % (how, v[-1]) for how, v in per_call.items())))
    results = {"objects": objects, **{k: {"seconds": median(v), "samples": v} for k, v in samples.items() if v}}
    results["per_call_ns"] = {how: {"ns": median(v), "samples": v} for how, v in per_call.items()}
    return results


# ---- machine, tables, main -------------------------------------------------------------------------------

def version_of(text):
    """The version number in a tool's --version line ("ltrace version 0.7.3." -> "0.7.3")."""
    match = re.search(r"\d+(?:\.\d+)+", text or "")
    return match.group(0) if match else text


def first_line(argv):
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = proc.stdout.decode(errors="replace").strip()
    return text.splitlines()[0] if text else None


def package_version(name, python=None):
    """A distribution's version, in this Python or in another one (Frida may live in a venv of its own)."""
    if python:
        try:
            proc = subprocess.run([python, "-c", "from importlib.metadata import version; print(version(%r))" % name],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.decode(errors="replace").strip() or None if proc.returncode == 0 else None
    try:
        from importlib import metadata
        return metadata.version(name)
    except Exception:
        return None


def script_interpreter(path):
    """The interpreter of a #! script (frida's: the Python whose frida-tools it runs), or None."""
    try:
        with open(path, "rb") as f:
            line = f.readline(4096).decode(errors="replace")
    except OSError:
        return None
    words = line[2:].split() if line.startswith("#!") else []
    if words and os.path.basename(words[0]) == "env" and len(words) > 1:
        return shutil.which(words[1])
    return words[0] if words else None


def mrhooker_version(src):
    """__version__ of the mrhooker package under test (not the one installed in this Python)."""
    try:
        with open(os.path.join(src, "mrhooker", "__init__.py")) as f:
            match = re.search(r"^__version__ = [\"']([^\"']+)", f.read(), re.M)
        return match.group(1) if match else None
    except OSError:
        return None


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info(bench):
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    commit = first_line(["git", "-C", bench.src, "rev-parse", "--short", "HEAD"])
    dirty = first_line(["git", "-C", bench.src, "status", "--porcelain", "--", "."])
    harness = first_line(["git", "-C", HERE, "rev-parse", "--short", "HEAD"])
    tools = bench.tools
    frida_python = script_interpreter(tools["frida"]) if tools["frida"] else None
    return {
        "cpu": cpu or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": "%s %s" % (platform.python_implementation(), platform.python_version()),
        "python_executable": sys.executable,
        "cython": package_version("Cython"),
        "cc": first_line([tools["cc"], "--version"]) if tools["cc"] else None,
        "mrhooker": mrhooker_version(bench.src),
        "mrhooker_commit": (commit + ("+dirty" if dirty else "")) if commit else None,
        "mrhooker_src": bench.src,
        "harness_commit": harness,
        "frida": first_line([tools["frida"], "--version"]) if tools["frida"] else None,
        "frida_tools": (package_version("frida-tools", frida_python) if frida_python else None)
        or package_version("frida-tools"),
        "ltrace": version_of(first_line([tools["ltrace"], "-V"])) if tools["ltrace"] else None,
        "strace": version_of(first_line([tools["strace"], "-V"])) if tools["strace"] else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def machine_line(m, settings, loads):
    tools = ["frida %s (frida-tools %s)" % (m["frida"], m["frida_tools"]) if m["frida"] else "no frida",
             "ltrace %s" % m["ltrace"] if m["ltrace"] else "no ltrace",
             "strace %s" % m["strace"] if m["strace"] else "no strace"]
    load = "; load average (1 min) before/after each section: %s" % ", ".join(
        "%s %s/%s" % (section, before[0], after[0]) for section, (before, after) in loads.items()
        if before and after) if loads else ""
    return ("Machine: %s, %s cores, Linux %s; %s, Cython %s, %s; %s; mrhooker %s (%s, harness %s); %s; medians "
            "of %d runs%s%s."
            % (m["cpu"], m["cores"], m["kernel"], m["python"], m["cython"], m["cc"], ", ".join(tools),
               m["mrhooker"], m["mrhooker_commit"], m["harness_commit"], m["date"], settings["runs"],
               " (--quick: tiny counts, not real figures)" if settings["quick"] else "", load))


def fmt(value, digits=1, suffix=""):
    if value is None:
        return "–"
    if abs(value) >= 10000:
        return "{:,.0f}{}".format(value, suffix)
    return "{:.{}f}{}".format(value, digits, suffix)


def fmt_ratio(value):
    if value is None:
        return "–"
    if abs(value) >= 100:
        return "{:,.0f}×".format(value)
    return "{:.{}f}×".format(value, 3 if abs(value) < 0.1 else 2)


def not_measured(figure):
    if "skipped" in figure:
        return "skipped: " + figure["skipped"]
    if "error" in figure:
        return "failed: " + figure["error"].splitlines()[0][:120]
    return None


def per_call_table(results, settings):
    lines = ["### Per-call overhead: `int foo(int)` from `libbench.so`, called in a tight loop",
             "",
             "ns per call, timed inside the program (clock_gettime) after 1000 warm-up calls; *added* = hooked "
             "minus unhooked, on the same thread; *× Frida* = added / Frida's added.",
             "",
             "| hook | calls | main thread ns/call | added ns | × Frida | other thread ns/call | added ns | × Frida |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, *_ in PER_CALL_HOOKS:
        figure = results[name]
        missing = not_measured(figure)
        if missing:
            lines.append("| %s | | %s | | | | | |" % (figure["label"], missing))
            continue
        cells = []
        for mode in THREAD_MODES:
            f = figure[mode]
            cells += [fmt(f["ns_per_call"]), fmt(f.get("added_ns")), fmt_ratio(f.get("vs_frida"))]
        lines.append("| %s | %s | %s |" % (figure["label"], "{:,}".format(figure["calls"]), " | ".join(cells)))
    return lines


def startup_table(results, settings):
    lines = ["### Start-up",
             "",
             "Wall time of the whole command on a warm cache, median of %d runs taken round-robin; *added* is over "
             "`/bin/true` bare; *× python* = ms / `python -c pass`'s ms (the same Python as mrhooker's, "
             "`%s`). The per-process and memory figures: medians of %d runs."
             % (settings["startup_runs"], settings.get("python", "python"), settings["runs"]),
             "",
             "| what | ms | added ms | × python |",
             "|---|---:|---:|---:|"]
    for key, figure in results.items():
        missing = not_measured(figure)
        if missing:
            lines.append("| %s | %s | | |" % (figure["label"], missing))
        elif "ms" in figure:
            lines.append("| %s | %s | %s | %s |" % (figure["label"], fmt(figure["ms"]), fmt(figure.get("added_ms")),
                                                    fmt_ratio(figure.get("vs_python"))))
        elif "added_mb" in figure:
            lines.append("| %s | | %s MB | |" % (figure["label"], fmt(figure["added_mb"])))
        else:
            extra = " (%d processes)" % figure["processes"] if "processes" in figure else ""
            lines.append("| %s%s | | %s | |" % (figure["label"], extra, fmt(figure["added_ms"], 2)))
    return lines


def cold_table(results, settings):
    lines = ["### Cold builds",
             "",
             "Wall time of a first run in a fresh, empty cache directory (`XDG_CACHE_HOME`), median of %d: the "
             "system headers' prototypes read, the runtime and the build compiled, then `/bin/true` run. "
             "*mrhooker said*: its own account of the run (stderr)." % settings["cold_runs"],
             "",
             "| first run | s | mrhooker said |",
             "|---|---:|---|"]
    for figure in results.values():
        missing = not_measured(figure)
        if missing:
            lines.append("| %s | %s | |" % (figure["label"], missing))
        else:
            told = " / ".join(line[len("mrhooker: "):] for line in figure.get("said", [])
                              if "warning" not in line) or "(nothing)"
            lines.append("| %s | %s | %s |" % (figure["label"], fmt(figure["ms"] / 1000, 2), told.replace("|", "\\|")))
    return lines


def lines_table(results, settings):
    lines = ["### Trace lines: lines a second, and the stalled ring",
             "",
             "`write_loop N`: N `write(fd, \"x\", 1)` calls to /dev/null (after 1,000 warm-up ones), bare and under "
             "`mrhooker trace -e write -o FILE`, medians of %d runs. *lines/s* = (N + 1,000) / (traced wall time − "
             "bare wall time): how fast the lines are formatted and written, start-up included. *ns/call*: the "
             "program's own cost of a `write()`, its loop timed inside it; when the trace buffer (64 MB) is full "
             "the program waits for the lines, and its cost a call grows: *× first* is the traced ns/call over "
             "its figure at the smallest N." % settings["ring_runs"],
             "",
             "| N calls | bare s | traced s | lines/s | bare ns/call | traced ns/call | × first |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for n in results["counts"]:
        figure = results["by_calls"][str(n)]
        missing = not_measured(figure)
        if missing:
            lines.append("| {:,} | {} | | | | | |".format(n, missing))
            continue
        lines.append("| {:,} | {} | {} | {} | {} | {} | {} |".format(
            n, fmt(figure["bare_seconds"], 2), fmt(figure["traced_seconds"], 2),
            fmt(figure.get("lines_per_second"), 0), fmt(figure["bare_ns_per_call"]),
            fmt(figure["traced_ns_per_call"]), fmt_ratio(figure.get("vs_first"))))
    return lines


def memory_table(results, settings):
    cases = [case for case, _label in MEMORY_CASES]
    head = "| | " + " | ".join(results[case]["label"] for case in cases) + " |"
    lines = ["### Memory",
             "",
             "`foo_wait` calls `foo()` once (with hooks, Python starts in it), then waits; its memory is read from "
             "`/proc/PID/smaps_rollup` and `smaps` meanwhile, medians of %d runs, in MB. *PSS* counts a page shared "
             "by n processes as 1/n in each (libpython's pages are shared with every other process of this Python "
             "on the machine, the harness's too); *private* (Private_Clean + Private_Dirty) is what the process "
             "alone holds, what each more such process costs. By mapping: PSS (private)." % settings["runs"],
             "", head, "|---|" + "---:|" * len(cases)]

    def row(label, get, first=False):
        cells = []
        for case in cases:
            missing = not_measured(results[case])
            if missing:
                cells.append(missing if first else "–")
            else:
                value = get(results[case])
                cells.append("–" if value is None else str(value))
        return "| %s | %s |" % (label, " | ".join(cells))

    mb = lambda kb: fmt(kb / 1024, 2)
    lines.append(row("**PSS**", lambda f: "**%s**" % mb(f["pss_kb"]), first=True))
    lines.append(row("**private**", lambda f: "**%s**" % mb(f["private_kb"])))
    lines.append(row("RSS", lambda f: mb(f["rss_kb"])))
    for kind in MEMORY_KINDS:
        if all(not_measured(results[c]) or not results[c]["by_kind_kb"][kind] for c in cases):
            continue
        lines.append(row(MEMORY_KIND_LABELS[kind], lambda f, k=kind: "%s (%s)" % (
            mb(f["by_kind_kb"][k]), mb(f["private_by_kind_kb"][k])) if f["by_kind_kb"][k] else "–"))
    lines.append(row("copies of libc mapped", lambda f: f["libc_copies"]))
    group = [results[c].get("group") for c in cases]
    processes = next((g["processes"] for g in group if g), None)
    if processes:
        lines.append(row("PSS of %d such processes at once" % processes,
                         lambda f: mb(f["group"]["pss_kb"]) if "group" in f else None))
    return lines


def dd_table(results, settings):
    lines = ["### A real workload: `dd if=/dev/zero of=/dev/null bs=1 count=%d`" % settings["dd_count"],
             "",
             "One `write()` (and one `read()`) per byte. *seconds*: wall time of the whole command, start-up (and "
             "a tracer's formatting of its output) included; *slowdown* = seconds / bare seconds; *dd's own*: the "
             "time dd reports for its copy, i.e. how much the target itself is slowed.",
             "",
             "| run | seconds | slowdown | added µs per write() | dd's own s | dd's own slowdown |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, *_ in DD_RUNS:
        figure = results[name]
        missing = not_measured(figure)
        if missing:
            lines.append("| %s | %s | | | | |" % (figure["label"], missing))
        else:
            lines.append("| %s | %s | %s | %s | %s | %s |" % (
                figure["label"], fmt(figure["seconds"], 3), fmt_ratio(figure.get("slowdown")) if
                "slowdown" in figure else "1×", fmt(figure.get("added_us_per_write"), 2),
                fmt(figure.get("dd_seconds"), 3), fmt_ratio(figure.get("dd_slowdown")) if
                "dd_slowdown" in figure else ("1×" if name == "bare" else "–")))
    return lines


SWEEP_FUNCTIONS = "malloc,read,write,open*"


def sweep_times(bench):
    """`mrhooker sweep -j 2` of `gzip -c` on a 1 MB text file over its malloc, read, write and open sites: the
    whole sweep's wall time (the clean run and the failing runs; the builds before, untimed), and gzip's own."""
    data = os.path.join(bench.tmp, "sweep.txt")
    with open(data, "w") as f:
        size = bench.settings["sweep_bytes"]
        i = 0
        while size > 0:
            line = "%08d some text that compresses, more or less, line after line\n" % i
            f.write(line)
            size -= len(line)
            i += 1
    gzip = shutil.which("gzip")
    if not gzip:
        raise Failed("gzip not found")
    argv = [sys.executable, "-m", "mrhooker", "sweep", "-j", "2", "-e", SWEEP_FUNCTIONS, "--json",
            os.path.join(bench.tmp, "sweep.jsonl"), gzip, "-c", data]
    run_command(argv, env=bench.mrhooker_env)   # untimed: the builds
    walls, bare = [], []
    for run in range(bench.runs):
        bare.append(run_command([gzip, "-c", data], env=bench.env).seconds)
        walls.append(run_command(argv, env=bench.mrhooker_env).seconds)
        log("sweep: run %d/%d: %.2f s (gzip alone %.3f s)" % (run + 1, bench.runs, walls[-1], bare[-1]))
    with open(os.path.join(bench.tmp, "sweep.jsonl")) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    return {"bytes": bench.settings["sweep_bytes"], "runs": len(runs), "kinds": sorted({r["kind"] for r in runs}),
            "wall": {"seconds": median(walls), "samples": walls}, "bare": {"seconds": median(bare), "samples": bare}}


def sweep_table(results, settings):
    wall, runs = results["wall"]["seconds"], results["runs"]
    return ["### `mrhooker sweep`: every %s site of `gzip -c` failed once" % SWEEP_FUNCTIONS.replace(",", ", "), "",
            "A %d kB text file, `-j 2`; medians of %d runs (the builds before them, untimed)." % (
                results["bytes"] // 1000, settings["runs"]), "",
            "| | s |", "|---|---:|",
            "| gzip alone | %s |" % fmt(results["bare"]["seconds"], 3),
            "| the sweep: a clean run and %d failing runs (%s) | %s |" % (runs, ", ".join(results["kinds"]),
                                                                       fmt(wall, 2)),
            "| per failing run (2 at once) | %s |" % fmt(wall / max(runs, 1) * 2, 3)]


def attach_table(results, settings):
    lines = ["### Attaching to a running process (`mrhooker trace -e write -p PID`)", "",
             "A Python process with %d shared objects loaded (extension modules, libcurl). Medians of %d runs; "
             "mrhooker's figures are its own (`-v`), the wall time is the whole command's less its 0.2 s attached "
             "(Python's start, the warm plan, attach, detach)." % (results["objects"], settings["runs"]), "",
             "| | ms |", "|---|---:|"]
    rows = [("attach", "mrhooker: attach (stopping, loading the runtime, patching the GOT slots)"),
            ("stopped", "mrhooker: the process stopped (every thread)"),
            ("thread", "mrhooker: the thread that loads the runtime stopped"),
            ("detach", "mrhooker: detach (every slot put back, answered)"),
            ("wall", "mrhooker: the whole command"),
            ("frida_attach", "Frida: `frida.attach(pid)`"),
            ("frida_detach", "Frida: `session.detach()`")]
    for key, label in rows:
        lines.append("| %s | %s |" % (label, fmt(results[key]["seconds"] * 1e3, 1) if key in results else
                                      "not measured"))
    per_call = results.get("per_call_ns")
    if per_call:
        bare = per_call["bare"]["ns"]
        lines += ["", "Per call once attached: `write()` to /dev/null in a loop, timed inside the program "
                  "(`write_wait`, %d calls), counted with `-c`:" % settings["attach_calls"], "",
                  "| | ns per call | added |", "|---|---:|---:|"]
        for how, label in (("bare", "bare"), ("launched", "`mrhooker trace -c -e write PROGRAM`"),
                           ("attached", "`mrhooker trace -c -e write -p PID`")):
            ns = per_call[how]["ns"]
            lines.append("| %s | %s | %s |" % (label, fmt(ns, 1), "–" if how == "bare" else fmt(ns - bare, 1)))
    return lines


def markdown(report):
    settings = report["settings"]
    lines = []
    for section, table in TABLES.items():
        if section in report:
            lines += table(report[section], settings) + [""]
    lines.append(machine_line(report["machine"], settings, report.get("load", {})))
    return "\n".join(lines) + "\n"


SECTIONS = {"per_call": per_call_overhead, "instructions": instructions_per_call, "startup": startup,
            "cold": cold_builds, "lines": trace_lines, "dd": dd_workload, "memory": memory, "attach": attach_times,
            "sweep": sweep_times}
TABLES = {"per_call": per_call_table, "instructions": instructions_table, "startup": startup_table,
          "cold": cold_table, "lines": lines_table, "dd": dd_table, "memory": memory_table, "attach": attach_table,
          "sweep": sweep_table}


def parse_args(argv):
    parser = argparse.ArgumentParser(description="mrhooker's benchmarks (Markdown tables on stdout).")
    parser.add_argument("--quick", action="store_true", help="tiny counts and one run: checks the harness only")
    parser.add_argument("--json", metavar="FILE", help="also write every figure, with the machine, to FILE")
    parser.add_argument("--runs", type=int, metavar="N", help="runs per figure (default 5; --quick: 1)")
    parser.add_argument("--only", metavar="SECTIONS", default=",".join(SECTIONS),
                        help="comma-separated sections to measure (default: all of %s)" % ",".join(SECTIONS))
    parser.add_argument("--src", metavar="DIR", help="measure the mrhooker package in DIR (another checkout's "
                        "src directory: the figures before a change) instead of this checkout's")
    parser.add_argument("--frida", metavar="PATH", help="the frida program (frida-trace beside it), e.g. in a venv "
                        "of its own (default: beside this Python, else on PATH)")
    parser.add_argument("--without", metavar="PEERS", default="",
                        help="comma-separated peers to leave out (of %s): their rows say so" % ", ".join(PEERS))
    args = parser.parse_args(argv)
    args.without = [x for x in args.without.split(",") if x]
    if set(args.without) - set(PEERS):
        parser.error("--without: unknown peer(s) %s; known: %s" % (", ".join(sorted(set(args.without) - set(PEERS))),
                                                                   ", ".join(PEERS)))
    if args.src and not os.path.isfile(os.path.join(args.src, "mrhooker", "__init__.py")):
        parser.error("--src %s: no mrhooker package there" % args.src)
    args.only = [x for x in args.only.split(",") if x]
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error("unknown section(s) %s; known: %s" % (", ".join(sorted(unknown)), ", ".join(SECTIONS)))
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = dict(QUICK if args.quick else FULL)
    runs = args.runs or settings["runs"]
    if runs < 1:
        raise SystemExit("bench: --runs must be at least 1")
    settings.update(runs=runs, quick=args.quick, python=sys.executable)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="mrhooker-bench-") as tmp:
        os.chmod(tmp, 0o700)
        bench = Bench(tmp, settings, runs, src=args.src, frida=args.frida, without=args.without)
        for tool in ("dd", "sh"):
            if not bench.tools[tool]:
                raise SystemExit("bench: %s not found" % tool)
        log("building the C programs and the hook scripts in %s" % tmp)
        build_c_programs(bench)
        build_hook_scripts(bench)
        log("built")
        report = {"machine": machine_info(bench), "settings": settings, "tools": dict(bench.tools),
                  "peers_skipped": {tool: bench.skipped(tool) for tool in PEERS}}
        report["load"] = {}
        for section in args.only:
            before = load_average()
            report[section] = SECTIONS[section](bench)
            report["load"][section] = (before, load_average())
    report["elapsed_seconds"] = time.time() - started
    text = markdown(report)
    sys.stdout.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    log("done in %.0f s" % report["elapsed_seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
