"""Hooks at a function's own entry (atentry.py, prologue.py, runtime/patch.c): calls made inside a library
(printf's write, fopen's open, getaddrinfo's socket) and the program's own functions, traced and hooked, on
real programs compiled here; each compared with the program's unhooked run."""
import re
import subprocess

import pytest

from helpers import RUN_TIMEOUT, unhooked

OWN_C = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noipa)) static int compute(int x) { return x * 7 + (x & 3); }
__attribute__((noipa)) int tiny(void) { return 0; }

static void *worker(void *arg)
{
    long sum = 0;
    for (int i = 0; i < 10000; i++) sum += compute(i);
    return (void *)sum;
}

int main(int argc, char **argv)
{
    int total = 0;
    for (int i = 1; i <= 5; i++) total += compute(i);
    printf("sum %d\n", total);
    if (argc > 1) {   /* 8 threads calling compute() */
        pthread_t t[8];
        long all = 0;
        for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, worker, NULL);
        for (int i = 0; i < 8; i++) {
            void *r;
            pthread_join(t[i], &r);
            all += (long)r;
        }
        printf("threads %ld\n", all);
    }
    return tiny() + 3;
}
"""

LIBC_C = r"""
#include <netdb.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    FILE *f = fopen(argv[1], "r");
    char line[64] = "";
    if (f && fgets(line, sizeof line, f)) fclose(f);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_ADDRCONFIG;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo("localhost", "80", &hints, &res);
    if (res) freeaddrinfo(res);
    printf("sum %d\n", 35);
    return rc == 0 ? 0 : 3;
}
"""

FLAVOURS = {"endbr64": ["-O0", "-fcf-protection=full"], "plain": ["-O2", "-fcf-protection=none"]}


def trace(mrhooker, *args, **kwargs):
    kwargs.setdefault("timeout", RUN_TIMEOUT)
    return mrhooker("trace", *args, **kwargs)


def lines_of(text, name):
    return [line for line in text.splitlines() if re.match(r"(\[pid \d+\] )?%s\(" % re.escape(name), line)]


@pytest.fixture(params=sorted(FLAVOURS))
def own_prog(request, cprog):
    return cprog(OWN_C, FLAVOURS[request.param] + ["-pthread"])


@pytest.fixture
def libc_prog(cprog, tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("first line\n")
    return cprog(LIBC_C), str(data)


def test_printf_is_seen_as_its_write_at_the_entry_only(mrhooker, libc_prog):
    prog, data = libc_prog
    plain = trace(mrhooker, "-e", "write", prog, data)
    assert plain.returncode == 0 and plain.out == "sum 35\n", plain
    assert not lines_of(plain.err, "write"), plain   # printf's write is inside libc: the PLT doesn't see it
    r = trace(mrhooker, "--entry", "-e", "write", prog, data)
    assert r.returncode == 0 and r.out == "sum 35\n", r
    assert 'write(1, "sum 35\\n", 7) = 7' in r.err, r
    assert "mrhooker:" not in r.err.replace("mrhooker: trace", ""), r


def test_fopen_is_seen_as_its_open_and_getaddrinfo_as_its_socket(mrhooker, libc_prog):
    prog, data = libc_prog
    r = trace(mrhooker, "--entry", "-e", "open,socket,connect", prog, data)
    expected = unhooked([prog, data])
    assert (r.returncode, r.stdout) == (expected.returncode, expected.stdout), r
    opens = lines_of(r.err, "open")
    assert any('"%s", O_RDONLY' % data in line and line.endswith("= 3") for line in opens), r
    assert any("AF_NETLINK" in line for line in lines_of(r.err, "socket")), r
    assert lines_of(r.err, "connect"), r   # its try of nscd's socket


def test_the_programs_own_function_is_traced_with_its_arguments(mrhooker, own_prog):
    r = trace(mrhooker, "-e", "int compute(int x)", own_prog)
    expected = unhooked([own_prog])
    assert (r.returncode, r.stdout) == (expected.returncode, expected.stdout) == (3, b"sum 112\n"), r
    assert lines_of(r.err, "compute") == ["compute(%d) = %d" % (x, x * 7 + (x & 3)) for x in range(1, 6)], r


# At -O2 GCC knows which registers a static function really changes (-fipa-ra) and keeps main's loop counter in
# one the ABI would let a call clobber: the hook's path must put back every register but the result's.
IPA_RA_C = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((noinline)) static int compute(int x) { volatile int a[8]; for (int i = 0; i < 8; i++) a[i] = x + i;
                                                     return a[3] * 3 + a[0] - x - 2; }
__attribute__((noinline)) static double half(double x) { return x / 2; }
__attribute__((noinline)) static long fact(long n) { return n <= 1 ? 1 : n * fact(n - 1); }
__attribute__((noipa)) static long many(long a, long b, long c, long d, long e, long f, long g, long h)
{ return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h; }   /* g, h: on the stack */
int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 4;
    long t = 0;
    double h = 0;
    for (int i = 0; i < n; i++) t += compute(i), h += half(i);
    printf("t=%ld h=%g fact=%ld many=%ld\n", t, h, fact(n + 2), many(n, 2, 3, 4, 5, 6, 7, 8));
    return 0;
}
"""


