"""Hooks at a function's own entry: which hooked functions are patched where in one program, as the MRHOOKER_ENTRY
setting that runtime/patch.c applies as the program loads.

Through the PLT a hook sees a function only when another object calls it; at its entry it sees every call, from
inside its own library too (printf's write). A function the program defines and no library exports (its own
compute()) can only be hooked there, so it always is when hooked; a library's function is hooked there when asked
(`trace --entry`, `@hook(..., at="entry")`). Each is planned from the file the loader will load (prologue.py);
the runtime patches only if the bytes it finds are the planned ones.
"""
import hashlib
import json
import os

from mrhooker import __version__, cache, toolchain
from mrhooker.errors import MrhookerError

DIRECTORY = "entry-plans"   # in the cache root: one small file per program and set of names
_SOURCES = [os.path.join(os.path.dirname(os.path.abspath(__file__)), f) for f in ("atentry.py", "prologue.py")]


class EntrySetting:
    """What entry_setting decided: the setting's value ("" if nothing is patched), the functions patched
    ({name: file}), and those that stay PLT-only with the reason ({name: why})."""

    def __init__(self, value, patched, refused):
        self.value, self.patched, self.refused = value, patched, refused

    def environment(self):
        return {"MRHOOKER_ENTRY": self.value} if self.value else {}


def _field(plan, name):
    fixups = ",".join("%x:%x:%x" % f for f in plan.fixups) or "-"
    return " ".join([name, os.path.basename(plan.path), "%x" % plan.address, str(plan.patch_at), str(plan.moved),
                     plan.expect.hex(), plan.code.hex(), fixups])


def entry_setting(program, names, asked, own, strict, root, addresses=None):
    """The entry patches for hooking `names` in `program` (its path; a #! script: its interpreter's): each of
    `asked` (a set of names, or True for all) in the library that defines it, and each of `own` (a set: the
    names written out by the user, whose prototype is theirs) that no library exports, in the program itself;
    addresses: {name: the address of its entry in the program's file} for functions given so (a stripped
    program's). strict: a function asked for that can't be patched is an error (else it is left to the PLT,
    and said in .refused). Remembered in the cache directory root, keyed by the files it was read from (their
    size and mtime: an upgraded library is planned again; the runtime checks the bytes anyway)."""
    from mrhooker import programs

    if program.startswith("/proc/") and not os.path.exists(program):   # an attach's /proc/PID/exe
        raise MrhookerError("process %s exited" % program.split("/")[2])
    exe = os.path.realpath(programs.elf_program(program))
    libraries = programs.loaders_libraries(exe)
    addresses = addresses or {}
    key = hashlib.sha256("\0".join([__version__, json.dumps([exe, list(names), asked if asked is True else
                                                               sorted(asked), sorted(own), strict,
                                                               sorted(addresses.items())])]
                                     + [toolchain.tool_identity(p) for p in [exe] + libraries + _SOURCES]).encode())
    path = os.path.join(root, DIRECTORY, key.hexdigest()[:32] + ".json")
    try:
        with open(path, encoding="utf-8") as f:
            cache.check_private(path, "entry plan")
            found = json.load(f)
        return EntrySetting(found["value"], found["patched"], found["refused"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    setting = _plan(exe, libraries, names, asked, own, strict, addresses)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    cache.write_atomic(path, json.dumps({"value": setting.value, "patched": setting.patched,
                                         "refused": setting.refused}))
    return setting


def _plan(exe, libraries, names, asked, own, strict, addresses):
    from mrhooker import programs, prologue

    prologue.decoder()   # no Capstone: one line saying how to install it, not every function refused
    exported = programs.definers(exe, names, libraries)
    if exported is None:
        raise MrhookerError("cannot tell which files define the functions to hook at their entry in %s" % exe)
    fields, patched, refused, done, files = [], {}, {}, set(), {}
    for name in names:
        if name in addresses or (name not in exported and name in own):
            path = exe   # the program's own function: its .symtab (or the address given) says where
        elif name in exported and (asked is True or name in asked):
            path = exported[name]
        else:
            continue   # through the PLT only: not asked for, or a name no object defines at start
        try:
            if path not in files:
                files[path] = prologue.ElfFunctions(path)
            plan = files[path].plan(address=addresses[name]) if name in addresses else files[path].plan(name)
        except MrhookerError as e:
            if strict:
                raise
            refused[name] = str(e)
            continue
        if (plan.path, plan.address) in done:
            continue   # an alias of a function patched already (open, open64): its first name shows the calls
        done.add((plan.path, plan.address))
        fields.append(_field(plan, name))
        patched[name] = path
    return EntrySetting(";".join(fields), patched, refused)
