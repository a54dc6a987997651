"""A running process mrhooker attached to (`mrhooker trace -p PID`): getting the runtime in, waiting, detaching.

Build/CLI side only. attach.inject loads the trace's preload library into the process and calls its
mrhooker_attach() with the settings a launched process gets from its environment (runtime/attach.c patches the
process's GOT slots from there). Those settings name a unix socket of mrhooker's, in a directory only its user
can enter, to which the runtime connects during that call: the connection is the attachment. mrhooker asks for
the detach by shutting its side down; mrhooker's death (SIGKILL included) closes it just the same, so the
process is never left hooked to a reader that is gone. Each process holding it (the attached one, and with -f
the children it forked since) answers "detached" after putting its slots back, and closes it; the end of file on
mrhooker's side means every one of them has detached or ended.
"""
import errno
import os
import select
import socket
import tempfile
import time

from mrhooker import attach
from mrhooker.errors import MrhookerError

DETACH_TIMEOUT = 5.0   # seconds for the processes to answer a detach (a stopped one can't)


def _uid_of(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[2])   # effective
    except OSError:
        raise MrhookerError("no process %d" % pid)
    return None


def _alive(pid):
    """Is pid running (not gone, not a zombie)?"""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Attached:
    """The runtime of `library` loaded into process pid and attached with `settings` ({name: value}); follow:
    children it forks are traced too (-f)."""

    def __init__(self, pid, library, settings, follow):
        self.pid = pid
        self.stats = {}
        self.ended = False      # every process holding the connection has detached or ended
        self.detached = 0       # how many said they detached
        uid = _uid_of(pid)
        if uid is not None and uid != os.geteuid() and os.geteuid() == 0:
            # its runtime could open neither the trace file nor the socket, which are private to mrhooker's user
            import pwd
            try:
                user = pwd.getpwuid(uid).pw_name
            except KeyError:
                user = str(uid)
            raise MrhookerError("process %d runs as user %s: attach as that user (sudo -u %s mrhooker ...)"
                                % (pid, user, user))
        directory = tempfile.mkdtemp(prefix="mrhooker-attach-")   # mode 0700
        path = os.path.join(directory, "link")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(1)
            lines = dict(settings, MRHOOKER_ATTACH=path, MRHOOKER_FOLLOW="1" if follow else "0")
            # as an environment is: NAME=value strings, each ended by a NUL, the list by an empty one (values may
            # hold newlines: MRHOOKER_PYTHONPATH)
            text = "".join("%s=%s\0" % item for item in lines.items()).encode("utf-8", "surrogateescape")
            _, result = attach.inject(pid, library, stats=self.stats, then=("mrhooker_attach", text))
            if result != 0:
                raise MrhookerError(self._refusal(-result))
            listener.settimeout(DETACH_TIMEOUT)
            try:
                self.link, _ = listener.accept()
            except OSError:
                raise MrhookerError("process %d attached but did not connect back to mrhooker" % pid)
        finally:
            listener.close()
            try:
                os.unlink(path)
            except OSError:
                pass
            os.rmdir(directory)

    def timings(self):
        """-v's line on how long the attach took."""
        s = self.stats
        return "attached to %d in %.1f ms (the process stopped %.1f ms, one thread %.1f ms)" % (
            self.pid, s["total"] * 1e3, s.get("all_stopped", 0) * 1e3, s.get("thread_stopped", 0) * 1e3)

    def _refusal(self, code):
        if code == errno.EBUSY:
            return "process %d is being traced by another mrhooker with the same functions" % self.pid
        return "process %d: the runtime could not attach: %s" % (self.pid, os.strerror(code))

    def fileno(self):
        return self.link.fileno()

    def read(self):
        """Takes what the processes said (their "detached" lines); notices the end."""
        try:
            data = self.link.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        self.detached += data.count(b"detached\n")
        if not data:
            self.ended = True
            self.link.close()

    def detach(self):
        """Asks every process holding the connection to put its slots back, and waits for them (at most
        DETACH_TIMEOUT). True when all did (or had ended)."""
        if self.ended:
            return True
        started = time.monotonic()
        try:
            self.link.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        deadline = time.monotonic() + DETACH_TIMEOUT
        while not self.ended:
            left = deadline - time.monotonic()
            if left <= 0:
                self.link.close()
                return False
            if select.select([self.link], [], [], left)[0]:
                self.read()
        self.stats["detach"] = time.monotonic() - started
        return True

    def close(self):
        if not self.ended:
            self.link.close()
            self.ended = True


def wait(sessions, on_tick, stop, seconds=None, tick=0.02):
    """Waits until every session has ended (its processes detached themselves or ended), stop() is true, or
    `seconds` have passed, calling on_tick() every `tick` seconds (at once again while it returns true)."""
    until = time.monotonic() + seconds if seconds is not None else float("inf")
    while not stop():
        live = [s for s in sessions if not s.ended]
        if not live:
            return
        left = until - time.monotonic()
        if left <= 0:
            return
        try:
            ready = select.select(live, [], [], min(tick, left))[0]
        except InterruptedError:
            ready = []
        for s in ready:
            s.read()
        while on_tick() and not stop():
            pass


def detach_all(sessions, say=None, log=lambda msg: None):
    """Detaches every session, saying so on stderr as strace does ("Process PID detached", or "ended" when it
    ended while attached); say: a function taking the line (mrhooker's stderr by default); log: -v's."""
    import sys
    if say is None:
        def say(line):
            try:
                sys.stderr.write("mrhooker: %s\n" % line)
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
    for session in sessions:
        ended = session.ended
        if not session.detach():
            say("process %d did not answer the detach within %g s (stopped?): its calls stay hooked until it "
                "runs again" % (session.pid, DETACH_TIMEOUT))
        else:
            if "detach" in session.stats:
                log("detached from %d in %.1f ms" % (session.pid, session.stats["detach"] * 1e3))
            say("Process %d %s" % (session.pid, "detached" if not ended or _alive(session.pid) else "ended"))
