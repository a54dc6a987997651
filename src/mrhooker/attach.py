"""Loading a shared library into a running process that mrhooker did not start, and calling one of its functions
there (`mrhooker trace -p`: attached.py loads the runtime so and calls its mrhooker_attach): the process is left
exactly as it was, except that the library is loaded, its constructors and that function have run.

Build/CLI side only: nothing that runs inside a target imports this module.

How (x86-64 Linux, glibc 2.34+, whose libc.so.6 exports dlopen):
- Every thread is stopped with PTRACE_SEIZE + PTRACE_INTERRUPT (no signal is sent, so the program can't see
  it, and a SIGSTOP the program gets meanwhile keeps its meaning). One thread is chosen; the others are
  released at once, before the call, so that a lock another thread holds (the loader's, malloc's) is released
  as it would have been, instead of deadlocking the call; the program is stopped only while the threads are
  looked at.
- The chosen thread calls the target's own functions, found from /proc/PID/maps and libc.so.6's dynamic
  symbols (pyelftools): __errno_location() (to put the thread's errno back afterwards), then
  dlopen(path, RTLD_NOW), and dlerror() when it fails. Each call: the arguments in rdi/rsi, the path written on
  the thread's stack below its red zone (128 bytes), the stack 16-byte aligned at the call, and a return
  address of 0, so the return is a SIGSEGV stop (at rip 0) where rax is read; that SIGSEGV is never delivered.
- All registers are then put back exactly: the general registers (PTRACE_GETREGS/SETREGS) and the whole
  FPU/SSE/AVX state (PTRACE_GETREGSET NT_X86_XSTATE), and the thread's errno (memory, not a register: a
  program may be stopped between a failed call and its errno test).

A thread stopped inside a system call (read, nanosleep, accept, poll, futex ...) restarts as the kernel would
have restarted it. Idea: a ptrace stop caused by PTRACE_INTERRUPT happens inside the kernel's signal handling
on the way back to user space, *before* the kernel decides about restarting the interrupted call; the thread's
registers then hold rax = -ERESTARTSYS/-ERESTARTNOINTR/-ERESTARTNOHAND/-ERESTART_RESTARTBLOCK (512/513/514/
516), orig_rax = the call's number, rip just past the 2-byte `syscall` instruction. For the remote calls
orig_rax is set to -1, so the kernel does not "restart" into them. At the end the original registers are put
back unchanged (orig_rax and rax included) and the thread resumes from a stop that is again inside the
signal-handling path, so the kernel makes the decision itself: rip -= 2 with rax = orig_rax (or
__NR_restart_syscall for 516, with the thread's restart_block, which the remote calls don't touch) when no
handler runs, and -EINTR or a restart according to SA_RESTART when a signal's handler runs. Doing the rip -= 2
by hand instead would restart a call the kernel would have failed with EINTR (a handler without SA_RESTART, as
Python's: Ctrl-C during time.sleep() would wait for the whole sleep). The kernel never restarts epoll_wait
(signal(7)): stopping the thread makes it fail with EINTR, under strace -p or gdb too; one without a timeout
is made restartable instead (_restartable). The other calls signal(7) lists, and epoll_wait with a timeout,
return EINTR to the program, as under strace -p.

Signals are never lost or duplicated, and keep their siginfo:
- While the threads are being stopped, a signal-delivery-stop is passed on at once (PTRACE_CONT with that
  signal): the kernel delivers it as it would have (handler, default action, or ignored); the pending
  interrupt then stops the thread again.
- During the remote calls the chosen thread's signal mask is left as it is (blocking signals with
  PTRACE_SETSIGMASK would drop the mask that ppoll/pselect/sigsuspend keep aside to restore, and a blocked
  SIGSEGV makes the kernel reset the program's SIGSEGV action when the return faults: a thread blocking it is
  not chosen, a process ignoring it is refused), so the signals it takes are caught at their
  signal-delivery-stop and held back (their siginfo kept). After the registers are restored,
  the first is delivered by the detach itself (PTRACE_SETSIGINFO + PTRACE_DETACH with its number), so the
  kernel decides EINTR vs restart for the interrupted call with it; any further ones are sent again with
  tgkill (same signal and thread; si_pid becomes mrhooker's). A SIGSTOP during the call is held back the same
  way: the process stops after the detach, and goes on at SIGCONT.

mrhooker may die during a call (kill -9): the kernel then detaches the thread, which runs the call on to its
end. The long calls (dlopen, the runtime's attach) are "safe" (_Session.call): they return into glibc's
__restore_rt, whose rt_sigreturn puts the thread back from a signal frame written below the call: registers,
FPU state, signal mask, alternate stack, and an interrupted system call made again (rt_sigreturn resets the
restart block, so a sleep or timed wait starts again from its whole time: the one difference). mrhooker, alive,
stops the thread at that rt_sigreturn (PTRACE_SYSCALL), cancels it, and goes on as after a fault's return. The
short calls (__errno_location, sigaltstack, dlerror, a second dlopen that loads nothing) still return to address
0: microseconds.

The chosen thread runs dlopen, malloc and the constructors on top of whatever it was doing, so it must hold
none of the C library's locks they take (a lock it holds itself is never released: the call blocks for good,
and the loader's lock it took stays taken: the program hangs at its next dlopen). Idea: where each thread was
stopped says whether it may hold one (_place): waiting in a system call it holds none (the main thread first:
the program's running threads lose no time); inside the dynamic loader, in malloc's mmap/brk, or running the
C library's own code it may. Inside fork(), once a process has had a second thread (our attach gives it
one), glibc holds the stdio and every malloc arena lock around its clone, and its atfork lock (which our
constructor's pthread_atfork takes) whenever it runs its own code between the handlers; glibc before 2.36
holds that lock across the handlers too, whose code may be anyone's: a thread in code outside the C library
is taken only while that lock is free (its address found in __register_atfork's code: _atfork_lock, read
with the process stopped). Our own fork handlers hold their build's start_lock: a build attached again
inside them says so (runtime/attach.c, -EAGAIN) and attached.py tries again. When no thread can make the
call, the process is let go and stopped again 10 ms later, up to ATTEMPTS times (such a window lasts
microseconds), then refused; a thread in the C library's code is taken after RISKY_AFTER stops (a program
that runs it all the time, memset in a loop, is in one that holds no lock far more often than not).

A lock the call needs may be held by another thread, released, taken again at once: a thread walking the
loaded objects in a loop (dl_iterate_phdr; C++ unwinding does) holds the loader's list lock nearly all the time,
and the call's woken thread, scheduled microseconds later (later still as each system call of a safe call stops
it for mrhooker), finds it taken again: dlopen waited >10 s under load. Idea (_HandOver): a call whose thread,
STARVED_AFTER into the call, stops at a FUTEX_WAIT on a pthread mutex (its owner's tid at offset 8) whose owner
runs, is given the lock: the owner is seized and run with a write watchpoint on the lock word (a perf event of
its own, which dies with mrhooker: _watch_writes) until it writes 0 there, its unlock, and kept stopped, holding
nothing it held for that lock, until the call's thread has taken it and gone on (two of its stops) or HOLD
passed; then let go. An owner that keeps it beyond the call's time is let go (the call's timeout, below).

A call put back in the middle of dlopen leaves the loader's lock taken and its lists half-written (the program
crashed or hung later). So a safe call that waits for a lock another thread holds when its time is up, or that
is running when mrhooker is interrupted (Ctrl-C), is left to run to its end, and its return puts the thread back
by itself, as when mrhooker dies (above); the library then stays loaded and unused. Put back are the short calls,
and a safe call that waits for anything else at its time (a lock the thread itself held when stopped: it would
wait forever).

Hazards, not handled yet: a thread waiting in a system call, running a program's own code, or taken in the
C library's at last, may still hold a lock dlopen needs (a dl_iterate_phdr callback's, a signal handler's
that interrupted malloc); the call then times out (above). A constructor that sleeps and is interrupted by a signal
overwrites the thread's restart_block (a nanosleep of the program's then restarts with the constructor's
time). The thread's stack must have room for dlopen and the constructors.
"""
import ctypes
import errno
import os
import platform
import signal
import struct
import time

from mrhooker.errors import MrhookerError

