"""HOW every recipe trains: Ignite engines on the chosen device, the standard handlers, one run directory."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import random
import resource
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint
from ignite.metrics import Metric, MetricsLambda
from ignite.utils import manual_seed

from ignite_lab import handlers
from ignite_lab.checkpoints import LAST, RunInfo, checkpoint_config, load_checkpoint, run_dir_of
from ignite_lab.config import RunConfig, make_settings
from ignite_lab.dashboard import Dashboard, Publisher, TrainingPlots
from ignite_lab.devices import amp_allowed, resolve_device
from ignite_lab.engines import batch_size_of, build_evaluator, build_trainer, epoch_length
from ignite_lab.errors import UserError
from ignite_lab.loaders import build_loader, set_epoch
from ignite_lab.plots import plot_curves
from ignite_lab.recipe import Parts, Recipe, RunView
from ignite_lab.rundir import RunDir
from ignite_lab.tables import format_table

log = logging.getLogger(__name__)
PLOT_EVERY_S = 30.0  # curves.png is redrawn at most this often during a run (a redraw costs ~0.3 s), and at the end


class RunFailed(UserError):
    """The run stopped without finishing (NaN loss, Ctrl-C); summary.json says why."""

    exit_code = 1


@contextlib.contextmanager
def log_to_file(path: Path) -> Iterator[None]:
    """Copy the toolkit's log lines into the run directory's train.log for the duration of a run."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("ignite_lab")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def find_resume_checkpoint(resume: str, output_dir: str, recipe: str) -> tuple[Path, dict[str, Any]]:
    """``auto``: the newest last-checkpoint of this recipe that loads; else a checkpoint file or run directory."""
    if resume == "auto":
        runs = sorted((Path(output_dir).expanduser() / recipe).glob("*/"), reverse=True)
        candidates = [p for run in runs for p in RunDir(run).checkpoint_files(LAST)]
        if not candidates:
            raise UserError(
                f"--resume auto: no checkpoint of {recipe} under {Path(output_dir) / recipe}; run it once first"
            )
    else:
        path = Path(resume).expanduser()
        if path.is_dir():
            run = RunDir(path if path.name != "checkpoints" else path.parent)
            candidates = run.checkpoint_files(LAST)
            if not candidates:
                raise UserError(f"--resume {resume}: no {LAST}_checkpoint_*.pt in {run.checkpoints}")
        else:
            candidates = [path]
    for path in candidates:
        try:
            return path, load_checkpoint(path)
        except UserError as exc:
            if resume != "auto":
                raise
            log.warning("skipping damaged checkpoint %s: %s", path, exc.message)
    raise UserError(f"--resume auto: none of the {len(candidates)} checkpoints of {recipe} could be loaded")


def open_run(recipe: Recipe, config: RunConfig, explicit: Collection[str]) -> tuple[RunDir, RunConfig, dict | None]:
    """A new run directory, or the one being resumed with its saved config (flags given explicitly win)."""
    if not config.resume:
        run = RunDir.create(config.output_dir, recipe.name)
        config = dataclasses.replace(config, run_dir=str(run.path))
        run.config.write_text(config.to_json())
        return run, config, None
    path, checkpoint = find_resume_checkpoint(config.resume, config.output_dir, recipe.name)
    run = RunDir(run_dir_of(path))
    saved = checkpoint_config(path, checkpoint)
    if saved.recipe != recipe.name:
        raise UserError(f"{path} was trained by recipe {saved.recipe!r}, not {recipe.name!r}")
    overrides = {name: getattr(config, name) for name in explicit if name not in ("recipe", "settings", "resume")}
    if "settings" in explicit:
        overrides["settings"] = {**saved.settings, **config.settings}
    merged = dataclasses.replace(saved, **overrides, resume=str(path), run_dir=str(run.path))
    run.check_writable()
    run.config.write_text(merged.to_json())
    log.info("resuming %s from %s", run.path, path.name)
    return run, merged, checkpoint


