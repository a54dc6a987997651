#!/usr/bin/env python3
"""mrhooker's benchmarks, against a hand-written C LD_PRELOAD wrapper, Frida, ltrace and strace.

    python benchmarks/run.py [--quick] [--json FILE] [--runs N]

Builds everything it needs in a temporary directory (the C programs of benchmarks/c, libbench.so, the hook
scripts of benchmarks/hooks in a build directory of its own), measures, and prints Markdown tables on stdout
(progress goes to stderr). Every figure is the median of several runs, and every ratio compares figures
measured in this same run. A peer that is not installed is skipped, and the tables say so.

  per call   foo_loop calls foo() from libbench.so in a tight loop and times the loop itself
             (clock_gettime), after 1000 warm-up calls; "added" is hooked minus unhooked ns/call. Every hooked
             run is checked to have gone through the hook for every call (the hooks count the calls).
  start-up   wall time of whole commands: /bin/true bare and under mrhooker, the cost of the preload library in
             every exec'd process, Python's start at the first hooked call, cold builds, Frida's spawn.
  dd         dd bs=1 (one write() per byte) bare, and with write() hooked or traced: the slowdown over bare.

--quick uses tiny counts and one run, to check that the harness works (tests/test_benchmarks_smoke.py).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
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
    # trace: as many records as its 64 MB buffer holds while the loop runs (more: the loop waits for mrhooker)
    "calls": {"fast": 50_000_000, "gil": 5_000_000, "python": 2_000_000, "frida": 2_000_000, "ltrace": 2_000,
              "trace": 500_000},
    "startup_runs": 20,          # start-up figures of a few ms: many runs are cheap
    "exec_loop": 100,            # /bin/true processes in the sh loop
    "dd_count": 200_000,
    "runs": 5,
}
QUICK = {
    "calls": {"fast": 100_000, "gil": 20_000, "python": 10_000, "frida": 10_000, "ltrace": 100, "trace": 10_000},
    "startup_runs": 3,
    "exec_loop": 10,
    "dd_count": 2_000,
    "runs": 1,
}


PEERS = ("frida", "frida-trace", "ltrace", "strace")


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
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

def find_tools():
    """Paths of the peers (None: not installed). Frida's are taken from this Python's bin directory when they
    are there: pyenv's shims on PATH would add ~50 ms to every spawn."""
    bindir = os.path.dirname(sys.executable)

    def beside_python(name):
        path = os.path.join(bindir, name)
        return path if os.access(path, os.X_OK) else shutil.which(name)

    return {"frida": beside_python("frida"), "frida-trace": beside_python("frida-trace"),
            "ltrace": shutil.which("ltrace"), "strace": shutil.which("strace"), "dd": shutil.which("dd"),
            "sh": shutil.which("sh"), "cc": shutil.which(os.environ.get("CC", "cc"))}


class Bench:
    """The temporary directory with everything built, the environments, the tools, the settings."""

    def __init__(self, tmp, settings, runs):
        self.tmp = tmp
        self.settings = settings
        self.runs = runs
        self.tools = find_tools()
        self._usable = {}   # tool -> None (usable) or why not; see skipped()
        self.build_dir = os.path.join(tmp, "mrhooker-builds")
        os.mkdir(self.build_dir, 0o700)
        self.env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("MRHOOKER_")}
        # mrhooker sees no user config, and the package under test is this checkout's.
        config = os.path.join(tmp, "empty.config")
        open(config, "w").close()
        self.mrhooker_env = dict(self.env, MRHOOKER_CONFIG=config, XDG_CACHE_HOME=os.path.join(tmp, "cache"))
        src = os.path.join(REPO, "src")
        self.mrhooker_env["PYTHONPATH"] = src + (os.pathsep + self.env["PYTHONPATH"]
                                                 if self.env.get("PYTHONPATH") else "")
        self.lib_dir = os.path.join(tmp, "lib")
        os.mkdir(self.lib_dir)
        self.libbench = self.foo_loop = self.c_wrapper = None

    def mrhooker(self, script, *command, build_dir=None):
        """argv running COMMAND under mrhooker with SCRIPT, as `python -m mrhooker` (no shim, no wrapper)."""
        return [sys.executable, "-m", "mrhooker", "--build-dir", build_dir or self.build_dir, script] + list(command)

    def skipped(self, tool):
        """Why a peer is skipped (not installed, or unusable here), or None."""
        if not self.tools.get(tool):
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
        argv = [path, "-q", "-f", "/bin/true"]
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
    works = "Process terminated" in text if tool == "frida-trace" else proc.returncode == 0
    if works:
        return None
    return "%s cannot run here: %s" % (tool, (text.strip().splitlines() or ["status %d" % proc.returncode])[-1][:160])


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


def hook_script(name):
    return os.path.join(HOOKS_DIR, name)


MRHOOKER_SCRIPTS = ("foo_nogil.pyx", "foo_withgil.pyx", "foo_py.py", "foo_py_nonblocking.py", "write_withgil.pyx", "write_py.py",
                    "startup_hooks.pyx", "startup_hooks.py")


def build_hook_scripts(bench):
    """Builds every mrhooker script once (running /bin/true), two at a time, so that measurements find a
    warm cache."""
    from concurrent.futures import ThreadPoolExecutor

    def build(name):
        run_command(bench.mrhooker(hook_script(name), "/bin/true"), env=bench.mrhooker_env)

    with ThreadPoolExecutor(2) as pool:
        for job in [pool.submit(build, name) for name in MRHOOKER_SCRIPTS]:
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


def foo_loop_trace(bench, calls, mode, summary=False, armed=False):
    """`mrhooker trace -e 'int foo(int x)'`: every call recorded (lines to a file), or only counted (-c); armed:
    with an --inject rule on foo that no call meets (its cost when it doesn't inject)."""
    out = os.path.join(bench.tmp, "trace-foo.txt")
    argv = [sys.executable, "-m", "mrhooker", "trace", "--build-dir", bench.build_dir, "-e", "int foo(int x)",
            "-o", out] + (["-c"] if summary else []) + (["--inject", "foo:error=EIO:when=4000000000"] if armed else [])
    argv += [bench.foo_loop, str(calls), mode]
    result = run_command(argv, env=bench.mrhooker_env)
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
    # -t: without a timeout, `frida -q` unloads the script as soon as it is loaded, and the loop runs unhooked.
    result = run_command([bench.tools["frida"], "-q", "-t", "3600", "-l", hook_script("foo_frida.js"),
                          "-f", bench.foo_loop, str(calls), mode, str(FRIDA_SETTLE_MS)], env=bench.env)
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
INSTRUCTION_CALLS = (2000, 12000)


def instructions_per_call(bench):
    """Instructions per call of foo() under each hook, counted by valgrind's callgrind: the same for the same
    code whatever else the machine does (timings here vary by tens of percent), so the figure to compare a
    change with. (The difference between two call counts, so start-up is not counted.)"""
    if not shutil.which("valgrind"):
        return {"skipped": "valgrind is not installed"}
    results = {}
    for name, label, hooks in INSTRUCTION_HOOKS:
        if hooks is None:
            env = bench.env
        elif hooks.startswith("trace"):
            env = None   # traced: valgrind runs under `mrhooker trace`, which makes the trace file
        elif hooks == "c_wrapper":
            env = dict(bench.env, LD_PRELOAD=bench.c_wrapper)
        else:
            env = hooked_environment(bench, hook_script(hooks))
        counts = []
        for calls in INSTRUCTION_CALLS:
            argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", bench.foo_loop, str(calls)]
            if env is None:
                argv = [sys.executable, "-m", "mrhooker", "trace", "--build-dir", bench.build_dir, "-e",
                        "int foo(int x)", "-o", os.devnull] + hooks.split()[1:] + argv
            result = run_command(argv, env=env or bench.mrhooker_env)
            match = re.search(r"Collected : (\d+)", result.stderr)
            if not match:
                raise Failed("callgrind counted nothing: %s" % result.stderr[-600:])
            counts.append(int(match.group(1)))
        per_call = (counts[1] - counts[0]) / (INSTRUCTION_CALLS[1] - INSTRUCTION_CALLS[0])
        results[name] = {"label": label, "instructions": per_call}
        log("instructions: %-24s %8.1f per call" % (name, per_call))
    base = results["none"]["instructions"]
    for figure in results.values():
        figure["added"] = figure["instructions"] - base
    return results


