"""Pure-Python hooks: @hook("C prototype") in a .py script, on real programs."""
import os
import socket
import re
import stat
import sys
import subprocess

import pytest

from helpers import lines_starting, scaled

UNLINK_HOOK = '''\
import errno
from mrhooker import hook, set_errno

@hook("int unlinkat(int dirfd, const char *pathname, int flags)")
def unlinkat(dirfd, path, flags):
    print("unlinkat", path)
    if path.endswith(b".keep"):
        set_errno(errno.EACCES)
        return -1
    return unlinkat.original(dirfd, path, flags)
'''


def test_unlink_hook_refuses_with_errno(mrhooker, script, tmp_path):
    hooks = script("guard.py", UNLINK_HOOK)
    keep, drop = tmp_path / "a.keep", tmp_path / "b.tmp"
    keep.write_text("x")
    drop.write_text("y")
    r = mrhooker(hooks, "rm", keep, drop)
    assert r.returncode == 1, r
    assert "cannot remove '%s': Permission denied" % keep in r.err   # rm saw errno EACCES
    assert keep.exists() and not drop.exists()
    assert "unlinkat b'%s'" % drop in r.err


def test_send_by_name_reads_pointer(mrhooker, script, http_server):
    hooks = script("sends.py", '''\
        from mrhooker import hook

        @hook("send")
        def send(fd, buf, n, flags):
            print("sent", buf.read(n).split(b"\\r\\n")[0])
            return send.original(fd, buf, n, flags)
    ''')
    r = mrhooker(hooks, "curl", "-s", http_server + "/index.html")
    assert r.returncode == 0, r
    assert r.out == "<html>hello from the test server</html>\n"
    assert "sent b'GET /index.html HTTP/1.1'" in r.err


def test_pointer_write_changes_what_the_target_reads(mrhooker, script, tmp_path):
    data = tmp_path / "data.txt"
    data.write_bytes(b"hello world\n" * 100)
    hooks = script("upper.py", '''\
        from mrhooker import hook

        @hook("ssize_t read(int fd, void *buf, size_t count)")
        def read(fd, buf, count):
            n = read.original(fd, buf, count)
            if n > 0:
                buf.write(buf.read(n).upper())
            return n
    ''')
    r = mrhooker(hooks, "cat", data)
    assert r.returncode == 0, r
    assert r.stdout == b"HELLO WORLD\n" * 100


def test_variadic_open_forwards_mode(mrhooker, script, cprog, tmp_path):
    prog = cprog('''
        #include <fcntl.h>
        #include <stdio.h>
        #include <unistd.h>
        int main(int argc, char **argv) {
            int fd = open(argv[1], O_CREAT | O_WRONLY | O_TRUNC, 0640);
            if (fd < 0) { perror("open"); return 1; }
            write(fd, "x", 1);
            close(fd);
            return 0;
        }
    ''')
    hooks = script("opens.py", '''\
        from mrhooker import hook

        @hook("open")
        def open(path, flags, mode):
            print("open", path, oct(mode))
            return open.original(path, flags, mode)
    ''')
    target = tmp_path / "made.txt"
    os.umask(0o022)
    r = mrhooker(hooks, prog, target)
    assert r.returncode == 0, r
    assert "open b'%s' 0o640" % target in r.err
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


def test_strings_floats_and_null_results(mrhooker, script, cprog):
    prog = cprog('''
        #include <math.h>
        #include <stdio.h>
        #include <stdlib.h>
        int main(void) {
            const char *home = getenv("HOME");
            const char *gone = getenv("MRH_TEST_GONE");
            printf("home=%s gone=%s cbrt=%.3f\\n", home ? home : "(null)", gone ? gone : "(null)", cbrt(27.0));
            return 0;
        }
    ''', flags=["-lm", "-fno-builtin"])
    hooks = script("values.py", '''\
        from mrhooker import hook

        @hook("getenv")
        def getenv(name):
            if name == b"HOME":
                return b"/fake/home"
            if name == b"MRH_TEST_GONE":
                return None
            return getenv.original(name)

        @hook("double cbrt(double x)")
        def cbrt(x):
            return cbrt.original(x) + 0.5
    ''')
    r = mrhooker(hooks, prog, env={"MRH_TEST_GONE": "present"})
    assert r.returncode == 0, r
    assert r.out == "home=/fake/home gone=(null) cbrt=3.500\n"



def test_a_string_argument_that_ends_at_an_unmapped_page_or_is_no_address(mrhooker, script, cprog):
    # A const char * became bytes by reading it to its NUL before the call: strnlen's 8 bytes with no NUL before
    # an unmapped page, and open's path (char *)1 (a bare open fails with EFAULT), killed the program (SIGSEGV).
    prog = cprog('''
        #include <errno.h>
        #include <fcntl.h>
        #include <stdio.h>
        #include <string.h>
        #include <sys/mman.h>
        #include <unistd.h>
        int main(void) {
            long pg = sysconf(_SC_PAGESIZE);
            char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED || mprotect(m + pg, pg, PROT_NONE)) return 3;
            memcpy(m + pg - 8, "ABCDEFGH", 8);
            printf("%zu %d", strnlen(m + pg - 8, 8), strncmp(m + pg - 8, "ABCDEFGHZ", 8));
            int fd = open((const char *)1, O_RDONLY);
            printf(" %d %d\\n", fd, errno == EFAULT);
            return 0;
        }
    ''', flags=["-fno-builtin"])
    hooks = script("strings.py", '''\
        from mrhooker import hook

        @hook("strnlen")
        def strnlen(s, n):
            print("strnlen", s, n)
            return strnlen.original(s, n)

        @hook("strncmp")
        def strncmp(a, b, n):
            return strncmp.original(a, b, n)

        @hook("open")
        def open(path, flags, mode):
            print("open", path)
            return open.original(path, flags, mode)
    ''')
    r = mrhooker(hooks, prog)
    assert r.returncode == 0 and r.out == "8 0 -1 1\n", r
    # the bytes that can be read; no address at all: a Pointer, which goes back to the call as it came
    assert "strnlen b'ABCDEFGH' 8" in r.err and "open Pointer(0x1)" in r.err, r


