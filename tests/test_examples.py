"""Every script in examples/ runs, as a new user would run it, on a real program."""
import os
import re
import sys

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def example(name):
    return os.path.join(EXAMPLES, name)


# examples/send.pyx: tests/test_seed.py


def test_trace_opens(mrhooker, tmp_path):
    data = tmp_path / "words.txt"
    data.write_text("pear\napple\n")
    r = mrhooker(example("trace_opens.py"), "sort", data)
    assert r.returncode == 0, r
    assert r.out == "apple\npear\n"
    assert "open(%s, O_CLOEXEC) = 3" % data in r.err or "openat(%s," % data in r.err, r
    missing = tmp_path / "missing.txt"
    r = mrhooker(example("trace_opens.py"), sys.executable, "-c", "open(%r)" % str(missing))
    assert r.returncode == 1
    assert "open64(%s, O_CLOEXEC) = -1 ENOENT" % missing in r.err, r


def test_enospc_fault_injection(mrhooker, tmp_path):
    out = tmp_path / "out.bin"
    r = mrhooker(example("enospc.py"), "dd", "if=/dev/zero", "of=%s" % out, "bs=1k", "count=10",
                 env={"MRHOOKER_EVERY": "3"})
    assert r.returncode == 1, r
    assert "No space left on device" in r.err
    assert "write #3 to fd 1: failing with ENOSPC" in r.err
    assert out.stat().st_size == 2048   # two writes went through, the third failed


def test_curl_sends(mrhooker, http_server):
    r = mrhooker(example("curl_sends.py"), "curl", "-s", http_server + "/index.html")
    assert r.returncode == 0, r
    assert r.out == "<html>hello from the test server</html>\n"
    assert "| GET /index.html HTTP/1.1" in r.err
    assert "| HTTP/1.0 200 OK" in r.err and "| <html>hello from the test server</html>" in r.err
    assert re.search(r"-- fd \d+ connects to 127\.0\.0\.1:%s\n" % http_server.rsplit(":", 1)[1], r.err), r


def test_tls_plaintext(mrhooker, https_server):
    r = mrhooker(example("tls_plaintext.py"), "curl", "-sk", https_server)
    assert r.returncode == 0 and r.out == "<html>hello over TLS</html>\n", r
    assert ">> tls | GET / HTTP/1.1" in r.err
    assert "<< tls | HTTP/1.0 200 OK" in r.err and "<< tls | <html>hello over TLS</html>" in r.err


def test_fake_time(mrhooker):
    r = mrhooker(example("fake_time.py"), "date", "+%Y-%m-%d", env={"MRHOOKER_FAKE_DATE": "1999-12-31"})
    assert r.returncode == 0, r
    assert r.out == "1999-12-31\n"
    r = mrhooker(example("fake_time.py"), sys.executable, "-c",
                 "import datetime, time; print(datetime.datetime.utcnow().year, time.gmtime().tm_year)")
    assert r.returncode == 0, r
    assert r.out.split() == ["2000", "2000"]