# ptrace requests and constants (linux/ptrace.h, x86-64).
PTRACE_CONT = 7
PTRACE_SINGLESTEP = 9
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_DETACH = 17
PTRACE_GETSIGINFO = 0x4202
PTRACE_SETSIGINFO = 0x4203
PTRACE_GETREGSET = 0x4204
PTRACE_SETREGSET = 0x4205
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_EVENT_STOP = 128
NT_X86_XSTATE = 0x202
XSTATE_MAX = 16384          # bytes: more than any x86 XSAVE area the kernel gives (AMX: ~11 KB)
WALL = 0x40000000           # __WALL: wait for threads too
RTLD_NOW = 2
RTLD_NOLOAD = 4
STEPS_OUT = 32              # single steps that take a thread out of a function's first bytes (entry hooks)
STEP_TIMEOUT = 0.2          # seconds one step may take (more: it is blocked in a system call)
ATTEMPTS = 50               # stops of the whole process, 10 ms apart, before giving up finding a thread that can
                            # make the call
RED_ZONE = 128
SIGINFO_SIZE = 128
NO_SYSCALL = (1 << 64) - 1  # orig_rax = -1: "not in a system call", so the kernel restarts nothing
EINTR_RAX = (1 << 64) - errno.EINTR
ERESTARTNOHAND_RAX = (1 << 64) - 514
SYS_EPOLL_WAIT, SYS_EPOLL_PWAIT, SYS_EPOLL_PWAIT2 = 232, 281, 441
# mmap mprotect munmap brk mremap madvise: malloc makes them holding its arena's lock
MALLOC_SYSCALLS = {9, 10, 11, 12, 25, 28}
SYS_FUTEX = 202             # a lock's wait: the thread may hold another
FUTEX_WAITS = {0, 9}        # FUTEX_WAIT, FUTEX_WAIT_BITSET (the op without its PRIVATE and CLOCK flags)
FUTEX_WAKE = 1
ENOSYS_RAX = (1 << 64) - errno.ENOSYS   # rax at a syscall-entry stop (at the exit: the result)
STARVED_AFTER = 0.05        # seconds a remote call may wait for a lock another thread holds before that thread is
                            # made to hand it over (_HandOver)
HOLD = 0.02                 # seconds the holder then stays stopped, for the waiting call to take the lock
SYS_PERF_EVENT_OPEN = 298
PERF_TYPE_BREAKPOINT, HW_BREAKPOINT_W = 5, 2
# perf_event_attr's flag bits: exclude_kernel, exclude_hv, remove_on_exec, sigtrap (Linux 5.13)
PERF_FLAGS = 1 << 5 | 1 << 6 | 1 << 36 | 1 << 37
PERF_ATTR_SIZE = 128        # PERF_ATTR_SIZE_VER7, the first with sigtrap
TRAP_PERF = 6               # si_code of a perf event's SIGTRAP
# clone fork vfork clone3: fork makes the first holding the atfork, stdio list and malloc arena locks
FORK_SYSCALLS = {56, 57, 58, 435}
SAFE, PLAIN, RISKY = 0, 1, 2   # where a thread was stopped (_place), best first
RISKY_AFTER = 40            # stops after which a thread running the C library's own code is taken
UNKNOWN = object()          # the atfork lock's address, not looked for yet (_Session.choose)
# Signals a fault raises synchronously: one of them during a remote call means the call itself crashed.
FAULTS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGTRAP, signal.SIGSYS}
SIGSEGV_BIT = 1 << (signal.SIGSEGV - 1)   # in /proc/PID/status's signal masks
PTRACE_SYSCALL = 24
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETSIGMASK = 0x420a
PTRACE_O_TRACESYSGOOD = 1
SYSCALL_STOP = signal.SIGTRAP | 0x80   # a syscall-stop's signal with PTRACE_O_TRACESYSGOOD
SYS_RT_SIGRETURN = 15
# glibc's __restore_rt, the return of every signal handler: `mov $15, %rax; syscall` (rt_sigreturn)
RESTORER_CODE = bytes.fromhex("48c7c00f0000000f05")
RESTART_RAX = {(1 << 64) - n for n in (512, 513, 514)}   # -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND
RESTART_BLOCK_RAX = (1 << 64) - 516                       # -ERESTART_RESTARTBLOCK
FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2 = 0x46505853, 0x46505845
UC_FP_XSTATE, UC_SIGCONTEXT_SS = 1, 2


class _Regs(ctypes.Structure):
    """struct user_regs_struct of x86-64 (sys/user.h)."""
    _fields_ = [(name, ctypes.c_ulonglong) for name in (
        "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base "
        "gs_base ds es fs gs").split()]


class _IOVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_libc = None


def _lib():
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        lib.ptrace.restype = ctypes.c_long
        lib.syscall.restype = ctypes.c_long
        _libc = lib
    return _libc


def _ptrace(request, tid, addr=None, data=None):
    ctypes.set_errno(0)
    result = _lib().ptrace(request, tid, addr, data)
    if result == -1:
        err = ctypes.get_errno()
        if err:
            raise OSError(err, os.strerror(err))
    return result


def _tgkill(pid, tid, sig):
    SYS_tgkill = 234
    _lib().syscall(ctypes.c_long(SYS_tgkill), ctypes.c_long(pid), ctypes.c_long(tid), ctypes.c_long(sig))


# ---- what the process is, before anything stops it ------------------------------------------------------

def _status(pid, tid=None):
    """/proc/PID/status (or a thread's) as a dict, or a refusal when there is no such process."""
    try:
        with open("/proc/%d/status" % pid if tid is None else "/proc/%d/task/%d/status" % (pid, tid)) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except FileNotFoundError:
        raise MrhookerError("no process with pid %d" % pid)


def _signal_set(status, field):
    return int(status.get(field, "0"), 16)


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


def _ptrace_scope():
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None   # no Yama in this kernel: classic ptrace permissions only


def _check_state(pid):
    """Refuses a process that can't be attached for a reason visible without trying (one message each)."""
    if platform.machine() != "x86_64":
        raise MrhookerError("attaching to a process works on x86-64 only (this machine is %s)" % platform.machine())
    st = _status(pid)
    name = "process %d (%s)" % (pid, st.get("Name", "?"))
    state = st.get("State", "")
    if (state.startswith("Z") or state.startswith("X")) and int(st.get("Threads", "1") or 1) > 1:
        raise MrhookerError("%s: its main thread has ended (pthread_exit) while other threads run on; mrhooker "
                            "can't attach to such a process" % name)
    if state.startswith("Z") or state.startswith("X"):
        raise MrhookerError("%s is a zombie (it has exited; its parent has not collected it): nothing runs there "
                            "to attach to" % name)
    mine = _status(os.getpid())
    if st.get("Seccomp", "0").strip() == "1" or _filters(st) > _filters(mine):
        # more filters than mrhooker's own (a container's, which both inherit, let through what mrhooker does)
        raise MrhookerError("%s runs under a seccomp filter of its own (/proc/%d/status): a system call of the "
                            "attach (mmap, socket, connect ...) could be refused or kill it; mrhooker does not "
                            "attach to such a process" % (name, pid))
    tracer = int(st.get("TracerPid", "0") or 0)
    if tracer:
        raise MrhookerError("%s is already traced by process %d (%s): a process has one tracer at a time; "
                            "detach that one (quit gdb, stop strace) and try again" % (name, tracer, _comm(tracer)))
    if state.startswith("T") or state.startswith("t"):
        raise MrhookerError("%s is stopped (SIGSTOP, Ctrl-Z): continue it first (kill -CONT %d)" % (name, pid))
    if _signal_set(st, "SigIgn") & SIGSEGV_BIT:
        raise MrhookerError("%s ignores SIGSEGV, which ends the injection's call (the kernel would reset that "
                            "action): it can't be attached" % name)
    return name, st


def _filters(st):
    try:
        return int(st.get("Seccomp_filters", "0").strip() or 0)
    except ValueError:
        return 0


