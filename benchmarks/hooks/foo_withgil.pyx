# Per-call benchmark: a `with gil` .pyx hook that calls a small Python function, then the original foo().
from mrhooker cimport original

ctypedef int (*foo_t)(int) noexcept nogil

calls = 0

def count():
    global calls
    calls += 1

cdef extern int foo(int x) with gil:
    count()
    return (<foo_t>original("foo"))(x)

import atexit

@atexit.register
def report():
    print("hooked_calls=%d" % calls)
