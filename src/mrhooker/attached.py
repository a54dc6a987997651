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

from mrhooker import attach, cache
from mrhooker.errors import MrhookerError, say

DETACH_TIMEOUT = 5.0   # seconds for the processes to answer a detach (a stopped one can't)
FORK_ATTEMPTS = 50     # injections, 10 ms apart, while the thread chosen is found inside a fork each time
EXEC_WAIT = 0.5       # seconds a process that let go of its connection by itself may take to show an exec


def _uid_of(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[2])   # effective
    except OSError:
        raise MrhookerError("no process with pid %d" % pid)
    return None


def _program(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
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
    children it forks are traced too (-f): each connects again (runtime/attach.c), so the listener stays open
    until the detach."""

    def __init__(self, pid, library, settings, follow):
        self.pid = pid
        self.stats = {}
        self.ended = False      # every process holding a connection has detached or ended
        self.ended_itself = False   # ... without being asked (it ended, or it is executing another program)
        self.detaching = False      # detach() asked them to
        self.detached = 0       # how many said they detached
        self.links = []         # one connection per process (the attached one, children it forked since)
        self.program = _program(pid)   # what it runs: an exec ends the attach
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
        cache.remove_orphans(tempfile.gettempdir(), "mrhooker-attach")   # an earlier mrhooker's, killed in its attach
        self._directory = tempfile.mkdtemp(prefix="mrhooker-attach-%d-" % os.getpid())   # mode 0700
        self._path = os.path.join(self._directory, "link")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.listener.bind(self._path)
            self.listener.listen(1024)   # children connect from their fork, and wait for no accept()
            lines = dict(settings, MRHOOKER_ATTACH=self._path, MRHOOKER_FOLLOW="1" if follow else "0")
            # as an environment is: NAME=value strings, each ended by a NUL, the list by an empty one (values may
            # hold newlines: MRHOOKER_PYTHONPATH)
            text = "".join("%s=%s\0" % item for item in lines.items()).encode("utf-8", "surrogateescape")
            for _ in range(FORK_ATTEMPTS):
                _, result = attach.inject(pid, library, stats=self.stats, then=("mrhooker_attach", text),
                                          entry_writes="MRHOOKER_ENTRY" in settings)
                if result != -errno.EAGAIN:
                    break
                time.sleep(0.01)   # the thread was stopped inside a fork (runtime/attach.c): it ends in microseconds
            if result != 0:
                raise MrhookerError(self._refusal(-result))
            if "MRHOOKER_ENTRY" in settings:
                planned = settings["MRHOOKER_ENTRY"].count(";") + 1
                missing = planned - self.stats.get("entry_written", 0)
                if missing:
                    say("process %d: hooked through the PLT only, %d of the %d functions to hook at their entry "
                        "(their code in memory is not the file's, or a thread stayed inside their first bytes)"
                        % (pid, missing, planned))
            self.listener.settimeout(DETACH_TIMEOUT)
            try:
                self.links.append(self.listener.accept()[0])
            except OSError:
                raise MrhookerError("process %d attached but did not connect back to mrhooker" % pid)
            self.listener.setblocking(False)
            if not follow:
                self._stop_listening()
        except BaseException:
            self._stop_listening()
            raise

    def _stop_listening(self):
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            try:
                os.unlink(self._path)
            except OSError:
                pass
            try:
                os.rmdir(self._directory)
            except OSError:
                pass

    def timings(self):
        """-v's line on how long the attach took."""
        s = self.stats
        return "attached to %d in %.1f ms (the process stopped %.1f ms, one thread %.1f ms)" % (
            self.pid, s["total"] * 1e3, s.get("all_stopped", 0) * 1e3, s.get("thread_stopped", 0) * 1e3)

    def _refusal(self, code):
        if code in (errno.EBUSY, errno.EALREADY):
            return "process %d is attached by another mrhooker already (one at a time: two would take the " \
                   "calls from each other)" % self.pid
        if code == errno.EAGAIN:
            return "process %d was inside a fork at each of %d tries: try again" % (self.pid, FORK_ATTEMPTS)
        return "process %d: the runtime could not attach: %s" % (self.pid, os.strerror(code))

    def waitables(self):
        """What select() should watch: the connections, and the listener while children may connect."""
        return self.links + ([self.listener] if self.listener is not None else [])

    def ready(self, which):
        """which (one of waitables()) can be read: a child's connection, or what a process said or its end."""
        if which is self.listener:
            try:
                self.links.append(self.listener.accept()[0])
            except (BlockingIOError, InterruptedError):
                pass
            return
        try:
            data = which.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        self.detached += data.count(b"detached\n")
        if not data:
            which.close()
            self.links.remove(which)
            if not self.links:   # every process gone or detached by itself: no child will connect any more
                self._stop_listening()
                self.ended = True
                self.ended_itself = not self.detaching

    def detach(self):
        """Asks every process holding a connection to put its slots back, and waits for them (at most
        DETACH_TIMEOUT). True when all did (or had ended)."""
        self._stop_listening()   # a child forked from now on finds nobody to connect to: it runs unhooked
        if self.ended:
            return True
        started = time.monotonic()
        self.detaching = True
        for link in self.links:
            try:
                link.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        deadline = time.monotonic() + DETACH_TIMEOUT
        while self.links:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                return False
            for which in select.select(self.links, [], [], left)[0]:
                self.ready(which)
        self.ended = True
        self.stats["detach"] = time.monotonic() - started
        return True

    def close(self):
        self._stop_listening()
        for link in self.links:
            link.close()
        self.links = []
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
        owner = {}
        for s in live:
            for w in s.waitables():
                owner[w] = s
        try:
            ready = select.select(list(owner), [], [], min(tick, left))[0]
        except InterruptedError:
            ready = []
        for w in ready:
            owner[w].ready(w)
        # a ring kept full has always more: the deadline is looked at between batches too
        while on_tick() and not stop() and time.monotonic() < until:
            pass


def detach_all(sessions, say=say, log=lambda msg: None):
    """Detaches every session, saying so on stderr as strace does ("Process PID detached", or "ended" when it
    ended while attached); say: a function taking the line (mrhooker's stderr by default); log: -v's."""
    for session in sessions:
        if not session.detach():
            say("process %d did not answer the detach within %g s (stopped?): its calls stay hooked until it "
                "runs again" % (session.pid, DETACH_TIMEOUT))
        else:
            if "detach" in session.stats:
                log("detached from %d in %.1f ms" % (session.pid, session.stats["detach"] * 1e3))
            program = _program(session.pid)
            if session.ended_itself:
                # an exec closes the connection (its other threads go first) a moment before the process shows
                # its new program: wait for that moment
                log("process %d let go by itself: up to %g s for an exec to show" % (session.pid, EXEC_WAIT))
                deadline = time.monotonic() + EXEC_WAIT
                while _alive(session.pid) and program == session.program and time.monotonic() < deadline:
                    time.sleep(0.01)
                    program = _program(session.pid)
            if not _alive(session.pid) or program is None:   # (None: ending, its memory gone: dumping a core)
                say("Process %d ended" % session.pid)
            elif program != session.program:
                say("Process %d executed %s: detached (what a process executes is not traced: attach to it "
                    "again)" % (session.pid, program))
            else:
                say("Process %d detached" % session.pid)
