"""Running the target with the hooks preloaded: checks on the program, its environment, signals, exit status.

mrhooker stays the target's parent: it forwards SIGINT, SIGTERM, SIGHUP (and others) sent to it at once, from
a thread of its own (Signals), whatever its main thread is doing; leaves terminal-generated signals alone (the
target, in the same process group, gets those itself), and exits with the target's status. A target killed by
SIGINT, SIGTERM or SIGHUP kills mrhooker by the same signal, so that shells see what they would see without
mrhooker; killed by another signal N, mrhooker exits 128+N. Should mrhooker die first, its guardian
(guardian.py) kills the target.
"""
import errno
import os
import signal
import stat
import struct
import sys
import threading
import time

from mrhooker import threads
from mrhooker.errors import MrhookerError, say
from mrhooker.programs import resolve_command

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                     signal.SIGUSR2, signal.SIGALRM)
REPRODUCED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE)
INTERRUPTING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)   # once the target is gone: stop now
REPEAT_WINDOW = 0.3   # seconds: the same signal from the same sender again within it is the same request
SI_KERNEL = 0x80   # si_code of signals the kernel sends, e.g. the terminal's Ctrl-C
WAKE = signal.SIGURG   # sent by mrhooker to its own signal thread, to end it


class LaunchOptions:
    def __init__(self, follow=True, output=None, force=False, log=lambda msg: None, verbose=False):
        self.follow = follow      # hook exec'd children too
        self.output = output      # hook output file (-o); None: mrhooker's stderr
        self.force = force        # run targets that cannot be hooked anyway
        self.log = log
        self.verbose = verbose    # -v: also the checks that cost time (the program's libraries' names)


# ---- the target program ----------------------------------------------------------------------------------

def _elf_interpreter(header, f):
    """(is 64-bit, has an ELF interpreter) of an ELF file whose first bytes are `header`. Two fields of the
    header and the program headers' types, read by hand on purpose: pyelftools (programs.py) takes ~60 ms to
    import, more than a whole warm start, and every run checks its program."""
    is64 = header[4] == 2
    little = header[5] == 1
    order = "<" if little else ">"
    if is64:
        phoff, = struct.unpack_from(order + "Q", header, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", header, 0x36)
    else:
        phoff, = struct.unpack_from(order + "I", header, 0x1C)
        phentsize, phnum = struct.unpack_from(order + "HH", header, 0x2A)
    f.seek(phoff)
    table = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, = struct.unpack_from(order + "I", table, i * phentsize)
        if p_type == 3:   # PT_INTERP
            return is64, True
    return is64, False


def check_program(path, force, depth=0):
    """Refuses, with the reason, a program whose loader will not preload the hooks."""
    try:
        with open(path, "rb") as f:
            header = f.read(64)
            if header.startswith(b"\x7fELF") and len(header) >= 64:
                is64, dynamic = _elf_interpreter(header, f)
            elif header.startswith(b"#!") and depth == 0:
                f.seek(0)
                line = f.readline(256)[2:].split()
                if line:
                    interpreter = line[0].decode(errors="replace")
                    if os.path.isfile(interpreter):
                        check_program(interpreter, force, depth + 1)
                return
            else:
                return   # the kernel or the shell will say what it is
    except OSError as e:
        raise MrhookerError("cannot read %s: %s" % (path, e.strerror), 126)
    what = "%s (the interpreter of the script)" % path if depth else path
    if not dynamic and not force:
        raise MrhookerError("%s is statically linked: there is no dynamic loader to preload the hooks, so it would "
                            "run unhooked (--force runs it anyway)" % what)
    if is64 != (struct.calcsize("P") == 8) and not force:
        raise MrhookerError("%s is a %d-bit program and the hooks are %d-bit: it would run unhooked (--force runs "
                            "it anyway)" % (what, 64 if is64 else 32, struct.calcsize("P") * 8))
    st = os.stat(path)
    # The kernel runs the loader in secure mode when exec changes the effective ids away from the real ones;
    # being a supplementary member of a setgid program's group does not prevent that. Setgid without group
    # execute is mandatory locking, not setgid.
    setgid = stat.S_ISGID | stat.S_IXGRP
    secure = (st.st_mode & stat.S_ISUID and st.st_uid != os.getuid()) or \
             (st.st_mode & setgid == setgid and st.st_gid != os.getgid())
    if not secure and os.geteuid() != 0:
        try:
            secure = bool(os.getxattr(path, "security.capability"))
        except OSError:
            pass
    if secure and not force:
        raise MrhookerError("%s is setuid, setgid or has file capabilities: the loader ignores LD_PRELOAD for it, "
                            "so it would run unhooked (run it as its owner, or --force)" % what)


# ---- hook output -----------------------------------------------------------------------------------------

class Output:
    """Where hook output goes: a path each hooked process opens itself (O_APPEND), with the identity (device,
    inode) it must have (runtime/output.h). A file given with -o is appended to, never truncated: runs sharing
    one file (a parallel test suite) keep every line. mrhooker's stderr is reached as /proc/PID/fd/2; a socket
    cannot be opened so, and is fed through a pipe that a thread here copies."""

    def __init__(self, path_option):
        self._relay = None
        if path_option:
            path = os.path.abspath(path_option)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise MrhookerError("cannot write hook output file %s: %s" % (path, e.strerror))
            st = os.fstat(fd)
            os.close(fd)
            self.path, self.identity = path, (st.st_dev, st.st_ino)
            return
        try:
            st = os.fstat(2)
        except OSError:
            self.path, self.identity = "/dev/null", None
            return
        if stat.S_ISREG(st.st_mode):
            # Each hooked process appends through a description of its own; ours must append too, or our
            # next message would overwrite theirs.
            import fcntl
            fcntl.fcntl(2, fcntl.F_SETFL, fcntl.fcntl(2, fcntl.F_GETFL) | os.O_APPEND)
        path = "/proc/%d/fd/2" % os.getpid()
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOCTTY))
            self.path, self.identity = path, (st.st_dev, st.st_ino)
        except OSError:
            self._start_relay()

    def _start_relay(self):
        read_end, write_end = os.pipe()
        st = os.fstat(write_end)
        self.path, self.identity = "/proc/%d/fd/%d" % (os.getpid(), write_end), (st.st_dev, st.st_ino)
        self._relay = (read_end, write_end,
                       threads.start(threading.Thread(target=self._copy, args=(read_end,), daemon=True)))

    @staticmethod
    def _copy(fd):
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return
            if not data:
                return
            try:
                os.write(2, data)
            except OSError:
                pass

    def close(self):
        if self._relay:
            read_end, write_end, thread = self._relay
            os.close(write_end)
            thread.join(0.2)   # children that outlive the target may keep the pipe open: don't wait for them

    def environment(self):
        env = {"MRHOOKER_OUTPUT": self.path}
        if self.identity:
            env["MRHOOKER_OUTPUT_ID"] = "%d:%d" % self.identity
        return env


