"""`mrhooker trace -p PID`: tracing, injecting into and faking the clock of processes mrhooker did not start,
then leaving them as they were (issue 18).

Every target is a real program started here without mrhooker (a child of the test, not of mrhooker); mrhooker
attaches from a process of its own. Each test checks what the trace shows, and that the program's output,
exit status and behaviour after the detach are what they are without mrhooker: every byte written, nothing
failing or faked any more. Every wait has a timeout.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from helpers import RUN_TIMEOUT, scaled, wait_for, without_progress

# Writes "line I\n" for I = 0, 1, ... to stdout, one write() each, every PERIOD_US microseconds, until SIGTERM
# (then it finishes the line it is at) or N lines. A write that fails is retried until it succeeds (so no line is
# ever lost), and each failure's errno is counted; at the end the counts go to stderr as "failed ERRNO COUNT"
# lines. With "fork" as a third argument, the lines ending in 5 are written by a child forked for each. Exit 0.
STEADY_C = r"""
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static int failures[200];
static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }
static void put(const char *buf, int k)
{
    while (write(1, buf, k) != k)
        failures[errno < 200 ? errno : 0]++;
}
int main(int argc, char **argv)
{
    int n = atoi(argv[1]), period = argc > 2 ? atoi(argv[2]) : 10000;
    int forking = argc > 3 && strcmp(argv[3], "fork") == 0;
    char buf[64];
    signal(SIGTERM, on_term);
    for (int i = 0; i < n && !stop; i++) {
        int k = snprintf(buf, sizeof buf, "line %d\n", i);
        if (forking && i % 10 == 5) {
            pid_t child = fork();
            if (child == 0) { put(buf, k); _exit(0); }
            waitpid(child, NULL, 0);
        } else {
            put(buf, k);
        }
        usleep(period);
    }
    for (int e = 0; e < 200; e++)
        if (failures[e]) fprintf(stderr, "failed %d %d\n", e, failures[e]);
    return 0;
}
"""


@pytest.fixture(scope="module")
def steady(tmp_path_factory):
    d = tmp_path_factory.mktemp("steady")
    src, prog = d / "steady.c", d / "steady"
    src.write_text(STEADY_C)
    subprocess.run(["cc", "-O2", "-o", str(prog), str(src)], check=True)
    return str(prog)


_started = []   # every program start() ran, killed after its test if still running (_no_program_left)
_read_back = {}  # pid -> what its drain has read of its stdout so far
_drains = {}     # pid -> the thread reading its stdout as it comes


def start(argv, **kwargs):
    """Starts a program; a piped stdout is read as it comes (a full pipe would block the program in write(),
    where no call of it is seen: an attach that takes seconds to build outlasts a 64 kB pipe)."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    proc = subprocess.Popen([str(a) for a in argv], stderr=subprocess.PIPE, **kwargs)
    _started.append(proc)
    if kwargs["stdout"] is subprocess.PIPE:
        chunks = _read_back.setdefault(proc.pid, [])
        reader, proc.stdout = proc.stdout, None   # communicate() reads stderr only

        def drain():
            with reader:
                for chunk in iter(lambda: os.read(reader.fileno(), 1 << 16), b""):
                    chunks.append(chunk)

        _drains[proc.pid] = threading.Thread(target=drain, daemon=True)
        _drains[proc.pid].start()
    return proc


@pytest.fixture(autouse=True)
def _no_program_left():
    """A test that fails leaves no program behind: a hung one would run on after the suite."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _drains.pop(proc.pid, None)
        _read_back.pop(proc.pid, None)


def finish(proc):
    """(exit status, stdout, stderr) once the program ends."""
    out, err = proc.communicate(timeout=RUN_TIMEOUT)
    drain = _drains.pop(proc.pid, None)
    if drain is not None:
        drain.join(RUN_TIMEOUT)
        out = b"".join(_read_back.pop(proc.pid, []))
    return proc.returncode, out, err


def terminate(proc):
    """Ends a program that runs until SIGTERM; (exit status, stdout, stderr). Programs an attach test needs
    running until its end run so rather than a fixed time: on a loaded machine, mrhooker's start and attach took
    more than the 1.5 s such a program ran."""
    proc.send_signal(signal.SIGTERM)
    return finish(proc)


def assert_forked_all(status, out, err):
    """The forking programs' end: every child counted in "done N" wrote its "x"."""
    done = re.fullmatch(rb"done (\d+)\n", err)
    assert status == 0 and done and out == b"x" * int(done[1]), (status, out[-50:], err)


def all_lines(n):
    return "".join("line %d\n" % i for i in range(n)).encode()


def stop_steady(proc):
    """Ends the steady program (SIGTERM: it finishes its line); (exit status, stdout, stderr), after checking that
    stdout holds every line from the first to the last, none missing or damaged."""
    time.sleep(0.1)
    status, out, err = terminate(proc)
    count = out.count(b"\n")
    assert out == all_lines(count), "lines lost or damaged"
    return status, count, err


def write_lines(text):
    return [int(m) for m in re.findall(r'^write\(1, "line (\d+)\\n", \d+\) = \d+$', text, re.M)]


def _libc_mapped(pid):
    try:
        with open("/proc/%d/maps" % pid) as f:
            return "libc.so.6" in f.read()
    except OSError:
        return False


def wait_running(proc, seconds=0.3):
    """Gives the program time to be well into its loop: its loader has mapped libc (on a loaded machine 0.3 s
    were not always enough: "has no libc.so.6 loaded"), then `seconds` more."""
    wait_for(lambda: _libc_mapped(proc.pid) or proc.poll() is not None, what="the program's loader")
    time.sleep(seconds)
    assert proc.poll() is None


FOREVER = 1000000   # lines: the steady program runs until stop_steady


@pytest.fixture(scope="module")
def warm(base_env):
    """The trace builds these tests attach with, built before the programs start (a cold build takes seconds):
    by attaching to a sleep (an attach's build is its own: runtime/tls.c)."""
    for specs in (["-e", "write"], ["-e", "read"], ["-q", "--fake-time", "+1d"], ["-e", "accept4,recv,send*"],
                  ["-e", "usleep"], ["-c", "-e", "usleep"], ["-q", "--fake-time", "+1d x2"],
                  ["-e", "write,fork,waitpid"], ["-q", "--inject", "write:error=EIO:when=2+2"],
                  ["-e", "write,getpid"],
                  # -f's: their children's ends need the waits too (another plan)
                  ["-f", "-e", "write"], ["-f", "-e", "write,fork,waitpid"], ["-f", "-e", "write,fork,waitpid,execv"]):
        sleeper = subprocess.Popen(["sleep", "600"])
        try:
            subprocess.run([sys.executable, "-m", "mrhooker", "trace", "-D", "0.01", "-p", str(sleeper.pid)] + specs,
                           env=base_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=scaled(300))
        finally:
            sleeper.kill()
            sleeper.wait()


