"""The one error type users see: the CLI prints it as one line and exits 1."""


class SweeperError(Exception):
    """A problem the user can fix: a bad grid file, a store that belongs elsewhere, ..."""


class SpecError(SweeperError):
    """The grid file is malformed; the message names the file and the key path."""


class StoreError(SweeperError):
    """The store cannot be created, opened or resumed for this grid."""
