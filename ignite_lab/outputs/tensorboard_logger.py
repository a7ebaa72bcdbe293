"""TensorBoard beside Visdom: the same live plots, pictures and text, written as TensorBoard event files.

The layout Keras and Lightning write: one TensorBoard run per split, ``RUN/train`` and ``RUN/val``,
each with plain metric tags (``accuracy``, ``loss``), so a metric's chart shows train against val and the
run list holds three entries a run, not one per metric. The run's own folder has ``loss/iteration``
(raw), ``lr``, ``samples_per_s``, the pictures and text a recipe publishes and, at the end, the run's
config as hparams with its final test metrics, so TensorBoard's HParams view compares runs.
``tensorboard`` is imported only with ``--tensorboard``; like Visdom, a writing failure gives one
warning and the run goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from ignite.engine import Engine

from ignite_lab.core.config import training_fields

log = logging.getLogger(__name__)


class TensorBoardPlots:
    """A run's TensorBoard sink (the interface dashboard.VisdomPlots also has)."""

    def __init__(self, log_dir: Path, root: Path) -> None:
        """``log_dir``: this run's folder; ``root``: the folder ``ignite-lab tensorboard`` serves."""
        self.log_dir = log_dir
        self.writers: dict[str, Any] = {}
        try:
            from torch.utils.tensorboard import SummaryWriter

            for split, folder in (("run", log_dir), ("train", log_dir / "train"), ("val", log_dir / "val")):
                self.writers[split] = SummaryWriter(log_dir=str(folder))
        except Exception as exc:  # the package missing, an unwritable folder: train without it
            self._give_up(exc)
        else:
            log.info("TensorBoard logs: %s (view them with: ignite-lab tensorboard %s)", log_dir, root)

    def _give_up(self, exc: Exception) -> None:
        self.writers = {}
        log.warning("TensorBoard logging stopped (%s: %s); training continues", type(exc).__name__, exc)

    def _write(self, method: str, *args: Any, split: str = "run", **kwargs: Any) -> None:
        if split not in self.writers:
            return
        try:
            getattr(self.writers[split], method)(*args, **kwargs)
        except Exception as exc:
            self._give_up(exc)

    def training_loss(self, trainer: Engine) -> None:
        """Ignite handler for the trainer's ITERATION_COMPLETED."""
        self._write("add_scalar", "loss/iteration", trainer.state.output["loss"], trainer.state.iteration)

    def epoch(self, epoch: int, train: dict[str, Any], val: dict[str, Any], lr: float, samples_per_s: float) -> None:
        for split, metrics in (("train", train), ("val", val)):
            for name, value in sorted(metrics.items()):
                if scalar(value):
                    self._write("add_scalar", name, float(value), epoch, split=split)
        self._write("add_scalar", "lr", lr, epoch)
        self._write("add_scalar", "samples_per_s", samples_per_s, epoch)
        for split in list(self.writers):
            self._write("flush", split=split)

    def image(self, name: str, image: np.ndarray, epoch: int | None, title: str) -> None:
        self._write("add_image", name, np.asarray(image)[..., :3], epoch or 0, dataformats="HWC")

    def text(self, name: str, text: str, epoch: int | None, title: str) -> None:
        self._write("add_text", name, "\n".join("    " + line for line in text.splitlines()), epoch or 0)

    def finish(self, config: dict[str, Any], test: dict[str, Any] | None) -> None:
        """The fields that define the training and the recipe's settings as hparams (not paths and switches,
        which would crowd HParams' columns), the test metrics as their results, in this run's own folder."""
        flat = flatten({key: config[key] for key in training_fields() if key in config})
        flat.update(flatten(config.get("settings", {}), "settings."))
        hparams = {k: v for k, v in flat.items() if isinstance(v, (int, float, str, bool))}
        metrics = {f"test/{k}": float(v) for k, v in (test or {}).items() if scalar(v)}
        self._write("add_hparams", hparams, metrics, run_name=".")
        for split in list(self.writers):
            self._write("close", split=split)


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