# ---- running -------------------------------------------------------------------------------------------

def hook_environment(build, pyinfo, output, options):
    """The MRHOOKER_* variables of a hooked target: the protocol is written down in runtime/mrhooker_rt.h."""
    script_dir = os.path.dirname(build.script.path)
    python_path = [script_dir] + [p for p in pyinfo.path if p != script_dir]
    env = {
        "MRHOOKER_HOOKS": build.hooks,
        "MRHOOKER_RUNTIME": build.runtime,
        "MRHOOKER_KIND": build.script.kind,
        "MRHOOKER_MODULE": build.script.module,
        "MRHOOKER_PYTHONPATH": "\n".join(python_path),
        "MRHOOKER_PYTHONHOME": pyinfo.home,
        "MRHOOKER_PYTHON": pyinfo.executable,
    }
    if build.script.kind == "py":
        env["MRHOOKER_SCRIPT"] = build.script.path
    env.update(output.environment())
    return env


def exit_status(status):
    """mrhooker's exit status for the target's wait status (dying by the same signal for a few)."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return code
    return die_by(-code)


def die_by(sig):
    """Dies by sig if it is one of REPRODUCED_SIGNALS (so that a calling shell stops its loop on Ctrl-C, or a
    pipeline sees SIGPIPE, as it would have without mrhooker); else returns 128+sig, the status to exit with."""
    if sig in REPRODUCED_SIGNALS:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
    return 128 + sig


def find_program(command, force):
    """COMMAND's program, as execvp would find it, refused (with the reason) if it cannot be run or hooked."""
    path = resolve_command(command[0], os.environ)
    check_program(path, force)
    return path


def _preload_environment(preload, settings, options):
    """The target's environment: ours, with `preload` first in LD_PRELOAD and the MRHOOKER_* settings."""
    env = dict(os.environ)
    env.update(settings)
    env["MRHOOKER_FOLLOW"] = "1" if options.follow else "0"
    env["MRHOOKER_PARENT"] = str(os.getpid())
    env["LD_PRELOAD"] = preload + (" " + env["LD_PRELOAD"] if env.get("LD_PRELOAD") else "")
    options.log("LD_PRELOAD=%s" % env["LD_PRELOAD"])
    return env


# mrhooker._inside: imported by every hooked process when its hooks start (runtime/pyrt.c)
INSIDE_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_inside.py")


def cache_bytecode(path):
    """Writes the bytecode of the module at path where the import system looks for it, as importing it would
    (when this Python writes bytecode at all). For _inside: every hooked process imports it when its hooks start,
    and without its bytecode each compiles it, which takes ~1 ms and leaves ~200 kB more in its memory; nothing
    else writes it, since mrhooker imports _inside only inside targets, whose interpreter writes no bytecode. (The
    package's own is written when mrhooker itself is imported.)"""
    if sys.dont_write_bytecode:
        return
    from importlib.machinery import SourceFileLoader

    try:
        SourceFileLoader("mrhooker_bytecode", path).get_code(None)   # reads it, or compiles and writes it
    except (OSError, SyntaxError):
        pass   # a read-only or odd install: each process compiles it, as before
    except (EOFError, ImportError, ValueError, TypeError):
        # a damaged bytecode file whose header still matches the source (every hooked process would fail to
        # import it): written anew
        import py_compile   # (only then: its import, with traceback's, is ~10 ms of a warm start)
        try:
            py_compile.compile(path, doraise=True)
        except (OSError, py_compile.PyCompileError):
            pass


def _entry_environment(build, program, options):
    """MRHOOKER_ENTRY for the hooks at="entry" of build (and the program's own functions), planned for program."""
    if not build.entry:
        return {}
    from mrhooker import atentry
    entry = atentry.entry_setting(program, build.symbols, set(build.entry), set(build.entry), True,
                                  os.path.dirname(build.directory), build.entry_at)
    options.log("hooked at their entry: %s" % " ".join(sorted(entry.patched)))
    return entry.environment()


def run_target(build, pyinfo, command, program, options):
    """Runs COMMAND (whose program find_program gave) with the hooks; returns mrhooker's exit status: the
    target's, or 2 where it was 0 but the hooks did not start in some process (runreport.py)."""
    from mrhooker.cache import check_private
    from mrhooker.guardian import Guardian
    from mrhooker.runreport import RunReport, log_defined_names

    # Everything the loader will open, checked on its resolved path (which is what it is given).
    for library in (build.preload, build.runtime, build.hooks):
        check_private(library, "hook library")
    check_private(pyinfo.libpython, "libpython")
    cache_bytecode(INSIDE_SOURCE)
    guardian = Guardian(build.guardian)
    output = Output(options.output)
    report = RunReport()
    try:
        settings = hook_environment(build, pyinfo, output, options)
        settings.update(report.environment())
        settings.update(_entry_environment(build, program, options))
        env = _preload_environment(build.preload, settings, options)
        options.log("hooks: %s (%s)" % (build.hooks, ", ".join(build.symbols)))
        options.log("hook output: %s" % (options.output or "stderr"))
        if options.verbose:
            log_defined_names(program, build.symbols, options.log)
        with Signals() as signals:
            status = spawn_and_wait(program, command, env, options.log, signals, guardian)
        lines, unstarted = report.final_lines(options.output)
    finally:
        output.close()
        report.close()
        guardian.close()
    for line in lines:
        say(line)
    if unstarted and os.waitstatus_to_exitcode(status) == 0:
        return 2
    return exit_status(status)


def attach_target(build, pyinfo, pids, options, duration=None):
    """`mrhooker -p PID SCRIPT`: the hooks of build in the running processes pids until Ctrl-C, SIGTERM, SIGHUP,
    `duration` seconds or their end, then detached (attached.py); returns mrhooker's exit status: 0, or 2 when
    the hooks did not start in some process (runreport.py)."""
    from mrhooker import attached
    from mrhooker.cache import check_private
    from mrhooker.errors import say
    from mrhooker.runreport import RunReport

    for library in (build.preload, build.runtime, build.hooks):
        check_private(library, "hook library")
    check_private(pyinfo.libpython, "libpython")
    cache_bytecode(INSIDE_SOURCE)
    output = Output(options.output)
    report = RunReport()
    sessions = []
    try:
        settings = hook_environment(build, pyinfo, output, options)
        settings.update(report.environment())
        with Signals() as signals:
            signals.ended()   # nothing is forwarded: INT, TERM and HUP say "detach"
            try:
                for pid in pids:
                    entry = _entry_environment(build, "/proc/%d/exe" % pid, options)
                    sessions.append(attached.Attached(pid, build.preload, dict(settings, **entry), options.follow))
                    options.log(sessions[-1].timings())
                    say("Process %d attached" % pid)
                attached.wait(sessions, lambda: False, lambda: bool(signals.interrupted), duration)
            finally:
                attached.detach_all(sessions, log=options.log)
        lines, unstarted = report.final_lines(options.output)
    finally:
        output.close()
        report.close()
    for line in lines:
        say(line)
    return 2 if unstarted else 0