def _refuse_permission(pid, name, st):
    """The reason PTRACE_SEIZE said EPERM, with what to do."""
    uids = st.get("Uid", "").split()
    if os.geteuid() != 0 and uids and str(os.geteuid()) not in uids[:3]:   # real, effective, saved
        return MrhookerError("%s belongs to another user (uid %s): attach as that user, or as root (CAP_SYS_PTRACE)"
                             % (name, uids[0]))
    scope = _ptrace_scope()
    if scope:
        what = {1: "only a parent may attach to its descendants", 2: "only a process with CAP_SYS_PTRACE may attach",
                3: "no process may attach, until the next reboot"}.get(scope, "attaching is restricted")
        fix = ("" if scope == 3 else
               ": run mrhooker as root (CAP_SYS_PTRACE), or allow it with: sysctl kernel.yama.ptrace_scope=0")
        return MrhookerError("%s: kernel.yama.ptrace_scope is %d (%s)%s" % (name, scope, what, fix))
    if os.geteuid() != 0 and uids and any(u != str(os.geteuid()) for u in uids):
        return MrhookerError("%s changed its user ids (set-uid program, uids %s): attach as root (CAP_SYS_PTRACE)"
                             % (name, " ".join(uids)))
    try:   # another tracer may have come since the state was read (two mrhookers at once)
        tracer = int(_status(pid).get("TracerPid", "0") or 0)
    except MrhookerError:
        tracer = 0
    if tracer:
        return MrhookerError("%s is already traced by process %d (%s): a process has one tracer at a time"
                             % (name, tracer, _comm(tracer)))
    return MrhookerError("%s can't be attached: permission denied (not dumpable, or a security module refuses it)%s"
                         % (name, "" if os.geteuid() == 0 else "; try as root"))


def _check_machine(pid, name, st):
    """Refuses a program that is not x86-64 (a 32-bit one, another architecture under emulation)."""
    try:
        exe = open("/proc/%d/exe" % pid, "rb")
    except PermissionError:   # said before anything else is needed (pyelftools included)
        raise _refuse_permission(pid, name, st)
    except OSError:
        return   # a kernel thread, a vanished program: the later steps say so
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    try:
        with exe:
            elf = ELFFile(exe)
            machine, elfclass = elf["e_machine"], elf.elfclass
    except (OSError, ELFError):
        return
    if (machine, elfclass) != ("EM_X86_64", 64):
        raise MrhookerError("%s is not an x86-64 program (%d-bit %s): mrhooker attaches to x86-64 programs only"
                            % (name, elfclass, machine[3:] if machine.startswith("EM_") else machine))


def _maps(pid, name, st):
    """[(start, end, offset, path)] of the process's file mappings."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            lines = f.read().splitlines()
    except PermissionError:
        raise _refuse_permission(pid, name, st)
    except FileNotFoundError:
        raise MrhookerError("no process with pid %d" % pid)
    if not lines:   # a zombie's maps are empty: it ended after the state was read
        raise MrhookerError("%s exited" % name)
    maps = []
    for line in lines:
        fields = line.split(None, 5)
        if len(fields) == 6 and fields[5].startswith("/"):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            maps.append((start, end, int(fields[2], 16), fields[5]))
    return maps


_exports = {}   # (device, inode, size, mtime, names) of a file -> its _exported(): every process has the same libc


def _exported(path, opened, names):
    """{name: offset in the file's mapping} of the defined functions (or data) `names` that the ELF file exports, found
    through its symbol hash table (a few symbols read, not libc's ~3,000: ~10 ms instead of ~70)."""
    st = os.fstat(opened.fileno())
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, names)
    if key not in _exports:
        _exports[key] = _read_exported(path, opened, names)
    return dict(_exports[key])


def _read_exported(path, opened, names):
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    try:
        elf = ELFFile(opened)
        table = elf.get_section_by_name(".gnu.hash") or elf.get_section_by_name(".hash")
        if table is None or not hasattr(table, "get_symbol"):
            table = elf.get_section_by_name(".dynsym")
            lookup = lambda name: (table.get_symbol_by_name(name) or [None])[0] if table is not None else None
        else:
            lookup = table.get_symbol
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        first_vaddr = min(s["p_vaddr"] - s["p_offset"] for s in loads) if loads else 0
        found = {}
        for name in names:
            sym = lookup(name)
            if sym is not None and sym["st_shndx"] != "SHN_UNDEF" and sym["st_info"]["type"] in (
                    "STT_FUNC", "STT_GNU_IFUNC", "STT_OBJECT"):
                found[name] = sym["st_value"] - first_vaddr
        return found
    except ELFError as e:
        raise MrhookerError("%s: not an ELF file mrhooker can read (%s)" % (path, e))


_restorers = {}   # (device, inode, size, mtime) of a libc -> _restorer()


def _restorer(opened):
    """The offset in the file's mapping (as _exported's) of glibc's signal return, __restore_rt (not exported:
    found by its code in the executable segment), or None."""
    st = os.fstat(opened.fileno())
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _restorers:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
        found = None
        try:
            elf = ELFFile(opened)
            loads = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
            first_vaddr = min(seg["p_vaddr"] - seg["p_offset"] for seg in loads) if loads else 0
            for seg in loads:
                if seg["p_flags"] & 1:   # PF_X
                    at = seg.data().find(RESTORER_CODE)
                    if at >= 0:
                        found = seg["p_vaddr"] + at - first_vaddr
                        break
        except ELFError:
            pass
        _restorers[key] = found
    return _restorers[key]


_atfork_locks = {}   # (device, inode, size, mtime) of a libc -> _atfork_lock()


def _atfork_lock(opened, register_atfork):
    """The offset in the file's mapping (as _exported's) of glibc's atfork_lock, or None. fork() holds it
    while it runs (glibc 2.36 lets go of it around each handler it calls; older ones hold it across them too),
    and __register_atfork takes it first of all: the word of that function's first instruction that takes a
    lock (`lock cmpxchg` on a rip-relative word). Not exported; found by its code."""
    st = os.fstat(opened.fileno())
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, register_atfork)
    if key not in _atfork_locks:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
        from mrhooker.prologue import decoder
        found = None
        try:
            capstone, md = decoder()
            from capstone import x86
            elf = ELFFile(opened)
            loads = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
            first_vaddr = min(seg["p_vaddr"] - seg["p_offset"] for seg in loads) if loads else 0
            vaddr = register_atfork + first_vaddr
            for seg in loads:
                if seg["p_vaddr"] <= vaddr < seg["p_vaddr"] + seg["p_filesz"] and seg["p_flags"] & 1:
                    opened.seek(seg["p_offset"] + vaddr - seg["p_vaddr"])
                    for insn in md.disasm(opened.read(64), vaddr):
                        if x86.X86_PREFIX_LOCK in insn.prefix:
                            if insn.mnemonic.endswith("cmpxchg") and insn.operands[0].type == x86.X86_OP_MEM \
                                    and insn.operands[0].mem.base == x86.X86_REG_RIP:
                                found = insn.address + insn.size + insn.operands[0].mem.disp - first_vaddr
                            break
                        if insn.group(capstone.CS_GRP_JUMP) or insn.group(capstone.CS_GRP_CALL) \
                                or insn.group(capstone.CS_GRP_RET):
                            break
                    break
        except (ELFError, MrhookerError):
            pass
        _atfork_locks[key] = found
    return _atfork_locks[key]


def _mapped(pid, maps, library, base=None):
    """(load base, opened file) of the library named `library` in the process's mappings, or None. The file
    opened is the very one mapped (through /proc/PID/map_files: even if replaced on disk since, or in another
    mount namespace). base: where the copy wanted is loaded, when the process may have two (_program_libc)."""
    mapped = [m for m in maps if os.path.basename(m[3].replace(" (deleted)", "")) == library]
    if base is not None and any(m[0] == base and m[2] == 0 for m in mapped):
        mapped = [m for m in mapped if m[0] == base and m[2] == 0]
    if not mapped:
        return None
    base = min(m[0] - m[2] for m in mapped)   # where the file's offset 0 is mapped
    start, end, _, path = min(mapped)
    try:
        return base, path, open("/proc/%d/map_files/%x-%x" % (pid, start, end), "rb")
    except OSError:
        return base, path, open("/proc/%d/root%s" % (pid, path), "rb")


