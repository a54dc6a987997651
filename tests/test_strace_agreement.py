"""`mrhooker trace` says what strace says (issue 16, item 1): a differential test.

Each program of the corpus runs twice in the same fresh directory, under `strace -f` and under `mrhooker trace
-f` with one set of functions (FUNCTIONS; one build for the whole module), and every library call is compared
field by field with the system call glibc makes for it (tests/stracediff.py: the mapping table, the pairing, the
comparison, and the short list of deliberate differences). The corpus: a C program calling the wrappers that map
one to one onto system calls with tricky arguments (tests/strace_corpus.c, one test per section), and real
programs (cat, cp, ls, sort, dd, python3, curl, sqlite3, tar, gzip). Then what the lines say about processes
(-f's order, -T of fork's child, -ff's files), and, where strace has no opinion, ltrace and the headers.

A disagreement fails its test; its message lists each one with both lines. Run them with
`python -m pytest -q tests/test_strace_agreement.py` (`-m "not strace"` leaves them out).
"""
import os
import re
import shutil
import socket
import subprocess

import pytest

import stracediff as sd
from helpers import free_port
from helpers import RUN_TIMEOUT, STREAMS_C

pytestmark = [pytest.mark.strace,
              pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed")]

HERE = os.path.dirname(os.path.abspath(__file__))

# The library functions traced in every run (one set: one build), and so the system calls strace traces.
FUNCTIONS = sorted(set("""
    open open64 openat openat64 creat close read write pread64 pwrite64 lseek lseek64 stat lstat fstat fstatat
    stat64 lstat64 fstat64 fstatat64 statx access faccessat mkdir mkdirat chmod fchmod fchmodat fchown fchownat
    readlink readlinkat getcwd rename renameat unlink unlinkat rmdir symlink symlinkat linkat pipe pipe2 dup dup2
    dup3 fcntl fcntl64 ioctl poll ppoll select pselect mmap mmap64 munmap mprotect socket socketpair bind listen
    connect accept accept4 getpeername getsockname getsockopt setsockopt send recv sendto recvfrom shutdown fork
    execve execv waitpid wait wait4 waitid kill raise sigaction sigprocmask clock_gettime nanosleep clock_nanosleep exit
    _exit copy_file_range posix_fadvise fsync fdatasync ftruncate ftruncate64 utimensat futimens eventfd
    epoll_create1 epoll_ctl epoll_wait getrlimit setrlimit readv writev preadv pwritev
    renameat2 madvise msync mlock2 getitimer setitimer sendfile splice flock getpriority setpriority sendmsg recvmsg prctl
    statfs fstatfs sched_getaffinity sched_setaffinity mincore
""".split()))
SYSCALLS = sd.syscalls_for(FUNCTIONS)

# The C corpus' sections, in order (access("=NAME", F_OK) marks each).
SECTIONS = ("open", "escape", "stat", "access", "paths", "lseek", "pipe", "fcntl", "ioctl", "poll", "events",
            "vectors", "mmap",
            "inet",
            "inet6", "unix", "msg", "wait", "exec", "signal", "time", "end")


def _source(name):
    with open(os.path.join(HERE, name)) as f:
        return f.read()


class Runs:
    """Runs a command under both tracers in the same fresh directory (tmp/run, made anew for each), with the same
    environment, and compares them."""

    def __init__(self, base, mrhooker, env):
        self.base = base
        self.run_dir = base / "run"
        self.out = base / "out"
        self.out.mkdir(exist_ok=True)
        self.mrhooker = mrhooker
        self.env = env

    def fresh(self, setup=None):
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir()
        if setup:
            setup(self.run_dir)

    def both(self, args, setup=None, functions=FUNCTIONS, extra_env=None, stdin=None):
        env = dict(self.env, **(extra_env or {}))
        self.fresh(setup)
        with open(self.out / "strace.stdout", "wb") as stdout:
            s = sd.run_strace(args, self.out / "strace.txt", sd.syscalls_for(functions), self.run_dir, env,
                              RUN_TIMEOUT, stdin=stdin, stdout=stdout)
        assert b"strace:" not in s.stderr, s.stderr
        self.fresh(setup)
        with open(self.out / "mrhooker.stdout", "wb") as stdout:
            m = self.mrhooker("trace", "-f", "-o", self.out / "mrhooker.txt", "--json", self.out / "mrhooker.json",
                              "-e", ",".join(functions), *args, cwd=self.run_dir, env=extra_env,
                              timeout=RUN_TIMEOUT, stdout=stdout)
        assert "mrhooker:" not in m.err and "Traceback" not in m.err, m
        assert m.returncode == s.returncode, (m, s.stderr)
        strace = sd.parse_strace((self.out / "strace.txt").read_text())
        mine = sd.parse_mrhooker((self.out / "mrhooker.txt").read_text(), (self.out / "mrhooker.json").read_text())
        return strace, mine


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mrhooker, base_env):
    return Runs(tmp_path_factory.mktemp("stracediff"), mrhooker, base_env)


