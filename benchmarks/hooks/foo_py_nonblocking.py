# Per-call benchmark: the same @hook with blocks=False (the original keeps the GIL: foo never waits).
import atexit

from mrhooker import hook

calls = 0


@hook("int foo(int x)", blocks=False)
def foo(x):
    global calls
    calls += 1
    return foo.original(x)


@atexit.register
def report():
    print("hooked_calls=%d" % calls)
