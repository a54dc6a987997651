"""`mrhooker trace` on real programs: what it shows, its formats, its counts against a C counter, threads,
children, crashes, and bad input. Every run has a timeout."""
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from helpers import (BUSY_C, RUN_TIMEOUT, STREAMS_C, WATCHDOG_C, children, lines_starting, live_processes,
                     trace_files_of, unhooked, scaled, wait_for, without_progress)

PY = sys.executable


def trace(mrhooker, *args, **kwargs):
    kwargs.setdefault("timeout", RUN_TIMEOUT)
    return mrhooker("trace", *args, **kwargs)


def call_lines(text, name):
    return [line for line in text.splitlines() if re.match(r"(\[pid \d+\] )?%s\(" % re.escape(name), line)]


# ---- what it shows ----------------------------------------------------------------------------------------

def test_cat_a_file_strace_style(mrhooker, tmp_path):
    f = tmp_path / "hello.txt"
    f.write_text("hello\n")
    r = trace(mrhooker, "cat", f)
    assert r.returncode == 0 and r.out == "hello\n", r
    assert '"%s", O_RDONLY) = 3' % f in r.err, r
    assert 'read(3, "hello\\n", 131072) = 6' in r.err, r
    assert 'write(1, "hello\\n", 6) = 6' in r.err, r
    assert r.err.rstrip().endswith("+++ exited with 0 +++"), r


def test_a_failed_call_shows_its_errno_and_the_status_is_the_commands(mrhooker):
    r = trace(mrhooker, "-Z", "ls", "/nonexistent-dir")
    assert r.returncode == 2, r
    # ls's message is written in pieces (stderr is unbuffered): a trace line may come between them, as under strace
    failed = [l for l in r.err.splitlines() if "/nonexistent-dir" in l and "cannot access" not in l]
    assert failed and all(l.endswith("= -1 ENOENT (No such file or directory)") for l in failed), r
    assert not any(l.endswith(" = 0") for l in r.err.splitlines()), r   # -Z: only failed calls


def test_strings_are_cut_at_s_and_escaped(mrhooker, tmp_path):
    f = tmp_path / "data"
    f.write_bytes(b'a"b\\c\td\n\x01\xff' + b"x" * 100)
    r = trace(mrhooker, "-e", "read", "-s", "12", "cat", f)
    assert r.returncode == 0, r
    assert 'read(3, "a\\"b\\\\c\\td\\n\\1\\377xx"..., 131072) = 110' in r.err, r


def test_strings_bounded_by_a_length_are_read_no_further_than_the_call_reads(mrhooker, cprog, tmp_path):
    # strnlen, strncmp, strncpy, ... take n bytes that need no NUL; here they end where an unmapped page starts.
    # Read to a NUL as a C string, the record's copy ran onto that page: the traced program died of SIGSEGV.
    prog = cprog(r"""
        #define _GNU_SOURCE
        #include <errno.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sys/mman.h>
        #include <unistd.h>
        #include <wchar.h>
        int main(void) {
            long pg = sysconf(_SC_PAGESIZE);
            char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED || mprotect(m + pg, pg, PROT_NONE)) return 3;
            char *end = m + pg, *src = end - 8;
            memcpy(src, "ABCDEFGH", 8);
            char *d = strndup(src, 8);
            char dst[16] = "x";
            wchar_t wc;
            mbstate_t st;
            memset(&st, 0, sizeof st);
            printf("%zu %s %d %d", strnlen(src, 8), d, strncmp(src, "ABCDEFGHZ", 8), strncmp("ABCDEFGHY", src, 8));
            printf(" %s", strncat(dst, src, 8));
            printf(" %.4s", strncpy(end - 4, "0123456789", 4));
            printf(" %d", (int)(stpncpy(end - 4, "abcdefgh", 4) - end));
            printf(" %d", (int)mbrtowc(&wc, end - 1, 1, &st));
            memset(end - 8, 'X', 8);   /* GNU strerror_r leaves its buffer as it was for a known error */
            printf(" %s", strerror_r(ENOENT, end - 8, 8));
            printf(" %d\n", getdomainname(end - 3, 3));   /* 3 bytes of "(none)", no NUL, and 0 */
            free(d);
            return 0;
        }
    """, flags=["-fno-builtin"])
    out = tmp_path / "trace"
    r = trace(mrhooker, "-e", "strnlen,strndup,strncmp,strncat,strncpy,stpncpy,mbrtowc,strerror_r,getdomainname",
              "-s", "6", "--inject", "strncmp:retval=0:when=2", "-o", out, prog)
    assert r.returncode == 0 and r.out == "8 ABCDEFGH 0 0 xABCDEFGH 0123 0 1 No such file or directory 0\n", r
    lines = out.read_text().splitlines()
    assert 'strnlen("ABCDEF"..., 8) = 8' in lines and 'strndup("ABCDEF"..., 8) = "ABCDEF"...' in lines, lines
    # the injected one is copied through the kernel: bounded there too, and cut at -s as the other
    strncmps = sorted(call_lines("\n".join(lines), "strncmp"))
    assert strncmps == ['strncmp("ABCDEF"..., "ABCDEF"..., 8) = 0',
                        'strncmp("ABCDEF"..., "ABCDEF"..., 8) = 0 (INJECTED)'], lines
    # strncpy's result is its n bytes; stpncpy's, where it stopped (here the unmapped page), an address
    assert re.match(r'strncpy\(0x[0-9a-f]+, "0123", 4\) = "0123"$', lines[-6]), lines
    assert re.match(r'stpncpy\(0x[0-9a-f]+, "abcd", 4\) = 0x[0-9a-f]+000$', lines[-5]), lines
    assert re.match(r'mbrtowc\(0x[0-9a-f]+, "d", 1, 0x[0-9a-f]+\) = 1$', lines[-4]), lines
    assert re.match(r'strerror_r\(2, 0x[0-9a-f]+ff8, 8\) = "No suc"\.\.\.$', lines[-3]), lines
    assert re.match(r'getdomainname\(".{0,3}", 3\) = 0$', lines[-2]), lines


def test_a_comparison_that_stops_at_its_first_difference_reads_no_further(mrhooker, cprog, tmp_path):
    # strcmp, strncmp, memcmp stop at the first byte that differs: here the string has no NUL before an
    # unmapped page, and the bare program runs. The records read the strings directly, as far as -s, past that
    # difference and onto the page: the traced program died of SIGSEGV.
    prog = cprog(r"""
        #include <stdio.h>
        #include <string.h>
        #include <sys/mman.h>
        #include <unistd.h>
        int main(void) {
            long pg = sysconf(_SC_PAGESIZE);
            char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED || mprotect(m + pg, pg, PROT_NONE)) return 3;
            char *end = m + pg - 4;
            memcpy(end, "abcd", 4);   /* no NUL: the next byte is on the unmapped page */
            printf("%d %d %d\n", strcmp("zz", end) > 0, strncmp(end, "zz", 100) < 0, strcasecmp(end, "Z") < 0);
            return 0;
        }
    """, flags=["-fno-builtin"])
    out = tmp_path / "trace"
    r = trace(mrhooker, "-e", "strcmp,strncmp,strcasecmp", "-o", out, prog)
    assert r.returncode == 0 and r.out == "1 1 1\n", r
    # what could be read, cut as strace cuts a string it could read no further
    text = out.read_text()
    assert re.search(r'^strcmp\("zz", "abcd"\.\.\.\) = \d+$', text, re.M), text
    assert re.search(r'^strncmp\("abcd"\.\.\., "zz", 100\) = -\d+$', text, re.M), text
    assert re.search(r'^strcasecmp\("abcd"\.\.\., "Z"\) = -\d+$', text, re.M), text


def test_a_short_write_of_a_buffer_that_ends_at_an_unmapped_page(mrhooker, cprog, tmp_path):
    # write(fd, buf, 100) with 10 readable bytes: the kernel writes those and returns 10 (a success); its
    # record copied 32 of the 100 bytes directly and the program died of SIGSEGV.
    prog = cprog(r"""
        #include <fcntl.h>
        #include <stdio.h>
        #include <string.h>
        #include <sys/mman.h>
        #include <unistd.h>
        int main(int argc, char **argv) {
            long pg = sysconf(_SC_PAGESIZE);
            char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED || mprotect(m + pg, pg, PROT_NONE)) return 3;
            char *buf = m + pg - 10;
            memcpy(buf, "0123456789", 10);
            int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0) return 4;
            printf("%zd %zd\n", write(fd, buf, 100), pwrite(fd, buf, 100, 0));
            return 0;
        }
    """)
    out = tmp_path / "trace"
    r = trace(mrhooker, "-e", "write,pwrite", "-o", out, prog, tmp_path / "f")
    assert r.returncode == 0 and r.out == "10 10\n", r
    text = out.read_text()
    assert re.search(r'^write\(3, "0123456789"\.\.\., 100\) = 10$', text, re.M), text
    assert re.search(r'^pwrite(64)?\(3, "0123456789"\.\.\., 100, 0\) = 10$', text, re.M), text
    assert (tmp_path / "f").read_bytes() == b"0123456789"

def test_a_huge_s_shows_a_64th_of_the_buffer_never_drops_the_call(mrhooker, tmp_path):
    out = tmp_path / "lines"
    # 300 KB reads and writes: over a quarter of a 1 MB ring, which a record may not be (they were dropped, said
    # as 'its reader showed no sign of life'); 2**64 wrapped to 0 on its way to the C side
    for size in ("99999999999", str(2 ** 64)):
        r = trace(mrhooker, "-e", "read,write", "-s", size, "--buffer-size", "1", "-o", out,
                  "dd", "if=/dev/zero", "of=/dev/null", "bs=300K", "count=2")
        assert r.returncode == 0 and "not recorded" not in r.err, r
        calls = [l for l in out.read_text().splitlines() if l.startswith(("read(", "write("))]
        assert len(calls) == 4, calls
        assert all(l.count("\\0") == 16384 and l.endswith('"..., 307200) = 307200') for l in calls), calls[0][-80:]


def test_curl_connect_and_send_decoded(mrhooker, http_server):
    port = int(http_server.rsplit(":", 1)[1])
    r = trace(mrhooker, "-e", "%net", "-s", "64", "curl", "-s", "-o", "/dev/null", http_server + "/")
    assert r.returncode == 0, r
    assert "socket(AF_INET, SOCK_STREAM, IPPROTO_TCP) = " in r.err, r
    assert re.search(r'connect\(\d+, \{sa_family=AF_INET, sin_port=htons\(%d\), sin_addr=inet_addr\("127\.0\.0\.1"\)\}, '
                     r'16\) = ' % port, r.err), r
    send = call_lines(r.err, "send")
    assert send and '"GET / HTTP/1.1\\r\\nHost: 127.0.0.1:%d' % port in send[0] and "MSG_NOSIGNAL" in send[0], r
    assert re.search(r'recv\(\d+, "HTTP/1.0 200 OK', r.err), r


def test_a_python_target_opens_its_modules(mrhooker):
    r = trace(mrhooker, "-e", "open*", PY, "-c", "import json")
    assert r.returncode == 0, r
    assert re.search(r'(open64\(|openat\(AT_FDCWD, )"[^"]*/json/__pycache__/__init__[^"]*\.pyc", '
                     r'O_RDONLY\|O_CLOEXEC\) = \d+', r.err), r


def test_sh_pipeline_follows_children_and_ff_writes_one_file_per_process(mrhooker, tmp_path):
    two = tmp_path / "two"
    two.write_text("two\n")
    command = ["sh", "-c", "echo one | cat; /bin/cat %s" % two]   # coreutils' echo writes through stdio
    r = trace(mrhooker, "-f", "-e", "execve,write", *command)
    assert r.returncode == 0 and r.out == "one\ntwo\n", r
    assert re.search(r'\[pid \d+\] execve\("/usr/bin/cat", \["cat"\], 0x[0-9a-f]+ /\* \d+ vars \*/\) = 0', r.err), r
    assert re.search(r'\[pid \d+\] write\(1, "two\\n", 4\) = 4', r.err), r
    out = tmp_path / "each"
    r = trace(mrhooker, "-ff", "-o", out, "-e", "execve,write", *command)
    assert r.returncode == 0, r
    files = sorted(tmp_path.glob("each.*"))
    assert len(files) == 4, files   # sh, its subshell for echo, and the two cats
    texts = [p.read_text() for p in files]
    assert sum('write(1, "one\\n", 4) = 4' in t for t in texts) == 2   # echo in sh, and cat
    assert all("[pid" not in line for t in texts for line in t.splitlines() if "write" in line)


def test_ff_of_more_processes_than_descriptors(mrhooker, base_env, tmp_path):
    # -ff kept each FILE.PID open until the end: past the descriptor limit (ulimit -n: 1024 by default; 128
    # here) every later process's file was "Too many open files", its lines lost. A file is closed at its end.
    def few_descriptors():
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    out = tmp_path / "t"
    command = ["trace", "-ff", "-e", "execve", "-o", out, "sh", "-c", "for i in $(seq 300); do /bin/true $i; done"]
    assert trace(mrhooker, *command[1:]).returncode == 0   # built without the limit
    for f in tmp_path.glob("t.*"):
        f.unlink()
    r = subprocess.run([PY, "-m", "mrhooker"] + [str(a) for a in command], env=base_env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=RUN_TIMEOUT, preexec_fn=few_descriptors)
    assert r.returncode == 0 and r.stderr == b"", r
    files = sorted(tmp_path.glob("t.*"))
    assert len(files) == 302, len(files)   # sh, the $(seq) subshell, and 300 children
    trues = [f for f in files if "execve(\"/bin/true\"" in f.read_text()]
    assert len(trues) == 300 and all(f.read_text().endswith("+++ exited with 0 +++\n") for f in files)


def test_exec_shows_its_arguments_once_whether_it_worked_or_failed(mrhooker, tmp_path):
    # sh looks COMMAND up along PATH: execve fails with ENOENT in the first directory, works in the second
    env = dict(os.environ, PATH="%s:/usr/bin:/bin" % (tmp_path / "nothing"))
    long_arg = "y" * 50
    js = tmp_path / "calls.json"
    r = trace(mrhooker, "-e", "execve", "-s", "8", "--json", js, "sh", "-c", "exec printf %%s %s" % long_arg,
              env=env)
    assert r.returncode == 0 and r.out == long_arg, r
    lines = call_lines(r.err, "execve")
    failed = '"%s/printf", ["printf", "%%s", "yyyyyyyy"...]' % (tmp_path / "nothing")
    assert [l for l in lines if failed in l and l.endswith("= -1 ENOENT (No such file or directory)")], r
    assert [l for l in lines if '"/usr/bin/printf", ["printf", "%s", "yyyyyyyy"...], 0x' in l
            and l.endswith(" vars */) = 0")], r
    assert len(lines) == 2, r   # the failed attempt, the one that worked: each once
    calls = [json.loads(line) for line in js.read_text().splitlines()]
    assert [(c["ret"], c["errno"]) for c in calls] == [(-1, "ENOENT"), (0, None)], calls
    assert calls[1]["args"]["argv"] == ["printf", "%s", "yyyyyyyy"] and calls[1]["cut"] == ["argv"], calls
    assert calls[1]["args"]["envp"]["count"] >= 2 and calls[1]["dur_ns"] is None, calls
    r = trace(mrhooker, "-c", "-e", "execve", "sh", "-c", "exec printf %s x", env=env)
    row = [l for l in r.err.splitlines() if l.endswith(" execve")]
    assert row and row[0].split()[3:6] == ["2", "1", "execve"], r   # calls, errors: as the lines


def test_a_failed_call_with_two_paths_shows_both(mrhooker, tmp_path):
    # paths of a failed call are copied through the kernel and stored shorter than reserved: the reader must
    # find the second after the first
    r = trace(mrhooker, "-e", "rename", PY, "-c",
              "import os\ntry: os.rename('/nonexistent/a', %r)\nexcept OSError: pass" % str(tmp_path / "b"))
    assert r.returncode == 0, r
    assert call_lines(r.err, "rename") == ['rename("/nonexistent/a", "%s") = -1 ENOENT (No such file or directory)'
                                           % (tmp_path / "b")], r


def test_a_program_linked_with_z_now(mrhooker, cprog):
    # BIND_NOW resolves every symbol at start (hardened builds): interposition doesn't care
    prog = cprog("""
        #include <unistd.h>
        int main(void) { return write(1, "now\\n", 4) == 4 ? 0 : 1; }
    """, flags=["-Wl,-z,now"])
    r = trace(mrhooker, "-e", "write", prog)
    assert r.returncode == 0 and r.out == "now\n", r
    assert call_lines(r.err, "write") == ['write(1, "now\\n", 4) = 4'], r