@pytest.mark.parametrize("flags", [["-O2"], ["-O3", "-fcf-protection=full"]])
def test_registers_a_caller_keeps_across_the_call_are_kept(mrhooker, cprog, script, flags):
    prog = cprog(IPA_RA_C, flags)
    expected = unhooked([prog, "4"])
    r = trace(mrhooker, "-e", "int compute(int x),double half(double x),long fact(long n),"
              "long many(long a, long b, long c, long d, long e, long f, long g, long h)", prog, "4")
    assert (r.returncode, r.stdout) == (expected.returncode, expected.stdout), r
    assert len(lines_of(r.err, "compute")) == 4 and len(lines_of(r.err, "half")) == 4, r
    assert lines_of(r.err, "fact")[-1] == "fact(6) = 720", r
    assert lines_of(r.err, "many") == ["many(4, 2, 3, 4, 5, 6, 7, 8) = 207"], r
    path = script("ipa.py", """
        from mrhooker import hook

        @hook("int compute(int x)", at="entry")
        def compute(x):
            return compute.original(x) + 1000

        @hook("double half(double x)", at="entry")
        def half(x):
            return half.original(x)

        @hook("long many(long a, long b, long c, long d, long e, long f, long g, long h)", at="entry")
        def many(a, b, c, d, e, f, g, h):
            return many.original(a, b, c, d, e, f, g, h + 1)
    """)
    r = mrhooker(path, prog, "4", timeout=RUN_TIMEOUT)
    assert expected.stdout == b"t=46 h=3 fact=720 many=207\n"
    assert r.returncode == 0 and r.out == "t=4046 h=3 fact=720 many=215\n", r


def test_a_py_hook_changes_the_result_of_the_programs_own_function(mrhooker, own_prog, script):
    path = script("own.py", """
        from mrhooker import hook

        @hook("int compute(int x)", at="entry")
        def compute(x):
            return compute.original(x) + 1000
    """)
    r = mrhooker(path, own_prog, timeout=RUN_TIMEOUT)
    assert r.returncode == 3 and r.out == "sum %d\n" % (112 + 5000), r


def test_eight_threads_calling_the_patched_function_lose_no_call(mrhooker, own_prog):
    r = trace(mrhooker, "-c", "-e", "int compute(int x)", own_prog, "threads")
    expected = unhooked([own_prog, "threads"])
    assert (r.returncode, r.stdout) == (expected.returncode, expected.stdout), r
    row = [line.split() for line in r.err.splitlines() if line.endswith(" compute")]
    assert row and int(row[0][3]) == 5 + 8 * 10000, r


def test_an_execd_program_gets_the_libraries_patches(mrhooker, libc_prog):
    prog, data = libc_prog
    r = trace(mrhooker, "--entry", "-e", "write", "sh", "-c", '"$0" "$1"; echo done', prog, data)
    assert r.returncode == 0 and r.out == "sum 35\ndone\n", r
    assert 'write(1, "sum 35\\n", 7) = 7' in r.err, r   # printf's, in the program sh ran


def test_a_script_without_a_shebang_is_planned_as_the_shell_that_runs_it(mrhooker, tmp_path):
    # execvp runs it with /bin/sh (so does mrhooker); the plan read it as an ELF file: "file too short", exit 2
    bare = tmp_path / "bare.sh"
    bare.write_text("echo hi; exit 3\n")
    bare.chmod(0o755)
    r = trace(mrhooker, "--entry", "-e", "write", str(bare))
    assert r.returncode == 3 and r.out == "hi\n", r
    assert 'write(1, "hi\\n", 3) = 3' in r.err, r