def _program_libc(pid, maps):
    """The load base of the libc of the program's own namespace, from the loader's list of loaded objects
    (_r_debug.r_map, read through /proc/PID/mem), or None if it can't be read. A process whose hooks started
    has a second libc.so.6 mapped, its hook namespace's: a dlopen through that one fails and says nothing."""
    loader = next((m[3] for m in maps if os.path.basename(m[3]).startswith("ld-linux")), None)
    ld = _mapped(pid, maps, os.path.basename(loader)) if loader else None
    if ld is None:
        return None
    base, path, opened = ld
    try:
        with opened:
            r_debug = _exported(path, opened, ("_r_debug",)).get("_r_debug")
        if r_debug is None:
            return None
        with _Memory(pid) as mem:
            entry = struct.unpack("<Q", mem.read(base + r_debug + 8, 8))[0]   # r_map, after int r_version
            for _ in range(10000):   # struct link_map: l_addr, l_name, l_ld, l_next, ...
                if not entry:
                    return None
                l_addr, l_name, _, l_next = struct.unpack("<4Q", mem.read(entry, 32))
                if l_name and os.path.basename(mem.read_string(l_name)) == "libc.so.6":
                    return l_addr
                entry = l_next
    except (OSError, ValueError, struct.error):
        return None
    return None


def _check_hook_side(pid, name, maps, library):
    """Refuses a build with hooks (its pyrt.so beside it) for a process whose hooks of another build started, unless
    their interpreter can take this build's script (runtime/pyrt.c, mrh_hook_restart): that is, they were
    attached too (their thread-local block is the one attach builds share: runtime/tls.c) with this same runtime
    file (the same runtime and Python). A second interpreter, in a namespace of its own, is never made: it crashed
    the program. Traces are not refused: they start no interpreter."""
    directory = os.path.dirname(library)
    ours = os.path.join(directory, "pyrt.so")
    if not os.path.exists(ours):
        return
    for start, end, offset, path in maps:
        path = path.replace(" (deleted)", "")
        theirs = os.path.dirname(path)
        if os.path.basename(path) != "pyrt.so" or theirs == directory or offset != 0:
            continue
        try:
            attached = any(f.startswith("libmrhooker-tls-") for f in os.listdir(theirs))
            with open("/proc/%d/map_files/%x-%x" % (pid, start, end), "rb") as mapped, open(ours, "rb") as own:
                same = attached and mapped.read() == own.read()
        except OSError:
            same = False
        if not same:
            raise MrhookerError(
                "%s runs hooks already (%s) that can't take another script's: %s; attach with that script again, "
                "trace it (mrhooker trace -p), or restart it" % (
                    name, theirs, "another mrhooker or Python built them" if attached else
                    "it was started with them (or they are gone from the cache)"))
        return


def _functions(pid, name, maps):
    """({dlopen, dlerror, __errno_location: address in the process}, [(start, end) of the dynamic loader's
    mappings]), or a refusal saying why there is none."""
    libc = _mapped_libc(pid, maps)
    if libc is None:
        raise MrhookerError("%s has no libc.so.6 loaded: it is a static program (or not a glibc one), which "
                            "can't load a library; only dynamically linked glibc programs can be attached" % name)
    base, path, opened = libc
    with opened:
        found = _exported(path, opened, ("dlopen", "dlerror", "__errno_location", "sigaltstack"))
        restorer = _restorer(opened)
    functions = {k: base + v for k, v in found.items()}
    if restorer is not None:
        functions["__restore_rt"] = base + restorer
    if "__errno_location" not in functions:
        raise MrhookerError("%s: its libc.so.6 exports no __errno_location: not a glibc mrhooker knows" % name)
    if "dlopen" not in functions or "dlerror" not in functions:
        libdl = _mapped(pid, maps, "libdl.so.2")   # glibc before 2.34: dlopen is in libdl, if the program uses it
        if libdl is not None:
            base, path, opened = libdl
            with opened:
                found = _exported(path, opened, ("dlopen", "dlerror"))
            functions.update((k, base + v) for k, v in found.items())
        if "dlopen" not in functions or "dlerror" not in functions:
            raise MrhookerError("%s: its C library exports no dlopen (glibc older than 2.34, without libdl.so.2 "
                                "loaded): it can't be attached" % name)
    loader = [(m[0], m[1]) for m in maps if os.path.basename(m[3]).startswith("ld-linux")]
    return functions, loader


def _mapped_libc(pid, maps):
    """_mapped() of the program's own libc.so.6, or None."""
    twice = sum(1 for m in maps if m[2] == 0 and os.path.basename(m[3]) == "libc.so.6") > 1
    return _mapped(pid, maps, "libc.so.6", _program_libc(pid, maps) if twice else None)


def _atfork_lock_address(pid, maps):
    """The address of the program's libc's atfork_lock in the process (_atfork_lock), or None."""
    base, path, opened = _mapped_libc(pid, maps)
    with opened:
        found = _exported(path, opened, ("__register_atfork",))
        lock = _atfork_lock(opened, found["__register_atfork"]) if found else None
    return None if lock is None else base + lock


def _check_library(path):
    """The library's resolved absolute path (what the target's dlopen opens), refused when missing or when
    another user could replace it (cache.check_private)."""
    from mrhooker.cache import check_private
    if not os.path.isfile(path):
        raise MrhookerError("%s: no such library" % path)
    return check_private(os.path.abspath(path), "the library")


def _library_function(session, handle, path, function):
    """The address in the process of an exported function of the library dlopen loaded (handle: its link_map,
    whose first field is its load bias; our libraries' first segment is at address 0)."""
    bias = struct.unpack("<Q", session.mem.read(handle, 8))[0]
    with open(path, "rb") as opened:
        found = _exported(path, opened, (function,))
    if function not in found:
        raise MrhookerError("%s exports no %s: not a library of this mrhooker" % (path, function))
    return bias + found[function]


# ---- stopped threads ------------------------------------------------------------------------------------

class At:
    """An argument of a remote call: the address of its data plus offset."""

    def __init__(self, offset):
        self.offset = offset


class _Gone(Exception):
    """The thread exited (or the whole process did) while we waited for it."""


class _Thread:
    def __init__(self, pid, tid):
        self.pid = pid
        self.tid = tid
        self.regs = None          # registers when stopped, restored at the end (None: not looked at)
        self.xstate = None        # FPU/SSE/AVX state, same
        self.in_signal_stop = False   # the current stop is a signal-delivery-stop (a signal can be injected)
        self.held = []            # siginfos held back during the remote calls, delivered after (FIFO)
        self.watchpoint = None    # the fd of a perf watchpoint on it (_HandOver.take); closed, it is gone

    def wait(self, deadline, pass_signals):
        """Waits for the next stop; returns (signal, event). pass_signals: signal-delivery-stops are passed on
        to the kernel at once and the wait goes on (the pending interrupt stops the thread again)."""
        delay, spins = 0.00005, 0
        while True:
            try:
                tid, status = os.waitpid(self.tid, os.WNOHANG | WALL)
            except ChildProcessError:
                raise _Gone()
            if tid == 0:
                if time.monotonic() > deadline:
                    raise TimeoutError()
                # polled (blocking in waitpid can't time out): the stop is seen within 1 ms; first a few yields,
                # since a safe call's system calls stop the thread every few microseconds
                if spins < 50:
                    spins += 1
                    os.sched_yield()
                    continue
                time.sleep(delay)
                delay = min(delay * 2, 0.001)
                continue
            if not os.WIFSTOPPED(status):
                raise _Gone()
            sig, event = os.WSTOPSIG(status), status >> 16
            self.in_signal_stop = event == 0 and sig != SYSCALL_STOP   # (a syscall-stop is no signal)
            if event == 0 and pass_signals:
                _ptrace(PTRACE_CONT, self.tid, None, sig)
                continue
            return sig, event

    def get_state(self):
        regs = _Regs()
        _ptrace(PTRACE_GETREGS, self.tid, None, ctypes.byref(regs))
        buf = ctypes.create_string_buffer(XSTATE_MAX)
        iov = _IOVec(ctypes.cast(buf, ctypes.c_void_p), XSTATE_MAX)
        _ptrace(PTRACE_GETREGSET, self.tid, NT_X86_XSTATE, ctypes.byref(iov))
        return regs, buf.raw[:iov.iov_len]

    def set_state(self, regs, xstate):
        _ptrace(PTRACE_SETREGS, self.tid, None, ctypes.byref(regs))
        buf = ctypes.create_string_buffer(xstate, len(xstate))
        iov = _IOVec(ctypes.cast(buf, ctypes.c_void_p), len(xstate))
        _ptrace(PTRACE_SETREGSET, self.tid, NT_X86_XSTATE, ctypes.byref(iov))

    def hold_signal(self):
        self.held.append(_siginfo(self.tid))

    def detach(self):
        """Detaches, delivering the held-back signals: the first with its siginfo by the detach itself when
        the thread is in a signal-delivery-stop, the others (or all, from another stop) by tgkill first."""
        first = None
        if self.held and self.in_signal_stop:
            first = self.held.pop(0)
        for info in self.held:
            _tgkill(self.pid, self.tid, struct.unpack_from("i", info)[0])
        self.held = []
        sig = 0
        if first is not None:
            buf = ctypes.create_string_buffer(first, SIGINFO_SIZE)
            _ptrace(PTRACE_SETSIGINFO, self.tid, None, buf)
            sig = struct.unpack_from("i", first)[0]
        _ptrace(PTRACE_DETACH, self.tid, None, sig)


