# mrhooker for Cython hook scripts: `from mrhooker cimport original`.
#
#     from mrhooker cimport original
#     ctypedef ssize_t (*send_t)(int, const void *, size_t, int) noexcept nogil
#
#     cdef extern ssize_t send(int fd, const void *buf, size_t n, int flags) with gil:
#         print("send", fd, (<const char *>buf)[:n])
#         with nogil:
#             return (<send_t>original("send"))(fd, buf, n, flags)

cdef extern from "pyrt.h" nogil:
    # The next definition of a symbol after mrhooker's (what dlsym(RTLD_NEXT, name) gives the preload
    # library), looked up once and cached. For a name nothing defines: a stand-in that says so once and
    # returns -1 with errno ENOSYS (never NULL, which would crash the target when called).
    void *original "mrh_original" (const char *name)