def report(disagreements):
    return "%d disagreement(s) with strace:\n%s" % (len(disagreements), "\n".join(str(d) for d in disagreements))


# ---- the harness itself -------------------------------------------------------------------------------------

def test_fields_split_at_top_level_commas_only():
    fields = sd.split_fields('3, "a, \\"b", {x=1, y=[2, 3]}, 0x7ff /* 35 vars, */, _IOC(_IOC_NONE, 0x56, 0, 0)')
    assert fields == ["3", '"a, \\"b"', "{x=1, y=[2, 3]}", "0x7ff /* 35 vars, */", "_IOC(_IOC_NONE, 0x56, 0, 0)"]
    assert sd.parse_call('fcntl(11, F_GETFL)                = 0x8002 (flags O_RDWR|O_LARGEFILE)') == (
        "fcntl", ["11", "F_GETFL"], ("0x8002", None, None, "flags O_RDWR|O_LARGEFILE"))
    assert sd.parse_call('getcwd(0x7ff, 2) = NULL ERANGE (Numerical result out of range) <0.000002>') == (
        "getcwd", ["0x7ff", "2"], ("NULL", "ERANGE", "Numerical result out of range", None))


def test_strace_lines_split_by_f_are_joined():
    trace = sd.parse_strace("7 wait4(8,  <unfinished ...>\n8 exit_group(3) = ?\n8 +++ exited with 3 +++\n"
                            "7 <... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 3}], 0, NULL) = 8\n")
    (wait,) = trace.calls[7]
    assert wait.args == ["8", "[{WIFEXITED(s) && WEXITSTATUS(s) == 3}]", "0", "NULL"] and wait.value == "8"
    assert trace.exits == {8: "exited with 3"} and trace.first_tid == 7


# ---- the C corpus ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(cprog, runs):
    prog = cprog(_source("strace_corpus.c"))
    strace, mine = runs.both([prog, free_port()])
    return sd.Comparison(strace, mine, sections=True, reverse=True)


def test_the_corpus_sections_are_all_seen_by_both(corpus):
    """The harness itself: every section's marker is paired, and no disagreement falls outside a section."""
    markers = [m.args[0] for m, s in corpus.pairs if m.name == "access" and m.args[0].startswith('"=')]
    assert markers == ['"=%s"' % name for name in SECTIONS]
    assert [d for d in corpus.disagreements if d.section not in SECTIONS] == []


@pytest.mark.parametrize("section", SECTIONS)
def test_c_corpus_agrees_with_strace(corpus, section):
    found = corpus.unexplained(section)
    assert not found, report(found)


# ---- real programs -----------------------------------------------------------------------------------------

LINES = b"delta\nalpha\tone\ncharlie \"q\" \\ \x01\x80\nbravo\n"
MTIME = 946684800   # what gzip and tar write comes from the files' times: the same in both runs


def _text_files(d):
    (d / "in.txt").write_bytes(LINES * 3)
    os.utime(d / "in.txt", (MTIME, MTIME))


