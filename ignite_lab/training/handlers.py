"""The standard handlers every recipe gets, each a small composition of Ignite's own, and their order.

``attach_standard_handlers`` is the one place they are attached. Ignite runs the handlers of an
event in the order they were attached, and at the end of an epoch that order decides correctness:

1. throughput: the epoch's training time, before validation adds to it;
2. validation: the evaluator runs; on its COMPLETED event the best checkpoint is saved, early
   stopping counts, a plateau schedule steps (all read this epoch's validation metrics);
3. LR step (step and exponential schedules): after validation, so the epoch is recorded with the LR it trained with;
4. record: metrics.jsonl, the log line, live plots and curves.png;
5. last checkpoint: after the record, so every checkpointed epoch has its metrics line (a kill between
   4 and 5 leaves a line newer than the checkpoint, which a resume drops);
6. a pending Ctrl-C, SIGTERM or SIGUSR1 stops the run here (see ``GracefulInterrupt``).

The recipe's own handlers come after all of these.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, EarlyStopping, ProgressBar, global_step_from_engine
from torch.optim import lr_scheduler

from ignite_lab.core.errors import Interrupted, UserError
from ignite_lab.core.status import Status, StopReason
from ignite_lab.outputs.plots import draw_curves
from ignite_lab.training.checkpoints import BEST, LAST, AtomicDiskSaver
from ignite_lab.training.engines import batch_size_of
from ignite_lab.training.session import Session

log = logging.getLogger(__name__)
PLOT_EVERY_S = 30.0  # curves.png is redrawn at most this often during a run (a redraw costs ~0.3 s), and at the end


@dataclass
class Standard:
    """The attached handlers a run talks to afterwards (restore, summary)."""

    to_save: dict[str, Any]
    best: Checkpoint
    last: Checkpoint
    throughput: Throughput
    recorder: EpochRecorder
    interrupt: GracefulInterrupt
    score_name: str
    checkpoints: Path

    @property
    def best_file(self) -> Path | None:
        """The best checkpoint saved so far (Ignite's ``last_checkpoint`` is a bare name with our saver)."""
        return self.checkpoints / self.best.last_checkpoint if self.best.last_checkpoint else None

    @property
    def last_file(self) -> Path | None:
        return self.checkpoints / self.last.last_checkpoint if self.last.last_checkpoint else None


def attach_standard_handlers(s: Session, to_save: dict[str, Any]) -> Standard:
    """Attach every standard handler in the order the module docstring gives.

    Every object the checkpoints save (schedule, early stopping) exists before the checkpointers are made.
    """
    trainer, evaluator = s.engines.trainer, s.engines.evaluator
    score = score_function(s.recipe.score, s.recipe.score_mode)
    scheduler = make_lr_schedule(s)
    stopper = (
        EarlyStopping(patience=s.config.patience, score_function=score, trainer=trainer, threshold=0.0)
        if s.config.patience
        else None
    )
    to_save.update({k: v for k, v in (("lr_scheduler", scheduler), ("early_stopping", stopper)) if v is not None})
    best, last = checkpointers(trainer, to_save, s.run.checkpoints, score, s.recipe.score)
    throughput, interrupt = Throughput(), GracefulInterrupt(last)
    recorder = EpochRecorder(s, throughput, to_save["mid_epoch"])

    trainer.add_event_handler(Events.ITERATION_COMPLETED, stop_on_nonfinite_loss)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, throughput.count)
    if s.process.main:
        attach_progress(trainer)
    if s.live is not None:
        trainer.add_event_handler(Events.ITERATION_COMPLETED, s.live.training_loss)
    if isinstance(scheduler, (lr_scheduler.CosineAnnealingLR, lr_scheduler.OneCycleLR)):
        trainer.add_event_handler(Events.ITERATION_COMPLETED, step_scheduler, scheduler)
    if s.launch.checkpoint_every:  # mid-epoch only: at an epoch's end the last checkpoint waits for validation (5)
        trainer.add_event_handler(Events.ITERATION_COMPLETED(event_filter=periodic(s.launch.checkpoint_every)), last)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, interrupt.check)

    evaluator.add_event_handler(Events.COMPLETED, best)
    if stopper is not None:
        evaluator.add_event_handler(Events.COMPLETED, stopper)
    if s.config.stop_at is not None:
        evaluator.add_event_handler(Events.COMPLETED, StopAtTarget(trainer, s.recipe, s.config.stop_at))
    if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        evaluator.add_event_handler(Events.COMPLETED, PlateauStep(scheduler, score))

    trainer.add_event_handler(Events.EPOCH_COMPLETED, throughput.epoch_completed)  # 1
    trainer.add_event_handler(Events.EPOCH_COMPLETED, Validation(evaluator, s.loaders.val, s.loaders.val_length))  # 2
    if isinstance(scheduler, (lr_scheduler.StepLR, lr_scheduler.ExponentialLR)):
        trainer.add_event_handler(Events.EPOCH_COMPLETED, step_scheduler, scheduler)  # 3
    trainer.add_event_handler(Events.EPOCH_COMPLETED, recorder.epoch_completed)  # 4
    trainer.add_event_handler(Events.EPOCH_COMPLETED, last)  # 5
    trainer.add_event_handler(Events.EPOCH_COMPLETED, interrupt.check)  # 6
    return Standard(to_save, best, last, throughput, recorder, interrupt, s.recipe.score, s.run.checkpoints)


