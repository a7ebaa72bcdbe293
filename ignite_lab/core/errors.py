"""Exceptions for mistakes a person can fix (bad flags, files, data) and for runs that stop early.

Plain exceptions with an exit code: only the command line (``commands.Reported``) turns them into one
printed line and a non-zero exit, so the training core does not depend on click. The exit codes are
for schedulers as much as for people:

====  =====================================================================================
0     done, or ``--resume auto`` found the run already finished (``NothingToDo``)
1     the run failed (a NaN loss, a full disk): its summary says why (``RunFailed``)
2     bad input: a flag, a setting, a file, the data (``UserError``)
3     the run is being trained by another live process; this job changed nothing (``RunBusy``)
75    interrupted by Ctrl-C, SIGTERM or SIGUSR1 with its state saved: run the same command again to
      continue (``Interrupted``; 75 is EX_TEMPFAIL, "try again")
====  =====================================================================================
"""


class UserError(Exception):
    """A mistake the user can fix: printed as one clear line, exit code 2, no traceback."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RunFailed(UserError):
    """The run stopped without finishing (NaN loss, full disk). The run has already logged why (console
    and train.log) and written it to summary.json, so the command line only exits with the code."""

    exit_code = 1


class Interrupted(RunFailed):
    """A signal (Ctrl-C, SIGTERM, SIGUSR1) stopped the run after saving its exact state: re-queue me."""

    exit_code = 75


class RunBusy(UserError):
    """Another live process holds the run's lock: nothing was changed, and no second job trains it."""

    exit_code = 3


class NothingToDo(UserError):
    """``--resume auto`` found the newest run already finished: said once, exit 0 (a re-queued job is done)."""

    exit_code = 0