FAILING_HOOKS = '''\
from mrhooker import hook

@hook("int unlinkat(int dirfd, const char *pathname, int flags)")
def unlinkat(dirfd, path, flags):
    if path.endswith(b".raise-before"):
        raise RuntimeError("broken before the call")
    if path.endswith(b".raise-after"):
        unlinkat.original(dirfd, path, flags)
        raise RuntimeError("broken after the call")
    if path.endswith(b".badtype"):
        return "not an int"
    return unlinkat.original(dirfd, path, flags)
'''


def test_failing_hook_fails_open(mrhooker, script, tmp_path):
    hooks = script("failing.py", FAILING_HOOKS)
    files = [tmp_path / ("f" + ext) for ext in (".raise-before", ".raise-after", ".badtype")]
    for f in files:
        f.write_text("x")
    r = mrhooker(hooks, "rm", "-v", *files)
    # Every file is removed as if unhooked; the one whose hook ran the original first is not removed twice
    # (a second unlinkat would fail with ENOENT and rm would exit 1).
    assert r.returncode == 0, r
    assert not any(f.exists() for f in files)
    assert r.err.count("mrhooker: hook unlinkat") == 3, r
    assert "RuntimeError: broken before the call" in r.err
    assert "RuntimeError: broken after the call" in r.err
    assert "hook unlinkat returned str; it must return an int" in r.err
    assert "Traceback" in r.err and "failing.py" in r.err   # the traceback points into the script
    assert r.out.count("removed") == 3


def test_editing_bodies_never_rebuilds(mrhooker, script):
    path = script("edits.py", '''\
        from mrhooker import hook

        @hook("int getpid(void)")
        def getpid():
            print("version 1")
            return getpid.original()
    ''')
    first = mrhooker("-v", path, sys.executable, "-c", "import os; os.getpid()")
    assert "version 1" in first.err, first
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("version 1", "version 2"))
    second = mrhooker("-v", path, sys.executable, "-c", "import os; os.getpid()")
    assert "cache hit" in second.err and "version 2" in second.err, second
    with open(path, "a") as f:
        f.write('\n@hook("int getppid(void)")\ndef getppid():\n    return getppid.original()\n')
    third = mrhooker("-v", path, "true")
    assert "cache miss" in third.err, third


def test_hooks_start_with_what_the_interpreter_has_loaded(mrhooker, script):
    # What the hooks' start imports or makes stays in every hooked process's memory: it imports no module the
    # interpreter has not loaded already (os, importlib, warnings: ~250 kB), and compiles the script without
    # making Python's AST classes (~200 kB), as the builtin compile() would.
    path = script("lean.py", """\
        import gc, sys
        from mrhooker import hook

        ast_classes = [t for t in gc.get_objects() if isinstance(t, type) and t.__module__ == "ast"]
        print("modules:", *sorted(sys.modules))
        print("ast classes:", len(ast_classes))

        @hook("int getpid(void)")
        def getpid():
            return getpid.original()
    """)
    # (mrhooker writes _inside's bytecode before the run, as an import would: unless bytecode is not written)
    r = mrhooker(path, sys.executable, "-c", "import os; os.getpid()", env={"PYTHONDONTWRITEBYTECODE": ""})
    assert r.returncode == 0, r
    modules = lines_starting(r.err, "modules:")[0].split()[1:]
    assert "mrhooker._inside" in modules and "lean" in modules, r
    assert not {"os", "importlib", "importlib.machinery", "warnings"} & set(modules), r
    assert lines_starting(r.err, "ast classes:") == ["ast classes: 0"], r


def test_a_script_in_another_encoding_runs_as_written(mrhooker, script, tmp_path):
    # The runtime compiles the script itself (see the test above): its coding cookie is honoured as Python's.
    path = tmp_path / "latin.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\n"
                     b"from mrhooker import hook\n"
                     b"@hook('int getpid(void)')\n"
                     b"def getpid():\n"
                     b"    print('caf\xe9', len('caf\xe9'))\n"
                     b"    return getpid.original()\n")
    r = mrhooker(path, sys.executable, "-c", "import os; os.getpid()")
    assert r.returncode == 0, r
    assert "caf\u00e9 4" in r.err, r


def test_a_script_in_a_directory_whose_name_is_not_utf8(mrhooker, tmp_path):
    # A path is bytes: the runtime passed the script's to the hooks' interpreter as UTF-8 text, which failed
    # (UnicodeDecodeError; the program ran unhooked, status 2). Cython can't write such a name into its C: refused
    # in one line, before it ran into it with a traceback.
    directory = os.path.join(os.fsencode(tmp_path), b"caf\xe9 \xff")
    os.mkdir(directory)
    path = os.path.join(directory, b"ppid.py")
    with open(path, "wb") as f:
        f.write(b"from mrhooker import hook\n"
                b"@hook('int getppid(void)')\n"
                b"def getppid():\n"
                b"    print('hooked from', ascii(__file__[-9:]))\n"
                b"    return 7\n")
    r = mrhooker(os.fsdecode(path), sys.executable, "-c", "import os; print(os.getppid())")
    assert r.returncode == 0, r
    assert r.out == "7\n", r
    assert "hooked from '\\udcff/ppid.py'" in r.err, r
    pyx = os.path.join(directory, b"ppid.pyx")
    with open(pyx, "wb") as f:
        f.write(b"cdef extern int getppid() nogil:\n    return 7\n")
    r = mrhooker(os.fsdecode(pyx), sys.executable, "-c", "import os; print(os.getppid())")
    assert r.returncode == 2 and r.out == "", r
    assert r.err.startswith("mrhooker: ") and len(r.err.splitlines()) == 1 and "UTF-8" in r.err, r


