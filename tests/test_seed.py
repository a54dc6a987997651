"""The 2011 blog post's example, verbatim, on a real curl against a local server."""
import os

SEED = '''\
cdef extern ssize_t send(int sockfd, char *buf, size_t len, int flags) with gil:
    print "====> send(%r, %r, %r, %r)" % (sockfd, buf[:len], len, flags)
    real_send = dlsym(RTLD_NEXT, "send")
    if real_send:
        with nogil:
            res = (<ssize_t(*)(int, void*, size_t, int) nogil>real_send)(
                sockfd, buf, len, flags)
        return res
    else:
        return -1

# Import stuff from <dlfcn.h>
cdef extern from "dlfcn.h":
    void* dlsym(void*, char*)
    void* RTLD_NEXT
'''


def test_seed_example_hooks_curl(mrhooker, script, http_server):
    path = script("sendhook.pyx", SEED)
    r = mrhooker(path, "curl", "-s", http_server + "/index.html")
    assert r.returncode == 0, r
    assert r.out == "<html>hello from the test server</html>\n"   # the target's output is untouched
    assert "====> send(" in r.err and "GET /index.html HTTP/1.1" in r.err, r
    assert "====>" not in r.out


def test_cached_build_is_reused(mrhooker, script, http_server):
    path = script("sendhook.pyx", SEED)
    first = mrhooker("-v", path, "true")
    assert first.returncode == 0, first
    second = mrhooker("-v", path, "true")
    assert "cache hit" in second.err, second
    built = [line for line in first.err.splitlines() if "cache" in line or "built:" in line]
    assert built, first
    lib = [line.split("LD_PRELOAD=")[1] for line in second.err.splitlines() if "LD_PRELOAD=" in line][0]
    assert os.path.isfile(lib.split()[0])
