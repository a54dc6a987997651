# Per-call benchmark: the cheapest .pyx hook, a nogil pass-through to the original foo().
# A C counter (no Python) lets the harness check that every call went through the hook.
from mrhooker cimport original

ctypedef int (*foo_t)(int) noexcept nogil

cdef foo_t real_foo = NULL
cdef long calls = 0

cdef extern int foo(int x) noexcept nogil:
    global real_foo, calls
    calls += 1
    if real_foo == NULL:
        real_foo = <foo_t>original("foo")
    return real_foo(x)

import atexit

@atexit.register
def report():
    print("hooked_calls=%d" % calls)
