# dd workload: write() hooked by a `with gil` .pyx hook that counts in Python, the original called without
# the GIL.
from mrhooker cimport original

ctypedef ssize_t (*write_t)(int, const void *, size_t) noexcept nogil

calls = 0

def count():
    global calls
    calls += 1

cdef extern ssize_t write(int fd, const void *buf, size_t nbytes) with gil:
    count()
    with nogil:
        return (<write_t>original("write"))(fd, buf, nbytes)

import atexit

@atexit.register
def report():
    print("hooked_calls=%d" % calls)
