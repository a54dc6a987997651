"""A warm `mrhooker trace` (issue 17): a request seen before computes nothing again (tracecache.py) -- no header
database, no planning, no generated source -- and a change to anything its plan depends on plans it anew."""
import json
import os
import re
import subprocess
import sys

from helpers import RUN_TIMEOUT, without_progress

# the build side a warm trace must not import: the headers' parser and database, the planner, the generators
PLANNING_MODULES = ("pycparser", "mrhooker.cdecl", "mrhooker.tracing", "mrhooker.layouts", "mrhooker.codegen",
                    "mrhooker.decoders", "mrhooker.faults")
# nor what only a build or a first run needs: hashlib (OpenSSL: a build's files are checked by their stamps),
# ast (a hook script's scan is remembered), py_compile, shutil, shlex, contextlib
COLD_ONLY_MODULES = ("hashlib", "_hashlib", "ast", "py_compile", "shutil", "shlex", "contextlib")
# mrhooker run as the installed command runs it (python -m's runpy imports contextlib and importlib.util itself)
COMMAND = "import sys; from mrhooker.cli import script; sys.argv[0] = 'mrhooker'; script()"


def _trace(base_env, tmp_path, *args, importtime=False):
    out = tmp_path / "lines.txt"
    argv = [sys.executable] + (["-X", "importtime"] if importtime else []) + ["-c", COMMAND, "trace", "-v",
                                                                               "-o", str(out)] + list(args)
    r = subprocess.run(argv, env=base_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
    err = without_progress(r.stderr.decode())
    imported = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", err, re.M))
    return r, err, out.read_text(), imported


_at_start = {}


def _cold_only(imported, base_env):
    """The modules of the build side or of a first run that mrhooker imported: those Python's own start imports
    (a .pth file of site-packages may import shutil or contextlib) are not mrhooker's doing."""
    if "modules" not in _at_start:
        r = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], env=base_env, stderr=subprocess.PIPE,
                           timeout=RUN_TIMEOUT)
        _at_start["modules"] = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", r.stderr.decode(), re.M))
    return sorted(m for m in imported - _at_start["modules"]
                  if m.startswith(PLANNING_MODULES) or m in COLD_ONLY_MODULES)


def _calls(text):
    """The lines but their varying parts (pids, addresses)."""
    return re.sub(r"0x[0-9a-f]+|\d{2,}", "N", text)


def test_a_warm_trace_plans_nothing_again_and_shows_the_same_lines(base_env, tmp_path):
    f = tmp_path / "hello.txt"
    f.write_text("hello\n")
    args = ["-e", "openat,read,write,close", "cat", str(f)]
    _trace(base_env, tmp_path, *args)   # cold, or warm from an earlier test: planned at most here
    r, err, cold_lines, _ = _trace(base_env, tmp_path, "--rebuild", *args)
    assert r.returncode == 0 and r.stdout == b"hello\n" and "warm start" not in err, err
    r, err, lines, imported = _trace(base_env, tmp_path, *args, importtime=True)
    assert r.returncode == 0 and r.stdout == b"hello\n", err
    assert "mrhooker: warm start:" in err and ("tracing 8 functions: openat __openat_2 openat64 __openat64_2 read "
                                               "__read_chk write close (and, for the children's ends, wait waitpid "
                                               "wait3 wait4 waitid)\n") in err, err
    assert not _cold_only(imported, base_env), sorted(imported)
    assert _calls(lines) == _calls(cold_lines), (lines, cold_lines)
    assert 'read(3, "hello\\n", 131072) = 6' in lines, lines


def test_inject_and_fake_time_are_remembered_with_their_rules(base_env, tmp_path):
    args = ["-q", "--inject", "write:error=ENOSPC", "--fake-time", "2001-02-03 04:05:06", "sh", "-c",
            "date -u +%Y-%m-%d; echo written"]
    for attempt in ("first", "warm"):
        r, err, _lines, imported = _trace(base_env, tmp_path, *args, importtime=attempt == "warm")
        # date's line is faked (stdio's own writes are libc's inside calls), the shell's echo failed
        assert r.stdout == b"2001-02-03\n" and r.returncode == 1, (attempt, err)
    assert "mrhooker: warm start:" in err and " nanosleep " not in _traced(err), err
    # a clock running at another rate fakes the waits too: another plan (planned now, or by an earlier test)
    r, err, _lines, _ = _trace(base_env, tmp_path, "-q", "--fake-time", "@981173106 x2", "date", "-u", "+%Y")
    assert r.stdout == b"2001\n" and " nanosleep " in _traced(err), err


