"""Checkpoint files: written atomically (never losing the previous one), loaded safely, named one way."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.handlers.checkpoint import BaseSaveHandler

from ignite_lab.core.errors import UserError
from ignite_lab.core.files import new_temporary

# Ignite names files PREFIX_checkpoint_STEP[_SCORENAME=SCORE].pt; these are the two prefixes.
LAST = "last"
BEST = "best"


@dataclass(frozen=True)
class CheckpointName:
    """What a checkpoint's file name says: kind (best or last), step (epoch for best, iteration for last), score."""

    kind: str
    step: int | None
    score: float | None

    @classmethod
    def parse(cls, path: Path | str) -> CheckpointName:
        parts = Path(path).stem.split("_")
        step = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
        score = None
        if "=" in parts[-1]:
            try:
                score = float(parts[-1].split("=", 1)[1])
            except ValueError:
                pass
        return cls(parts[0], step, score)


class AtomicDiskSaver(BaseSaveHandler):
    """Saves on rank 0: temp file, flush, fsync, rename, so a kill or power cut leaves the old file or the new one.

    Ignite's ``Checkpoint`` asks to remove the file it replaces; here nothing is removed then. Instead
    ``after_save`` (given to the last-checkpoint saver) tidies the folder once a new file is durable, so a
    failed save (full disk) or a kill at any moment never leaves the run without the checkpoint it would
    resume from, nor a last checkpoint that names a best checkpoint already gone.
    """

    def __init__(self, dirname: Path, after_save: Callable[[str], None] | None = None) -> None:
        self.dirname = Path(dirname)
        self.after_save = after_save

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        if idist.get_rank() != 0:
            return
        path = self.dirname / filename
        fd, name = new_temporary(path)
        try:
            with os.fdopen(fd, "wb") as tmp:
                torch.save(checkpoint, tmp)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(name, path)
        finally:
            name.unlink(missing_ok=True)
        if self.after_save is not None:
            self.after_save(filename)

    def remove(self, filename: str) -> None:
        """Superseded files go in ``after_save`` of the next durable last checkpoint, not here."""


def load_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with a clear error for missing, damaged or unsafe files."""
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"refusing to load {path}: it holds objects other than tensors and plain containers, "
            f"which could run code when unpickled ({first})"
        ) from None
    except Exception as exc:  # a torn or foreign file fails in many ways (EOFError, BadZipFile, IndexError, ...)
        raise UserError(
            f"cannot load checkpoint {path}: the file is damaged or not a PyTorch checkpoint ({exc})"
        ) from None
    check_structure(path, checkpoint)
    return checkpoint


def check_structure(path: Path, checkpoint: Any) -> None:
    """What the toolkit writes: a dict whose model is a state dict of tensors, whose trainer state (if any)
    has whole non-negative counters, and whose run config (if any) is a dict. Anything else is named."""
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise UserError(f"{path} is not an ignite-lab checkpoint (no 'model' entry)")
    model = checkpoint["model"]
    if not isinstance(model, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()
    ):
        raise UserError(f"{path}: 'model' is not a state dict of named tensors")
    trainer = checkpoint.get("trainer", {})
    if not isinstance(trainer, Mapping):
        raise UserError(f"{path}: 'trainer' is not the trainer's state")
    for key in ("iteration", "epoch_length", "max_epochs"):
        value = trainer.get(key, 0)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise UserError(f"{path}: the trainer's {key} is {value!r}, not a whole number >= 0")
    for key in ("optimizer", "run_info", "mid_epoch", "best_checkpointer", "lr_scheduler", "early_stopping"):
        if key in checkpoint and not isinstance(checkpoint[key], Mapping):
            raise UserError(f"{path}: {key!r} is not a saved state (a dict)")


def run_dir_of(checkpoint: Path) -> Path:
    """A checkpoint lives in RUN_DIR/checkpoints/."""
    return checkpoint.resolve().parent.parent


class RunInfo:
    """The run config stored inside each checkpoint, so a checkpoint moved elsewhere still knows its recipe."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def state_dict(self) -> dict[str, Any]:
        return dict(self.config)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.config = dict(state)
