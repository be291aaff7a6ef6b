"""The one exception type for mistakes a user can make; the CLI prints it as a sentence."""


class UserError(Exception):
    """A bad input, a missing file, an unknown id: shown without a traceback, exit status 2."""

    exit_code = 2
