"""Errors a user can fix: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """A problem the user can fix (bad path, bad option); the message says how."""


class ExitCode:
    """Exit statuses shared by `edit`, `batch` (worst photo wins) and `inpaint`."""

    MET = 0  # goal met (or the command did what it was asked)
    ERROR = 1  # any other error
    USAGE = 2  # bad command line, bad input file, bad option: the message says what to fix
    NOT_MET = 3  # the best version was written but the goal is not met
    NOTHING = 4  # nothing understood / nothing to do: the output is an unchanged copy

    # batch: the worst photo decides the exit status
    SEVERITY = (MET, NOTHING, NOT_MET, USAGE, ERROR)

    @classmethod
    def worst(cls, codes: list[int]) -> int:
        """The status of a batch: the most severe of its photos' statuses (0 when empty)."""
        return max(codes, key=cls.SEVERITY.index, default=cls.MET)