class StopAtTarget:
    """``--stop-at``: end the run, completed, at the first validation that reaches the target score (at least
    it for a metric to maximize, at most it for one to minimize); the test then judges that checkpoint."""

    def __init__(self, trainer: Engine, recipe: Any, target: float) -> None:
        self.trainer, self.metric, self.target = trainer, recipe.score, target
        self.better = (lambda v: v >= target) if recipe.score_mode == "max" else (lambda v: v <= target)

    def __call__(self, evaluator: Engine) -> None:
        value = evaluator.state.metrics.get(self.metric)
        if isinstance(value, (int, float)) and self.better(float(value)):
            epoch = self.trainer.state.epoch
            message = f"val {self.metric} {value:.4g} reached --stop-at {self.target:g} at epoch {epoch}"
            self.trainer.state.stop_reason = StopReason(Status.COMPLETED, message)
            self.trainer.terminate()


def stop_on_nonfinite_loss(engine: Engine) -> None:
    """Ignite's TerminateOnNan for the float loss every step outputs: the same stop (the run then fails with
    the last good checkpoint named) for 0.1 us a step instead of the 30 us its tensor conversion costs."""
    if not math.isfinite(engine.state.output["loss"]):
        engine.terminate()


def periodic(every: int) -> Callable[[Engine, int], bool]:
    """Every ``every`` iterations, except an epoch's last one (one rule: that state is saved after validation)."""

    def due(engine: Engine, iteration: int) -> bool:
        return iteration % every == 0 and not at_epoch_end(engine)

    return due


def score_function(metric: str, mode: str) -> Callable[[Engine], float]:
    """Ignite keeps the highest score; a metric where lower is better is negated."""
    sign = 1.0 if mode == "max" else -1.0

    def score(engine: Engine) -> float:
        if metric not in engine.state.metrics:
            raise UserError(f"the recipe scores runs by {metric!r}, but its metrics are {sorted(engine.state.metrics)}")
        return sign * float(engine.state.metrics[metric])

    return score


class Validation:
    """Run the evaluator over the validation data (an Ignite handler for the trainer's EPOCH_COMPLETED)."""

    def __init__(self, evaluator: Engine, loader: Iterable, length: int | None) -> None:
        self.evaluator, self.loader, self.length = evaluator, loader, length

    def __call__(self, _: Engine) -> None:
        self.evaluator.run(self.loader, epoch_length=self.length)


class ProgressFilter:
    """Ignite's bar redraws the line at every event it receives (about 0.3 ms each): let through the first
    iteration of each epoch, then one at most every ``refresh_s`` seconds (the bar catches up when it draws)."""

    def __init__(self, refresh_s: float = 0.2) -> None:
        self.refresh_s = refresh_s
        self.last_draw = -math.inf

    def __call__(self, engine: Engine, iteration: int) -> bool:
        now = time.perf_counter()
        length = engine.state.epoch_length  # None during the first epoch of data of unknown length
        epoch_starts = bool(length) and (iteration - 1) % length == 0
        if not epoch_starts and now - self.last_draw < self.refresh_s:
            return False
        self.last_draw = now
        return True


def attach_progress(trainer: Engine) -> None:
    """One tqdm bar per epoch that stays on screen as a single line, on a terminal or in a notebook.

    Redirected to a file or CI log, a bar becomes thousands of carriage-return updates; the
    per-epoch log line already says the same there. In Jupyter, Ignite's bar is tqdm's notebook widget
    (``tqdm.autonotebook``), which needs ipywidgets.
    """
    forced = os.environ.get("IGNITE_LAB_PROGRESS") == "1"  # (benchmarks force it on)
    if not (sys.stderr.isatty() or forced or in_notebook()):
        return
    ProgressBar(persist=True, ncols=100).attach(
        trainer,
        output_transform=lambda out: {"loss": out["loss"]},
        event_name=Events.ITERATION_COMPLETED(event_filter=ProgressFilter()),
    )


