"""How a run ends, typed: the status summary.json records and the reason a handler gives for stopping it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Status(str, Enum):
    """A run's state in summary.json (a ``str`` enum: it is written, read and compared as its value)."""

    RUNNING = "running"
    COMPLETED = "completed"
    EARLY_STOPPED = "early_stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    PRUNED = "pruned"

    def __str__(self) -> str:
        return self.value


FINISHED = (Status.COMPLETED, Status.EARLY_STOPPED)  # done for good: a re-queued --resume auto leaves it alone


@dataclass(frozen=True)
class StopReason:
    """Why a handler stopped the run (a sweep's pruner): set as ``trainer.state.stop_reason`` before it
    terminates the trainer, and reported as the run's status and message."""

    status: Status
    message: str