def _restartable(regs):
    """The registers to put back: the thread's own, except for an epoll_wait without a timeout that our stop
    interrupted. The kernel never restarts epoll_wait (signal(7)): stopping the thread made it fail with EINTR
    (as under strace -p or gdb), which an event loop may take for an error. Its result becomes
    -ERESTARTNOHAND, so the kernel restarts it when no handler runs and still fails it with EINTR when a
    signal's handler does, exactly as for a real signal. A wait with a timeout keeps its EINTR: restarting it
    would wait its whole timeout again."""
    regs = _Regs.from_buffer_copy(regs)
    forever = ((regs.orig_rax in (SYS_EPOLL_WAIT, SYS_EPOLL_PWAIT) and regs.r10 & 0xFFFFFFFF == 0xFFFFFFFF)
               or (regs.orig_rax == SYS_EPOLL_PWAIT2 and regs.r10 == 0))
    if forever and regs.rax == EINTR_RAX:
        regs.rax = ERESTARTNOHAND_RAX
    return regs


def _place(regs, loader, libc):
    """Where a stopped thread is, for _Session.choose: SAFE (waiting in a system call that holds no lock),
    PLAIN (in code outside the C library, or waiting for a lock: futex), RISKY (running the C library's own
    code: memcpy or strlen hold no lock, malloc or pthread_create may), or None: it may hold a lock the call
    needs (inside the dynamic loader, fork's clone, malloc's system calls)."""
    inside = lambda ranges: any(lo <= regs.rip < hi for lo, hi in ranges)
    if inside(loader) or regs.orig_rax in FORK_SYSCALLS or regs.orig_rax in MALLOC_SYSCALLS:
        return None
    if regs.orig_rax == NO_SYSCALL:   # stopped in its own code, not in a system call
        return RISKY if inside(libc) else PLAIN
    return PLAIN if regs.orig_rax == SYS_FUTEX else SAFE


class _Memory:
    """A process's memory, through /proc/PID/mem (its tracer may write it; a reader needs ptrace's access)."""

    def __init__(self, pid, writable=False):
        self.file = open("/proc/%d/mem" % pid, "r+b" if writable else "rb", buffering=0)

    def read(self, address, size):
        self.file.seek(address)
        return self.file.read(size)

    def write(self, address, data):
        self.file.seek(address)
        self.file.write(data)

    def read_string(self, address, limit=4096):
        """A NUL-terminated string, decoded (the bytes after it may be unmapped)."""
        raw = b""
        while len(raw) < limit:
            try:   # 64 bytes at a time; byte by byte near the end of a mapping
                chunk = self.read(address + len(raw), 64)
            except OSError:
                try:
                    chunk = self.read(address + len(raw), 1)
                except OSError:
                    break
            raw += chunk
            if b"\0" in chunk or not chunk:
                break
        return raw.split(b"\0", 1)[0].decode(errors="replace")

    def close(self):
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _stopped(tid):
    """Whether a tracee is in a ptrace-stop (ptrace requests other than PTRACE_INTERRUPT work only then)."""
    try:
        _ptrace(PTRACE_GETREGS, tid, None, ctypes.byref(_Regs()))
        return True
    except OSError:
        return False


def _tids(pid):
    try:
        return {int(t) for t in os.listdir("/proc/%d/task" % pid)}
    except FileNotFoundError:
        raise MrhookerError("process %d exited" % pid)


