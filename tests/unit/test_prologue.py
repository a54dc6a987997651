"""prologue.py: a function's first instructions planned for moving (no target process: the plans are checked
against the files and Capstone's reading of the moved code)."""
import subprocess
import textwrap

import capstone
import pytest

from mrhooker import prologue
from mrhooker.errors import MrhookerError

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
MD = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)

OWN_C = r"""
static int counter;
__attribute__((noipa)) int bump(void) { return ++counter; }
__attribute__((noipa)) int tiny(void) { return 0; }
__attribute__((noipa)) static int compute(int x) { return x * 7 + (x & 3); }
int main(int argc, char **argv) { return compute(argc) + bump() + tiny(); }
"""

# A function whose loop jumps back to its second instruction: its first bytes can't be moved.
LOOP_S = r"""
    .text
    .globl loops
    .type loops, @function
loops:
    xor %eax, %eax
1:  add $1, %eax
    cmp %edi, %eax
    jl 1b
    ret
    .size loops, .-loops
    .globl main
    .type main, @function
main:
    call loops
    ret
    .size main, .-main
    .section .note.GNU-stack,"",@progbits
"""


def compile_c(tmp_path, source, flags, suffix=".c"):
    src = tmp_path / ("prog" + suffix)
    src.write_text(textwrap.dedent(source))
    out = tmp_path / "prog"
    subprocess.run(["cc", "-o", str(out), str(src)] + flags, check=True, timeout=120)
    return str(out)


def file_bytes(path, plan):
    functions = prologue.ElfFunctions(path)
    return functions._bytes(plan.address, len(plan.expect))


def moved_text(plan, at=0x10000):
    return [(i.mnemonic) for i in MD.disasm(plan.code, at)]


@pytest.mark.parametrize("name", ["write", "read", "open", "close", "malloc", "free", "socket", "connect",
                                  "getaddrinfo", "fopen", "printf", "clock_gettime", "nanosleep", "mmap"])
def test_libc_functions_plan_and_fixups_reach_the_same_targets(name):
    plan = prologue.plan_entry(LIBC, name)
    assert plan.moved >= 5 and plan.expect == file_bytes(LIBC, plan)
    original = {(i.address - plan.address): i for i in MD.disasm(plan.expect, plan.address)}
    assert moved_text(plan)[0] == MD.disasm(plan.expect[plan.patch_at:], 0).__next__().mnemonic
    # the fixups, applied at a trampoline 1 GB away, give back the targets of the original instructions
    tramp, base = 0x40000000, 0x7f0000000000
    code = bytearray(plan.code)
    for field, end, target in plan.fixups:
        code[field:field + 4] = ((base + target) - (base + tramp + end)).to_bytes(4, "little", signed=True)
    for field, end, target in plan.fixups:
        rel = int.from_bytes(code[field:field + 4], "little", signed=True)
        assert base + tramp + end + rel == base + target
    assert original   # decodable


def test_ifunc_and_undefined_names_are_refused_with_the_reason():
    with pytest.raises(MrhookerError, match="IFUNC"):
        prologue.plan_entry(LIBC, "memcpy")
    with pytest.raises(MrhookerError, match="not a function"):
        prologue.plan_entry(LIBC, "no_such_function_here")


@pytest.mark.parametrize("flags", [["-O0", "-fcf-protection=full"], ["-O2", "-fcf-protection=none"]])
def test_the_programs_own_functions_with_and_without_endbr64(tmp_path, flags):
    prog = compile_c(tmp_path, OWN_C, flags)
    plan = prologue.plan_entry(prog, "compute")   # static: in .symtab only
    assert plan.patch_at == (4 if "-fcf-protection=full" in flags else 0)
    assert plan.code.startswith(prologue.ENDBR64) == (plan.patch_at == 4)
    bump = prologue.plan_entry(prog, "bump")   # its counter is RIP-relative
    if "-O2" in flags:
        assert bump.fixups and all(target > bump.address for _f, _e, target in bump.fixups)
        with pytest.raises(MrhookerError, match="too short|can't be moved"):
            prologue.plan_entry(prog, "tiny")   # xor %eax,%eax; ret
    by_address = prologue.plan_entry(prog, address=plan.address)
    assert by_address.name == "compute" and by_address.expect == plan.expect
    with pytest.raises(MrhookerError, match="inside compute"):
        prologue.plan_entry(prog, address=plan.address + 1)


