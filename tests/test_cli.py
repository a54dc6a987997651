"""The command line, end to end: the real mrhooker on real programs (true, sh, ls, small C programs).

Most tests share the session's build cache: a hook script with the same name and text builds once. Tests of the
cache itself, or of its permissions, use a cache of their own (XDG_CACHE_HOME in tmp_path).
"""
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading

import pytest

import mrhooker as mrhooker_package

from helpers import SRC, Result
from helpers import BUSY_C, RUN_TIMEOUT, children, live_processes, wait_for, without_progress, scaled

# ---- programs and hook scripts -----------------------------------------------------------------------------

UNLINKER = r"""
    #include <stdio.h>
    #include <unistd.h>
    /* unlink(argv[1]) (a path that does not exist: the real unlink fails), and say what it returned. */
    int main(int argc, char **argv) {
        int r = unlink(argc > 1 ? argv[1] : "/nonexistent/mrhooker-test");
        printf("unlink=%d\n", r);
        return 0;
    }
"""

# Hooked, unlink says 0 (and the hook says so on mrhooker's stderr); unhooked it says -1.
HOOK = """\
cdef extern int unlink(const char *path) with gil:
    print("hooked unlink(%s)" % path.decode())
    return 0
"""

GONE = "/nonexistent/mrhooker-test"
HOOKED = "hooked unlink(%s)" % GONE

SIGNALLED = r"""
    #include <signal.h>
    #include <string.h>
    #include <unistd.h>
    /* Says which of SIGINT, SIGTERM, SIGHUP it got, and exits 21, 22 or 23. */
    static void on_signal(int sig) {
        const char *msg = sig == SIGINT ? "got SIGINT\n" : sig == SIGTERM ? "got SIGTERM\n" : "got SIGHUP\n";
        write(1, msg, strlen(msg));
        _exit(sig == SIGINT ? 21 : sig == SIGTERM ? 22 : 23);
    }
    int main(void) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        write(1, "ready\n", 6);
        for (;;)
            pause();
    }
"""


@pytest.fixture(scope="session")
def unlinker(cprog):
    return cprog(UNLINKER)


@pytest.fixture
def hook(script):
    return script("h.pyx", HOOK)


def preload_of(result):
    """The LD_PRELOAD a -v run announced."""
    lines = [line for line in result.err.splitlines() if line.startswith("mrhooker: LD_PRELOAD=")]
    assert lines, result
    return lines[0].split("=", 1)[1].split()[0]


def assert_one_line_error(r, status=2):
    """mrhooker's own failure: the status, one line on stderr that starts with "mrhooker:", no traceback."""
    assert r.returncode == status, r
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1, r
    assert lines[0].startswith("mrhooker: "), r
    assert "Traceback" not in r.err, r
    return lines[0]


def assert_error_starts(r, status=2):
    """Like assert_one_line_error, for messages that go on with text that is not mrhooker's (compiler output,
    the offending source line)."""
    assert r.returncode == status, r
    assert r.err.startswith("mrhooker: "), r
    assert "Traceback" not in r.err, r
    return r.err.splitlines()[0]


def fresh_cache(tmp_path):
    """An environment with a cache of its own (its XDG_CACHE_HOME does not exist yet)."""
    return {"XDG_CACHE_HOME": str(tmp_path / "xdg")}


def write(path, text, mode=None):
    path = str(path)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    if mode is not None:
        os.chmod(path, mode)
    return path


# ---- arguments ---------------------------------------------------------------------------------------------

def test_hook_runs_and_target_output_is_untouched(mrhooker, hook, unlinker):
    r = mrhooker(hook, unlinker, GONE)
    assert r.returncode == 0, r
    assert r.out == "unlink=0\n", r       # the hook's result reached the program
    assert HOOKED in r.err, r              # the hook's print went to mrhooker's stderr, not the target's stdout


def test_options_end_at_script(mrhooker, hook, tmp_path):
    (tmp_path / "a-file").write_text("x")
    r = mrhooker(hook, "ls", "-l", "-d", tmp_path / "a-file")
    assert r.returncode == 0, r
    assert r.out.startswith("-rw"), r     # -l went to ls: a long listing
    # -v after SCRIPT is COMMAND's: mrhooker stays quiet, sh sees it as $1
    r = mrhooker(hook, "sh", "-c", 'echo "arg: $1"', "sh", "-v")
    assert r.returncode == 0 and r.out == "arg: -v\n", r
    assert "mrhooker:" not in r.err, r


def test_double_dash_before_script_and_before_command(mrhooker, hook):
    for args in (["--", hook, "sh", "-c", "echo ok"], [hook, "--", "sh", "-c", "echo ok"],
                 ["-v", "--", hook, "--", "sh", "-c", "echo ok"]):
        r = mrhooker(*args)
        assert r.returncode == 0 and r.out == "ok\n", (args, r)
    assert "mrhooker: LD_PRELOAD=" in r.err, r   # -v before -- still counts


def test_script_name_starting_with_dash_after_double_dash(mrhooker, tmp_path, unlinker):
    # `--` ends the options, so a script whose path starts with '-' is a script
    write(tmp_path / "-h.pyx", HOOK)
    r = mrhooker("--", "-h.pyx", unlinker, GONE, cwd=tmp_path)
    assert "usage" not in r.out, r
    # its module name (-h) is not an identifier: refused as such, not taken for an option
    line = assert_one_line_error(r)
    assert "identifier" in line, r


def test_version(mrhooker):
    r = mrhooker("--version")
    assert r.returncode == 0, r
    assert r.out == "mrhooker %s\n" % mrhooker_package.__version__, r


def test_help(mrhooker):
    r = mrhooker("-h")
    assert r.returncode == 0, r
    assert r.out.startswith("usage: mrhooker [run] [OPTIONS] SCRIPT.pyx|SCRIPT.py COMMAND"), r
    for option in ("-o FILE", "--no-follow", "--build-dir", "-I DIR", "-l LIB", "-L DIR", "--cflags", "--ldflags",
                   "--rebuild", "--force", "--verbose", "--version", "--help"):
        assert option in r.out, option
    assert mrhooker("--help").out == r.out


def test_unknown_option_and_missing_arguments(mrhooker, hook):
    r = mrhooker("--frobnicate", hook, "true")
    assert r.returncode == 2 and r.err.startswith("mrhooker: unknown option --frobnicate"), r
    assert "usage:" in r.err and "Traceback" not in r.err, r
    r = mrhooker(hook)
    assert r.returncode == 2 and r.err.startswith("mrhooker: no command given"), r
    r = mrhooker()
    assert r.returncode == 2 and r.err.startswith("mrhooker: no hook script given"), r
    r = mrhooker("--build-dir")
    assert r.returncode == 2 and r.err.startswith("mrhooker: option --build-dir needs a value"), r
    r = mrhooker("--rebuild=yes", hook, "true")
    assert r.returncode == 2 and "takes no value" in r.err, r
    r = mrhooker("trace", "--fake-time", "-3d", "true")   # a value that looks like an option: say how
    assert r.returncode == 2 and r.err.splitlines()[0] == (
        "mrhooker: option --fake-time needs a value (one starting with '-' as --fake-time=-VALUE)"), r


@pytest.mark.parametrize("args, words", [
    (["--rebiuld"], "unknown option --rebiuld (did you mean --rebuild?)"),
    (["--buidl-dir", "x"], "unknown option --buidl-dir (did you mean --build-dir?)"),
    (["--verbos"], "unknown option --verbos (did you mean --verbose?)"),
    (["run", "--no-folow"], "unknown option --no-folow (did you mean --no-follow?)"),
    (["--frobnicate"], "unknown option --frobnicate\n"),   # nothing close: no guess
])
def test_a_misspelled_option_gets_did_you_mean(mrhooker, hook, args, words):
    r = mrhooker(*args, hook, "true")
    assert r.returncode == 2 and r.err.startswith("mrhooker: ") and words in r.err, r
    assert len(r.err.splitlines()) == 2 and r.err.splitlines()[1].startswith("usage: "), r


def test_a_python_without_a_shared_libpython_is_one_clear_line(monkeypatch):
    import sysconfig
    from mrhooker import toolchain
    from mrhooker.errors import MrhookerError
    real = sysconfig.get_config_var
    monkeypatch.setattr(sysconfig, "get_config_var", lambda name: None if name == "Py_ENABLE_SHARED" else real(name))
    with pytest.raises(MrhookerError) as caught:
        toolchain.python_info.__wrapped__()
    message = str(caught.value)
    assert "has no shared libpython" in message and "--enable-shared" in message and "\n" not in message


def test_build_dir(mrhooker, hook, unlinker, tmp_path):
    builds = tmp_path / "builds"
    r = mrhooker("-v", "--build-dir", builds, hook, unlinker, GONE)
    assert r.returncode == 0 and r.out == "unlink=0\n", r
    assert preload_of(r).startswith(str(builds) + "/"), r
    assert stat.S_IMODE(os.stat(builds).st_mode) == 0o700
    # the --opt=value form, and a relative path
    r = mrhooker("-v", "--build-dir=rel", hook, unlinker, GONE, cwd=tmp_path)
    assert r.returncode == 0, r
    assert preload_of(r).startswith(str(tmp_path / "rel") + "/"), r