def run_traced(preload, trace_settings, command, program, options, signals, guardian, on_tick, on_spawn,
               tick=0.02):
    """Runs COMMAND with a trace build preloaded, calling on_tick() every `tick` seconds (at once again while it
    returns true: it has more to do) and once at the end, until COMMAND and every process it started have exited
    (mrhooker is their subreaper, as strace -f waits for them all). Returns (COMMAND's wait status, {pid: wait
    status} of every process reaped)."""
    from mrhooker.cache import check_private

    check_private(preload, "trace library")
    env = _preload_environment(preload, trace_settings, options)
    if not options.follow:   # COMMAND alone: neither its children are traced nor waited for
        spawned = []
        status = spawn_and_wait(program, command, env, options.log, signals, guardian, on_tick=on_tick, tick=tick,
                                on_spawn=lambda pid: (spawned.append(pid), on_spawn(pid)))
        on_tick()
        return status, {spawned[0]: status}
    _become_subreaper()
    statuses = {}
    status = spawn_and_wait(program, command, env, options.log, signals, guardian, on_tick=on_tick, tick=tick,
                            all_children=statuses, on_spawn=on_spawn)
    on_tick()
    return status, statuses


def _in_terminal_foreground():
    """Is mrhooker in its controlling terminal's foreground process group?"""
    for fd in (0, 1, 2):
        try:
            return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False


def _become_subreaper():
    """Orphaned descendants are reparented to mrhooker (PR_SET_CHILD_SUBREAPER), so that it can wait for them."""
    import ctypes
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Signals:
    """Forwards the signals sent to mrhooker (FORWARDED_SIGNALS) to the target at once, from a thread that only
    waits for them: the main thread may be busy draining a trace the target keeps full, or blocked writing it.
    A context: on entry these signals and SIGCHLD are blocked in every thread (so this thread alone takes the
    first, and the main thread waits for the second); on exit they are unblocked again, except those that
    exit_status may reproduce, which stay blocked until mrhooker dies by one. Signals that come before the target
    runs are forwarded once it does. Once every process has ended (`ended()`), SIGINT, SIGTERM or SIGHUP (a
    second Ctrl-C) is `interrupted`: the caller stops finishing up (a trace stops writing what is left)."""

    def __init__(self):
        self.interrupted = None       # the signal that asked to stop finishing up
        self._target = None           # (pid, the process group it is in apart from mrhooker's, or 0)
        self._early = []              # signals that came before the target started
        self._ended = False
        self._lock = threading.Lock()
        self._stopping = False
        # a signal mrhooker was started ignoring (`nohup`: SIGHUP) is neither forwarded nor a reason to stop: the
        # target inherits its ignoring, as it would without mrhooker
        self._waited = {sig for sig in FORWARDED_SIGNALS if signal.getsignal(sig) != signal.SIG_IGN} | {WAKE}
        self._thread = None
        self._last = None             # (signal, sender's pid, when) of the last one taken: see _forward

    def __enter__(self):
        signal.pthread_sigmask(signal.SIG_BLOCK, self._waited | {signal.SIGCHLD})
        threads.settle(self._waited)   # no thread left that could take one of them (see threads.py)
        try:
            self._thread = threads.start(threading.Thread(target=self._forward, name="mrhooker signals", daemon=True))
        except MrhookerError:   # no thread to be had (ulimit -u): no target runs, nothing to forward
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self._waited | {signal.SIGCHLD})
            raise
        return self

    def __exit__(self, *exc):
        self._stopping = True
        signal.pthread_kill(self._thread.ident, WAKE)
        self._thread.join()
        kept = set(REPRODUCED_SIGNALS) if self._target is not None else set()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, (self._waited | {signal.SIGCHLD}) - kept)
        return False

    def started(self, pid, group):
        with self._lock:
            self._target = (pid, group)
            early, self._early = self._early, []
        for sig in early:
            _send(pid, group, sig)

    def ended(self):
        with self._lock:
            self._ended = True

    def _forward(self):
        while True:
            info = signal.sigwaitinfo(self._waited)
            if self._stopping:
                return
            sig = info.si_signo
            if sig == WAKE:
                continue
            # `timeout` sends its signal to mrhooker, then to mrhooker's process group: one request, twice
            now, last = time.monotonic(), self._last
            self._last = (sig, info.si_pid, now)
            repeated = last is not None and last[:2] == (sig, info.si_pid) and now - last[2] < REPEAT_WINDOW
            with self._lock:
                if self._ended:
                    if sig in INTERRUPTING_SIGNALS and not repeated:
                        self.interrupted = sig
                    continue
                if self._target is None:
                    self._early.append(sig)
                    continue
                pid, group = self._target
            if sig in INTERRUPTING_SIGNALS and _has_exited(pid) and not repeated:
                # the main thread, blocked writing the trace, has not reaped the command yet: it is gone all the same
                with self._lock:
                    self.interrupted = sig
            # Ctrl-C and Ctrl-\ from the terminal reached the target (in mrhooker's group) from the kernel.
            if not (info.si_code == SI_KERNEL and sig in (signal.SIGINT, signal.SIGQUIT)):
                _send(pid, group, sig)


def _has_exited(pid):
    """Has child pid exited, though nobody has waited for it yet? (It stays waitable: WNOWAIT.)"""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _send(pid, group, sig):
    try:
        if group:   # (the guardian, in it too, ignores every forwarded signal)
            os.killpg(group, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _children_but(pid):
    """mrhooker's children (of all its threads), but pid."""
    found = []
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:   # no descriptor left (ulimit -n): the program has ended; wait no longer for what it left
        return found
    for task in tasks:
        try:
            with open("/proc/self/task/%s/children" % task) as f:
                found += [int(child) for child in f.read().split() if int(child) != pid]
        except OSError:   # the thread ended
            pass
    return found


def spawn_and_wait(program, command, env, log, signals, guardian, on_tick=None, tick=0.5, all_children=None,
                   on_spawn=None):
    """Runs the program, its signals forwarded (signals: an entered Signals) and its end guarded (guardian:
    guardian.Guardian), until it exits (and, with all_children, a dict, until every child mrhooker has exits:
    their wait statuses go there). Returns the program's wait status."""
    # Signals sent to a whole process group must reach the program once. In the terminal's foreground, the
    # program shares mrhooker's group, so that it has the terminal (Ctrl-C reaches both from the kernel: not
    # forwarded). Elsewhere (a script, CI, `timeout`, a background job) it goes into another group, so that a
    # signal to mrhooker's group reaches mrhooker alone, which passes it on to the program's group: the
    # guardian's, not one of the program's own, which would make it a group leader, as it isn't without
    # mrhooker (its setsid() failed with EPERM).
    group = 0 if _in_terminal_foreground() else guardian.pid
    spawned = (program, command)
    while True:
        try:
            pid = os.posix_spawn(*spawned, env, setsigmask=(), setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
                                 **({"setpgroup": group} if group else {}))
            break
        except OSError as e:
            if e.errno == errno.ENOEXEC and spawned[0] == program:
                # a script without "#!": the shell runs it, as execvp (env, timeout, a shell) does
                spawned = ("/bin/sh", ["/bin/sh", program] + list(command[1:]))
                continue
            if e.errno == errno.EAGAIN:   # no process to be had (ulimit -u): mrhooker's failure, not the program's
                raise MrhookerError("cannot start %s: %s (%s)" % (program, e.strerror, threads.limit("RLIMIT_NPROC")))
            # (a "#!" naming no interpreter: ENOENT, "not found" to a shell too)
            raise MrhookerError("cannot run %s: %s" % (program, e.strerror), 127 if e.errno == errno.ENOENT else 126)
    guardian.watch(pid, group)
    signals.started(pid, group)
    if on_spawn is not None:
        on_spawn(pid)
    status = None
    others = all_children is not None
    busy = False
    while status is None or others:
        signal.sigtimedwait([signal.SIGCHLD], 0 if busy else tick)
        if on_tick is not None:
            busy = on_tick()
        while True:
            try:
                done, raw = os.waitpid(-1 if all_children is not None else pid, os.WNOHANG)
            except ChildProcessError:
                others = False   # no child left
                break
            if not done:
                if others and status is not None and not _children_but(guardian.pid):
                    others = False   # the guardian, a child too, lives until mrhooker ends
                break
            if done == guardian.pid:   # killed by someone: mrhooker's own child, not the program's
                continue
            if all_children is not None:
                all_children[done] = raw
            if done == pid:
                status = raw
                if all_children is None:
                    break
    guardian.forget()
    signals.ended()
    code = os.waitstatus_to_exitcode(status)
    log("exit status: %s" % (code if code >= 0 else "killed by signal %d" % -code))
    return status
