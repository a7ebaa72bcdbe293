"""The run directory: config.json, metrics.jsonl, checkpoints/, curves.png, summary.json, train.log."""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ignite_lab.checkpoints import CheckpointName, run_dir_of
from ignite_lab.config import TrainConfig
from ignite_lab.errors import UserError


def jsonable(value: Any) -> Any:
    """Metric values as JSON: tensors become lists, NaN/inf become null."""
    if isinstance(value, torch.Tensor):
        value = value.tolist() if value.numel() > 1 else value.item()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_atomic(path: Path, text: str) -> None:
    """Write then rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunDir:
    """One run's folder. Every writer goes through here so the layout is defined in one place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.checkpoints = path / "checkpoints"
        self.config = path / "config.json"
        self.metrics = path / "metrics.jsonl"
        self.summary = path / "summary.json"
        self.curves = path / "curves.png"
        self.log = path / "train.log"
        self.tensorboard = path / "tensorboard"

    @classmethod
    def create(cls, output_dir: str, recipe: str) -> RunDir:
        """A new ``OUTPUT_DIR/RECIPE/<UTC timestamp>/``; an unwritable place is found here, before training."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        parent = Path(output_dir).expanduser() / recipe
        try:
            parent.mkdir(parents=True, exist_ok=True)
            for suffix in [""] + [f"-{i}" for i in range(1, 100)]:
                path = parent / f"{stamp}{suffix}"
                try:
                    path.mkdir()
                    break
                except FileExistsError:
                    continue
        except OSError as exc:
            raise UserError(f"cannot write to output directory {output_dir}: {exc.strerror or exc}") from None
        run = cls(path)
        run.check_writable()
        return run

    @classmethod
    def create_at(cls, path: Path) -> RunDir:
        """A new run directory at ``path`` (a sweep's trial), which must not hold a run already."""
        try:
            path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise UserError(f"{path} exists already; a new run needs a new directory") from None
        except OSError as exc:
            raise UserError(f"cannot create run directory {path}: {exc.strerror or exc}") from None
        run = cls(path)
        run.check_writable()
        return run

    def check_writable(self) -> None:
        """Create checkpoints/ and write a probe file, so an unwritable place is found before training."""
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"cannot write to run directory {self.path}: {exc.strerror or exc}") from None

    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.metrics, "a") as f:
            f.write(json.dumps(jsonable(record), sort_keys=True) + "\n")

    def rewrite_metrics(self, records: list[dict[str, Any]]) -> None:
        write_atomic(self.metrics, "".join(json.dumps(jsonable(r), sort_keys=True) + "\n" for r in records))

    def keep_metrics_until(self, iteration: int) -> float:
        """Drop records newer than ``iteration`` (and test records) after a resume; returns the elapsed time kept."""
        kept = [r for r in self.read_metrics() if r.get("iteration", 0) <= iteration and r.get("split") != "test"]
        self.rewrite_metrics(kept)
        return float(kept[-1]["elapsed"]) if kept else 0.0

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics.exists():
            return []
        records = []
        for number, line in enumerate(self.metrics.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                raise UserError(f"{self.metrics}, line {number}: not a JSON record") from None
        return records

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_atomic(self.summary, json.dumps(jsonable(summary), indent=2, sort_keys=True) + "\n")

    def read_summary(self) -> dict[str, Any]:
        try:
            return json.loads(self.summary.read_text())
        except (OSError, ValueError):
            return {}

    def checkpoint_files(self, kind: str) -> list[Path]:
        """Checkpoints named ``KIND_checkpoint_*.pt`` (kind: last or best), highest step or score first."""

        def rank(path: Path) -> tuple[float, float]:
            name = CheckpointName.parse(path)
            value = name.score if name.score is not None else name.step
            return (-1.0 if value is None else float(value)), path.stat().st_mtime

        return sorted(self.checkpoints.glob(f"{kind}_checkpoint_*.pt"), key=rank, reverse=True)

    def history(self) -> list[dict[str, Any]]:
        """The run's events so far (started, interrupted, resumed, ...), from summary.json."""
        history = self.read_summary().get("history")
        return list(history) if isinstance(history, list) else []


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def checkpoint_config(path: Path, checkpoint: dict[str, Any]) -> TrainConfig:
    """The config the checkpoint was trained with: config.json beside it, else the copy inside it."""
    saved = RunDir(run_dir_of(path)).config
    if saved.exists():
        return TrainConfig.load(saved)
    if "run_info" in checkpoint:
        return TrainConfig.from_dict(checkpoint["run_info"], str(path))
    raise UserError(f"{path}: no config.json in {saved.parent} and no run config inside the checkpoint")
