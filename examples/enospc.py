"""Fault injection: every Nth write() to a regular file fails with ENOSPC ("No space left on device").

    MRHOOKER_EVERY=3 mrhooker examples/enospc.py dd if=/dev/zero of=/tmp/out bs=1k count=10

N comes from $MRHOOKER_EVERY (default 3). Writes to terminals, pipes and sockets are left alone.
"""
import errno
import os
import stat
import threading

from mrhooker import hook, set_errno

EVERY = int(os.environ.get("MRHOOKER_EVERY", "3"))
writes = 0
count_lock = threading.Lock()   # a threaded program's writes: each counted once


@hook("ssize_t write(int fd, const void *buf, size_t count)")
def write(fd, buf, count):
    global writes
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        regular = False
    if regular:
        with count_lock:
            writes += 1
            this = writes
        if this % EVERY == 0:
            print("write #%d to fd %d: failing with ENOSPC" % (this, fd))
            set_errno(errno.ENOSPC)
            return -1
    return write.original(fd, buf, count)
