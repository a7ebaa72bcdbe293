"""The run directory: config.json, metrics.jsonl, checkpoints/, curves.png, summary.json, train.log.

``RunDir`` owns every path of a run and how it is written: whole files are written to a unique
temporary name, flushed, fsynced and renamed (a reader or a later resume never sees half a file),
and ``lock()`` takes the run for this process. The lock is an advisory ``flock`` on the run's folder
itself (``RUN/.lock`` only says who holds it), held for the life of the process and released by the
kernel however it dies (kill -9 included), so a second job on the same run is refused with
``RunBusy`` instead of training it twice. Whoever holds the lock removes the temporaries a killed
process left behind, and a metrics line a full disk cut short.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import socket
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch

from ignite_lab.core.config import TrainConfig
from ignite_lab.core.errors import RunBusy, UserError
from ignite_lab.core.files import remove_temporaries, write_atomic
from ignite_lab.core.settings import complete_settings
from ignite_lab.training.checkpoints import CheckpointName, run_dir_of

HELD: dict[Path, int] = {}  # run directories this process has locked -> the lock file's descriptor


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


def run_file(config: TrainConfig, name: str, make: Callable[[], str]) -> str:
    """A file a recipe's ``build`` keeps with its run (a vocabulary, random graphs): read back when the run
    already has it (resume, eval, predict), else made by ``make()`` and written atomically, by rank 0 only.

    Use it for anything ``build`` derives once and must find again unchanged; without a run directory
    (a bare ``build`` call) the file is simply made.
    """
    path = Path(config.run_dir) / name if config.run_dir else None
    if path is not None and path.is_file():
        try:
            return path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {path}: {exc}") from None
    text = make()
    if path is not None and idist.get_rank() == 0:
        try:
            write_atomic(path, text)
        except OSError as exc:
            raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    return text


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
        self.lock_note = path / ".lock"  # who holds the run's lock (the lock is on the folder itself)
        self.tensorboard = path / "tensorboard"
        self.media = path / "media"  # pictures and text a recipe publishes
        self.exports = path / "export"  # ignite-lab export's files
        self.profile = path / "profile.prof"  # ignite-lab profile's cProfile dump, Chrome trace, handler times
        self.trace = path / "trace.json"
        self.handler_times = path / "handlers.csv"

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

    def lock(self) -> RunDir:
        """Take this run for this process (non-blocking), then clear what killed writers left behind.

        Raises ``RunBusy`` naming the holder's pid and host when another process trains it. Taking a
        lock this process already holds is a no-op.
        """
        key = self.path.resolve()
        if key in HELD:
            return self
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)  # the folder itself: no file to delete by hand
        except OSError as exc:
            raise UserError(f"cannot open run directory {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.holder() or "another process"
            raise RunBusy(f"run {self.path} is being trained by {holder}; not starting a second job on it") from None
        HELD[key] = fd
        self.guarded(lambda: write_atomic(self.lock_note, f"pid {os.getpid()} on {socket.gethostname()}\n"))
        for folder in (self.path, self.checkpoints, self.exports, self.media):
            remove_temporaries(folder)
        return self

    def unlock(self) -> None:
        fd = HELD.pop(self.path.resolve(), None)
        if fd is not None:
            os.close(fd)

    def holder(self) -> str | None:
        """Who trains this run now ("pid N on HOST"), or None when nobody holds its lock."""
        if self.path.resolve() in HELD:
            return f"pid {os.getpid()} on {socket.gethostname()} (this process)"
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            try:
                return self.lock_note.read_text().strip() or "another process"
            except OSError:
                return "another process"
        finally:
            os.close(fd)

    def write_config(self, config: TrainConfig) -> None:
        self.guarded(lambda: write_atomic(self.config, config.to_json() + "\n"))

    def guarded(self, write: Callable[[], None]) -> None:
        """Run a write; a full disk or a vanished folder becomes one clear error naming the run."""
        try:
            write()
        except OSError as exc:
            raise UserError(f"cannot write to run directory {self.path}: {exc.strerror or exc}") from None

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
        """The records of metrics.jsonl; a last line without its newline (a write a full disk or a kill cut
        short) is left out, any other line that is not a record is an error naming it."""
        if not self.metrics.exists():
            return []
        text = self.metrics.read_text(errors="replace")
        lines = text.splitlines()
        if lines and not text.endswith("\n"):
            lines.pop()
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not is_record(record):
                raise UserError(f"{self.metrics}, line {number}: not a metrics record (epoch, iteration, split, ...)")
            records.append(record)
        return records

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_atomic(self.summary, json.dumps(jsonable(summary), indent=2, sort_keys=True) + "\n")

    def read_summary(self) -> dict[str, Any]:
        """summary.json, or {} when it is missing, damaged or not an object (the run is then taken as unfinished)."""
        try:
            summary = json.loads(self.summary.read_text())
        except (OSError, ValueError):
            return {}
        return summary if isinstance(summary, dict) else {}

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


def is_record(record: Any) -> bool:
    """A metrics.jsonl record as runs write it: whole epoch and iteration, a split, metrics, elapsed seconds."""
    whole = all(type(record.get(key)) is int for key in ("epoch", "iteration")) if isinstance(record, dict) else False
    return (
        whole
        and isinstance(record.get("split"), str)
        and isinstance(record.get("metrics"), dict)
        and isinstance(record.get("elapsed"), (int, float))
    )


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def checkpoint_config(path: Path, checkpoint: dict[str, Any], recipe: str, settings_cls: type | None) -> TrainConfig:
    """The config the checkpoint was trained with: config.json beside it, else the copy inside it. It must be
    ``recipe``'s; its settings are checked against ``settings_cls`` and completed, errors naming the file."""
    saved = RunDir(run_dir_of(path)).config
    if saved.exists():
        config, source = TrainConfig.load(saved), saved
    elif "run_info" in checkpoint:
        config, source = TrainConfig.from_dict(checkpoint["run_info"], str(path)), path
    else:
        raise UserError(f"{path}: no config.json in {saved.parent} and no run config inside the checkpoint")
    if config.recipe != recipe:
        raise UserError(f"{path} was trained by recipe {config.recipe!r}, not {recipe!r}")
    config.settings = complete_settings(settings_cls, config.settings, where=str(source))
    return config