def _hooks(base_env, script, *command, verbose=True):
    """(result, stderr, the modules imported); verbose: with -v (which reads the program's symbols: pyelftools)."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", COMMAND] + (["-v"] if verbose else [])
                       + [str(script)] + list(command),
                       env=base_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
    err = without_progress(r.stderr.decode())
    return r, err, set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", err, re.M))


def test_a_warm_hook_run_parses_and_hashes_nothing_again(base_env, tmp_path):
    script = tmp_path / "warm_hooks.py"
    script.write_text('from mrhooker import hook\n\n@hook("pid_t getpid(void)")\ndef getpid():\n'
                      '    print("getpid hooked", flush=True)\n    return getpid.original()\n')
    command = ["sh", "-c", "echo $$ >/dev/null; echo done"]
    _hooks(base_env, script, *command)   # built here (or by an earlier run of this test)
    r, err, _ = _hooks(base_env, script, *command)
    assert r.returncode == 0 and r.stdout == b"done\n" and "cache hit" in err, err
    r, err, imported = _hooks(base_env, script, *command, verbose=False)
    assert r.returncode == 0 and r.stdout == b"done\n" and "getpid hooked" in err, err
    assert not _cold_only(imported, base_env), sorted(imported)
    # a body edited: the same build (the scan of the new text says so); a prototype edited: another build
    script.write_text(script.read_text().replace("getpid hooked", "edited"))
    r, err, _ = _hooks(base_env, script, *command)
    assert r.returncode == 0 and "cache hit" in err, err
    script.write_text(script.read_text().replace("pid_t getpid(void)", "int getpid(void)"))
    r, err, _ = _hooks(base_env, script, *command)
    assert r.returncode == 0 and "cache miss" in err, err


def _traced(err):
    """What -v says is traced."""
    return re.search(r"^mrhooker: tracing \d+ functions: (.*)$", err, re.M).group(1) + " "


def test_a_changed_header_is_planned_again(base_env, tmp_path, cprog):
    header = tmp_path / "mine.h"
    header.write_text("int getppid(void);\n")
    prog = cprog("#include <unistd.h>\n#include <stdio.h>\nint main(void) { printf(\"%d\\n\", getppid() > 0); }\n")
    args = ["-H", str(header), "-e", "getppid", prog]
    for _ in range(2):
        r, err, lines, _ = _trace(base_env, tmp_path, *args)
        assert r.stdout == b"1\n" and re.search(r"^getppid\(\) = \d+$", lines, re.M), (err, lines)
    assert "warm start" in err, err
    header.write_text("int getppid(void);   /* changed */\n")
    r, err, lines, _ = _trace(base_env, tmp_path, *args)
    assert r.stdout == b"1\n" and "warm start" not in err and re.search(r"^getppid\(\) = \d+$", lines, re.M), err


def _warm_plan(base_env, tmp_path, args):
    """Traces args twice (the second a warm start); the path of the plan the second used."""
    _trace(base_env, tmp_path, *args)
    r, err, _lines, _ = _trace(base_env, tmp_path, *args)
    assert "warm start" in err, err
    plans = os.path.join(base_env["XDG_CACHE_HOME"], "mrhooker", "trace-plans")
    return max((os.path.join(plans, n) for n in os.listdir(plans)), key=os.path.getmtime)


def test_a_damaged_build_or_plan_is_a_cold_start_not_a_failure(base_env, tmp_path):
    args = ["-e", "getpid", "sh", "-c", "echo $$"]
    path = _warm_plan(base_env, tmp_path, args)
    with open(path) as f:
        build = json.load(f)["build"]
    with open(os.path.join(base_env["XDG_CACHE_HOME"], "mrhooker", build, "preload.so"), "r+b") as f:
        f.seek(100)
        f.write(b"\xcc")   # altered: fails its check
    r, err, lines, _ = _trace(base_env, tmp_path, *args)
    assert r.returncode == 0 and "warm start" not in err and "Traceback" not in err, err
    with open(path, "w") as f:
        f.write('{"schema": 1, "build": "../../etc"')   # half-written
    r, err, lines, _ = _trace(base_env, tmp_path, *args)
    assert r.returncode == 0 and "warm start" not in err and "Traceback" not in err, err
    r, err, lines, _ = _trace(base_env, tmp_path, *args)
    assert r.returncode == 0 and "warm start" in err, err
    with open(path) as f:
        good = json.load(f)
    # edited into another shape (its rules are written into the trace file as they are): not used
    for rules in ([[0, "x"]], [[7, [[1, 5, -1, 1, 4294967295, 1, 0, 1, 0, 0]]]], [[0, [[1, 5]]]], [[0, []]], 3):
        with open(path, "w") as f:
            json.dump(dict(good, rules=rules), f)
        r, err, lines, _ = _trace(base_env, tmp_path, *args)
        assert r.returncode == 0 and "warm start" not in err and "Traceback" not in err, (rules, err)
        assert "INJECTED" not in lines, (rules, lines)


def test_a_plan_another_user_could_write_is_refused_not_used(base_env, tmp_path):
    """A plan's rules are faults to inject: one in a directory others can write (or owned by another user) is
    refused in one line, as a build there is, never run (it made cat's reads fail with EIO)."""
    f = tmp_path / "hello.txt"
    f.write_text("hello\n")
    args = ["-e", "read", "cat", str(f)]
    path = _warm_plan(base_env, tmp_path, args)
    with open(path) as fp:
        original = fp.read()
    try:
        _refuse_a_tampered_plan(base_env, tmp_path, args, path, json.loads(original))
    finally:   # the session's cache is shared: no later `-e read` may find these rules
        with open(path, "w") as fp:
            fp.write(original)
        os.chown(path, os.getuid(), os.getgid())


def _refuse_a_tampered_plan(base_env, tmp_path, args, path, entry):
    entry["rules"] = [[0, [[1, 5, -1, 1, 4294967295, 1, 0, 1, 0, 0]]]]   # read: error=EIO (as planned for it)
    with open(path, "w") as fp:
        json.dump(entry, fp)
    plans = os.path.dirname(path)
    os.chmod(plans, 0o777)
    try:
        r, err, lines, _ = _trace(base_env, tmp_path, *args)
    finally:
        os.chmod(plans, 0o700)
    assert r.returncode == 2 and r.stdout == b"", (err, lines)
    assert re.search(r"^mrhooker: trace plan .*trace-plans is writable by others \(mode 777\)", err, re.M), err
    assert "Traceback" not in err and "INJECTED" not in lines, err
    if os.getuid() == 0:
        os.chown(path, 65534, 65534)
        r, err, lines, _ = _trace(base_env, tmp_path, *args)
        assert r.returncode == 2 and "is owned by another user (uid 65534)" in err and "INJECTED" not in lines, err
        os.chown(path, 0, 0)