def train(
    recipe: Recipe, config: RunConfig, explicit: Collection[str] = (), instrument: Callable | None = None
) -> dict[str, Any]:
    """Train one recipe end to end and return its summary (also written to summary.json).

    Under torch.distributed every process calls this; rank 0 alone writes files, logs and plots.
    """
    main = idist.get_rank() == 0
    run, config, checkpoint = open_run(recipe, config, explicit) if main else (None, None, None)
    if idist.get_world_size() > 1:  # the others learn the run directory and config from rank 0
        run_path = idist.broadcast(str(run.path) if main else "", src=0, safe_mode=True)
        config_json = idist.broadcast(config.to_json() if main else "", src=0, safe_mode=True)
        run, config = run or RunDir(Path(run_path)), RunConfig.from_dict(json.loads(config_json), "rank 0")
        if not main and config.resume:
            checkpoint = load_checkpoint(Path(config.resume))
    with log_to_file(run.log) if main else contextlib.nullcontext():
        return _train(recipe, config, run, checkpoint, new_lr="lr" in explicit, instrument=instrument)


def _train(
    recipe: Recipe, config: RunConfig, run: RunDir, checkpoint: dict | None, new_lr: bool, instrument: Callable | None
) -> dict[str, Any]:
    """``instrument(trainer, run)``, if given, returns a context manager wrapped around the training loop."""
    started = time.perf_counter()
    main, world = idist.get_rank() == 0, idist.get_world_size()
    device = idist.device() if world > 1 else resolve_device(config.device)
    amp = amp_allowed(config.amp, device)
    if config.deterministic:
        torch.use_deterministic_algorithms(True)
    per_process = max(1, config.batch_size // world)  # --batch-size is the global batch
    local = dataclasses.replace(config, batch_size=per_process)
    manual_seed(config.seed)
    parts: Parts = recipe.build(local, make_settings(recipe.settings, config.settings))
    parts.model.to(device)
    model = idist.auto_model(parts.model) if world > 1 else parts.model  # DDP across processes

    eval_batch = max(1, (config.eval_batch_size or 2 * config.batch_size) // world)  # no gradients: room for more

    def loader(data, batch: int, shuffle: bool):
        return None if data is None else build_loader(data, batch, shuffle=shuffle, seed=config.seed, device=device)

    train_loader = loader(parts.train, per_process, True)
    val_loader, test_loader = loader(parts.val, eval_batch, False), loader(parts.test, eval_batch, False)
    train_length = epoch_length(train_loader, config.limit_batches)
    val_length = epoch_length(val_loader, config.limit_batches)

    if parts.grad_clip:
        clip_gradients(parts.optimizer, parts.grad_clip)
    trainer, train_metrics = build_trainer(parts, model, device, amp)
    evaluator = build_evaluator(parts, model, device, amp)
    score = handlers.score_function(parts.score, parts.score_mode)
    handlers.attach_nan_guard(trainer)
    if main:
        handlers.attach_progress(trainer)
    random_state = MidEpochState(train_metrics)

    @trainer.on(Events.EPOCH_STARTED)
    def reseed(engine: Engine) -> None:
        # The data order and the random state of epoch E depend on (seed, E) only, so resumes replay exactly.
        # A run resumed mid-epoch instead skips the batches it trained on and takes back its saved random state.
        done_in_epoch = engine.state.iteration - (engine.state.epoch - 1) * (engine.state.epoch_length or 0)
        set_epoch(train_loader, engine.state.epoch - 1, skip_batches=max(0, done_in_epoch))
        if not random_state.apply_pending():
            manual_seed(config.seed + engine.state.epoch)
        epoch_lr[0] = parts.optimizer.param_groups[0]["lr"]

    epoch_lr = [config.lr]  # the learning rate an epoch started with, as recorded in metrics.jsonl

    dashboard = None
    if config.visdom and main:
        env = config.visdom_env or f"{recipe.name}_{run.path.name}"
        dashboard = Dashboard(config.visdom_server, config.visdom_port, env)
    plots = TrainingPlots(dashboard) if dashboard else None
    publish = Publisher(run.path / "media", dashboard)

    throughput = Throughput()
    trainer.add_event_handler(Events.ITERATION_COMPLETED, throughput.on_iteration)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, throughput.on_epoch)
    if plots:
        trainer.add_event_handler(
            Events.ITERATION_COMPLETED, lambda e: plots.iteration(e.state.iteration, e.state.output["loss"])
        )

    @trainer.on(Events.EPOCH_COMPLETED)
    def validate(_: Engine) -> None:
        evaluator.run(val_loader, epoch_length=val_length)

    to_save: dict[str, Any] = {
        "model": parts.model,
        "optimizer": parts.optimizer,
        "trainer": trainer,
        "mid_epoch": random_state,
        "run_info": RunInfo(dataclasses.asdict(config)),
    }
    scheduler = handlers.attach_lr_schedule(
        config.lr_schedule, trainer, evaluator, parts.optimizer, config.epochs, train_length or 1, score
    )
    if scheduler is not None:
        to_save["lr_scheduler"] = scheduler
    if config.patience:
        to_save["early_stopping"] = handlers.attach_early_stopping(trainer, evaluator, config.patience, score)
    best, last = handlers.attach_checkpointing(trainer, evaluator, to_save, run.checkpoints, score, parts.score)

    elapsed_before = 0.0
    if checkpoint is not None:
        elapsed_before = restore(checkpoint, {**to_save, "best_checkpointer": best}, run if main else None, config)
        if scheduler is not None and checkpoint.get("run_info", {}).get("epochs") != config.epochs:
            handlers.stretch_schedule(scheduler, config.epochs, train_length or 1)
        if new_lr:  # an --lr given with --resume replaces the saved optimizer's
            for group in parts.optimizer.param_groups:
                group["lr"] = config.lr

    @trainer.on(Events.EPOCH_COMPLETED)
    def record(engine: Engine) -> None:
        if not main:
            return
        elapsed = elapsed_before + time.perf_counter() - started
        lr = epoch_lr[0]
        where = {"epoch": engine.state.epoch, "iteration": engine.state.iteration, "elapsed": round(elapsed, 3)}
        run.append_metrics({**where, "split": "train", "metrics": {**engine.state.metrics, "lr": lr}})
        run.append_metrics({**where, "split": "val", "metrics": evaluator.state.metrics})
        log.info(
            "epoch %d/%d | train %s | val %s | lr %.3g | %.1fs",
            engine.state.epoch,
            engine.state.max_epochs,
            _brief(engine.state.metrics),
            _brief(evaluator.state.metrics),
            lr,
            elapsed,
        )
        if plots:
            plots.epoch(engine.state.epoch, engine.state.metrics, evaluator.state.metrics, lr, throughput.last_rate)
        if parts.on_epoch is not None:
            parts.on_epoch(RunView(engine.state.epoch, parts.model, device, publish))
        if time.perf_counter() - plotted[0] > PLOT_EVERY_S:
            plot_curves({recipe.name: run.read_metrics()}, run.curves)
            plotted[0] = time.perf_counter()

    plotted = [time.perf_counter()]
    trainer.add_event_handler(Events.EPOCH_COMPLETED, last)
    if config.checkpoint_every:
        trainer.add_event_handler(Events.ITERATION_COMPLETED(every=config.checkpoint_every), last)

    if parts.on_start is not None and checkpoint is None and main:
        parts.on_start(RunView(0, parts.model, device, publish))
    status, message = "completed", ""
    if main:
        run.write_summary({"recipe": recipe.name, "status": "running", "run_dir": str(run.path)})
    try:
        with instrument(trainer, run) if instrument else contextlib.nullcontext():
            if checkpoint is not None:
                trainer.state.max_epochs = config.epochs  # raising --epochs on resume continues instead of restarting
                trainer.run(train_loader)
            else:
                trainer.run(train_loader, max_epochs=config.epochs, epoch_length=train_length)
    except KeyboardInterrupt:
        last(trainer)
        status = "interrupted"
        message = (
            f"interrupted at epoch {trainer.state.epoch}, iteration {trainer.state.iteration}; saved "
            f"{last.last_checkpoint}. Resume with: ignite-lab run {recipe.name} --resume {run.path}"
        )
    except (OSError, RuntimeError) as exc:  # a full disk or a vanished directory while saving: keep what was written
        cause = exc if isinstance(exc, OSError) else exc.__context__
        if not isinstance(cause, OSError):
            raise
        kept = f"; the last complete checkpoint is {last.last_checkpoint}" if last.last_checkpoint else ""
        status, message = "failed", f"cannot write to {run.path}: {cause.strerror or cause}{kept}"
    output = trainer.state.output
    if status == "completed" and isinstance(output, dict) and not math.isfinite(output.get("loss", 0.0)):
        status = "failed"
        kept = (
            f"the last good checkpoint is {last.last_checkpoint}" if last.last_checkpoint else "no checkpoint was saved"
        )
        message = (
            f"loss became {output['loss']} at epoch {trainer.state.epoch}, iteration {trainer.state.iteration}; {kept}"
        )
    elif status == "completed" and trainer.state.epoch < config.epochs:
        status = "early_stopped"
        message = (
            f"no improvement in val {parts.score} for {config.patience} epochs; stopped at epoch {trainer.state.epoch}"
        )

    test_metrics = None
    best_file = Path(best.last_checkpoint).name if best.last_checkpoint else None
    last_file = Path(last.last_checkpoint).name if last.last_checkpoint else None
    best_epoch = _epoch_of(best_file) if best_file else None
    if status in ("completed", "early_stopped") and test_loader is not None:
        idist.barrier()  # rank 0 has finished writing the best checkpoint
        if best_file:  # the test set judges the model selected on validation
            parts.model.load_state_dict(load_checkpoint(run.checkpoints / best_file)["model"])
        tester = build_evaluator(parts, model, device, amp)
        tester.run(test_loader, epoch_length=epoch_length(test_loader, config.limit_batches))
        test_metrics = dict(tester.state.metrics)
        if main:
            run.append_metrics(
                {
                    "epoch": best_epoch,
                    "iteration": trainer.state.iteration,
                    "split": "test",
                    "metrics": test_metrics,
                    "elapsed": round(elapsed_before + time.perf_counter() - started, 3),
                }
            )

    samples = idist.all_reduce(throughput.samples) if world > 1 else throughput.samples
    summary = {
        "recipe": recipe.name,
        "status": status,
        "message": message,
        "run_dir": str(run.path),
        "epochs_completed": trainer.state.epoch,
        "iterations": trainer.state.iteration,
        "best_epoch": best_epoch,
        "best_checkpoint": best_file,
        "last_checkpoint": last_file,
        "test": test_metrics,
        "wall_time_s": round(elapsed_before + time.perf_counter() - started, 2),
        "samples_per_s": round(samples / throughput.seconds, 1) if throughput.seconds else None,
        "device": str(device),
        "processes": world,
        "peak_rss_mb": peak_rss_mb(),
    }
    if main:
        records = run.read_metrics()
        plot_curves({recipe.name: records}, run.curves)
        summary["best_val"] = _best_val(records, parts.score, parts.score_mode)
        run.write_summary(summary)
        if test_metrics is not None:
            scalars = [(k, v) for k, v in test_metrics.items() if isinstance(v, (int, float))]
            log.info("test metrics (best epoch %s):\n%s", best_epoch, format_table(["metric", "value"], scalars))
        log.info("run directory: %s", run.path)
    if status in ("failed", "interrupted"):
        raise RunFailed(message)
    if message:
        log.info(message)
    return summary


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, because Linux carries ru_maxrss across exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def clip_gradients(optimizer: torch.optim.Optimizer, max_norm: float) -> None:
    """Clip the gradient norm right before every optimizer step (after AMP unscaling), leaving Ignite's step as is."""
    params = [p for group in optimizer.param_groups for p in group["params"]]

    def clip(*_) -> None:  # a pre-step hook must return None
        torch.nn.utils.clip_grad_norm_(params, max_norm)

    optimizer.register_step_pre_hook(clip)


class MidEpochState:
    """What a run resumed mid-epoch needs besides model and optimizer: the random generators' state and the
    training metrics accumulated so far in the epoch. Saved in every checkpoint, applied at the resumed
    epoch's start (after Ignite has reset the metrics)."""

    def __init__(self, metrics: dict[str, Any]) -> None:
        self.metrics: dict[str, Any] = {}
        for name, metric in metrics.items():
            self._collect(name, metric)
        self.pending: dict[str, Any] | None = None

    def _collect(self, name: str, metric: Any) -> None:
        """Metrics that hold state; derived ones (IoU of a ConfusionMatrix) contribute what they derive from."""
        if isinstance(metric, MetricsLambda):
            for i, arg in enumerate([*metric.args, *metric.kwargs.values()]):
                if isinstance(arg, Metric) and all(arg is not m for m in self.metrics.values()):
                    self._collect(f"{name}.{i}", arg)
        elif getattr(type(metric), "_state_dict_all_req_keys", ()):
            self.metrics[name] = metric

    def state_dict(self) -> dict[str, Any]:
        version, keys, gauss = random.getstate()
        np_state = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "python": [version, list(keys), gauss],
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "metrics": {name: dict(metric.state_dict()) for name, metric in self.metrics.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pending = state

    def apply_pending(self) -> bool:
        """Restore the loaded state once (at the first epoch start after a resume mid-epoch)."""
        state, self.pending = self.pending, None
        if state is None:
            return False
        torch.set_rng_state(state["torch"])
        version, keys, gauss = state["python"]
        random.setstate((version, tuple(keys), gauss))
        name, keys, *rest = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
        for metric_name, metric_state in state.get("metrics", {}).items():
            if metric_name in self.metrics:
                self.metrics[metric_name].load_state_dict(metric_state)
        return True


class Throughput:
    """Training samples per second, per epoch and overall (iteration time only, not evaluation)."""

    def __init__(self) -> None:
        self.samples = self.seconds = self.epoch_samples = 0
        self.last_rate = 0.0

    def on_iteration(self, engine: Engine) -> None:
        self.epoch_samples += batch_size_of(engine.state.batch)

    def on_epoch(self, engine: Engine) -> None:
        seconds = engine.state.times["EPOCH_COMPLETED"] or 0.0
        self.last_rate = self.epoch_samples / seconds if seconds else 0.0
        self.samples += self.epoch_samples
        self.seconds += seconds
        self.epoch_samples = 0

    @property
    def overall_rate(self) -> float | None:
        return round(self.samples / self.seconds, 1) if self.seconds else None


def restore(checkpoint: dict[str, Any], to_load: dict[str, Any], run: RunDir | None, config: RunConfig) -> float:
    """Load every saved object; drop metrics.jsonl records newer than the checkpoint. Returns elapsed seconds."""
    missing = [name for name in to_load if name not in checkpoint]
    for name in missing:
        log.warning("the checkpoint has no %s state; it starts fresh (flags differ from the original run?)", name)
    try:
        Checkpoint.load_objects({k: v for k, v in to_load.items() if k in checkpoint}, checkpoint)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise UserError(
            f"the checkpoint does not fit this recipe's model or settings: {str(exc).splitlines()[0]}"
        ) from None
    trainer: Engine = to_load["trainer"]
    if trainer.state.iteration % max(1, trainer.state.epoch_length or 1) == 0:
        to_load["mid_epoch"].pending = None  # at an epoch boundary the (seed, epoch) rule reseeds instead
    done = trainer.state.epoch
    if trainer.state.iteration % max(1, trainer.state.epoch_length or 1) == 0 and done >= config.epochs:
        raise UserError(
            f"{config.run_dir} already trained {done} epochs; pass --epochs larger than {done} to continue it"
        )
    if run is None:  # not rank 0: nothing to rewrite
        return 0.0
    kept = [
        r for r in run.read_metrics() if r.get("iteration", 0) <= trainer.state.iteration and r.get("split") != "test"
    ]
    run.rewrite_metrics(kept)
    return float(kept[-1]["elapsed"]) if kept else 0.0


def _brief(metrics: dict[str, Any]) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float)))


def _epoch_of(filename: str) -> int | None:
    parts = filename.split("_")
    return int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None


def _best_val(records: list[dict[str, Any]], metric: str, mode: str) -> dict[str, Any] | None:
    vals = [r for r in records if r["split"] == "val" and isinstance(r["metrics"].get(metric), (int, float))]
    if not vals:
        return None
    pick = max if mode == "max" else min
    best = pick(vals, key=lambda r: r["metrics"][metric])
    return {"epoch": best["epoch"], metric: best["metrics"][metric]}
