"""The one exception type for expected failures (bad input, missing tools, build errors).

The CLI turns it into a single line on stderr and an exit status; nothing else prints it.
"""


class MrhookerError(Exception):
    """An expected failure: ``str(err)`` is the whole message for the user, ``status`` the exit code."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status
