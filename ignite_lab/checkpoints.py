"""Checkpoint files: written atomically (never losing the previous one), loaded safely, named one way."""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.handlers.checkpoint import BaseSaveHandler

from ignite_lab.errors import UserError

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

    Ignite's ``Checkpoint`` asks to remove the file it replaces before it saves the new one; here that
    removal waits until the new file is safely on disk, so a failed save (full disk) or a kill in
    between never leaves the run without its previous checkpoint.
    """

    def __init__(self, dirname: Path) -> None:
        self.dirname = Path(dirname)
        self.pending_removal: list[str] = []

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        if idist.get_rank() != 0:
            return
        path = self.dirname / filename
        tmp = tempfile.NamedTemporaryFile(delete=False, dir=self.dirname, prefix=".", suffix=".tmp")
        try:
            torch.save(checkpoint, tmp.file)
            tmp.file.flush()
            os.fsync(tmp.file.fileno())
            tmp.close()
            os.replace(tmp.name, path)
        except BaseException:
            tmp.close()
            Path(tmp.name).unlink(missing_ok=True)
            raise
        for old in self.pending_removal:
            if old != filename:
                (self.dirname / old).unlink(missing_ok=True)
        self.pending_removal.clear()

    def remove(self, filename: str) -> None:
        if idist.get_rank() == 0:
            self.pending_removal.append(filename)


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
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise UserError(f"{path} is not an ignite-lab checkpoint (no 'model' entry)")
    return checkpoint


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
