"""The guardian: what mrhooker starts does not outlive it, and neither does a trace's file.

A traced or hooked program is mrhooker's child. If mrhooker dies first (SIGKILL: subprocess's own timeout,
`kill -9`, the OOM killer; or any exit while the program runs), the program would run on unseen and a trace's
file (64 MB of /dev/shm) would stay. strace's tracees die with strace (PTRACE_O_EXITKILL); mrhooker's die with
its guardian, a small C program (runtime/guard.c, built with the runtime, copied into each build) that mrhooker
starts before the program:
- in a process group of its own, so that Ctrl-C and signals sent to mrhooker's group don't reach it (it ignores
  SIGINT, SIGTERM, SIGHUP... too: a mass `kill` of mrhooker's processes must not stop the clean-up). Outside the
  terminal's foreground the program joins that group (launch.spawn_and_wait), and the signals mrhooker forwards
  to the group are ignored there;
- reading, as its standard input, a pipe whose write end only mrhooker holds (close-on-exec: the program never
  inherits it), so that mrhooker's end, however it comes, is an end of file there. mrhooker tells it the
  program's pid when it starts (`watch`) and that it waited for it (`forget`): an end of file with a program
  still watched means mrhooker died before it, and the guardian kills it and what it started (SIGKILL: its
  process group when it has one of its own, and its descendants). Either way it then removes the trace file;
- keeping mrhooker's stderr open until that is done, so that whoever reads mrhooker's stderr (testing.run) sees
  its end only once nothing is left behind;
- as mrhooker's child, which mrhooker's wait for every child it has leaves out (launch.spawn_and_wait).
For a trace it also beats the file's heartbeat: writers that find the ring full wait for a reader that lives,
however slowly it reads (runtime/trace.h). mrhooker stopped or busy is alive; dead is not.

Cost: a posix_spawn (vfork) of an 18 KB program: ~0.3 ms of mrhooker's start and no copy of its memory (a fork
of mrhooker's Python would cost its pages copied on write, ~1,500 faults). The guardian itself sleeps.
"""
import errno
import os

from mrhooker import threads
from mrhooker.cache import check_private
from mrhooker.errors import MrhookerError


class Guardian:
    """Starts the guardian (program: its executable, in a build). trace: the path of the trace file, or None."""

    def __init__(self, program, trace=None):
        program = check_private(program, "mrhooker's guardian")
        try:
            read_end, write_end = os.pipe()   # both close-on-exec (Python's default)
        except OSError as e:   # no descriptor left (ulimit -n)
            raise MrhookerError("cannot start mrhooker's guardian: %s (%s)"
                                % (e.strerror, threads.limit("RLIMIT_NOFILE")))
        try:
            self.pid = os.posix_spawn(program, [program], {}, setpgroup=0, setsigmask=(),
                                      file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0),
                                                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
        except OSError as e:
            os.close(write_end)
            raise MrhookerError("cannot start mrhooker's guardian %s: %s%s" % (
                program, e.strerror, " (%s)" % threads.limit("RLIMIT_NPROC") if e.errno == errno.EAGAIN else ""))
        finally:
            os.close(read_end)
        self._fd = write_end
        if trace is not None:
            self._say("T %s" % trace)

    def _say(self, line):
        if self._fd is None:
            return
        try:
            os.write(self._fd, line.encode("utf-8", "surrogateescape") + b"\n")
        except OSError:   # the guardian is gone (killed): nothing to tell
            pass

    def watch(self, pid, group):
        """The program (pid) started: should mrhooker die before it, kill it and what it started (and the rest of
        its process group, if not 0: the guardian's own, not mrhooker's)."""
        self._say("P %d %d" % (pid, group))

    def forget(self):
        """mrhooker waited for the program: leave what it left running (a daemon it started) alone."""
        self._say("F")

    def kill_all(self):
        """Kills now every process mrhooker started (its children but the guardian, and their descendants)."""
        self._say("K")

    def close(self):
        """mrhooker's end (also at its exit, or death): the guardian removes the trace file and leaves (reaped
        then by whoever adopts it: mrhooker does not wait for that)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
