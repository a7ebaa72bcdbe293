"""The standard handlers every recipe gets, each a small composition of Ignite's own."""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver, EarlyStopping, ProgressBar, TerminateOnNan, global_step_from_engine
from torch.optim import lr_scheduler

from ignite_lab.checkpoints import BEST, LAST
from ignite_lab.config import LR_SCHEDULES
from ignite_lab.errors import UserError

log = logging.getLogger(__name__)


def score_function(metric: str, mode: str) -> Callable[[Engine], float]:
    """Ignite keeps the highest score; a metric where lower is better is negated."""
    sign = 1.0 if mode == "max" else -1.0

    def score(engine: Engine) -> float:
        if metric not in engine.state.metrics:
            raise UserError(f"the recipe scores runs by {metric!r}, but its metrics are {sorted(engine.state.metrics)}")
        return sign * float(engine.state.metrics[metric])

    return score


def attach_progress(trainer: Engine, refresh_s: float = 0.2) -> None:
    """One tqdm bar per epoch that stays on screen as a single line, on a terminal only.

    Redirected to a file or CI log, a bar becomes thousands of carriage-return updates; the
    per-epoch log line already says the same there. Ignite's bar redraws the line at every event
    it receives (about 0.3 ms each), so it receives the first iteration of each epoch and then one
    at most every ``refresh_s`` seconds; it catches up to the engine's iteration count when it does.
    """
    if not (sys.stderr.isatty() or os.environ.get("IGNITE_LAB_PROGRESS") == "1"):  # (benchmarks force it on)
        return
    last_draw = [-math.inf]

    def due(engine: Engine, iteration: int) -> bool:
        now = time.perf_counter()
        length = engine.state.epoch_length  # None during the first epoch of data of unknown length
        epoch_starts = bool(length) and (iteration - 1) % length == 0
        if not epoch_starts and now - last_draw[0] < refresh_s:
            return False
        last_draw[0] = now
        return True

    ProgressBar(persist=True, ncols=100).attach(
        trainer,
        output_transform=lambda out: {"loss": out["loss"]},
        event_name=Events.ITERATION_COMPLETED(event_filter=due),
    )


def attach_nan_guard(trainer: Engine) -> None:
    """Stop at the first NaN/inf loss; no checkpoint is written for the bad epoch."""
    trainer.add_event_handler(Events.ITERATION_COMPLETED, TerminateOnNan(output_transform=lambda out: out["loss"]))


class SyncedDiskSaver(DiskSaver):
    """Ignite's atomic DiskSaver (temp file, then rename) plus flush and fsync before the rename, so a kill
    or power cut at any moment leaves the old checkpoint or the new one, never a torn file."""

    def _save_func(self, checkpoint: Any, path: Path, func: Callable) -> None:
        tmp = tempfile.NamedTemporaryFile(delete=False, dir=self.dirname, prefix=".", suffix=".tmp")
        try:
            func(checkpoint, tmp.file)
            tmp.file.flush()
            os.fsync(tmp.file.fileno())
            tmp.close()
            os.replace(tmp.name, path)
        except BaseException:
            tmp.close()
            Path(tmp.name).unlink(missing_ok=True)
            raise


def attach_checkpointing(
    trainer: Engine,
    evaluator: Engine,
    to_save: dict[str, Any],
    dirname,
    score: Callable[[Engine], float],
    score_name: str,
) -> tuple[Checkpoint, Checkpoint]:
    """Best (by the validation score) and last (each epoch) checkpoints of the same objects.

    The best-checkpoint handler's own state travels inside the last checkpoint, so a resumed
    run keeps comparing against the best score seen before the interruption.
    """
    saver = SyncedDiskSaver(dirname, require_empty=False, atomic=True)
    best = Checkpoint(
        to_save,
        saver,
        filename_prefix=BEST,
        n_saved=1,
        score_function=score,
        score_name=score_name,
        global_step_transform=global_step_from_engine(trainer),
    )
    evaluator.add_event_handler(Events.COMPLETED, best)
    last = Checkpoint({**to_save, "best_checkpointer": best}, saver, filename_prefix=LAST, n_saved=1)
    return best, last


def attach_early_stopping(
    trainer: Engine, evaluator: Engine, patience: int, score: Callable[[Engine], float]
) -> EarlyStopping:
    stopper = EarlyStopping(patience=patience, score_function=score, trainer=trainer, threshold=0.0)
    evaluator.add_event_handler(Events.COMPLETED, stopper)
    return stopper


def step_lr(_: Engine, scheduler: Any) -> None:
    scheduler.step()


def stretch_schedule(scheduler: Any, epochs: int, iterations_per_epoch: int) -> None:
    """After a resume with a different --epochs, fit the restored schedule to the new length.

    The LR is recomputed from the closed form at the current step: torch's chained update
    would otherwise continue from the old curve (from 0, if the old run had finished).
    """
    step = scheduler.last_epoch if scheduler is not None else 0
    if isinstance(scheduler, lr_scheduler.CosineAnnealingLR):
        scheduler.T_max = max(1, epochs * iterations_per_epoch)
        factor = (1 + math.cos(math.pi * min(step, scheduler.T_max) / scheduler.T_max)) / 2
        lrs = [scheduler.eta_min + (base - scheduler.eta_min) * factor for base in scheduler.base_lrs]
    elif isinstance(scheduler, lr_scheduler.StepLR):
        scheduler.step_size = max(1, epochs // 3)
        lrs = [base * scheduler.gamma ** (step // scheduler.step_size) for base in scheduler.base_lrs]
    else:
        return
    for group, lr in zip(scheduler.optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr
    scheduler._last_lr = lrs


def attach_lr_schedule(
    name: str,
    trainer: Engine,
    evaluator: Engine,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    iterations_per_epoch: int,
    score: Callable[[Engine], float],
) -> Any | None:
    """none | step (x0.1 at each third of the epochs) | cosine (per iteration) | plateau (x0.1 after 2 flat epochs)."""
    if name not in LR_SCHEDULES:
        raise UserError(f"--lr-schedule {name}: expected one of {', '.join(LR_SCHEDULES)}")
    if name == "none":
        return None
    if name == "step":
        scheduler = lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, step_lr, scheduler)
    elif name == "cosine":
        scheduler = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs * iterations_per_epoch))
        trainer.add_event_handler(Events.ITERATION_COMPLETED, step_lr, scheduler)
    else:
        scheduler = lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1, patience=2)
        evaluator.add_event_handler(Events.COMPLETED, lambda engine: scheduler.step(score(engine)))
    return scheduler