def _tree(d):
    _text_files(d)
    (d / "d").mkdir()
    (d / "d" / "a").write_bytes(b"a\n")
    (d / "d" / "b").write_bytes(LINES)
    for p in (d / "d" / "a", d / "d" / "b", d / "d"):
        os.utime(p, (MTIME, MTIME))


PYTHON_SCRIPT = r"""
import os, socket
with open('p.bin', 'wb') as f:
    f.write(b'\x80\x011A\n\x007\t\r"\\')
os.stat('p.bin'); os.chmod('p.bin', 0o600); os.rename('p.bin', 'q.bin'); os.listdir('.')
r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
os.write(w, b'hi\t\r\n'); os.read(r, 10)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.close()
os.unlink('q.bin')
"""

class Program:
    """A real program of the corpus: its arguments, the set-up of its fresh directory, the library functions whose
    calls aren't compared, the (function, field) whose data differs from run to run, its environment."""

    def __init__(self, args, setup=None, ignore=(), unsteady=(), env=None):
        self.args, self.setup, self.ignore, self.unsteady, self.env = args, setup, ignore, unsteady, env


PROGRAMS = {
    "cat": Program(["cat", "in.txt"], _text_files),
    "cp": Program(["cp", "-p", "in.txt", "copy.txt"], _text_files),
    "ls": Program(["ls", "-la", "--color=never", "."], _tree),
    "sort": Program(["sort", "-r", "in.txt"], _text_files),
    "dd": Program(["dd", "if=in.txt", "of=out.dd", "bs=7", "count=3", "conv=fsync,notrunc", "status=none"],
                  _text_files),
    # a fixed hash seed (dicts' sizes depend on it); when Python's allocator maps an arena depends on the heap,
    # which the preloaded runtime shares: its mmap64s are compared in the C corpus
    "python3": Program(["/usr/bin/python3", "-s", "-c", PYTHON_SCRIPT], ignore=("mmap64", "munmap"),
                       env={"PYTHONHASHSEED": "0"}),
    # how often curl polls, and how the server's replies are split between recv calls, is timing
    # curl ignores SIGPIPE around each step of its transfer (sigaction), as many times as it polls
    "curl": Program(["curl", "-s", "-o", "out.html", "URL"], ignore=("poll", "recv", "sigaction")),
    # sqlite3 reads /dev/urandom, and writes a random nonce into its journal's header
    "sqlite3": Program(["sqlite3", "db.sqlite", "create table t(x); insert into t values ('a\tb'); "
                        "select count(*) from t;"], unsteady=(("read", 1), ("pwrite64", 1))),
    "tar": Program(["tar", "-cf", "a.tar", "d"], _tree),
    "gzip": Program(["gzip", "-k", "-9", "in.txt"], _text_files),
    "xz": Program(["xz", "-k", "-T1", "in.txt"], _text_files),
    "find": Program(["find", ".", "-name", "*a*"], _tree),
    # grep reads /proc/self/maps (its stack overflow guard): the text of an address space
    "grep": Program(["grep", "-rn", "alpha", "."], _tree, ignore=("read",)),
    # dash vforks a simple command: under mrhooker vfork runs as fork (README), and its line is fork's
    "sh": Program(["sh", "-c", "cat in.txt | sort > s.txt; wc -l s.txt; ls d"], _text_files, ignore=("fork",)),
    "head": Program(["head", "-c", "20", "in.txt"], _text_files),
    "openssl": Program(["openssl", "dgst", "-sha256", "in.txt"], _text_files),
    "mkdir": Program(["mkdir", "-p", "x/y/z"]),
    "mv": Program(["mv", "in.txt", "moved.txt"], _text_files),
    "rm": Program(["rm", "-rf", "d"], _tree),
    "touch": Program(["touch", "-d", "2000-01-01", "t.txt"]),
    "stat": Program(["stat", "in.txt"], _text_files),
    "ln": Program(["ln", "-s", "in.txt", "link"], _text_files),
    "bash": Program(["bash", "--norc", "-c", "echo hi > o.txt; cat o.txt"]),
    "md5sum": Program(["md5sum", "in.txt", "d/a"], _tree),
    "du": Program(["du", "-a", "."], _tree),
    "chmod": Program(["chmod", "-R", "go-w", "d"], _tree),
    "tee": Program(["sh", "-c", "cat in.txt | tee t1.txt t2.txt > /dev/null"], _text_files, ignore=("fork",)),
    "split": Program(["split", "-l", "3", "in.txt", "part."], _text_files),
    "truncate": Program(["truncate", "-s", "7", "in.txt"], _text_files),
    "install": Program(["install", "-m", "640", "in.txt", "inst.txt"], _text_files),
    "bzip2": Program(["bzip2", "-k", "in.txt"], _text_files),
    "od": Program(["od", "-c", "in.txt"], _text_files),
    "date": Program(["date", "-r", "in.txt"], _text_files),
    "id": Program(["id"]),
    "uniq": Program(["uniq", "-c", "in.txt", "u.txt"], _text_files),
    "awk": Program(["awk", "{print $1 > \"aw.txt\"}", "in.txt"], _text_files),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_real_program_agrees_with_strace(runs, http_server, name):
    program = PROGRAMS[name]
    if not shutil.which(program.args[0]):
        pytest.skip("%s is not installed" % program.args[0])
    args = [http_server + "/" if a == "URL" else a for a in program.args]
    strace, mine = runs.both(args, setup=program.setup, extra_env=program.env)
    comparison = sd.Comparison(strace, mine, ignore=program.ignore, unsteady=program.unsteady)
    assert comparison.pairs, "nothing was paired: %s" % mine.order[:5]
    found = comparison.unexplained()
    assert not found, report(found)


# ---- what the lines say about processes --------------------------------------------------------------------

EXEC_CHILDREN = r"""
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
extern char **environ;
int main(int argc, char **argv)
{
    for (int i = 0; i < 3; i++) {
        pid_t c = fork();
        if (c == 0) {
            char *args[] = {"sh", "-c", i == 1 ? "exit 7" : "exit 0", NULL};
            execve("/bin/sh", args, environ);
            _exit(127);
        }
        int st;
        waitpid(c, &st, 0);
    }
    pid_t c = fork();
    if (c == 0)
        _exit(4);
    int st;
    waitpid(c, &st, 0);
    return 0;
}
"""


def _lines(text):
    return [l for l in text.splitlines() if l.strip()]


def test_f_a_childs_execve_comes_before_the_wait_that_reaps_it(cprog, runs):
    """strace -f: `[pid C] execve(...) = 0` is printed before the parent's wait4(...) = C (the child can't be
    reaped before it exec'd). The same must hold in mrhooker's lines."""
    prog = cprog(EXEC_CHILDREN)
    functions = ["fork", "execve", "waitpid"]
    strace, mine = runs.both([prog], functions=functions)
    comparison = sd.Comparison(strace, mine)
    for trace, wait in ((strace, "wait4"), (mine, "waitpid")):
        position = {id(c): i for i, c in enumerate(trace.order)}
        execs = {c.tid: c for c in trace.order if c.name == "execve" and c.value == "0" and c.tid != trace.first_tid}
        assert len(execs) == 3, trace.order
        for c in trace.order:
            if c.name == wait and sd.INT.match(c.value) and int(c.value) in execs:
                e = execs[int(c.value)]
                assert position[id(e)] < position[id(c)], "%s comes after %s" % (e.line, c.line)
    assert not comparison.unexplained(), report(comparison.unexplained())


def test_f_shows_how_each_child_ended(cprog, runs):
    """strace -f ends each process with `[pid N] +++ exited with S +++`, children included."""
    prog = cprog(EXEC_CHILDREN)
    strace, mine = runs.both([prog], functions=["fork", "execve", "waitpid"])
    children = sorted(v for k, v in strace.exits.items() if k != strace.first_tid)
    assert children == ["exited with 0", "exited with 0", "exited with 4", "exited with 7"]
    comparison = sd.Comparison(strace, mine)
    assert sorted(v for k, v in mine.exits.items() if k != mine.first_tid) == children, \
        report(comparison.disagreements)


FORKS = r"""
#include <sys/wait.h>
#include <unistd.h>
int main(void)
{
    for (int i = 0; i < 5; i++) {
        pid_t c = fork();
        if (c == 0)
            _exit(0);
        waitpid(c, NULL, 0);
    }
    return 0;
}
"""


def test_T_the_child_side_of_fork_does_not_outlast_the_call(cprog, runs, mrhooker):
    """-T: strace shows one duration for a fork (clone, in the parent). A line for the child's return from fork
    may only say how long the call took: never longer than the parent's side of the same fork (today the child's
    duration runs from the parent's entry to whenever the child was first scheduled)."""
    prog = cprog(FORKS)
    runs.fresh()
    r = mrhooker("trace", "-f", "-T", "-e", "fork,waitpid", prog, cwd=runs.run_dir, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    parents = [l for l in _lines(r.err) if re.match(r"fork\(\) = \d+ <", l)]
    children = {int(m.group(1)): l for l in _lines(r.err) for m in [re.match(r"\[pid (\d+)\] fork\(\) = 0", l)] if m}
    assert len(parents) == 5, r
    for line in parents:
        pid = int(re.match(r"fork\(\) = (\d+)", line).group(1))
        parent = float(re.search(r"<(\d+\.\d+)>$", line).group(1))
        child = children.get(pid, "")
        m = re.search(r"<(\d+\.\d+)>$", child)
        assert m is None or float(m.group(1)) <= parent, "%s\n%s" % (line, child)


def test_ff_files_end_with_how_the_process_ended(cprog, runs, mrhooker):
    """-ff -o FILE: strace's FILE.PID of every process ends with `+++ exited with S +++`, exec'd children too."""
    prog = cprog(EXEC_CHILDREN)
    runs.fresh()
    prefix = runs.out / "ff-strace"
    s = subprocess.run(["strace", "-ff", "-q", "-e", "signal=none", "-e", "trace=clone,execve,wait4,exit_group",
                        "-o", str(prefix), prog], cwd=runs.run_dir, timeout=RUN_TIMEOUT, capture_output=True)
    assert s.returncode == 0, s
    strace_ends = sorted(_lines(open(p).read())[-1] for p in _files(prefix))
    assert strace_ends == sorted(["+++ exited with 0 +++"] * 3 + ["+++ exited with 4 +++", "+++ exited with 7 +++"])
    runs.fresh()
    prefix = runs.out / "ff-mrhooker"
    r = mrhooker("trace", "-ff", "-o", prefix, "-e", "fork,execve,waitpid", prog, cwd=runs.run_dir,
                 timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    ends = {p: (_lines(open(p).read()) or ["(empty)"])[-1] for p in _files(prefix)}
    assert sorted(ends.values()) == strace_ends, "\n".join("%s: %s" % kv for kv in sorted(ends.items()))


def _files(prefix):
    return sorted(str(p) for p in prefix.parent.glob(prefix.name + ".*"))


EXEC_ARGV = r"""
#include <unistd.h>
int main(void)
{
    static char *argv[5002] = {"/bin/true", "0123456789abcdefghijklmnopqrstuvwxyz", "x\ny\200"};
    for (int i = 3; i < 5001; i++) argv[i] = "a";
    char *one[] = {"A=1", NULL};
    execve("/bin/true", argv, one);
    return 1;
}
"""


GETCWD = r"""
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>
int main(void)
{
    char buf[PATH_MAX];
    getcwd(buf, sizeof buf);
    free(realpath(".", NULL));
    return 0;
}
"""


def test_s_never_cuts_a_path_getcwd_returns(cprog, runs, mrhooker):
    """strace shows paths whole at any -s (getcwd's buffer too); the path getcwd and realpath return is the same
    path, whole as well, not cut at -s."""
    prog = cprog(GETCWD)
    runs.fresh()
    out = runs.out / "getcwd-strace"
    s = subprocess.run(["strace", "-f", "-q", "-s", "3", "-e", "trace=getcwd", "-o", str(out), prog],
                       cwd=runs.run_dir, timeout=RUN_TIMEOUT, capture_output=True)
    assert s.returncode == 0, s
    strace = [c for c in sd.parse_strace(out.read_text()).order if c.name == "getcwd"][0]   # (realpath's too)
    r = mrhooker("trace", "-s", "3", "-e", "getcwd,realpath", prog, cwd=runs.run_dir, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    getcwd, realpath = [c for c in sd.parse_mrhooker(r.err).order if c.name in ("getcwd", "realpath")]
    assert getcwd.args[0] == getcwd.value == realpath.value == strace.args[0] == '"%s"' % runs.run_dir, r.err


def test_the_commands_own_exec_comes_before_its_end(cprog, runs, mrhooker):
    """The command execs another program, which ends untraced: strace's execve(...) = 0 comes before +++ exited
    with 0 +++ (mrhooker reaps the command itself, and held the exec until then)."""
    prog = cprog(EXEC_ARGV)
    runs.fresh()
    out = runs.out / "own-exec-strace"
    s = subprocess.run(["strace", "-q", "-e", "trace=execve", "-o", str(out), prog], cwd=runs.run_dir,
                       timeout=RUN_TIMEOUT, capture_output=True)
    assert s.returncode == 0, s
    r = mrhooker("trace", "-e", "execve", prog, cwd=runs.run_dir, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    shape = lambda lines: [re.sub(r"\(.*", "(...)", l) for l in lines[-2:]]
    assert shape(_lines(r.err)) == shape(_lines(out.read_text())) == ["execve(...)", "+++ exited with 0 +++"], r.err


@pytest.mark.parametrize("size", ["0", "2", "32", "64", "4096"])
def test_s_shows_as_many_argv_strings_as_strace(cprog, runs, mrhooker, size):
    """-s N: strace shows at most N strings of an argv, then `...` (`[...]` for -s 0), and each cut at N bytes;
    an environment of one string is `/* 1 var */`."""
    prog = cprog(EXEC_ARGV)
    runs.fresh()
    out = runs.out / ("argv-strace-" + size)
    s = subprocess.run(["strace", "-f", "-q", "-s", size, "-e", "trace=execve", "-o", str(out), prog], cwd=runs.run_dir,
                       timeout=RUN_TIMEOUT, capture_output=True)
    assert s.returncode == 0, s
    strace = [c for c in sd.parse_strace(out.read_text()).order if c.args[0] == '"/bin/true"']
    r = mrhooker("trace", "-s", size, "-e", "execve", prog, cwd=runs.run_dir, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    mine = [c for c in sd.parse_mrhooker(r.err).order if c.name == "execve"]
    assert len(strace) == len(mine) == 1, (strace, r.err)
    assert sd.ADDRESS.sub("0x...", mine[0].args[2].split()[0]) == "0x..."
    assert mine[0].args[:2] + mine[0].args[2].split()[1:] == strace[0].args[:2] + strace[0].args[2].split()[1:]


# ---- where strace has no opinion: ltrace and the headers ---------------------------------------------------

LIBRARY = ["fopen", "fclose", "getenv", "setenv", "opendir", "getaddrinfo"]


@pytest.fixture(scope="module")
def library_calls(cprog, runs):
    """The ltrace corpus under ltrace and under mrhooker: [(ltrace Call, mrhooker Call)] in order."""
    return _under_ltrace_and_mrhooker(runs, cprog(_source("ltrace_corpus.c")), LIBRARY)


def _under_ltrace_and_mrhooker(runs, prog, functions, args=(), setup=None):
    """prog run under ltrace and under mrhooker, each tracing `functions`: [(ltrace Call, mrhooker Call)]."""
    if not shutil.which("ltrace"):
        pytest.skip("ltrace is not installed")
    env = dict(runs.env, MRHOOKER_STRACEDIFF="x")
    runs.fresh(setup)
    out = runs.out / "ltrace.txt"
    lt = subprocess.run(["ltrace", "-f", "-o", str(out), "-e", "+".join(functions), prog] + list(args),
                        cwd=runs.run_dir, env=env, timeout=RUN_TIMEOUT, capture_output=True)
    assert lt.returncode == 0, lt
    ltrace = sd.Trace()
    for line in out.read_text().splitlines():
        m = re.match(r"(\d+) (?:\S+->)?(.*)$", line)
        if m:
            ltrace.add(int(m.group(1)), m.group(2), line)
    runs.fresh(setup)
    r = runs.mrhooker("trace", "-e", ",".join(functions), "-o", runs.out / "library.txt", prog, *args,
                      cwd=runs.run_dir, env={"MRHOOKER_STRACEDIFF": "x"}, timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    mine = sd.parse_mrhooker((runs.out / "library.txt").read_text())
    assert [c.name for c in ltrace.order] == [c.name for c in mine.order], (ltrace.order, mine.order)
    return list(zip(ltrace.order, mine.order))


def _ltrace_value(field, pointer):
    """ltrace's spelling -> strace's: nil (and a pointer result of 0) is NULL."""
    return "NULL" if field == "nil" or (pointer and field == "0") else field


def _disagreements_with_ltrace(calls, pointer_results, outputs=()):
    """What mrhooker shows otherwise than ltrace; outputs: (name, argument) of buffers the call fills, which
    ltrace shows as addresses and mrhooker by their bytes."""
    found = []
    for lt, mine in calls:
        expected = [_ltrace_value(a, True) for a in lt.args]
        for i, (e, m) in enumerate(zip(expected, mine.args)):
            if (mine.name, i) in outputs and sd.ADDRESS.match(e):
                continue
            if e != m and not (sd.ADDRESS.match(e) and sd.ADDRESS.match(m)):
                found.append("%s arg %d: ltrace %s | mrhooker %s\n  %s\n  %s" % (mine.name, i, e, m, lt.line,
                                                                                 mine.line))
        value = _ltrace_value(lt.value, mine.name in pointer_results)
        if value != mine.value and not (sd.ADDRESS.match(value) and sd.ADDRESS.match(mine.value)):
            found.append("%s result: ltrace %s | mrhooker %s\n  %s\n  %s" % (mine.name, value, mine.value, lt.line,
                                                                            mine.line))
    return found


def test_library_calls_agree_with_ltrace(library_calls):
    found = _disagreements_with_ltrace(library_calls, ("fopen", "opendir", "getenv"))
    assert not found, "\n".join(found)


STREAMS = ["fwrite", "fwrite_unlocked", "fread", "fread_unlocked", "realloc"]


def test_stream_buffers_and_realloc_agree_with_ltrace(cprog, runs):
    """fwrite's buffer is size * nmemb bytes, as ltrace shows it; realloc's pointer an address, as ltrace's;
    fread's buffer, which ltrace shows as an address, mrhooker shows as it was filled (tests/test_trace.py)."""
    prog = cprog(STREAMS_C, ["-O0", "-fno-builtin"])
    calls = _under_ltrace_and_mrhooker(runs, prog, STREAMS, ["ten"],
                                       setup=lambda d: (d / "ten").write_text("0123456789"))
    assert [mine.name for _lt, mine in calls] == ["fwrite", "fwrite", "fwrite_unlocked", "fread", "fread_unlocked",
                                                  "fread", "realloc"], calls
    found = _disagreements_with_ltrace(calls, ("realloc",), outputs=(("fread", 0), ("fread_unlocked", 0)))
    assert not found, "\n".join(found)
    assert [mine.args[0] for _lt, mine in calls if mine.name.startswith("fread")] == ['"0123456789"', '"01234567"',
                                                                                       '""'], calls


TIME_C = r"""
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void)
{
    time_t t;
    syscall(SYS_time, &t);   /* what strace sees (glibc's time() is the vDSO's: no system call) */
    syscall(SYS_time, NULL);
    time(&t);                /* what mrhooker traces */
    time(NULL);
    return 0;
}
"""


def test_time_is_dated_as_strace_dates_it(cprog, runs):
    """time() has no system call to compare with on x86-64 (the vDSO's), so its lines are compared in form with
    strace's lines of the time system call the same program makes: the filled time_t in brackets with its
    date in a comment, the result with its date beside."""
    prog = cprog(TIME_C)
    runs.fresh()
    s = sd.run_strace([prog], runs.out / "time.strace", ["time"], runs.run_dir, runs.env, RUN_TIMEOUT)
    m = runs.mrhooker("trace", "-o", runs.out / "time.mrhooker", "-e", "time", prog, cwd=runs.run_dir,
                      timeout=RUN_TIMEOUT)
    assert s.returncode == m.returncode == 0, m
    shape = re.compile(r"time\((\[(\d+) /\* (\S+) \*/\]|NULL)\) += (\d+) \((\S+)\)$")
    strace = [re.sub(r"^\d+ +", "", line) for line in (runs.out / "time.strace").read_text().splitlines()]
    strace = [line for line in strace if line.startswith("time(")]   # (-f's pid before each line, gone)
    mine = [line for line in (runs.out / "time.mrhooker").read_text().splitlines() if line.startswith("time(")]
    assert len(strace) == len(mine) == 2, (strace, mine)
    for line in strace + mine:
        match = shape.match(line)
        assert match, (line, strace, mine)
        if match.group(2):
            assert match.group(2) == match.group(4) and match.group(3) == match.group(5), line
    assert [line.startswith("time(NULL)") for line in mine] == [False, True], mine


def test_dates_are_in_the_local_time_zone_as_straces(runs):
    """strace dates a time in the local time zone, with its offset (+0530 here); the lines agree."""
    strace, mine = runs.both(["touch", "-d", "@946684800.5", "f"], functions=["futimens", "utimensat"],
                             extra_env={"TZ": "Asia/Kolkata"})
    comparison = sd.Comparison(strace, mine)
    assert not comparison.disagreements, report(comparison.disagreements)
    (call,) = [m for m, s in comparison.pairs]
    assert "2000-01-01T05:30:00.500000000+0530" in call.line, call.line


def _gai_error(host, service, **kwargs):
    try:
        socket.getaddrinfo(host, service, **kwargs)
    except socket.gaierror as e:
        return e.args
    return None


def test_getaddrinfo_results_are_named_as_netdb_h_names_them(library_calls):
    """getaddrinfo returns an EAI_* code, not -1 and errno: its line names the code as netdb.h does, with
    gai_strerror's text, as a failed call's errno is shown: `= -2 EAI_NONAME (Name or service not known)`."""
    names = {getattr(socket, n): n for n in dir(socket) if n.startswith("EAI_")}
    texts = {-2: _gai_error("not-a-number", None, flags=socket.AI_NUMERICHOST)[1],
             -8: _gai_error("127.0.0.1", "no-such-service-xyz", flags=socket.AI_NUMERICHOST,
                            type=socket.SOCK_DGRAM)[1],
             -6: _gai_error("127.0.0.1", None, family=12345, flags=socket.AI_NUMERICHOST)[1]}
    results = [mine.result for lt, mine in library_calls if mine.name == "getaddrinfo"]
    expected = ["-2 EAI_NONAME (%s)" % texts[-2], "0", "-8 EAI_SERVICE (%s)" % texts[-8],
                "-6 EAI_FAMILY (%s)" % texts[-6]]
    assert [names[-2], names[-8], names[-6]] == ["EAI_NONAME", "EAI_SERVICE", "EAI_FAMILY"]
    assert results == expected