def in_notebook() -> bool:
    """A Jupyter kernel with ipywidgets, where tqdm's notebook bar can draw."""
    if "ipykernel" not in sys.modules:
        return False
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None


def checkpointers(
    trainer: Engine, to_save: dict[str, Any], dirname: Path, score: Callable, score_name: str
) -> tuple[Checkpoint, Checkpoint]:
    """Best (by the validation score) and last checkpoints of the same objects; the caller attaches both.

    The best-checkpoint handler's own state travels inside the last checkpoint, so a resumed run keeps
    comparing against the best score seen before the interruption. Once a last checkpoint is durable the
    folder is tidied to exactly that file and the best checkpoint it names: a superseded best stays until
    then, so at every moment the newest last checkpoint names a best checkpoint that exists.
    """
    best = Checkpoint(
        to_save,
        AtomicDiskSaver(dirname),
        filename_prefix=BEST,
        n_saved=1,
        score_function=score,
        score_name=score_name,
        global_step_transform=global_step_from_engine(trainer),
    )

    def tidy(saved: str) -> None:
        keep = {saved, best.last_checkpoint}
        for path in dirname.glob("*_checkpoint_*.pt"):
            if path.name not in keep:
                path.unlink(missing_ok=True)

    last = Checkpoint(
        {**to_save, "best_checkpointer": best},
        AtomicDiskSaver(dirname, after_save=tidy),
        filename_prefix=LAST,
        n_saved=1,
    )
    return best, last


ONECYCLE_WARMUP = 0.25  # the share of the iterations that warm up


def make_lr_schedule(s: Session) -> Any | None:
    """none | step (x gamma at each third of the epochs) | cosine (per iteration, to 0) | onecycle (per
    iteration: from lr/25 up to lr over the first quarter, then down to lr/250,000, the momentum cycled
    against it where the optimiser has one) | plateau (x0.1 after 2 flat epochs) | exponential (x gamma
    after every epoch)."""
    optimizer, config = s.parts.optimizer, s.config
    if config.lr_schedule == "step":
        return lr_scheduler.StepLR(optimizer, step_size=max(1, config.epochs // 3), gamma=config.lr_gamma)
    if config.lr_schedule == "exponential":
        return lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_gamma)
    if config.lr_schedule == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs * s.loaders.iterations_per_epoch))
    if config.lr_schedule == "onecycle":
        cycle_momentum = "betas" in optimizer.defaults or optimizer.defaults.get("momentum", 0) > 0
        return lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.lr,
            total_steps=max(2, config.epochs * s.loaders.iterations_per_epoch),
            pct_start=ONECYCLE_WARMUP,
            cycle_momentum=cycle_momentum,
        )
    if config.lr_schedule == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1, patience=2)
    return None


def step_scheduler(_: Engine, scheduler: Any) -> None:
    if isinstance(scheduler, lr_scheduler.OneCycleLR) and scheduler.last_epoch >= scheduler.total_steps - 1:
        return  # the cycle is over (OneCycleLR raises past its end): the lr stays at its floor
    scheduler.step()


class PlateauStep:
    """ReduceLROnPlateau stepped with the validation score when the evaluator completes."""

    def __init__(self, scheduler: lr_scheduler.ReduceLROnPlateau, score: Callable[[Engine], float]) -> None:
        self.scheduler, self.score = scheduler, score

    def __call__(self, evaluator: Engine) -> None:
        self.scheduler.step(self.score(evaluator))


class Throughput:
    """Training samples per second, per epoch and overall (iteration time only, not evaluation)."""

    def __init__(self) -> None:
        self.samples = self.seconds = self.epoch_samples = 0
        self.last_rate = 0.0

    def count(self, engine: Engine) -> None:
        self.epoch_samples += batch_size_of(engine.state.batch)

    def epoch_completed(self, engine: Engine) -> None:
        seconds = engine.state.times["EPOCH_COMPLETED"] or 0.0
        self.last_rate = self.epoch_samples / seconds if seconds else 0.0
        self.samples += self.epoch_samples
        self.seconds += seconds
        self.epoch_samples = 0


