"""Helpers shared by the tests that run hooked programs."""
import glob
import os
import re
import subprocess
import socket
import sys

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")   # the package under test



def load_factor():
    """How much slower than a quiet machine this one runs now, from the jobs waiting for its cores (the 1-minute
    load average per core): 1 on a quiet machine, 2 with a CPU-bound job per core beside the tests. Timeouts
    that only catch hangs are scaled by it (scaled()), so that a loaded machine makes a run slow, not failed."""
    try:
        return max(1.0, 1.0 + os.getloadavg()[0] / (os.cpu_count() or 1) - 0.5)
    except OSError:
        return 1.0


def scaled(seconds):
    """A timeout that catches a hang, given for a quiet machine, scaled to this one's load now."""
    return seconds * load_factor()


RUN_TIMEOUT = scaled(60)   # seconds for one hooked run; a deadlock fails the test at this point

# A library function, so that the programs' calls to it go through the PLT (and so to the preload library).
LIBFOO_SRC = """\
int foo(int x) { return x + 1; }
"""

# Watchdog for programs that might deadlock: kills the process from a thread that never runs a hook (its
# message goes out by a raw system call: write() may be hooked, and stuck).
WATCHDOG_C = """\
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
static void *watchdog_main(void *arg)
{
    sleep(*(int *)arg);
    static const char msg[] = "watchdog: the program is stuck\\n";
    if (syscall(SYS_write, 2, msg, sizeof msg - 1) < 0) _exit(98);
    _exit(99);
}
/* Signals stay blocked in the watchdog thread, so that they interrupt the threads under test. */
static void start_watchdog(int seconds)
{
    static int s;
    s = seconds;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    pthread_create(&t, NULL, watchdog_main, &s);
    pthread_detach(t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
"""

DEBIAN_PYTHON = "/usr/bin/python3"
# Every Python 3 on this machine: the target's version does not matter (pyenv's 3.6 .. 3.13, Debian's).
ALL_PYTHONS = [sys.executable] + sorted(
    p for p in glob.glob("/root/.pyenv/versions/3.*/bin/python3") if os.path.realpath(p) != os.path.realpath(
        sys.executable)) + [p for p in [DEBIAN_PYTHON] if os.path.exists(p)]


# What a first run says of its preparation (cli.Console.progress).
PROGRESS = re.compile(r"^mrhooker: (?:.* \(once: cached for the next runs\) \.\.\.|ready in [0-9.]+ s)\n", re.M)


def without_progress(text):
    """stderr without the lines a first run adds: whether a test's run is the first to build something depends
    on the tests before it."""
    return PROGRESS.sub("", text)


def lines_starting(text, prefix):
    return [line for line in text.splitlines() if line.startswith(prefix)]


def unhooked(args, **kwargs):
    return subprocess.run([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=RUN_TIMEOUT, **kwargs)


def assert_clean(r):
    """The target and the runtime ended normally."""
    assert r.returncode == 0, r
    assert "Fatal Python error" not in r.err, r
    assert "watchdog" not in r.err, r
    assert "Traceback" not in r.err, r


# Buffers of items and memory by address (tests/test_trace.py, test_strace_agreement.py): fwrite's and fread's
# buffers of size * nmemb bytes, realloc's pointer; run as `prog FILE-OF-0123456789 [reallocarray]`.
STREAMS_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    char buf[64];
    fwrite("hello world\n", 1, 12, stdout);
    fwrite("abcdefgh", 4, 2, stdout);
    fwrite_unlocked("xyz!", 2, 2, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    FILE *f = fopen(argv[1], "r");
    size_t n = fread(buf, 1, sizeof buf, f);
    rewind(f);
    size_t items = fread_unlocked(buf, 4, 16, f);   /* ten bytes: two whole items of four */
    size_t none = fread(buf, 1, sizeof buf, f);     /* at the end */
    fclose(f);
    char *p = malloc(16);
    strcpy(p, "secret-ish");
    p = realloc(p, 4096);
    if (argc > 2)
        p = reallocarray(p, 2, 4096);
    free(p);
    printf("%zu %zu %zu\n", n, items, none);
    return 0;
}
"""


# A busy program: writes one byte at a time to /dev/null for argv[1] seconds. On SIGTERM, SIGINT or SIGHUP it
# says on stderr how many writes returned (by a raw system call: never traced), then dies by the signal.
BUSY_C = r"""
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static volatile long written;
static void on_signal(int sig)
{
    char buf[40] = "writes ", digits[24];
    int len = 7, k = 0;
    long n = written;
    do digits[k++] = (char)('0' + n % 10); while (n /= 10);
    while (k) buf[len++] = digits[--k];
    buf[len++] = '\n';
    if (syscall(SYS_write, 2, buf, len) < 0) _exit(90);
    signal(sig, SIG_DFL);
    raise(sig);
}
int main(int argc, char **argv)
{
    int fd = open("/dev/null", O_WRONLY);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGHUP, on_signal);
    time_t end = time(NULL) + (argc > 1 ? atoi(argv[1]) : 60);
    while (time(NULL) < end)
        for (int i = 0; i < 1000; i++) {
            write(fd, "x", 1);
            written++;
        }
    return 0;
}
"""


def live_processes(program):
    """The pids of the processes running `program` (a path) that have not ended (zombies have)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/exe" % name) != program:
                continue
            with open("/proc/%s/stat" % name, "rb") as f:
                if f.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X"):
                    found.append(int(name))
        except OSError:
            pass
    return found


def wait_for(condition, timeout=30, what="the condition"):
    """Polls condition() until it is true; fails after timeout seconds (scaled to the machine's load)."""
    import time
    deadline = time.monotonic() + scaled(timeout)
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for %s" % what
        time.sleep(0.05)


def trace_files_of(pid):
    """mrhooker's trace files in /dev/shm made by the mrhooker process pid."""
    return [n for n in os.listdir("/dev/shm") if n.startswith("mrhooker-trace-%d-" % pid)]


def children(pid):
    """The pids of a process's children (of all its threads)."""
    found = []
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                found += [int(child) for child in f.read().split()]
        except OSError:
            pass
    return found


class Result:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    @property
    def out(self):
        return self.stdout.decode(errors="replace")

    @property
    def raw_err(self):
        return self.stderr.decode(errors="replace")

    @property
    def err(self):
        return without_progress(self.raw_err)   # whether a run builds depends on the tests before it

    def __repr__(self):
        return "<Result rc=%s\nstdout=%s\nstderr=%s>" % (self.returncode, self.out[-3000:], self.err[-3000:])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
