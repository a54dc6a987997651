"""Call sites: an address in a traced process (a record's caller) as `object+offset`, with its function and, where
the object has line tables, its source line. The process's memory map comes from the copy the runtime made of it
(MRHOOKER_MAPS: runtime/trace.c); the objects are read from disk with pyelftools."""
import bisect
import os
import threading

from mrhooker.prologue import function_symbols


class Site:
    """Where a call came from: `path` and `offset` (the file's virtual address, as objdump shows it) say it the
    same in every run, whatever the address space layout; `address` is this run's."""

    __slots__ = ("address", "path", "offset", "function", "line")

    def __init__(self, address, path=None, offset=None, function=None, line=None):
        self.address, self.path, self.offset, self.function, self.line = address, path, offset, function, line

    @property
    def key(self):
        """The same site in another run: (object, offset), or the bare address when no map said whose it is."""
        return (self.path, self.offset) if self.path else (None, self.address)

    def __str__(self):
        if not self.path:
            return "0x%x" % self.address
        text = "%s+0x%x" % (os.path.basename(self.path), self.offset)
        if self.function:
            text += " (%s%s)" % (self.function, ", " + self.line if self.line else "")
        return text


def read_map(path):
    """[(start, end, file offset, object path)] of a /proc/PID/maps copy's file-backed mappings, or [] if it
    can't be read."""
    regions = []
    try:
        with open(path) as f:
            for line in f:
                fields = line.split(None, 5)
                if len(fields) == 6 and fields[5].startswith("/"):
                    start, end = (int(v, 16) for v in fields[0].split("-"))
                    regions.append((start, end, int(fields[2], 16), fields[5].rstrip("\n")))
    except (OSError, ValueError):
        return []
    return sorted(regions)


class Resolver:
    """Addresses of processes whose maps it is given, as Sites. Each object file is read once."""

    def __init__(self):
        self._objects = {}
        self._lock = threading.Lock()   # runs resolve from threads of their own

    def site(self, address, regions):
        starts = [r[0] for r in regions]
        i = bisect.bisect_right(starts, address) - 1
        if i < 0 or address >= regions[i][1]:
            return Site(address)
        start, _end, file_offset, path = regions[i]
        obj = self._object(path)
        if obj is None:
            return Site(address, path, address - start + file_offset)
        offset = obj.vaddr(address - start + file_offset)
        function, line = obj.describe(offset)
        return Site(address, path, offset, function, line)

    def _object(self, path):
        with self._lock:
            return self._object_locked(path)

    def _object_locked(self, path):
        if path not in self._objects:
            try:
                self._objects[path] = _Object(path)
            except Exception:   # not an ELF file we can read (deleted, replaced): offsets alone
                self._objects[path] = None
        return self._objects[path]


class _Object:
    def __init__(self, path):
        from elftools.elf.elffile import ELFFile
        with open(path, "rb") as f:
            elf = ELFFile(f)
            self.segments = [(s["p_offset"], s["p_filesz"], s["p_vaddr"]) for s in elf.iter_segments()
                             if s["p_type"] == "PT_LOAD"]
            found, _twice = function_symbols(elf)
            self.functions = sorted((value, size, name) for name, (value, size, _ifunc) in found.items() if size)
            self.starts = [f[0] for f in self.functions]
            self.lines = self._line_table(elf) if elf.has_dwarf_info() else []

    @staticmethod
    def _line_table(elf):
        """[(address, "file:line")] of the line programs' rows, sorted."""
        rows = []
        dwarf = elf.get_dwarf_info()
        for cu in dwarf.iter_CUs():
            program = dwarf.line_program_for_CU(cu)
            if program is None:
                continue
            files = program["file_entry"]
            base = 1 if program.header["version"] < 5 else 0
            for entry in program.get_entries():
                state = entry.state
                if state is None or state.end_sequence:
                    continue
                index = state.file - base
                name = files[index].name.decode(errors="replace") if 0 <= index < len(files) else "?"
                rows.append((state.address, "%s:%d" % (name, state.line)))
        rows.sort()
        return rows

    def vaddr(self, file_offset):
        for offset, size, vaddr in self.segments:
            if offset <= file_offset < offset + size:
                return file_offset - offset + vaddr
        return file_offset

    def describe(self, vaddr):
        """(function, "file:line") at a return address: the call is the instruction before it."""
        at = vaddr - 1
        function = None
        i = bisect.bisect_right(self.starts, at) - 1
        if i >= 0 and at < self.functions[i][0] + self.functions[i][1]:
            value = self.functions[i][0]
            function = self.functions[i][2] + ("+0x%x" % (vaddr - value))
        line = None
        if self.lines:
            j = bisect.bisect_right(self.lines, (at, "\uffff")) - 1
            if j >= 0:
                line = self.lines[j][1]
        return function, line