class _Session:
    """The threads of one process under ptrace; every way out (error, timeout, Ctrl-C) leaves through
    close(), which puts the chosen thread back and detaches all."""

    def __init__(self, pid, name, timeout):
        self.pid = pid
        self.name = name
        self.timeout = timeout
        self.threads = {}
        self.chosen = None
        self.mem = None
        self.call_in_flight = False   # the chosen thread runs a remote call (not stopped)
        self.safe_call_running = False   # ... a safe one, not returned yet: close() lets it finish
        self.saved_errno = None       # (address, bytes) of the chosen thread's errno, put back by close()
        self.functions = {}           # the target's functions (_functions)
        self.syscall_stops = False    # PTRACE_O_TRACESYSGOOD set on the chosen thread (safe calls)
        self.sigmask = 0              # the chosen thread's signal mask, and alternate signal stack
        self.altstack = (0, 2, 0)     # (ss_sp, ss_flags, ss_size): SS_DISABLE until read
        self.wants_atfork_lock = False   # choose() needs the atfork lock's address

    def seize_all(self):
        """Seizes and stops every thread; threads created meanwhile are seized too (they are listed again
        until no new one appears; a stopped thread creates none)."""
        while True:
            new = _tids(self.pid) - set(self.threads)
            if not new:
                break
            for tid in sorted(new):
                try:
                    _ptrace(PTRACE_SEIZE, tid)
                except OSError as e:
                    if e.errno == errno.ESRCH:
                        continue   # exited meanwhile
                    raise
                self.threads[tid] = _Thread(self.pid, tid)
                try:
                    _ptrace(PTRACE_INTERRUPT, tid)
                except OSError as e:
                    if e.errno != errno.ESRCH:
                        raise   # else it exited: its wait says so
            deadline = time.monotonic() + self.timeout
            for tid in sorted(new):
                thread = self.threads.get(tid)
                if thread is None or thread.regs is not None:
                    continue
                try:
                    thread.wait(deadline, pass_signals=True)
                    thread.regs, thread.xstate = thread.get_state()
                except _Gone:
                    del self.threads[tid]
                except TimeoutError:
                    raise MrhookerError("%s: thread %d did not stop within %g s" % (self.name, tid, self.timeout))
        if not self.threads:
            raise MrhookerError("%s exited" % self.name)

    def choose(self, loader, libc, atfork_lock, risky):
        """The thread to make the calls in, or None when none can now (the module's docstring says why; the
        process is stopped again a little later): the best placed by _place, the main thread first among
        equals; one not waiting in a system call only while glibc's atfork lock is free (atfork_lock: its
        address, None when not found, UNKNOWN when not looked for yet: then None is returned and
        self.wants_atfork_lock set, for the caller to look for it while the process runs); one running the
        C library's code only when risky is true. A thread blocking SIGSEGV can't make the call (the return's
        fault would make the kernel unblock it and reset the program's SIGSEGV action): refused when all do.
        loader, libc: [(start, end)] of their mappings."""
        candidates = []
        blocking = 0
        for thread in self.threads.values():
            try:
                if _signal_set(_status(self.pid, thread.tid), "SigBlk") & SIGSEGV_BIT:
                    blocking += 1
                    continue
            except MrhookerError:
                continue   # exited meanwhile
            place = _place(thread.regs, loader, libc)
            if place is not None and (place != RISKY or risky):
                candidates.append((place, thread.tid != self.pid, thread.tid, thread))
        if candidates:
            best = min(candidates, key=lambda c: c[:3])
            if best[0] != SAFE and atfork_lock is UNKNOWN:
                self.wants_atfork_lock = True
                return None
            if best[0] != SAFE and atfork_lock is not None and self.peek_int(atfork_lock) != 0:
                return None   # maybe in a fork handler, which glibc before 2.36 runs holding that lock
            return best[3]
        if blocking == len(self.threads):
            raise MrhookerError("%s blocks SIGSEGV in every thread, and the injection's call ends with one (the "
                                "kernel would reset the program's SIGSEGV action): it can't be attached" % self.name)
        return None

    def peek_int(self, address):
        """An int of the process's memory, read while every thread is stopped (before one is chosen)."""
        with _Memory(self.pid) as mem:
            return struct.unpack("<i", mem.read(address, 4))[0]

    def release_others(self):
        for tid, thread in list(self.threads.items()):
            if thread is not self.chosen:
                try:
                    thread.detach()
                except OSError as e:
                    if e.errno != errno.ESRCH:
                        raise
                del self.threads[tid]

    def call(self, function, args, data=b"", safe=False):
        """Calls function(*args) in the chosen thread; `data` is copied onto its stack and its address (plus n)
        replaces each None (each At(n)) in args. Returns rax, or None for a safe call.

        safe: for a call that runs long enough for mrhooker to die meanwhile (dlopen, the runtime's attach).
        The kernel then lets the thread run on, and a return to address 0 would kill the program. So the call
        returns into glibc's __restore_rt instead, whose rt_sigreturn puts the thread back as it was, from a
        signal frame written below the call's own stack (_fallback_frame). mrhooker, alive, sees that
        rt_sigreturn at its syscall-stop (PTRACE_SYSCALL), cancels it and stops the thread where the signal
        path would (PTRACE_INTERRUPT): as at the start. The result is lost (rax holds rt_sigreturn's number):
        a safe call says what it has to say through memory."""
        thread = self.chosen
        restorer = self.functions.get("__restore_rt") if safe else None
        call = _Regs.from_buffer_copy(thread.regs)
        sp = (thread.regs.rsp - RED_ZONE - len(data)) & ~15
        base = sp
        if data:
            self.mem.write(sp, data)
        if restorer is not None:
            sp, frame = self._fallback_frame(sp, restorer)
            self.mem.write(sp, frame)   # begins with the return address: __restore_rt
            if not self.syscall_stops:
                _ptrace(PTRACE_SETOPTIONS, thread.tid, None, PTRACE_O_TRACESYSGOOD)
                self.syscall_stops = True
        else:
            sp -= 8
            self.mem.write(sp, struct.pack("<Q", 0))   # the return address: the return faults at rip 0
        self.last_data = base
        args = [base if a is None else base + a.offset if isinstance(a, At) else a for a in args]
        for reg, value in zip(("rdi", "rsi", "rdx", "rcx", "r8", "r9"), args):
            setattr(call, reg, value)
        call.rsp = sp
        call.rip = function
        call.rax = 0
        call.orig_rax = NO_SYSCALL
        _ptrace(PTRACE_SETREGS, thread.tid, None, ctypes.byref(call))
        self.call_in_flight = True
        self.safe_call_running = restorer is not None
        resume = PTRACE_SYSCALL if restorer is not None else PTRACE_CONT
        _ptrace(resume, thread.tid, None, 0)
        deadline = time.monotonic() + self.timeout
        hand_over = _HandOver(self)
        while True:
            try:
                sig, event = thread.wait(hand_over.wait_until(deadline), pass_signals=False)
            except _Gone:
                self.call_in_flight = False
                raise MrhookerError("%s ended during the injection" % self.name)
            except TimeoutError:
                if time.monotonic() < deadline:
                    hand_over.on_timeout()
                    continue
                hand_over.let_go()
                if self.safe_call_running and hand_over.waits_for_another():
                    raise MrhookerError("%s: the call to load the library did not return within %g s: it waits "
                                        "for a lock another thread holds; it was left to finish then, and to go "
                                        "back where it was by itself" % (self.name, self.timeout))
                self.safe_call_running = False   # close() puts it back
                raise MrhookerError("%s: the call to load the library did not return within %g s (the thread "
                                    "may wait for a lock it held itself when stopped); it was put back where it "
                                    "was, but the loader's lock may stay taken" % (self.name, self.timeout))
            if event == 0 and sig == SYSCALL_STOP:
                thread.in_signal_stop = False
                regs = _Regs()
                _ptrace(PTRACE_GETREGS, thread.tid, None, ctypes.byref(regs))
                if regs.orig_rax == SYS_RT_SIGRETURN and regs.rip == restorer + len(RESTORER_CODE):
                    hand_over.let_go()
                    self.safe_call_running = False   # its return is ours now: close() puts the thread back
                    self._cancel_return(regs, deadline)
                    return None
                hand_over.on_stop(regs, deadline)
                _ptrace(PTRACE_SYSCALL, thread.tid, None, 0)
                continue
            hand_over.on_stop()
            if event == 0:
                regs = _Regs()
                _ptrace(PTRACE_GETREGS, thread.tid, None, ctypes.byref(regs))
                if sig == signal.SIGSEGV and regs.rip == 0 and restorer is None:
                    hand_over.let_go()
                    self.call_in_flight = False
                    return regs.rax
                if sig in FAULTS:
                    hand_over.let_go()
                    self.call_in_flight = False
                    self.safe_call_running = False   # crashed: nothing to finish
                    raise MrhookerError("%s: the library's loading crashed (signal %s at %#x); the thread was put "
                                        "back where it was" % (self.name, signal.Signals(sig).name, regs.rip))
                thread.hold_signal()   # delivered after the registers are restored (see the module's notes)
            _ptrace(resume, thread.tid, None, 0)

    def _cancel_return(self, regs, deadline):
        """At the syscall-stop of a safe call's rt_sigreturn: the system call is skipped (orig_rax -1) and the
        thread stopped by PTRACE_INTERRUPT on its way back, in the signal path, as it was at the start."""
        thread = self.chosen
        regs.orig_rax = NO_SYSCALL
        _ptrace(PTRACE_SETREGS, thread.tid, None, ctypes.byref(regs))
        _ptrace(PTRACE_INTERRUPT, thread.tid)
        _ptrace(PTRACE_CONT, thread.tid, None, 0)
        while True:
            sig, event = thread.wait(deadline, pass_signals=False)
            if event == PTRACE_EVENT_STOP:
                break
            if event == 0 and sig != SYSCALL_STOP:
                thread.hold_signal()
            _ptrace(PTRACE_CONT, thread.tid, None, 0)
        self.call_in_flight = False

    def _fallback_frame(self, top, restorer):
        """(address, bytes) of an rt_sigreturn frame just below top whose first word is the return address
        (restorer): the chosen thread's registers, FPU state, signal mask and alternate stack as they were when it
        was stopped, with an interrupted system call restarted as the kernel restarts it when no handler runs
        (rt_sigreturn itself restarts nothing). Only used if mrhooker dies during the call."""
        thread = self.chosen
        r = _restartable(thread.regs)
        rip, rax = r.rip, r.rax
        if r.orig_rax != NO_SYSCALL and (rax in RESTART_RAX or rax == RESTART_BLOCK_RAX):
            # rt_sigreturn makes restart_syscall fail with EINTR (it resets the restart block): a sleep or timed
            # wait that would have gone on with the time left is made again, from its whole time
            rip, rax = rip - 2, r.orig_rax
        xstate, flags = thread.xstate, UC_SIGCONTEXT_SS
        if len(xstate) >= 512:
            magic1, _, _, size = struct.unpack_from("<IIQI", xstate, 464)   # struct _fpx_sw_bytes
            if magic1 == FP_XSTATE_MAGIC1 and 512 <= size <= len(xstate):
                xstate, flags = xstate[:size] + struct.pack("<I", FP_XSTATE_MAGIC2), flags | UC_FP_XSTATE
        at = ((top - 520 - len(xstate)) & ~15) - 8   # so that the stack is 16-byte aligned at the call
        fpstate = (at + 440 + 63) & ~63
        sigcontext = struct.pack("<18Q4H4QQ8Q", r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi,
                                 r.rsi, r.rbp, r.rbx, r.rdx, rax, r.rcx, r.rsp, rip, r.eflags, r.cs, r.gs, r.fs,
                                 r.ss, 0, 0, 0, 0, fpstate if len(xstate) >= 512 else 0, *[0] * 8)
        ss_sp, ss_flags, ss_size = self.altstack
        ucontext = struct.pack("<QQQi4xQ", flags, 0, ss_sp, ss_flags, ss_size) + sigcontext + \
            struct.pack("<Q", self.sigmask)
        frame = struct.pack("<Q", restorer) + ucontext + bytes(128)   # + the siginfo, unused
        return at, frame + bytes(fpstate - at - len(frame)) + xstate

    def write_entries(self, writes):
        """Writes each (address, length, bytes) of writes (the jmps of functions hooked at their entry:
        runtime/patch.c) with every thread stopped and none inside the `length` bytes from address (it would
        resume in the middle of the jmp): such a thread is single-stepped out first. Returns how many were not
        written (a thread that could not be stepped out: that function stays hooked through the PLT only)."""
        self.seize_all()

        def inside(rip):
            return {i for i, (at, length, _) in enumerate(writes) if at < rip < at + length}
        skipped = inside(self.chosen.regs.rip)   # the chosen thread resumes where it was, at the end
        for thread in self.threads.values():
            if thread is self.chosen:
                continue
            for _step in range(STEPS_OUT):
                if not inside(thread.regs.rip):
                    break
                try:
                    _ptrace(PTRACE_SINGLESTEP, thread.tid)
                    sig, event = thread.wait(time.monotonic() + STEP_TIMEOUT, pass_signals=False)
                except TimeoutError:   # blocked in a system call made from those bytes: left where it is
                    _ptrace(PTRACE_INTERRUPT, thread.tid)
                    sig, event = thread.wait(time.monotonic() + self.timeout, pass_signals=False)
                    if event == 0 and sig not in FAULTS:
                        thread.hold_signal()
                    thread.regs, thread.xstate = thread.get_state()
                    break
                if event == 0 and sig != signal.SIGTRAP:
                    thread.hold_signal()   # a signal that came meanwhile: delivered at the detach
                thread.regs, thread.xstate = thread.get_state()
            skipped |= inside(thread.regs.rip)
        for i, (at, _length, data) in enumerate(writes):
            if i not in skipped:
                self.mem.write(at, data)
        self.release_others()
        return len(skipped)

    def sigmask_of_chosen(self):
        mask = ctypes.c_ulonglong()
        _ptrace(PTRACE_GETSIGMASK, self.chosen.tid, ctypes.c_void_p(8), ctypes.byref(mask))
        return mask.value

    def close(self):
        """Puts the chosen thread's registers back (after stopping it if a call is still running) and
        detaches every thread still seized."""
        thread = self.chosen
        if thread is not None and thread.tid in self.threads and self.call_in_flight and self.safe_call_running:
            # in the middle of dlopen or the runtime's attach: cut short, the loader's lock would stay taken
            # (the module's notes); left to finish, its return into __restore_rt puts the thread back
            self.call_in_flight = False
        elif thread is not None and thread.tid in self.threads:
            try:
                if self.call_in_flight and not _stopped(thread.tid):   # any stop will do: all is put back
                    _ptrace(PTRACE_INTERRUPT, thread.tid)
                    deadline = time.monotonic() + self.timeout
                    sig, event = thread.wait(deadline, pass_signals=False)
                    while event == 0 and sig == SYSCALL_STOP:
                        # a safe call's system call stopped it first (PTRACE_SYSCALL): not a signal to deliver
                        # (held, its SIGTRAP killed the program); on to the interrupt's stop
                        _ptrace(PTRACE_CONT, thread.tid, None, 0)
                        sig, event = thread.wait(deadline, pass_signals=False)
                    if event == 0 and sig not in FAULTS:
                        thread.hold_signal()
                elif self.call_in_flight:   # stopped, but the stop was not seen (Ctrl-C just then)
                    thread.in_signal_stop = False
                self.call_in_flight = False
                if self.saved_errno is not None:
                    self.mem.write(*self.saved_errno)
                thread.set_state(_restartable(thread.regs), thread.xstate)
            except (_Gone, TimeoutError, OSError):
                pass
        for thread in self.threads.values():
            try:
                _unwatch(thread)   # (Ctrl-C during _HandOver.take)
                if not _stopped(thread.tid):   # a safe call left to finish; a lock's holder (_HandOver)
                    _stop(thread, self.timeout)
                thread.detach()
            except (_Gone, TimeoutError, OSError):
                pass
        self.threads = {}
        if self.mem is not None:
            self.mem.close()


def _stop(thread, timeout):
    """Stops a seized thread that runs (any stop will do: it is detached next); a signal that stops it first
    is held, for the detach to deliver, except our watchpoint's SIGTRAP (_watch_writes: the program's death)."""
    _ptrace(PTRACE_INTERRUPT, thread.tid)
    sig, event = thread.wait(time.monotonic() + timeout, pass_signals=False)
    if event == 0 and sig != SYSCALL_STOP and not (sig == signal.SIGTRAP and _si_code(thread.tid) == TRAP_PERF):
        thread.hold_signal()


def _task_syscall(pid, tid):
    """/proc/PID/task/TID/syscall as numbers (the system call and its arguments), or None when the thread is
    running, not in a system call, or gone."""
    try:
        with open("/proc/%d/task/%d/syscall" % (pid, tid)) as f:
            words = f.read().split()
    except OSError:
        return None
    if not words or words[0] in ("running", "-1"):
        return None
    return [int(words[0])] + [int(w, 16) for w in words[1:7]]


def _unwatch(thread):
    if thread.watchpoint is not None:
        os.close(thread.watchpoint)
        thread.watchpoint = None


def _siginfo(tid):
    """The siginfo of the signal a thread is stopped for (raw bytes)."""
    info = ctypes.create_string_buffer(SIGINFO_SIZE)
    _ptrace(PTRACE_GETSIGINFO, tid, None, info)
    return info.raw


def _si_code(tid):
    return struct.unpack_from("<i", _siginfo(tid), 8)[0]


def _watch_writes(tid, address):
    """A hardware watchpoint on writes of the 4 bytes at address by thread tid, as a perf event whose hit sends
    the thread SIGTRAP (si_code TRAP_PERF): its fd, or None when the kernel won't (before 5.13, perf events
    not allowed). Not ptrace's debug registers: those stay set after a detach, and mrhooker killed while one was
    set would leave the program to die of SIGTRAP at the next write; the event dies with the fd. (Killed in the
    microseconds between a hit and its stop, mrhooker still leaves that SIGTRAP to be delivered.)"""
    attr = ctypes.create_string_buffer(PERF_ATTR_SIZE)
    struct.pack_into("<IIQQ", attr, 0, PERF_TYPE_BREAKPOINT, PERF_ATTR_SIZE, 0, 1)   # type, size, config, period
    struct.pack_into("<Q", attr, 40, PERF_FLAGS)
    struct.pack_into("<IIQQ", attr, 48, 0, HW_BREAKPOINT_W, address, 4)   # wakeup_events, bp_type, bp_addr, bp_len
    fd = _lib().syscall(ctypes.c_long(SYS_PERF_EVENT_OPEN), attr, ctypes.c_long(tid), ctypes.c_long(-1),
                        ctypes.c_long(-1), ctypes.c_long(8))   # PERF_FLAG_FD_CLOEXEC
    return fd if fd >= 0 else None