def test_no_follow_traces_only_the_command(mrhooker):
    r = trace(mrhooker, "--no-follow", "-e", "write,execve", "sh", "-c", "exec /bin/echo child")
    assert r.returncode == 0 and r.out == "child\n", r
    assert "execve(" in r.err and 'write(1, "child' not in r.err, r
    # nor its fork children, nor does it wait for them (strace without -f)
    started = time.monotonic()
    r = trace(mrhooker, "--no-follow", "-e", "write", "sh", "-c", "sleep 5 >/dev/null 2>&1 & echo hi; (echo sub)")
    assert time.monotonic() - started < 4 and r.returncode == 0 and r.out == "hi\nsub\n", r
    assert 'write(1, "hi\\n", 3) = 3' in r.err and "sub" not in r.err and r.err.count("+++ exited") == 1, r.err


def test_a_fork_child_reads_its_own_memory_with_pthread_atfork_traced(mrhooker, cprog):
    # The runtime's fork handlers (the child's pid, for reading its strings) were registered through the name
    # pthread_atfork: traced, it bound to the trace's entry, whose original dlsym can't find (libc has only a
    # hidden compat version), and the child's strings were read from the parent.
    prog = cprog("""
        #include <stdio.h>
        #include <string.h>
        #include <sys/stat.h>
        #include <sys/wait.h>
        #include <unistd.h>
        int main(void) {
            static char path[64] = "/parent/content";
            pid_t c = fork();
            if (c == 0) {
                strcpy(path, "/child/content");
                struct stat st;
                _exit(stat(path, &st) == -1 ? 0 : 1);
            }
            int status;
            return waitpid(c, &status, 0) == c && WIFEXITED(status) ? WEXITSTATUS(status) : 2;
        }
    """)
    for names in ("stat,fork", "stat,fork,pthread_atfork"):
        r = trace(mrhooker, "-e", names, prog)
        assert r.returncode == 0, r
        assert re.search(r'^\[pid +\d+\] stat\("/child/content", 0x[0-9a-f]+\) = -1 ENOENT', r.err, re.M), (names, r)



def test_the_runtimes_own_getpid_in_a_fork_child_has_no_line(mrhooker, cprog):
    # The trace's fork handler looked up the child's pid through getpid's entry point: traced, every fork child
    # had a getpid line the program never called, --no-follow's child too.
    prog = cprog("""
        #include <sys/wait.h>
        #include <unistd.h>
        int main(void) {
            pid_t c = fork();
            if (c == 0) _exit(0);
            int status;
            return waitpid(c, &status, 0) == c && status == 0 ? 0 : 1;
        }
    """)
    for follow in ("-f", "--no-follow"):
        r = trace(mrhooker, follow, "-e", "getpid,fork", prog)
        assert r.returncode == 0 and r.out == "", r
        assert call_lines(r.err, "getpid") == [] and "getpid(" not in r.err, (follow, r)
        assert len(call_lines(r.err, "fork")) == (2 if follow == "-f" else 1), (follow, r)