def test_a_function_too_short_to_patch_is_one_line(mrhooker, cprog, script):
    own_prog = cprog(OWN_C, FLAVOURS["plain"] + ["-pthread"])   # tiny(): xor %eax,%eax; ret (3 bytes)
    r = trace(mrhooker, "-e", "int tiny(void)", own_prog)
    assert r.returncode == 3 and r.out == "sum 112\n", r
    said = [line for line in r.err.splitlines() if line.startswith("mrhooker: ") and "tiny" in line]
    assert len(said) == 1, r
    path = script("tiny.py", """
        from mrhooker import hook

        @hook("int tiny(void)", at="entry")
        def tiny():
            return 5
    """)
    r = mrhooker(path, own_prog, timeout=RUN_TIMEOUT)
    assert r.returncode == 2 and r.out == "", r
    assert len(r.err.strip().splitlines()) == 1 and "tiny" in r.err and "Traceback" not in r.err, r


def test_a_name_the_program_does_not_define_is_one_line(mrhooker, own_prog, script):
    path = script("nothere.py", """
        from mrhooker import hook

        @hook("int nothere(int x)", at="entry")
        def nothere(x):
            return 0
    """)
    r = mrhooker(path, own_prog, timeout=RUN_TIMEOUT)
    assert r.returncode == 2 and r.out == "", r
    assert r.err.startswith("mrhooker: ") and "nothere" in r.err and "Traceback" not in r.err, r


def test_a_stripped_programs_function_by_its_address(mrhooker, own_prog, script, tmp_path):
    from elftools.elf.elffile import ELFFile

    with open(own_prog, "rb") as f:
        address = next(s["st_value"] for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols()
                       if s.name == "compute")
    stripped = tmp_path / "stripped"
    subprocess.run(["strip", "-o", str(stripped), own_prog], check=True, timeout=RUN_TIMEOUT)
    path = script("by_address.py", """
        from mrhooker import hook

        @hook("int compute(int x)", at=%d)
        def compute(x):
            return compute.original(x) + 1000
    """ % address)
    r = mrhooker(path, str(stripped), timeout=RUN_TIMEOUT)
    assert r.returncode == 3 and r.out == "sum %d\n" % (112 + 5000), r
    inside = script("inside.py", """
        from mrhooker import hook

        @hook("int compute(int x)", at=%d)
        def compute(x):
            return 0
    """ % (address + 1))
    r = mrhooker(inside, own_prog, timeout=RUN_TIMEOUT)   # with its symbols: an address inside compute
    assert r.returncode == 2 and "inside compute" in r.err and "Traceback" not in r.err, r
    for bad, said in ((0, "not in the code"), (1, "not in the code")):
        nowhere = script("nowhere%d.py" % bad, """
            from mrhooker import hook

            @hook("int compute(int x)", at=%d)
            def compute(x):
                return 0
        """ % bad)
        r = mrhooker(nowhere, str(stripped), timeout=RUN_TIMEOUT)
        assert r.returncode == 2 and said in r.err and "Traceback" not in r.err, r


def test_at_must_be_a_known_place(mrhooker, own_prog, script):
    path = script("bad.py", """
        from mrhooker import hook

        @hook("write", at="inside")
        def write(fd, buf, n):
            return write.original(fd, buf, n)
    """)
    r = mrhooker(path, own_prog, timeout=RUN_TIMEOUT)
    assert r.returncode == 2 and r.err.startswith("mrhooker: ") and "entry" in r.err, r


# ---- attached (-p): the jmps written with the process stopped, put back at the detach ---------------------

# 8 threads call compute() without pause while the main thread prints "tick I compute(I)" every 20 ms (printf,
# flushed: its write is inside libc) until SIGTERM; then "bad N": the workers' results that were wrong.
BUSY_OWN_C = r"""
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

__attribute__((noipa)) static int compute(int x) { return x * 7 + (x & 3); }
static volatile sig_atomic_t stop;
static long bad[8];
static void on_term(int sig) { (void)sig; stop = 1; }

static void *worker(void *arg)
{
    long *mine = arg;
    for (long n = 0; !stop; n++) {
        int x = (int)(n & 1023), r = compute(x);
        if (r != x * 7 + (x & 3) && r != x * 7 + (x & 3) + 1000) (*mine)++;
    }
    return NULL;
}

int main(void)
{
    signal(SIGTERM, on_term);
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, worker, &bad[i]);
    for (int i = 0; !stop; i++) {
        printf("tick %d %d\n", i, compute(i));
        fflush(stdout);
        usleep(20000);
    }
    long all = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        all += bad[i];
    }
    printf("bad %ld\n", all);
    return 0;
}
"""


@pytest.fixture(params=sorted(FLAVOURS))
def busy_own(request, cprog):
    return cprog(BUSY_OWN_C, FLAVOURS[request.param] + ["-pthread"])


