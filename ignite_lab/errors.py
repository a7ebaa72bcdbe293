"""Exceptions for mistakes a person can fix (bad flags, files, data) and for runs that stop early.

Plain exceptions with an exit code: only the command line (``commands.Reported``) turns them into one
printed line and a non-zero exit, so the training core does not depend on click.
"""


class UserError(Exception):
    """A mistake the user can fix: printed as one clear line, exit code 2, no traceback."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RunFailed(UserError):
    """The run stopped without finishing (NaN loss, Ctrl-C, full disk). The run has already logged why (console
    and train.log) and written it to summary.json, so the command line only exits with the code."""

    exit_code = 1


class NothingToDo(UserError):
    """``--resume auto`` found the newest run already finished: said once, exit 0 (a re-queued job is done)."""

    exit_code = 0
