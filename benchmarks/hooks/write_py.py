# dd workload: write() hooked by a pure-Python @hook that counts.
import atexit

from mrhooker import hook

calls = 0


@hook("ssize_t write(int fd, const void *buf, size_t count)")
def write(fd, buf, count):
    global calls
    calls += 1
    return write.original(fd, buf, count)


@atexit.register
def report():
    print("hooked_calls=%d" % calls)