def test_any_callable_can_be_a_hook(mrhooker, script):
    # The runtime calls a hook through its vectorcall when it has one (a function, a partial), else as any callable.
    path = script("callables.py", """\
        import functools
        from mrhooker import hook

        class PassThrough:
            def __call__(self):
                print("instance called")
                return getpid_hook.original()

        def tagged(tag):
            print(tag, "called")
            return getppid_hook.original()

        getpid_hook = hook("int getpid(void)")(PassThrough())
        getppid_hook = hook("int getppid(void)")(functools.partial(tagged, "partial"))
    """)
    r = mrhooker(path, sys.executable, "-c", "import os; print(os.getpid(), os.getppid())")
    assert r.returncode == 0, r
    assert "instance called" in r.err and "partial called" in r.err, r
    pid, ppid = map(int, r.out.split())
    assert pid > 1 and ppid > 1 and pid != ppid, r


def test_the_launcher_writes_the_bytecode_every_hooked_process_imports(tmp_path, monkeypatch):
    # mrhooker._inside runs only inside targets, whose interpreter writes no bytecode: the launcher writes it (as
    # importing would), else every hooked process compiles it. Not when this Python writes no bytecode.
    from importlib.util import cache_from_source
    from mrhooker import launch

    assert os.path.basename(launch.INSIDE_SOURCE) == "_inside.py" and os.path.exists(launch.INSIDE_SOURCE)
    source = tmp_path / "inside.py"
    source.write_text("x = 1\n")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    launch.cache_bytecode(str(source))
    assert not os.path.exists(cache_from_source(str(source)))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    launch.cache_bytecode(str(source))
    assert os.path.exists(cache_from_source(str(source)))
    launch.cache_bytecode(str(tmp_path / "missing.py"))   # nothing to compile: nothing said
    # damaged after its header (its source's size and mtime still match): was an internal error (EOFError), and
    # every hooked process failed to import it; now written anew
    pyc = cache_from_source(str(source))
    good = open(pyc, "rb").read()
    for damaged in (good[:20], good[:16] + b"\x00" * 40):
        with open(pyc, "wb") as f:
            f.write(damaged)
        launch.cache_bytecode(str(source))
        assert open(pyc, "rb").read() == good


def test_bad_prototypes_are_one_clear_line(mrhooker, script):
    cases = {
        '@hook("int unlink(const char *path")': "bad prototype",
        '@hook("frobnicate_widgets")': "no prototype known for 'frobnicate_widgets'",
        '@hook("struct tm gettm(void)")': "by value",
        '@hook("int printf(const char *fmt, ...)")': "vprintf",
        '@hook(NAME)': "string literal",
        '@hook("int getpid(void)", fast=True)': "no option fast",
    }
    for decorator, expected in cases.items():
        path = script("bad.py", "from mrhooker import hook\nNAME = 'x'\n%s\ndef f(*a):\n    pass\n" % decorator)
        r = mrhooker(path, "true")
        assert r.returncode == 2, (decorator, r)
        assert expected in r.err, (decorator, r)
        assert r.err.startswith("mrhooker: ") and "Traceback" not in r.err, r
        assert "bad.py:3" in r.err, r


@pytest.mark.parametrize("first, second, words", [
    # an alias pair: refused under the name written on the second line, naming the first
    ("sched_yield", "pthread_yield", "h.py:5: pthread_yield is hooked twice: sched_yield on line 2 is the same "
                                     "function (the symbol sched_yield)"),
    ("pthread_yield", "int sched_yield(void)", "h.py:5: sched_yield is hooked twice: pthread_yield on line 2 is "
                                               "the same function (the symbol sched_yield)"),
    ("getpid", "int getpid(void)", "h.py:5: getpid is hooked twice (also on line 2)"),
    ("getpid", "vfork", "h.py:5: vfork cannot be hooked or traced: mrhooker's runtime wraps it itself"),
    ("getpid", "int *__errno_location(void)", "__errno_location cannot be hooked or traced"),
])
def test_a_function_hooked_twice_or_owned_by_the_runtime_is_refused_as_written(mrhooker, script, first, second,
                                                                                words):
    path = script("h.py", 'from mrhooker import hook\n@hook("%s")\ndef a(*x):\n    return a.original(*x)\n'
                          '@hook("%s")\ndef b(*x):\n    return b.original(*x)\n' % (first, second))
    r = mrhooker(path, "true")
    assert r.returncode == 2 and words in r.err and len(r.err.splitlines()) == 1, r


def test_hooks_in_threads_count_exactly(mrhooker, script, cprog, session_dir):
    for blocks in ("True", "False"):
        _threads_count_exactly(mrhooker, script, cprog, blocks)