class EpochRecorder:
    """Writes each epoch's train and val metrics to metrics.jsonl and the log, and feeds live plots and curves.png."""

    def __init__(self, s: Session, throughput: Throughput, mid_epoch: Any) -> None:
        self.recipe, self.run, self.main, self.live = s.recipe.name, s.run, s.process.main, s.live
        self.evaluator, self.throughput, self.mid_epoch = s.engines.evaluator, throughput, mid_epoch
        self.started = time.perf_counter()
        self.elapsed_before = 0.0  # training time of the run before a resume
        self.last_plot = time.perf_counter()

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def epoch_completed(self, trainer: Engine) -> None:
        if not self.main:
            return
        state, val, lr = trainer.state, self.evaluator.state.metrics, self.mid_epoch.epoch_lr
        where = {"epoch": state.epoch, "iteration": state.iteration, "elapsed": round(self.elapsed(), 3)}
        self.run.append_metrics({**where, "split": "train", "metrics": {**state.metrics, "lr": lr}})
        self.run.append_metrics({**where, "split": "val", "metrics": val})
        log.info(
            "epoch %d/%d | train %s | val %s | lr %.3g | %.1fs",
            *(state.epoch, state.max_epochs, brief(state.metrics), brief(val), lr, self.elapsed()),
        )
        if self.live is not None:
            self.live.epoch(state.epoch, state.metrics, val, lr, self.throughput.last_rate)
        if time.perf_counter() - self.last_plot > PLOT_EVERY_S:
            draw_curves({self.recipe: self.run.read_metrics()}, self.run.curves)
            self.last_plot = time.perf_counter()


class GracefulInterrupt:
    """Ctrl-C, SIGTERM and SIGUSR1 stop the run after the batch in progress, with a checkpoint of that exact state.

    SIGTERM is what Slurm, Kubernetes, systemd and ``docker stop`` send before they kill; SIGUSR1 is what
    Slurm sends ahead of time with ``#SBATCH --signal=USR1@60``. A signal only raises a flag; the trainer
    checks it after each iteration and at the end of each epoch (after validation and the epoch's
    checkpoint), saves the last checkpoint and terminates. An epoch's last iteration is left to the
    epoch's end, so a checkpoint at an epoch boundary always comes after its validation. The checkpoint
    thus holds the weights, counters and random state after one whole batch, and a resume continues bit
    for bit. A second Ctrl-C interrupts at once, keeping the last complete checkpoint; a repeated SIGTERM
    or SIGUSR1 is the same request again (under Slurm both srun and slurmstepd deliver one).
    """

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, name))

    def __init__(self, last: Checkpoint) -> None:
        self.last = last
        self.signal: str | None = None  # the name of the signal received
        self.saved = False

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @contextlib.contextmanager
    def handling(self, process: Any) -> Iterator[None]:
        """Handle the signals inside the block, in a single-process run's main thread (elsewhere Python
        cannot install handlers, and a distributed run's processes stop together by default)."""
        if process.world > 1 or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {signum: signal.signal(signum, self._on_signal) for signum in self.SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            if name == "SIGINT":  # a person pressing Ctrl-C again
                raise KeyboardInterrupt
            return  # process managers repeat SIGTERM (srun forwards it, slurmstepd sends it): one request
        self.signal = name
        log.warning("%s received: stopping after this batch (Ctrl-C again: at once)", name)

    def check(self, trainer: Engine) -> None:
        if not self.requested or self.saved or at_epoch_end(trainer) and not self.epoch_done(trainer):
            return
        self.last(trainer)
        self.saved = True
        trainer.terminate(skip_completed=True)

    @staticmethod
    def epoch_done(trainer: Engine) -> bool:
        """True from the epoch's own end handlers on (validation and its checkpoint have run)."""
        return trainer.last_event_name == Events.EPOCH_COMPLETED

    def stop_engine(self, engine: Engine) -> None:
        """For an engine that saves nothing (the test pass): stop it when a signal came."""
        if self.requested:
            engine.terminate()


@contextlib.contextmanager
def interrupting_before_training() -> Iterator[None]:
    """Before a run's handlers are attached there is nothing to save: a scheduler's signal (SIGTERM, or Slurm's
    SIGUSR1 sent early) stops the command at once as ``Interrupted`` (exit 75) instead of killing it, so a
    batch script still reads "re-queue me". ``GracefulInterrupt.handling`` takes over during training."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        message = f"{signal.Signals(signum).name} received before training started; run the same command again"
        log.error("%s", message)  # (Interrupted is not printed again by the command line)
        raise Interrupted(message)

    previous = {signum: signal.signal(signum, stop) for signum in GracefulInterrupt.SIGNALS if signum != signal.SIGINT}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def at_epoch_end(engine: Engine) -> bool:
    """Whether the iteration just done is the last of its epoch."""
    length = engine.state.epoch_length
    return bool(length) and engine.state.iteration % length == 0


def brief(metrics: dict[str, Any]) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float)))
