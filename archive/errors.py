"""The archive's one exception type; the CLI edge prints it as a sentence, without a traceback."""


class ArchiveError(Exception):
    """Something the caller can fix or must know about: an unknown id, a missing or newer archive.

    ``exit_code`` is 2 for user mistakes (the default) and 1 when the database itself failed us
    (unreachable server, unreadable file), so scripts can tell a typo from an outage.
    """

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