def _threads_count_exactly(mrhooker, script, cprog, blocks):
    lib = cprog("int foo(int x) { return x + 1; }\n", flags=["-shared", "-fPIC"], suffix=".so")
    libdir = os.path.dirname(lib)
    named = os.path.join(libdir, "libfoopy.so")
    if not os.path.exists(named):
        os.symlink(lib, named)
    prog = cprog('''
        #include <pthread.h>
        #include <stdio.h>
        int foo(int);
        static void *run(void *arg) { long s = 0; for (int i = 0; i < 20000; i++) s += foo(i); return (void *)s; }
        int main(void) {
            pthread_t t[8];
            for (int i = 0; i < 8; i++) pthread_create(&t[i], 0, run, 0);
            long total = 0;
            for (int i = 0; i < 8; i++) { void *r; pthread_join(t[i], &r); total += (long)r; }
            printf("%ld\\n", total);
            return 0;
        }
    ''', flags=["-L" + libdir, "-lfoopy", "-Wl,-rpath," + libdir, "-lpthread"])
    hooks = script("threads.py", '''\
        import atexit, threading
        from mrhooker import hook

        calls = 0
        threads = set()
        lock = threading.Lock()   # Python 3.9 may switch threads inside `calls += 1`

        @hook("int foo(int x)", blocks=BLOCKS)
        def foo(x):
            global calls
            with lock:
                calls += 1
            threads.add(threading.get_ident())
            return foo.original(x)

        atexit.register(lambda: print("calls", calls, "threads", len(threads)))
    '''.replace("BLOCKS", blocks))
    r = mrhooker(hooks, prog, timeout=scaled(60))
    assert r.returncode == 0, r
    assert r.out.strip() == str(8 * sum(i + 1 for i in range(20000)))
    assert "calls 160000 threads 8" in r.err, r


def test_python_targets_run_py_hooks(mrhooker, script):
    hooks = script("pyt.py", '''\
        import os
        from mrhooker import hook

        @hook("int getppid(void)")
        def getppid():
            print("hooked getppid in", os.getpid())
            return 4242
    ''')
    for python in (sys.executable, "/usr/bin/python3"):
        if not os.path.exists(python):
            continue
        r = mrhooker(hooks, python, "-c", "import os; print(os.getppid(), os.getpid())")
        assert r.returncode == 0, (python, r)
        ppid, pid = r.out.split()
        assert ppid == "4242", (python, r)
        assert "hooked getppid in %s" % pid in r.err, (python, r)


SIGNAL_HANDLERS = r"""
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
static volatile sig_atomic_t in_handler;
static void on_usr1(int sig) { in_handler += getppid() > 0; }
static void on_usr2(int sig, siginfo_t *si, void *uc) { in_handler += getppid() > 0 && si->si_signo == sig; }
int main(void)
{
    struct sigaction sa = {0}, old;
    sa.sa_sigaction = on_usr2;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGUSR2, NULL, &old);
    void (*was)(int) = signal(SIGUSR1, on_usr1);
    void (*now)(int) = signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    raise(SIGUSR2);
    printf("%d %d %d %d\n", in_handler, old.sa_sigaction == on_usr2 && (old.sa_flags & SA_SIGINFO) != 0,
           was == SIG_DFL, now == on_usr1);
    return getppid() > 0 ? 3 : 4;
}
"""


def test_sigaction_and_signal_hooks_see_the_program_s_handlers_which_still_run_unhooked(mrhooker, script, cprog):
    """A hook of sigaction or signal gets the program's calls; the handlers it installs are still the runtime's
    wrapped ones (their hooked calls go to the original) and the program sees its own handlers as old ones."""
    prog = cprog(SIGNAL_HANDLERS)
    hooks = script("sig.py", '''\
        from mrhooker import hook
        calls = []

        @hook("sigaction")
        def sigaction(sig, act, old):
            calls.append("sigaction %d %s" % (sig, bool(act)))
            return sigaction.original(sig, act, old)

        @hook("signal")
        def signal(sig, handler):
            calls.append("signal %d" % sig)
            return signal.original(sig, handler)

        @hook("getppid")
        def getppid():
            calls.append("getppid")
            return getppid.original()

        import atexit
        atexit.register(lambda: print(calls))
    ''')
    bare = subprocess.run([prog], capture_output=True, text=True, timeout=scaled(30))
    r = mrhooker(hooks, prog)
    assert (r.returncode, r.out) == (bare.returncode, bare.stdout) == (3, "2 1 1 1\n"), (r, bare)
    assert "['sigaction 12 True', 'sigaction 12 False', 'signal 10', 'signal 10', 'getppid']" in r.err, r


def test_a_c99_program_s_signal_handler_still_runs_unhooked(mrhooker, script, cprog):
    """Built with -std=c99 (or -ansi), a program's signal() is glibc's __sysv_signal, which installed the handler
    past the runtime: the handler was not wrapped, and its getppid() ran the hook (a hook inside a handler, which may
    have interrupted one holding the GIL), and a trace had no line of the call."""
    prog = cprog(r"""
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
static volatile sig_atomic_t in_handler;
static void on_usr1(int sig) { in_handler += sig == SIGUSR1 && getppid() > 0; }
int main(void)
{
    signal(SIGUSR1, on_usr1);
    struct sigaction old;
    sigaction(SIGUSR1, NULL, &old);
    raise(SIGUSR1);
    void (*reset)(int) = signal(SIGUSR1, SIG_IGN);   /* SysV: the handler was reset as it ran */
    printf("%d %d %d %d %d\n", (int)in_handler, old.sa_handler == on_usr1, reset == SIG_DFL,
           (old.sa_flags & (SA_RESETHAND | SA_NODEFER | SA_RESTART | SA_SIGINFO)) == (SA_RESETHAND | SA_NODEFER),
           sigismember(&old.sa_mask, SIGUSR1));
    return 0;
}
""", flags=["-std=c99"])
    hooks = script("ppid.py", '''\
        from mrhooker import hook

        @hook("getppid")
        def getppid():
            print("hooked getppid")
            return getppid.original()
    ''')
    bare = subprocess.run([prog], capture_output=True, text=True, timeout=scaled(30))
    assert (bare.returncode, bare.stdout) == (0, "1 1 1 1 0\n"), bare
    r = mrhooker(hooks, prog)
    assert (r.returncode, r.out) == (0, bare.stdout) and "hooked getppid" not in r.err, r
    r = mrhooker("trace", "-e", "signal", prog, timeout=scaled(30))
    assert (r.returncode, r.out) == (0, bare.stdout), r
    assert [re.sub("0x[0-9a-f]+", "0x...", line) for line in r.err.splitlines() if "signal(" in line] == [
        "__sysv_signal(SIGUSR1, 0x...) = SIG_DFL", "__sysv_signal(SIGUSR1, SIG_IGN) = SIG_DFL"], r.err