def test_output_file(mrhooker, hook, unlinker, tmp_path):
    out = tmp_path / "hooks.log"
    r = mrhooker("-o", out, hook, unlinker, GONE)
    assert r.returncode == 0 and r.out == "unlink=0\n", r
    assert HOOKED not in r.err, r
    assert out.read_text() == HOOKED + "\n"
    r = mrhooker("--output=%s" % out, hook, unlinker, GONE)   # appended to: runs sharing a file keep every line
    assert out.read_text() == (HOOKED + "\n") * 2
    r = mrhooker("-o", tmp_path / "no-such-dir" / "x.log", hook, "true")
    line = assert_one_line_error(r)
    assert "no-such-dir" in line, r


def test_follow_and_no_follow(mrhooker, hook, unlinker):
    # sh is hooked either way; the program it runs is hooked only when mrhooker follows executions
    r = mrhooker(hook, "sh", "-c", '"$0" "$1"', unlinker, GONE)
    assert r.returncode == 0 and r.out == "unlink=0\n" and HOOKED in r.err, r
    r = mrhooker("--no-follow", hook, "sh", "-c", '"$0" "$1"', unlinker, GONE)
    assert r.returncode == 0 and r.out == "unlink=-1\n" and HOOKED not in r.err, r


def test_verbose_says_what_happens(mrhooker, script, tmp_path):
    path = script("verbose_%s.pyx" % os.getpid(), HOOK)   # a module no other test builds
    env = fresh_cache(tmp_path)
    r = mrhooker("-v", path, "sh", "-c", "exit 3", env=env)
    assert r.returncode == 3, r
    err = r.err
    assert "mrhooker: script: %s (module verbose_%d, pyx)" % (path, os.getpid()) in err, r
    cache = os.path.join(env["XDG_CACHE_HOME"], "mrhooker")
    assert "mrhooker: cache miss: building in %s" % cache in err, r
    assert "mrhooker: run: " in err and " -m cython " in err, r                     # the Cython command
    assert any(line.startswith("mrhooker: run: ") and "-shared" in line and "-o " in line
               for line in err.splitlines()), r                                    # the compiler commands
    built = [line.split(": ", 2)[2] for line in err.splitlines() if line.startswith("mrhooker: built: ")]
    assert built and built[0].startswith(cache + "/"), r                          # the build dir
    assert "mrhooker: LD_PRELOAD=%s/preload.so" % built[0] in err, r
    assert "mrhooker: exit status: 3" in err, r
    r = mrhooker("-v", path, "sh", "-c", 'kill -KILL $$', env=env)
    assert "mrhooker: cache hit: %s" % built[0] in r.err, r
    assert "mrhooker: exit status: killed by signal 9" in r.err, r
    r = mrhooker(path, "true", env=env)                                              # and without -v, nothing
    assert r.returncode == 0 and r.err == "", r


# ---- the cache ---------------------------------------------------------------------------------------------

