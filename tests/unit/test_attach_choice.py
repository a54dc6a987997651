"""attach.py's choice of the thread that loads the runtime (no target process: registers made up, and this
machine's libc read as a file)."""
import os

from elftools.elf.elffile import ELFFile

from mrhooker import attach

LIBC = os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6")
LOADER, LIBC_TEXT, PROGRAM = (0x7000, 0x8000), (0x1000, 0x2000), 0x5000


def regs(rip, orig_rax):
    r = attach._Regs()
    r.rip, r.orig_rax = rip, orig_rax
    return r


def place(rip, orig_rax=attach.NO_SYSCALL):
    return attach._place(regs(rip, orig_rax), [LOADER], [LIBC_TEXT])


def test_waiting_in_a_system_call_is_the_best_place():
    assert place(0x1800, 0) == attach.SAFE            # read(), in its libc wrapper
    assert place(0x1800, 230) == attach.SAFE          # clock_nanosleep
    assert place(PROGRAM) == attach.PLAIN             # the program's own code
    assert place(0x1800, 202) == attach.PLAIN         # futex: a lock's wait


def test_where_a_lock_the_load_takes_may_be_held_is_no_place_or_a_last_resort():
    assert place(0x7800) is None                      # the dynamic loader
    assert place(0x7800, 0) is None
    assert place(0x1800) == attach.RISKY              # the C library's own code (malloc, fork ... or memcpy)
    for clone in (56, 57, 58, 435):                   # fork's clone: every malloc arena lock held
        assert place(0x1800, clone) is None
    for malloc_call in (9, 10, 11, 12, 25, 28):       # mmap ... madvise: malloc's, holding its arena's lock
        assert place(0x1800, malloc_call) is None


def test_the_atfork_lock_is_a_word_of_the_libc_data():
    with open(LIBC, "rb") as opened:
        register = attach._exported(LIBC, opened, ("__register_atfork",))["__register_atfork"]
        lock = attach._atfork_lock(opened, register)
        opened.seek(0)
        loads = [s for s in ELFFile(opened).iter_segments() if s["p_type"] == "PT_LOAD"]
    writable = [(s["p_vaddr"], s["p_vaddr"] + s["p_memsz"]) for s in loads if s["p_flags"] & 2]
    assert lock is not None and any(lo <= lock < hi for lo, hi in writable), (hex(lock or 0), writable)