def test_fork_children_keep_py_hooks(mrhooker, script, cprog):
    prog = cprog('''
        #include <stdio.h>
        #include <sys/wait.h>
        #include <unistd.h>
        int main(void) {
            printf("parent %d\\n", getppid());
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) { printf("child %d\\n", getppid()); fflush(stdout); _exit(0); }
            int status;
            waitpid(pid, &status, 0);
            return 0;
        }
    ''')
    hooks = script("forky.py", '''\
        from mrhooker import hook

        @hook("int getppid(void)")
        def getppid():
            return 7
    ''')
    r = mrhooker(hooks, prog, timeout=scaled(30))
    assert r.returncode == 0, r
    assert r.out.splitlines() == ["parent 7", "child 7"]


def test_two_threads_forking_while_the_hooks_start(mrhooker, script, cprog):
    """Two threads fork while a third's first hooked call starts the hooks (a script whose import takes 0.2 s).
    Each fork waits for the start; the second one to wait used to take the first one's place as the forking
    thread, so the first one's parent handler let go of nothing: the program hung for good (3 runs in 3)."""
    prog = cprog('''
        #include <pthread.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <sys/wait.h>
        #include <unistd.h>
        static volatile int go;
        static void *forker(void *arg) {
            (void)arg;
            while (!go) {}
            usleep(20000);   /* the start is under way */
            for (int i = 0; i < 5; i++) {
                pid_t c = fork();
                if (c == 0) _exit(0);
                if (c < 0 || waitpid(c, NULL, 0) != c) exit(3);
            }
            return NULL;
        }
        int main(void) {
            pthread_t t[2];
            for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, forker, NULL);
            go = 1;
            printf("parent %d\\n", getppid());
            for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
            printf("done\\n");
            return 0;
        }
    ''', flags=["-pthread"])
    hooks = script("slow_start.py", '''\
        import time
        from mrhooker import hook

        time.sleep(0.2)

        @hook("int getppid(void)")
        def getppid():
            return 7
    ''')
    for _ in range(3):
        r = mrhooker(hooks, prog, timeout=scaled(30))
        assert r.returncode == 0 and r.out.splitlines() == ["parent 7", "done"], r


def test_hook_output_never_reaches_target_stdout(mrhooker, script, tmp_path):
    data = tmp_path / "in.bin"
    data.write_bytes(os.urandom(300000))
    hooks = script("noisy.py", '''\
        import sys
        from mrhooker import hook

        @hook("ssize_t write(int fd, const void *buf, size_t n)")
        def write(fd, buf, n):
            print("write", fd, n)
            sys.stdout.write("stdout too\\n")
            sys.stderr.write("stderr too\\n")
            return write.original(fd, buf, n)
    ''')
    # stdout is a pipe: into a regular file, cat copies with copy_file_range and never calls write
    r = mrhooker(hooks, "cat", data)
    assert r.returncode == 0, r
    assert r.stdout == data.read_bytes()
    assert "write 1 " in r.err and "stdout too" in r.err


def test_python_target_replacing_stdout_never_gets_hook_output(mrhooker, script, tmp_path):
    """A Python program that points sys.stdout at its own file: what hooks print still goes to the hook
    output, not into that file."""
    hooks = script("pyprint.py", '''\
        from mrhooker import hook

        @hook("int getppid(void)")
        def getppid():
            print("hook says hi")
            return getppid.original()
    ''')
    data = tmp_path / "data.txt"
    program = ("import os, sys\n"
               "os.getppid()\n"   # the hooks start here, before the program replaces sys.stdout
               "sys.stdout = open(%r, 'w')\n"
               "os.getppid()\n"
               "print('program data')\n"
               "sys.stdout.close()\n" % str(data))
    r = mrhooker(hooks, sys.executable, "-c", program)
    assert r.returncode == 0, r
    assert data.read_text() == "program data\n"
    assert r.err.count("hook says hi") == 2, r


TYPED_PROG = r'''
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

struct mixed { int8_t a; int16_t b; int32_t c; int64_t d; uint32_t e; float f; double g; void *p; };
int probe(struct mixed *m, const char *readonly, char *edge);   /* in PROBE_LIB: called through the PLT */

int main(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    printf("sec %lld nsec %ld\n", (long long)ts.tv_sec, ts.tv_nsec);
    struct mixed m = {-5, -300, -70000, -5000000000LL, 4000000000U, 1.5f, -2.25, &m};
    /* a string that ends at the last byte of a page, the next page unmapped */
    char *pages = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(pages + 4096, 4096);
    memset(pages, 'x', 4096);
    pages[4095] = 0;
    int r = probe(&m, "constant", pages + 4000);
    printf("probe %d a=%d b=%d c=%d d=%lld e=%u f=%g g=%g p_is_m=%d\n", r, m.a, m.b, m.c, (long long)m.d, m.e,
           m.f, m.g, m.p == (void *)&m);
    return 0;
}
'''

