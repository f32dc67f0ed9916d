"""Errors a user can fix: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """A problem the user can fix (bad path, bad option); the message says how."""
