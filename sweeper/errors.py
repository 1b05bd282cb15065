"""The one error type users see: the CLI prints it as one line and exits 1.

:func:`printable` escapes the control characters a message quotes (a file name,
a store path) so that it stays one line.
"""


class SweeperError(Exception):
    """A problem the user can fix: a bad grid file, a store that belongs elsewhere, ..."""


class SpecError(SweeperError):
    """The grid file is malformed; the message names the file and the key path."""


class StoreError(SweeperError):
    """The store cannot be created, opened or resumed for this grid."""


def printable(text: str) -> str:
    """``text`` with control characters escaped: a message stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)
