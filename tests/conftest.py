"""Shared fixtures: run the real mrhooker CLI on real programs, compile small C programs, write hook scripts.

Every test session gets its own build cache (so a test never depends on the user's cache) and an empty
config file (so the user's ~/.mrhooker/mrhooker.config can't change results). Builds are shared within a
session: the same script text builds once.
"""
import hashlib
import http.server
import os
import ssl
import subprocess
import sys
import textwrap
import threading

import pytest

from helpers import LIBFOO_SRC, SRC, Result, scaled

HERE = os.path.dirname(os.path.abspath(__file__))
# The package under test, in this process too: an installed mrhooker (another checkout's, imported already by
# its pytest plugin) must not answer the tests' imports.
if SRC not in sys.path:
    sys.path.insert(0, SRC)
for _name in [m for m in sys.modules if m == "mrhooker" or m.startswith("mrhooker.")]:
    if not (getattr(sys.modules[_name], "__file__", None) or "").startswith(SRC + os.sep):
        del sys.modules[_name]


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("mrhooker-session")
    os.chmod(d, 0o700)
    return d


@pytest.fixture(scope="session")
def base_env(session_dir):
    env = dict(os.environ)
    cache = session_dir / "cache"
    cache.mkdir(mode=0o700, exist_ok=True)
    config = session_dir / "empty.config"
    config.write_text("")
    env["XDG_CACHE_HOME"] = str(cache)
    env["MRHOOKER_CONFIG"] = str(config)
    # The package under test, whether or not it is installed.
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for name in list(env):
        if name.startswith("MRHOOKER_") and name not in ("MRHOOKER_CONFIG",):
            del env[name]
    env.pop("LD_PRELOAD", None)
    return env


@pytest.fixture(scope="session")
def mrhooker(base_env):
    """mrhooker(*args, env=None, input=None, timeout=None, cwd=None) -> Result: runs `python -m mrhooker`
    (timeout: 120 s scaled to the machine's load, helpers.scaled)."""

    def run(*args, env=None, input=None, timeout=None, cwd=None, stdout=subprocess.PIPE):
        timeout = scaled(120) if timeout is None else timeout
        full_env = dict(base_env)
        if env:
            full_env.update(env)
        proc = subprocess.run([sys.executable, "-m", "mrhooker"] + [str(a) for a in args], env=full_env,
                              input=input, stdout=stdout, stderr=subprocess.PIPE, timeout=timeout, cwd=cwd)
        return Result(proc)

    return run


@pytest.fixture(scope="session")
def cprog(session_dir):
    """cprog(source, flags=()) -> path of an executable (or shared library, with flags=['-shared', ...])
    compiled from C source; compiled once per session for the same source and flags."""
    outdir = session_dir / "c"
    outdir.mkdir(exist_ok=True)

    def build(source, flags=(), suffix=""):
        source = textwrap.dedent(source)
        key = hashlib.sha256((source + "\0" + " ".join(flags)).encode()).hexdigest()[:16]
        out = outdir / ("prog-" + key + suffix)
        if not out.exists():
            src = outdir / ("prog-" + key + ".c")
            src.write_text(source)
            cmd = ["cc", "-O2", "-Wall", "-o", str(out) + ".tmp", str(src)] + list(flags)
            subprocess.run(cmd, check=True)
            os.replace(str(out) + ".tmp", out)
        return str(out)

    return build


@pytest.fixture
def script(tmp_path):
    """script(name, text) -> path of a hook script written into a fresh directory."""

    def write(name, text):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)

    return write


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def http_server(session_dir):
    """A local HTTP server (loopback only) serving session_dir/www; yields its base URL."""
    www = session_dir / "www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text("<html>hello from the test server</html>\n")

    def handler(*args, **kwargs):
        return _QuietHandler(*args, directory=str(www), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="session")
def https_server(session_dir):
    """A local HTTPS server with a self-signed certificate (loopback only); yields its base URL."""
    cert, key = session_dir / "cert.pem", session_dir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True, timeout=60)
    www = session_dir / "tls-www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text("<html>hello over TLS</html>\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(www), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "https://127.0.0.1:%d/" % server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="session")
def libfoo(cprog):
    return cprog(LIBFOO_SRC, flags=["-shared", "-fPIC"], suffix=".so")


@pytest.fixture(scope="session")
def foo_prog(cprog, libfoo):
    """foo_prog(source, flags=()) -> a program linked with the foo library (by absolute path: no rpath)."""

    def build(source, flags=()):
        return cprog(source, flags=[libfoo, "-pthread"] + list(flags))

    return build