PROBE_LIB = """\
int probe(signed char *m, const char *readonly, char *edge) { return m[0] + readonly[0] + edge[0]; }
"""

TYPED_HOOKS = '''\
from mrhooker import hook, Pointer

@hook("clock_gettime")
def clock_gettime(clock, ts):
    r = clock_gettime.original(clock, ts)
    ts.write_i64(946684800)          # struct timespec: tv_sec at 0, tv_nsec at 8 (x86_64, aarch64)
    ts.write_i64(123, 8)
    print("read back", ts.read_i64(), ts.read_i64(8))
    return r

@hook("int probe(void *m, void *readonly, char *edge)")
def probe(m, readonly, edge):
    print("typed", m.read_i8(), m.read_i16(2), m.read_i32(4), m.read_i64(8), m.read_u32(16),
          m.read_f32(20), m.read_f64(24), m.read_ptr(32) == m, m.read_u8(), m.read_u16(2))
    print("edge", len(edge.read(95)), len(Pointer(int(edge)).string()))
    for what, attempt in [("null", lambda: Pointer(0).read_u32()), ("unmapped", lambda: Pointer(8).read(4)),
                          ("past the end", lambda: edge.read(97)), ("read-only", lambda: readonly.write(b"X")),
                          ("range", lambda: m.write_u8(256)), ("signed range", lambda: m.write_i8(-129)),
                          ("type", lambda: m.write_i32("1")), ("string unmapped", lambda: Pointer(4096).string())]:
        try:
            attempt()
            print(what, "no error")
        except (ValueError, OverflowError, TypeError) as e:
            print(what, type(e).__name__, e)
    m.write_i8(-1); m.write_i16(2, 2); m.write_i32(3, 4); m.write_i64(2**62, 8); m.write_u32(2**32 - 1, 16)
    m.write_f32(0.5, 20); m.write_f64(1e300, 24); m.write_ptr(None, 32)
    return probe.original(m, readonly, edge)
'''


def test_typed_reads_and_writes_and_bad_addresses_never_crash(mrhooker, script, cprog):
    prog = cprog(TYPED_PROG, flags=[cprog(PROBE_LIB, flags=["-shared", "-fPIC"], suffix=".so")])
    r = mrhooker(script("typed.py", TYPED_HOOKS), prog)
    assert r.returncode == 0, r
    assert r.out.splitlines() == ["sec 946684800 nsec 123",
                                  "probe 218 a=-1 b=2 c=3 d=4611686018427387904 e=4294967295 f=0.5 g=1e+300 p_is_m=0"]
    assert "read back 946684800 123" in r.err
    assert "typed -5 -300 -70000 -5000000000 4000000000 1.5 -2.25 True 251 65236" in r.err
    assert "edge 95 95" in r.err
    assert "null ValueError NULL pointer" in r.err
    assert re.search(r"unmapped ValueError cannot read 4 bytes at 0x8: the address is not mapped", r.err), r.err
    assert "past the end ValueError cannot read 97 bytes" in r.err
    assert "read-only ValueError cannot write 1 bytes at 0x" in r.err and "not mapped or not writable" in r.err
    assert "range OverflowError Pointer.write_u8: 256 does not fit an unsigned 8-bit integer" in r.err
    assert "signed range OverflowError Pointer.write_i8: -129 does not fit a signed 8-bit integer" in r.err
    assert "type TypeError Pointer.write_i32: the value must be an int, not str" in r.err
    assert "string unmapped ValueError cannot read" in r.err
    assert "Traceback" not in r.err


VIEWS_HOOKS = '''\
import os
import socket
from mrhooker import hook

@hook("clock_gettime")
def clock_gettime(clock, ts):
    r = clock_gettime.original(clock, ts)
    if clock == 0:                       # CLOCK_REALTIME
        ts.cast().tv_sec = 946684800     # the prototype says: struct timespec *
    return r

@hook("connect")
def connect(fd, addr, n):
    a = addr.cast("struct sockaddr_in")
    print("connect", a.sin_family, a.sin_port, hex(a.sin_addr.s_addr), len(a), n)
    return connect.original(fd, addr, n)

@hook("stat")
def stat(path, st):
    r = stat.original(path, st)
    if r == 0 and path.endswith(b"probe.txt"):
        s = st.cast()
        print("stat", s.st_size, s.st_mtim.tv_sec, s.st_mtime, oct(s.st_mode & 0o777), len(s))
        s.st_size = 12345
    return r

@hook("readdir")
def readdir(d):
    ent = readdir.original(d)
    if ent:
        e = ent.cast("struct dirent")
        print("readdir", e.d_name.string(), len(e.d_name), e.d_name[0] == e.d_name.string()[0])
    return ent
'''

STAT_PROG = r'''
#include <stdio.h>
#include <sys/stat.h>
int main(int argc, char **argv)
{
    struct stat st;
    if (stat(argv[1], &st) != 0) return 1;
    printf("%lld\n", (long long)st.st_size);
    return 0;
}
'''


