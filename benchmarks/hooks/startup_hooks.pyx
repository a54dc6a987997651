# Start-up benchmarks: a typical small .pyx script. None of its functions is called by /bin/true or sh, so a
# process running them only loads the preload library; foo_loop calls foo(), which starts Python.
from mrhooker cimport original

ctypedef int (*foo_t)(int) noexcept nogil
ctypedef int (*unlink_t)(const char *) noexcept nogil

from libc cimport errno

calls = 0

cdef extern int foo(int x) with gil:
    global calls
    calls += 1
    return (<foo_t>original("foo"))(x)

cdef extern int unlink(const char *path) with gil:
    if path.endswith(b".keep"):
        errno.errno = errno.EACCES
        return -1
    return (<unlink_t>original("unlink"))(path)
