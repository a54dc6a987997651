"""The one exception type for expected failures (bad input, missing tools, build errors), and mrhooker's own
lines that are not failures (say).

The CLI turns an MrhookerError into a single line on stderr and an exit status; nothing else prints it.
"""
import sys


class MrhookerError(Exception):
    """An expected failure: ``str(err)`` is the whole message for the user, ``status`` the exit code."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


def say(text):
    """One of mrhooker's own lines on stderr ("mrhooker: ..."), which may be broken (then it is lost, as anything
    written there)."""
    try:
        sys.stderr.write("mrhooker: %s\n" % text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def counted(n, noun):
    """"1 site", "2 sites": a count and its noun, in a message."""
    return "%d %s" % (n, noun if n == 1 else noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s"))
