"""The one exception type for mistakes a user can fix: the command line prints its message, not a traceback."""


class UserError(Exception):
    """A bad config, path or checkpoint; the message says what is wrong and what to do."""
