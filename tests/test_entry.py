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
    r = trace(mrhooker, "--entry", "-e", "open,socket", prog, data)
    expected = unhooked([prog, data])
    assert (r.returncode, r.stdout) == (expected.returncode, expected.stdout), r
    opens = lines_of(r.err, "open")
    assert any('"%s", O_RDONLY' % data in line and line.endswith("= 3") for line in opens), r
    assert any("AF_NETLINK" in line for line in lines_of(r.err, "socket")), r


def test_the_programs_own_function_is_traced_with_its_arguments(mrhooker, own_prog):
    r = trace(mrhooker, "-e", "int compute(int x)", own_prog)
    expected = unhooked([own_prog])
    assert (r.returncode, r.stdout) == (expected.returncode, expected.stdout) == (3, b"sum 112\n"), r
    assert lines_of(r.err, "compute") == ["compute(%d) = %d" % (x, x * 7 + (x & 3)) for x in range(1, 6)], r


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


def test_at_must_be_a_known_place(mrhooker, own_prog, script):
    path = script("bad.py", """
        from mrhooker import hook

        @hook("write", at="inside")
        def write(fd, buf, n):
            return write.original(fd, buf, n)
    """)
    r = mrhooker(path, own_prog, timeout=RUN_TIMEOUT)
    assert r.returncode == 2 and r.err.startswith("mrhooker: ") and "entry" in r.err, r


def test_entry_with_attach_is_refused_in_one_line(mrhooker):
    with subprocess.Popen(["sleep", "30"]) as p:
        try:
            r = trace(mrhooker, "--entry", "-p", str(p.pid), "-D", "1")
        finally:
            p.kill()
    assert r.returncode == 2 and r.err.startswith("mrhooker: ") and "--entry" in r.err, r
