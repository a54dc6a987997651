# Start-up benchmarks: a typical small .py script. None of its functions is called by /bin/true or sh, so a
# process running them only loads the preload library; foo_loop calls foo(), which starts Python.
import errno

from mrhooker import hook, set_errno

calls = 0


@hook("int foo(int x)")
def foo(x):
    global calls
    calls += 1
    return foo.original(x)


@hook("int unlink(const char *path)")
def unlink(path):
    if path.endswith(b".keep"):
        set_errno(errno.EACCES)
        return -1
    return unlink.original(path)
