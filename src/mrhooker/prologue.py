"""A function's first instructions, planned for moving: what runtime/patch.c needs to hook it at its entry.

The patch puts a 5-byte `jmp rel32` at the function's start (after its `endbr64`) and runs the instructions it
covers from a trampoline, which jumps back after them. Planned here, outside the target, from the file on disk,
with Capstone decoding the x86 and pyelftools reading the symbols; the runtime only checks and copies.

Hazards, and the idea for each:
- An instruction that addresses relative to where it is (`mov x(%rip)`, `call`, `jcc`) means something else in
  the trampoline. Idea: its 32-bit field is a fixup, set by the runtime to reach the same target from where the
  trampoline is; an 8-bit branch is widened to its 32-bit form first.
- Code that jumps back into the bytes the jmp overwrites would run half an instruction. Idea: every direct branch
  of the function is looked at; one landing inside the moved bytes refuses the plan. (An indirect jump there,
  from a jump table, can't be seen: none lands in a prologue in compiled code.)
- A function that ends (ret, an indirect jmp) within the first 5 bytes, or is shorter, has nothing to move
  safely: refused, as is an IFUNC symbol (its address is a resolver, not the function).
"""
import os

from mrhooker.errors import MrhookerError

JMP_SIZE = 5
ENDBR64 = b"\xf3\x0f\x1e\xfa"
IFUNC_TYPES = ("STT_GNU_IFUNC", "STT_LOOS")   # pyelftools names STT_GNU_IFUNC (10) by its range: STT_LOOS


class EntryPlan:
    """One function's patch (see runtime/patch.c): at `address` (the file's terms: st_value) + patch_at, the
    jmp; `expect`: the bytes from `address` the runtime must find; `code`: the `moved` bytes' instructions as the
    trampoline runs them; `fixups`: (field offset, instruction end, target address) for each rel32 in `code`."""

    __slots__ = ("path", "name", "address", "patch_at", "moved", "expect", "code", "fixups")

    def __init__(self, path, name, address, patch_at, moved, expect, code, fixups):
        self.path, self.name, self.address, self.patch_at, self.moved = path, name, address, patch_at, moved
        self.expect, self.code, self.fixups = expect, code, tuple(fixups)


def function_symbols(elf):
    """{name: (st_value, st_size, is IFUNC)} of the functions the file defines: .symtab's first (a program's
    own, not exported), then .dynsym's default versions (memcpy@@GLIBC_2.14, not memcpy@GLIBC_2.2.5); and
    {name: addresses} of the names .symtab gives to more than one function (static ones in two source files).
    Read once per file: one pass over each table."""
    found, twice = {}, {}
    versions = elf.get_section_by_name(".gnu.version")
    for section_name in (".symtab", ".dynsym"):
        section = elf.get_section_by_name(section_name)
        if section is None:
            continue
        for i, sym in enumerate(section.iter_symbols()):
            kind = sym["st_info"]["type"]
            if sym["st_shndx"] == "SHN_UNDEF" or kind not in IFUNC_TYPES + ("STT_FUNC",) or not sym.name:
                continue
            if section_name == ".dynsym" and versions is not None:
                ndx = versions.get_symbol(i).entry["ndx"]
                if isinstance(ndx, int) and ndx & 0x8000:
                    continue   # an older version of the name: not what a program binds to
            entry = (sym["st_value"], sym["st_size"], kind in IFUNC_TYPES)
            if section_name == ".symtab" and sym.name in found and found[sym.name][0] != entry[0]:
                twice.setdefault(sym.name, {found[sym.name][0]}).add(entry[0])   # static functions of one name
            found.setdefault(sym.name, entry)
    return found, twice


def decoder():
    try:
        import capstone
    except ImportError:
        raise MrhookerError("hooking at a function's entry needs Capstone: pip install capstone")
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    return capstone, md


def _branch_target(capstone, insn):
    """The target of a direct jmp/jcc/call/loop, or None."""
    from capstone import x86
    if not (insn.group(capstone.CS_GRP_JUMP) or insn.group(capstone.CS_GRP_CALL)):
        return None
    ops = insn.operands
    if len(ops) == 1 and ops[0].type == x86.X86_OP_IMM:
        return ops[0].imm
    return None


def _relocated(capstone, insn, name):
    """(bytes, [(field offset, instruction end, target)]) of one moved instruction, offsets within its bytes."""
    from capstone import x86
    raw = bytes(insn.bytes)
    mnemonic = insn.mnemonic
    if (insn.group(capstone.CS_GRP_RET) or insn.group(capstone.CS_GRP_INT) or mnemonic.startswith("loop")
            or mnemonic in ("hlt", "ud0", "ud1", "ud2", "int3", "jrcxz", "jecxz", "xbegin")):
        raise MrhookerError("%s: its first instructions include `%s`, which can't be moved out of it"
                            % (name, ("%s %s" % (mnemonic, insn.op_str)).strip()))
    target = _branch_target(capstone, insn)
    if insn.group(capstone.CS_GRP_JUMP) or insn.group(capstone.CS_GRP_CALL):
        if target is None:
            if insn.group(capstone.CS_GRP_JUMP):
                raise MrhookerError("%s: it jumps away (`%s %s`) within its first %d bytes: too short to hook at "
                                    "its entry" % (name, mnemonic, insn.op_str, JMP_SIZE))
        elif raw[0] == 0xEB:                       # jmp rel8 -> jmp rel32
            return b"\xe9\0\0\0\0", [(1, 5, target)]
        elif 0x70 <= raw[0] <= 0x7F:               # jcc rel8 -> jcc rel32
            return bytes([0x0F, 0x80 + (raw[0] - 0x70)]) + b"\0\0\0\0", [(2, 6, target)]
        elif insn.imm_size == 4:                   # call/jmp/jcc rel32
            return raw, [(insn.imm_offset, insn.size, target)]
        else:
            raise MrhookerError("%s: its first instructions include `%s %s`, which mrhooker can't move"
                                % (name, mnemonic, insn.op_str))
    for op in insn.operands:
        if op.type == x86.X86_OP_MEM and op.mem.base == x86.X86_REG_RIP:
            return raw, [(insn.disp_offset, insn.size, insn.address + insn.size + op.mem.disp)]
    return raw, []


