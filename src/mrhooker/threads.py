"""The threads mrhooker starts take no signals: the main thread (or, while the target runs, launch's signal
thread) takes them all.

A signal sent to a process is delivered to any one of its threads that doesn't block it, and Python runs its
handler in the main thread, whichever thread the kernel chose. While the target runs, launch blocks the signals
it forwards in the main thread and waits for them in a thread of its own; a thread started earlier with them
unblocked (a progress timer cancelled a moment before, a compiler pool's worker on its way out) could still be
chosen, and a SIGHUP meant for the target then unwound mrhooker as if it had come during a build ("mrhooker:
interrupted", 129, where the target exited 23). A thread started here inherits a mask that blocks every signal
(a new thread starts with its creator's), or blocks them all as its first step (a pool's workers)."""
import signal
import threading


def _block_all():
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())


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


def pool(workers):
    """A concurrent.futures.ThreadPoolExecutor whose workers block every signal. (They start at a submit, in the
    submitter's mask; until their first step blocks all, they run mrhooker's preparation, whose signals unwind
    it anyway.)"""
    from concurrent.futures import ThreadPoolExecutor
    return ThreadPoolExecutor(workers, initializer=_block_all)
