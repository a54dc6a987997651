"""A test suite no one here wrote passes under hooks and under the tracer as it passes unhooked (issue 15).

CPython's own tests of threads, signals, subprocesses and the system calls around them (Debian's
libpython3.11-testsuite), run by Debian's /usr/bin/python3 (its interpreter linked into the executable: the hooks'
interpreter is the one running mrhooker, in a namespace of its own) four times: unhooked, under pass-through
hooks of clock_gettime, write and free (what CPython calls most: its clocks and GIL waits, its output, its
deallocations), under `mrhooker trace -c` and under a trace of lines (processes, descriptors, signals). Every test
case that passes unhooked must pass in the others; regrtest's workers (-j2) and every Python a test starts are
hooked or traced too.

Why these modules: they are where a runtime inside the target can break it (threads and their exit, fork from a
thread, exec, signal handlers and EINTR, waiting with timeouts, file descriptors, ptys), they are stable on a
loaded 2-core machine, and they take about a minute. Left out: the cases that only wait (see IGNORED), test_socket
(27 s, passes too; its VSOCK cases hang unhooked on a VM with vsock), test_selectors and test_poll (15 s and 11 s
of sleeping; passed too), test_multiprocessing_* and test_asyncio (minutes).

Marked slow (`pytest -m "not slow"` leaves it out); ~2-3 minutes here. Skipped where Debian's testsuite is not
installed (`apt-get install libpython3.11-testsuite`).
"""
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree

import pytest

PYTHON = "/usr/bin/python3"
MODULES = ["test_threading", "test_signal", "test_subprocess", "test_eintr", "test_os", "test_posix", "test_fcntl",
           "test_select", "test_time", "test_thread", "test_threadsignals", "test_pty", "test_faulthandler"]
IGNORED = [
    "test_siginterrupt_off",          # waits 30 s for a signal that must not interrupt it
    "*.test_check_output_timeout",    # three waits of 3 s for a timeout
    "test_dump_traceback_later*",     # faulthandler's timers: 15 s of waiting
]
JOBS = 2                 # regrtest's worker processes (hooked or traced too): most of the time is waiting
PER_TEST_TIMEOUT = 300   # regrtest's own, per test module: dumps the tracebacks and fails the module
RUN_TIMEOUT = 900        # the whole run, in case regrtest itself hangs

# {(test id, mode): why}: differences known and being fixed elsewhere, left out of the comparison. None now.
KNOWN = {}

PASSTHROUGH = """\
import atexit, os
from mrhooker import hook
calls = {"clock_gettime": 0, "write": 0, "free": 0}

@hook("clock_gettime", blocks=False)
def clock_gettime(clock, ts):
    calls["clock_gettime"] += 1
    return clock_gettime.original(clock, ts)

@hook("write")
def write(fd, buf, n):
    calls["write"] += 1
    return write.original(fd, buf, n)

@hook("free", blocks=False)
def free(p):
    calls["free"] += 1
    return free.original(p)

atexit.register(lambda: print("hooked", os.getpid(), calls["clock_gettime"], calls["write"], calls["free"]))
"""


def missing_testsuite():
    if not os.path.exists(PYTHON):
        return "no Debian python3 at %s" % PYTHON
    r = subprocess.run([PYTHON, "-c", "import test.libregrtest, test.test_threading"], capture_output=True)
    return "Debian's CPython testsuite is not installed (libpython3.11-testsuite)" if r.returncode else None


MISSING = missing_testsuite()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(MISSING is not None, reason=str(MISSING))]


def outcomes(xml_path):
    """{test id: "pass" | "fail" | "skip"} from regrtest's JUnit XML."""
    result = {}
    for case in ElementTree.parse(xml_path).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        result[case.get("name")] = ("fail" if kinds & {"failure", "error"} else "skip" if "skipped" in kinds
                                    else "pass")
    return result


class Run:
    def __init__(self, mode, outcomes, seconds, log):
        self.mode, self.outcomes, self.seconds, self.log = mode, outcomes, seconds, log

    def counts(self):
        counts = {}
        for outcome in self.outcomes.values():
            counts[outcome] = counts.get(outcome, 0) + 1
        return counts


def regrtest(prefix, mode, workdir, env):
    """Runs the modules under prefix (a command line ending where the target's starts); a Run."""
    xml = workdir / ("%s.xml" % mode)
    tmp = workdir / ("%s-tmp" % mode)
    tmp.mkdir()
    command = [str(a) for a in prefix] + [PYTHON, "-m", "test", "-j", str(JOBS), "--timeout", str(PER_TEST_TIMEOUT), "--junit-xml",
                                          str(xml), "--tempdir", str(tmp)]
    for pattern in IGNORED:
        command += ["-i", pattern]
    start = time.monotonic()
    proc = subprocess.run(command + MODULES, env=env, cwd=str(workdir), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT)
    seconds = time.monotonic() - start
    log = proc.stdout.decode(errors="replace")
    assert xml.exists(), "regrtest (%s) wrote no results, status %s:\n%s" % (mode, proc.returncode, log[-5000:])
    run = Run(mode, outcomes(xml), seconds, log)
    print("%-8s %6.1f s  %s" % (mode, seconds, run.counts()))
    return run


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cpython-suite")


@pytest.fixture(scope="module")
def unhooked_run(base_env, workdir):
    run = regrtest([], "unhooked", workdir, base_env)
    assert run.counts().get("pass", 0) > 500, run.log[-5000:]
    return run


def assert_same_tests_pass(unhooked, other):
    lost = sorted(name for name, outcome in unhooked.outcomes.items()
                  if outcome == "pass" and other.outcomes.get(name) != "pass"
                  and (name, other.mode) not in KNOWN)
    assert not lost, "%d test(s) pass unhooked but not %s: %s\n%s" % (
        len(lost), other.mode, ", ".join(lost), other.log[-8000:])
    print("%s: %.1f s, unhooked %.1f s" % (other.mode, other.seconds, unhooked.seconds))


def test_cpython_tests_pass_under_passthrough_hooks(unhooked_run, base_env, workdir):
    hooks = workdir / "passthrough.py"
    hooks.write_text(PASSTHROUGH)
    output = workdir / "hook-output.txt"
    run = regrtest([sys.executable, "-m", "mrhooker", "-o", output, hooks], "hooks", workdir, base_env)
    assert_same_tests_pass(unhooked_run, run)
    text = output.read_text()
    assert "Traceback" not in text and "mrhooker:" not in text, text[-5000:]
    # The hooks ran: in regrtest itself and in the Pythons its tests start, every function was called.
    reports = [line.split() for line in text.splitlines() if line.startswith("hooked ")]
    assert len(reports) > 100 and any(all(int(n) > 0 for n in r[2:]) for r in reports), text[-5000:]


def test_cpython_tests_pass_under_trace_c(unhooked_run, base_env, workdir):
    summary = workdir / "summary.txt"
    run = regrtest([sys.executable, "-m", "mrhooker", "trace", "-c", "-o", summary], "trace -c", workdir, base_env)
    assert_same_tests_pass(unhooked_run, run)
    table = summary.read_text()
    counted = {line.split()[-1]: int(line.split()[3]) for line in table.splitlines()[2:]
               if len(line.split()) >= 5 and line.split()[3].isdigit()}
    for function in ("clock_gettime", "fork", "execv", "waitpid", "write", "read", "pthread_create"):
        assert counted.get(function, 0) > 0, (function, table)


def test_cpython_tests_pass_under_a_trace_of_lines(unhooked_run, base_env, workdir):
    lines = workdir / "trace.txt"
    run = regrtest([sys.executable, "-m", "mrhooker", "trace", "-o", lines, "-e", "%process,%desc,%signal"],
                   "trace -o", workdir, base_env)
    assert_same_tests_pass(unhooked_run, run)
    with open(lines, errors="replace") as f:
        names = {line.split("] ", 1)[-1].split("(", 1)[0] for line in f}
    for function in ("fork", "execv", "waitpid", "write", "read", "pthread_create", "kill", "pthread_sigmask"):
        assert function in names, (function, sorted(names)[:100])