def test_trace_a_running_program_then_detach(mrhooker, steady, warm):
    proc = start([steady, FOREVER, 10000])
    wait_running(proc)
    r = mrhooker("trace", "-e", "write", "-D", "1", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    assert "mrhooker: Process %d attached" % proc.pid in r.err and "Process %d detached" % proc.pid in r.err, r
    seen = write_lines(r.err)
    assert len(seen) > 20, r.err   # ~1 s of a line every 10 ms
    assert seen == list(range(seen[0], seen[0] + len(seen))), "calls missing in the middle: %s" % seen
    status, count, err = stop_steady(proc)
    assert (status, err) == (0, b"") and count > seen[-1]   # nothing failed


def test_a_detach_asked_for_waits_for_no_exec(mrhooker, steady, warm):
    """The wait for an exec to show (a process that lets go by itself) was made after every detach: 0.5 s more."""
    proc = start([steady, FOREVER, 10000])
    wait_running(proc)
    r = mrhooker("trace", "-v", "-e", "write", "-D", "0.2", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and "Process %d detached" % proc.pid in r.err, r
    assert "let go by itself" not in r.err, r.err
    assert stop_steady(proc)[::2] == (0, b"")


def test_attach_again_after_a_detach(mrhooker, steady, warm):
    proc = start([steady, FOREVER, 10000])
    wait_running(proc)
    first = mrhooker("trace", "-e", "write", "-D", "0.5", "-p", proc.pid, timeout=RUN_TIMEOUT)
    second = mrhooker("trace", "-e", "write", "-D", "0.5", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert first.returncode == 0 and second.returncode == 0, (first, second)
    a, b = write_lines(first.err), write_lines(second.err)
    assert a and b and a[-1] < b[0], (a, b)
    assert stop_steady(proc)[::2] == (0, b"")


def test_attaches_of_many_builds_and_other_hook_scripts(mrhooker, steady, script):
    """Each build attached (another -e set, another script) stays loaded, inert, after its detach. They used to
    take ~420 bytes each of the process's spare static TLS: the 4th failed to load. Once hooks had run, another
    build's dlopen went through the hook namespace's libc (the lowest libc.so.6 mapped) and failed saying nothing;
    a second script crashed the program (a second interpreter). Now every script runs in the first one's
    interpreter, each with its own originals. The program forks (a child writes each line ending in 5): the inert
    builds' fork handlers run at every fork too (they left the active one's lock taken once the block was
    shared: the second fork hung)."""
    first_hooks, other_hooks = script("first.py", HOOK_PY), script("other.py", HOOK_PY.replace("hooked", "other"))
    proc = start([steady, FOREVER, 5000, "fork"])
    wait_running(proc)
    extra = ["getpid", "getuid", "getgid", "geteuid", "getegid", "getppid", "time", "usleep", "nanosleep", "clock"]
    for name in extra:
        r = mrhooker("trace", "-e", "write," + name, "-D", "0.2", "-p", proc.pid, timeout=RUN_TIMEOUT)
        assert r.returncode == 0 and write_lines(r.err), (name, r)

    def hooked(hooks, says):
        r = mrhooker("-D", "0.3", "-p", proc.pid, hooks, timeout=RUN_TIMEOUT)
        lines = [int(n) for n in re.findall(r"^%s line (\d+)$" % says, r.err, re.M)]
        assert r.returncode == 0 and lines and lines == list(range(lines[0], lines[-1] + 1)), r
        assert "Process %d detached" % proc.pid in r.err, r
        assert ("other line" if says == "hooked" else "hooked line") not in r.err, r

    hooked(first_hooks, "hooked")
    r = mrhooker("trace", "-e", "write,getpid", "-D", "0.2", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and write_lines(r.err), r
    hooked(other_hooks, "other")
    hooked(first_hooks, "hooked")   # imported again: the other script's table and originals are not its own
    hooked(first_hooks, "hooked")
    maps = open("/proc/%d/maps" % proc.pid).read()
    assert len(set(re.findall(r"/libmrhooker-tls-\w+\.so", maps))) == 1, maps   # one block for every build
    assert len(re.findall(r"r-xp .*/libpython", maps)) == 1, maps   # one interpreter
    status, count, err = stop_steady(proc)
    assert (status, err) == (0, b"")


def test_hooks_of_another_script_into_a_program_run_with_hooks_are_refused(base_env, steady, script):
    """A program mrhooker started with hooks has their interpreter, but its thread-local block is its own build's
    (a launched build links it in): another script can't run there. One line, and the program goes on hooked."""
    first_hooks, other_hooks = script("first.py", HOOK_PY), script("other.py", HOOK_PY.replace("hooked", "other"))
    launcher = subprocess.Popen([sys.executable, "-m", "mrhooker", first_hooks, steady, "300", "10000"],
                                env=base_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def target():
            for entry in os.listdir("/proc"):
                try:
                    with open("/proc/%s/stat" % entry) as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    if fields[1] == str(launcher.pid) and os.readlink("/proc/%s/exe" % entry) == os.path.realpath(steady):
                        return int(entry)
                except (OSError, IndexError, ValueError):
                    pass
            return None
        wait_for(lambda: target() is not None, 30, "the program mrhooker started")
        pid = target()
        time.sleep(0.3)   # its hooks started (its first write)
        r = subprocess.run([sys.executable, "-m", "mrhooker", "-D", "0.3", "-p", str(pid), other_hooks],
                           env=base_env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        said = without_progress(r.stderr)   # other.py's first build, when no test before built it
        assert r.returncode == 2 and said.count("\n") == 1 and "runs hooks already" in said, r
        assert "it was started with them" in r.stderr, r
        out, err = launcher.communicate(timeout=RUN_TIMEOUT)
        assert launcher.returncode == 0 and out == all_lines(300), err
        assert err.decode().count("hooked line") == 300, err
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()


def test_inject_then_detach_the_program_recovers(mrhooker, steady):
    proc = start([steady, FOREVER, 10000])
    wait_running(proc)
    r = mrhooker("trace", "-q", "--inject", "write:error=ENOSPC:when=3..5", "-D", "1", "-p", proc.pid,
                 timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    status, count, err = stop_steady(proc)   # the failed writes were retried: nothing lost
    assert status == 0 and err == b"failed 28 3\n"   # ENOSPC, calls 3, 4 and 5 after the attach; none after


def test_killed_mrhooker_leaves_the_program_running_unhooked(base_env, steady):
    """SIGKILL while attached, with every write failing: the runtime inside notices the connection close and puts
    the slots back; the program's writes succeed again and it ends normally."""
    proc = start([steady, FOREVER, 10000])
    wait_running(proc)
    tracer = subprocess.Popen([sys.executable, "-m", "mrhooker", "trace", "-q", "--inject", "write:error=EIO",
                               "-p", str(proc.pid)], env=base_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        wait_for(lambda: _threads(proc.pid) >= 2, what="the runtime's thread")
        time.sleep(0.3)
        tracer.kill()
    finally:
        tracer.wait(timeout=RUN_TIMEOUT)
    wait_for(lambda: _threads(proc.pid) <= 1, what="the runtime's thread to end")
    before = _lines_so_far(proc)
    time.sleep(0.3)
    status, count, err = stop_steady(proc)
    assert status == 0 and count > before + 10   # it writes again
    failed = re.match(rb"failed 5 (\d+)\n$", err)   # EIO while attached, nothing after
    assert failed and int(failed.group(1)) > 10, err


def _lines_so_far(proc):
    """How many lines the steady program has written (what its drain has read)."""
    return b"".join(_read_back.get(proc.pid, [])).count(b"\n")


def _threads(pid):
    try:
        return len(os.listdir("/proc/%d/task" % pid))
    except OSError:
        return 0


def test_ctrl_c_detaches(base_env, steady, warm):
    proc = start([steady, FOREVER, 10000])
    wait_running(proc)
    tracer = subprocess.Popen([sys.executable, "-m", "mrhooker", "trace", "-e", "write", "-p", str(proc.pid)],
                              env=base_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: _threads(proc.pid) >= 2, what="the runtime's thread")
    time.sleep(0.3)
    tracer.send_signal(signal.SIGINT)
    _, err = tracer.communicate(timeout=RUN_TIMEOUT)
    assert tracer.returncode == 0, err
    assert "Process %d detached" % proc.pid in err and write_lines(err), err
    wait_for(lambda: _threads(proc.pid) <= 1, what="the runtime's thread to end")
    assert stop_steady(proc)[::2] == (0, b"")


def test_the_program_ending_ends_the_trace(mrhooker, steady, warm):
    proc = start([steady, 300, 10000])   # 3 s: under CI's load 1 s ended before the attach ("exited")
    wait_running(proc, 0.2)
    r = mrhooker("trace", "-e", "write", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    assert "Process %d ended" % proc.pid in r.err, r
    seen = write_lines(r.err)
    assert seen and seen[-1] == 299, r.err
    status, out, err = finish(proc)
    assert (status, out) == (0, all_lines(300))


def test_follow_children_forked_after_the_attach(mrhooker, steady, warm):
    proc = start([steady, FOREVER, 10000, "fork"])
    wait_running(proc)
    r = mrhooker("trace", "-f", "-e", "write", "-D", "1", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    pids = set(re.findall(r"^\[pid\s+(\d+)\] write\(1, \"line \d*5\\n\"", r.err, re.M))
    assert pids and str(proc.pid) not in pids, r.err   # the lines ending in 5 come from children
    without = mrhooker("trace", "-e", "write", "-D", "0.5", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert write_lines(without.err) and not re.search(r'"line \d*5\\n"', without.err), without.err
    assert stop_steady(proc)[::2] == (0, b"")   # no -f: the children run unhooked


# A thread walks the loaded objects without a pause (dl_iterate_phdr, as C++ exception unwinding does) while
# main forks N children one after another, each writing "x"; "done N" on stderr, exit 0.
WALKER_C = r"""
#define _GNU_SOURCE
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }
static int visit(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)info; (void)size;
    for (volatile int i = 0; i < 2000; i++) {}
    ++*(long *)data;
    return 0;
}
static void *walk(void *arg)
{
    long n = 0;
    (void)arg;
    while (!stop) dl_iterate_phdr(visit, &n);
    return NULL;
}
int main(void)
{
    int n = 0;
    pthread_t t;
    signal(SIGTERM, on_term);
    pthread_create(&t, NULL, walk, NULL);
    for (; !stop; n++) {
        pid_t c = fork();
        if (c == 0) { write(1, "x", 1); _exit(0); }
        int st;
        if (c < 0 || waitpid(c, &st, 0) != c || st != 0) return 3;
        usleep(1000);
    }
    pthread_join(t, NULL);
    fprintf(stderr, "done %d\n", n);
    return 0;
}
"""


@pytest.mark.parametrize("follow", [[], ["-f"]], ids=["", "follow"])
def test_forks_while_another_thread_walks_the_loaded_objects(mrhooker, cprog, warm, follow):
    """A fork while a thread held the loader's list lock (dl_iterate_phdr) left the child's copy of it taken: the
    child, putting its slots back through dl_iterate_phdr, waited forever, and the program with it in waitpid
    (CI hung so, the lock held by mrhooker's own watcher thread). Every child must end, hooked or not."""
    prog = cprog(WALKER_C, flags=["-pthread"])
    proc = start([prog])
    wait_running(proc, 0.1)
    r = mrhooker("trace", *follow, "-e", "write", "-D", "1", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and "Process %d detached" % proc.pid in r.err, r
    if follow:
        assert re.search(r'^\[pid\s+\d+\] write\(1, "x", 1\) = 1$', r.err, re.M), r.err
    assert_forked_all(*terminate(proc))


# Until SIGTERM, forks children from inside dl_iterate_phdr's callbacks (the loader's list lock held), each
# writing "x", a millisecond apart; then "done N" on stderr, exit 0.
CALLBACK_FORK_C = r"""
#define _GNU_SOURCE
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }
static int visit(struct dl_phdr_info *info, size_t size, void *data)
{
    int *n = data;
    (void)info; (void)size;
    if (stop) return 1;
    for (volatile int i = 0; i < 20000; i++) {}
    pid_t c = fork();
    if (c == 0) { write(1, "x", 1); _exit(0); }
    if (c < 0 || waitpid(c, NULL, 0) != c) exit(3);
    ++*n;
    return 0;
}
int main(void)
{
    int n = 0;
    signal(SIGTERM, on_term);
    while (!stop) { dl_iterate_phdr(visit, &n); usleep(1000); }
    fprintf(stderr, "done %d\n", n);
    return 0;
}
"""


def test_forks_from_inside_a_walk_of_the_loaded_objects(mrhooker, cprog, warm):
    """A fork from a dl_iterate_phdr callback (its thread holds the loader's list lock) while the watcher's pass
    waited for that lock holding ours: the fork waited for ours, and the program hung (3 runs in 3). A fork now
    waits for a pass a bounded time."""
    prog = cprog(CALLBACK_FORK_C)
    proc = start([prog])
    wait_running(proc, 0.1)
    r = mrhooker("trace", "-e", "write", "-D", "1", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and "Process %d detached" % proc.pid in r.err, r
    assert_forked_all(*terminate(proc))


THREADS_C = r"""
#define LINES 400   /* 4 s: on a loaded machine mrhooker's start and attach took most of 1.5 */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *run(void *arg)
{
    long id = (long)arg;
    char buf[32];
    for (int i = 0; i < LINES; i++) {
        int k = snprintf(buf, sizeof buf, "t%ld %d\n", id, i);
        if (write(1, buf, k) != k) return (void *)1;
        usleep(10000);
    }
    return NULL;
}
int main(void)
{
    pthread_t t[3];
    for (long i = 0; i < 3; i++) pthread_create(&t[i], NULL, run, (void *)i);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    return 0;
}
"""


def test_every_thread_is_traced(mrhooker, cprog, warm):
    prog = cprog(THREADS_C, flags=["-pthread"])
    proc = start([prog])
    wait_running(proc)
    r = mrhooker("trace", "-e", "write", "-D", "0.6", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    threads = set(re.findall(r'write\(1, "t(\d) \d+\\n"', r.err))
    tids = set(re.findall(r"^\[pid\s+(\d+)\] write", r.err, re.M))
    assert threads == {"0", "1", "2"} and len(tids) == 3, r.err
    status, out, err = finish(proc)
    assert status == 0 and sorted(out.decode().splitlines()) == sorted(
        "t%d %d" % (t, i) for t in range(3) for i in range(400))


def test_a_threads_id_attaches_to_its_process_and_says_so(mrhooker, cprog, warm):
    """-p TID: the runtime patches a process, whose threads all call through the patched slots (strace -p TID
    traces that thread alone): the process is attached, and mrhooker says so rather than 'Process TID'."""
    proc = start([cprog(THREADS_C, flags=["-pthread"])])
    wait_running(proc)
    tid = max(int(t) for t in os.listdir("/proc/%d/task" % proc.pid))
    assert tid != proc.pid
    r = mrhooker("trace", "-e", "write", "-D", "0.3", "-p", tid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    assert r.err.splitlines()[0] == "mrhooker: %d is a thread of process %d: attaching to the process (all its " \
                                    "threads)" % (tid, proc.pid), r.err
    assert "Process %d attached" % proc.pid in r.err and "Process %d detached" % proc.pid in r.err, r.err
    assert finish(proc)[0] == 0


BLOCKED_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    char buf[64];
    if (strcmp(argv[1], "read") == 0) {
        ssize_t n = read(0, buf, sizeof buf);   /* blocked on a pipe while mrhooker attaches */
        printf("read %zd %.*s\n", n, (int)(n > 0 ? n : 0), buf);
        n = read(0, buf, sizeof buf);
        printf("read %zd\n", n);
    } else {
        struct timespec t = {atoi(argv[2]), 0}, left = {0, 0};
        int r = nanosleep(&t, &left);   /* asleep while mrhooker attaches: sleeps its whole time */
        printf("nanosleep %d\n", r);
        fflush(stdout);
        if (write(1, "done\n", 5) != 5) return 2;
    }
    return 0;
}
"""


def test_a_program_blocked_in_read_resumes(base_env, cprog, warm):
    prog = cprog(BLOCKED_C)
    proc = start([prog, "read"], stdin=subprocess.PIPE)
    wait_running(proc)
    tracer = subprocess.Popen([sys.executable, "-m", "mrhooker", "trace", "-e", "read", "-D", "2", "-p",
                               str(proc.pid)], env=base_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    wait_for(lambda: _threads(proc.pid) >= 2, what="the runtime's thread")
    proc.stdin.write(b"hello")
    proc.stdin.flush()
    time.sleep(0.3)
    proc.stdin.close()
    proc.stdin = None
    _, err = tracer.communicate(timeout=RUN_TIMEOUT)
    assert tracer.returncode == 0, err
    # the read in flight at the attach went through the PLT before the patch: only the next one is seen
    assert re.search(r"^read\(0, \"\", 64\) = 0$", err, re.M), err
    status, out, errors = finish(proc)
    assert (status, out) == (0, b"read 5 hello\nread 0\n"), errors


def test_a_program_asleep_sleeps_its_time(mrhooker, cprog, warm):
    prog = cprog(BLOCKED_C)
    seconds = max(2, round(scaled(2)))   # longer than mrhooker's start and attach take under load (CI: > 1 s)
    started = time.monotonic()
    proc = start([prog, "sleep", str(seconds)])
    wait_running(proc)
    r = mrhooker("trace", "-e", "write", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    assert 'write(1, "done\\n", 5) = 5' in r.err, r.err
    status, out, err = finish(proc)
    assert (status, out) == (0, b"nanosleep 0\ndone\n")
    assert time.monotonic() - started >= seconds


TIME_C = r"""
#define LINES 400   /* 4 s: on a loaded machine mrhooker's start and attach took most of 1.5 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>
int main(void)
{
    for (int i = 0; i < LINES; i++) {
        printf("%ld\n", (long)time(NULL));
        fflush(stdout);
        usleep(10000);
    }
    return 0;
}
"""


def _attached_with_fake_time(mrhooker, prog, spec):
    """Runs prog, attaches with --fake-time SPEC for half a second: (its exit status, its output)."""
    proc = start([prog])
    wait_running(proc)
    r = mrhooker("trace", "-q", "--fake-time", spec, "-D", "0.5", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    status, out, _ = finish(proc)
    return status, out


def test_fake_time_while_attached_only(mrhooker, cprog, warm):
    status, out = _attached_with_fake_time(mrhooker, cprog(TIME_C), "+1d")
    times = [int(x) for x in out.split()]
    now = time.time()
    faked = [t for t in times if t > now + 80000]
    assert status == 0 and len(times) == 400
    assert len(faked) > 10, times
    assert times[-1] < now + 10 and times[0] < now + 10   # real before the attach and after the detach


MONOTONIC_C = r"""
#include <stdio.h>
#include <sys/times.h>
#include <time.h>
#include <unistd.h>
int main(void)
{
    struct timespec last = {0, 0}, now;
    struct tms t;
    clock_t start = times(&t);   /* runs 4 real seconds (times() is never faked) */
    for (int i = 0; times(&t) - start < 4 * sysconf(_SC_CLK_TCK); i++) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec < last.tv_sec || (now.tv_sec == last.tv_sec && now.tv_nsec < last.tv_nsec))
            printf("back at %d\n", i);
        last = now;
        printf("%ld\n", (long)time(NULL));
        fflush(stdout);
        usleep(10000);
    }
    return 0;
}
"""


def test_fake_time_with_a_rate_while_attached_never_turns_the_monotonic_clock_back(mrhooker, cprog, warm):
    """Launched, a rate runs the monotonic clock at it too; attached it stays real, since the detach would turn
    it back (a program's timeouts and intervals then go wrong, or negative)."""
    status, out = _attached_with_fake_time(mrhooker, cprog(MONOTONIC_C), "+1d x10")
    assert status == 0 and b"back" not in out, out
    assert any(int(t) > time.time() + 80000 for t in out.split()), out   # the wall clock was faked meanwhile


def test_python_http_server_answers_while_attached(base_env, tmp_path, warm):
    (tmp_path / "index.html").write_text("attached\n")
    from helpers import free_port
    port = free_port()
    server = start([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)], cwd=str(tmp_path),
                   stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: subprocess.run(["curl", "-s", "-o", "/dev/null", "http://127.0.0.1:%d/" % port]).returncode
                 == 0, what="the server")
        tracer = subprocess.Popen([sys.executable, "-m", "mrhooker", "trace", "-e", "accept4,recv,send*",
                                   "-p", str(server.pid)], env=base_env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        # attached when mrhooker says so (the server's thread count can't tell: a handler thread of the first
        # request may still be there)
        said = []
        reader = threading.Thread(target=lambda: said.extend(tracer.stderr), daemon=True)
        reader.start()
        wait_for(lambda: any("attached" in line for line in said), what="the attach")
        got = subprocess.run(["curl", "-s", "http://127.0.0.1:%d/index.html" % port], stdout=subprocess.PIPE,
                             timeout=RUN_TIMEOUT)
        assert got.stdout == b"attached\n"
        time.sleep(0.2)
        tracer.send_signal(signal.SIGTERM)
        tracer.wait(timeout=RUN_TIMEOUT)
        reader.join(timeout=RUN_TIMEOUT)
        err = "".join(said)
        assert tracer.returncode == 0, err
        assert re.search(r"^accept4\(\d+, ", err, re.M) and "attached" in err, err
        again = subprocess.run(["curl", "-s", "http://127.0.0.1:%d/index.html" % port], stdout=subprocess.PIPE,
                               timeout=RUN_TIMEOUT)
        assert again.stdout == b"attached\n"
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=RUN_TIMEOUT)
    assert server.returncode in (0, 1, -signal.SIGINT)


def test_refusals_are_one_line(mrhooker, tmp_path):
    static = tmp_path / "static"
    (tmp_path / "s.c").write_text("#include <unistd.h>\nint main(void) { sleep(60); return 0; }\n")
    if subprocess.run(["cc", "-static", "-o", str(static), str(tmp_path / "s.c")]).returncode != 0:
        pytest.skip("no static libc here")
    proc = start([static])
    try:
        time.sleep(0.1)
        r = mrhooker("trace", "-e", "write", "-p", proc.pid, timeout=RUN_TIMEOUT)
        assert r.returncode == 2 and r.err.count("\n") == 1 and "static" in r.err, r
    finally:
        proc.kill()
        proc.wait()
    r = mrhooker("trace", "-e", "write", "-p", "999999999", timeout=RUN_TIMEOUT)
    assert r.returncode == 2 and r.err.startswith("mrhooker: ") and r.err.count("\n") == 1, r
    r = mrhooker("trace", "-p", "12", "true", timeout=RUN_TIMEOUT)
    assert r.returncode == 2 and "not both" in r.err, r
    r = mrhooker("trace", "-D", "1", "true", timeout=RUN_TIMEOUT)
    assert r.returncode == 2 and "-D" in r.err, r


def test_another_users_process_is_refused(mrhooker, steady):
    if os.geteuid() != 0:
        pytest.skip("needs root to start a process as another user")
    proc = start(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", steady, 100, 10000])
    try:
        wait_running(proc)
        r = mrhooker("trace", "-e", "write", "-p", proc.pid, timeout=RUN_TIMEOUT)
        assert r.returncode == 2 and "runs as user" in r.err and r.err.count("\n") == 1, r
        status, out, err = finish(proc)
        assert (status, out, err) == (0, all_lines(100), b"")
    finally:
        if proc.poll() is None:
            proc.kill()


HOOK_PY = '''
from mrhooker import hook

@hook("ssize_t write(int fd, const void *buf, size_t n)")
def write(fd, buf, n):
    if fd == 1:
        print("hooked", buf.read(n).decode().strip())
    return write.original(fd, buf, n)
'''


def test_python_hooks_in_a_running_program_attach_detach_attach(mrhooker, steady, script):
    hooks = script("live.py", HOOK_PY)
    mrhooker("trace", "-e", "write", "true")   # nothing: the build below is what takes time
    proc = start([steady, FOREVER, 10000])
    wait_running(proc)
    first = mrhooker("-D", "1", "-p", proc.pid, hooks, timeout=RUN_TIMEOUT)
    second = mrhooker("-D", "0.5", "-p", proc.pid, hooks, timeout=RUN_TIMEOUT)   # the hook side stays loaded
    for r in (first, second):
        assert r.returncode == 0, r
        assert "Process %d attached" % proc.pid in r.err and "Process %d detached" % proc.pid in r.err, r
    a = [int(x) for x in re.findall(r"^hooked line (\d+)$", first.err, re.M)]
    b = [int(x) for x in re.findall(r"^hooked line (\d+)$", second.err, re.M)]
    assert len(a) > 20 and b and a == list(range(a[0], a[-1] + 1)) and a[-1] < b[0], (first.err, second.err)
    # the output's descriptor: parked at each detach, its number reused by the next attach (not one more each)
    fds = set(os.listdir("/proc/%d/fd" % proc.pid))
    third = mrhooker("-D", "0.3", "-p", proc.pid, hooks, timeout=RUN_TIMEOUT)
    assert third.returncode == 0 and "hooked line" in third.err, third
    assert set(os.listdir("/proc/%d/fd" % proc.pid)) == fds
    parked = [os.readlink("/proc/%d/fd/%s" % (proc.pid, fd)) for fd in fds]
    assert sum("mrhooker-detached" in link for link in parked) == 1, parked
    status, count, err = stop_steady(proc)
    assert (status, err) == (0, b"") and count > b[-1]


# The first write's hook prints for 3 s, every 2 ms: in flight at a detach after 0.5 s.
HOOK_IN_FLIGHT_PY = '''
import time
from mrhooker import hook
busy = False

@hook("ssize_t write(int fd, const void *buf, size_t n)")
def write(fd, buf, n):
    global busy
    if fd == 1 and not busy:
        busy = True
        end = time.monotonic() + 3
        while time.monotonic() < end:
            print("in flight")
            time.sleep(0.002)
    return write.original(fd, buf, n)
'''


def test_a_hook_printing_after_the_detach_holds_no_output_open(base_env, steady, script):
    """A hook still printing after the detach opened mrhooker's stderr again (its descriptor parked, so not
    'ours'): the program held the pipe after mrhooker's end and its reader waited for ever (a CI run saw it)."""
    hooks = script("in_flight.py", HOOK_IN_FLIGHT_PY)
    proc = start([steady, FOREVER, 10000])
    wait_running(proc)
    r = subprocess.run([sys.executable, "-m", "mrhooker", "-D", "0.5", "-p", str(proc.pid), hooks], env=base_env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and b"in flight" in r.stderr and b"Process %d detached" % proc.pid in r.stderr, r
    time.sleep(3)   # the hook's end: the program goes on, unhooked, every line written
    assert proc.poll() is None
    assert stop_steady(proc)[::2] == (0, b"")


def test_python_hooks_output_reader_sees_its_end_at_the_detach(base_env, steady, script):
    """mrhooker's stderr is a pipe here: its reader must see the end when mrhooker exits, though the program
    (which wrote hook output into it) goes on running."""
    hooks = script("live.py", HOOK_PY)
    proc = start([steady, FOREVER, 10000])
    wait_running(proc)
    r = subprocess.run([sys.executable, "-m", "mrhooker", "-D", "0.5", "-p", str(proc.pid), hooks], env=base_env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and b"hooked line" in r.stderr, r
    assert proc.poll() is None
    assert stop_steady(proc)[::2] == (0, b"")


def test_now_bound_and_no_plt_calls_are_patched(mrhooker, tmp_path, warm):
    """-z now binds every slot at start, -fno-plt calls through the GOT (GLOB_DAT): both are patched."""
    src, prog = tmp_path / "steady.c", tmp_path / "steady-now"
    src.write_text(STEADY_C)
    subprocess.run(["cc", "-O2", "-fno-plt", "-Wl,-z,now,-z,relro", "-o", str(prog), str(src)], check=True)
    proc = start([prog, FOREVER, 10000])
    wait_running(proc)
    r = mrhooker("trace", "-e", "write", "-D", "0.5", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and len(write_lines(r.err)) > 10, r
    assert stop_steady(proc)[::2] == (0, b"")


# Writes a line every 10 ms; at SIGUSR1 it dlopens LIB and from then on writes through LIB's say() (whose write()
# goes through LIB's own PLT); at SIGUSR2 it closes every descriptor above 2 (close_range), as daemons do, and
# goes on; at SIGTERM it ends.
LATE_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
static volatile sig_atomic_t load, close_all, stop;
static void on_signal(int sig) { if (sig == SIGUSR1) load = 1; else if (sig == SIGUSR2) close_all = 1; else stop = 1; }
int main(int argc, char **argv)
{
    void (*say)(int) = NULL;
    signal(SIGUSR1, on_signal);
    signal(SIGUSR2, on_signal);
    signal(SIGTERM, on_signal);
    char buf[64];
    for (int i = 0; !stop; i++) {
        if (load && !say) {
            void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
            say = lib ? (void (*)(int))dlsym(lib, "say") : NULL;
            if (!say) return 3;
        }
        if (close_all) {
            close_range(3, ~0U, 0);
            close_all = 0;
        }
        if (say) {
            say(i);
        } else {
            int k = snprintf(buf, sizeof buf, "line %d\n", i);
            if (write(1, buf, k) != k) return 2;
        }
        usleep(10000);
    }
    return 0;
}
"""

SAY_C = r"""
#include <stdio.h>
#include <unistd.h>
void say(int i)
{
    char buf[64];
    int k = snprintf(buf, sizeof buf, "lib line %d\n", i);
    if (write(1, buf, k) != k) _exit(4);
}
"""


def test_a_library_loaded_after_the_attach_is_patched(base_env, cprog, warm):
    lib = cprog(SAY_C, flags=["-shared", "-fPIC"], suffix=".so")
    prog = cprog(LATE_C, flags=["-ldl"])
    proc = start([prog, lib])
    wait_running(proc)
    tracer = subprocess.Popen([sys.executable, "-m", "mrhooker", "trace", "-e", "write", "-D", "2", "-p",
                               str(proc.pid)], env=base_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    wait_for(lambda: _threads(proc.pid) >= 2, what="the runtime's thread")
    time.sleep(0.3)
    proc.send_signal(signal.SIGUSR1)
    _, err = tracer.communicate(timeout=RUN_TIMEOUT)
    assert tracer.returncode == 0, err
    seen = [int(x) for x in re.findall(r'^write\(1, "lib line (\d+)\\n", \d+\) = \d+$', err, re.M)]
    assert len(seen) > 50 and seen == list(range(seen[0], seen[-1] + 1)), err   # within 50 ms, then every one
    proc.send_signal(signal.SIGTERM)
    status, out, errors = finish(proc)
    assert status == 0 and errors == b"", errors


def test_a_program_closing_every_descriptor_keeps_running_traced(base_env, cprog, warm):
    """A program that closes every descriptor (close_range, as a daemon does) closes none of ours: the
    connection lives in a descriptor table of the runtime's own thread, and the program's holds nothing of
    mrhooker's (it is also not shared: the kernel counts no references on its descriptors, as before)."""
    lib = cprog(SAY_C, flags=["-shared", "-fPIC"], suffix=".so")
    prog = cprog(LATE_C, flags=["-ldl"])
    proc = start([prog, lib])
    wait_running(proc)
    before = sorted(os.listdir("/proc/%d/fd" % proc.pid))
    tracer = subprocess.Popen([sys.executable, "-m", "mrhooker", "trace", "-e", "write", "-D", "1.5", "-p",
                               str(proc.pid)], env=base_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    wait_for(lambda: _threads(proc.pid) >= 2, what="the runtime's thread")
    time.sleep(0.2)
    assert sorted(os.listdir("/proc/%d/fd" % proc.pid)) == before   # nothing of mrhooker's in its table
    proc.send_signal(signal.SIGUSR2)
    time.sleep(0.3)
    marked = time.monotonic()
    _, err = tracer.communicate(timeout=RUN_TIMEOUT)
    assert tracer.returncode == 0 and "Process %d detached" % proc.pid in err, err
    assert time.monotonic() - marked > 0.5   # it ran its whole -D: the close_range did not end it
    assert len(write_lines(err)) > 100, err   # before and after the close_range
    wait_for(lambda: _threads(proc.pid) <= 1, what="the runtime's thread to end")
    proc.send_signal(signal.SIGTERM)
    status, out, errors = finish(proc)
    assert status == 0 and errors == b"" and out.endswith(b"\n"), errors


def test_sqlite3_in_a_loop_while_attached(base_env, tmp_path, warm):
    """SQLite calls pread64/pwrite64 through a table of pointers (R_X86_64_64 relocations): they are patched too."""
    db = tmp_path / "t.db"
    proc = start(["sqlite3", str(db)], stdin=subprocess.PIPE)
    proc.stdin.write(b"create table t(x);\n")
    proc.stdin.flush()
    time.sleep(0.3)
    tracer = subprocess.Popen([sys.executable, "-m", "mrhooker", "trace", "-e", "pwrite64,pread64", "-D", "1.5",
                               "-p", str(proc.pid)], env=base_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    wait_for(lambda: _threads(proc.pid) >= 2, what="the runtime's thread")
    for i in range(20):
        proc.stdin.write(b"insert into t values(%d);\n" % i)
        proc.stdin.flush()
        time.sleep(0.02)
    _, err = tracer.communicate(timeout=RUN_TIMEOUT)
    assert tracer.returncode == 0 and re.search(r"^pwrite64\(\d+, ", err, re.M), err
    proc.stdin.write(b"insert into t values(20);\nselect count(*), sum(x) from t;\n")
    proc.stdin.close()
    proc.stdin = None
    status, out, errors = finish(proc)
    assert (status, out, errors) == (0, b"21|210\n", b"")


# ---- calls in flight at the detach, and what else a first try broke ----------------------------------------

# A tick every 100 ms until SIGTERM.
SLEEPER_C = r"""
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }
int main(void)
{
    signal(SIGTERM, on_term);
    for (int i = 0; !stop; i++) {
        usleep(100000);   /* traced, and in flight at the detach */
        printf("tick %d\n", i);
        fflush(stdout);
    }
    return 0;
}
"""


@pytest.mark.parametrize("options", [["-e", "usleep"], ["-c", "-e", "usleep"], ["-q", "--fake-time", "+1d x2"]])
def test_a_call_in_flight_at_the_detach_returns_safely(mrhooker, cprog, warm, options):
    prog = cprog(SLEEPER_C)
    proc = start([prog])
    wait_running(proc)
    r = mrhooker("trace", *options, "-D", "0.55", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    time.sleep(0.3)   # a few ticks after the detach
    status, out, err = terminate(proc)
    ticks = out.count(b"\n")
    assert (status, out, err) == (0, "".join("tick %d\n" % i for i in range(ticks)).encode(), b"") and ticks > 5


# Until SIGTERM, forks a child that writes "child" and exits 7, and waits for it; then "bad B rounds N".
FORKER_C = r"""
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }
int main(void)
{
    int bad = 0, i = 0;
    signal(SIGTERM, on_term);
    for (; !stop; i++) {
        pid_t c = fork();
        if (c == 0) {
            if (write(1, "child\n", 6) != 6) _exit(1);
            _exit(7);
        }
        int st;
        waitpid(c, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 7) bad++;
        usleep(10000);
    }
    printf("bad %d rounds %d\n", bad, i);
    return 0;
}
"""


@pytest.mark.parametrize("follow", [[], ["-f"]])
def test_children_forked_while_fork_is_traced(mrhooker, cprog, warm, follow):
    prog = cprog(FORKER_C)
    proc = start([prog])
    wait_running(proc)
    r = mrhooker("trace", *follow, "-e", "write,fork,waitpid", "-D", "0.6", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and "fork() = " in r.err, r
    status, out, err = terminate(proc)
    rounds = re.fullmatch(rb"(?:child\n)*bad 0 rounds (\d+)\n", out)
    assert (status, err) == (0, b"") and rounds and out.count(b"child\n") == int(rounds[1]), out[-200:]
    assert ("[pid" in r.err and 'write(1, "child\\n", 6)' in r.err) == bool(follow), r.err


# Python's subprocess and dash start their children so: vfork, then execv in the child. Until SIGTERM, each
# round's line "round I pid P status S" (one write) after waiting for its child.
VFORKER_C = r"""
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }
int main(void)
{
    signal(SIGTERM, on_term);
    for (int i = 0; !stop; i++) {
        pid_t c = vfork();
        if (c == 0) {
            char *argv[] = {"/bin/true", NULL};
            execv("/bin/true", argv);
            _exit(127);
        }
        int st = -1;
        while (waitpid(c, &st, 0) < 0) {}
        char line[80];
        int k = snprintf(line, sizeof line, "round %d pid %d status %d\n", i, (int)getpid(), st);
        if (write(1, line, k) != k) return 1;
        usleep(5000);
    }
    return 0;
}
"""

VFORK_HOOKS_PY = '''
import os
from mrhooker import hook

@hook("ssize_t write(int fd, const void *buf, size_t n)")
def write(fd, buf, n):
    if fd == 1:
        print("hooked", buf.read(n).decode().strip(), "in", os.getpid())
    return write.original(fd, buf, n)

@hook("int execv(const char *path, char *const argv[])")
def execv(path, argv):
    print("execv in", os.getpid())
    return execv.original(path, argv)
'''


def _vforker_rounds(proc):
    """Stops the vforking program; its rounds, checked: every one written, by its own pid, its child ended 0."""
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    status, out, err = finish(proc)
    rounds = re.findall(r"^round (\d+) pid (\d+) status (\d+)$", out.decode(), re.M)
    assert (status, err) == (0, b"") and out.count(b"\n") == len(rounds), (status, out[-300:], err)
    assert [int(r[0]) for r in rounds] == list(range(len(rounds))), "rounds lost"
    assert {(int(pid), int(st)) for _, pid, st in rounds} == {(proc.pid, 0)}
    return len(rounds)


def test_python_hooks_in_a_program_that_vforks(mrhooker, cprog, script):
    """A vfork child runs in its parent's memory: hooks run there took the parent's GIL for good (its hooks never
    ran again, on a later attach neither). Attached, vfork runs as fork, as when launched."""
    hooks = script("vforker.py", VFORK_HOOKS_PY)
    mrhooker(hooks, "true")   # the script's launched build: the attach below builds its own, and the runtime
    proc = start([cprog(VFORKER_C)])
    wait_running(proc)
    first = mrhooker("-D", "1", "-p", proc.pid, hooks, timeout=RUN_TIMEOUT)
    second = mrhooker("-D", "0.5", "-p", proc.pid, hooks, timeout=RUN_TIMEOUT)
    for r in (first, second):
        assert r.returncode == 0 and "Process %d detached" % proc.pid in r.err, r
        hooked = re.findall(r"^hooked round \d+ pid (\d+) status 0 in (\d+)$", r.err, re.M)
        assert len(hooked) >= 3 and set(hooked) == {(str(proc.pid),) * 2}, r.err
        children = re.findall(r"^execv in (\d+)$", r.err, re.M)   # the children it forks are hooked too
        assert children and str(proc.pid) not in children, r.err
    _vforker_rounds(proc)


def test_trace_of_a_program_that_vforks_says_whose_each_line_is(mrhooker, cprog, warm):
    """Each child's calls ran with the parent's cached thread id: the parent's lines carried a child's pid."""
    proc = start([cprog(VFORKER_C)])
    wait_running(proc)
    r = mrhooker("trace", "-f", "-e", "write,fork,waitpid,execv", "-D", "1", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    writes = re.findall(r'^(\[pid \d+\] )?write\(1, "round \d+ pid (\d+) status 0\\n"', r.err, re.M)
    assert len(writes) >= 3 and set(writes) == {("", str(proc.pid))}, r.err
    forked = set(re.findall(r"^fork\(\) = (\d+)$", r.err, re.M))
    execs = set(re.findall(r'^\[pid (\d+)\] execv\("/bin/true"', r.err, re.M))
    assert execs and execs <= forked, r.err
    _vforker_rounds(proc)


def test_an_attach_removes_what_a_killed_mrhooker_left(mrhooker, steady, warm):
    # mrhooker killed (-9) in its attach leaves its socket's directory; the next attach removes it (and a live
    # mrhooker's stays)
    gone = subprocess.Popen(["true"])
    gone.wait()
    left = os.path.join(tempfile.gettempdir(), "mrhooker-attach-%d-test" % gone.pid)
    alive = os.path.join(tempfile.gettempdir(), "mrhooker-attach-%d-test" % os.getpid())
    for path in (left, alive):
        os.makedirs(path, exist_ok=True)
        open(os.path.join(path, "link"), "w").close()
    try:
        proc = start([steady, FOREVER, 1000])
        wait_running(proc)
        r = mrhooker("trace", "-q", "-c", "-e", "write", "-D", "0.3", "-p", proc.pid, timeout=RUN_TIMEOUT)
        assert r.returncode == 0, r
        assert not os.path.exists(left) and os.path.exists(alive)
        assert stop_steady(proc)[::2] == (0, b"")
    finally:
        shutil.rmtree(alive, ignore_errors=True)
        shutil.rmtree(left, ignore_errors=True)


def test_the_detached_ring_holds_no_memory(mrhooker, steady, warm):
    proc = start([steady, FOREVER, 1000])
    wait_running(proc)
    r = mrhooker("trace", "-q", "-c", "-e", "write", "--buffer-size", "64", "-D", "0.5", "-p", proc.pid,
                 timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    with open("/proc/%d/smaps" % proc.pid) as f:
        text = f.read()
    shared = 0
    for block in re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", text):
        if "mrhooker-trace" in block.split("\n", 1)[0]:
            shared += int(re.search(r"^Size:\s+(\d+) kB", block, re.M).group(1))
    assert shared < 1024, "%d kB of the trace file still mapped" % shared   # the header's pages only
    assert stop_steady(proc)[::2] == (0, b"")


def test_a_second_mrhooker_is_refused_while_one_is_attached(base_env, mrhooker, steady, warm):
    proc = start([steady, FOREVER, 10000])
    wait_running(proc)
    first = subprocess.Popen([sys.executable, "-m", "mrhooker", "trace", "-e", "write", "-D", "3", "-p",
                              str(proc.pid)], env=base_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    wait_for(lambda: _threads(proc.pid) >= 2, what="the runtime's thread")
    second = mrhooker("trace", "-e", "write,getpid", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert second.returncode == 2 and "attached by another mrhooker" in second.err, second
    _, err = first.communicate(timeout=RUN_TIMEOUT)
    assert first.returncode == 0 and len(write_lines(err)) > 100, err   # the first kept every call
    third = mrhooker("trace", "-e", "write,getpid", "-D", "0.3", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert third.returncode == 0 and write_lines(third.err), third   # once it is gone, another build attaches
    assert stop_steady(proc)[::2] == (0, b"")


def test_two_processes_each_line_says_whose(mrhooker, steady, warm):
    a, b = start([steady, FOREVER, 10000]), start([steady, FOREVER, 10000])
    wait_running(a)
    r = mrhooker("trace", "-e", "write", "-D", "0.5", "-p", "%d,%d" % (a.pid, b.pid), timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    lines = [line for line in r.err.splitlines() if "write(" in line]
    assert lines and all(line.startswith("[pid ") for line in lines), r.err
    assert {int(p) for p in re.findall(r"^\[pid\s+(\d+)\]", r.err, re.M)} == {a.pid, b.pid}
    for proc in (a, b):
        assert stop_steady(proc)[::2] == (0, b"")


EXECER_C = r"""
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    for (int i = 0; i < atoi(argv[1]); i++) {
        if (write(1, "w\n", 2) != 2) return 1;
        usleep(10000);
    }
    execl("/bin/sleep", "sleep", "0.5", (char *)0);
    return 2;
}
"""


def test_an_exec_ends_the_attach_and_says_so(mrhooker, cprog, warm):
    writes = int(scaled(150))   # the attach (~0.3 s quiet) is over well before the exec
    prog = cprog(EXECER_C)
    proc = start([prog, writes])
    wait_running(proc, 0.1)
    r = mrhooker("trace", "-e", "write", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and "Process %d executed " % proc.pid in r.err and "sleep: detached" in r.err, r
    status, out, err = finish(proc)
    assert (status, out, err) == (0, b"w\n" * writes, b"")


SECCOMP_C = r"""
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>
int main(void)
{
    struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog prog = {1, allow};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) return 3;
    for (int i = 0; i < 300; i++) {
        if (write(1, "s\n", 2) != 2) return 1;
        usleep(10000);
    }
    return 0;
}
"""


def test_a_process_with_a_seccomp_filter_of_its_own_is_refused(mrhooker, cprog, warm):
    prog = cprog(SECCOMP_C)
    proc = start([prog])
    time.sleep(0.1)
    r = mrhooker("trace", "-e", "write", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 2 and "seccomp" in r.err and r.err.count("\n") == 1, r
    status, out, err = finish(proc)
    assert (status, out, err) == (0, b"s\n" * 300, b"")


def test_detaching_while_injected_calls_hammer(mrhooker, steady, warm):
    """A detach while the program makes injected calls as fast as it can: the table of rules goes away under
    calls that are reading it (it crashed the program 1 time in 5)."""
    proc = start([steady, FOREVER, 50])
    wait_running(proc)
    for _ in range(5):
        r = mrhooker("trace", "-q", "--inject", "write:error=EIO:when=2+2", "-D", "0.2", "-p", proc.pid,
                     timeout=RUN_TIMEOUT)
        assert r.returncode == 0, r
        assert proc.poll() is None
    status, count, err = stop_steady(proc)
    assert status == 0 and re.match(rb"failed 5 \d+\n$", err), err


def test_outputs_to_files_and_hook_output_with_o(mrhooker, steady, script, tmp_path, warm):
    """-o and --json with -p, as with a launched program; a hook script's print to -o FILE."""
    proc = start([steady, FOREVER, 10000])
    wait_running(proc)
    lines, records = tmp_path / "lines.txt", tmp_path / "calls.json"
    r = mrhooker("trace", "-e", "write", "-o", lines, "--json", records, "-D", "0.5", "-p", proc.pid,
                 timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and "Process %d detached" % proc.pid in r.err, r
    seen = write_lines(lines.read_text())
    import json
    calls = [json.loads(line) for line in records.read_text().splitlines()]
    assert seen and len(calls) == len(seen) and all(c["name"] == "write" for c in calls), calls[:2]
    hook_out = tmp_path / "hooks.txt"
    r = mrhooker("-o", hook_out, "-D", "0.5", "-p", proc.pid, script("live.py", HOOK_PY), timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and "hooked line" not in r.err, r
    assert re.search(r"^hooked line \d+$", hook_out.read_text(), re.M)
    assert stop_steady(proc)[::2] == (0, b"")


SPIN_C = r"""
#include <signal.h>
#include <unistd.h>
static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }
int main(void)
{
    signal(SIGTERM, on_term);
    while (!stop)
        for (int i = 0; i < 100000; i++) getpid();   /* faster than any reader: the ring stays full */
    return 0;
}
"""


def test_duration_ends_the_attach_while_the_ring_stays_full(mrhooker, cprog, tmp_path):
    # (the program spins until SIGTERM: it ran 8 s once, and a loaded CI's first build for -p took them all)
    prog = cprog(SPIN_C)
    proc = start([prog])
    wait_running(proc)
    r = mrhooker("trace", "-e", "getpid,time", "-o", tmp_path / "lines", "-D", "1", "-p", proc.pid,
                 timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and "Process %d detached" % proc.pid in r.err, r   # at its -D: the program runs on
    assert proc.poll() is None
    assert (tmp_path / "lines").read_text().startswith("getpid() = %d\n" % proc.pid)
    status, _, err = terminate(proc)
    assert (status, err) == (0, b"")


# Forks in a tight loop (each child exits at once; the parent waits for it) until SIGTERM; then prints how many
# forks it made and how many children did not exit 0.
FORK_LOOP_C = r"""
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }
int main(void)
{
    long forks = 0, bad = 0;
    signal(SIGTERM, on_term);
    while (!stop) {
        pid_t c = fork();
        if (c == 0) _exit(0);
        int st;
        if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
        forks++;
    }
    printf("forks %ld bad %ld\n", forks, bad);
    return 0;
}
"""


def test_attaches_to_a_program_that_forks_all_the_time(mrhooker, cprog, warm):
    """The thread that loads the runtime must hold none of the locks the load takes. Stopped inside a fork, it
    held them: in fork's clone (glibc holds every malloc arena lock across it once a process has had a second
    thread, which the first attach gives it), or in a build's own fork handler (its start_lock; the same build
    attached again waited for itself). The load never returned, and the loader's lock it took hung the program
    for good. About one attach in 25 did, when the same trace build was attached again and again."""
    proc = start([cprog(FORK_LOOP_C)])
    wait_running(proc)
    for i in range(30):
        r = mrhooker("trace", "-e", "write", "-D", "0.02", "-p", proc.pid, timeout=RUN_TIMEOUT)
        assert r.returncode == 0, (i, r)
    proc.terminate()
    status, out, err = finish(proc)
    assert status == 0 and err == b"" and re.fullmatch(rb"forks \d+ bad 0\n", out), (status, out, err)


# Runs memset (the C library's code) all the time, a write every 2000 rounds, until SIGTERM.
MEMSET_LOOP_C = r"""
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }
static char buf[1 << 20];
int main(void)
{
    signal(SIGTERM, on_term);
    for (long i = 0; !stop; i++) {
        memset(buf, (int)i, sizeof buf);
        if (i % 2000 == 0 && write(1, buf, 1) != 1) return 1;
    }
    return 0;
}
"""


def test_attaches_to_a_program_always_in_the_c_library(mrhooker, cprog, warm):
    """A thread running the C library's own code may hold one of its locks (malloc's): it is taken only when no
    thread was anywhere better at 40 stops in a row. memset holds none: the attach works, a little later."""
    proc = start([cprog(MEMSET_LOOP_C)], stdout=subprocess.DEVNULL)
    wait_running(proc)
    r = mrhooker("trace", "-e", "write", "-D", "0.2", "-p", proc.pid, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and "write(1, " in r.err, r
    proc.terminate()
    assert finish(proc)[::2] == (0, b"")