def run_busy(prog, attach):
    """Starts prog, runs attach(pid) while its threads hammer compute(), then ends it; (mrhooker's result,
    the program's ticks as {i: value}, its last line)."""
    import signal
    import time

    proc = subprocess.Popen([prog], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.3)
        r = attach(proc.pid)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = out.decode().splitlines()
    assert proc.returncode == 0 and err == b"" and lines[-1] == "bad 0", (proc.returncode, err, lines[-3:], r)
    ticks = [line.split() for line in lines[:-1]]
    assert [int(t[1]) for t in ticks] == list(range(len(ticks))), "ticks lost or damaged"
    return r, {int(t[1]): int(t[2]) for t in ticks}, lines[-1]


def test_attached_trace_of_the_programs_own_function_while_8_threads_call_it(mrhooker, busy_own):
    r, ticks, _ = run_busy(busy_own, lambda pid: trace(mrhooker, "-c", "-e", "int compute(int x)", "-D", "1",
                                                        "-p", str(pid)))
    assert r.returncode == 0 and "Process" in r.err, r
    row = [line.split() for line in r.err.splitlines() if line.endswith(" compute")]
    assert row and int(row[0][3]) > 1000, r   # the workers' calls, counted
    assert all(v == i * 7 + (i & 3) for i, v in ticks.items()), "a result changed"


def test_attached_py_hook_changes_the_own_function_then_detaches(mrhooker, busy_own, script):
    path = script("own_attach.py", """
        from mrhooker import hook

        @hook("int compute(int x)", at="entry")
        def compute(x):
            return compute.original(x) + 1000
    """)
    r, ticks, _ = run_busy(busy_own, lambda pid: mrhooker("-D", "1", "-p", str(pid), path, timeout=RUN_TIMEOUT))
    assert r.returncode == 0 and "warning" not in r.err, r
    changed = [i for i, v in ticks.items() if v == i * 7 + (i & 3) + 1000]
    assert changed, "the hook never ran: %s" % r
    last = max(ticks)
    assert ticks[last] == last * 7 + (last & 3), "still hooked after the detach"
    assert changed == list(range(changed[0], changed[-1] + 1)), "hooked, unhooked, hooked again"


def test_attached_trace_entry_sees_printfs_write(mrhooker, busy_own):
    r, ticks, _ = run_busy(busy_own, lambda pid: trace(mrhooker, "--entry", "-e", "write", "-D", "0.5",
                                                        "-p", str(pid)))
    assert r.returncode == 0, r
    assert re.search(r'^(\[pid +\d+\] )?write\(1, "tick \d+ \d+\\n", \d+\) = \d+$', r.err, re.M), r


def test_attached_entry_with_the_default_classes_then_the_program_goes_on(mrhooker):
    with subprocess.Popen(["sleep", "60"]) as p:
        try:
            r = trace(mrhooker, "--entry", "-p", str(p.pid), "-D", "0.5")
            alive = p.poll() is None
        finally:
            p.terminate()
            status = p.wait(timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and "detached" in r.err and alive and status == -15, r


def test_killed_mrhooker_leaves_the_entry_hooked_program_running(base_env, busy_own):
    """SIGKILL while a .py hook changes compute() at its entry: the watcher puts the bytes back (or leaves an
    inert jmp), the results are right again and the program ends normally."""
    import os
    import sys
    import time

    from helpers import wait_for

    def attach_and_kill(pid):
        hooks = os.path.join(os.path.dirname(busy_own), "own_kill.py")
        with open(hooks, "w") as f:
            f.write("from mrhooker import hook\n\n@hook('int compute(int x)', at='entry')\n"
                    "def compute(x):\n    return compute.original(x) + 1000\n")
        tool = subprocess.Popen([sys.executable, "-m", "mrhooker", "-p", str(pid), hooks], env=base_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: len(os.listdir("/proc/%d/task" % pid)) >= 10, what="the runtime's thread")
            time.sleep(0.5)
            tool.kill()
        finally:
            tool.wait(timeout=RUN_TIMEOUT)
        wait_for(lambda: len(os.listdir("/proc/%d/task" % pid)) <= 9, what="the runtime's thread to end")
        time.sleep(0.3)
        return tool

    _, ticks, _ = run_busy(busy_own, attach_and_kill)
    changed = [i for i, v in ticks.items() if v != i * 7 + (i & 3)]
    last = max(ticks)
    assert changed and ticks[last] == last * 7 + (last & 3), ticks
