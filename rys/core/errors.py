"""The one error type that reaches users.

Library code raises RysError with a message written for the person at the
terminal (one line, says what is wrong and, where it can, what to do).
The CLI turns it into `Error: <message>` and exit status 1. Any other
exception is a bug and keeps its traceback.
"""


class RysError(Exception):
    """A problem with the user's input or environment, explained in one line."""