def test_a_jump_back_into_the_first_bytes_is_refused(tmp_path):
    prog = compile_c(tmp_path, LOOP_S, [], suffix=".s")
    with pytest.raises(MrhookerError, match="jumps back"):
        prologue.plan_entry(prog, "loops")


def test_a_short_jump_is_widened(tmp_path):
    plan = prologue.plan_entry(LIBC, "free")   # test %rdi,%rdi; je ... (rel8)
    if plan.code[3:4] != b"\x0f":
        pytest.skip("this libc's free starts otherwise")
    assert any(end - field == 4 for field, end, _t in plan.fixups)


# Functions written out in assembly, for the cases a compiler makes only sometimes.
ASM_C = r"""
__attribute__((noipa)) int tiny(void) { return 1; }
__asm__(".text\n"
    "ret_early: test %edi, %edi; je 1f; ret; 1: mov $2, %eax; ret\n .type ret_early, @function; .size ret_early, .-ret_early\n"
    "loop_to_start: 1: add $1, %edi; cmp $10, %edi; jl 1b; mov %edi, %eax; ret\n"
    "  .type loop_to_start, @function; .size loop_to_start, .-loop_to_start\n"
    "short_jmp: jmp 1f; nop; nop; nop; nop; 1: mov $3, %eax; ret\n"
    "  .type short_jmp, @function; .size short_jmp, .-short_jmp\n"
    "with_jrcxz: jrcxz 1f; mov $1, %eax; ret; 1: xor %eax, %eax; ret\n"
    "  .type with_jrcxz, @function; .size with_jrcxz, .-with_jrcxz\n"
    "indirect: mov %rdi, %rax; jmp *%rax\n .type indirect, @function; .size indirect, .-indirect\n"
    "trap: ud2; nop; nop; nop; nop\n .type trap, @function; .size trap, .-trap\n"
    "calls: call tiny; add $1, %eax; ret\n .type calls, @function; .size calls, .-calls\n"
    "crosses: nop; nop; nop; nop; mov $1, %eax\n .type crosses, @function; .size crosses, 6\n ret\n");
int main(void) { return tiny(); }
"""


def test_written_out_prologues(tmp_path):
    prog = compile_c(tmp_path, ASM_C, ["-O2", "-fcf-protection=none"])
    functions = prologue.ElfFunctions(prog)
    for name, reason in [("ret_early", "can't be moved"), ("with_jrcxz", "can't be moved"),
                         ("indirect", "jumps away"), ("trap", "can't be moved"), ("crosses", "too short")]:
        with pytest.raises(MrhookerError, match=reason):
            functions.plan(name)
    assert prologue.plan_entry(prog, "loop_to_start").moved >= 5   # a branch to the entry itself runs the jmp
    jmp = prologue.plan_entry(prog, "short_jmp")
    start = functions.find("short_jmp")[1]
    assert jmp.code[0] == 0xE9 and jmp.fixups == ((1, 5, start + 6),)   # widened to rel32, same target
    calls = prologue.plan_entry(prog, "calls")
    assert calls.code[0] == 0xE8 and calls.fixups == ((1, 5, functions.find("tiny")[1]),)


def test_one_name_for_two_static_functions_asks_for_an_address(tmp_path):
    other = tmp_path / "other.c"
    other.write_text("__attribute__((noipa)) static int helper(int x) { return x * 3 + 1; }\n"
                     "int other(int x) { return helper(x) + 1; }\n")
    prog = compile_c(tmp_path, "__attribute__((noipa)) static int helper(int x) { return x * 5 + 2; }\n"
                     "int other(int);\nint main(int c, char **v) { return helper(c) + other(c); }\n",
                     ["-O2", str(other)])
    with pytest.raises(MrhookerError, match="defined 2 times .* by its address"):
        prologue.plan_entry(prog, "helper")
