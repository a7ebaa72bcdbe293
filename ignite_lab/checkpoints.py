"""Loading checkpoints safely: plain tensors and containers only, never arbitrary pickled code."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ignite_lab.config import RunConfig
from ignite_lab.errors import UserError
from ignite_lab.rundir import RunDir

# Ignite names files PREFIX_checkpoint_STEP[_SCORE].pt; these are the two prefixes.
LAST = "last"
BEST = "best"


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
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise UserError(
            f"cannot load checkpoint {path}: the file is damaged or not a PyTorch checkpoint ({exc})"
        ) from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise UserError(f"{path} is not an ignite-lab checkpoint (no 'model' entry)")
    return checkpoint


def run_dir_of(checkpoint: Path) -> Path:
    """A checkpoint lives in RUN_DIR/checkpoints/."""
    return checkpoint.resolve().parent.parent


def checkpoint_config(path: Path, checkpoint: dict[str, Any]) -> RunConfig:
    """The config the checkpoint was trained with: config.json beside it, else the copy inside it."""
    saved = RunDir(run_dir_of(path)).config
    if saved.exists():
        return RunConfig.load(saved)
    if "run_info" in checkpoint:
        return RunConfig.from_dict(checkpoint["run_info"], str(path))
    raise UserError(f"{path}: no config.json in {saved.parent} and no run config inside the checkpoint")


class RunInfo:
    """The run config stored inside each checkpoint, so a checkpoint moved elsewhere still knows its recipe."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def state_dict(self) -> dict[str, Any]:
        return dict(self.config)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.config = dict(state)