def instructions_table(results, settings):
    lines = ["### Instructions per call (callgrind)", "",
             "`int foo(int)` called in a loop, instructions counted by valgrind's callgrind: the same for the same code "
             "whatever the machine does, so the figure to compare a change with.", "",
             "| hook | instructions per call | added |", "|---|---:|---:|"]
    if "skipped" in results:
        return lines + ["| (%s) | | |" % results["skipped"]]
    for figure in results.values():
        lines.append("| %s | %s | %s |" % (figure["label"], fmt(figure["instructions"]), fmt(figure["added"])))
    return lines


# ---- start-up -----------------------------------------------------------------------------------------

def median_ms(bench, argv, env, runs, cwd=None):
    samples = [run_command(argv, env=env, cwd=cwd).seconds * 1000 for _ in range(runs)]
    return {"ms": median(samples), "samples": samples}


def true_bare(bench):
    return median_ms(bench, ["/bin/true"], bench.env, bench.settings["startup_runs"])


def python_start(bench, *options):
    """This Python starting and doing nothing: the part of mrhooker's start-up that is Python's own."""
    return median_ms(bench, [sys.executable] + list(options) + ["-c", "pass"], bench.env,
                     bench.settings["startup_runs"])


def true_under_mrhooker_module(bench):
    """`python -m mrhooker` with this Python's real executable: what mrhooker's own start-up costs."""
    figure = median_ms(bench, bench.mrhooker(hook_script("startup_hooks.pyx"), "/bin/true"), bench.mrhooker_env,
                       bench.settings["startup_runs"])
    figure["command"] = "%s -m mrhooker startup_hooks.pyx /bin/true" % sys.executable
    return figure


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


def true_under_mrhooker_script(bench, path):
    argv = [path, "--build-dir", bench.build_dir, hook_script("startup_hooks.pyx"), "/bin/true"]
    figure = median_ms(bench, argv, bench.mrhooker_env, bench.settings["startup_runs"])
    figure["command"] = "%s startup_hooks.pyx /bin/true" % path
    return figure


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


def cold_build(bench, script, runtime_compiled):
    """`mrhooker --build-dir FRESH SCRIPT /bin/true` with nothing built yet. runtime_compiled: another script
    of the same kind was built in that directory first (untimed), so mrhooker's runtime objects (compiled
    once per build directory) are there and only the script itself is built."""
    samples = []
    for _ in range(bench.runs):
        build_dir = tempfile.mkdtemp(prefix="cold-", dir=bench.tmp)
        if runtime_compiled:
            other = os.path.join(tempfile.mkdtemp(prefix="other-", dir=bench.tmp),
                                 "other_" + os.path.basename(script))
            shutil.copy(hook_script(script), other)
            run_command(bench.mrhooker(other, "/bin/true", build_dir=build_dir), env=bench.mrhooker_env)
        result = run_command(bench.mrhooker(hook_script(script), "/bin/true", build_dir=build_dir),
                             env=bench.mrhooker_env)
        samples.append(result.seconds * 1000)
        shutil.rmtree(build_dir, ignore_errors=True)
    return {"ms": median(samples), "samples": samples}


def frida_spawn_true(bench):
    """`frida -q -f /bin/true` with an empty script: spawning, injecting the agent, loading the script."""
    empty = os.path.join(bench.tmp, "empty.js")
    open(empty, "w").close()
    figure = median_ms(bench, [bench.tools["frida"], "-q", "-t", "3600", "-l", empty, "-f", "/bin/true"],
                       bench.env, bench.settings["startup_runs"])
    return figure


def line_count(path):
    with open(path) as f:
        return sum(1 for _ in f)


def startup(bench):
    results = {}

    def measure(key, label, func, *args, tool=None):
        reason = bench.skipped(tool) if tool else None
        if reason:
            results[key] = {"label": label, "skipped": reason}
            return
        log("start-up: %s" % key)
        try:
            results[key] = dict(func(bench, *args), label=label)
        except Failed as e:
            log("start-up: %s failed: %s" % (key, e))
            results[key] = {"label": label, "error": str(e)}

    measure("true_bare", "`/bin/true` bare", true_bare)
    measure("python_start", "for reference: `python -c pass`", python_start)
    measure("python_start_no_site", "for reference: `python -S -c pass` (no site import)", python_start, "-S")
    measure("true_mrhooker_module", "`python -m mrhooker startup_hooks.pyx /bin/true`, warm cache",
            true_under_mrhooker_module)
    for key, (what, path) in installed_mrhooker_scripts().items():
        measure("true_" + key, "`mrhooker startup_hooks.pyx /bin/true` (%s `%s`), warm cache" % (what, path),
                true_under_mrhooker_script, path)
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
    measure("cold_build_pyx", "cold build of a %d-line `.pyx` (runtime compiled too), then `/bin/true`"
            % line_count(hook_script("startup_hooks.pyx")),
            cold_build, "startup_hooks.pyx", False)
    measure("cold_build_pyx_script_only", "cold build of the `.pyx`, runtime already compiled",
            cold_build, "startup_hooks.pyx", True)
    measure("cold_build_py", "cold build of a %d-line `.py` (runtime compiled too), then `/bin/true`"
            % line_count(hook_script("startup_hooks.py")),
            cold_build, "startup_hooks.py", False)
    measure("cold_build_py_script_only", "cold build of the `.py`, runtime already compiled",
            cold_build, "startup_hooks.py", True)
    measure("frida_spawn_true", "`frida -q -l empty.js -f /bin/true`", frida_spawn_true, tool="frida")
    bare = results["true_bare"].get("ms")
    for key, figure in results.items():
        if key != "true_bare" and "ms" in figure and bare is not None and not key.startswith("cold_build"):
            figure["added_ms"] = figure["ms"] - bare
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
    result = run_command([bench.tools["frida"], "-q", "-t", "3600", "-l", hook_script("write_frida.js"), "-f"]
                         + dd_command(bench), env=bench.env)
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
    if any(name == "frida_trace" for name, _l, _m in active):
        try:
            dd_frida_trace(bench)   # makes frida-trace's handler file, untimed
        except Failed:
            pass                    # the timed runs will say what is wrong
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


def package_version(name):
    try:
        from importlib import metadata
        return metadata.version(name)
    except Exception:
        return None


def machine_info(bench):
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    commit = first_line(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = first_line(["git", "-C", REPO, "status", "--porcelain", "--", "src"])
    tools = bench.tools
    return {
        "cpu": cpu or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": "%s %s" % (platform.python_implementation(), platform.python_version()),
        "python_executable": sys.executable,
        "cython": package_version("Cython"),
        "cc": first_line([tools["cc"], "--version"]) if tools["cc"] else None,
        "mrhooker": package_version("mrhooker"),
        "mrhooker_commit": (commit + ("+dirty" if dirty else "")) if commit else None,
        "frida": first_line([tools["frida"], "--version"]) if tools["frida"] else None,
        "frida_tools": package_version("frida-tools"),
        "ltrace": version_of(first_line([tools["ltrace"], "-V"])) if tools["ltrace"] else None,
        "strace": version_of(first_line([tools["strace"], "-V"])) if tools["strace"] else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def machine_line(m, settings):
    tools = ["frida %s (frida-tools %s)" % (m["frida"], m["frida_tools"]) if m["frida"] else "no frida",
             "ltrace %s" % m["ltrace"] if m["ltrace"] else "no ltrace",
             "strace %s" % m["strace"] if m["strace"] else "no strace"]
    return ("Machine: %s, %s cores, Linux %s; %s, Cython %s, %s; %s; mrhooker %s (%s); %s; medians of %d runs%s."
            % (m["cpu"], m["cores"], m["kernel"], m["python"], m["cython"], m["cc"], ", ".join(tools),
               m["mrhooker"], m["mrhooker_commit"], m["date"], settings["runs"],
               " (--quick: tiny counts, not real figures)" if settings["quick"] else ""))


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
             "Wall time of the whole command, median of %d runs (%d for the per-process, build and dd "
             "figures); *added* is over `/bin/true` bare, or over the same command bare."
             % (settings["startup_runs"], settings["runs"]),
             "",
             "| what | ms | added ms |",
             "|---|---:|---:|"]
    for key, figure in results.items():
        missing = not_measured(figure)
        if missing:
            lines.append("| %s | %s | |" % (figure["label"], missing))
        elif "ms" in figure:
            lines.append("| %s | %s | %s |" % (figure["label"], fmt(figure["ms"]), fmt(figure.get("added_ms"))))
        elif "added_mb" in figure:
            lines.append("| %s | | %s MB |" % (figure["label"], fmt(figure["added_mb"])))
        else:
            extra = " (%d processes)" % figure["processes"] if "processes" in figure else ""
            lines.append("| %s%s | | %s |" % (figure["label"], extra, fmt(figure["added_ms"], 2)))
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


def markdown(report):
    settings = report["settings"]
    lines = []
    for section, table in (("per_call", per_call_table), ("instructions", instructions_table),
                           ("startup", startup_table), ("dd", dd_table)):
        if section in report:
            lines += table(report[section], settings) + [""]
    lines.append(machine_line(report["machine"], settings))
    return "\n".join(lines) + "\n"


SECTIONS = {"per_call": per_call_overhead, "instructions": instructions_per_call, "startup": startup,
            "dd": dd_workload}


def parse_args(argv):
    parser = argparse.ArgumentParser(description="mrhooker's benchmarks (Markdown tables on stdout).")
    parser.add_argument("--quick", action="store_true", help="tiny counts and one run: checks the harness only")
    parser.add_argument("--json", metavar="FILE", help="also write every figure, with the machine, to FILE")
    parser.add_argument("--runs", type=int, metavar="N", help="runs per figure (default 5; --quick: 1)")
    parser.add_argument("--only", metavar="SECTIONS", default=",".join(SECTIONS),
                        help="comma-separated sections to measure (default: all of %s)" % ",".join(SECTIONS))
    args = parser.parse_args(argv)
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
    settings.update(runs=runs, quick=args.quick)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="mrhooker-bench-") as tmp:
        os.chmod(tmp, 0o700)
        bench = Bench(tmp, settings, runs)
        for tool in ("dd", "sh"):
            if not bench.tools[tool]:
                raise SystemExit("bench: %s not found" % tool)
        log("building the C programs and the hook scripts in %s" % tmp)
        build_c_programs(bench)
        build_hook_scripts(bench)
        report = {"machine": machine_info(bench), "settings": settings, "tools": dict(bench.tools),
                  "peers_skipped": {tool: bench.skipped(tool) for tool in PEERS}}
        for section in args.only:
            report[section] = SECTIONS[section](bench)
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
