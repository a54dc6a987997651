"""What mrhooker says about a hooked run besides the program's own output: whether the hooks started, which
hooked names no library of the program defines, and whether the hook output could be written.

Each hooked process appends records to a file of mrhooker's (runtime/preload.c, "reports to the launcher"): the
hooked names nothing it loaded defined, those a library loaded later did, whether its hooks failed to start, and
whether its hook output could not be written. After the run, mrhooker sums them up in its last lines:

    mrhooker: warning: no library of the program defines unlinkatt: its hook never ran
    mrhooker: the hooks did not start in 1 process (see the error above): it ran unhooked
    mrhooker: cannot write the hook output to out.txt: No space left on device (in 1 process): some of it is lost

A name is reported only if no process of the run found it (sh, which runs curl, has no SSL_write; curl has). A
failed start makes mrhooker's exit status 2 where the program's was 0 (launch.run_target), so that a CI job
can't pass without its hooks. With -v, the names the program's own libraries define are said before the run.
"""
import os

MISSING_SHOWN = 10   # names a warning lists at most


def _unnamed_file():
    """A new file with no name, private to this user (O_TMPFILE in $TMPDIR or /tmp; tempfile's where the system
    has no O_TMPFILE, an import a warm start does without otherwise)."""
    try:
        fd = os.open(os.environ.get("TMPDIR") or "/tmp", os.O_TMPFILE | os.O_RDWR, 0o600)
    except (OSError, AttributeError):
        import tempfile
        return tempfile.TemporaryFile(prefix="mrhooker-report-")
    return os.fdopen(fd, "w+b")


class RunReport:
    """The records' file: created unlinked (O_TMPFILE where the system has it), reached by the target's
    processes as /proc/PID/fd/N, with the identity (device, inode) they check before writing, as for the hook
    output (runtime/output.h). Nothing is left behind, however mrhooker ends."""

    def __init__(self):
        self._file = _unnamed_file()
        st = os.fstat(self._file.fileno())
        self.path = "/proc/%d/fd/%d" % (os.getpid(), self._file.fileno())
        self.identity = "%d:%d" % (st.st_dev, st.st_ino)

    def environment(self):
        return {"MRHOOKER_REPORT": self.path, "MRHOOKER_REPORT_ID": self.identity}

    def close(self):
        self._file.close()

    def summary(self):
        """(the names no process found, the number of processes whose hooks did not start, {errno: processes
        whose hook output could not be written}), from the records written so far."""
        self._file.seek(0)
        return summarize(self._file.read().decode("utf-8", "replace"))

    def final_lines(self, output=None):
        """mrhooker's last lines about the run (without "mrhooker: "), and whether the hooks failed to start
        anywhere. output: the -o file the hook output went to, if any."""
        never_found, unstarted, lost = self.summary()
        lines = []
        if never_found:
            shown = sorted(never_found)[:MISSING_SHOWN]
            names = ", ".join(shown) + (" (and %d more)" % (len(never_found) - len(shown))
                                        if len(never_found) > len(shown) else "")
            lines.append("warning: no library of the program defines %s: %s never ran (misspelt, or a library the "
                         "program does not load?)" % (names, "its hook" if len(never_found) == 1 else "their hooks"))
        if unstarted:
            where = "in %s" % output if output else "above"
            lines.append("the hooks did not start in %d process%s (see the error %s): %s unhooked"
                         % (unstarted, "" if unstarted == 1 else "es", where,
                            "it ran" if unstarted == 1 else "they ran"))
        for err, processes in sorted(lost.items()):
            lines.append("cannot write the hook output to %s: %s (in %d process%s): some of it is lost"
                         % (output or "standard error", os.strerror(err), processes, "" if processes == 1 else "es"))
        return lines, unstarted > 0


def summarize(text):
    """(names missing in every process image that reported and found by none, processes not started, {errno:
    processes whose hook output could not be written})."""
    images = {}
    found = set()
    unstarted = 0
    lost = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "missing":
            images.setdefault(words[1], set()).update(words[2:])
        elif words[:1] == ["found"]:
            found.update(words[1:])
        elif words == ["unstarted"]:
            unstarted += 1
        elif len(words) == 2 and words[0] == "lost" and words[1].isdigit():
            lost[int(words[1])] = lost.get(int(words[1]), 0) + 1
    never_found = set.intersection(*images.values()) - found if images else set()
    return never_found, unstarted, lost


# ---- before the run (-v) ---------------------------------------------------------------------------------

def log_defined_names(program, names, log):
    """-v: which hooked names the program's own libraries define, before the run."""
    from mrhooker.programs import defined_names

    found = defined_names(program, names)
    if found is None:
        log("cannot tell which of the hooked names %s's libraries define (not a dynamic program?)" % program)
        return
    by_library = {}
    for name in sorted(found):
        by_library.setdefault(found[name], []).append(name)
    log("hooked names %s's libraries define: %s" % (os.path.basename(program), "; ".join(
        "%s (%s)" % (", ".join(names_), library) for library, names_ in sorted(by_library.items())) or "none"))
    rest = sorted(set(names) - set(found))
    if rest:
        log("hooked names none of them define (a library loaded later, or a program run, may): %s"
            % ", ".join(rest))
