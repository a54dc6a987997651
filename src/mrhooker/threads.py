"""The threads mrhooker starts take no signals: the main thread (or, while the target runs, launch's signal
thread) takes them all.

A signal sent to a process is delivered to any one of its threads that doesn't block it, and Python runs its
handler in the main thread, whichever thread the kernel chose. While the target runs, launch blocks the signals
it forwards in the main thread and waits for them in a thread of its own; a thread started earlier with them
unblocked (a progress timer cancelled a moment before) could still be chosen, and a SIGHUP meant for the
target then unwound mrhooker as if it had come during a build ("mrhooker: interrupted", 129, where the target
exited 23). A thread started here inherits a mask that blocks every signal (a new thread starts with its
creator's).

Not so the workers of the preparation's pools (concurrent.futures): the compilers they start inherit their
mask, and must take signals. Those pools are done before the target runs: `with` waits for their threads, and
build.settle_runtime_objects for the runtime's, started while a first trace is planned. A thread joined is not
yet gone, though: it still exits, and on a loaded machine it can be there, its signals unblocked, when the
program's first signal comes (a SIGINT to the whole group unwound a hook run this way in CI). settle() waits for
such threads to be gone; launch calls it before the target starts."""
import os
import signal
import threading
import time

from mrhooker.errors import MrhookerError


def start(thread):
    """Starts thread (a threading.Thread, not started) with every signal blocked in it. A thread the kernel
    won't make (a tight `ulimit -u`: threads count as processes) is an MrhookerError saying so."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        thread.start()
    except RuntimeError as e:   # "can't start new thread": clone() failed, EAGAIN
        raise MrhookerError("cannot start a thread: %s (%s)" % (e, limit("RLIMIT_NPROC")))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return thread


_LIMITS = {"RLIMIT_NPROC": "the limit on your processes and threads, ulimit -u,", "RLIMIT_NOFILE": "ulimit -n"}


def limit(which):
    """A resource limit and its soft value, for a message: "ulimit -n is 8"."""
    import resource   # only then: a warm run imports no more than it needs
    soft = resource.getrlimit(getattr(resource, which))[0]
    return "%s is %s" % (_LIMITS[which], "unlimited" if soft == resource.RLIM_INFINITY else soft)


class _NoTimer:
    def cancel(self):
        pass


def timer(seconds, function):
    """A started daemon threading.Timer calling function after seconds (cancel() stops it); if no thread can be
    started, one that never calls it (a timer only says what takes long)."""
    waiting = threading.Timer(seconds, function)
    waiting.daemon = True
    try:
        return start(waiting)
    except MrhookerError:
        return _NoTimer()


def settle(signals, timeout=1.0):
    """Waits (up to timeout seconds) until no thread of this process but the calling one leaves any of signals
    unblocked: threads joined but still exiting (a pool's workers) are then gone."""
    own = str(threading.get_native_id())
    wanted = 0
    for sig in signals:
        wanted |= 1 << (int(sig) - 1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            tasks = [t for t in os.listdir("/proc/self/task") if t != own]
        except OSError:
            return
        if not any(_unblocked(task, wanted) for task in tasks) or time.monotonic() >= deadline:
            return
        time.sleep(0.001)


def _unblocked(task, wanted):
    """Does thread `task` (its id) leave any of the signals in the bit set `wanted` unblocked? (gone: no)"""
    try:
        with open("/proc/self/task/%s/status" % task) as f:
            for line in f:
                if line.startswith("SigBlk:"):
                    return (int(line.split()[1], 16) & wanted) != wanted
    except (OSError, ValueError):
        pass
    return False
