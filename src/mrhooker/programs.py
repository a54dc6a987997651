"""What a command's program is, before it runs: its path, as execvp finds it (resolve_command); what it and the
libraries it loads at start import, for `mrhooker trace -l GLOB COMMAND` (the undefined symbols of their dynamic
symbol tables, read with pyelftools), so a user sees that python3 calls open64 and sqlite3 fcntl64 before
choosing what to trace; and which of a hook script's names they define (-v).

The libraries are the ones the system's dynamic loader lists for the program (`ld.so --list`, what ldd runs):
the loader's own search (RUNPATH, LD_LIBRARY_PATH, its cache) decides, not a copy of it here. The loader run is
the one the Python running mrhooker uses, never the program's own PT_INTERP, so listing runs no code the program
names. Libraries a program loads later with dlopen (Python's extension modules, plugins) are not seen.
"""
import os

from mrhooker.errors import MrhookerError

LIST_TIMEOUT = 60


def resolve_command(name, env):
    """The program's path, as execvp would find it; exit 127 if there is none, 126 if it can't be run."""
    if "/" in name:
        candidates = [name]
    else:
        candidates = [os.path.join(d or ".", name) for d in env.get("PATH", os.defpath).split(os.pathsep)]
    denied = None
    for path in candidates:
        if os.path.isfile(path):
            if os.access(path, os.X_OK):
                return path
            denied = denied or path
        elif os.path.isdir(path) and "/" in name:
            raise MrhookerError("%s: is a directory" % name, 126)
    if denied:
        raise MrhookerError("%s: permission denied (not executable)" % denied, 126)
    raise MrhookerError("%s: command not found" % name, 127)


def _elf(f, path):
    try:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
    except ImportError:
        raise MrhookerError("listing what a program imports needs pyelftools: pip install pyelftools")
    try:
        return ELFFile(f)
    except ELFError as e:
        raise MrhookerError("%s: not an ELF file mrhooker can read (%s)" % (path, e))


def _interpreter(elf):
    """The file's PT_INTERP (its dynamic loader), or None for a static program."""
    for segment in elf.iter_segments():
        if segment["p_type"] == "PT_INTERP":
            return segment.get_interp_name()
    return None


def _dynamic_symbols(path, defined=False):
    """The names a shared object or program imports (the undefined, named global and weak symbols of its
    .dynsym), or, defined, those it exports."""
    with open(path, "rb") as f:
        dynsym = _elf(f, path).get_section_by_name(".dynsym")
        if dynsym is None:
            return set()
        return {s.name for s in dynsym.iter_symbols()
                if s.name and (s["st_shndx"] != "SHN_UNDEF") == defined
                and s["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK")}


def _env_command(words):
    """The command `#!/usr/bin/env WORDS` runs, or None (env itself then): the kernel passes WORDS as one argument,
    which env splits with -S (`#!/usr/bin/env -S python3 -u`), past its options and NAME=VALUE settings."""
    if len(words) == 1 and not words[0].startswith("-"):
        return words[0]
    if not words or not words[0].startswith("-S"):
        return None
    words = ([words[0][2:]] if words[0] != "-S" else []) + words[1:]
    while words and (words[0] in ("-", "-i", "--ignore-environment") or "=" in words[0]
                     or words[0].startswith("-u")):
        words = words[2:] if words[0] == "-u" else words[1:]
    return words[0] if words and not words[0].startswith("-") else None


def elf_program(path):
    """The ELF program to read for `path`: itself, or for a #! script its interpreter (`#!/usr/bin/env NAME`,
    `#!/usr/bin/env -S NAME ARGS`: NAME, found on PATH), or for a script without #! /bin/sh, which runs it (execvp's ENOEXEC case)."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError as e:
        raise MrhookerError("cannot read %s: %s" % (path, e.strerror), 126)
    if head.startswith(b"#!"):
        words = head[2:].split(b"\n", 1)[0].split()
        words = [w.decode(errors="replace") for w in words]
        interpreter = words[0] if words else ""
        if os.path.basename(interpreter) == "env":
            command = _env_command(words[1:])
            if command:
                interpreter = resolve_command(command, os.environ)
        if not os.path.isabs(interpreter) or not os.path.isfile(interpreter):
            raise MrhookerError("%s is a script whose interpreter %r can't be read: name the program it runs"
                                % (path, interpreter))
        return interpreter
    if not head.startswith(b"\x7fELF"):   # execve's ENOEXEC: run with /bin/sh, as execvp and the launch do
        return "/bin/sh"
    return path


def loaders_libraries(program):
    """The shared libraries the system's loader loads for `program` at start, as resolved paths."""
    import subprocess

    with open("/proc/self/exe", "rb") as f:
        loader = _interpreter(_elf(f, "/proc/self/exe"))
    if loader is None:
        raise MrhookerError("this Python is statically linked: there is no loader to ask which libraries %s loads"
                            % program)
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "LD_AUDIT")}
    try:
        proc = subprocess.run([loader, "--list", program], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=LIST_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise MrhookerError("cannot list the libraries of %s with %s: %s" % (program, loader, e))
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        raise MrhookerError("cannot list the libraries of %s: %s" % (program, message[-1] if message else
                                                                      "the loader exited %d" % proc.returncode))
    libraries = []
    for line in proc.stdout.decode(errors="replace").splitlines():
        # "\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)", "\t/lib64/ld-linux-x86-64.so.2 (0x...)"
        path = line.split("=>", 1)[-1].strip().rsplit(" (0x", 1)[0].strip()
        if os.path.isabs(path) and os.path.isfile(path):
            libraries.append(os.path.realpath(path))
    return libraries


def imported(path, note=lambda msg: None):
    """{symbol: [the files importing it, by base name, the program first]} for the program at `path` and the
    libraries the loader loads for it at start."""
    program = elf_program(path)
    if program != path:
        note("%s is a script: what its interpreter %s imports" % (path, program))
    with open(program, "rb") as f:
        elf = _elf(f, program)
        if elf.elfclass != 64:
            raise MrhookerError("%s is a %d-bit program: mrhooker traces 64-bit programs" % (program, elf.elfclass))
        static = _interpreter(elf) is None
    if static:
        raise MrhookerError("%s is statically linked: it imports nothing, so nothing in it can be traced" % program)
    found = {}
    for obj in [os.path.realpath(program)] + loaders_libraries(program):
        for name in _dynamic_symbols(obj):
            found.setdefault(name, [])
            if os.path.basename(obj) not in found[name]:
                found[name].append(os.path.basename(obj))
    return found


def definers(program, names, libraries=None):
    """{name: the file (resolved path) that defines it} for those of `names` that the program or the libraries
    the loader loads for it at start export, the first in the loader's order; None if that can't be told (a
    static program, a script, no pyelftools). Libraries it loads later (dlopen) and programs it runs are not
    seen."""
    wanted, found = set(names), {}
    try:
        for obj in [os.path.realpath(program)] + (loaders_libraries(program) if libraries is None else libraries):
            for name in _dynamic_symbols(obj, defined=True) & wanted:
                found.setdefault(name, obj)
    except (MrhookerError, OSError):
        return None
    return found


def defined_names(program, names):
    """definers(), by base name."""
    found = definers(program, names)
    return None if found is None else {name: os.path.basename(path) for name, path in found.items()}
