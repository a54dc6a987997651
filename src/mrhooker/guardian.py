"""The guardian: what mrhooker starts does not outlive it, and neither does a trace's file.

A traced or hooked program is mrhooker's child. If mrhooker dies first (SIGKILL: subprocess's own timeout,
`kill -9`, the OOM killer; or any exit while the program runs), the program would run on unseen and a trace's
file (64 MB of /dev/shm) would stay. strace's tracees die with strace (PTRACE_O_EXITKILL); mrhooker's die with
its guardian, a small process forked before the program starts:
- not mrhooker's child (forked twice), so that mrhooker, which waits for every child it has, never waits for it;
- in a process group of its own, so that Ctrl-C and signals sent to mrhooker's group don't reach it (it ignores
  SIGINT, SIGTERM, SIGHUP... too: a mass `kill` of mrhooker's processes must not stop the clean-up);
- reading a pipe whose write end only mrhooker holds (close-on-exec: the program never inherits it), so that
  mrhooker's end, however it comes, is an end of file there. mrhooker writes the program's pid when it starts
  (`watch`) and `-` once it has waited for it (`forget`): an end of file with a program still watched means
  mrhooker died before it, and the guardian kills it and what it started (`end_processes`). Either way it then
  removes the trace file, if mrhooker could not.
- It keeps mrhooker's stderr open until that is done, so that whoever reads mrhooker's stderr (testing.run)
  sees its end only once nothing is left behind.
For a trace it also beats the file's heartbeat every BEAT seconds: writers that find the ring full wait for a
reader that lives, however slowly it reads (runtime/trace.h). mrhooker stopped or busy is alive; dead is not.

Cost: a fork of mrhooker's Python (~0.4 ms of its start; the second fork happens in the child meanwhile) and a sleeping
process (its pages shared with mrhooker's until either writes them).
"""
import os
import select
import signal

BEAT = 0.5   # seconds between heartbeats (writers give a reader up after 2 s without one)
_IGNORED = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM, signal.SIGPIPE, signal.SIGTSTP,
            signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM)


class Guardian:
    """Forks the guardian (before the program starts, and before any thread). trace: the tracefile.TraceFile to
    beat and remove, or None. The child that forks it is waited for lazily (settle), so that its work overlaps
    mrhooker's."""

    def __init__(self, trace=None):
        read_end, write_end = os.pipe()   # both close-on-exec (Python's default)
        middle = os.fork()
        if middle == 0:   # a child that forks the guardian and leaves it to be adopted
            try:
                os.close(write_end)
                if os.fork() == 0:
                    _guard(read_end, trace)
            finally:
                os._exit(0)
        os.close(read_end)
        self._fd, self._middle = write_end, middle

    def settle(self):
        """Waits for the forking child to have left (it is quick): before mrhooker becomes a subreaper, which would
        adopt the guardian (and then wait for it), and before mrhooker waits for its children."""
        if self._middle is not None:
            os.waitpid(self._middle, 0)
            self._middle = None

    def _say(self, text):
        try:
            os.write(self._fd, text.encode() + b"\n")
        except OSError:   # the guardian is gone (killed): nothing to tell
            pass

    def watch(self, pid):
        """The program (pid) started: should mrhooker die before it, kill it and what it started."""
        self.settle()
        self._say(str(pid))

    def forget(self):
        """mrhooker waited for the program: leave what it left running (a daemon it started) alone."""
        self._say("-")

    def close(self):
        """mrhooker's end (also at its exit, or death): the guardian removes the trace file and leaves."""
        self.settle()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _guard(fd, trace):
    """The guardian's life (in the forked process; never returns)."""
    try:
        os.setpgid(0, 0)
        for sig in _IGNORED:
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.chdir("/")
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1):
            os.dup2(null, target)
        for name in os.listdir("/proc/self/fd"):   # mrhooker's other files (the listing's own is gone by now)
            if int(name) not in (0, 1, 2, fd):
                try:
                    os.close(int(name))
                except OSError:
                    pass
        program, pidfd, pending = None, None, b""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if not poller.poll(BEAT * 1000 if trace is not None else None):
                trace.beat(only_if_open=True)
                continue
            data = os.read(fd, 256)
            if not data:
                break
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                if pidfd is not None:
                    os.close(pidfd)
                program, pidfd = (None, None) if line == b"-" else (int(line), _pidfd(int(line)))
        if program is not None:
            end_processes([program], pidfd)
        if trace is not None:
            trace.release()
    finally:
        os._exit(0)


def _pidfd(pid):
    """A descriptor that stays the process's even once its pid is reused, or None (before Linux 5.3)."""
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


# ---- ending a tree of processes --------------------------------------------------------------------------

def children(pid):
    """The pids of a process's children (of all its threads)."""
    found = []
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return found
    for tid in tasks:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                found += [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            pass
    return found


def _descendants(roots):
    seen, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += children(pid)
    return seen


def _stopped(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] in (b"T", b"t", b"Z", b"X")
    except (OSError, IndexError):
        return True   # gone


def end_processes(roots, root_pidfd=None):
    """SIGKILL to each root, every process descended from it, and its process group if it leads one (the program
    mrhooker puts in a group of its own; never mrhooker's own). The tree is stopped first (SIGSTOP, top down,
    until no new process appears), so that none forks away or is reparented out of sight while it is killed.
    root_pidfd: with one root, a pidfd of it: a root already gone (its pid perhaps reused) is not signalled."""
    import time

    me = os.getpgrp()
    groups = []
    for root in roots:
        try:
            if os.getpgid(root) == root and root != me:
                groups.append(root)
        except OSError:
            pass
    if root_pidfd is not None:
        try:
            signal.pidfd_send_signal(root_pidfd, 0)
        except (OSError, AttributeError):
            roots = []   # the program is gone (reaped): its group may live on
    for group in groups:
        _signal_group(group, signal.SIGSTOP)
    stopped = set()
    for _round in range(100):
        new = _descendants(roots) - stopped
        if not new:
            break
        for pid in new:
            _signal(pid, signal.SIGSTOP)
        stopped |= new
        deadline = time.monotonic() + 0.2   # stopped ones can't fork: wait for that (not for one stuck in D)
        while time.monotonic() < deadline and not all(_stopped(pid) for pid in new):
            time.sleep(0.002)
    for group in groups:
        _signal_group(group, signal.SIGKILL)
    for pid in stopped:
        _signal(pid, signal.SIGKILL)


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass
