"""Resume, in one place: which run and checkpoint to continue, with what config, and the mid-epoch state.

``settle`` runs once, where the command line is parsed: it picks the run directory (new or resumed),
the final config (the saved one, with the flags the user typed on top) and the checkpoint. The
training core only carries out that plan. ``--resume auto`` is meant for jobs that are re-queued
after a kill: the same command line, run again and again, converges to one completed run (no run yet:
a new run; the newest run killed before its first checkpoint: started over in place; the newest run
finished: say so and exit 0; the newest run trained by a live process: ``RunBusy``, exit 3).
``--resume PATH`` is strict. Every plan holds its run directory's lock (rundir.py) from here on.

``MidEpochState`` owns what a run resumed mid-epoch needs beyond model, optimizer and counters: the
batches of the epoch already trained (skipped without being loaded), the random generators' state and
the epoch-so-far training metrics, and the LR the epoch began with (its record reports it). Together with
the (seed, epoch) rule for data order and random state, a resumed run ends with the same weights and
records as one never interrupted.

Why not Ignite's ``DeterministicEngine`` / ``ReproducibleBatchSampler`` (checked in 0.5.5): it rewinds
only DataLoaders that have a ``batch_sampler``; our in-memory batches (``TensorData``, sampled by
whole index lists) and pre-batched LM windows have none, so it would fall back to loading every
skipped batch (augmenting them and spending random state). It restores random state only when
``iteration % len(loader)`` is non-zero, which ``--limit-batches`` breaks, and it does not save the
epoch-so-far metrics, which Ignite resets at every epoch start. ``ResumableBatches`` (loaders.py) is
its skip-without-loading idea applied to every loader we build.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import math
import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint
from ignite.metrics import Metric, MetricsLambda
from ignite.utils import manual_seed
from torch.optim import Optimizer, lr_scheduler

from ignite_lab.core.compat import metric_state_keys, stretch_one_cycle
from ignite_lab.core.config import LaunchConfig, TrainConfig
from ignite_lab.core.errors import NothingToDo, UserError
from ignite_lab.core.recipe import Recipe
from ignite_lab.core.settings import complete_settings
from ignite_lab.core.status import FINISHED, Status
from ignite_lab.training.checkpoints import LAST, load_checkpoint, run_dir_of
from ignite_lab.training.loaders import set_epoch
from ignite_lab.training.rundir import RunDir, checkpoint_config

log = logging.getLogger(__name__)


@dataclass
class RunPlan:
    """What one invocation trains, settled before any process starts training."""

    run: RunDir
    config: TrainConfig
    recipe_ref: str  # how to name the recipe in a resume command: its name or its file
    checkpoint: Path | None = None  # resumed from
    lr_override: float | None = None  # a new --lr typed with --resume replaces the saved optimizer's

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": str(self.run.path),
            "config": dataclasses.asdict(self.config),
            "recipe_ref": self.recipe_ref,
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "lr_override": self.lr_override,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunPlan:
        return cls(
            RunDir(Path(raw["run"])),
            TrainConfig.from_dict(raw["config"], "the run plan"),
            raw["recipe_ref"],
            Path(raw["checkpoint"]) if raw["checkpoint"] else None,
            raw["lr_override"],
        )


def settle(recipe: Recipe, config: TrainConfig, launch: LaunchConfig, given: set[str], recipe_ref: str) -> RunPlan:
    """The run this invocation trains, locked for this process (``RunBusy`` when another one trains it).

    ``config.settings`` holds the settings the user typed; ``given`` names every TrainConfig field the
    user typed ("settings" among them when any --set was): on resume, those replace the saved ones.
    Nothing in a resumed run changes here: its config.json is rewritten only after its checkpoint has
    loaded into the model (``training.resume_state``).
    """
    if launch.resume is None:
        return new_run(recipe, config, launch, recipe_ref)
    if launch.resume == "auto":
        with recipe_folder_lock(Path(launch.output_dir).expanduser() / config.recipe):
            return settle_auto(recipe, config, launch, given, recipe_ref)
    path = explicit_checkpoint(launch.resume)
    run = RunDir(run_dir_of(path)).lock()
    with unlocked_on_error(run):
        return resumed(recipe, config, given, recipe_ref, run, path, load_checkpoint(path), strict=True)


def settle_auto(recipe: Recipe, config: TrainConfig, launch: LaunchConfig, given: set[str], recipe_ref: str) -> RunPlan:
    """``--resume auto``: the newest run of the recipe, whatever state a kill left it in, else a new run.

    Run under the recipe folder's lock, so two jobs started together agree on one run: the first takes
    it, the second is told it is busy.
    """
    run = newest_run(launch.output_dir, config.recipe)
    if run is None:
        where = Path(launch.output_dir) / config.recipe
        log.info("--resume auto: no run of %s to resume under %s; starting a new run", config.recipe, where)
        return new_run(recipe, config, launch, recipe_ref)
    with unlocked_on_error(run.lock()):
        found = loadable_checkpoint(run)
        if found is not None:
            return resumed(recipe, config, given, recipe_ref, run, *found, strict=False)
        status = run.read_summary().get("status")
        if status in FINISHED:
            raise NothingToDo(f"--resume auto: {run.path} already {status.replace('_', ' ')}; nothing to do")
        log.info("--resume auto: %s stopped before its first checkpoint; starting it over", run.path)
        saved = TrainConfig.load(run.config)
        merged = merge(saved, config, given, run.path)
        merged.settings = complete_settings(recipe.settings, merged.settings, where=str(run.config))
        run.write_config(merged)
        run.guarded(lambda: run.rewrite_metrics([]))
        return RunPlan(run, merged, recipe_ref)


def loadable_checkpoint(run: RunDir) -> tuple[Path, dict[str, Any]] | None:
    """The run's newest last checkpoint that loads (a damaged one is named and skipped); None when it has none."""
    candidates = run.checkpoint_files(LAST)
    for path in candidates:
        try:
            return path, load_checkpoint(path)
        except UserError as exc:
            log.warning("skipping damaged checkpoint %s: %s", path, exc.message)
    if candidates:
        raise UserError(f"--resume auto: no last checkpoint of {run.path} loads; see the warnings above")
    return None


@contextlib.contextmanager
def unlocked_on_error(run: RunDir) -> Iterator[RunDir]:
    """The run's lock goes back when settling refuses it, so a refusal leaves nothing held."""
    try:
        yield run
    except BaseException:
        run.unlock()
        raise


@contextlib.contextmanager
def recipe_folder_lock(folder: Path) -> Iterator[None]:
    """Serializes choosing a run among the jobs of one recipe folder (held for milliseconds): a ``flock`` on
    the folder itself, so no file is added beside the runs."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        raise UserError(f"cannot write to output directory {folder.parent}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def resumed(
    recipe: Recipe,
    config: TrainConfig,
    given: set[str],
    recipe_ref: str,
    run: RunDir,
    path: Path,
    checkpoint: dict[str, Any],
    strict: bool,
) -> RunPlan:
    """The plan to continue ``run`` from ``checkpoint`` (loaded from ``path``), checked before anything changes."""
    saved = checkpoint_config(path, checkpoint, config.recipe, recipe.settings)
    merged = merge(saved, config, given, run.path)
    merged.settings = complete_settings(recipe.settings, merged.settings, where=str(path))
    check_same_schedule(checkpoint, merged, path)
    check_unfinished(run, checkpoint, merged, strict)
    run.check_writable()
    # only an lr that differs from the run's resets the optimiser's: the same --lr, or a preset that names the
    # lr it started with, continues the schedule where it was
    new_lr = config.lr if "lr" in given and config.lr != saved.lr else None
    return RunPlan(run, merged, recipe_ref, path, new_lr)


def new_run(
    recipe: Recipe, config: TrainConfig, launch: LaunchConfig, recipe_ref: str, path: Path | None = None
) -> RunPlan:
    """A new run directory (``OUTPUT_DIR/RECIPE/<UTC timestamp>``, or ``path``), locked, holding the complete config."""
    settings = complete_settings(recipe.settings, config.settings)
    run = RunDir.create(launch.output_dir, config.recipe) if path is None else RunDir.create_at(path)
    with unlocked_on_error(run.lock()):
        config = dataclasses.replace(config, run_dir=str(run.path), settings=settings)
        run.write_config(config)
        return RunPlan(run, config, recipe_ref)


def merge(saved: TrainConfig, given_config: TrainConfig, given: set[str], run_dir: Path) -> TrainConfig:
    """The saved config with the fields the user typed now on top (settings merged key by key)."""
    overrides = {name: getattr(given_config, name) for name in given if name not in ("recipe", "settings")}
    settings = {**saved.settings, **given_config.settings}
    return dataclasses.replace(saved, **overrides, settings=settings, run_dir=str(run_dir))


def check_same_schedule(checkpoint: dict[str, Any], config: TrainConfig, path: Path) -> None:
    """The checkpoint holds its schedule's state (its step, its curve so far): another schedule, or another
    gamma, cannot continue from it, whether typed with --resume or edited into config.json."""
    trained = checkpoint.get("run_info")
    if not isinstance(trained, dict):
        return
    for field in ("lr_schedule", "lr_gamma"):
        was, now = trained.get(field), getattr(config, field)
        if was is not None and was != now and (field == "lr_schedule" or config.lr_schedule in GAMMA_SCHEDULES):
            flag = "--" + field.replace("_", "-")
            raise UserError(
                f"{flag} {now}: {path.name} was trained with {field} {was}, whose state it holds; "
                f"resume with {was}, or start a new run"
            )


GAMMA_SCHEDULES = ("step", "exponential")


def trained_epochs(checkpoint: dict[str, Any]) -> tuple[int, bool]:
    """(epochs the checkpoint's trainer completed, whether it stopped at an epoch boundary)."""
    state = checkpoint.get("trainer", {})
    length = max(1, int(state.get("epoch_length") or 1))
    iteration = int(state.get("iteration", 0))
    return iteration // length, iteration % length == 0


def check_unfinished(run: RunDir, checkpoint: dict[str, Any], config: TrainConfig, strict: bool) -> None:
    """Refuse (explicit path) or report as done (auto) a finished run that has nothing left to train.

    A run is finished only when its summary says so: one killed or interrupted after its last epoch
    (while validating, testing or writing its summary) is resumed, and only tests and summarizes.
    """
    done, at_boundary = trained_epochs(checkpoint)
    summary = run.read_summary()
    status = summary.get("status")
    if status not in FINISHED:
        return
    if strict:
        if at_boundary and done >= config.epochs:
            raise UserError(
                f"{run.path} already trained {done} epochs; pass --epochs larger than {done} to continue it"
            )
        return
    early_stopped_for_good = status == Status.EARLY_STOPPED and config.epochs <= int(summary.get("epochs_planned") or 0)
    target_reached = (
        status == Status.COMPLETED and config.stop_at is not None and summary.get("stop_at") == config.stop_at
    )
    if (status == Status.COMPLETED and done >= config.epochs) or early_stopped_for_good or target_reached:
        raise NothingToDo(
            f"--resume auto: {run.path} already {status.replace('_', ' ')} ({done} epochs); "
            "nothing to do (pass a larger --epochs to train on)"
        )


def newest_run(output_dir: str, recipe: str) -> RunDir | None:
    """The newest run directory of ``recipe`` (one holding a config.json), finished or not."""
    root = Path(output_dir).expanduser() / recipe
    runs = sorted((p for p in root.glob("*/") if (p / "config.json").is_file()), reverse=True)
    return RunDir(runs[0]) if runs else None


def explicit_checkpoint(resume: str) -> Path:
    """A checkpoint file, or the newest last-checkpoint of a run directory; anything wrong is an error."""
    path = Path(resume).expanduser()
    if path.is_dir():
        run = RunDir(path if path.name != "checkpoints" else path.parent)
        candidates = run.checkpoint_files(LAST)
        if not candidates:
            raise UserError(f"--resume {resume}: no {LAST}_checkpoint_*.pt in {run.checkpoints}")
        path = candidates[0]
    elif not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    return path


class MidEpochState:
    """Data position, random state, epoch-so-far metrics and the LR the epoch began with; saved in every
    checkpoint as ``mid_epoch``.

    At every epoch start it tells the loader which epoch begins (its order depends on (seed, epoch)) and
    how many of its batches were already trained; a run resumed mid-epoch then takes back its saved
    random state and metrics, any other epoch reseeds with (seed + epoch).
    """

    def __init__(self, seed: int, loader: Iterable, metrics: dict[str, Metric], optimizer: Optimizer) -> None:
        self.seed, self.loader, self.optimizer = seed, loader, optimizer
        self.epoch_lr = 0.0  # what the epoch's record reports, after a resume as before it
        self.metrics: dict[str, Metric] = {}
        for name, metric in metrics.items():
            self._collect(name, metric)
        self.pending: dict[str, Any] | None = None

    def _collect(self, name: str, metric: Metric) -> None:
        """Metrics that hold state; derived ones (IoU of a ConfusionMatrix) contribute what they derive from."""
        if isinstance(metric, MetricsLambda):
            for i, arg in enumerate([*metric.args, *metric.kwargs.values()]):
                if isinstance(arg, Metric) and all(arg is not m for m in self.metrics.values()):
                    self._collect(f"{name}.{i}", arg)
        elif metric_state_keys(metric):
            self.metrics[name] = metric

    def attach(self, trainer: Engine) -> None:
        trainer.add_event_handler(Events.EPOCH_STARTED, self.epoch_started)

    def epoch_started(self, engine: Engine) -> None:
        done_in_epoch = engine.state.iteration - (engine.state.epoch - 1) * (engine.state.epoch_length or 0)
        set_epoch(self.loader, engine.state.epoch - 1, skip_batches=max(0, done_in_epoch))
        state, self.pending = self.pending, None
        if state is None:
            manual_seed(self.seed + engine.state.epoch)
            self.epoch_lr = self.optimizer.param_groups[0]["lr"]
        else:
            self._restore(state)

    def state_dict(self) -> dict[str, Any]:
        version, keys, gauss = random.getstate()
        np_state = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "python": [version, list(keys), gauss],
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "metrics": {name: dict(metric.state_dict()) for name, metric in self.metrics.items()},
            "epoch_lr": self.epoch_lr,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pending = state  # applied at the resumed epoch's start, after Ignite has reset the metrics

    def _restore(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        version, keys, gauss = state["python"]
        random.setstate((version, tuple(keys), gauss))
        name, keys, *rest = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
        self.epoch_lr = float(state.get("epoch_lr", self.optimizer.param_groups[0]["lr"]))
        for metric_name, metric_state in state.get("metrics", {}).items():
            if metric_name in self.metrics:
                self.metrics[metric_name].load_state_dict(metric_state)


def restore(plan: RunPlan, checkpoint: dict[str, Any], to_load: dict[str, Any], iterations_per_epoch: int) -> None:
    """Load every saved object into this run's; fit a schedule to a changed --epochs; apply an --lr override."""
    for name in to_load:
        if name not in checkpoint:
            log.warning("the checkpoint has no %s state; it starts fresh (flags differ from the original run?)", name)
    try:
        Checkpoint.load_objects({k: v for k, v in to_load.items() if k in checkpoint}, checkpoint)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise UserError(
            f"the checkpoint does not fit this recipe's model or settings: {str(exc).splitlines()[0]}"
        ) from None
    trainer: Engine = to_load["trainer"]
    if trainer.state.iteration % iterations_per_epoch == 0:
        to_load["mid_epoch"].pending = None  # at an epoch boundary the (seed, epoch) rule reseeds instead
    scheduler = to_load.get("lr_scheduler")
    if scheduler is not None and checkpoint.get("run_info", {}).get("epochs") != plan.config.epochs:
        stretch_schedule(scheduler, plan.config.epochs, iterations_per_epoch)
    if plan.lr_override is not None:
        for group in to_load["optimizer"].param_groups:
            group["lr"] = plan.lr_override


def stretch_schedule(scheduler: Any, epochs: int, iterations_per_epoch: int) -> None:
    """After a resume with a different --epochs, fit the restored schedule to the new length.

    The LR is recomputed from the closed form at the current step; torch's chained update then
    continues from there (it reads the optimizer's current LR), instead of the old curve.
    """
    step = scheduler.last_epoch
    if isinstance(scheduler, lr_scheduler.CosineAnnealingLR):
        scheduler.T_max = max(1, epochs * iterations_per_epoch)
        factor = (1 + math.cos(math.pi * min(step, scheduler.T_max) / scheduler.T_max)) / 2
        lrs = [scheduler.eta_min + (base - scheduler.eta_min) * factor for base in scheduler.base_lrs]
    elif isinstance(scheduler, lr_scheduler.OneCycleLR):  # closed form: the phases' ends move with the length
        stretch_one_cycle(scheduler, max(2, epochs * iterations_per_epoch))
        return
    elif isinstance(scheduler, lr_scheduler.StepLR):
        scheduler.step_size = max(1, epochs // 3)
        lrs = [base * scheduler.gamma ** (step // scheduler.step_size) for base in scheduler.base_lrs]
    else:
        return
    for group, lr in zip(scheduler.optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr
