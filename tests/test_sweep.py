"""`mrhooker sweep`: each call site failed once, the runs classified and grouped by site, on a C program with
deliberate bugs and on real programs; its reproduce commands reproduce. Every run has a timeout."""
import json
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from helpers import RUN_TIMEOUT, scaled

SWEEP_TIMEOUT = scaled(300)

# Crashes when its 3rd malloc fails (copy() doesn't check); ignores a failed write.
BUGGY_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static char *copy(const char *s)
{
    char *p = malloc(strlen(s) + 1);
    strcpy(p, s);
    return p;
}
int main(void)
{
    char *a = malloc(16);
    if (!a) { fprintf(stderr, "out of memory\n"); return 3; }
    char *b = malloc(16);
    if (!b) { fprintf(stderr, "out of memory\n"); return 3; }
    char *c = copy("third");
    write(1, c, strlen(c));
    write(1, "\n", 1);
    free(a);
    free(b);
    free(c);
    return 0;
}
"""

# malloc from two places, each in a loop: two sites, however many calls.
TWO_LOOPS_C = r"""
#include <stdio.h>
#include <stdlib.h>
static void *first(size_t n) { return malloc(n); }
static void *second(size_t n) { return malloc(n); }
int main(void)
{
    for (int i = 0; i < 1000; i++) free(first(16));
    for (int i = 0; i < 500; i++) {
        void *p = second(32);
        if (!p) { fprintf(stderr, "second: no memory\n"); return 4; }
        free(p);
    }
    return 0;
}
"""

# Writes into the directory it is given, then reads it back: runs in parallel must not share it.
OWN_DIRECTORY_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/out", argv[1]);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);   /* O_EXCL: a shared directory fails here */
    if (fd < 0) { perror("open"); return 5; }
    if (write(fd, "data\n", 5) != 5) { perror("write"); return 6; }
    close(fd);
    char buf[16] = {0};
    fd = open(path, O_RDONLY);
    if (fd < 0 || read(fd, buf, sizeof buf) != 5) { perror("read back"); return 7; }
    fputs(buf, stdout);
    return 0;
}
"""

# Waits for ever once a read fails (for the reply it never asked again): a hang.
WAITS_C = r"""
#include <unistd.h>
int main(void)
{
    char c;
    if (read(0, &c, 1) < 0)
        for (;;) pause();
    return 0;
}
"""


def sweep(mrhooker, *args, **kwargs):
    kwargs.setdefault("timeout", SWEEP_TIMEOUT)
    return mrhooker("sweep", *args, **kwargs)


def runs_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def reproduce(base_env, command, timeout=RUN_TIMEOUT):
    """Runs a report's reproduce command (`mrhooker trace ...`) as the user would, through this Python."""
    argv = shlex.split(command)
    assert argv[:2] == ["mrhooker", "trace"], command
    return subprocess.run([sys.executable, "-m", "mrhooker"] + argv[1:], env=base_env, capture_output=True,
                          text=True, timeout=timeout)


def test_the_crash_and_the_ignored_write_are_found_at_their_sites(mrhooker, cprog, tmp_path, base_env):
    prog = cprog(BUGGY_C, flags=["-g", "-O0"])
    out = tmp_path / "runs.jsonl"
    r = sweep(mrhooker, "-e", "malloc,write", "--json", out, prog)
    assert r.returncode == 1, r   # a run crashed
    runs = runs_of(out)
    assert sorted((run["function"], run["call"], run["kind"]) for run in runs) == [
        ("malloc", 1, "handled"), ("malloc", 2, "handled"), ("malloc", 3, "crash"),
        ("write", 1, "output"), ("write", 2, "output")], runs
    crash = next(run for run in runs if run["kind"] == "crash")
    assert crash["detail"] == "SIGSEGV" and crash["object"] == prog, crash
    # the site is the call in copy(), on its source line
    assert re.fullmatch(r"prog-\w+\+0x[0-9a-f]+ \(copy\+0x[0-9a-f]+, prog-\w+\.c:8\)", crash["site"]), crash
    assert crash["failed_at"] == crash["site"], crash
    handled = [run for run in runs if run["kind"] == "handled"]
    assert all(run["detail"] == "status 3: out of memory" for run in handled), handled
    assert len({run["site"] for run in runs}) == 5, runs
    # the report: the crash first, with a command that reproduces it
    report = [line for line in r.err.splitlines() if not line.startswith("mrhooker:")]
    assert report[0] == "clean run: status 0, 5 sites of 2 functions, 5 failing runs", r.err
    assert report[1].startswith("crash   malloc call 3 at ") and report[1].endswith(": SIGSEGV"), r.err
    assert report[2] == "        reproduce: " + crash["reproduce"], r.err
    assert report[-1] == "crash 1, output 2, handled 2", r.err
    again = reproduce(base_env, crash["reproduce"])
    assert again.returncode == 139 and "+++ killed by SIGSEGV +++" in again.stderr, again
    assert re.search(r"^malloc\(6\) = NULL ENOMEM \(Cannot allocate memory\) \(INJECTED\)$", again.stderr, re.M), \
        again.stderr


def test_calls_from_one_place_in_a_loop_are_one_site(mrhooker, cprog, tmp_path):
    prog = cprog(TWO_LOOPS_C, flags=["-g", "-O0"])
    out = tmp_path / "runs.jsonl"
    r = sweep(mrhooker, "-e", "malloc", "--json", out, prog)
    assert r.returncode == 0, r
    runs = runs_of(out)
    sites = sorted((run["site"].split(" (")[1].split("+")[0], run["call"], run["kind"]) for run in runs)
    assert sites == [("first", 1, "silent"), ("second", 1001, "handled")], runs
    assert "2 sites of 1 function, 2 failing runs" in r.err, r.err
    # --all: every call of every site; --limit cuts the runs short
    r = sweep(mrhooker, "-e", "malloc", "--all", "--limit", "7", "--json", out, prog)
    assert r.returncode == 0 and [run["call"] for run in runs_of(out)] == list(range(1, 8)), r


def test_parallel_runs_keep_their_traces_and_directories_apart(mrhooker, cprog, tmp_path):
    prog = cprog(OWN_DIRECTORY_C)
    out = tmp_path / "runs.jsonl"
    r = sweep(mrhooker, "-j", "4", "-e", "open,write,read,close", "--json", out, prog, "{}")
    assert r.returncode == 0, r
    runs = runs_of(out)
    assert len(runs) >= 5, runs
    for run in runs:
        # each run failed its own site's call (a mixed-up trace would name another), and found its directory empty
        assert run["failed_at"] == run["site"], run
        assert run["kind"] != "crash" and "File exists" not in run["detail"], run
    kinds = {(run["function"], run["call"]): run["kind"] for run in runs}
    assert kinds[("open", 1)] == "handled" and kinds[("write", 1)] == "handled", runs


def test_a_run_that_never_ends_is_a_hang_and_is_stopped(mrhooker, cprog, tmp_path):
    prog = cprog(WAITS_C)
    data = tmp_path / "input"
    data.write_text("")
    out = tmp_path / "runs.jsonl"
    r = sweep(mrhooker, "-e", "read", "--timeout", "2", "--input", data, "--json", out, prog)
    assert r.returncode == 1, r
    (run,) = runs_of(out)
    assert run["kind"] == "hang" and run["reproduce"].endswith(" < " + str(data)), run
    assert subprocess.run(["pgrep", "-f", prog], capture_output=True).stdout == b"", "a swept run is left running"


# Once a read fails, leaves a daemon (a session of its own, out of the run's group) holding its output.
LEAVES_A_DAEMON_C = r"""
#include <unistd.h>
int main(void)
{
    char c;
    if (read(0, &c, 1) < 0 && fork() == 0) {
        setsid();
        sleep(100);
        _exit(0);
    }
    return 0;
}
"""


def test_a_daemon_holding_a_runs_output_does_not_hold_the_sweep(mrhooker, cprog, tmp_path):
    prog = cprog(LEAVES_A_DAEMON_C)
    data = tmp_path / "input"
    data.write_text("x")
    out = tmp_path / "runs.jsonl"
    try:
        r = sweep(mrhooker, "-e", "read", "--timeout", "2", "--input", data, "--json", out, prog, timeout=scaled(60))
        assert r.returncode == 1, r
        (run,) = runs_of(out)
        assert run["kind"] == "hang" and run["detail"] == "no end in 2 s", run   # the stopping's 5 s not in it
    finally:
        subprocess.run(["pkill", "-KILL", "-f", "^" + prog], timeout=RUN_TIMEOUT)   # the daemon, beyond reach


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="sqlite3 is not installed")
def test_sqlite3_every_crash_reproduces(mrhooker, tmp_path, base_env):
    script = tmp_path / "q.sql"
    script.write_text("create table t(x);\ninsert into t values(1),(2);\nselect sum(x) from t;\n")
    out = tmp_path / "runs.jsonl"
    r = sweep(mrhooker, "-j", "2", "--input", script, "--json", out, "sqlite3", ":memory:")
    assert r.returncode in (0, 1), r
    runs = runs_of(out)
    assert runs and all(run["kind"] in ("crash", "hang", "output", "exit", "handled", "silent") for run in runs)
    assert ("silent" in {run["kind"] for run in runs}), runs
    for run in runs:
        if run["kind"] == "crash":
            command, _, stdin = run["reproduce"].partition(" < ")
            with open(stdin) as f:
                again = subprocess.run([sys.executable, "-m", "mrhooker"] + shlex.split(command)[1:],
                                       env=base_env, stdin=f, capture_output=True, text=True, timeout=RUN_TIMEOUT)
            assert "+++ killed by %s +++" % run["detail"] in again.stderr, (run, again.stderr[-2000:])


def test_gzip_survives_every_single_failure(mrhooker, tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("".join("line %d of some text to compress\n" % i for i in range(20000)))
    out = tmp_path / "runs.jsonl"
    r = sweep(mrhooker, "-j", "2", "--json", out, "gzip", "-c", data)
    assert r.returncode == 0, r
    runs = runs_of(out)
    assert {run["function"] for run in runs} >= {"read", "write"}, runs
    assert not [run for run in runs if run["kind"] in ("crash", "hang")], runs


def test_the_testing_api_gives_the_runs(cprog, base_env):
    from mrhooker import testing
    prog = cprog(BUGGY_C, flags=["-g", "-O0"])
    runs = testing.sweep([prog], functions=["malloc"], run_timeout=scaled(30), timeout=SWEEP_TIMEOUT, env=base_env)
    assert [(run.kind, run.call) for run in sorted(runs, key=lambda run: run.call)] == [
        ("handled", 1), ("handled", 2), ("crash", 3)], runs
    with pytest.raises(testing.MrhookerRunError, match="--errno takes an errno name"):
        testing.sweep([prog], functions=["malloc"], errno="nomem", timeout=SWEEP_TIMEOUT, env=base_env)


@pytest.mark.parametrize("args, message", [
    ([], "no command given"),
    (["-j", "0", "true"], "-j takes a number from 1"),
    (["--errno", "nomem", "true"], "--errno takes an errno name"),
    (["--timeout", "nan", "true"], "--timeout a time over 0"),
    (["--timeout", "inf", "true"], "--timeout a time over 0"),
    (["--input", "/nonexistent/x", "true"], "--input /nonexistent/x: no such file"),
    (["-e", "nosuchfunction_xyz", "true"], "nosuchfunction_xyz"),
    (["--bogus", "true"], "unknown option --bogus"),
])
def test_bad_input_is_one_line_and_status_2(mrhooker, args, message):
    r = sweep(mrhooker, *args)
    assert r.returncode == 2 and message in r.err, r
    assert "Traceback" not in r.err and len([l for l in r.err.splitlines() if l.startswith("mrhooker:")]) >= 1, r


def test_an_errno_name_no_header_knows_is_refused_not_a_clean_sweep(mrhooker, cprog):
    r = sweep(mrhooker, "-e", "malloc", "--errno", "EBADF2", cprog(BUGGY_C, flags=["-g", "-O0"]))
    assert r.returncode == 2 and "unknown errno name EBADF2" in r.err, r
    assert "Traceback" not in r.err, r


def test_a_command_that_does_not_exist(mrhooker):
    r = sweep(mrhooker, "/nonexistent/program")
    assert r.returncode == 127 and r.err.count("mrhooker:") == 1, r


def test_a_clean_run_that_does_not_end_is_refused_in_time(mrhooker):
    r = sweep(mrhooker, "--timeout", "1", "sleep", "30", timeout=scaled(25))
    assert r.returncode == 2 and "the clean run did not end in 1 s" in r.err, r


def test_cp_into_a_directory_of_each_run_survives_every_single_failure(mrhooker, tmp_path):
    data = tmp_path / "data"
    data.write_bytes(bytes(range(256)) * 4000)
    out = tmp_path / "runs.jsonl"
    r = sweep(mrhooker, "-j", "2", "--json", out, "cp", data, "{}/copy")
    assert r.returncode == 0, r
    runs = runs_of(out)
    assert len(runs) >= 10 and {"handled", "silent"} >= {run["kind"] for run in runs}, runs
    assert all("{}" in run["reproduce"] for run in runs), runs   # the command as given, to run in a directory


def test_output_that_differs_from_run_to_run_is_not_a_finding(mrhooker, cprog, tmp_path):
    prog = cprog("""
        #include <stdio.h>
        #include <stdlib.h>
        #include <unistd.h>
        int main(void) {
            void *p = malloc(100);
            printf("pid %d %s\\n", (int)getpid(), p ? "memory" : "none");
            free(p);
            return 0;
        }
    """)
    out = tmp_path / "runs.jsonl"
    r = sweep(mrhooker, "-e", "malloc", "--json", out, prog)
    assert r.returncode == 0 and "(two clean runs differ in their output: not compared)" in r.err, r
    assert {run["kind"] for run in runs_of(out)} == {"silent"}, r   # (the program's malloc and printf's)


# Says it started (a line in the file it is given), then takes its time.
SLOW_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    FILE *f = fopen(argv[1], "a");
    fputs("started\n", f);
    fclose(f);
    void *a = malloc(10), *b = malloc(20), *c = malloc(30);
    sleep(3);
    free(a); free(b); free(c);
    return 0;
}
"""


@pytest.mark.parametrize("when", ["clean", "failing"])
def test_ctrl_c_stops_the_sweep_and_every_run(base_env, cprog, tmp_path, when):
    import signal
    import time
    prog = cprog(SLOW_C)
    log = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-m", "mrhooker", "sweep", "-j", "2", "--timeout", "60", "-e", "malloc",
                             prog, log], env=base_env, stderr=subprocess.PIPE, text=True)
    try:
        wanted = 1 if when == "clean" else 3   # the first clean run, or a failing run after both clean ones
        deadline = time.monotonic() + scaled(90)
        while time.monotonic() < deadline and (not log.exists() or log.read_text().count("started") < wanted):
            time.sleep(0.05)
        assert log.read_text().count("started") >= wanted
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=scaled(20))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "mrhooker: interrupted" in err and "Traceback" not in err, err
    deadline = time.monotonic() + scaled(10)
    while subprocess.run(["pgrep", "-f", prog], capture_output=True).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert subprocess.run(["pgrep", "-f", prog], capture_output=True).stdout == b"", "a run is left running"


# Copies a file, ignoring what write says: a failed write loses data with status 0.
CARELESS_COPY_C = r"""
#include <fcntl.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    int in = open(argv[1], O_RDONLY), out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0) return 1;
    char buf[4096];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        write(out, buf, (size_t)n);
    return close(out) == 0 ? 0 : 1;
}
"""


def test_check_sees_what_the_program_wrote(mrhooker, cprog, tmp_path):
    prog = cprog(CARELESS_COPY_C)
    data = tmp_path / "data"
    data.write_bytes(b"x" * 10000)
    out = tmp_path / "runs.jsonl"
    r = sweep(mrhooker, "-e", "write", "--json", out, prog, data, "{}/copy")
    assert r.returncode == 0 and [run["kind"] for run in runs_of(out)] == ["silent"], r   # status 0, no stdout
    r = sweep(mrhooker, "-e", "write", "--check", "cmp %s {}/copy" % data, "--json", out, prog, data, "{}/copy")
    assert r.returncode == 0, r
    (run,) = runs_of(out)
    assert run["kind"] == "output" and run["detail"] == "same status 0, different output (or --check's)", run
