"""What `mrhooker trace` writes itself, beside what reader.c shows (the lines, JSON, the timeline): the summary
(-c) and a hook script to start from (--scaffold)."""
import os

from mrhooker import cache


def summary(names, rows):
    """-c's table, as strace -c: calls, errors and time per function, sorted by time. rows: per function (calls,
    errors, ns)."""
    used = {fn: row for fn, row in enumerate(rows) if row[0]}
    total_ns = sum(r[2] for r in used.values()) or 1
    lines = ["% time     seconds  usecs/call     calls    errors function",
             "------ ----------- ----------- --------- --------- ----------------"]
    for fn, (calls, errors, ns) in sorted(used.items(), key=lambda item: (-item[1][2], -item[1][0])):
        lines.append("%6.2f %11.6f %11d %9d %9s %s" % (100.0 * ns / total_ns, ns / 1e9, ns // 1000 // max(calls, 1),
                                                      calls, errors or "", names[fn]))
    lines.append("------ ----------- ----------- --------- --------- ----------------")
    calls = sum(r[0] for r in used.values())
    errors = sum(r[1] for r in used.values())
    lines.append("100.00 %11.6f %11d %9d %9s total" % (
        sum(r[2] for r in used.values()) / 1e9, (total_ns // 1000 // max(calls, 1)) if used else 0, calls,
        errors or ""))
    return "\n".join(lines) + "\n"


def write_scaffold(path, command, functions):
    """A hook script with one pass-through @hook per function called (functions: [{"name", "text", "params"}],
    in the order of their first call): `mrhooker FILE.py COMMAND` runs it unchanged."""
    import keyword
    import shlex
    quoted = " ".join(shlex.quote(a) for a in command)
    out = ['"""Hooks for %s, one per function `mrhooker trace` saw it call: edit them, then' % quoted,
           "", "    mrhooker %s %s" % (os.path.basename(path), quoted), '"""',
           "from mrhooker import hook, set_errno, get_errno", ""]
    used = set()
    for f in functions:
        name = f["name"]
        py = name if name.isidentifier() and not keyword.iskeyword(name) and name not in used else name + "_hook"
        used.add(py)
        params = ", ".join(f["params"])
        out += ["", "@hook(%r)" % f["text"], "def %s(%s):" % (py, params), "    return %s.original(%s)" % (py, params),
                ""]
    cache.write_atomic(path, "\n".join(out).rstrip() + "\n")