def test_struct_views_read_and_write_real_calls(mrhooker, script, cprog, http_server, tmp_path):
    hooks = script("views.py", VIEWS_HOOKS)
    r = mrhooker(hooks, "date", "-u", "+%s")
    assert r.returncode == 0 and r.out == "946684800\n", r
    port = int(http_server.rsplit(":", 1)[1])
    r = mrhooker(hooks, "curl", "-s", "-o", "/dev/null", http_server)
    assert r.returncode == 0, r
    assert "connect 2 %d 0x100007f 16 16" % socket.htons(port) in r.err, r   # network byte order, as in C
    probe = tmp_path / "probe.txt"
    probe.write_text("hello")
    os.utime(probe, (1000000000, 1234567890))
    r = mrhooker(hooks, cprog(STAT_PROG), probe)
    assert r.returncode == 0 and r.out == "12345\n", r            # written through the view
    assert "stat 5 1234567890 1234567890 0o%o 144" % (probe.stat().st_mode & 0o777) in r.err, r
    r = mrhooker(hooks, "ls", "-f", str(tmp_path))
    assert r.returncode == 0 and "readdir b'probe.txt' 256 True" in r.err, r


def test_struct_views_by_library_type_and_their_errors(mrhooker, script, tmp_path):
    hooks = script("zviews.py", '''\
        from mrhooker import hook, Pointer

        @hook("deflate")
        def deflate(strm, flush):
            z = strm.cast("z_stream")          # zlib's typedef, from zlib.h
            print("deflate avail_in", z.avail_in, "total_in", z.total_in)
            for attempt in (lambda: z.no_such_member, lambda: Pointer(8).cast("z_stream").avail_in,
                            lambda: strm.cast("struct " + "timespec"), lambda: Pointer(0).cast("z_stream").avail_in,
                            lambda: strm.cast()):
                try:
                    attempt()
                except (AttributeError, ValueError, TypeError) as e:
                    print(type(e).__name__, str(e)[:60])
            return deflate.original(strm, flush)
        ''')
    code = "import zlib; print(len(zlib.decompress(zlib.compress(b'x' * 1000))))"
    r = mrhooker(hooks, sys.executable, "-c", code)
    assert r.returncode == 0 and r.out == "1000\n", r
    assert "deflate avail_in 1000 total_in 0" in r.err
    assert "AttributeError z_stream has no member 'no_such_member' (its members: next" in r.err
    assert "ValueError cannot read 4 bytes at 0x10: the address is not mapped" in r.err
    assert "TypeError no layout of 'struct timespec' in this build: name it in a" in r.err
    assert "ValueError NULL pointer: there is no z_stream to view" in r.err
    assert "TypeError this Pointer's type isn't known from a prototype: name it" in r.err
    bad = script("badview.py", '''\
        from mrhooker import hook

        @hook("stat")
        def stat(path, st):
            return stat.original(path, st.cast("struct stta"))
        ''')
    r = mrhooker(bad, "true")
    assert r.returncode == 2 and r.err.startswith("mrhooker: ") and "'struct stta'" in r.err, r
    assert "did you mean 'struct stat'" in r.err and "Traceback" not in r.err


# ---- typos and failed starts are said at the end (issue 15, item 11) -----------------------------------------

TYPO_HOOKS = '''\
from mrhooker import hook

@hook("int unlinkatt(int dirfd, const char *pathname, int flags)")
def unlinkatt(dirfd, path, flags):
    print("unlinkatt", path)
    return unlinkatt.original(dirfd, path, flags)

@hook("unlinkat")
def unlinkat(dirfd, path, flags):
    print("unlinkat", path)
    return unlinkat.original(dirfd, path, flags)
'''


def test_a_hooked_name_no_library_defines_is_said_once_at_the_end(mrhooker, script, tmp_path):
    hooks = script("typo.py", TYPO_HOOKS)
    for name in ("a", "b"):
        (tmp_path / name).write_text("x")
    # Two processes (sh, rm), each without unlinkatt: one warning, the last line.
    r = mrhooker(hooks, "sh", "-c", 'rm "$1"/a; rm "$1"/b', "sh", tmp_path)
    assert r.returncode == 0 and not (tmp_path / "a").exists() and not (tmp_path / "b").exists(), r
    lines = r.err.splitlines()
    assert lines_starting(r.err, "unlinkat b") == ["unlinkat b'%s/a'" % tmp_path, "unlinkat b'%s/b'" % tmp_path], r
    assert lines_starting(r.err, "mrhooker: ") == [lines[-1]], r
    assert lines[-1] == ("mrhooker: warning: no library of the program defines unlinkatt: its hook never ran "
                         "(misspelt, or a library the program does not load?)"), r
    # -v says, before the run, which hooked names the program's libraries define.
    r = mrhooker("-v", hooks, "true")
    assert "mrhooker: hooked names true's libraries define: unlinkat (libc.so.6)" in r.err, r
    assert "none of them define (a library loaded later, or a program run, may): unlinkatt" in r.err, r
    assert r.err.splitlines()[-1].startswith("mrhooker: warning: no library of the program defines unlinkatt"), r


ZLIB_VERSION_HOOK = '''\
from mrhooker import hook

@hook("const char *zlibVersion(void)")
def zlibVersion():
    return zlibVersion.original()
'''

# Loads libz with dlopen (RTLD_LOCAL), and calls nothing of it: zlibVersion is defined in this process from
# then on, though no call ever looks up its original.
DLOPEN_LIBZ_SRC = """\
#include <dlfcn.h>
#include <stdio.h>
int main(void)
{
    void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
    puts(h ? "loaded" : dlerror());
    return h == NULL;
}
"""


