"""The run directory: config.json, metrics.jsonl, checkpoints/, curves.png, summary.json, train.log."""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

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

        def step(path: Path) -> float:
            tail = path.stem.rsplit("_", 1)[-1]
            try:
                return float(tail.split("=")[-1]) if "=" in tail else float(tail)
            except ValueError:
                return -1.0

        return sorted(
            self.checkpoints.glob(f"{kind}_checkpoint_*.pt"), key=lambda p: (step(p), p.stat().st_mtime), reverse=True
        )
