"""TensorBoard beside Visdom: the same live plots, pictures and text, written as TensorBoard event files.

Charts match the Visdom windows: ``loss/iteration`` (raw), each metric by epoch with train and val in
one chart (``add_scalars``: TensorBoard draws them as the runs ``METRIC_train`` and ``METRIC_val`` of that
chart), ``lr`` and ``samples_per_s``. At the end the run's config goes in as hparams with its final test
metrics, so TensorBoard's HParams view compares runs. ``tensorboard`` is imported only with
``--tensorboard``; like Visdom, a writing failure gives one warning and the run goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from ignite.engine import Engine

log = logging.getLogger(__name__)


class TensorBoardPlots:
    """A run's TensorBoard sink (the interface dashboard.VisdomPlots also has)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.writer: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(log_dir))
        except Exception as exc:  # the package missing, an unwritable folder: train without it
            self._give_up(exc)
        else:
            log.info("TensorBoard logs: %s (view them with: ignite-lab tensorboard %s)", log_dir, log_dir.parents[2])

    def _give_up(self, exc: Exception) -> None:
        self.writer = None
        log.warning("TensorBoard logging stopped (%s: %s); training continues", type(exc).__name__, exc)

    def _write(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self.writer is None:
            return
        try:
            getattr(self.writer, method)(*args, **kwargs)
        except Exception as exc:
            self._give_up(exc)

    def training_loss(self, trainer: Engine) -> None:
        """Ignite handler for the trainer's ITERATION_COMPLETED."""
        self._write("add_scalar", "loss/iteration", trainer.state.output["loss"], trainer.state.iteration)

    def epoch(self, epoch: int, train: dict[str, Any], val: dict[str, Any], lr: float, samples_per_s: float) -> None:
        for name in sorted(set(train) | set(val)):
            values = {split: float(m[name]) for split, m in (("train", train), ("val", val)) if scalar(m.get(name))}
            if values:
                self._write("add_scalars", name, values, epoch)
        self._write("add_scalar", "lr", lr, epoch)
        self._write("add_scalar", "samples_per_s", samples_per_s, epoch)
        self._write("flush")

    def image(self, name: str, image: np.ndarray, epoch: int | None, title: str) -> None:
        self._write("add_image", name, np.asarray(image)[..., :3], epoch or 0, dataformats="HWC")

    def text(self, name: str, text: str, epoch: int | None, title: str) -> None:
        self._write("add_text", name, "\n".join("    " + line for line in text.splitlines()), epoch or 0)

    def finish(self, config: dict[str, Any], test: dict[str, Any] | None) -> None:
        """The fields that define the training and the recipe's settings as hparams (not paths and switches,
        which would crowd HParams' columns), the test metrics as their results, in this run's own folder."""
        flat = flatten({key: config[key] for key in HPARAMS if key in config})
        flat.update(flatten(config.get("settings", {}), "settings."))
        hparams = {k: v for k, v in flat.items() if isinstance(v, (int, float, str, bool))}
        metrics = {f"test/{k}": float(v) for k, v in (test or {}).items() if scalar(v)}
        self._write("add_hparams", hparams, metrics, run_name=".")
        self._write("close")


HPARAMS = ("lr", "batch_size", "epochs", "lr_schedule", "precision", "preset", "seed")


def scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"settings": {"hidden": 8}} -> {"settings.hidden": 8}; None becomes "none" (hparams take no None)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = "none" if value is None else value
    return flat
