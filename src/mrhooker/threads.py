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
build.settle_runtime_objects for the runtime's, started while a first trace is planned."""
import signal
import threading


def start(thread):
    """Starts thread (a threading.Thread, not started) with every signal blocked in it."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return thread


def timer(seconds, function):
    """A started daemon threading.Timer calling function after seconds (cancel() stops it)."""
    waiting = threading.Timer(seconds, function)
    waiting.daemon = True
    return start(waiting)
