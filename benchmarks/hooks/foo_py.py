# Per-call benchmark: a pure-Python @hook that counts and returns foo.original(x).
import atexit

from mrhooker import hook

calls = 0


@hook("int foo(int x)")
def foo(x):
    global calls
    calls += 1
    return foo.original(x)


@atexit.register
def report():
    print("hooked_calls=%d" % calls)