class ElfFunctions:
    """The functions of one ELF file, planned for hooking at their entry (plan): the file is read once."""

    def __init__(self, path):
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        self.path = path
        try:
            with open(path, "rb") as f:
                elf = ELFFile(f)
                self.functions, self.twice = function_symbols(elf)
                self.segments = [(seg["p_vaddr"], seg["p_filesz"], seg["p_offset"], seg["p_flags"] & 1)
                                 for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
        except OSError as e:
            raise MrhookerError("cannot read %s: %s" % (path, e.strerror))
        except ELFError as e:
            raise MrhookerError("%s: not an ELF file mrhooker can read (%s)" % (path, e))

    def _bytes(self, address, size):
        for vaddr, filesz, offset, executable in self.segments:
            if vaddr <= address and address + size <= vaddr + filesz and executable:
                with open(self.path, "rb") as f:
                    f.seek(offset + address - vaddr)
                    return f.read(size)
        raise MrhookerError("0x%x is not in the code of %s (an executable part of the file)"
                            % (address, os.path.basename(self.path)))

    def find(self, name=None, address=None):
        """(name, st_value, st_size) of the function named, or containing address; None if there is none."""
        if name is not None and name in self.twice:
            raise MrhookerError("%s is defined %d times in %s (at %s): hook the one you mean by its address "
                                "(at=0x...)" % (name, len(self.twice[name]), os.path.basename(self.path),
                                                ", ".join("0x%x" % a for a in sorted(self.twice[name]))))
        if name is not None:
            items = [(name, self.functions[name])] if name in self.functions else []
        else:
            items = [(n, f) for n, f in self.functions.items() if f[0] <= address < f[0] + f[1]]
        for found, (value, size, ifunc) in items:
            if ifunc:
                raise MrhookerError("%s in %s is an IFUNC (its symbol is the resolver that picks a version of it): "
                                    "it can't be hooked at its entry" % (found, self.path))
            if size:
                return found, value, size
        return None

    def plan(self, name=None, address=None):
        """The EntryPlan of the function `name` (or the one at `address`); MrhookerError with the reason if it
        can't be hooked at its entry."""
        capstone, md = decoder()
        shown = name or "0x%x" % address
        found = self.find(name, address)
        if found is None and name is None:
            if any(size for _value, size, _ifunc in self.functions.values()):
                raise MrhookerError("0x%x is not a function's entry in %s (its symbol table has none there)"
                                    % (address, os.path.basename(self.path)))
            # a stripped program's function, by the address the user found: its size and its body's branches
            # are unknown, so the first instructions are all that is checked
            return _plan(capstone, md, self.path, shown, shown, address, None, self._bytes(address, 32))
        if found is None:
            raise MrhookerError("%s is not a function %s defines (with a size in its symbol table)"
                                % (shown, os.path.basename(self.path)))
        sym_name, start, size = found
        if address is not None and address != start:
            raise MrhookerError("0x%x is inside %s (which starts at 0x%x), not a function's entry"
                                % (address, sym_name, start))
        body = self._bytes(start, size)
        return _plan(capstone, md, self.path, shown, sym_name, start, size, body)


def plan_entry(path, name=None, address=None):
    """The EntryPlan of one function of the ELF file at path (ElfFunctions.plan)."""
    return ElfFunctions(path).plan(name, address)


def _plan(capstone, md, path, shown, sym_name, start, size, body):
    patch_at = len(ENDBR64) if body.startswith(ENDBR64) else 0
    if size is not None and size < patch_at + JMP_SIZE:
        raise MrhookerError("%s is %d bytes long: too short to hook at its entry (a jump takes %d)"
                            % (shown, size, JMP_SIZE))
    code, fixups, moved = bytearray(body[:patch_at]), [], 0
    for insn in md.disasm(body[patch_at:patch_at + 32], start + patch_at):
        if moved >= JMP_SIZE:
            break
        raw, fields = _relocated(capstone, insn, shown)
        fixups += [(len(code) + field, len(code) + end, target) for field, end, target in fields]
        code += raw
        moved += insn.size
    if moved < JMP_SIZE or (size is not None and patch_at + moved > size):
        raise MrhookerError("%s is too short to hook at its entry: its first instructions end with the function"
                            % shown)
    inside = range(start + patch_at + 1, start + patch_at + moved)
    for insn in md.disasm(body if size is not None else b"", start):   # stops at the first bytes Capstone can't decode (data in code)
        target = _branch_target(capstone, insn)
        if target is not None and target in inside:
            raise MrhookerError("%s jumps back into its first %d bytes (at 0x%x): they can't be moved, so it can't "
                                "be hooked at its entry" % (shown, moved, insn.address))
    return EntryPlan(path, sym_name, start, patch_at, moved, body[:patch_at + moved], bytes(code), fixups)
