"""Fault injection from a test suite: mrhooker.testing.run, the pytest plugin used as a user would, and the
recipes of examples/faults.sh, on real programs (cp, curl, sqlite3, date, a C program the test compiles)."""
import os
import subprocess
import sys

import pytest

from helpers import BUSY_C, RUN_TIMEOUT, live_processes, scaled

from mrhooker import testing

HERE = os.path.dirname(os.path.abspath(__file__))
RECIPES = os.path.join(os.path.dirname(HERE), "examples", "faults.sh")


@pytest.fixture
def api_env(base_env):
    return dict(base_env)


def test_run_injects_and_returns_the_calls(api_env, tmp_path):
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_text("hello")
    r = testing.run(["cp", src, dst], inject=["copy_file_range,write:error=ENOSPC"], env=api_env, timeout=RUN_TIMEOUT)
    assert r.returncode == 1 and "No space left on device" in r.err, r
    calls = r.calls("copy_file_range")
    assert calls and calls[0].injected and calls[0].errno == "ENOSPC" and calls[0].ret == -1 and calls[0].failed
    r = testing.run(["cat", src], trace=["%file", "read"], env=api_env, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and r.stdout == b"hello" and r.out == "hello"
    opens = [c for c in r.calls() if c.name.startswith("open") and str(src) in c.args.values()]
    assert opens and opens[0].ret >= 3 and not opens[0].injected
    assert [c.args["buf"] for c in r.calls("read") if c.ret == 5] == ["hello"]
    assert not any(c.cut for c in r.calls())
    src.write_text("abc...")   # a buffer that ends in dots, whole; then cut at 4 bytes
    r = testing.run(["cat", src], trace=["read"], strsize=6, env=api_env, timeout=RUN_TIMEOUT)
    assert [(c.args["buf"], c.cut) for c in r.calls("read") if c.ret == 6] == [("abc...", frozenset())], r.calls()
    r = testing.run(["cat", src], trace=["read"], strsize=4, env=api_env, timeout=RUN_TIMEOUT)
    assert [(c.args["buf"], c.cut) for c in r.calls("read") if c.ret == 6] == [("abc.", {"buf"})], r.calls()


def test_run_fake_time_hooks_and_errors(api_env, tmp_path):
    r = testing.run(["date", "+%Y"], fake_time="1999-12-31 23:59:59", env=api_env, timeout=RUN_TIMEOUT)
    assert r.returncode in (0,) and r.out in ("1999\n", "2000\n"), r
    hooks = tmp_path / "h.py"
    hooks.write_text("from mrhooker import hook\n@hook('getpid')\ndef getpid():\n    return 4242\n")
    r = testing.run([sys.executable, "-c", "import os; print(os.getpid())"], hooks=hooks, env=api_env,
                    timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and r.out == "4242\n", r
    with pytest.raises(testing.MrhookerRunError) as caught:
        testing.run(["true"], inject=["write:error=ENOSPACE"], env=api_env, timeout=RUN_TIMEOUT)
    assert "unknown errno name ENOSPACE" in str(caught.value)
    with pytest.raises(ValueError):
        testing.run(["true"], hooks=hooks, inject=["write:error=EIO"])
    r = testing.run(["sh", "-c", "exit 2"], inject=["write:error=EIO"], env=api_env, timeout=RUN_TIMEOUT)
    assert r.returncode == 2   # the program's own status 2 is no refusal
    with pytest.raises(subprocess.CalledProcessError):
        testing.run(["false"], env=api_env, check=True, timeout=RUN_TIMEOUT)


def _trace_files():
    """The trace files in /dev/shm whose mrhooker is gone (named mrhooker-trace-PID-...): a live one's may be
    another test session's (.ci/run runs two layers at once)."""
    return {n for n in os.listdir("/dev/shm") if n.startswith("mrhooker-trace-")
            and not os.path.exists("/proc/%s" % n.split("-")[2])}


@pytest.mark.parametrize("kind", ["trace", "hooks"])
def test_run_timeout_leaves_nothing_behind(api_env, cprog, tmp_path, kind):
    """Past timeout=, mrhooker is killed (SIGKILL, as subprocess.run kills); by the time TimeoutExpired is raised,
    the program and its children are gone, and so is the trace file in /dev/shm."""
    busy = cprog(BUSY_C)
    hooks = tmp_path / "h.py"
    hooks.write_text("from mrhooker import hook\n@hook('getpid')\ndef getpid():\n    return getpid.original()\n")
    how = {"trace": {"trace": ["write"]}, "hooks": {"hooks": hooks}}[kind]
    testing.run(["true"], env=api_env, timeout=RUN_TIMEOUT, **how)   # built: the timeout is for the program
    before = _trace_files()
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        testing.run(["sh", "-c", "%s 120 & %s 120; wait" % (busy, busy)], env=api_env, timeout=3, **how)
    assert caught.value.cmd == ["sh", "-c", "%s 120 & %s 120; wait" % (busy, busy)] and caught.value.timeout == 3
    assert not live_processes(busy)
    assert not _trace_files() - before


def test_run_takes_a_string_as_subprocess_run_does(api_env):
    r = testing.run("true", trace=["write"], env=api_env, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and r.args == ["true"], r
    r = testing.run(b"false", env=api_env, timeout=RUN_TIMEOUT)
    assert r.returncode == 1 and r.args == [b"false"], r
    with pytest.raises(FileNotFoundError):
        subprocess.run("true false")   # a string is the program's name, not a command line
    with pytest.raises(testing.MrhookerRunError, match="true false: command not found"):
        testing.run("true false", env=api_env, timeout=RUN_TIMEOUT)


def test_run_refuses_text_input_before_it_starts(api_env):
    with pytest.raises(TypeError, match=r"input= takes bytes.*input=b'hello'") as e:
        testing.run(["cat"], input="hello", env=api_env, timeout=RUN_TIMEOUT)
    assert e.value.__context__ is None, e.value   # one error, not a second raised while cleaning up after it
    r = testing.run(["cat"], input=b"hello", env=api_env, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and r.out == "hello", r


CLIENT_C = r'''
#include <arpa/inet.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        return 3;
    }
    return 0;
}
'''

USER_TEST = '''
import os

def test_refused_connection(mrhooker):
    r = mrhooker.run([os.environ["CLIENT"]], inject=["connect:error=ECONNREFUSED"])
    assert r.returncode == 3
    assert "Connection refused" in r.err
    (call,) = r.calls("connect")
    assert call.injected and call.args["addr"] == {"family": "AF_INET", "address": "127.0.0.1", "port": 9}

def test_no_fault(mrhooker):
    r = mrhooker.run([os.environ["CLIENT"]], trace=["connect"])
    assert r.returncode == 3 and not r.calls("connect")[0].injected
'''


def test_the_pytest_plugin_in_a_users_project(base_env, cprog, tmp_path):
    """A project of someone's: its C program, its test file using the `mrhooker` fixture, run with pytest
    (the plugin found through its entry point), twice at once as `pytest -n` workers would."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_client.py").write_text(USER_TEST)
    env = dict(base_env, CLIENT=cprog(CLIENT_C))
    env.pop("PYTHONPATH", None)   # the installed mrhooker, as a user has it
    procs = [subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
                              cwd=str(project), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(2)]
    for proc in procs:
        out = proc.communicate(timeout=scaled(300))[0].decode()
        assert proc.returncode == 0 and "2 passed" in out, out


@pytest.mark.parametrize("recipe, expected", [
    ("enospc", "cp exit status: 1"), ("oom", "sqlite3 exit status: 1"), ("refused", "curl exit status: 7"),
    ("slow", "(DELAYED)"), ("y2k", "2000")])
def test_the_recipes(base_env, tmp_path, recipe, expected):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mrhooker").write_text("#!/bin/sh\nexec %s -m mrhooker \"$@\"\n" % sys.executable)
    os.chmod(bin_dir / "mrhooker", 0o755)
    env = dict(base_env, PATH="%s:%s" % (bin_dir, base_env["PATH"]))
    r = subprocess.run(["sh", RECIPES, recipe], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=RUN_TIMEOUT)
    out = r.stdout.decode()
    assert expected in out, out
    if recipe == "oom":
        assert "out of memory" in out and "Segmentation" not in out, out