class _HandOver:
    """A remote call starved of a lock that another thread keeps taking again (the module's notes). Driven by
    _Session.call's wait loop at each stop of the call's thread."""

    def __init__(self, session):
        self.session = session
        self.holder = None     # the _Thread kept stopped just after it released the lock
        self.release_at = 0.0
        self.stops = 0         # stops of the call's thread since the holder was kept
        self.next_look = time.monotonic() + STARVED_AFTER
        self.waiting_on = None  # the lock the call's thread was at a FUTEX_WAIT of, at its last syscall-stop

    def wait_until(self, deadline):
        return min(deadline, self.release_at) if self.holder is not None else deadline

    def on_timeout(self):
        if self.holder is not None and time.monotonic() >= self.release_at:
            self.let_go()

    def on_stop(self, regs=None, deadline=None):
        """Each stop of the call's thread; regs: its registers at a syscall-stop, before it is resumed. At a
        FUTEX_WAIT's entry or exit, once STARVED_AFTER has passed, on a pthread mutex whose owner (its tid at
        offset 8) is another thread, running (one blocked in a system call holds it for a reason): the owner is
        run up to its release of the lock (take) and kept stopped until this thread has had two more stops (it
        has taken the lock and gone on) or HOLD passed."""
        self.stops += 1
        if self.holder is not None and self.stops >= 2:
            self.let_go()
        if regs is None:
            return
        waits = regs.orig_rax == SYS_FUTEX and regs.rsi & 127 in FUTEX_WAITS
        self.waiting_on = regs.rdi if waits else None
        now = time.monotonic()
        if not waits or self.holder is not None or now < self.next_look:
            return
        self.next_look = now + STARVED_AFTER
        owner = self.owner_of(regs.rdi)
        if owner is None or owner in self.session.threads or _task_syscall(self.session.pid, owner) is not None:
            return
        self.holder = self.take(regs.rdi, owner, deadline)   # the call's thread waits for nothing else
        self.release_at, self.stops = time.monotonic() + HOLD, 0

    def waits_for_another(self):
        """Whether the call's thread waits in FUTEX_WAIT for a lock another thread holds: asleep in it, or
        stopped at its entry or exit (a safe call's syscall-stops: /proc's syscall file may not say)."""
        session = self.session
        words = _task_syscall(session.pid, session.chosen.tid)
        if words is not None and words[0] == SYS_FUTEX and words[2] & 127 in FUTEX_WAITS:
            futex = words[1]
        else:
            futex = self.waiting_on
        return futex is not None and self.owner_of(futex) is not None

    def owner_of(self, futex):
        """The tid of the thread holding the pthread mutex at futex (its owner's tid at offset 8) when that is
        another thread of the process; else None."""
        session = self.session
        try:
            lock, _count, owner = struct.unpack("<iIi", session.mem.read(futex, 12))
        except (OSError, struct.error):
            return None
        if lock == 0 or owner <= 0 or owner == session.chosen.tid:
            return None
        if not os.path.exists("/proc/%d/task/%d" % (session.pid, owner)):
            return None   # not a tid of the process: not a pthread mutex's owner field
        return owner

    def lock_word(self, futex):
        return struct.unpack("<i", self.session.mem.read(futex, 4))[0]

    def take(self, futex, tid, until):
        """Seizes thread tid and runs it, a write watchpoint on the lock word (_watch_writes: its own, no other
        thread traps), until the word it wrote is 0: its unlock. Returns it stopped there (its unlock's
        FUTEX_WAKE, if any, still to come: harmless, the call's thread is stopped in a syscall-stop and takes the
        lock when resumed, without a wake), or None (it exited, was traced by another, or did not release the
        lock in time: then let go)."""
        session = self.session
        try:
            _ptrace(PTRACE_SEIZE, tid, None, 0)
        except OSError:
            return None
        holder = session.threads[tid] = _Thread(session.pid, tid)
        try:
            _ptrace(PTRACE_INTERRUPT, tid)
            holder.wait(until, pass_signals=True)
            if self.lock_word(futex) == 0:
                return holder
            holder.watchpoint = _watch_writes(tid, futex)
            if holder.watchpoint is None:
                raise TimeoutError()
            sig = 0
            while True:
                _ptrace(PTRACE_CONT, tid, None, sig)
                sig, event = holder.wait(until, pass_signals=False)
                if event != 0:
                    raise TimeoutError()   # a group-stop: not ours to hold
                if sig != signal.SIGTRAP or _si_code(tid) != TRAP_PERF:
                    continue   # a signal: delivered by the next resume
                sig = 0   # ours: not delivered
                if self.lock_word(futex) == 0:
                    _unwatch(holder)
                    return holder
        except _Gone:
            _unwatch(holder)
            del session.threads[tid]
        except (TimeoutError, OSError):
            self.holder = holder
            self.let_go()
        return None

    def let_go(self):
        holder, self.holder = self.holder, None
        if holder is None:
            return
        try:
            if not _stopped(holder.tid):
                _stop(holder, self.session.timeout)
            _unwatch(holder)
            holder.detach()
        except (_Gone, TimeoutError, OSError):
            pass
        self.session.threads.pop(holder.tid, None)


def inject(pid, library_path, timeout=10.0, stats=None, then=None, entry_writes=False):
    """Loads the shared library at library_path into the running process pid (its own dlopen(path, RTLD_NOW),
    called in one of its threads) and returns the handle dlopen gave. Raises MrhookerError, with one message
    saying why and what to do, when the process can't be attached or the library can't be loaded.
    timeout: seconds for each wait (a thread's stop, one remote call). stats: a dict, filled with timings in
    seconds: 'total', 'all_stopped' (every thread stopped), 'thread_stopped' (the chosen thread, calls included).
    then: (name, bytes): after the load, the same thread calls the library's exported int name(const char *) with
    those bytes (NUL-terminated) copied onto its stack; inject then returns (handle, what it returned).
    entry_writes: when that returned 0, the jmps of the functions hooked at their entry that the library lists
    (its mrhooker_entry_writes) are written with the process stopped (_Session.write_entries); stats then has
    'entry_written', how many were."""
    started = time.monotonic()
    name, st = _check_state(pid)
    _check_machine(pid, name, st)
    maps = _maps(pid, name, st)
    functions, loader = _functions(pid, name, maps)
    path = _check_library(library_path)
    _check_hook_side(pid, name, maps, path)
    session = _Session(pid, name, timeout)
    stopped_at = released_at = None
    try:
        libc = [(m[0], m[1]) for m in maps if os.path.basename(m[3]) == "libc.so.6"]
        atfork_lock = UNKNOWN   # looked for when first needed, with the process running (Capstone loads in ~20 ms)
        for attempt in range(ATTEMPTS):
            stopped_at = time.monotonic()
            session.seize_all()
            session.chosen = session.choose(loader, libc, atfork_lock, risky=attempt >= RISKY_AFTER)
            if session.chosen is not None:
                break
            session.close()   # let them run a little
            if session.wants_atfork_lock and atfork_lock is UNKNOWN:
                atfork_lock = _atfork_lock_address(pid, maps)
            else:
                time.sleep(0.01)
        else:
            raise MrhookerError("%s: no thread was at a point where it could load the library (each was inside "
                                "fork, the dynamic loader or malloc) at %d stops in a row: try again"
                                % (name, ATTEMPTS))
        session.release_others()
        released_at = time.monotonic()
        session.mem = _Memory(session.chosen.tid, writable=True)
        session.functions = functions
        errno_address = session.call(functions["__errno_location"], [])
        session.saved_errno = (errno_address, session.mem.read(errno_address, 4))
        if "__restore_rt" in functions:   # what a safe call's fallback frame needs (short calls: not safe)
            session.sigmask = session.sigmask_of_chosen()
            session.call(functions["sigaltstack"], [0, None], bytes(24))
            session.altstack = struct.unpack("<Qi4xQ", session.mem.read(session.last_data, 24))
        encoded = path.encode() + b"\0"
        session.call(functions["dlopen"], [None, RTLD_NOW], encoded, safe=True)
        # a safe call's result is lost: dlerror says whether it failed, then the handle is asked for again
        # without loading anything
        message = session.call(functions["dlerror"], [])
        handle = 0 if message else session.call(functions["dlopen"], [None, RTLD_NOW | RTLD_NOLOAD], encoded)
        if not handle:
            # no reason given: seen when the dlopen went through another namespace's libc (_program_libc)
            reason = session.mem.read_string(message) if message else "no reason given"
            raise MrhookerError("%s: dlopen failed: %s" % (name, reason))
        if then is None:
            return handle
        function = _library_function(session, handle, path, then[0])
        # its result through memory (8 bytes before the argument): a safe call's rax is lost
        session.call(function, [At(8), None], bytes(8) + then[1] + b"\0", safe=True)
        result = struct.unpack("<q", session.mem.read(session.last_data, 8))[0]
        if entry_writes and result == 0:
            table = session.call(_library_function(session, handle, path, "mrhooker_entry_writes"), [])
            count = struct.unpack("<q", session.mem.read(table, 8))[0]
            raw = session.mem.read(table + 8, 24 * count) if count > 0 else b""
            writes = [(at, length, data[:5]) for at, length, data in struct.iter_unpack("<QQ8s", raw)]
            skipped = session.write_entries(writes) if writes else 0
            if stats is not None:
                stats["entry_written"] = len(writes) - skipped
        return handle, result
    except OSError as e:
        if e.errno == errno.EPERM and not session.threads:   # the first PTRACE_SEIZE
            raise _refuse_permission(pid, name, st)
        if e.errno == errno.ESRCH:
            raise MrhookerError("%s exited during the injection" % name)
        raise MrhookerError("%s: attaching failed: %s" % (name, e.strerror or e))
    finally:
        session.close()
        if stats is not None:
            done = time.monotonic()
            stats["total"] = done - started
            if stopped_at is not None:
                stats["all_stopped"] = (released_at or done) - stopped_at
                stats["thread_stopped"] = done - stopped_at