# A program's own clone(): without CLONE_VM, a fork that runs no atfork handlers (the child's lines came under its
# parent's pid, cached at the parent's first traced call); with CLONE_VM|CLONE_VFORK, a child in its parent's
# memory (it cached its own pid there: the parent's later lines came under it, its waitpid line was lost).
CLONE_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static char stack[1 << 16] __attribute__((aligned(16)));
static int copied(void *arg) { return write(1, "copied\n", 7) == 7 ? 0 : 1; }
static int shared(void *arg) { execl("/bin/true", "true", (char *)NULL); _exit(127); }
int main(void)
{
    alarm(30);
    close(open("/dev/null", O_RDONLY));   /* the parent's first traced call: its pid cached */
    int status, ok = 1;
    pid_t a = clone(copied, stack + sizeof stack, SIGCHLD, NULL);
    ok &= waitpid(a, &status, 0) == a && status == 0;
    pid_t b = clone(shared, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
    ok &= waitpid(b, &status, 0) == b && status == 0;
    write(1, "after\n", 6);
    printf("pids %d %d %d\n", (int)getpid(), (int)a, (int)b);
    return ok ? 0 : 1;
}
"""


def test_lines_of_a_programs_own_clone_children_carry_the_right_pid(mrhooker, cprog, tmp_path):
    prog = cprog(CLONE_C)
    out = tmp_path / "calls.jsonl"
    r = trace(mrhooker, "-f", "--json", out, "-e", "open,close,write,waitpid,execve", prog)
    assert r.returncode == 0 and r.out.startswith("copied\nafter\npids "), r
    parent, copied, shared = (int(v) for v in r.out.split()[-3:])
    calls = [json.loads(line) for line in out.read_text().splitlines()]
    seen = [(c["pid"], c["name"], c["args"].get("pid", c["args"].get("buf"))) for c in calls
            if c["name"] in ("write", "waitpid")]
    assert seen == [(copied, "write", "copied\n"), (parent, "waitpid", copied), (parent, "waitpid", shared),
                    (parent, "write", "after\n")], calls
    assert "[pid %d] +++ exited with 0 +++" % copied in r.err and "[pid %d] +++ exited with 0 +++" % shared in r.err, r

CALL_SITES_C = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((noinline)) int compute(int x) { return x * 3 + 1; }
int main(void)
{
    int sum = 0;
    for (int i = 0; i < 3; i++) {
        free(malloc(10));    /* one site, three calls */
        sum += compute(i);
    }
    free(malloc(20));        /* another site */
    printf("main %p %d\\n", (void *)main, sum);
    return 0;
}
"""


@pytest.mark.parametrize("entry", [[], ["--entry"]])
def test_i_shows_each_calls_site(mrhooker, cprog, tmp_path, entry):
    # ltrace -i: the address the call returns to. At the entry too, where the entry point is called by the
    # patch's thunk: the site is still the program's.
    prog = cprog(CALL_SITES_C, flags=["-O0"])
    out = tmp_path / "calls.jsonl"
    r = trace(mrhooker, "-i", *entry, "--json", out, "-e", "malloc,int compute(int x)", prog)
    assert r.returncode == 0, r
    main = int(r.out.split()[1], 16)
    lines = [l for l in r.err.splitlines() if re.match(r"\[0x[0-9a-f]+\] (malloc|compute)\(", l)]
    lines = [l for l in lines if "malloc(4096)" not in l]   # printf's buffer, from libc
    sites = [int(l[3:l.index("]")], 16) for l in lines]
    assert len(lines) == 7 and all(main < site < main + 400 for site in sites), (hex(main), r.err)
    mallocs = [site for l, site in zip(lines, sites) if "malloc(" in l]
    assert len(set(mallocs[:3])) == 1 and mallocs[3] != mallocs[0], r.err
    computes = [site for l, site in zip(lines, sites) if "compute(" in l]
    assert len(set(computes)) == 1, r.err
    records = [json.loads(l) for l in out.read_text().splitlines()]
    assert [int(rec["caller"], 16) for rec in records if rec["args"].get("size") != 4096] == sites, records


def test_chosen_only_records_the_chosen_calls_and_counts_them_all(mrhooker, cprog, tmp_path):
    prog = cprog("""
        #include <errno.h>
        #include <fcntl.h>
        #include <stdio.h>
        #include <unistd.h>
        int main(int argc, char **argv) {
            char buf[4];
            int fd = open(argv[1], O_RDONLY);
            for (int i = 0; i < 3; i++) printf("%d ", read(fd, buf, sizeof buf) < 0 ? errno : 0);
            printf("\\n");
            return 0;
        }
    """)
    f = tmp_path / "x"
    f.write_text("a few bytes\n")
    out = tmp_path / "calls.jsonl"
    r = trace(mrhooker, "--chosen-only", "-C", "--json", out, "-e", "read,open", "--inject", "read:error=EIO:when=2",
              prog, f)
    assert r.returncode == 0 and r.out == "0 5 0 \n", r
    lines = [l for l in r.err.splitlines() if re.match(r"(read|open)\(", l)]
    assert len(lines) == 1 and re.fullmatch(r"read\(3, 0x[0-9a-f]+, 4\) = -1 EIO \(Input/output error\) \(INJECTED\)",
                                            lines[0]), r.err
    assert [json.loads(l)["name"] for l in out.read_text().splitlines()] == ["read"], out.read_text()
    # -c still counts every call: 3 reads, 1 failed; 1 open
    assert re.search(r" 3 +1 read$", r.err, re.M) and re.search(r" 1 +open$", r.err, re.M), r.err
    r = trace(mrhooker, "--chosen-only", "-e", "read", prog, f)
    assert r.returncode == 2 and "--chosen-only records the calls --inject chooses" in r.err, r


def test_no_follow_with_a_program_that_defines_its_own_unsetenv(mrhooker):
    # bash exports its own getenv/setenv/unsetenv: before its main, its unsetenv leaves environ as it is, and the
    # runtime's --no-follow clean-up (MRHOOKER_* and its LD_PRELOAD entry out of the environment) spun for ever
    command = ["bash", "-c", "echo hi; env | grep -c 'MRHOOKER_\\|LD_PRELOAD=' || true"]
    r = trace(mrhooker, "--no-follow", "-e", "open", *command)
    assert r.returncode == 0 and r.out == "hi\n0\n", r


def test_timestamps_and_durations(mrhooker, tmp_path):
    f = tmp_path / "x"
    f.write_text("x")
    for option, pattern in (("-t", r"^\d\d:\d\d:\d\d read\("), ("-tt", r"^\d\d:\d\d:\d\d\.\d{6} read\("),
                            ("-ttt", r"^\d{10}\.\d{6} read\("), ("-r", r"^ +\d+\.\d{6} read\("),
                            ("-T", r"^read\(.*= \d+ <\d+\.\d{6}>$")):
        r = trace(mrhooker, option, "-e", "read", "cat", f)
        assert r.returncode == 0 and re.search(pattern, r.err, re.M), (option, r)


# ---- counts -----------------------------------------------------------------------------------------------

C_COUNTER = """\
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static long calls;
static int (*real_foo)(int);
int foo(int x)
{
    if (!real_foo) real_foo = (int (*)(int))dlsym(RTLD_NEXT, "foo");
    __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
    return real_foo(x);
}
__attribute__((destructor)) static void report(void)
{
    char line[64];
    int n = snprintf(line, sizeof line, "c counter: %ld\\n", calls);
    if (write(2, line, n) < 0) _exit(3);
}
"""

FOO_THREADS_SRC = """\
#include <pthread.h>
#include <stdio.h>
int foo(int);
static void *worker(void *arg)
{
    long sum = 0;
    for (int i = 0; i < 25000; i++) sum += foo(i);
    return (void *)sum;
}
int main(void)
{
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, worker, NULL);
    long total = 0;
    for (int i = 0; i < 8; i++) { void *s; pthread_join(t[i], &s); total += (long)s; }
    printf("%ld\\n", total);
    return 0;
}
"""


def test_eight_threads_counted_as_a_c_counter_counts_and_lines_never_torn(mrhooker, cprog, foo_prog, tmp_path):
    counter = cprog(C_COUNTER, flags=["-shared", "-fPIC", "-ldl"], suffix=".so")
    prog = foo_prog(FOO_THREADS_SRC)
    plain = unhooked([prog], env=dict(os.environ, LD_PRELOAD=counter))
    c_calls = int(re.search(rb"c counter: (\d+)", plain.stderr).group(1))
    assert c_calls == 8 * 25000
    r = trace(mrhooker, "-c", "-e", "int foo(int x)", prog)
    assert r.returncode == 0 and r.stdout == plain.stdout, r
    row = [l for l in r.err.splitlines() if l.endswith(" foo")]
    assert len(row) == 1 and int(row[0].split()[3]) == c_calls, r
    out = tmp_path / "lines"
    r = trace(mrhooker, "-o", out, "-e", "int foo(int x)", prog)
    assert r.returncode == 0, r
    lines = [l for l in out.read_text().splitlines() if "foo(" in l]
    assert len(lines) == c_calls
    assert all(re.fullmatch(r"\[pid \d+\] foo\((\d+)\) = \d+", l) for l in lines)
    assert sorted(int(re.search(r"foo\((\d+)\)", l).group(1)) for l in lines) == sorted(list(range(25000)) * 8)


C_WRITE_COUNTER = """\
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static long calls;
static ssize_t (*real_write)(int, const void *, size_t);
ssize_t write(int fd, const void *buf, size_t n)
{
    if (!real_write) real_write = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
    return real_write(fd, buf, n);
}
__attribute__((destructor)) static void report(void)   /* dd closes its stderr at exit: to a file */
{
    FILE *f = fopen(getenv("COUNTER_OUT"), "w");
    if (f) fprintf(f, "c counter: %ld\\n", calls), fclose(f);
}
"""


def test_dd_summary_equals_a_c_counter(mrhooker, cprog, tmp_path):
    counter = cprog(C_WRITE_COUNTER, flags=["-shared", "-fPIC", "-ldl"], suffix=".so")
    dd = ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=20000"]
    counted = tmp_path / "counted"
    unhooked(dd, env=dict(os.environ, LD_PRELOAD=counter, COUNTER_OUT=str(counted)))
    c_calls = int(re.search(r"c counter: (\d+)", counted.read_text()).group(1))
    assert c_calls == 20000
    r = trace(mrhooker, "-c", "-e", "write", *dd)
    assert r.returncode == 0, r
    row = [l for l in r.err.splitlines() if l.endswith(" write")]
    assert len(row) == 1 and int(row[0].split()[3]) == c_calls, (c_calls, r)
    out = tmp_path / "dd.trace"
    r = trace(mrhooker, "-o", out, "-e", "write", *dd)
    assert r.returncode == 0, r
    assert out.read_text().count('write(1, "\\0", 1) = 1\n') == 20000


# ---- crashes and hangs --------------------------------------------------------------------------------------

CRASH_SRC = """\
#include <stdio.h>
#include <unistd.h>
int main(void)
{
    for (int i = 0; i < 3; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "before crash %d\\n", i);
        if (write(1, line, n) < 0) return 1;
    }
    *(volatile int *)0 = 1;
    return 0;
}
"""


def test_the_calls_before_a_crash_are_shown(mrhooker, cprog):
    r = trace(mrhooker, "-e", "write", cprog(CRASH_SRC))
    assert r.returncode == 128 + 11, r
    assert [l for l in call_lines(r.err, "write")] == ['write(1, "before crash %d\\n", 15) = 15' % i for i in range(3)]
    assert "+++ killed by SIGSEGV +++" in r.err, r


def test_lines_of_a_program_that_blocks_appear_while_it_blocks(base_env, tmp_path):
    out = tmp_path / "live"
    proc = subprocess.Popen([PY, "-m", "mrhooker", "trace", "-o", str(out), "-e", "write,read", "sh", "-c",
                             "echo before; read x"], env=base_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        import time
        deadline = time.monotonic() + 30
        while 'write(1, "before\\n", 7) = 7' not in (out.read_text() if out.exists() else ""):
            assert time.monotonic() < deadline, "the line of a call made before the block never appeared"
            time.sleep(0.05)
    finally:
        proc.communicate(b"go\n", timeout=RUN_TIMEOUT)
    assert proc.returncode == 0


# ---- formats ------------------------------------------------------------------------------------------------

def test_json_lines_schema(mrhooker, tmp_path):
    f = tmp_path / "x"
    f.write_text("abc")
    out = tmp_path / "calls.jsonl"
    r = trace(mrhooker, "--json", out, "-e", "open,read", "cat", f, tmp_path / "missing")
    assert r.returncode == 1, r
    calls = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(set(c) == {"pid", "tid", "caller", "ts_ns", "dur_ns", "name", "args", "ret", "errno"} for c in calls)
    opened = [c for c in calls if c["name"] == "open" and c["args"]["file"] == str(f)]
    assert opened and opened[0]["args"]["oflag"] == "O_RDONLY" and opened[0]["ret"] >= 3 and opened[0]["errno"] is None
    missing = [c for c in calls if c["name"] == "open" and c["args"]["file"].endswith("missing")]
    assert missing and missing[0]["ret"] == -1 and missing[0]["errno"] == "ENOENT"
    reads = [c for c in calls if c["name"] == "read" and c["ret"] == 3]
    assert reads and reads[0]["args"]["buf"] == "abc"
    assert all(c["ts_ns"] > 1.6e18 and c["dur_ns"] >= 0 for c in calls)


def test_json_of_nan_and_infinities_is_strict_json(mrhooker, cprog, tmp_path):
    # A double result that is NaN or infinite was written as Python's json module writes it, bare NaN and
    # Infinity: no JSON (RFC 8259), refused by JavaScript's JSON.parse and Go, made null or 1.79e308 by jq.
    prog = cprog(r"""
        #include <stdio.h>
        #include <stdlib.h>
        int main(void) {
            printf("%f %f %f %f\n", strtod("nan", NULL), strtod("inf", NULL), strtod("-inf", NULL), atof("-2.5"));
            return 0;
        }
    """)
    out = tmp_path / "calls.jsonl"
    r = trace(mrhooker, "--json", out, "-e", "strtod,atof", prog)
    assert r.returncode == 0 and r.out == "nan inf -inf -2.500000\n", r

    def refuse(constant):
        raise ValueError("not JSON: %s" % constant)

    calls = [json.loads(line, parse_constant=refuse) for line in out.read_text().splitlines()]
    assert sorted((c["args"]["nptr"], c["ret"]) for c in calls) == [
        ("-2.5", -2.5), ("-inf", "-Infinity"), ("inf", "Infinity"), ("nan", "NaN")], calls
    # the lines spell them as Python's repr and ltrace do
    lines = call_lines(r.err, "strtod")
    assert {'strtod("-inf", NULL) = -inf', 'strtod("inf", NULL) = inf', 'strtod("nan", NULL) = nan'} <= set(lines), lines


def test_timeline_follows_the_trace_event_format(mrhooker, tmp_path):
    out = tmp_path / "timeline.json"
    r = trace(mrhooker, "--timeline", out, "sh", "-c", "cat /etc/hostname; ls / > /dev/null")
    assert r.returncode == 0, r
    events = json.loads(out.read_text())["traceEvents"]
    calls = [e for e in events if e["ph"] == "X"]
    names = [e for e in events if e["ph"] == "M"]
    assert calls and {e["name"] for e in names} <= {"process_name", "thread_name"}
    assert {(e["pid"]) for e in calls} <= {e["pid"] for e in names if e["name"] == "process_name"}
    for e in calls:
        assert {"ts", "dur", "pid", "tid", "name", "args"} <= set(e) and e["dur"] >= 0
    by_thread = {}
    for e in calls:
        by_thread.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_thread.values():   # on a thread, calls nest: none ends inside another it did not start in
        spans.sort()
        stack = []
        for start, end in spans:
            while stack and stack[-1] <= start:
                stack.pop()
            assert not stack or end <= stack[-1] + 1e-3, spans
            stack.append(end)


THREAD_PER_TASK_C = r"""
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
static void *task(void *arg) { for (int i = 0; i < 50; i++) (void)!write(1, "", 0); return arg; }
int main(int argc, char **argv)
{
    for (int round = 0; round < atoi(argv[1]); round++) {   /* eight threads at a time, each writing 50 times */
        pthread_t t[8];
        for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, task, NULL);
        for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    }
    return 0;
}
"""


def test_a_timeline_of_many_threads_costs_the_reader_what_lines_do(mrhooker, base_env, cprog, tmp_path):
    # Each record asked whether its thread had been named in the timeline by scanning a list of all the threads
    # seen: a program that had started 16,000 threads took the reader 5x the CPU time of the same trace's lines
    # (and a program waits for its reader when the ring is full).
    prog = cprog(THREAD_PER_TASK_C, flags=["-pthread"])
    assert trace(mrhooker, "-e", "write", "-q", "--timeline", os.devnull, prog, "1").returncode == 0   # built

    def cpu_seconds(*options):   # mrhooker's own, where the reader runs (its last reading before it ends)
        proc = subprocess.Popen([PY, "-m", "mrhooker", "trace", "-e", "write"] + list(options) + [prog, "2000"],
                                env=base_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seconds, deadline = 0, time.monotonic() + RUN_TIMEOUT
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    with open("/proc/%d/stat" % proc.pid) as f:
                        fields = f.read().rpartition(")")[2].split()
                    seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")   # utime, stime
                except (OSError, IndexError, ValueError):
                    pass
                time.sleep(0.02)
            assert proc.wait(timeout=RUN_TIMEOUT) == 0, proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
        return seconds

    timeline = tmp_path / "timeline.json"
    lines, timed = cpu_seconds("-o", os.devnull), cpu_seconds("-q", "--timeline", timeline)
    # (a timeline's records are longer than lines: 1.1 s against 0.34 under CI's load; the list took 5.4 against 0.5)
    assert timed < 3 * lines + 1.0, (timed, lines)
    events = json.loads(timeline.read_text())["traceEvents"]
    named = [e["tid"] for e in events if e["name"] == "thread_name"]
    assert len(named) == len(set(named)) == 16000, len(named)   # each thread once (main writes nothing)
    assert sum(e["name"] == "write" for e in events) == 800000


def test_timeline_is_capped_with_a_message(mrhooker, tmp_path):
    out = tmp_path / "capped.json"
    r = trace(mrhooker, "--timeline", out, "--timeline-limit", "10", "-e", "write", "dd", "if=/dev/zero",
              "of=/dev/null", "bs=1", "count=100")
    assert r.returncode == 0, r
    assert len([e for e in json.loads(out.read_text())["traceEvents"] if e["ph"] == "X"]) == 10
    assert "the timeline holds the first 10 calls; 90 more were left out" in r.err, r


def test_scaffold_writes_a_hook_script_that_runs_unchanged(mrhooker, tmp_path):
    f = tmp_path / "x"
    f.write_text("scaffolded\n")
    scaffold = tmp_path / "stubs.py"
    r = trace(mrhooker, "--scaffold", scaffold, "cat", f)
    assert r.returncode == 0, r
    text = scaffold.read_text()
    assert "@hook('ssize_t read(int fd, void *buf, size_t nbytes)')\ndef read(fd, buf, nbytes):\n" in text, text
    r = mrhooker(scaffold, "cat", f, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and r.out == "scaffolded\n", r


def test_summary_and_lines_together(mrhooker, tmp_path):
    r = trace(mrhooker, "-C", "-e", "write", "sh", "-c", "echo a; echo b")
    assert r.returncode == 0, r
    assert len(call_lines(r.err, "write")) == 2, r
    assert re.search(r"^ *100\.00 +[0-9.]+ +\d+ +2 +write$", r.err, re.M), r


# ---- choosing what to trace, and bad input ----------------------------------------------------------------

def test_list_and_globs(mrhooker):
    r = mrhooker("trace", "--list", "send*")
    assert r.returncode == 0 and "ssize_t send(int fd, const void *buf, size_t n, int flags);" in r.out, r
    r = trace(mrhooker, "-e", "open*,!openat*", "cat", "/etc/hostname")
    assert r.returncode == 0 and "open(" in r.err and "openat(" not in r.err, r


# ---- the `64` twins: a name means the function and the twin a large-file build calls ------------------------

def imports_of(path):
    """The symbols a program or library imports, as objdump -T shows them."""
    out = subprocess.run(["objdump", "-T", path], capture_output=True, text=True, timeout=scaled(60)).stdout
    return {line.split()[-1] for line in out.splitlines() if "*UND*" in line}


def test_an_inject_rule_on_open_fails_python_s_open64_and_one_on_an_alias_fires(mrhooker, tmp_path, cprog):
    """--inject names, as -e names, stand for the large-file twin (python3 calls open64) and the alias (glibc's
    headers make pthread_yield a call of sched_yield)."""
    f = tmp_path / "hello"
    f.write_text("hi")
    r = trace(mrhooker, "-q", "--inject", "open:error=EACCES", PY, "-S", "-c", "open(%r).read()" % str(f))
    assert r.returncode == 1 and "PermissionError" in r.err, r
    prog = cprog("#define _GNU_SOURCE\n#include <pthread.h>\n#include <stdio.h>\n"
                 "int main(void) { printf(\"%d\\n\", pthread_yield()); return 0; }\n", flags=["-w", "-pthread"])
    r = trace(mrhooker, "-q", "--inject", "pthread_yield:retval=7", prog)
    assert r.returncode == 0 and r.out.strip() == "7", r


def test_open_means_open64_too_for_python(mrhooker, tmp_path):
    # Python is built with -D_FILE_OFFSET_BITS=64: its open() is open64 (in libpython or the executable)
    f = tmp_path / "hello"
    f.write_text("hi")
    js = tmp_path / "calls.jsonl"
    r = trace(mrhooker, "-e", "open,openat", "--json", js, PY, "-S", "-c", "open(%r).read()" % str(f))
    assert r.returncode == 0, r
    assert '%s("%s", O_RDONLY|O_CLOEXEC) = ' % ("open64", f) in r.err, r   # shown as called, as ltrace does
    assert [c["name"] for c in map(json.loads, js.read_text().splitlines())
            if c["args"].get("file") == str(f)] == ["open64"]
    r = trace(mrhooker, "-c", "-e", "open", PY, "-S", "-c", "open(%r).read()" % str(f))
    assert r.returncode == 0 and [l for l in r.err.splitlines() if l.endswith(" open64")], r
    # !open leaves out both; open64 alone is open64 alone
    r = trace(mrhooker, "-e", "open*,!open", PY, "-S", "-c", "open(%r).read()" % str(f))
    assert r.returncode == 0 and not call_lines(r.err, "open64") and not call_lines(r.err, "open"), r
    r = trace(mrhooker, "-e", "open,!open64", "cat", f)
    assert r.returncode == 0 and call_lines(r.err, "open") and not call_lines(r.err, "open64"), r


# A -D_FORTIFY_SOURCE build calls the checked versions (__open_2 when the flags aren't a constant, __read_chk when
# the buffer's size is known): Debian builds tar and xz so. `open` and `read` stood for none of them: tar's and
# xz's opens had no line, and an --inject on open never fired.
FORTIFIED_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    char buf[64];
    int fd = open(argv[1], atoi(argv[2]));
    ssize_t n = read(fd, buf, atoi(argv[3]));
    printf("fd %d n %zd\n", fd, n);
    return 0;
}
"""


def test_open_and_read_mean_their_checked_versions_too(mrhooker, tmp_path, cprog):
    prog = cprog(FORTIFIED_C, flags=["-D_FORTIFY_SOURCE=2"])
    assert {"__open_2", "__read_chk"} <= imports_of(prog)
    r = mrhooker("trace", "-l", "open", prog, timeout=RUN_TIMEOUT)   # -l says which one it calls
    assert r.returncode == 0 and r.out == "int __open_2(const char *file, int oflag);  // %s\n" % (
        os.path.basename(prog)), r
    f = tmp_path / "hello"
    f.write_text("hello, world\n")
    command = [prog, f, "0", "10"]
    r = trace(mrhooker, "-e", "open,read", *command)
    assert r.returncode == 0 and r.out == unhooked(command).stdout.decode() == "fd 3 n 10\n", r
    assert call_lines(r.err, "__open_2") == ['__open_2("%s", O_RDONLY) = 3' % f], r.err
    assert call_lines(r.err, "__read_chk") == ['__read_chk(3, "hello, wor", 10, 64) = 10'], r.err
    r = trace(mrhooker, "-q", "--inject", "open:error=EACCES", *command)
    assert r.returncode == 0 and r.out == "fd -1 n -1\n", r
    r = trace(mrhooker, "-e", "%file,%desc,!open", *command)   # !open leaves the checked one out too
    assert r.returncode == 0 and call_lines(r.err, "__read_chk") and not call_lines(r.err, "__open_2"), r.err
    r = trace(mrhooker, "-e", "__read_chk", *command)          # named itself
    assert r.returncode == 0 and call_lines(r.err, "__read_chk") and not call_lines(r.err, "__open_2"), r.err
    runs = tmp_path / "sweep.jsonl"                             # the sweep fails it as open's (EACCES)
    r = mrhooker("sweep", "--json", runs, "-e", "open", *command, timeout=scaled(300))
    assert [(run["function"], run["errno"]) for run in map(json.loads, runs.read_text().splitlines())] == [
        ("__open_2", "EACCES")], r
    # a real one: xz opens its input with __open_2
    if "__open_2" in imports_of(shutil.which("xz")):
        r = trace(mrhooker, "-e", "open", "xz", "-kc", f)
        assert r.returncode == 0 and call_lines(r.err, "__open_2"), r.err
        r = trace(mrhooker, "-q", "--inject", "open:error=EACCES", "xz", "-kc", f)
        assert r.returncode == 1 and "Permission denied" in r.err, r


def test_fcntl_means_fcntl64_too_so_sqlite_locking_shows(mrhooker, tmp_path):
    lib = "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0"
    if os.path.exists(lib):
        assert "fcntl64" in imports_of(lib) and "fcntl" not in imports_of(lib)
    db = tmp_path / "t.db"
    command = ["sqlite3", db, "create table if not exists t(x); insert into t values (1);"]
    for spec in ("fcntl", "%desc"):
        r = trace(mrhooker, "-e", spec, *command)
        assert r.returncode == 0, r
        locks = [l for l in call_lines(r.err, "fcntl64") if "F_SETLK" in l]
        assert locks and all(l.endswith(" = 0") for l in locks), r


def test_cat_calls_open_and_its_lines_say_so(mrhooker, tmp_path):
    f = tmp_path / "hello"
    f.write_text("hi")
    assert "open" in imports_of("/bin/cat") and "open64" not in imports_of("/bin/cat")
    r = trace(mrhooker, "-e", "open", "cat", f)
    assert r.returncode == 0 and r.out == "hi" and '"%s", O_RDONLY) = 3' % f in r.err, r
    assert call_lines(r.err, "open") and not call_lines(r.err, "open64"), r


def test_the_twins_come_from_the_headers():
    from mrhooker import cdecl, tracing
    twins = cdecl.large_file_twins()
    assert twins["open"] == "open64" and twins["fcntl"] == "fcntl64" and twins["readdir_r"] == "readdir64_r"
    assert twins["stat"] == "stat64" and twins["lseek"] == "lseek64" and twins["pread"] == "pread64"
    assert "canonicalizef" not in twins and "open64" not in twins   # a float variant; a twin has none
    names = lambda *specs: [p.symbol for p in tracing.select(list(specs), None)]
    assert names("open") == ["open", "__open_2", "open64", "__open64_2"]   # and the checked versions
    assert names("open64") == ["open64", "__open64_2"]
    assert {"fcntl", "fcntl64", "lseek64", "pread64", "fstat64"} <= set(names("%desc"))
    assert {"open64", "openat64", "stat64", "fopen64"} <= set(names("%file"))
    assert "open64" not in names("%file", "!open") and "open" not in names("%file", "!open")


def test_list_says_which_twin_a_program_imports(mrhooker, cprog, tmp_path):
    r = mrhooker("trace", "-l", "open", timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and r.out.splitlines() == ["int open(const char *file, int oflag, ...);",
                                                       "int __open_2(const char *file, int oflag);",
                                                       "int open64(const char *file, int oflag, ...);",
                                                       "int __open64_2(const char *file, int oflag);"], r
    r = mrhooker("trace", "-l", "open", "cat", timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and r.out == "int open(const char *file, int oflag, ...);  // cat\n", r
    if "fcntl" not in imports_of("/bin/cat"):
        r = mrhooker("trace", "-l", "fcntl", "cat", timeout=RUN_TIMEOUT)
        assert r.returncode == 1 and r.out == "" and "cat and the libraries it loads import no known function " \
                                                    "matching fcntl" in r.err, r
    r = mrhooker("trace", "-l", "fcntl", "sqlite3", timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and "int fcntl64(int fd, int cmd, ...);  // libsqlite3.so" in r.out, r
    # Python's open64 is in its executable (Debian's) or its libpython (pyenv's)
    r = mrhooker("trace", "-l", "open*", os.path.realpath(PY), timeout=RUN_TIMEOUT)
    where = [l for l in r.out.splitlines() if l.startswith("int open64(")]
    assert r.returncode == 0 and where and re.search(r"// .*(python|libpython)", where[0]), r
    # the bare -l with a command: all it imports, here via -- (GLOB left out)
    r = mrhooker("trace", "-l", "--", "cat", timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and "ssize_t write(int fd, const void *buf, size_t n);  // cat" in r.out, r
    assert all("  // " in l for l in r.out.splitlines()), r
    # a #! script: its interpreter's, said on stderr
    sh_script = tmp_path / "s.sh"
    sh_script.write_text("#!/bin/sh\necho hi\n")
    sh_script.chmod(0o755)
    r = mrhooker("trace", "-l", "execve", sh_script, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and "execve" in r.out and "is a script" in r.err and "/bin/sh" in r.err, r
    # `#!/usr/bin/env -S NAME ARGS` (env splits its one argument): NAME's, not env's, which imports no getppid
    env_script = tmp_path / "env-s.py"
    env_script.write_text("#!/usr/bin/env -S PYTHONUNBUFFERED=1 %s -u\nimport os\nprint(os.getppid())\n"
                          % os.path.realpath(PY))
    env_script.chmod(0o755)
    r = mrhooker("trace", "-l", "getppid", env_script, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and "getppid(void);" in r.out and "what its interpreter /" in r.err, r
    assert "/usr/bin/env imports" not in r.err, r
    # a script without #!: /bin/sh's, as it runs (execvp's ENOEXEC), not "not an ELF file"
    bare_script = tmp_path / "bare.sh"
    bare_script.write_text("echo hi\n")
    bare_script.chmod(0o755)
    r = mrhooker("trace", "-l", "execve", bare_script, timeout=RUN_TIMEOUT)
    assert r.returncode == 0 and "execve" in r.out and "is a script" in r.err and "/bin/sh" in r.err, r
    static = cprog("int main(void) { return 0; }\n", flags=["-static"])
    r = mrhooker("trace", "-l", "*", static, timeout=RUN_TIMEOUT)
    assert r.returncode == 2 and "statically linked" in r.err and len(r.err.splitlines()) == 1, r
    r = mrhooker("trace", "-l", "cat", timeout=RUN_TIMEOUT)   # a program named where GLOB goes
    assert r.returncode == 2 and "no known function matches cat" in r.err and "-l '*' cat" in r.err, r


def test_the_runtimes_own_functions_are_neither_listed_nor_traced(mrhooker):
    r = mrhooker("trace", "-l", timeout=RUN_TIMEOUT)
    listed = {re.search(r"(\w+)\(", l).group(1) for l in r.out.splitlines()}
    assert r.returncode == 0 and len(listed) > 2000, r
    assert not {"vfork", "clone", "__errno_location"} & listed and {"sigaction", "signal"} <= listed
    for name in ("vfork", "__errno_location"):
        r = trace(mrhooker, "-e", name, "true")
        assert r.returncode == 2 and "%s cannot be hooked or traced" % name in r.err and len(r.err.splitlines()) == 1, r
    r = trace(mrhooker, "-e", "sig*", "true")   # a glob over the known names: they are not among them
    assert r.returncode == 0, r


def test_an_alias_is_left_out_with_the_function_it_names():
    from mrhooker import tracing
    from mrhooker.errors import MrhookerError
    assert [p.symbol for p in tracing.select(["pthread_yield,sched_yield"], None)] == ["sched_yield"]
    with pytest.raises(MrhookerError, match="nothing to trace"):
        tracing.select(["pthread_yield,!sched_yield"], None)


@pytest.mark.parametrize("args, words", [
    (["-e", "opne", "true"], "no prototype known for opne (did you mean open"),
    (["-e", "nothing_*", "true"], "no known function matches nothing_*"),
    (["-e", "printf", "true"], "variadic function printf cannot be forwarded; trace vprintf instead"),
    (["-e", "%nosuch", "true"], "unknown class %nosuch"),
    (["-e", "", "true"], "-e '' names no function"),      # not the default classes without a word
    (["-ff", "true"], "-ff needs -o FILE"),
    (["-e", "write"], "no command given"),
    (["--frobnicate", "true"], "unknown option --frobnicate"),
    (["--jsn", "f", "true"], "unknown option --jsn (did you mean --json?)"),
    (["--rebiuld", "true"], "unknown option --rebiuld (did you mean --rebuild?)"),
    (["--no-folow", "true"], "unknown option --no-folow (did you mean --no-follow?)"),
    (["--buffer-size", "x", "true"], "option --buffer-size takes a whole number, not 'x'"),
    (["--buffer-size", "0", "true"], "--buffer-size 0: a number of MB from 1 to 65536"),   # named, alone
    (["-s", "-1", "true"], "-s -1: the length takes a number from 0"),
    (["no-such-command-here"], "no-such-command-here: command not found"),
])
def test_bad_input_is_one_line(mrhooker, args, words):
    r = trace(mrhooker, *args)
    assert r.returncode in (2, 127) and r.err.startswith("mrhooker: ") and words in r.err, r
    assert "Traceback" not in r.err and len(r.err.splitlines()) <= 2, r


def test_two_outputs_on_one_file_are_refused(mrhooker, tmp_path):
    # `-o t --json t`: each output opened the file for itself and wrote it from its own offset, over the other's
    # lines (a JSON record with a line in its middle), status 0.
    out = tmp_path / "t"
    r = trace(mrhooker, "-e", "write", "-o", out, "--json", out, "sh", "-c", "echo a; echo b")
    assert r.returncode == 2 and r.err == "mrhooker: -o and --json name the same file, %s: each would write over " \
        "the other's lines\n" % out and not out.exists(), r
    out.write_text("kept\n")
    r = trace(mrhooker, "-e", "write", "-q", "--timeline", out, "--scaffold", tmp_path / "." / "t", "true")
    assert r.returncode == 2 and "--timeline and --scaffold name the same file" in r.err, r
    assert out.read_text() == "kept\n"
    r = trace(mrhooker, "-e", "write", "-o", os.devnull, "--json", os.devnull, "true")   # a device takes both
    assert r.returncode == 0, r


STAT_C = r'''
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
int main(int argc, char **argv)
{
    struct stat st;
    struct timespec nap = {0, 1000000}, now;
    int r = stat(argv[1], &st), missing = stat(argv[2], &st);
    nanosleep(&nap, NULL);
    clock_gettime(CLOCK_REALTIME, &now);
    printf("%d %d %lld %lld\n", r, missing, (long long)st.st_size, (long long)now.tv_sec);
    return 0;
}
'''


def test_structs_shown_by_their_members_as_strace_does(mrhooker, cprog, tmp_path):
    """struct timespec and struct stat read from the call, with the compiler's layouts; JSON has every member."""
    f = tmp_path / "five"
    f.write_text("12345")
    os.chmod(f, 0o640)
    prog = cprog(STAT_C)
    out = tmp_path / "calls.jsonl"
    r = trace(mrhooker, "-e", "stat,nanosleep,clock_gettime", "--json", out, prog, f, tmp_path / "missing")
    bare = unhooked([prog, f, tmp_path / "missing"])
    assert r.returncode == 0 and r.out.split()[:3] == bare.stdout.decode().split()[:3] == ["0", "-1", "5"], r
    assert 'stat("%s", {st_mode=S_IFREG|0640, st_size=5, ...}) = 0' % f in r.err, r.err
    assert re.search(r'stat\("%s", 0x[0-9a-f]+\) = -1 ENOENT' % re.escape(str(tmp_path / "missing")), r.err), r.err
    assert "nanosleep({tv_sec=0, tv_nsec=1000000}, NULL) = 0" in r.err, r.err
    now = int(r.out.split()[3])
    match = re.search(r"clock_gettime\(CLOCK_REALTIME, \{tv_sec=(\d+), tv_nsec=(\d+)\}\) = 0", r.err)
    assert match and int(match.group(1)) == now, r.err
    calls = [json.loads(line) for line in out.read_text().splitlines()]
    st = [c for c in calls if c["name"] == "stat" and c["ret"] == 0][0]["args"]["buf"]
    assert st["st_size"] == 5 and st["st_mode"] == f.stat().st_mode and st["st_ino"] == f.stat().st_ino
    assert st["st_mtim"]["tv_sec"] == int(f.stat().st_mtime)


# ---- fault injection, fake time (faults.py) -----------------------------------------------------------------

def test_inject_enospc_into_cp_quietly(mrhooker, tmp_path):
    """The whole command of the issue: cp reports the full disk, and the exit status is cp's."""
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_bytes(b"x" * 100000)
    r = trace(mrhooker, "-q", "--inject", "copy_file_range,write:error=ENOSPC", "cp", src, dst)
    assert r.returncode == 1 and "No space left on device" in r.err, r
    assert "copy_file_range(" not in r.err and "+++" not in r.err     # -q: no call lines
    assert lines_starting(r.err, "mrhooker:") == []


TWELVE_WRITES = r'''
#include <stdio.h>
#include <unistd.h>
int main(void)
{
    for (int i = 1; i <= 12; i++) {
        char line[8];
        int n = snprintf(line, sizeof line, "%d\n", i);
        (void)!write(1, line, n);
    }
    return 0;
}
'''


def test_inject_when_ranges_are_counted_exactly(mrhooker, cprog):
    """when= counts each function's calls in each process from 1: FIRST, FIRST+, FIRST+STEP, FIRST..LAST."""
    prog = cprog(TWELVE_WRITES)
    for when, failed in [("3", {3}), ("10+", {10, 11, 12}), ("2+3", {2, 5, 8, 11}), ("4..6", {4, 5, 6}),
                         ("2..9+4", {2, 6})]:
        r = trace(mrhooker, "-e", "write", "--inject", "write:error=EIO:when=" + when, prog)
        writes = [l for l in r.err.splitlines() if l.startswith("write(1, ")]
        assert len(writes) == 12, (when, r)
        got = {i + 1 for i, l in enumerate(writes) if l.endswith("= -1 EIO (Input/output error) (INJECTED)")}
        assert got == failed, (when, r.err)
        assert r.out.split() == [str(i) for i in range(1, 13) if i not in failed], (when, r)


def test_two_inject_rules_on_one_function_both_apply_in_order(mrhooker, cprog):
    """The first of two rules for write was dropped: only the third write failed. Both count the same calls,
    and the first rule (in command-line order) that chooses a call decides it."""
    prog = cprog(TWELVE_WRITES)
    for rules, expected in [(["write:error=EIO:when=1", "write:error=ENOSPC:when=3"], {1: "EIO", 3: "ENOSPC"}),
                            (["write:error=EIO:when=4..5", "write:error=ENOSPC:when=3+2"],
                             {3: "ENOSPC", 4: "EIO", 5: "EIO", 7: "ENOSPC", 9: "ENOSPC", 11: "ENOSPC"}),
                            (["write:delay_enter=1ms:when=2", "write:error=EBADF:when=2..3"], {3: "EBADF"})]:
        r = trace(mrhooker, "-e", "write", *[x for rule in rules for x in ("--inject", rule)], prog)
        writes = [l for l in r.err.splitlines() if l.startswith("write(1, ")]
        assert len(writes) == 12, (rules, r)
        got = {i + 1: re.search(r"= -1 (E\w+)", l).group(1) for i, l in enumerate(writes) if "(INJECTED)" in l}
        assert got == expected, (rules, r.err)
        assert "(DELAYED)" in writes[1] or not rules[0].startswith("write:delay"), r.err
        assert r.out.split() == [str(i) for i in range(1, 13) if i not in expected], (rules, r)


def test_inject_numbers_past_64_bits_are_one_line(mrhooker):
    """when=99999999999999999999 was an internal error (exit 70)."""
    for spec in ["write:error=EIO:when=99999999999999999999", "write:error=EIO:when=1..99999999999999999999",
                 "write:error=EIO:when=1+99999999999999999999", "write:retval=99999999999999999999",
                 "write:delay_enter=99999999999999999999s", "write:error=99999999999", "write:error=EIO:when=" + "9" * 5000]:
        r = trace(mrhooker, "--inject", spec, "true")
        assert r.returncode == 2 and len(r.err.splitlines()) == 1 and r.err.startswith("mrhooker: bad --inject"), (
            spec[:80], r)


def test_inject_probability_is_reproducible_with_a_seed(mrhooker):
    script = "for i in $(seq 1 200); do echo $i; done"

    def failed(seed):
        r = trace(mrhooker, "-q", "--seed", str(seed), "--inject", "write:error=EIO:probability=25%", "sh", "-c", script)
        return tuple(sorted(set(range(1, 201)) - {int(x) for x in r.out.split()}))
    first, again, other = failed(7), failed(7), failed(8)
    assert first == again and first != other
    assert 25 <= len(first) <= 80     # about a quarter of 200


def test_inject_retval_null_and_delays(mrhooker, cprog, tmp_path):
    prog = cprog(r'''
        #include <stdio.h>
        #include <stdlib.h>
        #include <time.h>
        int main(void)
        {
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            void *p = malloc(100);
            FILE *f = fopen("/etc/hostname", "r");
            clock_gettime(CLOCK_MONOTONIC, &b);
            double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
            printf("%s %s %s\n", p ? "mem" : "null", f ? "file" : "nofile", ms >= 50 ? "slow" : "fast");
            return p == NULL ? 3 : 0;
        }
        ''')
    r = trace(mrhooker, "-e", "malloc,fopen", "--inject", "malloc:error=ENOMEM:when=1", "--inject",
              "fopen:delay_enter=30ms:delay_exit=30ms", prog)
    assert r.returncode == 3 and r.out == "null file slow\n", r
    assert "malloc(100) = NULL ENOMEM (Cannot allocate memory) (INJECTED)" in r.err, r.err
    assert re.search(r'fopen\("/etc/hostname", "r"\) = 0x[0-9a-f]+ \(DELAYED\)', r.err), r.err
    r = trace(mrhooker, "-q", "--inject", "fopen:retval=0", prog)
    assert r.returncode == 0 and r.out.split()[:2] == ["mem", "nofile"], r


# Functions that fail by returning the error number (tracespec's ERRNO_RESULT) got -1 and errno from --inject, as
# a function that fails with errno does: Python said `OSError: [Errno -1] Unknown error -1`. Each script makes a
# real failure first, then the call the rule fails; both print what Python made of it.
ERROR_NUMBER_FAILURES = {
    "posix_spawnp": ("ENOENT", 'os.posix_spawnp("no-such-program-here", ["x"], {})',
                     'os.posix_spawnp("true", ["true"], {})'),
    "posix_fadvise": ("EIO", "os.posix_fadvise(os.pipe()[0], 0, 0, os.POSIX_FADV_SEQUENTIAL)",   # ESPIPE
                      'os.posix_fadvise(os.open("/etc/hostname", os.O_RDONLY), 0, 0, os.POSIX_FADV_SEQUENTIAL)'),
    "posix_fallocate": ("ENOSPC", "os.posix_fallocate(os.pipe()[1], 0, 100)",   # ESPIPE
                        'os.posix_fallocate(os.open(sys.argv[1], os.O_RDWR | os.O_CREAT), 0, 100)'),
}


@pytest.mark.parametrize("function", sorted(ERROR_NUMBER_FAILURES))
def test_inject_into_a_function_that_returns_its_error_number(mrhooker, tmp_path, function):
    """The program gets the error number as the function's result, as from a real failure, and the line reads as
    the real failure's does."""
    error, real, injected = ERROR_NUMBER_FAILURES[function]
    code = ("import os, sys\n"
            "for attempt in (lambda: %s, lambda: %s):\n"
            "    try:\n"
            "        attempt()\n"
            "        print('worked')\n"
            "    except OSError as e:\n"
            "        print(e.errno, e.strerror)\n" % (real, injected))
    r = trace(mrhooker, "-e", function, "--inject", "%s:error=%s:when=2" % (function, error), PY, "-S", "-c", code,
              tmp_path / "file")
    assert r.returncode == 0, r
    number = getattr(errno, error)
    assert r.out.splitlines()[1] == "%d %s" % (number, os.strerror(number)), r
    real_line, injected_line = [l for l in r.err.splitlines() if re.match(r"%s(64)?\(" % function, l)]   # or its twin
    real_result = re.search(r"\) = (\d+) (E\w+) \(([^)]*)\)$", real_line)
    assert real_result and r.out.splitlines()[0] == "%s %s" % (real_result.group(1), real_result.group(3)), r
    assert injected_line.endswith(") = %d %s (%s) (INJECTED)" % (number, error, os.strerror(number))), r.err


def test_a_function_that_returns_its_error_number_counts_as_failed(mrhooker, tmp_path):
    """posix_fadvise's ESPIPE (a result of 29, errno untouched) is a failure for -Z, -c's errors and JSON's
    "errno", real or injected; its line names the error once."""
    code = ("import os\n"
            "for fd in (os.pipe()[0], os.open('/etc/hostname', os.O_RDONLY), os.open('/etc/hostname', os.O_RDONLY)):\n"
            "    try:\n"
            "        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)\n"
            "        print('worked')\n"
            "    except OSError as e:\n"
            "        print(e.errno)\n")
    inject = ["--inject", "posix_fadvise:error=EIO:when=3"]
    expected_out = "%d\nworked\n%d\n" % (errno.ESPIPE, errno.EIO)
    r = trace(mrhooker, "-Z", "-e", "posix_fadvise", *inject, PY, "-S", "-c", code)
    assert r.returncode == 0 and r.out == expected_out, r
    lines = [l for l in r.err.splitlines() if re.match(r"posix_fadvise(64)?\(", l)]
    assert len(lines) == 2, r.err
    assert lines[0].endswith(") = %d ESPIPE (Illegal seek)" % errno.ESPIPE), lines
    assert lines[1].endswith(") = %d EIO (%s) (INJECTED)" % (errno.EIO, os.strerror(errno.EIO))), lines
    js = tmp_path / "calls.json"
    r = trace(mrhooker, "-q", "--json", js, "-e", "posix_fadvise", *inject, PY, "-S", "-c", code)
    assert r.returncode == 0 and r.out == expected_out, r
    records = [json.loads(l) for l in js.read_text().splitlines()]
    records = [(c["ret"], c["errno"], c.get("injected", False)) for c in records if c["name"].startswith("posix_fadv")]
    assert records == [(errno.ESPIPE, "ESPIPE", False), (0, None, False), (errno.EIO, "EIO", True)], records
    r = trace(mrhooker, "-c", "-e", "posix_fadvise", PY, "-S", "-c", code)
    assert r.returncode == 0, r
    row = [l.split() for l in r.err.splitlines() if l.split()[-1:] and l.split()[-1].startswith("posix_fadvise")]
    assert len(row) == 1 and row[0][3:5] == ["3", "1"], r.err   # calls, errors


def test_inject_into_pthread_create_returns_the_error_number_and_leaves_errno(mrhooker, cprog):
    """pthread_create fails by returning the error number (sort's threads, a C program's): the injected failure
    is what a real one returns, without touching errno, and its line is the real one's."""
    prog = cprog(r"""
        #include <errno.h>
        #include <pthread.h>
        #include <stdio.h>
        static void *run(void *arg) { return arg; }
        int main(void)
        {
            pthread_attr_t huge;
            pthread_attr_init(&huge);
            pthread_attr_setstacksize(&huge, (size_t)1 << 50);   /* past the address space: a real EAGAIN */
            for (int i = 0; i < 2; i++) {
                pthread_t t;
                errno = EDOM;   /* the caller's errno, which the injected failure leaves alone */
                int err = pthread_create(&t, i == 0 ? &huge : NULL, run, NULL);
                int after = errno;
                if (err == 0) pthread_join(t, NULL);
                printf("%d %d\n", err, after);
            }
            return 0;
        }
        """, flags=["-pthread"])
    r = trace(mrhooker, "-e", "pthread_create", "--inject", "pthread_create:error=EAGAIN:when=2", prog)
    assert r.returncode == 0, r
    real, injected = r.out.splitlines()
    assert real.split()[0] == str(errno.EAGAIN) and injected == "%d %d" % (errno.EAGAIN, errno.EDOM), r
    real_line, injected_line = call_lines(r.err, "pthread_create")
    result = " = %d EAGAIN (%s)" % (errno.EAGAIN, os.strerror(errno.EAGAIN))
    assert real_line.endswith(result) and injected_line.endswith(result + " (INJECTED)"), r.err


def test_inject_into_pthread_locks_returns_the_error_number(mrhooker, cprog):
    """pthread_mutex_lock and _trylock fail as pthread_create does: the injected failure is the error number as the
    result, errno untouched, as a real EBUSY from trylock is; -Z shows both."""
    prog = cprog(r"""
        #include <errno.h>
        #include <pthread.h>
        #include <stdio.h>
        int main(void)
        {
            pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
            for (int i = 0; i < 2; i++) {
                errno = EDOM;
                int locked = pthread_mutex_lock(&m);
                int busy = locked == 0 ? pthread_mutex_trylock(&m) : -1;   /* a real EBUSY: it is held */
                printf("%d %d %d\n", locked, busy, errno);
                if (locked == 0) pthread_mutex_unlock(&m);
            }
            return 0;
        }
        """, flags=["-pthread"])
    r = trace(mrhooker, "-Z", "-e", "pthread_mutex_lock,pthread_mutex_trylock",
              "--inject", "pthread_mutex_lock:error=EINVAL:when=1", prog)
    assert r.returncode == 0, r
    assert r.out.splitlines() == ["%d -1 %d" % (errno.EINVAL, errno.EDOM), "0 %d %d" % (errno.EBUSY, errno.EDOM)], r
    lines = [l for l in r.err.splitlines() if l.startswith("pthread_")]
    assert [l.split("(")[0] for l in lines] == ["pthread_mutex_lock", "pthread_mutex_trylock"], r.err
    assert lines[0].endswith(" = %d EINVAL (%s) (INJECTED)" % (errno.EINVAL, os.strerror(errno.EINVAL))), lines
    assert lines[1].endswith(" = %d EBUSY (%s)" % (errno.EBUSY, os.strerror(errno.EBUSY))), lines


def test_buffers_filled_by_functions_that_return_an_error_number(mrhooker, cprog):
    """ttyname_r and getlogin_r return 0 or an error number: the name they filled is shown once they worked (the
    buffer's address when they failed); getentropy's random bytes are an address."""
    prog = cprog(r"""
        #define _GNU_SOURCE
        #include <fcntl.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <unistd.h>
        int main(void)
        {
            char name[64], random[16];
            int master = posix_openpt(O_RDWR | O_NOCTTY);
            if (master < 0 || grantpt(master) || unlockpt(master)) return 9;
            int pts = open(ptsname(master), O_RDWR | O_NOCTTY);
            printf("%d\n", ttyname_r(pts, name, sizeof name));
            printf("%s\n", name);
            printf("%d\n", ttyname_r(open("/dev/null", O_RDONLY), name, sizeof name));
            printf("%d\n", getentropy(random, sizeof random));
            return 0;
        }
        """)
    r = trace(mrhooker, "-e", "ttyname_r,getentropy", prog)
    assert r.returncode == 0, r
    worked, pts, failed, entropy = r.out.splitlines()
    assert worked == "0" and pts.startswith("/dev/pts/") and failed == str(errno.ENOTTY), r
    lines = call_lines(r.err, "ttyname_r") + call_lines(r.err, "getentropy")
    assert re.fullmatch(r'ttyname_r\(\d+, "%s", 64\) = 0' % re.escape(pts), lines[0]), lines
    assert re.fullmatch(r"ttyname_r\(\d+, 0x[0-9a-f]+, 64\) = %d ENOTTY \(%s\)" % (errno.ENOTTY,
                        re.escape(os.strerror(errno.ENOTTY))), lines[1]), lines
    assert re.fullmatch(r"getentropy\(0x[0-9a-f]+, 16\) = 0", lines[2]), lines


def test_inject_refuses_what_cant_work_with_one_line(mrhooker):
    for spec, words in [("write", "say what to do"), ("write:error=ENOSPACE", "did you mean ENOSPC"),
                        ("write:when=0:error=EIO", "counted from 1"), ("write:error=EIO:when=x", "FIRST+STEP"),
                        ("write:error=EIO:probability=2", "from 0 to 1"), ("exit:error=EIO", "never returns"),
                        ("free:error=EIO", "returns nothing"), ("strlen:error=EIO", "say it with retval="),
                        ("write:error=EIO:delay_enter=soon", "a duration"), ("nosuchfn:error=EIO", "no prototype"),
                        ("write:colour=red", "unknown colour")]:
        r = trace(mrhooker, "--inject", spec, "true")
        assert r.returncode == 2 and len(r.err.splitlines()) == 1 and r.err.startswith("mrhooker: "), (spec, r)
        assert words in r.err, (spec, r.err)


def test_fake_time_for_date_python_and_a_rate(mrhooker):
    r = trace(mrhooker, "-q", "--fake-time", "2000-01-01 00:00:00", "date", "+%Y-%m-%d %H:%M")
    assert r.returncode == 0 and r.out == "2000-01-01 00:00\n", r
    # 2 fake seconds on the monotonic clock, which runs at the rate too: 2 s on the wall clock, ~0.2 real ones
    # (times()'s elapsed ticks, which stay real)
    code = ("import os, time, datetime; a = time.time(); m = time.monotonic(); e = os.times().elapsed\n"
            "while time.monotonic() - m < 2: pass\n"
            "print(datetime.date.today().year, round(time.time() - a, 1), os.times().elapsed - e < 1.5)")
    r = trace(mrhooker, "-q", "--fake-time", "@946684800 x10", sys.executable, "-c", code)
    assert r.returncode == 0, r
    year, elapsed, real_short = r.out.split()
    assert year == "2000" and 1.9 <= float(elapsed) <= 2.5 and real_short == "True", r
    r = trace(mrhooker, "-e", "clock_gettime", "--fake-time=-1d", "date", "+%s")   # = : argparse takes -1d for an option
    assert r.returncode == 0 and abs(int(r.out) - (time.time() - 86400)) < 30, r
    assert "clock_gettime(CLOCK_REALTIME, {tv_sec=%s" % r.out.strip()[:5] in r.err
    for spec in ("next tuesday", "", " "):   # (an empty one ran the program on the real clock, silently)
        r = trace(mrhooker, "--fake-time", spec, "true")
        assert r.returncode == 2 and r.err.startswith("mrhooker: bad --fake-time") and r.err.count("\n") == 1, r


DECODE_C = r'''
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    fcntl(fd, F_GETFD);
    fcntl(fd, F_SETFL, O_APPEND | O_NONBLOCK);
    void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(p, 4096);
    dup3(fd, 20, O_CLOEXEC);
    waitpid(-1, NULL, WNOHANG);
    kill(getpid(), 0);
    write(999, "x", 1);
    return 0;
}
'''


def test_decoding_found_by_a_user(mrhooker, cprog, tmp_path):
    """What an adversarial pass found decoded wrongly: fcntl's absent argument, munmap's range, dup3's flags,
    waitpid's options, kill's signal 0, a failed write's buffer; JSON bytes that aren't UTF-8."""
    r = trace(mrhooker, "-e", "fcntl,munmap,dup3,waitpid,kill,write", cprog(DECODE_C))
    assert r.returncode == 0, r
    for line in ["fcntl(3, F_GETFD) = 0x1 (flags FD_CLOEXEC)", "fcntl(3, F_SETFL, O_RDONLY|O_APPEND|O_NONBLOCK) = 0",
                 "dup3(3, 20, O_CLOEXEC) = 20",
                 "waitpid(-1, NULL, WNOHANG) = -1 ECHILD (No child processes)", ", 0) = 0",
                 'write(999, "x", 1) = -1 EBADF (Bad file descriptor)']:
        assert line in r.err, (line, r.err)
    assert re.search(r"^munmap\(0x[0-9a-f]+, 4096\) = 0$", r.err, re.M), r.err
    assert re.search(r"^kill\(\d+, 0\) = 0$", r.err, re.M), r.err
    real, literal = tmp_path / "real", tmp_path / "literal"
    real.write_bytes(b"\xff")
    literal.write_bytes(b"\\xff")
    for f in (real, literal):
        out = tmp_path / (f.name + ".jsonl")
        r = trace(mrhooker, "--json", out, "-e", "read", "cat", f)
        assert r.returncode == 0, r
        bufs = [json.loads(l)["args"]["buf"] for l in out.read_text().splitlines() if json.loads(l)["ret"] > 0]
        assert bufs == (["\\xff"] if f is real else ["\\\\xff"]), bufs


STREAMS_TRACED = ("fwrite", "fwrite_unlocked", "fread", "fread_unlocked", "realloc", "reallocarray")


def _addresses_out(lines):
    return [re.sub(r"0x[0-9a-f]+", "0x?", line) for line in lines]


@pytest.mark.parametrize("size", [None, "4"], ids=["whole", "cut"])
def test_stream_buffers_are_size_times_items_and_realloc_s_pointer_an_address(mrhooker, cprog, tmp_path, size):
    """fwrite's buffer is size * nmemb bytes (not `size` of them); fread's is what it filled, size * its result,
    shown after the call as read's is; realloc's (and reallocarray's) pointer is an address, never a string."""
    ten = tmp_path / "ten"
    ten.write_text("0123456789")
    prog = cprog(STREAMS_C, ["-O0", "-fno-builtin"])
    out = tmp_path / "calls.jsonl"
    cut = ["-s", size] if size else []
    r = trace(mrhooker, "-e", ",".join(STREAMS_TRACED), "--json", out, *cut, prog, ten, "again")
    assert r.returncode == 0 and r.out == "hello world\nabcdefghxyz!\n10 2 0\n", r
    if size:
        shown = {"fwrite": ['fwrite("hell"..., 1, 12, 0x?) = 12', 'fwrite("abcd"..., 4, 2, 0x?) = 2'],
                 "fwrite_unlocked": ['fwrite_unlocked("xyz!", 2, 2, 0x?) = 2'],
                 "fread": ['fread("0123"..., 1, 64, 0x?) = 10', 'fread("", 1, 64, 0x?) = 0'],
                 "fread_unlocked": ['fread_unlocked("0123"..., 4, 16, 0x?) = 2']}
    else:
        shown = {"fwrite": ['fwrite("hello world\\n", 1, 12, 0x?) = 12', 'fwrite("abcdefgh", 4, 2, 0x?) = 2'],
                 "fwrite_unlocked": ['fwrite_unlocked("xyz!", 2, 2, 0x?) = 2'],
                 "fread": ['fread("0123456789", 1, 64, 0x?) = 10', 'fread("", 1, 64, 0x?) = 0'],
                 "fread_unlocked": ['fread_unlocked("01234567", 4, 16, 0x?) = 2']}
    shown["reallocarray"] = ["reallocarray(0x?, 2, 4096) = 0x?"]
    for name, lines in shown.items():
        assert _addresses_out(call_lines(r.err, name)) == lines, (name, r.err)
    reallocs = _addresses_out(call_lines(r.err, "realloc"))   # reallocarray's own realloc may follow
    assert reallocs[0] == "realloc(0x?, 4096) = 0x?" and all('"' not in line for line in reallocs), r.err
    calls = [json.loads(line) for line in out.read_text().splitlines()]
    freads = [(c["args"]["ptr"], c.get("cut")) for c in calls if c["name"].startswith("fread")]
    assert freads == ([("0123", ["ptr"]), ("0123", ["ptr"]), ("", None)] if size else
                      [("0123456789", None), ("01234567", None), ("", None)]), freads
    assert re.match(r"0x[0-9a-f]+$", [c for c in calls if c["name"] == "realloc"][0]["args"]["ptr"]), calls


@pytest.mark.parametrize("spec", ["open,dlsym,strncmp", "*"], ids=["some", "every_function"])
def test_tracing_the_runtimes_own_helpers_changes_nothing(mrhooker, tmp_path, spec):
    """dlsym, strncmp, strlen, memcpy... the runtime's lookups must not run through the entries they resolve."""
    listed = tmp_path / "listed"
    listed.mkdir()
    for name in ("a", "b.txt", "ü"):
        (listed / name).write_text(name)
    commands = (["cat", "/etc/hostname"], ["ls", "-la", listed], ["curl", "-s", "file:///etc/hostname"])
    for i, command in enumerate(commands):
        out = tmp_path / "trace.txt"
        # the first run builds: '*' is 2,075 functions, over a minute cold on a loaded machine (two layers of
        # .ci/run side by side); a hang is still caught
        r = trace(mrhooker, "-o", out, "-e", spec, *command, timeout=scaled(300) if i == 0 else RUN_TIMEOUT)
        bare = unhooked(command)
        assert r.returncode == bare.returncode == 0 and r.stdout == bare.stdout, (spec, r)
        assert "Function not implemented" not in r.err and "+++ exited with 0 +++" in out.read_text()


def test_a_traced_name_nothing_defines_runs_no_constructor_early(mrhooker, cprog):
    # The first traced call (getenv, in the first library's constructor) sets up the runtime, whose lookup of an
    # original nothing defines (cos: no libm here) dlopen'd every loaded library: that ran the second library's
    # constructor inside the lookup, where a traced call gets no original. Its strlen said 0; curl's gnutls failed
    # its ASN.1 set-up ("Error in GnuTLS initialization").
    first = cprog("""
        #include <stdlib.h>
        const char *volatile name = "MRHOOKER_TEST_UNSET";   /* volatile: calls, not constants */
        int first_ran;
        __attribute__((constructor)) static void look(void) { first_ran = getenv(name) == NULL; }
    """, flags=["-shared", "-fPIC"], suffix=".so")
    second = cprog("""
        #include <string.h>
        extern int first_ran;
        const char *volatile word = "constructor";
        int measured;
        __attribute__((constructor)) static void measure(void) { measured = (int)strlen(word) * first_ran; }
    """, flags=["-shared", "-fPIC", first], suffix=".so")
    prog = cprog("""
        #include <stdio.h>
        extern int measured;
        int main(void) { printf("measured %d\\n", measured); return 0; }
    """, flags=[second, first])
    r = trace(mrhooker, "-e", "cos,getenv,strlen", prog)
    assert r.returncode == 0 and r.out == "measured 11\n", r
    assert call_lines(r.err, "strlen") == ['strlen("constructor") = 11'], r
    command = ["curl", "-s", "file:///etc/hostname"]
    r = trace(mrhooker, "-e", "cos,getenv,strlen,secure_getenv", *command)
    bare = unhooked(command)
    assert (r.returncode, r.stdout) == (bare.returncode, bare.stdout) and "GnuTLS" not in r.err, r
    uses_gnutls = "libgnutls" in subprocess.run(["ldd", shutil.which("curl")], capture_output=True, text=True).stdout
    assert ('secure_getenv("GNUTLS_NO_IMPLICIT_INIT") = NULL' in r.err) == uses_gnutls, r


COUNT_SIGINT_C = r'''
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
static volatile sig_atomic_t got;
static void on_int(int sig) { (void)sig; got++; }
int main(void)
{
    signal(SIGINT, on_int);
    printf("ready\n");
    fflush(stdout);
    for (int i = 0; i < 40 && got == 0; i++) usleep(50000);
    usleep(300000);   /* time for a second one to arrive */
    printf("got %d\n", (int)got);
    return 0;
}
'''


@pytest.mark.parametrize("command", [["trace", "-e", "write"], []])
def test_a_signal_to_the_whole_process_group_arrives_once(base_env, cprog, script, command):
    """kill -INT -- -PGID (timeout, CI runners, job control do it): the program gets one SIGINT, as unhooked."""
    prog = cprog(COUNT_SIGINT_C)
    hooks = [] if command else [script("noop.py", "from mrhooker import hook\n@hook('getpid')\ndef g():\n"
                                                  "    return g.original()\n")]
    argv = [sys.executable, "-m", "mrhooker"] + command + hooks + [prog]
    proc = subprocess.Popen(argv, env=base_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert proc.stdout.readline() == b"ready\n"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=scaled(60))
    finally:
        proc.kill()
    assert out == b"got 1\n" and proc.returncode == 0, (out, err)


LONGJMP_C = r'''
#include <setjmp.h>
#include <signal.h>
#include <unistd.h>
static sigjmp_buf back;
static void on_segv(int sig) { (void)sig; siglongjmp(back, 1); }
int main(void)
{
    signal(SIGSEGV, on_segv);
    if (sigsetjmp(back, 1) == 0) {
        volatile int *nowhere = 0;
        *nowhere = 1;
    }
    (void)!write(1, "recovered\n", 10);
    getpid();
    (void)!write(1, "again\n", 6);
    return 0;
}
'''


def test_calls_after_a_longjmp_out_of_a_signal_handler_are_traced_and_hooked(mrhooker, cprog, script):
    prog = cprog(LONGJMP_C)
    r = trace(mrhooker, "-e", "write,getpid", prog)
    assert r.returncode == 0 and r.out == "recovered\nagain\n", r
    assert 'write(1, "recovered\\n", 10) = 10' in r.err and 'write(1, "again\\n", 6) = 6' in r.err, r.err
    hooks = script("pid.py", "from mrhooker import hook\n@hook('getpid')\ndef getpid():\n    print('hooked getpid')\n"
                             "    return getpid.original()\n")
    r = mrhooker(hooks, prog)
    assert r.returncode == 0 and r.out == "recovered\nagain\n" and "hooked getpid" in r.err, r


CLOCKS_C = r'''
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
int main(void)
{
    time_t t0, t1 = time(&t0);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct timespec ts, mono;
    timespec_get(&ts, TIME_UTC);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    printf("%lld %lld %lld %lld %d\n", (long long)t0, (long long)t1, (long long)tv.tv_sec, (long long)ts.tv_sec,
           mono.tv_sec < 100000000);
    return 0;
}
'''


def test_fake_time_moves_every_realtime_clock_and_no_other(mrhooker, cprog):
    r = trace(mrhooker, "-q", "--fake-time", "@1000000000", cprog(CLOCKS_C))
    assert r.returncode == 0, r
    values = [int(v) for v in r.out.split()]
    assert all(abs(v - 1000000000) <= 5 for v in values[:4]) and values[4] == 1, r.out


def test_inject_into_gzip_and_dd(mrhooker, tmp_path):
    data = tmp_path / "data"
    data.write_bytes(os.urandom(300000))
    r = trace(mrhooker, "-q", "--inject", "write:error=ENOSPC:when=2", "gzip", "-c", data)
    assert r.returncode == 1 and "No space left on device" in r.err, r
    r = trace(mrhooker, "-c", "-e", "read", "--inject", "read:error=EIO:when=3", "dd", "if=%s" % data,
              "of=/dev/null", "bs=4096")
    assert r.returncode == 1 and "Input/output error" in r.err, r


# ---- the command line's contract while tracing: signals, output errors, mrhooker's own end -----------------

def _writes_said(err):
    """The count BUSY_C says on stderr when a signal ends it."""
    (line,) = [l for l in err.splitlines() if l.startswith("writes ")]
    return int(line.split()[1])


def test_timeout_ends_a_busy_traced_program_at_once_and_no_call_is_lost(base_env, cprog, tmp_path):
    """`timeout 5 mrhooker trace ...` on a program that keeps the trace buffer full: the SIGTERM reaches it at
    once (not when the reader catches up), no call is dropped, mrhooker dies by SIGTERM (timeout says 124)."""
    busy, out = cprog(BUSY_C), tmp_path / "trace.txt"
    start = time.monotonic()
    r = subprocess.run(["timeout", "5", PY, "-m", "mrhooker", "trace", "-e", "write", "-o", str(out), busy, "120"],
                       env=base_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT + 60)
    took = time.monotonic() - start
    err = without_progress(r.stderr.decode())
    assert r.returncode == 124 and not live_processes(busy), (r.returncode, err)
    # the program ended at the signal; what remains is writing out the buffer it had filled (64 MB of calls)
    assert took < 60, took
    # the signal may come while the record of the write that just returned is being written: the program dies
    # there (its handler re-raises the signal), and that one record is lost, said so
    lost = ("mrhooker: 1 records were lost: their process died (or left a signal handler by longjmp) while writing "
            "them\n")
    cut = 1 if lost in err else 0
    assert "mrhooker:" not in err.replace(lost, ""), err
    lines = out.read_text().splitlines()
    assert lines[-1] == "+++ killed by SIGTERM +++", lines[-3:]
    made = _writes_said(err)
    # the trace has every write that returned (and perhaps the one the signal came after, recorded but not counted)
    assert made > 0 and made - cut <= len(lines) - 1 <= made + 1, (made, len(lines))


@pytest.mark.parametrize("how", ["TERM to mrhooker", "HUP to mrhooker", "INT to its process group"])
def test_signals_reach_a_busy_traced_program_and_a_second_one_stops_the_writing(base_env, cprog, tmp_path, how):
    """The lines go to a pipe nobody reads yet: mrhooker is blocked writing them and the ring is full behind it.
    The first signal ends the program at once all the same; a second one, once the program is gone, stops the
    writing of what the ring still holds (said in one line)."""
    busy = cprog(BUSY_C)
    sig = {"TERM": signal.SIGTERM, "HUP": signal.SIGHUP, "INT": signal.SIGINT}[how.split()[0]]
    lines = _UnreadPipe()
    proc = subprocess.Popen(lines.trace_argv(busy), env=base_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, pass_fds=[lines.write_end])
    lines.started()
    try:
        wait_for(lambda: live_processes(busy), RUN_TIMEOUT, "the program to run")
        (pid,) = live_processes(busy)
        time.sleep(1)   # the pipe fills, then the ring
        (os.killpg if "group" in how else os.kill)(proc.pid, sig)
        wait_for(lambda: _ended(pid), 10, "the program to end")   # (mrhooker, blocked writing, reaps it later)
        time.sleep(0.5)
        os.kill(proc.pid, sig)   # mrhooker is (blocked) writing what the program left in the buffer: stop that
        lines.read()
        _, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        proc.kill()
        proc.wait()
        lines.close()
    err, traced = without_progress(err.decode()), lines.text()
    assert proc.returncode == -sig, (proc.returncode, err[-2000:])
    assert re.search(r"^mrhooker: interrupted \(%s\): the last \d+ calls recorded were not written$" % sig.name,
                     err, re.M), err[-2000:]
    assert "not recorded" not in err and "Traceback" not in err, err[-2000:]
    assert traced.endswith("+++ killed by %s +++\n" % sig.name), traced[-200:]


def _ended(pid):
    """Is process pid gone, or a zombie (dead, not yet waited for)?"""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class _UnreadPipe:
    """A pipe for a trace's lines that nobody reads until read(): mrhooker blocks writing to it, and the ring
    fills behind it (a small one: --buffer-size 4)."""

    def __init__(self):
        self.read_end, self.write_end = os.pipe()
        os.set_inheritable(self.write_end, True)
        self._chunks = []
        self._reader = threading.Thread(target=self._read_all, daemon=True)

    def trace_argv(self, busy):
        return [PY, "-m", "mrhooker", "trace", "-e", "write", "--buffer-size", "4", "-o",
                "/dev/fd/%d" % self.write_end, busy, "120"]

    def started(self):
        """mrhooker has the write end: this process's copy goes, so that the pipe ends when mrhooker's does."""
        os.close(self.write_end)

    def read(self):
        self._reader.start()

    def _read_all(self):
        while True:
            chunk = os.read(self.read_end, 1 << 16)
            if not chunk:
                return
            self._chunks.append(chunk)

    def text(self):
        return b"".join(self._chunks).decode()

    def close(self):
        """Once mrhooker is gone (the pipe's end): what was read stays for text()."""
        if self._reader.is_alive():
            self._reader.join(RUN_TIMEOUT)
        os.close(self.read_end)


WRITES_C = r'''
#include <unistd.h>
int main(void)
{
    for (int i = 0; i < 2000; i++) (void)!write(1, "line\n", 5);
    return 3;
}
'''


@pytest.mark.parametrize("options", [["-o", "/dev/full"], ["-q", "--json", "/dev/full"],
                                     ["-q", "--timeline", "/dev/full"], ["-c", "-o", "/dev/full"],
                                     ["-ff", "-o", "/dev/full/x"]])
def test_a_trace_that_cannot_be_written_keeps_the_programs_status(mrhooker, cprog, options):
    """ENOSPC (or any error) writing the trace: one mrhooker: line naming the file, the program runs on and its
    exit status is mrhooker's; never `internal error`."""
    r = trace(mrhooker, "-e", "write", *options, cprog(WRITES_C), stdout=subprocess.DEVNULL)
    assert r.returncode == 3, r
    (line,) = lines_starting(r.err, "mrhooker:")
    reason = "Not a directory" if options[0] == "-ff" else "No space left on device"
    assert line.startswith("mrhooker: cannot write /dev/full") and reason in line, r.err
    assert "internal error" not in r.err and "Traceback" not in r.err, r


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_while_tracing(mrhooker, cprog, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("this machine does not let root mount a tmpfs")
    try:
        out = disk / "trace.txt"
        r = trace(mrhooker, "-e", "write", "-o", out, cprog(WRITES_C), stdout=subprocess.DEVNULL)
        assert r.returncode == 3, r
        (line,) = lines_starting(r.err, "mrhooker:")
        m = re.match(r"mrhooker: cannot write %s: No space left on device \((\d+) lines of the trace are missing "
                     r"there, from line (\d+) on; the program ran on\)$" % re.escape(str(out)), line)
        assert m, line
        kept = out.read_text().splitlines()
        assert int(m.group(2)) - 1 <= len(kept) < 2001 and int(m.group(1)) >= 2001 - len(kept), (line, len(kept))
        assert kept[0] == 'write(1, "line\\n", 5) = 5', kept[0]
    finally:
        subprocess.run(["umount", str(disk)])


def test_a_trace_cut_by_a_full_file_ends_with_whole_lines(mrhooker, base_env, cprog, tmp_path):
    """A write of the trace that the disk (here a file size limit: no mount needed) takes only part of: the file
    ended in half a line, and --json in half a record that no JSON reader could parse. It ends with the last
    whole line, and the lines the message counts as written are those in the file."""
    prog = cprog(r"""
        #include <unistd.h>
        int main(void)
        {
            for (int i = 0; i < 100000; i++) (void)!write(1, "line\n", 5);
            return 3;
        }
    """)
    lines, records = tmp_path / "trace.txt", tmp_path / "trace.json"
    args = ["trace", "--buffer-size", "1", "-e", "write", "-o", lines, "--json", records, prog]
    assert trace(mrhooker, *args[1:], stdout=subprocess.DEVNULL).returncode == 3   # built without the limit

    def limit():   # 1.5 MB: more than the 1 MB trace buffer's file, less than either output
        import resource
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (3 << 19, 3 << 19))

    r = subprocess.run([PY, "-m", "mrhooker"] + [str(a) for a in args], env=base_env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=RUN_TIMEOUT, preexec_fn=limit)
    err = r.stderr.decode()
    assert r.returncode == 3, err
    for path in (lines, records):
        m = re.search(r"^mrhooker: cannot write %s: File too large \((\d+) lines of the trace are missing there, "
                      r"from line (\d+) on; the program ran on\)$" % re.escape(str(path)), err, re.M)
        assert m, err
        data = path.read_bytes()
        assert data.endswith(b"\n") and data.count(b"\n") == int(m.group(2)) - 1, (path, data[-80:])
    assert all(json.loads(line)["name"] == "write" for line in records.read_bytes().splitlines())


def test_a_closed_pipe_ends_the_program_as_strace_does(base_env, cprog):
    """`mrhooker trace ... | head -2`: as strace (6.1) does, mrhooker kills the program (the tracees die with
    strace) and dies by SIGPIPE (the shell sees 141); nothing is left running once the pipeline returns."""
    busy = cprog(BUSY_C)
    tracers = [[PY, "-m", "mrhooker", "trace", "-e", "write"]]
    if shutil.which("strace"):
        tracers.append(["strace", "-f", "-e", "trace=write"])
    for tracer in tracers:
        line = "%s %s 60 2>&1 >/dev/null | head -2; echo \"status ${PIPESTATUS[0]}\"" % (" ".join(tracer), busy)
        start = time.monotonic()
        r = subprocess.run(["bash", "-c", line], env=base_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=RUN_TIMEOUT)
        lines = r.stdout.decode().splitlines()
        assert len(lines) == 3 and all(l.startswith("write(") for l in lines[:2]), (tracer, r)
        assert lines[2] == "status 141", (tracer, r)
        if tracer[0] == PY:   # mrhooker has reaped the program when it dies
            assert not live_processes(busy)
        else:                 # the kernel kills strace's tracees as strace exits: a moment later
            wait_for(lambda: not live_processes(busy), 5, "strace's tracee to die")
        assert time.monotonic() - start < 50, tracer


def test_sigkill_of_mrhooker_leaves_no_program_and_no_trace_file(base_env, cprog, tmp_path):
    """kill -9 of mrhooker (a test's timeout, the OOM killer): the program and its children die with it, as a
    tracee dies with strace, and the trace file in /dev/shm goes at once, not at the next trace."""
    busy, out = cprog(BUSY_C), tmp_path / "trace.txt"
    proc = subprocess.Popen([PY, "-m", "mrhooker", "trace", "-e", "write", "-o", str(out), "sh", "-c",
                             "%s 120 & %s 120; wait" % (busy, busy)], env=base_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(lambda: len(live_processes(busy)) == 2 and out.exists() and out.stat().st_size > 1 << 20,
                 RUN_TIMEOUT, "both programs to run traced")
        assert trace_files_of(proc.pid)
        proc.kill()
        proc.wait()
        wait_for(lambda: not live_processes(busy) and not trace_files_of(proc.pid), 10,
                 "the programs and the trace file to go")
    finally:
        proc.kill()
        proc.wait()


def _in_a_terminal(argv, env):
    """Runs argv as a terminal's foreground job (a pty of its own): returns (pid, the pty's master)."""
    import pty
    pid, master = pty.fork()
    if pid == 0:
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    return pid, master


def _read_all(master):
    out = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:   # EIO: the terminal's last process is gone
            return out.decode(errors="replace")
        if not data:
            return out.decode(errors="replace")
        out += data


def test_ctrl_c_in_a_terminal_reaches_a_busy_traced_program_once(base_env, cprog, tmp_path):
    """In a terminal's foreground the program shares mrhooker's process group: Ctrl-C reaches both from the
    kernel (mrhooker does not pass it on: the program gets it once). A second Ctrl-C, while mrhooker writes what
    the program left in the buffer (blocked: nobody reads the lines' pipe yet), stops that."""
    busy = cprog(BUSY_C)
    lines = _UnreadPipe()
    pid, master = _in_a_terminal(lines.trace_argv(busy), base_env)
    lines.started()
    try:
        wait_for(lambda: live_processes(busy), RUN_TIMEOUT, "the program to run")
        (program,) = live_processes(busy)
        assert os.getpgid(program) == pid   # the terminal's foreground group: mrhooker's
        time.sleep(1)   # the pipe fills, then the ring
        os.write(master, b"\x03")
        wait_for(lambda: _ended(program), 10, "the program to end")   # (mrhooker, blocked writing, reaps it later)
        time.sleep(1)   # (the same signal from the same sender within launch.REPEAT_WINDOW is the same request)
        os.write(master, b"\x03")
        lines.read()
        text = _read_all(master)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
        lines.close()
    text, traced = without_progress(text.replace("\r\n", "\n")), lines.text()
    assert traced.endswith("+++ killed by SIGINT +++\n"), traced[-200:]
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT, (status, text)
    assert len(re.findall(r"writes \d+", text)) == 1, text   # one SIGINT reached the program
    assert "mrhooker: interrupted (SIGINT): the last" in text, text


def test_sigkill_of_mrhooker_in_a_terminal_kills_the_programs_tree_only(base_env, cprog, tmp_path):
    """In a terminal's foreground the program shares mrhooker's process group, and the shell's other jobs may too:
    the guardian kills the program and its descendants (not the group) and removes the trace file."""
    busy, out = cprog(BUSY_C), tmp_path / "trace.txt"
    sh = "%s 120 & %s 120; wait" % (busy, busy)
    # a shell (the terminal's session) runs mrhooker and, in the same process group, another job that must survive
    line = "%s -m mrhooker trace -e write -o %s sh -c '%s' & exec sleep 120" % (PY, out, sh)
    pid, master = _in_a_terminal(["/bin/sh", "-c", line], base_env)
    try:
        wait_for(lambda: len(live_processes(busy)) == 2 and out.exists() and out.stat().st_size > 1 << 20,
                 RUN_TIMEOUT, "both programs to run traced")
        (tracer,) = [p for p in children(pid) if "mrhooker" in open("/proc/%d/cmdline" % p).read()]
        assert os.getpgid(tracer) == os.getpgid(live_processes(busy)[0]) == pid
        assert trace_files_of(tracer)
        os.kill(tracer, signal.SIGKILL)
        wait_for(lambda: not live_processes(busy) and not trace_files_of(tracer), 10,
                 "the programs and the trace file to go")
        assert open("/proc/%d/cmdline" % pid).read().startswith("sleep"), "the shell's other job was killed"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(master)
        for p in live_processes(busy):
            os.kill(p, signal.SIGKILL)


MANY_WRITES_C = r'''
#include <fcntl.h>
#include <unistd.h>
int main(void)
{
    int fd = open("/dev/null", O_WRONLY);
    for (int i = 0; i < 100000; i++) (void)!write(fd, "x", 1);
    return 0;
}
'''


def test_a_reader_blocked_writing_the_trace_is_alive_and_no_call_is_dropped(base_env, cprog, tmp_path):
    """The trace goes to a pipe nobody reads for 4 s (a pager, a loaded machine): mrhooker blocks writing it, the
    ring fills, and the program waits for it rather than dropping calls (it once gave up after 2 s, dropping
    ~990,000 calls of a busy program)."""
    out = tmp_path / "trace.txt"
    line = "%s -m mrhooker trace --buffer-size 1 -e write %s 2>&1 | (sleep 4; cat > %s)" % (
        PY, cprog(MANY_WRITES_C), out)
    r = subprocess.run(["sh", "-c", line], env=base_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=RUN_TIMEOUT)
    assert r.returncode == 0, r
    text = without_progress(out.read_text())
    assert "mrhooker:" not in text, [l for l in text.splitlines() if l.startswith("mrhooker:")]
    assert len(call_lines(text, "write")) == 100000 and text.endswith("+++ exited with 0 +++\n")


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_each_child_ends_with_how_it_ended_whatever_minus_e_selects(mrhooker, shell):
    """strace -f -e execve ends each child's lines with `+++ exited with N +++` (or killed by); with -e execve
    mrhooker showed none: it learns a child's end from the wait that reaps it (dash's wait3, bash's waitpid),
    which -e left untraced. Those waits are now traced for the reader alone: not shown, not in -C's table. The
    child's execve line comes before its end."""
    if not shutil.which(shell):
        pytest.skip(shell + " is not installed")
    script = "ls /; (exit 3); sh -c 'kill -9 $$'; echo done"
    r = trace(mrhooker, "-f", "-C", "-e", "execve", shell, "-c", script)
    assert r.returncode == 0 and r.out.endswith("done\n"), r
    lines = r.err.splitlines()
    ends = [line for line in lines if line.startswith("[pid ") and "+++" in line]
    assert sum(" +++ exited with 0 +++" in line for line in ends) == 1, r.err      # ls
    assert sum(" +++ killed by SIGKILL +++" in line for line in ends) == 1, r.err   # sh -c 'kill -9 $$'
    ls_pid = next(line.split("]")[0] for line in lines if 'execve("/usr/bin/ls"' in line or 'execve("/bin/ls"' in line)
    assert lines.index(ls_pid + "] +++ exited with 0 +++") > next(i for i, line in enumerate(lines)
                                                                  if line.startswith(ls_pid + "] execve("))
    assert not any(re.match(r"(\[pid \d+\] )?wait", line) for line in lines), r.err
    assert sum(" +++ exited with 3 +++" in line for line in ends) == 1, r.err      # (exit 3)
    table = [line.split()[-1] for line in lines if re.match(r"\s*\d+\.\d+ ", line)]
    assert "execve" in table and not any(name.startswith("wait") for name in table), r.err
    assert lines[lines.index("+++ exited with 0 +++") + 1].startswith("% time"), r.err   # the command's, then -C's


REAPS_C = r"""
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void)
{
    pid_t a = fork();
    if (a == 0) _exit(3);
    pid_t b = fork();
    if (b == 0) { kill(getpid(), SIGTERM); pause(); }
    waitpid(a, NULL, 0);   /* the status not asked for */
    wait(NULL);
    pid_t c = fork();
    if (c == 0) _exit(2);
    siginfo_t si;
    waitid(P_PID, c, &si, WEXITED | WNOWAIT);   /* seen, not reaped: twice */
    waitid(P_PID, c, &si, WEXITED | WNOWAIT);
    int st;
    waitpid(c, &st, 0);
    return 0;
}
"""


def test_a_childs_end_is_shown_once_however_its_parent_waits(mrhooker, cprog):
    """wait(NULL) and waitpid(pid, NULL, 0) gave no exit line (the status they didn't ask for was the reader's only
    news); waitid(WNOWAIT), which leaves the child to be reaped, gave one each time. The lines still say NULL."""
    prog = cprog(REAPS_C)
    for selection in ("execve", "execve,wait,waitpid,waitid"):
        r = trace(mrhooker, "-f", "-e", selection, prog)
        assert r.returncode == 0, r
        ends = [re.sub(r"^\[pid \d+\] ", "", line) for line in r.err.splitlines() if "+++" in line]
        assert ends == ["+++ exited with 3 +++", "+++ killed by SIGTERM +++", "+++ exited with 2 +++",
                        "+++ exited with 0 +++"], (selection, r.err)
        if "wait" in selection:
            assert re.search(r"^waitpid\(\d+, NULL, 0\) = \d+$", r.err, re.M), r.err
            assert re.search(r"^wait\(NULL\) = \d+$", r.err, re.M), r.err


def test_the_kill_a_command_dies_in_comes_before_its_end(mrhooker, cprog):
    # The command's end is learnt from mrhooker's own wait: its kill's start, still held, came after it.
    prog = cprog("""
        #include <signal.h>
        #include <unistd.h>
        int main(int argc, char **argv) { kill(argc > 1 ? getpid() : 0, SIGTERM); pause(); return 0; }
    """)
    for args in ((), ("self",)):
        r = trace(mrhooker, "-e", "kill", prog, *args)
        assert r.returncode == -signal.SIGTERM, r   # mrhooker dies by it too
        assert re.findall(r"^(kill\(\d+, SIGTERM\) = \?|\+\+\+ .*)$", r.err, re.M) == [
            "kill(%s, SIGTERM) = ?" % re.search(r"kill\((\d+)", r.err).group(1), "+++ killed by SIGTERM +++"], r

def test_a_raise_whose_handler_runs_inside_it_is_shown_once_with_its_result(mrhooker, cprog):
    # raise returns after the handler: the handler's calls, made while raise's start was held, released it as a
    # call that never returned (`raise(SIGUSR1) = ?` first), and its return was shown again after them. With
    # SA_RESETHAND, the handler's own raise comes once it has returned, by the default action: the process dies
    # in the first raise.
    prog = cprog("""
        #include <signal.h>
        #include <string.h>
        #include <unistd.h>
        static int again;
        static void handler(int sig) { write(1, "in handler\\n", 11); if (again) raise(sig); }
        int main(int argc, char **argv) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = handler;
            sa.sa_flags = argc > 1 ? SA_RESETHAND : 0;
            again = argc > 1;
            sigaction(SIGUSR1, &sa, NULL);
            raise(SIGUSR1);
            raise(SIGUSR1);
            return 0;
        }
    """)
    r = trace(mrhooker, "-e", "write,raise", prog)
    assert r.returncode == 0 and r.out == "in handler\n" * 2, r
    assert r.err.splitlines()[-5:] == ['write(1, "in handler\\n", 11) = 11', "raise(SIGUSR1) = 0"] * 2 + [
        "+++ exited with 0 +++"], r
    r = trace(mrhooker, "-e", "write,raise", prog, "resethand")
    assert r.returncode == 128 + signal.SIGUSR1 and r.out == "in handler\n", r   # mrhooker: 128+N (README)
    assert r.err.splitlines()[-4:] == ['write(1, "in handler\\n", 11) = 11', "raise(SIGUSR1) = 0",
                                       "raise(SIGUSR1) = ?", "+++ killed by SIGUSR1 +++"], r


# A program that sandboxes itself before its first traced call (mode in argv[1]): a seccomp filter that kills on
# openat (the trace's file, mapped at that call, was opened under it: SIGSYS), strict mode (read, write and exit
# only; and the TSC off: the next record's rdtsc faulted, SIGSEGV), the TSC turned off alone.
SANDBOXED_C = r"""
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
int main(int argc, char **argv)
{
    if (strcmp(argv[1], "filter") == 0) {
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {sizeof f / sizeof f[0], f};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
            return 9;
        return write(1, "filtered\n", 9) == 9 ? 3 : 4;
    }
    if (strcmp(argv[1], "tsc") == 0) {
        if (prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0) != 0) return 9;
        close(open("/dev/null", O_RDONLY));
        return write(1, "no tsc\n", 7) == 7 ? 3 : 4;
    }
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT);
    write(1, "strict\n", 7);
    syscall(SYS_exit, 3);
    return 4;
}
"""


@pytest.mark.parametrize("mode", ["filter", "strict", "tsc"])
def test_a_program_that_sandboxes_itself_before_its_first_traced_call(mrhooker, cprog, mode):
    prog = cprog(SANDBOXED_C)
    bare = subprocess.run([prog, mode], stdout=subprocess.PIPE, timeout=RUN_TIMEOUT)
    assert bare.returncode == 3, bare
    for how in (["-e", "write"], ["-e", "write,open,close,prctl,syscall"], ["-q", "--inject", "read:error=EIO"],
                ["-q", "--fake-time", "2000-01-01"]):
        r = trace(mrhooker, *how, prog, mode)
        assert r.returncode == 3 and r.out == bare.stdout.decode(), (how, r)
        if mode == "filter" and how[0] == "-e":   # mapped before the filter: traced on
            assert 'write(1, "filtered\\n", 9) = 9' in r.err, r

VECTORS_C = WATCHDOG_C + r"""
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
static int p[2];
static char *buf;
static const size_t size = 1 << 20;
static void *unmapper(void *arg)
{
    (void)arg;
    usleep(200000);   /* the writev below is blocked on the full pipe by now */
    munmap(buf, size);
    char sink[65536];
    while (read(p[0], sink, sizeof sink) > 0) {}
    return NULL;
}
int main(int argc, char **argv)
{
    start_watchdog(30);
    if (!strcmp(argv[1], "self")) {   /* a readv into its own iovec array */
        int fd = open(argv[2], O_RDONLY);
        struct iovec self[2];
        char tail[8];
        self[0] = (struct iovec){self, sizeof self};
        self[1] = (struct iovec){tail, sizeof tail};
        printf("read %zd\n", readv(fd, self, 2));
    } else if (!strcmp(argv[1], "unmapped")) {   /* a writev whose buffer another thread unmaps meanwhile */
        pipe(p);
        buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        memset(buf, 'q', size);
        pthread_t t;
        pthread_create(&t, NULL, unmapper, NULL);
        struct iovec v[2] = {{"H", 1}, {buf, size}};
        printf("wrote %zd\n", writev(p[1], v, 2));
        close(p[1]);
        pthread_join(t, NULL);
    } else {   /* 1024 elements of a byte */
        struct iovec v[1024];
        for (int i = 0; i < 1024; i++) v[i] = (struct iovec){"z", 1};
        printf("wrote %zd\n", writev(open("/dev/null", O_WRONLY), v, 1024));
    }
    return 0;
}
"""


def test_vectors_are_copied_without_harm_to_the_program(mrhooker, cprog, tmp_path):
    """The data of a readv or writev is copied after the call: a readv into its own iovec array, whose pointers
    were then the file's bytes, and a writev whose buffer another thread unmapped while it was blocked each
    crashed the program (SIGSEGV); 1024 elements at -s 16384 lost the call. Everything is now read through the
    kernel (an unreadable element is its address), within a share of the ring."""
    prog = cprog(VECTORS_C, flags=["-pthread"])
    data = tmp_path / "in"
    data.write_bytes(b"0123456789abcdefghijklmnopqrstuvwxyz")
    for args, extra in ((["self", str(data)], []), (["unmapped"], []), (["unmapped"], ["-s", "1000"]),
                        (["many"], ["-s", "16384"]), (["many"], ["-s", "16384", "--buffer-size", "1"])):
        bare = subprocess.run([prog] + args, stdout=subprocess.PIPE, timeout=RUN_TIMEOUT)
        r = trace(mrhooker, "-e", "readv,writev", *extra, prog, *args)
        assert (r.returncode, r.out) == (bare.returncode, bare.stdout.decode()) == (0, r.out), (args, r)
        line = next(line for line in r.err.splitlines() if line.startswith(("readv(", "writev(")))
        if args[0] == "unmapped":
            assert re.match(r'writev\(\d+, \[\{iov_base="H", iov_len=1\}, \{iov_base=0x[0-9a-f]+, iov_len=1048576\}\], 2\) '
                            r'= 65536$', line), line
        elif args[0] == "many":
            assert line.count('{iov_base="z", iov_len=1}') == 1024 and line.endswith("], 1024) = 1024"), line[-200:]
        assert "not recorded" not in r.err and "lost" not in r.err, r.err[-500:]


# Calls from signal handlers: a SIGUSR1 handler writes "in handler"; a SIGCHLD handler reaps two children (exit 3
# and 4) with waitpid; then, with `storm`, a 200 µs interval timer whose handler writes "t" to /dev/null while main
# writes "m" there 20000 times (the handler interrupting the traced writes anywhere, their records too); the
# program prints how many times the timer's handler wrote.
HANDLERS_C = WATCHDOG_C + r"""
#include <fcntl.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
static volatile sig_atomic_t reaped, ticks;
static int null_fd;
static void on_usr1(int s) { (void)s; write(1, "in handler\n", 11); }
static void on_chld(int s) { int st; (void)s; while (waitpid(-1, &st, WNOHANG) > 0) reaped++; }
static void on_alrm(int s) { (void)s; if (write(null_fd, "t", 1) == 1) ticks++; }
int main(int argc, char **argv)
{
    start_watchdog(60);
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    signal(SIGCHLD, on_chld);
    for (int i = 0; i < 2; i++) if (fork() == 0) _exit(3 + i);
    while (reaped < 2) usleep(1000);
    signal(SIGCHLD, SIG_DFL);
    if (argc > 1 && !strcmp(argv[1], "storm")) {
        null_fd = open("/dev/null", O_WRONLY);
        signal(SIGALRM, on_alrm);
        struct itimerval every = {{0, 200}, {0, 200}}, off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &every, NULL);
        for (int i = 0; i < 20000; i++) if (write(null_fd, "m", 1) != 1) return 2;
        setitimer(ITIMER_REAL, &off, NULL);
        char line[32];
        int n = snprintf(line, sizeof line, "ticks %d\n", (int)ticks);
        write(1, line, n);
    }
    return 0;
}
"""


def test_calls_in_signal_handlers_are_traced(mrhooker, cprog):
    """Calls from the program's signal handlers were never recorded (the handler's wrapper turns hooks off): a
    write in a handler had no line, and children reaped in a SIGCHLD handler no `+++ exited` line. strace and
    ltrace show them; so does mrhooker now (hooks still never run in handlers)."""
    prog = cprog(HANDLERS_C, flags=["-pthread"])
    r = trace(mrhooker, "-f", "-e", "write,waitpid", prog)
    assert r.returncode == 0 and r.out == "in handler\n", r
    assert 'write(1, "in handler\\n", 11) = 11' in r.err.splitlines(), r.err
    ends = sorted(re.sub(r"^\[pid \d+\] ", "", line) for line in r.err.splitlines() if "+++" in line)
    assert ends == ["+++ exited with 0 +++", "+++ exited with 3 +++", "+++ exited with 4 +++"], r.err
    assert re.search(r"^waitpid\(-1, \[\{WIFEXITED\(s\) && WEXITSTATUS\(s\) == [34]\}\], WNOHANG\) = \d+$", r.err,
                     re.M), r.err


def test_signal_and_sigaction_are_traced_as_strace_spells_them(mrhooker, cprog):
    """signal() and sigaction() were the runtime's own and could not be traced; now they can, and the handlers
    they install are still wrapped (the handler's write has its line, the children their ends)."""
    prog = cprog(HANDLERS_C, flags=["-pthread"])
    r = trace(mrhooker, "-f", "-e", "%signal,write", prog)
    assert r.returncode == 0 and r.out == "in handler\n", r
    lines = [re.sub(r"^\[pid \d+\] ", "", line) for line in r.err.splitlines()]
    assert [re.sub("0x[0-9a-f]+", "0x...", line) for line in lines if line.startswith("signal(")] == [
        "signal(SIGUSR1, 0x...) = SIG_DFL", "signal(SIGCHLD, 0x...) = SIG_DFL", "signal(SIGCHLD, SIG_DFL) = 0x..."]
    assert 'write(1, "in handler\\n", 11) = 11' in lines and lines.count("+++ exited with 0 +++") == 1, r.err
    sa = cprog(SIGACTIONS_C)
    r = trace(mrhooker, "-e", "sigaction", sa)
    assert r.returncode == 0, r
    assert [re.sub("0x[0-9a-f]{6,}", "0x...", line) for line in r.err.splitlines()] == [
        "sigaction(SIGUSR1, {sa_handler=0x..., sa_mask=[INT], sa_flags=SA_RESTART}, "
        "{sa_handler=SIG_DFL, sa_mask=[], sa_flags=0}) = 0",
        "sigaction(SIGUSR1, NULL, {sa_handler=0x..., sa_mask=[INT], sa_flags=SA_RESTORER|SA_RESTART, "
        "sa_restorer=0x...}) = 0",
        "sigaction(SIGINT, {sa_handler=SIG_IGN, sa_mask=~[RTMIN RT_1], sa_flags=SA_ONSTACK|SA_NODEFER|0x400}, "
        "NULL) = 0",
        "sigaction(SIGKILL, {sa_handler=SIG_IGN, sa_mask=[], sa_flags=0x400 /* SA_??? */}, NULL) = "
        "-1 EINVAL (Invalid argument)",
        "+++ exited with 0 +++"], r.err


SIGACTIONS_C = r"""
#include <signal.h>
#include <stddef.h>
static void h(int s) { (void)s; }
int main(void)
{
    struct sigaction sa = {0}, old;
    sa.sa_handler = h;
    sigaddset(&sa.sa_mask, SIGINT);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, &old);
    sigaction(SIGUSR1, NULL, &old);
    sa.sa_handler = SIG_IGN;
    sigfillset(&sa.sa_mask);
    sa.sa_flags = SA_ONSTACK | SA_NODEFER | 0x400;
    sigaction(SIGINT, &sa, NULL);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0x400;
    sigaction(SIGKILL, &sa, NULL);
    return 0;
}
"""


def test_a_handler_interrupting_traced_calls_loses_and_harms_nothing(mrhooker, cprog):
    """A timer's handler writing while main's traced writes run (their records half-written when it comes): every
    call of both has its line, each whole, and the program's output is its own."""
    prog = cprog(HANDLERS_C, flags=["-pthread"])
    bare = subprocess.run([prog, "storm"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
    assert bare.returncode == 0 and bare.stdout.startswith(b"in handler\nticks "), bare
    r = trace(mrhooker, "-e", "write", prog, "storm")
    assert r.returncode == 0, r
    ticks = int(re.search(r"^ticks (\d+)$", r.out, re.M).group(1))
    lines = r.err.splitlines()
    assert sum(line == 'write(3, "m", 1) = 1' for line in lines) == 20000, r.err[-2000:]
    assert sum(line == 'write(3, "t", 1) = 1' for line in lines) == ticks > 0, (ticks, r.err[-2000:])
    odd = [line for line in lines if line.startswith("write(") and not re.match(
        r'write\((3, "[mt]", 1\) = 1|1, "(in handler|ticks \d+)\\n", \d+\) = \d+)$', line)]
    assert not odd and "dropped" not in r.err, odd[:5]


# A 100 µs interval timer whose handler (`handler`: C defining on_alrm) siglongjmps back into main's loop of
# 200-byte writes to /dev/null (so it leaves the traced writes, their records too, anywhere), until it has counted
# `jumps` jumps; then 1000 writes of 7 bytes, untroubled; "wrote W jumps J" (W: the 200-byte writes that returned
# to the loop).
def jumper_c(handler, jumps):
    return WATCHDOG_C + r"""
#include <fcntl.h>
#include <setjmp.h>
#include <string.h>
#include <sys/time.h>
static sigjmp_buf back;
static volatile sig_atomic_t jumps;
""" + handler + r"""
int main(void)
{
    start_watchdog(60);
    int fd = open("/dev/null", O_WRONLY);
    char buf[200];
    memset(buf, 'x', sizeof buf);
    static volatile long wrote;
    signal(SIGALRM, on_alrm);
    struct itimerval every = {{0, 100}, {0, 100}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &every, NULL);
    sigsetjmp(back, 1);
    while (jumps < %d) if (write(fd, buf, 200) == 200) wrote++;
    setitimer(ITIMER_REAL, &off, NULL);
    for (int i = 0; i < 1000; i++) if (write(fd, buf, 7) != 7) return 2;
    printf("wrote %%ld jumps %%d\n", wrote, (int)jumps);
    return 0;
}
""" % jumps


JUMPER_C = jumper_c("static void on_alrm(int s) { (void)s; jumps++; siglongjmp(back, 1); }", 2000)


def test_a_program_that_longjmps_out_of_its_handler_stays_traced(mrhooker, cprog):
    """A handler that interrupted a record and left by siglongjmp left the thread's depth raised: nothing after
    was traced (the 1000 writes after the timer: none of their lines), and the abandoned reservation stalled the
    reader 2 s, then counted as a dead process's (1 jump in 100 came right after the reservation's
    compare-and-swap). Now the trace goes on, and each abandoned record is filled in and counted."""
    prog = cprog(JUMPER_C, flags=["-pthread"])
    r = trace(mrhooker, "-e", "write", prog)
    assert r.returncode == 0, r
    wrote, jumps = map(int, re.fullmatch(r"wrote (\d+) jumps (\d+)\n", r.out).groups())
    lines = r.err.splitlines()
    assert sum(line == 'write(3, "xxxxxxx", 7) = 7' for line in lines) == 1000, r.err[-2000:]
    long_ones = sum(re.fullmatch(r'write\(3, "x{32}"\.\.\., 200\) = 200', line) is not None for line in lines)
    assert wrote <= long_ones <= wrote + jumps, (wrote, long_ones, jumps)   # a jump may follow a recorded write
    # each abandoned record filled in and counted (the reader never waits for one, nor gives one up as lost)
    said = [line for line in lines if line.startswith("mrhooker:")]
    abandoned = re.match(r"mrhooker: (\d+) calls were not recorded: a signal handler interrupted their records and "
                         r"the program left it by longjmp$", said[0]) if len(said) == 1 else None
    assert abandoned and long_ones + int(abandoned[1]) <= wrote + jumps, (said, wrote, long_ones, jumps)
    assert all(re.match(r'write\(3, "x+"(\.\.\.)?, (200|7)\) = \1?', line) or line.startswith("mrhooker:") or
               line == "+++ exited with 0 +++" for line in lines), [line for line in lines if "x" not in line][:5]


# A 100 µs timer whose handler raises SIGUSR1 after a sigsetjmp of its own; SIGUSR1's handler siglongjmps back
# into the timer's, which then writes "a" and returns to what it interrupted: main's 200000 writes of "m".
JUMP_BACK_C = WATCHDOG_C + r"""
#include <fcntl.h>
#include <setjmp.h>
#include <sys/time.h>
static sigjmp_buf in_alrm;
static volatile sig_atomic_t runs;
static int fd;
static void on_usr1(int s) { (void)s; siglongjmp(in_alrm, 1); }
static void on_alrm(int s) { (void)s; runs++; if (!sigsetjmp(in_alrm, 1)) raise(SIGUSR1); write(fd, "a", 1); }
int main(void)
{
    start_watchdog(60);
    fd = open("/dev/null", O_WRONLY);
    signal(SIGUSR1, on_usr1);
    signal(SIGALRM, on_alrm);
    struct itimerval every = {{0, 100}, {0, 100}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &every, NULL);
    for (int i = 0; i < 200000; i++) if (write(fd, "m", 1) != 1) return 2;
    setitimer(ITIMER_REAL, &off, NULL);
    printf("runs %d\n", (int)runs);
    return 0;
}
"""


def test_a_jump_back_into_an_outer_handler_abandons_nothing(mrhooker, cprog, tmp_path):
    """A handler's longjmp into the handler it interrupted is no jump out of the runtime's record that handler
    interrupted: taking it for one, the record was filled in as abandoned while it went on (140 of main's 200000
    writes lost their lines, said "not recorded")."""
    out = tmp_path / "lines"
    r = trace(mrhooker, "-e", "write", "-o", out, cprog(JUMP_BACK_C, flags=["-pthread"]))
    runs = int(re.fullmatch(r"runs (\d+)\n", r.out).group(1))
    lines = out.read_text().splitlines()
    assert r.returncode == 0 and r.err == "" and runs > 0, r
    assert sum(line == 'write(3, "m", 1) = 1' for line in lines) == 200000, lines[-3:]
    # the timer's own write is traced when it interrupted main's code, not a record of main's (as before)
    assert 0 < sum(line == 'write(3, "a", 1) = 1' for line in lines) <= runs
    assert len(lines) == 200000 + sum(line == 'write(3, "a", 1) = 1' for line in lines) + 1, lines[-3:]


# The timer's handler raises its own signal three times over before each siglongjmp out: held while it runs, each
# comes inside siglongjmp, as the mask goes back and before the stack does (as a loaded machine's overdue timer
# does), so four handlers are nested when the last one jumps out of them all (counted as one jump).
CHAIN_C = jumper_c(r"""
static volatile sig_atomic_t nested;
static void on_alrm(int s)
{
    if (++nested < 4) raise(s);
    else nested = 0, jumps++;
    siglongjmp(back, 1);
}
""", 500)


def test_a_jump_out_of_four_nested_handlers_stays_traced(mrhooker, cprog, tmp_path):
    """Handlers nested by signals that came inside siglongjmp (a loaded machine's overdue timer: a CI run traced
    none of the 1000 writes after the timer, and lost a record): past two, the outermost's depth was not kept, and
    a jump out of them all left the thread untraced for good. Now every write after the timer has its line."""
    out = tmp_path / "lines"
    r = trace(mrhooker, "-e", "write", "-o", out, cprog(CHAIN_C, flags=["-pthread"]))
    assert r.returncode == 0 and re.fullmatch(r"wrote \d+ jumps 500\n", r.out), r
    lines = out.read_text().splitlines()
    assert sum(line == 'write(3, "xxxxxxx", 7) = 7' for line in lines) == 1000, lines[-3:]
    assert "were lost" not in r.err and r.err.count("\n") <= 1, r.err


# A 100 µs timer from before the first traced call (whose set-up, mapping the trace, takes ~2 ms): its handler
# writes "H<n>" to stderr; main spins 20 ms, then says how many times the handler ran.
FIRST_CALL_C = WATCHDOG_C + r"""
#include <string.h>
#include <sys/time.h>
#include <time.h>
static volatile sig_atomic_t n;
static void on_alrm(int s) { char b[16]; int k = snprintf(b, sizeof b, "H%d\n", ++n); (void)s; write(2, b, k); }
int main(void)
{
    start_watchdog(60);
    signal(SIGALRM, on_alrm);
    struct itimerval every = {{0, 100}, {0, 100}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &every, NULL);
    write(1, "main\n", 5);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + t.tv_nsec - t0.tv_nsec < 20000000L);
    setitimer(ITIMER_REAL, &off, NULL);
    printf("handler ran %d times\n", (int)n);
    return 0;
}
"""


def test_handlers_during_the_first_calls_set_up_are_traced(mrhooker, cprog, tmp_path):
    """A handler that came while the process's first traced call mapped the trace wrote unrecorded (its runtime
    was busy); the set-up now runs with the program's signals held, and the handler right after it."""
    out = tmp_path / "lines"
    r = trace(mrhooker, "-e", "write", "-o", out, cprog(FIRST_CALL_C, flags=["-pthread"]))
    ran = int(re.fullmatch(r"main\nhandler ran (\d+) times\n", r.out).group(1))
    lines = out.read_text().splitlines()
    assert r.returncode == 0 and ran > 0 and r.err.count("\n") == ran, r
    assert [line for line in lines if line.startswith("write(2,")] == [
        'write(2, "H%d\\n", %d) = %d' % (i, len(str(i)) + 2, len(str(i)) + 2) for i in range(1, ran + 1)], lines[:5]


def test_handlers_wait_for_room_as_their_program_does(base_env, cprog):
    """A full ring (a slow reader: its stderr read 3 s late) dropped almost every handler's call (2,287 lines of
    65,209 calls) and blamed a dead reader: a handler interrupting a record waiting for room counted as nested in
    an uncommitted one. Now it waits too, as the program's calls do (only a record not committed yet makes it
    drop)."""
    prog = cprog(HANDLERS_C, flags=["-pthread"])
    proc = subprocess.Popen([sys.executable, "-m", "mrhooker", "trace", "--buffer-size", "1", "-e", "write", prog,
                             "storm"], env=base_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(3)   # the pipe (64 KB) fills, then the ring (1 MB): every writer waits
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    ticks = int(re.search(rb"^ticks (\d+)$", out, re.M).group(1))
    lines = err.decode().splitlines()
    assert sum(line == 'write(3, "m", 1) = 1' for line in lines) == 20000, err[-2000:]
    assert sum(line == 'write(3, "t", 1) = 1' for line in lines) == ticks > 0, (ticks, err[-2000:])
    assert b"not recorded" not in err, err[-2000:]


def test_signal_refuses_sig_err_as_glibc_does(mrhooker, cprog):
    """signal(sig, SIG_ERR) is EINVAL in glibc; the runtime's signal() installed -1 as the handler and said SIG_DFL
    (a later signal() then returned SIG_ERR, a failure to the program), with or without a trace of it."""
    prog = cprog(r"""
#include <errno.h>
#include <signal.h>
#include <stdio.h>
int main(void)
{
    errno = 0;
    int refused = signal(SIGUSR1, SIG_ERR) == SIG_ERR && errno == EINVAL;
    printf("%d %d\n", refused, signal(SIGUSR1, SIG_DFL) == SIG_DFL);
    return 0;
}
""")
    bare = subprocess.run([prog], stdout=subprocess.PIPE, timeout=RUN_TIMEOUT)
    assert bare.stdout == b"1 1\n", bare
    r = trace(mrhooker, "-e", "signal", prog)
    assert r.returncode == 0 and r.out == "1 1\n", r
    assert call_lines(r.err, "signal") == ["signal(SIGUSR1, SIG_ERR) = SIG_ERR EINVAL (Invalid argument)",
                                           "signal(SIGUSR1, SIG_DFL) = SIG_DFL"], r.err
    r = trace(mrhooker, "-e", "write", prog)
    assert r.returncode == 0 and r.out == "1 1\n", r


def test_a_struct_passed_in_and_back_in_the_same_memory_is_shown_as_passed(mrhooker, cprog):
    """sigaction(sig, &sa, &sa), sigprocmask(how, &s, &s), setitimer(which, &it, &it): the memory passed in is also
    the one the call fills, and was read after the call: the action, set or timer passed were shown as the old
    ones (strace shows them as passed)."""
    prog = cprog(r"""
#include <signal.h>
#include <sys/time.h>
int main(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = SIG_IGN;
    sigaction(SIGUSR2, &sa, &sa);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    sigprocmask(SIG_BLOCK, &s, &s);
    struct itimerval it = {{0, 0}, {5, 0}};
    setitimer(ITIMER_REAL, &it, &it);
    it.it_value.tv_sec = 0;
    setitimer(ITIMER_REAL, &it, &it);
    return 0;
}
""")
    r = trace(mrhooker, "-e", "sigaction,sigprocmask,setitimer", prog)
    assert r.returncode == 0, r
    assert [re.sub(r"tv_usec=\d{6}", "tv_usec=N", line) for line in r.err.splitlines()] == [
        "sigaction(SIGUSR2, {sa_handler=SIG_IGN, sa_mask=[], sa_flags=0}, {sa_handler=SIG_DFL, sa_mask=[], "
        "sa_flags=0}) = 0",
        "sigprocmask(SIG_BLOCK, [USR1], []) = 0",
        "setitimer(ITIMER_REAL, {it_interval={tv_sec=0, tv_usec=0}, it_value={tv_sec=5, tv_usec=0}}, "
        "{it_interval={tv_sec=0, tv_usec=0}, it_value={tv_sec=0, tv_usec=0}}) = 0",
        "setitimer(ITIMER_REAL, {it_interval={tv_sec=0, tv_usec=0}, it_value={tv_sec=0, tv_usec=0}}, "
        "{it_interval={tv_sec=0, tv_usec=0}, it_value={tv_sec=4, tv_usec=N}}) = 0",
        "+++ exited with 0 +++"], r.err


def test_prctl_set_name_is_shown_as_the_kernel_reads_it(mrhooker, cprog):
    """PR_SET_NAME's name was read as a string to -s (32 bytes): more than the kernel reads (15, the thread name's
    length less its NUL), shown as if it had been taken, and read past the call's bytes."""
    prog = cprog(r"""
#include <stdio.h>
#include <sys/prctl.h>
int main(void)
{
    char name[16] = "";
    prctl(PR_SET_NAME, "a-thread-name-longer-than-fifteen");
    prctl(PR_GET_NAME, name);
    prctl(PR_SET_NAME, "short");
    puts(name);
    return 0;
}
""")
    r = trace(mrhooker, "-e", "prctl", prog)
    assert r.returncode == 0 and r.out == "a-thread-name-l\n", r
    assert call_lines(r.err, "prctl") == ['prctl(PR_SET_NAME, "a-thread-name-l") = 0',
                                          'prctl(PR_GET_NAME, "a-thread-name-l") = 0',
                                          'prctl(PR_SET_NAME, "short") = 0'], r.err
