"""The 2011 blog post's example, verbatim, on a real curl against a local server."""
import os

# examples/send.pyx is the post's hook, character for character (after two comment lines of ours).
SEED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "send.pyx")


def test_seed_example_hooks_curl(mrhooker, http_server):
    r = mrhooker(SEED, "curl", "-s", http_server + "/index.html")
    assert r.returncode == 0, r
    assert r.out == "<html>hello from the test server</html>\n"   # the target's output is untouched
    assert "====> send(" in r.err and "GET /index.html HTTP/1.1" in r.err, r
    assert "====>" not in r.out


def test_cached_build_is_reused(mrhooker, script):
    with open(SEED) as f:
        path = script("sendhook.pyx", f.read())
    first = mrhooker("-v", path, "true")
    assert first.returncode == 0, first
    second = mrhooker("-v", path, "true")
    assert "cache hit" in second.err, second
    built = [line for line in first.err.splitlines() if "cache" in line or "built:" in line]
    assert built, first
    lib = [line.split("LD_PRELOAD=")[1] for line in second.err.splitlines() if "LD_PRELOAD=" in line][0]
    assert os.path.isfile(lib.split()[0])