def test_a_name_that_one_process_of_the_run_defines_is_not_said(mrhooker, script, cprog):
    """sh has no zlibVersion, the program it runs loads libz: only a name no process has is reported, a
    dlopen'ed library's counting (whether a call looked the name up or not)."""
    hooks = script("zv.py", ZLIB_VERSION_HOOK)
    prog = cprog(DLOPEN_LIBZ_SRC, flags=["-ldl"])
    r = mrhooker(hooks, "sh", "-c", '"$1"; true', "sh", prog)
    assert r.returncode == 0 and r.out == "loaded\n", r
    assert "mrhooker: " not in r.err, r
    r = mrhooker(hooks, "sh", "-c", "true")
    assert r.err.splitlines() == ["mrhooker: warning: no library of the program defines zlibVersion: its hook "
                                  "never ran (misspelt, or a library the program does not load?)"], r


FAILING_IMPORT = '''\
from mrhooker import hook
import no_such_module_anywhere

@hook("write")
def write(fd, buf, n):
    return write.original(fd, buf, n)
'''


def test_a_hook_script_that_fails_to_start_ends_the_run_with_a_final_line_and_status_2(mrhooker, script, tmp_path):
    hooks = script("broken.py", FAILING_IMPORT)
    r = mrhooker(hooks, "sh", "-c", "echo out; exit 0")
    assert r.out == "out\n", r   # the program ran, unhooked
    assert r.returncode == 2, r   # a CI job does not pass without its hooks
    lines = r.err.splitlines()
    assert "ModuleNotFoundError: No module named 'no_such_module_anywhere'" in r.err, r
    assert lines[-1] == "mrhooker: the hooks did not start in 1 process (see the error above): it ran unhooked", r
    # The program's own failure is its exit status; the final line is still said.
    r = mrhooker(hooks, "sh", "-c", "echo out; exit 3")
    assert r.returncode == 3 and r.err.splitlines()[-1].startswith("mrhooker: the hooks did not start"), r
    # Two processes (sh and the sh it runs), the traceback in the -o file.
    out = tmp_path / "hooks.out"
    r = mrhooker("-o", out, hooks, "sh", "-c", 'echo out; sh -c "echo inner"')
    assert r.returncode == 2 and r.out == "out\ninner\n", r
    assert r.err == ("mrhooker: the hooks did not start in 2 processes (see the error in %s): they ran unhooked\n"
                     % out), r
    assert out.read_text().count("ModuleNotFoundError") == 2


def test_hook_output_that_cannot_be_written_is_said_once_and_the_status_kept(mrhooker, script):
    hooks = script("talks.py", """\
        from mrhooker import hook

        @hook("int getpid(void)")
        def getpid():
            print("getpid called")
            return getpid.original()
    """)
    program = [sys.executable, "-c", "import os, sys; os.getpid(); print('out'); sys.exit(5)"]
    r = mrhooker("-o", "/dev/full", hooks, *program)
    assert r.returncode == 5 and r.out == "out\n", r
    assert r.err == ("mrhooker: cannot write the hook output to /dev/full: No space left on device (in 1 process): "
                     "some of it is lost\n"), r
    r = mrhooker("-o", "/dev/null", hooks, *program)   # written: nothing said
    assert r.returncode == 5 and r.out == "out\n" and r.err == "", r


def test_hook_output_with_no_descriptor_free_is_said_lost(mrhooker, script, cprog, tmp_path):
    # A program using every descriptor its limit allows, after closing the hooks' own: the hook's line could not
    # be opened anywhere and went missing without a word (the report, told once a descriptor is free).
    prog = cprog("""
        #define _GNU_SOURCE
        #include <fcntl.h>
        #include <stdio.h>
        #include <sys/resource.h>
        #include <unistd.h>
        int main(void) {
            close(open("/dev/null", O_RDONLY));
            struct rlimit r = {6, 6};
            setrlimit(RLIMIT_NOFILE, &r);
            close_range(3, ~0U, 0);
            int a = open("/dev/null", O_RDONLY), b = open("/dev/null", O_RDONLY), c = open("/dev/null", O_RDONLY);
            printf("%d %d %d %d\\n", a, b, c, open("/dev/null", O_RDONLY));
            close(a);   /* its line: no descriptor free */
            close(b);
            close(c);
            return 3;
        }
    """)
    hooks = script("closes.py", """\
        from mrhooker import hook

        @hook("int close(int fd)")
        def close(fd):
            print("close", fd)
            return close.original(fd)
    """)
    out = tmp_path / "hooks.out"
    for where in ((), ("-o", out)):
        r = mrhooker(*where, hooks, prog, timeout=scaled(60))
        assert r.returncode == 3 and r.out == "3 4 5 -1\n", r   # as unhooked
        said = out.read_text() if where else r.err
        assert lines_starting(said, "close ") == ["close 3", "close 4", "close 5"], r
        assert r.err.splitlines()[-1] == "mrhooker: cannot write the hook output to %s: Too many open files (in 1 " \
            "process): some of it is lost" % (out if where else "standard error"), r

def test_run_report_records_are_summed_up():
    from mrhooker.runreport import summarize
    records = ("missing 10:1 SSL_write unlinkatt\nmissing 11:2 unlinkatt\nmissing 11:2 zlibVersion\n"
               "missing 12:3 unlinkatt zlibVersion\nfound zlibVersion\nunstarted\nunstarted\n")
    assert summarize(records) == ({"unlinkatt"}, 2, {})
    assert summarize("missing 10:1\nmissing 11:2 foo\n") == (set(), 0, {})   # the first process found foo
    assert summarize("") == (set(), 0, {})
    assert summarize("lost 28\nlost 28\nlost 5\nlost x\n") == (set(), 0, {28: 2, 5: 1})