def _libs(result):
    preload = preload_of(result)
    libs = [preload, os.path.join(os.path.dirname(preload), "hooks.so")]
    return [(p, os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in libs]


def test_cache_hit_and_miss(mrhooker, script, unlinker, tmp_path):
    env = fresh_cache(tmp_path)
    path = script("cached.pyx", HOOK)
    first = mrhooker("-v", path, unlinker, GONE, env=env)
    assert first.returncode == 0 and first.out == "unlink=0\n", first
    assert "cache miss" in first.err, first
    cache = os.path.join(env["XDG_CACHE_HOME"], "mrhooker")
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    built = os.path.dirname(preload_of(first))
    assert stat.S_IMODE(os.stat(built).st_mode) == 0o700
    libs = _libs(first)

    second = mrhooker("-v", path, unlinker, GONE, env=env)
    assert second.returncode == 0 and second.out == "unlink=0\n", second
    assert "cache hit" in second.err and "cache miss" not in second.err and " -m cython " not in second.err, second
    assert _libs(second) == libs                      # the same files, not rebuilt

    write(path, HOOK.replace("hooked unlink", "changed unlink"))
    third = mrhooker("-v", path, unlinker, GONE, env=env)
    assert "cache miss" in third.err, third
    assert "changed unlink(%s)" % GONE in third.err, third
    assert os.path.dirname(preload_of(third)) != built


def test_rebuild_replaces_the_cached_libraries(mrhooker, script, unlinker, tmp_path):
    env = fresh_cache(tmp_path)
    path = script("rebuilt.pyx", HOOK)
    first = mrhooker("-v", path, unlinker, GONE, env=env)
    assert first.returncode == 0 and "cache miss" in first.err, first
    libs = _libs(first)
    again = mrhooker("-v", "--rebuild", path, unlinker, GONE, env=env)
    assert again.returncode == 0 and again.out == "unlink=0\n", again
    assert "cache hit" not in again.err and " -m cython " in again.err, again
    # what --rebuild is for: libraries built afresh, in use (a cached build that is wrong in a way its key
    # does not catch must be replaced, not kept)
    assert [lib[1:] for lib in _libs(again)] != [lib[1:] for lib in libs]


INCLUDING = """\
from helpers cimport magic
cdef extern from "mrhtest_magic.h":
    int MAGIC_NUMBER
cdef extern int unlink(const char *path) with gil:
    print("magic %d %d %s" % (magic(), MAGIC_NUMBER, path.decode()))
    return 0
"""


def _include_dir(path, pxd_value=42, header_value=4242):
    os.makedirs(str(path), exist_ok=True)
    write(os.path.join(str(path), "helpers.pxd"), "cdef inline int magic():\n    return %d\n" % pxd_value)
    write(os.path.join(str(path), "mrhtest_magic.h"), "#define MAGIC_NUMBER %d\n" % header_value)
    return str(path)


def test_include_dirs_for_pxd_and_header_and_their_changes_rebuild(mrhooker, script, unlinker, tmp_path):
    env = fresh_cache(tmp_path)
    inc = _include_dir(tmp_path / "inc")
    path = script("including.pyx", INCLUDING)
    r = mrhooker("-v", "-I", inc, path, unlinker, GONE, env=env)
    assert r.returncode == 0 and r.out == "unlink=0\n", r
    assert "magic 42 4242 %s" % GONE in r.err, r
    r = mrhooker("-v", "-I" + inc, path, unlinker, GONE, env=env)       # -IDIR, unchanged: a cache hit
    assert "cache hit" in r.err and "magic 42 4242" in r.err, r

    write(os.path.join(inc, "helpers.pxd"), "cdef inline int magic():\n    return 43\n")
    r = mrhooker("-v", "-I", inc, path, unlinker, GONE, env=env)
    assert "cache miss" in r.err and "magic 43 4242" in r.err, r

    write(os.path.join(inc, "mrhtest_magic.h"), "#define MAGIC_NUMBER 4343\n")
    r = mrhooker("-v", "-I", inc, path, unlinker, GONE, env=env)
    assert "cache miss" in r.err and "magic 43 4343" in r.err, r
    r = mrhooker("-v", "-I", inc, path, unlinker, GONE, env=env)
    assert "cache hit" in r.err and "magic 43 4343" in r.err, r


def test_include_dirs_are_repeatable_and_needed(mrhooker, script, unlinker, tmp_path):
    pxd_dir, header_dir = tmp_path / "pxd", tmp_path / "hdr"
    _include_dir(pxd_dir, 7, 0)
    _include_dir(header_dir, 0, 77)
    os.unlink(str(pxd_dir / "mrhtest_magic.h"))
    os.unlink(str(header_dir / "helpers.pxd"))
    path = script("including2.pyx", INCLUDING)
    r = mrhooker("-I", pxd_dir, "-I", header_dir, path, unlinker, GONE)
    assert r.returncode == 0 and "magic 7 77 %s" % GONE in r.err, r
    # without the header's directory: the C compiler cannot find it
    r = mrhooker("-I", pxd_dir, path, unlinker, GONE)
    assert_error_starts(r)
    assert "mrhtest_magic.h" in r.err, r
    # without the .pxd's directory: Cython cannot cimport it
    r = mrhooker("-I", header_dir, path, unlinker, GONE)
    assert_error_starts(r)
    assert "helpers" in r.err and "%s:1:" % path in r.err, r


def test_concurrent_first_runs_all_succeed(base_env, script, unlinker, tmp_path):
    env = dict(base_env, **fresh_cache(tmp_path))
    path = script("concurrent.pyx", HOOK)
    procs = [subprocess.Popen([sys.executable, "-m", "mrhooker", path, unlinker, GONE], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    results = [p.communicate(timeout=scaled(120)) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err.decode()
        assert out == b"unlink=0\n", (out, err)
        assert HOOKED.encode() in err, err
        assert b"Traceback" not in err, err
    cache = os.path.join(env["XDG_CACHE_HOME"], "mrhooker")
    assert not [n for n in os.listdir(cache) if n.startswith(".tmp")], os.listdir(cache)   # nothing half-built
    r = subprocess.run([sys.executable, "-m", "mrhooker", "-v", path, "true"], env=env, stderr=subprocess.PIPE)
    assert b"cache hit" in r.stderr, r.stderr


# ---- private cache and build directories -------------------------------------------------------------------

def test_group_writable_cache_is_refused(mrhooker, hook, tmp_path):
    env = fresh_cache(tmp_path)
    cache = tmp_path / "xdg" / "mrhooker"
    cache.mkdir(parents=True)
    os.chmod(str(cache), 0o770)
    line = assert_one_line_error(mrhooker(hook, "true", env=env))
    assert "cache directory %s is writable by its group" % cache in line and "chmod go-w" in line


def test_cache_whose_parent_others_can_write_is_refused(mrhooker, hook, tmp_path):
    env = fresh_cache(tmp_path)
    (tmp_path / "xdg").mkdir()
    os.chmod(str(tmp_path / "xdg"), 0o777)   # not sticky: anyone could rename the cache away
    line = assert_one_line_error(mrhooker(hook, "true", env=env))
    assert "%s is writable by others" % (tmp_path / "xdg") in line
    assert list((tmp_path / "xdg").iterdir()) == []   # refused before anything is made in it


def test_a_cache_hit_in_a_cache_made_unsafe_is_refused(mrhooker, hook, unlinker, tmp_path):
    env = fresh_cache(tmp_path)
    assert mrhooker(hook, unlinker, GONE, env=env).returncode == 0
    os.chmod(str(tmp_path / "xdg" / "mrhooker"), 0o720)
    r = mrhooker(hook, unlinker, GONE, env=env)
    line = assert_one_line_error(r)
    assert "writable by its group" in line and r.out == "", r


def test_cache_owned_by_another_user_is_refused(mrhooker, hook, tmp_path):
    env = fresh_cache(tmp_path)
    cache = tmp_path / "xdg" / "mrhooker"
    cache.mkdir(parents=True, mode=0o700)
    os.chown(str(cache), _nobody_uid(), -1)
    line = assert_one_line_error(mrhooker(hook, "true", env=env))
    assert "cache directory %s is owned by another user" % cache in line


def test_unsafe_build_dir_is_refused(mrhooker, hook, tmp_path):
    others = tmp_path / "others-writable"
    others.mkdir()
    os.chmod(str(others), 0o757)
    line = assert_one_line_error(mrhooker("--build-dir", others, hook, "true"))
    assert "build directory %s is writable by others" % others in line
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(str(foreign), _nobody_uid(), -1)
    line = assert_one_line_error(mrhooker("--build-dir", foreign, hook, "true"))
    assert "build directory %s is owned by another user" % foreign in line


# ---- script styles -----------------------------------------------------------------------------------------

def test_seed_style_python2_print_statement(mrhooker, script, unlinker):
    path = script("py2style.pyx", """\
        cdef extern int unlink(const char *path) with gil:
            print "py2 unlink", path.decode()
            return 0
        """)
    r = mrhooker(path, unlinker, GONE)
    assert r.returncode == 0 and r.out == "unlink=0\n", r
    assert "py2 unlink %s" % GONE in r.err, r


def test_python3_script_and_language_level_directive(mrhooker, script, unlinker):
    path = script("py3style.pyx", """\
        # cython: language_level=3
        cdef extern int unlink(const char *path) with gil:
            print("py3", "unlink", path.decode(), 7 / 2, sep="|")
            return 0
        """)
    r = mrhooker(path, unlinker, GONE)
    assert r.returncode == 0 and r.out == "unlink=0\n", r
    assert "py3|unlink|%s|3.5" % GONE in r.err, r


def test_language_level_2_directive_is_honoured(mrhooker, script, unlinker):
    # print("a", x) is valid in both; under language_level=2 it prints a tuple
    path = script("level2.pyx", """\
        # cython: language_level=2
        cdef extern int unlink(const char *path) with gil:
            print("a", 7 / 2, path == b"")
            return 0
        """)
    r = mrhooker(path, unlinker, GONE)
    assert r.returncode == 0 and "('a', 3, False)" in r.err, r


def test_language_level_3_directive_rejects_print_statement(mrhooker, script):
    path = script("level3.pyx", """\
        # cython: language_level=3
        cdef extern int unlink(const char *path) with gil:
            print "no"
            return 0
        """)
    r = mrhooker(path, "true")
    first = assert_error_starts(r)
    assert first.startswith("mrhooker: %s:3:" % path), r
    assert 'print "no"' in r.err, r


def test_python_script(mrhooker, script, unlinker):
    path = script("pyhook.py", """\
        from mrhooker import hook

        @hook("int unlink(const char *pathname)")
        def unlink(path):
            print("py hook", path.decode())
            return 0
        """)
    r = mrhooker(path, unlinker, GONE)
    assert r.returncode == 0 and r.out == "unlink=0\n", r
    assert "py hook %s" % GONE in r.err, r


def test_hook_may_ignore_its_arguments(mrhooker, script, unlinker):
    # a hook that never reads its parameter (Cython marks it CYTHON_UNUSED in the C it writes)
    path = script("unused.pyx", """\
        cdef extern int unlink(const char *path) with gil:
            print("unlink ignored")
            return 0
        """)
    r = mrhooker(path, unlinker, GONE)
    assert r.returncode == 0 and r.out == "unlink=0\n" and "unlink ignored" in r.err, r


# ---- compiler and linker flags -----------------------------------------------------------------------------

def test_cflags(mrhooker, script, unlinker):
    path = script("cflagged.pyx", """\
        cdef extern from *:
            int HOOK_VALUE
        cdef extern int unlink(const char *path) with gil:
            print("value %d %s" % (HOOK_VALUE, path.decode()))
            return 0
        """)
    r = mrhooker("--cflags", "-DHOOK_VALUE=5 -DUNUSED='a b'", path, unlinker, GONE)
    assert r.returncode == 0 and "value 5 %s" % GONE in r.err, r
    r = mrhooker("--cflags=-DHOOK_VALUE=6", path, unlinker, GONE)
    assert r.returncode == 0 and "value 6 %s" % GONE in r.err, r
    r = mrhooker("--cflags", "-DX='unclosed", path, unlinker, GONE)
    line = assert_one_line_error(r)
    assert "--cflags" in line


LIBRARY_HOOK = """\
cdef extern from *:
    int mrhtest_answer()
cdef extern int unlink(const char *path) with gil:
    print("answer %d %s" % (mrhtest_answer(), path.decode()))
    return 0
"""


@pytest.fixture(scope="session")
def answer_lib(cprog, session_dir):
    """A directory with libmrhtest.so, whose mrhtest_answer() returns 41."""
    so = cprog("int mrhtest_answer(void) { return 41; }\n", flags=["-shared", "-fPIC"], suffix=".so")
    libdir = session_dir / "answerlib"
    libdir.mkdir(exist_ok=True)
    shutil.copy(so, str(libdir / "libmrhtest.so"))
    return str(libdir)


def test_link_with_a_library(mrhooker, script, unlinker, answer_lib):
    path = script("linked.pyx", LIBRARY_HOOK)
    r = mrhooker("-L", answer_lib, "-lmrhtest", path, unlinker, GONE, env={"LD_LIBRARY_PATH": answer_lib})
    assert r.returncode == 0, r
    assert "answer 41 %s" % GONE in r.err, r
    assert r.out == "unlink=0\n", r


def test_ldflags(mrhooker, script, unlinker, answer_lib):
    path = script("linked.pyx", LIBRARY_HOOK)
    r = mrhooker("--ldflags", "-L%s -Wl,-rpath,%s -lmrhtest" % (answer_lib, answer_lib), path, unlinker, GONE)
    assert r.returncode == 0, r
    assert "answer 41 %s" % GONE in r.err and r.out == "unlink=0\n", r


# ---- the config file ---------------------------------------------------------------------------------------

def _config(tmp_path, text):
    return {"MRHOOKER_CONFIG": write(tmp_path / "test.config", text)}


def test_no_default_config_file_is_fine(mrhooker, hook, unlinker, tmp_path):
    # MRHOOKER_CONFIG empty: the default ~/.mrhooker/mrhooker.config, which this HOME lacks
    r = mrhooker(hook, unlinker, GONE, env={"MRHOOKER_CONFIG": "", "HOME": str(tmp_path)})
    assert r.returncode == 0 and r.out == "unlink=0\n" and r.err == HOOKED + "\n", r


def test_default_config_file_is_read(mrhooker, hook, tmp_path):
    (tmp_path / ".mrhooker").mkdir()
    write(tmp_path / ".mrhooker" / "mrhooker.config", "[default]\nverbose = yes\n")
    r = mrhooker(hook, "true", env={"MRHOOKER_CONFIG": "", "HOME": str(tmp_path)})
    assert r.returncode == 0 and "mrhooker: LD_PRELOAD=" in r.err, r


def test_named_config_file_missing(mrhooker, hook, tmp_path):
    missing = tmp_path / "nope.config"
    line = assert_one_line_error(mrhooker(hook, "true", env={"MRHOOKER_CONFIG": str(missing)}))
    assert str(missing) in line and "not found" in line and "MRHOOKER_CONFIG" in line


def test_config_without_default_section(mrhooker, hook, tmp_path):
    r = mrhooker(hook, "true", env=_config(tmp_path, "[someothermodule]\nverbose = true\n"))
    assert r.returncode == 0 and r.err == "", r


@pytest.mark.parametrize("value,on", [("true", True), ("1", True), ("yes", True), ("on", True), ("True", True),
                                      ("false", False), ("0", False), ("no", False), ("off", False)])
def test_config_verbose_values(mrhooker, hook, tmp_path, value, on):
    r = mrhooker(hook, "true", env=_config(tmp_path, "[default]\nverbose = %s\n" % value))
    assert r.returncode == 0, r
    assert ("mrhooker: LD_PRELOAD=" in r.err) == on, r
    if not on:
        assert r.err == "", r


def test_config_module_section_beats_default_and_cli_beats_both(mrhooker, hook, tmp_path):
    env = _config(tmp_path, "[default]\nverbose = true\n[h]\nverbose = false\n")
    assert mrhooker(hook, "true", env=env).err == ""
    assert "mrhooker: LD_PRELOAD=" in mrhooker("-v", hook, "true", env=env).err
    env = _config(tmp_path, "[default]\nverbose = false\n[h]\nverbose = true\n")
    assert "mrhooker: LD_PRELOAD=" in mrhooker(hook, "true", env=env).err
    env = _config(tmp_path, "[default]\nverbose = false\n[other]\nverbose = true\n")
    assert mrhooker(hook, "true", env=env).err == ""


def test_config_build_dir_tilde_module_and_precedence(mrhooker, hook, unlinker, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = _config(tmp_path, """\
        [default]
        build_dir = ~/builds/%(module)s
        verbose = 1
        """)
    env["HOME"] = str(home)
    r = mrhooker(hook, unlinker, GONE, env=env)
    assert r.returncode == 0 and r.out == "unlink=0\n", r
    assert preload_of(r).startswith(str(home / "builds" / "h") + "/"), r

    env.update(_config(tmp_path, """\
        [default]
        build_dir = ~/builds/%%(module)s
        verbose = 1
        [h]
        build_dir = %s/module-builds
        """ % tmp_path))
    r = mrhooker(hook, unlinker, GONE, env=env)
    assert preload_of(r).startswith(str(tmp_path / "module-builds") + "/"), r
    r = mrhooker("--build-dir", tmp_path / "cli-builds", hook, unlinker, GONE, env=env)
    assert preload_of(r).startswith(str(tmp_path / "cli-builds") + "/"), r


def test_config_include_dirs_and_cflags(mrhooker, script, unlinker, tmp_path):
    pxd_dir, header_dir = _include_dir(tmp_path / "pxd", 8, 0), _include_dir(tmp_path / "hdr", 0, 88)
    path = script("confincl.pyx", INCLUDING.replace("MAGIC_NUMBER, path", "MAGIC_NUMBER + EXTRA, path")
                  .replace('    int MAGIC_NUMBER\n', '    int MAGIC_NUMBER\n    int EXTRA\n'))
    env = _config(tmp_path, """\
        [default]
        include_dirs = %s:%s
        cflags = -DEXTRA=1000
        [confincl]
        cflags = -DEXTRA=2000
        """ % (pxd_dir, header_dir))
    os.unlink(os.path.join(pxd_dir, "mrhtest_magic.h"))
    os.unlink(os.path.join(header_dir, "helpers.pxd"))
    r = mrhooker(path, unlinker, GONE, env=env)
    assert r.returncode == 0 and "magic 8 2088 %s" % GONE in r.err, r     # module's cflags beat [default]'s
    r = mrhooker("--cflags", "-DEXTRA=3000", path, unlinker, GONE, env=env)
    assert r.returncode == 0 and "magic 8 3088 %s" % GONE in r.err, r     # the command line's beat both
    other = _include_dir(tmp_path / "other", 9, 99)
    r = mrhooker("-I", other, path, unlinker, GONE, env=env)
    assert r.returncode == 0 and "magic 9 2099 %s" % GONE in r.err, r     # -I replaces the config's dirs


def test_config_ldflags(mrhooker, script, unlinker, answer_lib, tmp_path):
    path = script("linked.pyx", LIBRARY_HOOK)
    env = _config(tmp_path, "[linked]\nldflags = -L%s -Wl,-rpath,%s -lmrhtest\n" % (answer_lib, answer_lib))
    r = mrhooker(path, unlinker, GONE, env=env)
    assert r.returncode == 0 and "answer 41 %s" % GONE in r.err, r


def test_config_inline_comments_as_in_the_readme(mrhooker, hook, unlinker, tmp_path):
    # The README's example has comments after values and after a section header: they are comments, not part of
    # the build directory's name (which then had a space, and was refused after the build) or of the section's.
    env = _config(tmp_path, """\
        [default]
        build_dir = %s/builds/%%(module)s   ; %%(module)s is the script's module name
        verbose = false
        [h]            ; a section named after a script's module (h.py) beats [default]
        verbose = true   # on
        cflags = -DX=a;b
        """ % tmp_path)
    r = mrhooker(hook, unlinker, GONE, env=env)
    assert r.returncode == 0 and r.out == "unlink=0\n", r
    assert preload_of(r).startswith(str(tmp_path / "builds" / "h") + "/"), r


@pytest.mark.parametrize("args,hint", [(["-v", "trace", "-e", "write", "true"], "mrhooker trace -v"),
                                       (["--rebuild", "-v", "sweep", "true"], "mrhooker sweep --rebuild -v")])
def test_options_before_a_subcommand_are_one_line_saying_where_they_go(mrhooker, args, hint):
    # Options end at SCRIPT, so `mrhooker -v trace -e write true` took `trace` for a hook script and `-e` for the
    # command: "mrhooker: -e: command not found", status 127.
    msg = assert_one_line_error(mrhooker(*args))
    assert msg.endswith("put its options after it: " + hint), msg


def test_the_readmes_config_file_works_for_a_trace(mrhooker, tmp_path):
    # `mrhooker trace` has no script, so no module for the README's `build_dir = .../%(module)s`: configparser
    # was given None for it, and every trace ended in `mrhooker: internal error: TypeError`.
    env = _config(tmp_path, """\
        [default]
        build_dir = %s/builds/%%(module)s   ; %%(module)s is the script's module name
        verbose = false
        """ % tmp_path)
    r = mrhooker("trace", "-e", "unlink", "true", env=env, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and r.err.splitlines()[-1:] == ["+++ exited with 0 +++"], r
    # and a broken value is the same one line as for hooks
    env = _config(tmp_path, "[default]\nverbose = %(module)s\n")
    msg = assert_one_line_error(mrhooker("trace", "-e", "unlink", "true", env=env, timeout=RUN_TIMEOUT))
    assert msg.startswith("mrhooker: %s:2: verbose: not a boolean: 'trace'" % env["MRHOOKER_CONFIG"]), msg


@pytest.mark.parametrize("text,line,words", [
    ("[default]\nverbose\n", 2, ["key = value"]),                              # syntax error
    ("verbose = true\n", 1, ["[default]"]),                                     # before any section
    ("[default\nverbose = true\n", 1, ["section header"]),                     # broken header
    ("[default]\n\nbuild_dirs = /tmp\n", 3, ["unknown setting", "build_dirs"]),
    ("[default]\nverbose = false\n[h]\nverbose = maybe\n", 4, ["not a boolean", "maybe"]),
    ("[default]\nbuild_dir = /tmp/%(nope)s\n", 2, ["build_dir", "nope"]),      # bad interpolation
    ("[default]\ncflags = -DX=%(module\n", 2, ["cflags", "%(module"]),
    ("[default]\ncflags = -DFMT=\"%d\"\n", 2, ["cflags", "%%"]),                # a lone %
    ("[default]\nverbose = true\nverbose = false\n", 3, ["verbose", "already exists"]),
    ("[default]\ncflags = 'unclosed\n", 2, ["cflags"]),
    ("[default]\nbuild_dir = /tmp/a\n  b\n", 2, ["build_dir", "several lines"]),   # an indented line
])
def test_broken_config_is_one_line_with_file_and_line(mrhooker, hook, tmp_path, text, line, words):
    env = _config(tmp_path, text)
    msg = assert_one_line_error(mrhooker(hook, "true", env=env))
    assert msg.startswith("mrhooker: %s:%d:" % (env["MRHOOKER_CONFIG"], line)), msg
    for word in words:
        assert word in msg, msg


# ---- exit status and signals -------------------------------------------------------------------------------

def test_exit_status_is_the_childs(mrhooker, hook):
    assert mrhooker(hook, "sh", "-c", "exit 7").returncode == 7
    assert mrhooker(hook, "false").returncode == 1
    assert mrhooker(hook, "true").returncode == 0


@pytest.mark.parametrize("sig,expected", [("KILL", 137), ("TERM", 143), ("SEGV", 139)])
def test_child_killed_by_signal_shell_sees_128_plus_n(base_env, hook, sig, expected):
    # what a shell that runs mrhooker sees: SIGTERM is reproduced (mrhooker dies by it), SIGKILL and SIGSEGV
    # become 128+N
    line = "%s -m mrhooker %s sh -c 'kill -%s $$'; echo $?" % (sys.executable, hook, sig)
    r = subprocess.run(["sh", "-c", line], env=base_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=scaled(120))
    assert r.stdout == b"%d\n" % expected, r
    err = without_progress(r.stderr.decode())
    assert "mrhooker:" not in err and "Traceback" not in err, r


def _signal_once_ready(base_env, argv, sig, preexec_fn=None):
    """Runs mrhooker with argv, whose command prints "ready" first; sends sig to mrhooker once it has (the child
    runs, and mrhooker waits for it). (the rest of stdout, stderr, exit status)"""
    proc = subprocess.Popen([sys.executable, "-m", "mrhooker"] + argv, env=base_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=preexec_fn)
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout.readline() == b"ready\n"
        os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=scaled(60))
    finally:
        watchdog.cancel()
    return out, err, proc.returncode


@pytest.mark.parametrize("sig,name,code", [(signal.SIGINT, "SIGINT", 21), (signal.SIGTERM, "SIGTERM", 22),
                                           (signal.SIGHUP, "SIGHUP", 23)])
def test_signals_to_mrhooker_reach_the_child(base_env, hook, cprog, sig, name, code):
    out, err, returncode = _signal_once_ready(base_env, [hook, cprog(SIGNALLED)], sig)
    assert out == ("got %s\n" % name).encode(), (out, err)
    assert returncode == code, (returncode, err)
    assert b"Traceback" not in err, err


def _blocked_signals(native_id):
    with open("/proc/self/task/%d/status" % native_id) as f:
        mask = int(next(line for line in f if line.startswith("SigBlk:")).split()[1], 16)
    return {sig for sig in signal.valid_signals() if mask >> (sig - 1) & 1}


def test_no_thread_mrhooker_starts_can_take_a_signal():
    """The reproduction: test_signals_to_mrhooker_reach_the_child once got 129 and "mrhooker: interrupted" for
    the target's 23 (with the suite in two processes): the SIGHUP it sent went to the preparation's progress
    timer, cancelled a moment before but not yet gone, and Python ran mrhooker's build-time handler for it. The
    threads mrhooker starts (mrhooker.threads: a thread, the timer) block every signal (all that can be blocked,
    1 to 31; the real-time ones are left to the C library). (The preparation's compiler pools don't, and are
    done before the target runs: threads.py.)"""
    from mrhooker import cli, threads
    wanted = {sig for sig in signal.valid_signals() if sig < signal.SIGRTMIN} - {signal.SIGKILL, signal.SIGSTOP}
    seen = {}
    release = threading.Event()
    thread = threads.start(threading.Thread(target=release.wait, daemon=True))
    seen["thread"] = _blocked_signals(thread.native_id)
    release.set()
    thread.join()
    preparing = cli.Console(False).preparing("nothing")
    with preparing:
        seen["the preparation's timer"] = _blocked_signals(preparing.timer.native_id)
    for what, blocked in seen.items():
        assert wanted <= blocked, (what, sorted(signal.Signals(s).name for s in wanted - blocked))
    # and no thread is started any other way
    for name in sorted(os.listdir(os.path.join(SRC, "mrhooker"))):
        if name.endswith(".py") and name != "threads.py":
            with open(os.path.join(SRC, "mrhooker", name)) as f:
                for number, line in enumerate(f, 1):
                    started = re.search(r"Timer\(|(?<!threads\.start\()threading\.Thread\(", line)
                    assert not started, "%s:%d starts a thread not through mrhooker.threads: %s" % (name, number, line)


def test_the_target_starts_once_no_thread_could_take_its_signals(base_env):
    """CI: `kill -INT -- -PGID` to a hook run got "mrhooker: interrupted" and not the program's "got 1": a compiler
    pool's worker, joined but still exiting under load, its signals unblocked, took the SIGINT. threads.settle()
    (launch calls it before the target starts) waits for such a thread to be gone, and not for one that blocks
    them. (In a Python of its own: a pytest-xdist worker has threads of its own that take signals.)"""
    code = textwrap.dedent("""\
        import signal, threading, time
        from mrhooker import threads
        release = threading.Event()
        plain = threading.Thread(target=release.wait, daemon=True)   # its signals unblocked, as a pool's worker's
        plain.start()
        threads.start(threading.Thread(target=lambda: (time.sleep(0.3), release.set()), daemon=True))
        started = time.monotonic()
        threads.settle({signal.SIGINT, signal.SIGTERM}, timeout=%r)
        assert not plain.is_alive() and time.monotonic() - started >= 0.25, "did not wait for the plain thread"
        blocked = threads.start(threading.Thread(target=time.sleep, args=(%r,), daemon=True))
        started = time.monotonic()
        threads.settle({signal.SIGINT, signal.SIGTERM}, timeout=%r)
        assert blocked.is_alive(), "waited for a thread that blocks them"
        print("ok")
        """ % (scaled(20), scaled(20), scaled(20)))
    r = subprocess.run([sys.executable, "-c", code], env=base_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and r.stdout == "ok\n", r


@pytest.mark.parametrize("trace", [False, True])
def test_nohup_keeps_sighup_ignored_by_mrhooker_and_the_child(base_env, hook, trace):
    """`nohup mrhooker ...`: a hangup kills neither, as `nohup CMD` alone (mrhooker's own handler had replaced the
    inherited SIG_IGN, so the child, no longer ignoring it, was killed by the SIGHUP mrhooker forwarded)."""
    argv = ["trace", "-e", "nanosleep"] if trace else [hook]
    out, err, returncode = _signal_once_ready(base_env, argv + ["sh", "-c", "echo ready; sleep 1; echo done"],
                                              signal.SIGHUP,
                                              preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    assert out == b"done\n" and returncode == 0, (out, returncode, err)


def test_child_killed_by_forwarded_signal_kills_mrhooker_alike(base_env, hook):
    out, err, returncode = _signal_once_ready(base_env, [hook, "sh", "-c", "echo ready; exec sleep 60"],
                                              signal.SIGTERM)
    assert returncode == -signal.SIGTERM, (returncode, err)
    assert b"Traceback" not in err, err


def test_sigkill_of_mrhooker_kills_the_hooked_program_and_its_children(base_env, hook, cprog):
    """As a tracee dies with strace: mrhooker killed by SIGKILL (subprocess's timeout does that) takes the program
    and what it started with it (its guardian does)."""
    busy = cprog(BUSY_C)
    proc = subprocess.Popen([sys.executable, "-m", "mrhooker", hook, "sh", "-c", "%s 120 & %s 120; wait" % (busy, busy)],
                            env=base_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(lambda: len(live_processes(busy)) == 2, RUN_TIMEOUT, "the programs to run")
        proc.kill()
        proc.wait()
        wait_for(lambda: not live_processes(busy), 10, "the programs to die with mrhooker")
    finally:
        proc.kill()
        proc.wait()


SETSID_C = r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(void)
{
    int leader = getpgrp() == getpid();
    pid_t sid = setsid();
    printf("leader=%d setsid=%s\n", leader, sid == -1 ? strerror(errno) : "ok");
    return sid == -1 ? 3 : 0;
}
"""


@pytest.mark.parametrize("how", ["hooks", "trace"])
def test_the_program_leads_no_process_group_so_its_setsid_works(mrhooker, hook, cprog, how):
    """Outside a terminal's foreground (here: a test's pipes) the program went into a process group of its own,
    so that a signal to mrhooker's group reaches it once, through mrhooker: it led that group, as it doesn't
    without mrhooker, and its own setsid() failed with EPERM. It now joins the guardian's group instead."""
    prog = cprog(SETSID_C)
    bare = subprocess.run([prog], stdout=subprocess.PIPE, text=True, timeout=RUN_TIMEOUT)
    assert (bare.returncode, bare.stdout) == (0, "leader=0 setsid=ok\n"), bare
    r = mrhooker(*(["trace", "-o", os.devnull, "-e", "setsid"] if how == "trace" else [hook]), prog)
    assert (r.returncode, r.out) == (bare.returncode, bare.stdout), r


def test_sigkill_of_mrhooker_kills_an_orphan_left_in_the_programs_group(base_env, hook, cprog):
    """The program's group is the guardian's: a process that left the program's tree (its parent gone) but not
    its group is found there and killed with the rest when mrhooker dies (the guardian can't stop or kill the
    group at once: it is in it)."""
    busy = cprog(BUSY_C)
    proc = subprocess.Popen([sys.executable, "-m", "mrhooker", hook, "sh", "-c", "(%s 120 &); %s 120" % (busy, busy)],
                            env=base_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(lambda: len(live_processes(busy)) == 2, RUN_TIMEOUT, "the programs to run (one orphaned)")
        group = {os.getpgid(pid) for pid in live_processes(busy)}
        assert len(group) == 1 and group != {proc.pid}, group   # one group, not mrhooker's
        proc.kill()
        proc.wait()
        wait_for(lambda: not live_processes(busy), 10, "the programs to die with mrhooker")
    finally:
        for pid in live_processes(busy):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()


def test_the_guardian_ends_a_tree_in_its_parents_process_group(cprog):
    """In a terminal's foreground the program shares mrhooker's process group (and the shell's): what the guardian
    kills then is the program and its descendants, found by walking the tree (stopped first, so that none forks
    away), never the group. Here the tree is a child of this test, in its process group, and the guardian is told
    the end came (its pipe closed) as mrhooker's death would."""
    from mrhooker import build, guardian
    with open(os.path.join(build.RUNTIME_DIR, "guard.c")) as f:
        guard = cprog(f.read(), flags=["-I" + build.RUNTIME_DIR])
    busy = cprog(BUSY_C)
    proc = subprocess.Popen(["sh", "-c", "(%s 120 &); %s 120 & %s 120; wait" % (busy, busy, busy)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    keeper = None
    try:
        wait_for(lambda: len(live_processes(busy)) == 3 and len(set(live_processes(busy)) & set(children(proc.pid)))
                 == 2, RUN_TIMEOUT, "the programs to run (one orphaned)")
        orphan = [pid for pid in live_processes(busy) if pid not in children(proc.pid)]
        keeper = guardian.Guardian(guard)
        keeper.watch(proc.pid, 0)
        keeper.close()
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        # the subshell's child left the tree before: it is not the program's any more, and stays
        wait_for(lambda: live_processes(busy) == orphan, 10, "the program's tree to die")
        assert os.getpgrp() == os.getpgid(orphan[0])   # the group was not killed (nor this test)
    finally:
        for pid in live_processes(busy):
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        if keeper is not None:
            os.waitpid(keeper.pid, 0)


# ---- bad input ---------------------------------------------------------------------------------------------

def test_missing_script(mrhooker, tmp_path):
    line = assert_one_line_error(mrhooker(tmp_path / "missing.pyx", "true"))
    assert "not found" in line and str(tmp_path / "missing.pyx") in line


def test_directory_as_script(mrhooker, tmp_path):
    # Tests run as root, who can read a chmod 000 file: a directory stands in for an unreadable script here
    # (test_unreadable_script_as_nobody covers a real one).
    (tmp_path / "dir.pyx").mkdir()
    line = assert_one_line_error(mrhooker(tmp_path / "dir.pyx", "true"))
    assert "directory" in line and str(tmp_path / "dir.pyx") in line


def test_wrong_extension(mrhooker, tmp_path):
    path = write(tmp_path / "hooks.txt", HOOK)
    line = assert_one_line_error(mrhooker(path, "true"))
    assert ".pyx" in line and ".py" in line and path in line


CYTHON_SYNTAX_ERROR = """\
cdef extern int unlink(const char *path) with gil:
    x = = 1
    return 0
"""


def test_cython_syntax_error(mrhooker, script):
    path = script("syntaxerr.pyx", CYTHON_SYNTAX_ERROR)
    r = mrhooker(path, "true")
    first = assert_error_starts(r)
    assert first.startswith("mrhooker: %s:2:" % path), r      # SCRIPT:LINE:COL
    assert first.split(":")[3].strip().isdigit(), r
    assert "    x = = 1" in r.err, r                             # the offending line


def test_cython_error_caret_points_at_the_column(mrhooker, script):
    path = script("syntaxerr.pyx", CYTHON_SYNTAX_ERROR)
    lines = mrhooker(path, "true").err.splitlines()
    source = next(i for i, line in enumerate(lines) if line.endswith("x = = 1"))
    caret = lines[source + 1]
    assert caret.strip() == "^"
    # Cython reports 2:8 (a 0-based column) for the second '=', as its own caret shows
    assert lines[source][caret.index("^")] == "=" and lines[source][:caret.index("^")].count("=") == 1, lines


def test_cython_errors_are_shown_all_at_once(mrhooker, script):
    """Two errors in a .pyx: both, each with its line and caret (one rebuild per error was the first's only)."""
    path = script("twoerrors.pyx", """\
        cdef extern int getpid() with gil:
            x = undefined_one
            return undefined_two
        """)
    r = mrhooker(path, "true")
    assert r.returncode == 2, r
    assert "mrhooker: %s:2:9: undeclared name not builtin: undefined_one" % path in r.err, r.err
    assert "\n%s:3:12: undeclared name not builtin: undefined_two\n        return undefined_two\n" % path in r.err


def test_cython_hook_of_open_with_dots_says_how_to_take_its_mode(mrhooker, script):
    path = script("dotsopen.pyx", """\
        from mrhooker cimport original
        ctypedef int (*open_t)(const char *, int, ...) noexcept nogil
        cdef extern int open(const char *path, int flags, ...) with gil:
            return (<open_t>original("open"))(path, flags)
        """)
    line = assert_one_line_error(mrhooker(path, "true"))
    assert line.endswith("variadic function open: a Cython hook can't read its '...'; declare what mrhooker forwards "
                         "of it as a parameter after the fixed ones instead: (..., mode_t mode)"), line


def test_c_compiler_error_shows_compiler_output(mrhooker, script):
    path = script("badheader.pyx", """\
        cdef extern from "no_such_header.h":
            int no_such_function(int)
        cdef extern int unlink(const char *path) with gil:
            return no_such_function(len(path))
        """)
    r = mrhooker(path, "true")
    assert_error_starts(r)
    assert "no_such_header.h" in r.err and "No such file or directory" in r.err, r


def test_no_c_compiler(mrhooker, script):
    path = script("nocc.pyx", HOOK)
    line = assert_one_line_error(mrhooker(path, "true", env={"CC": "/nonexistent/cc"}))
    assert "C compiler" in line and "/nonexistent/cc" in line


def test_command_not_found(mrhooker, hook):
    line = assert_one_line_error(mrhooker(hook, "no-such-command-mrhooker"), 127)
    assert "no-such-command-mrhooker" in line and "not found" in line


def test_command_not_executable(mrhooker, hook, tmp_path):
    path = write(tmp_path / "plain", "echo hi\n", 0o644)
    line = assert_one_line_error(mrhooker(hook, path), 126)
    assert path in line


@pytest.mark.parametrize("how", ["trace", "hook"])
def test_scripts_run_as_a_shell_runs_them(mrhooker, hook, tmp_path, how):
    """The reproductions (a tester): a script without "#!" was refused, "Exec format error", 126, where env,
    timeout and a shell run it with /bin/sh (execvp's way: so does mrhooker, hooking or tracing that sh); one
    whose "#!" names no interpreter exited 126 where they exit 127 ("not found")."""
    argv = ["trace", "-e", "write"] if how == "trace" else [hook]
    plain = write(tmp_path / "plain", 'echo "from a script: $*"\nexit 4\n', 0o755)
    bare = subprocess.run(["env", plain, "a b", "c"], stdout=subprocess.PIPE, text=True, timeout=scaled(60))
    r = mrhooker(*argv, plain, "a b", "c")
    assert (r.out, r.returncode) == (bare.stdout, bare.returncode) == ("from a script: a b c\n", 4), r
    if how == "trace":
        assert 'write(1, "from a script: a b c\\n", 21) = 21' in r.err, r
    missing = write(tmp_path / "missing", "#!/nonexistent/interpreter\necho hi\n", 0o755)
    assert subprocess.run(["env", missing], stderr=subprocess.DEVNULL, timeout=scaled(60)).returncode == 127
    line = assert_one_line_error(mrhooker(*argv, missing), 127)
    assert missing in line and "No such file or directory" in line


def test_directory_as_command(mrhooker, hook, tmp_path):
    line = assert_one_line_error(mrhooker(hook, tmp_path), 126)
    assert "directory" in line


def test_command_is_checked_before_building(mrhooker, script, tmp_path):
    path = script("neverbuilt.pyx", HOOK)
    r = mrhooker("-v", path, "no-such-command-mrhooker", env=fresh_cache(tmp_path))
    assert r.returncode == 127, r
    assert "cache miss" not in r.err and "run:" not in r.err, r


def test_static_target_refused_and_forced(mrhooker, hook, cprog):
    static = cprog(UNLINKER, flags=["-static"])
    r = mrhooker(hook, static, GONE)
    line = assert_one_line_error(r)
    assert "statically linked" in line and static in line and "--force" in line
    assert r.out == "", r    # it did not run
    r = mrhooker("--force", hook, static, GONE)
    assert r.returncode == 0 and r.out == "unlink=-1\n", r    # ran, unhooked


def test_shebang_script_with_dynamic_interpreter(mrhooker, hook, unlinker, tmp_path):
    path = write(tmp_path / "run.sh", "#!/bin/sh\nexec %s %s\n" % (unlinker, GONE), 0o755)
    r = mrhooker(hook, path)
    assert r.returncode == 0 and r.out == "unlink=0\n" and HOOKED in r.err, r


def test_shebang_script_with_static_interpreter(mrhooker, hook, cprog, tmp_path):
    static = cprog(UNLINKER, flags=["-static"])
    path = write(tmp_path / "run.static", "#!%s\n" % static, 0o755)
    line = assert_one_line_error(mrhooker(hook, path))
    assert "statically linked" in line and "interpreter" in line and static in line


# ---- as a user other than root -----------------------------------------------------------------------------

def _nobody_uid():
    import pwd
    return pwd.getpwnam("nobody").pw_uid


@pytest.fixture(scope="module")
def as_nobody():
    """as_nobody(*args, groups=None) -> CompletedProcess of mrhooker run as user nobody, with a home, cache and
    empty config of nobody's own. Also gives .home (nobody's) and .programs (root's, readable by all)."""
    assert os.geteuid() == 0, "these tests run as root, to run mrhooker as nobody"
    import grp
    uid = _nobody_uid()
    gid = grp.getgrnam("nogroup").gr_gid
    base = tempfile.mkdtemp(prefix="mrhooker-nobody-")
    os.chmod(base, 0o755)
    home = os.path.join(base, "home")
    programs = os.path.join(base, "programs")
    os.mkdir(home, 0o700)
    os.mkdir(programs, 0o755)
    write(os.path.join(home, "empty.config"), "")
    for p in (home, os.path.join(home, "empty.config")):
        os.chown(p, uid, gid)
    # mrhooker's dependencies where nobody can read them: root's Python and its site-packages may sit under /root,
    # and the system's Python (below) may lack them (a trace's first build parses headers with pycparser)
    packages = os.path.join(base, "packages")
    import capstone
    import elftools
    import pycparser
    for module in (capstone, elftools, pycparser):
        shutil.copytree(os.path.dirname(module.__file__), os.path.join(packages, module.__name__))
    subprocess.run(["chmod", "-R", "a+rX", packages], check=True, timeout=RUN_TIMEOUT)
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": home, "XDG_CACHE_HOME": os.path.join(home, "cache"),
           "MRHOOKER_CONFIG": os.path.join(home, "empty.config"), "PYTHONPATH": SRC + os.pathsep + packages}

    def setpriv(groups):
        return ["setpriv", "--reuid=nobody", "--regid=nogroup"] + (
            ["--groups=%s" % groups] if groups else ["--clear-groups"])

    # root's Python may sit where nobody cannot reach it (/root): then the system's
    python = None
    for candidate in (sys.executable, "/usr/bin/python3"):
        if subprocess.run(setpriv(None) + [candidate, "-c", "import mrhooker.cli, pycparser, elftools, capstone"],
                          env=env, stderr=subprocess.DEVNULL).returncode == 0:
            python = candidate
            break
    assert python, "no Python that user nobody can run mrhooker with"

    def run(*args, groups=None, extra_env=None, nproc=None):
        # nproc: `ulimit -u` for mrhooker, set in its process (setpriv's setuid and exec would fail under it, and
        # nobody may not exec a Python under /root)
        start = ["-m", "mrhooker"] if nproc is None else [
            "-c", "import resource, runpy; resource.setrlimit(resource.RLIMIT_NPROC, (%d, %d)); "
                  "runpy.run_module('mrhooker', run_name='__main__', alter_sys=True)" % (nproc, nproc)]
        proc = subprocess.run(setpriv(groups) + [python] + start + [str(a) for a in args],
                              env=dict(env, **(extra_env or {})), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=scaled(120))
        return Result(proc)

    run.base, run.home, run.programs = base, home, programs
    yield run
    shutil.rmtree(base, ignore_errors=True)


def test_a_home_one_cannot_enter_has_no_config_of_ones_own(as_nobody):
    """su or setpriv keep root's HOME: nobody can't enter /root, so the default config file is nobody's missing one,
    not a refusal of every command; one named by MRHOOKER_CONFIG there is still refused."""
    os.makedirs("/root/.mrhooker", exist_ok=True)
    r = as_nobody("trace", "-q", "-e", "write", "true", extra_env={"HOME": "/root", "MRHOOKER_CONFIG": ""})
    assert r.returncode == 0 and r.err == "", r
    r = as_nobody("trace", "-q", "-e", "write", "true",
                  extra_env={"HOME": "/root", "MRHOOKER_CONFIG": "/root/.mrhooker/mrhooker.config"})
    assert r.returncode == 2 and r.err.startswith("mrhooker: ") and len(r.err.splitlines()) == 1, r


def test_setuid_target_as_non_root(as_nobody):
    script = write(os.path.join(as_nobody.home, "h.pyx"), HOOK)
    target = os.path.join(as_nobody.programs, "setuid-true")
    shutil.copy("/bin/true", target)
    os.chown(target, 0, 0)
    os.chmod(target, 0o4755)
    line = assert_one_line_error(as_nobody(script, target))
    assert target in line and "setuid" in line and "ignores LD_PRELOAD" in line


def test_setgid_target_of_a_supplementary_group_as_non_root(as_nobody):
    # The kernel runs the loader securely whenever the effective gid changes from the real one, even to a group
    # the user is a supplementary member of.
    script = write(os.path.join(as_nobody.home, "h.pyx"), HOOK)
    target = os.path.join(as_nobody.programs, "setgid-true")
    shutil.copy("/bin/true", target)
    os.chown(target, 0, 4242)
    os.chmod(target, 0o2755)
    line = assert_one_line_error(as_nobody(script, target, groups="4242"))
    assert target in line and "ignores LD_PRELOAD" in line


def test_unreadable_script_as_non_root(as_nobody):
    script = write(os.path.join(as_nobody.home, "secret.pyx"), HOOK, 0o000)   # root's, mode 000
    line = assert_one_line_error(as_nobody(script, "true"))
    assert "cannot read" in line and script in line and "Permission denied" in line


def test_a_cache_directory_refused_as_non_root_gets_nothing_made_in_it(as_nobody):
    # root's directory that anyone may write in (not sticky): nobody could make mrhooker/ there, but must not
    for mode, words in ((0o777, "is writable by others"), (0o755, "cannot create")):
        theirs = os.path.join(as_nobody.base, "theirs-%o" % mode)
        os.mkdir(theirs)
        os.chmod(theirs, mode)
        line = assert_one_line_error(as_nobody("trace", "true", extra_env={"XDG_CACHE_HOME": theirs}))
        assert words in line and theirs in line, line
        assert os.listdir(theirs) == [], theirs


def test_trace_output_to_a_writable_file_in_a_directory_not_ones_own_as_non_root(as_nobody):
    # -o /dev/null, or a log file root made writable in root's directory: written in place, so no need to
    # create in the directory (as -ff's FILE.PID and the scaffold, written aside and renamed, do)
    log = os.path.join(as_nobody.programs, "shared.log")
    write(log, "", 0o666)
    r = as_nobody("trace", "-e", "write", "-o", "/dev/null", "--json", log, "sh", "-c", "echo hi")
    assert r.returncode == 0 and r.out == "hi\n" and "Traceback" not in r.err, r
    assert '"name":"write"' in open(log).read()
    for option in (["--scaffold", os.path.join(as_nobody.programs, "hooks.py")],
                   ["-ff", "-o", log]):
        line = assert_one_line_error(as_nobody("trace", "-e", "write", *option, "true"))
        assert "its directory is missing or not writable" in line, line


def test_a_tight_process_limit_is_one_clear_line_as_non_root(as_nobody):
    # threads count as processes: at `ulimit -u 1` mrhooker can start neither its threads, nor its guardian, nor
    # the program (warm: no compiler to start either)
    script = write(os.path.join(as_nobody.home, "nproc.py"), """\
        from mrhooker import hook
        @hook("write")
        def write(fd, buf, n):
            return write.original(fd, buf, n)
        """)
    for args in (["trace", "-e", "write"], [script]):
        assert as_nobody(*args, "true").returncode == 0
        r = as_nobody(*args, "true", nproc=1)
        line = assert_one_line_error(r)
        assert "ulimit -u, is 1" in line, line


def test_a_tight_descriptor_limit_keeps_the_program_or_is_one_clear_line(base_env, cprog, tmp_path):
    # `ulimit -n 5`: mrhooker had no descriptor for its guardian's pipe (an internal error); at 6 the program ran,
    # then listing mrhooker's children failed (an internal error, 70 for the program's 3)
    import resource
    prog = cprog(r"""
        #include <stdio.h>
        int main(void) { printf("hello\n"); return 3; }
    """)
    args = [sys.executable, "-m", "mrhooker", "trace", "-e", "write,open*", "-o", str(tmp_path / "trace.out"), prog]
    assert subprocess.run(args, env=base_env, timeout=RUN_TIMEOUT).returncode == 3   # warm: no compiler
    for limit in (5, 6, 7, 8):
        proc = subprocess.run(args, env=base_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT,
                              preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)))
        r = Result(proc)
        if r.returncode == 3:
            assert r.out == "hello\n" and r.err == "", (limit, r)
        else:
            assert "ulimit -n is %d" % limit in assert_one_line_error(r), (limit, r)


def test_build_dir_that_ld_preload_cannot_carry(mrhooker, script, tmp_path):
    spaced = tmp_path / "with space"
    line = assert_one_line_error(mrhooker("--build-dir", spaced, script("spaced.pyx", HOOK), "true"))
    assert "space or colon" in line and "--build-dir" in line


def test_cache_that_ld_preload_cannot_carry_is_refused_before_the_build(mrhooker, script, tmp_path):
    # a $HOME (so the cache) with a space: refused at once, not after seconds of building what can't be loaded
    spaced = tmp_path / "with space"
    for args in ((script("spaced2.py", 'from mrhooker import hook\n@hook("int close(int fd)")\ndef close(fd):\n'
                                       '    return close.original(fd)\n'), "true"),
                 ("trace", "-e", "close", "true")):
        line = assert_one_line_error(mrhooker(*args, env={"XDG_CACHE_HOME": str(spaced)}))
        assert "cache directory %s/mrhooker has a space or colon" % spaced in line and "XDG_CACHE_HOME" in line, line
        built = [name for name in os.listdir(str(spaced / "mrhooker")) if not name.endswith(".json")]
        assert built == [], built


def test_hook_output_reaches_a_socket_stderr(base_env, script, tmp_path):
    """A stderr that is a socket (journald, some CI runners) can't be reopened through /proc: mrhooker relays
    the hook output through a pipe of its own."""
    import socket
    import sys

    hooks = script("socketerr.py", '''\
        from mrhooker import hook

        @hook("int getppid(void)")
        def getppid():
            print("hooked getppid")
            return getppid.original()
        ''')
    ours, theirs = socket.socketpair()
    with ours, theirs:
        proc = subprocess.run([sys.executable, "-m", "mrhooker", hooks, sys.executable, "-c",
                               "import os; os.getppid(); print('done')"],
                              env=base_env, stdout=subprocess.PIPE, stderr=theirs, timeout=scaled(60))
        theirs.close()
        received = b""
        ours.settimeout(5)
        while True:
            chunk = ours.recv(65536)
            if not chunk:
                break
            received += chunk
    assert proc.returncode == 0, received
    assert proc.stdout == b"done\n"
    assert b"hooked getppid\n" in received, received


def test_a_script_without_hooks_is_refused_whatever_its_kind(mrhooker, script):
    """A .pyx that exports nothing hooks nothing, as a .py without @hook: one line, before the program runs."""
    for name, text in (("plain.pyx", "def helper():\n    return 1\n"), ("plain.py", "def helper():\n    return 1\n")):
        r = mrhooker(script(name, text), "true")
        assert r.returncode == 2 and r.err.startswith("mrhooker: ") and "no hooks" in r.err, r
        assert len(r.err.strip().splitlines()) == 1, r


def test_a_first_run_says_what_takes_time_and_a_second_says_nothing(base_env, script, tmp_path):
    """Without a terminal (a CI log, a pipe), a first build is one line as it starts and one with its time; the
    runs after it, from the cache, say nothing."""
    hooks = script("progress.py", "from mrhooker import hook\n@hook('int getppid(void)')\n"
                                  "def getppid():\n    return getppid.original()\n")
    build_dir = tmp_path / "builds"
    runs = [subprocess.run([sys.executable, "-m", "mrhooker", "--build-dir", str(build_dir), hooks, "true"],
                           env=base_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=scaled(300))
            for _ in range(2)]
    first, second = (r.stderr.decode() for r in runs)
    assert all(r.returncode == 0 for r in runs), runs
    assert first.splitlines()[0] == "mrhooker: building progress.py (once: cached for the next runs) ...", first
    assert re.fullmatch(r"mrhooker: ready in [0-9]+\.[0-9] s", first.splitlines()[-1]), first
    assert second == "", second


# ---- the standard descriptors: closed, or a pipe nobody reads ----------------------------------------------

PRINTING_HOOK = """\
from mrhooker import hook

@hook("ssize_t write(int fd, const void *buf, size_t n)")
def write(fd, buf, n):
    print("write", fd, n)
    return write.original(fd, buf, n)
"""

# 1000 writes, then the shell's own descriptors (on fd 3, the test's pipe), and a status of its own
ECHOER = ["sh", "-c", 'i=0; while [ $i -lt 1000 ]; do echo $i; i=$((i+1)); done; ls /proc/$$/fd >&3; exit 3']


def _run_with_fd3(argv, env, closing, fd3):
    """argv run by a shell with closing (e.g. "2>&-") applied and the file fd3 as descriptor 3; (what was
    written on fd 3, exit status, stderr)."""
    proc = subprocess.run(["sh", "-c", 'exec "$@" 3>"$0" %s' % closing, str(fd3)] + argv, env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=scaled(120))
    return fd3.read_bytes(), proc.returncode, proc.stderr


@pytest.mark.parametrize("closing", ["<&-", ">&-", "2>&-"])
@pytest.mark.parametrize("how", ["trace", "hook"])
def test_a_closed_standard_descriptor_changes_nothing(base_env, script, tmp_path, closing, how):
    """The reproductions (a tester): `mrhooker trace -e write sh -c '<1000 echos>; exit 3' 2>&-` died of SIGSEGV
    (the trace's ring took descriptor 2, and its lines were written into it) or exited 1; with `>&-`, a Python
    traceback and 1. The program finds the same descriptors closed as it does without mrhooker, and exits 3."""
    argv = ["trace", "-e", "write"] if how == "trace" else [script("printing.py", PRINTING_HOOK)]
    bare = _run_with_fd3(ECHOER, base_env, closing, tmp_path / "bare")
    got = _run_with_fd3([sys.executable, "-m", "mrhooker"] + argv + ECHOER, base_env, closing, tmp_path / "got")
    # (the hooks' output descriptor, high: output.h, aside)
    programs = [b"".join(line for line in run[0].splitlines(True) if int(line) < 900) for run in (bare, got)]
    assert bare[0] and programs[0] == programs[1] and got[1] == bare[1] == 3, (got, bare)
    assert b"Traceback" not in got[2] and b"internal error" not in got[2], got[2]


PIPE_ENDER = 'i=0; while [ $i -lt 5000 ]; do echo $i; i=$((i+1)); done; echo END > "$0"; exit 5'


@pytest.mark.parametrize("target", ["sh", "python3"])
def test_hook_output_into_a_pipe_nobody_reads_leaves_the_program_alone(base_env, script, tmp_path, target):
    """The reproductions (a tester): hook output to a pipe whose reader has gone (`2> >(head -2)`) killed sh
    with SIGPIPE, the hook's print being its only writer there (141, its last file never written); under python3
    (which ignores SIGPIPE) mrhooker's own line about the lost output met the broken pipe: "internal error", 1.
    The program runs to its end and its status is mrhooker's."""
    end = tmp_path / "end"
    program = (["sh", "-c", PIPE_ENDER, str(end)] if target == "sh" else
               ["python3", "-c", "import os, sys\nfor i in range(5000): os.write(1, b'%d\\n' % i)\n"
                "open(sys.argv[1], 'w').write('END')\nraise SystemExit(5)", str(end)])
    proc = subprocess.Popen([sys.executable, "-m", "mrhooker", script("printing.py", PRINTING_HOOK)] + program,
                            env=base_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        first = [proc.stderr.readline() for _ in range(2)]
        proc.stderr.close()   # the reader goes, as head's does
        assert proc.wait(timeout=scaled(120)) == 5, first
    finally:
        proc.kill()
    assert end.read_text().strip() == "END"


PIPE_PENDING_C = r"""
    #include <signal.h>
    #include <stdio.h>
    #include <unistd.h>
    /* Blocks SIGPIPE and raises one of its own, writes 2000 lines (hooked: the hook output meets a pipe nobody
       reads), then says on fd 3 whether its SIGPIPE is still pending. */
    int main(void) {
        sigset_t pipe_only, pending;
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        sigprocmask(SIG_BLOCK, &pipe_only, NULL);
        raise(SIGPIPE);
        for (int i = 0; i < 2000; i++)
            write(1, "x\n", 2);
        sigpending(&pending);
        dprintf(3, "pending=%d\n", sigismember(&pending, SIGPIPE));
        return 0;
    }
"""


def test_a_sigpipe_the_program_had_pending_stays_pending(base_env, script, cprog, tmp_path):
    """The hook output takes back the SIGPIPE its write raised into a pipe nobody reads (output.h), not one the
    program had blocked and pending before."""
    said = tmp_path / "said"
    proc = subprocess.Popen(["sh", "-c", 'exec "$@" 3>"$0"', str(said), sys.executable, "-m", "mrhooker",
                             script("printing.py", PRINTING_HOOK), cprog(PIPE_PENDING_C)],
                            env=base_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        proc.stderr.readline()
        proc.stderr.close()
        assert proc.wait(timeout=scaled(120)) == 0
    finally:
        proc.kill()
    assert said.read_bytes() == b"pending=1\n"
