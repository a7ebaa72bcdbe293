"""HOW every recipe trains: one run, read top to bottom as phases.

Every process calls ``train`` (rank 0 alone writes files, logs and plots):

1. set up the process and its device;
2. build the recipe's parts for this process (``build_parts``, shared with eval, predict, profile, bench);
3. make the loaders;
4. build the trainer and evaluator engines;
5. attach the standard handlers (their order is written down in handlers.py), then the recipe's own;
6. restore a resumed run's state;
7. run, guarded: a NaN loss, a signal (Ctrl-C, SIGTERM, SIGUSR1) or a failed save ends the run with its reason;
8. test the best checkpoint (a signal here stops the test; the same command tests again);
9. write the summary.

What to train, which run directory and which checkpoint to resume were settled before this, where
the command line was parsed (resume.py); this module carries that plan out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import resource
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.utils import manual_seed

from ignite_lab.core.compat import declare_fused_step
from ignite_lab.core.config import DashboardConfig, LaunchConfig, TrainConfig
from ignite_lab.core.errors import Interrupted, RunFailed, UserError
from ignite_lab.core.recipe import Parts, Recipe, RunView
from ignite_lab.core.settings import make_settings
from ignite_lab.core.status import FINISHED, Status, StopReason
from ignite_lab.outputs.dashboard import Dashboard, LiveSinks, Publisher, VisdomPlots
from ignite_lab.outputs.plots import draw_curves
from ignite_lab.outputs.tables import format_table
from ignite_lab.training.checkpoints import CheckpointName, RunInfo, load_checkpoint
from ignite_lab.training.devices import resolve_device
from ignite_lab.training.engines import build_engines, build_evaluator, epoch_length
from ignite_lab.training.handlers import Standard, attach_standard_handlers
from ignite_lab.training.loaders import FirstBatches, build_loader
from ignite_lab.training.logs import log_to_file
from ignite_lab.training.precision import resolve_precision
from ignite_lab.training.resume import MidEpochState, RunPlan, restore
from ignite_lab.training.rundir import now
from ignite_lab.training.session import Loaders, Process, Session

log = logging.getLogger(__name__)


def train(
    recipe: Recipe,
    plan: RunPlan,
    launch: LaunchConfig,
    dashboard: DashboardConfig,
    instrument: Callable | None = None,
    handlers: Callable[[RunView], None] | None = None,
) -> dict[str, Any]:
    """Train ``plan`` end to end and return its summary (also summary.json).

    ``instrument(trainer, run)``, if given, returns a context manager wrapped around the training loop;
    ``handlers(run)`` attaches the caller's own handlers after the recipe's (a sweep's pruning). A handler
    that stops the run sets ``trainer.state.stop_reason = StopReason(status, message)`` before terminating it.
    A run that fails before training starts (bad data, a checkpoint that does not fit) says ``failed`` in
    its summary; a resumed run's config.json changes only once its checkpoint has loaded.
    """
    # the process and its device
    process = setup_process(plan.config, launch.device)
    with log_to_file(plan.run.log) if process.main else contextlib.nullcontext():
        if process.main:
            processes = f" in each of {process.world} processes" if process.world > 1 else ""
            log.info("%s on %s, %d CPU thread(s)%s", recipe.name, process.device, torch.get_num_threads(), processes)
        with failing_before_training(plan, process):
            # the recipe's parts, and their loaders
            parts, model = build_parts(recipe, plan.config, process)
            loaders = make_loaders(parts, plan.config.per_process(process.world), process.device)
            # trainer and evaluator, the standard handlers in their order, then the recipe's and the caller's
            engines = build_engines(parts, model, process.device, process.precision)
            live = open_sinks(recipe, plan, dashboard) if process.main else None
            session = Session(recipe, plan, launch, process, parts, model, loaders, engines, live)
            std = attach_handlers(session, handlers)
            # a resumed run takes back its state
            resume_state(session, std)
        with std.interrupt.handling(process):  # from here to the summary, a signal stops the run cleanly
            outcome = run_guarded(session, std, instrument)
            # the test split judges the chosen checkpoint; the summary says how it all went
            test = test_best(session, std) if outcome.status in FINISHED else None
            if outcome.status in FINISHED and test is None and std.interrupt.requested:
                outcome = Outcome(Status.INTERRUPTED, interrupted_message(session, std, saved=False))
            if live is not None:
                live.finish(dataclasses.asdict(plan.config), test)
            return finish(session, std, outcome, test)


@contextlib.contextmanager
def failing_before_training(plan: RunPlan, process: Process) -> Iterator[None]:
    """A new run that fails while building (bad data or settings) says ``failed`` in its summary. A resumed
    run refused here (its checkpoint does not fit) keeps the summary it had: a refusal changes nothing."""
    try:
        yield
    except UserError as exc:
        if process.main and plan.checkpoint is None and not isinstance(exc, Interrupted):
            event = {"event": Status.FAILED, "time": now(), "message": exc.message}
            with contextlib.suppress(OSError):
                plan.run.write_summary(
                    {
                        **plan.run.read_summary(),
                        "recipe": plan.config.recipe,
                        "status": Status.FAILED,
                        "message": exc.message,
                        "run_dir": str(plan.run.path),
                        "history": [*plan.run.history(), event],
                    }
                )
        raise


# 1. The process and its device -------------------------------------------------------------------


def setup_process(config: TrainConfig, device: str) -> Process:
    world = idist.get_world_size()
    resolved = idist.device() if world > 1 else resolve_device(device)
    if config.deterministic:
        torch.use_deterministic_algorithms(True)
    return Process(resolved, world, idist.get_rank(), resolve_precision(config.precision, resolved))


# 2. The recipe's parts ---------------------------------------------------------------------------


def build_parts(recipe: Recipe, config: TrainConfig, process: Process) -> tuple[Parts, torch.nn.Module]:
    """The recipe's parts as this process trains them: built from the seed with the per-process batch,
    the model on the process's device, and the model to train with (wrapped in DDP across processes)."""
    manual_seed(config.seed)
    parts = recipe.build(config.per_process(process.world), make_settings(recipe.settings, config.settings))
    parts.model.to(process.device)
    if parts.channels_last:
        parts.model.to(memory_format=torch.channels_last)
    use_fused_step(parts.optimizer)
    if parts.grad_clip:
        clip_gradients(parts.optimizer, parts.grad_clip)
    model = idist.auto_model(parts.model) if process.world > 1 else parts.model
    return parts, model


FUSED_STEPS = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)


def use_fused_step(optimizer: torch.optim.Optimizer) -> None:
    """Switch the recipe's optimizer, in place (a recipe may hold it), to PyTorch's fused step where it has one:
    Adam, AdamW and SGD over dense float parameters on CPU or CUDA. The same update in one kernel instead of
    a Python loop over the parameters (Adam on the 784-32-16-10 MLP, batch 64, 1 thread: 1.6 ms a step
    against 2.5 ms). An optimizer that chose ``foreach`` or ``fused`` itself, or has stepped, keeps its own."""
    if type(optimizer) not in FUSED_STEPS or optimizer.state or optimizer.defaults.get("differentiable"):
        return
    groups = optimizer.param_groups
    if any(group.get("fused") is not None or group.get("foreach") is not None for group in groups):
        return
    params = [p for group in groups for p in group["params"]]
    if not all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params):
        return
    for group in [*groups, optimizer.defaults]:
        group["fused"] = True
    declare_fused_step(optimizer)


def clip_gradients(optimizer: torch.optim.Optimizer, max_norm: float) -> None:
    """Clip the gradient norm right before every optimizer step (after AMP unscaling), leaving Ignite's step as is."""
    params = [p for group in optimizer.param_groups for p in group["params"]]

    def clip(*_) -> None:  # a pre-step hook must return None
        torch.nn.utils.clip_grad_norm_(params, max_norm)

    optimizer.register_step_pre_hook(clip)


# 3. Loaders --------------------------------------------------------------------------------------


def make_loaders(parts: Parts, config: TrainConfig, device: torch.device) -> Loaders:
    """Seeded, sharded, resumable loaders for the recipe's datasets (``config``: this process's batch sizes)."""

    def loader(data: Iterable | None, batch: int, shuffle: bool) -> Iterable | None:
        return None if data is None else build_loader(data, batch, shuffle=shuffle, seed=config.seed, device=device)

    train = loader(parts.train, config.batch_size, parts.shuffle)
    val = loader(parts.val, config.eval_batch_size, False)
    test = loader(parts.test, config.eval_batch_size, False)
    limit = config.limit_batches
    train_length = epoch_length(train, limit)
    if limit and train is not None and train_length:  # each epoch a fresh pass in its (seed, epoch) order
        train = FirstBatches(train, train_length)
    return Loaders(train, val, test, train_length, epoch_length(val, limit), epoch_length(test, limit))


# 5. Handlers -------------------------------------------------------------------------------------


def open_sinks(recipe: Recipe, plan: RunPlan, dashboard: DashboardConfig) -> LiveSinks | None:
    """Visdom and/or TensorBoard, as asked; None when the run is shown in its files only."""
    sinks: list = []
    run_name = f"{recipe.name}_{plan.run.path.name}"
    if dashboard.visdom:
        env = dashboard.visdom_env or run_name
        sinks.append(VisdomPlots(Dashboard(dashboard.visdom_server, dashboard.visdom_port, env)))
    if dashboard.tensorboard:
        from ignite_lab.outputs.tensorboard_logger import TensorBoardPlots

        if dashboard.tensorboard_dir:  # runs gathered in one folder
            root = Path(dashboard.tensorboard_dir)
            sinks.append(TensorBoardPlots(root / run_name, root))
        else:  # OUTPUT_DIR/RECIPE/TIMESTAMP/tensorboard: served from OUTPUT_DIR
            sinks.append(TensorBoardPlots(plan.run.tensorboard, plan.run.path.parent.parent))
    return LiveSinks(sinks) if sinks else None


def attach_handlers(s: Session, extra: Callable[[RunView], None] | None = None) -> Standard:
    """The standard handlers (handlers.py says in which order), then the recipe's own, then the caller's."""
    config, trainer, engines, parts = s.config, s.trainer, s.engines, s.parts
    mid_epoch = MidEpochState(config.seed, s.loaders.train, engines.train_metrics, parts.optimizer)
    mid_epoch.attach(trainer)
    to_save: dict[str, Any] = {"model": parts.model, "optimizer": parts.optimizer, "trainer": trainer}
    to_save.update(mid_epoch=mid_epoch, run_info=RunInfo(dataclasses.asdict(config)))
    if hasattr(engines.step, "state_dict"):  # a recipe's own step that carries state (a hidden state, say)
        to_save["train_step"] = engines.step
    std = attach_standard_handlers(s, to_save)
    publish = Publisher(s.run.media if s.process.main else None, s.live)
    view = RunView(trainer, engines.evaluator, parts.model, s.process.device, publish, s.plan.checkpoint is not None)
    for attach in (parts.handlers, extra):
        if attach is not None:
            attach(view)
    return std


# 6. Restore --------------------------------------------------------------------------------------


def resume_state(s: Session, std: Standard) -> None:
    """Load a resumed run's checkpoint into every object; only then record its config and keep only the
    metrics records it had seen (a checkpoint that does not fit changes nothing)."""
    plan, process = s.plan, s.process
    if plan.checkpoint is None:
        return
    restore(
        plan,
        load_checkpoint(plan.checkpoint),
        {**std.to_save, "best_checkpointer": std.best},
        s.loaders.iterations_per_epoch,
    )
    state = std.to_save["trainer"].state
    log.info("resuming %s from %s, at %s", plan.run.path, plan.checkpoint.name, position(state))
    if process.main:
        plan.run.write_config(plan.config)
        std.recorder.elapsed_before = plan.run.keep_metrics_until(state.iteration)


def position(state: Any) -> str:
    """Where a trainer stands, said one way in every message: "the end of epoch 2 (iteration 40)" or
    "epoch 3, batch 5 of 20 (iteration 45)"."""
    length, iteration = state.epoch_length or 0, state.iteration
    if not length:
        return f"iteration {iteration}"
    done, batch = divmod(iteration, length)
    where = f"the end of epoch {done}" if batch == 0 else f"epoch {done + 1}, batch {batch} of {length}"
    return f"{where} (iteration {iteration})"


# 7. Run, guarded ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: Status
    message: str = ""


def run_guarded(s: Session, std: Standard, instrument: Callable | None) -> Outcome:
    """Train to the planned epochs; return how the run ended instead of raising."""
    trainer, loaders, plan = s.trainer, s.loaders, s.plan
    if s.process.main:
        event = "resumed" if plan.checkpoint else "started"
        plan.run.write_summary(
            {
                "recipe": plan.config.recipe,
                "recipe_ref": plan.recipe_ref,
                "status": Status.RUNNING,
                "run_dir": str(plan.run.path),
                "history": [*plan.run.history(), history_event(event, trainer)],
            }
        )
    try:
        with instrument(trainer, plan.run) if instrument else contextlib.nullcontext():
            if plan.checkpoint is None:
                trainer.run(loaders.train, max_epochs=plan.config.epochs, epoch_length=loaders.train_length)
            elif not training_over(trainer, std, plan.config.epochs):  # (Ignite would restart a finished state)
                trainer.state.max_epochs = plan.config.epochs  # a raised --epochs continues
                trainer.run(loaders.train)
    except KeyboardInterrupt:  # a second signal, or one in another process
        return Outcome(Status.INTERRUPTED, interrupted_message(s, std, saved=False))
    except (OSError, RuntimeError) as exc:  # a full disk or a vanished directory while saving
        cause = exc if isinstance(exc, OSError) else exc.__context__
        if not isinstance(cause, OSError):
            raise
        kept = f"; the last complete checkpoint is {std.last_file}" if std.last_file else ""
        return Outcome(Status.FAILED, f"cannot write to {plan.run.path}: {cause.strerror or cause}{kept}")
    return judge(s, std)


def training_over(trainer: Engine, std: Standard, epochs: int) -> bool:
    """A resumed run whose training already ended (all epochs, or early stopping had its say) only tests."""
    stopper = std.to_save.get("early_stopping")
    return trained_all(trainer, epochs) or (stopper is not None and stopper.counter >= stopper.patience)


def trained_all(trainer: Engine, epochs: int) -> bool:
    length = trainer.state.epoch_length or 1
    return trainer.state.iteration % length == 0 and trainer.state.iteration // length >= epochs


def judge(s: Session, std: Standard) -> Outcome:
    """How a run that returned normally ended: interrupted (Ctrl-C), failed (NaN), early stopped, completed."""
    trainer, plan = s.trainer, s.plan
    state, output = trainer.state, trainer.state.output
    stop_reason: StopReason | None = getattr(state, "stop_reason", None)  # a handler's own (a sweep's pruner)
    if stop_reason is not None:
        return Outcome(stop_reason.status, stop_reason.message)
    if std.interrupt.saved:
        return Outcome(Status.INTERRUPTED, interrupted_message(s, std, saved=True))
    if isinstance(output, dict) and not math.isfinite(output.get("loss", 0.0)):
        kept = std.last_file
        kept = f"the last good checkpoint is {kept}" if kept else "no checkpoint was saved"
        return Outcome(
            Status.FAILED, f"loss became {output['loss']} at epoch {state.epoch}, iteration {state.iteration}; {kept}"
        )
    if not trained_all(trainer, plan.config.epochs):
        return Outcome(
            Status.EARLY_STOPPED,
            f"no improvement in val {std.score_name} for {plan.config.patience} epochs; stopped at epoch {state.epoch}",
        )
    return Outcome(Status.COMPLETED)


def interrupted_message(s: Session, std: Standard, saved: bool) -> str:
    trainer, plan, checkpoint = s.trainer, s.plan, std.last_file
    what = f"saved {checkpoint}" if saved else f"the last complete checkpoint is {checkpoint or 'none'}"
    return (
        f"interrupted ({std.interrupt.signal or 'KeyboardInterrupt'}) at {position(trainer.state)}; {what}. "
        f"Resume with: ignite-lab run {plan.recipe_ref} --resume {plan.run.path}"
    )


# 8. Test the best checkpoint ---------------------------------------------------------------------


def test_best(s: Session, std: Standard) -> dict[str, Any] | None:
    """The test split judges the model selected on validation (the best checkpoint's weights), or with
    ``--test-checkpoint last`` the model as training left it (what the books report)."""
    parts, loaders, plan, process = s.parts, s.loaders, s.plan, s.process
    if loaders.test is None:
        return None
    idist.barrier()  # rank 0 has finished writing the best checkpoint
    best = std.best_file if plan.config.test_checkpoint == "best" else None
    if best:
        parts.model.load_state_dict(load_checkpoint(best)["model"])
    tester = build_evaluator(parts, s.model, process.device, process.precision)
    tester.add_event_handler(Events.ITERATION_COMPLETED, std.interrupt.stop_engine)
    tester.run(loaders.test, epoch_length=loaders.test_length)
    if std.interrupt.requested:  # stopped part-way: the same command tests again
        return None
    metrics = dict(tester.state.metrics)
    if process.main:
        epoch = CheckpointName.parse(best).step if best else std.to_save["trainer"].state.epoch
        plan.run.append_metrics(
            {
                "epoch": epoch,
                "iteration": std.to_save["trainer"].state.iteration,
                "split": "test",
                "metrics": metrics,
                "elapsed": round(std.recorder.elapsed(), 3),
            }
        )
    return metrics


# 9. Summary --------------------------------------------------------------------------------------


def finish(s: Session, std: Standard, outcome: Outcome, test: dict | None) -> dict[str, Any]:
    """Write summary.json and curves.png, log the result; raise RunFailed for failed or interrupted runs."""
    recipe, plan, trainer, process = s.recipe, s.plan, s.trainer, s.process
    samples = idist.all_reduce(std.throughput.samples) if process.world > 1 else std.throughput.samples
    best, last = (path.name if path else None for path in (std.best_file, std.last_file))
    summary = {
        "recipe": recipe.name,
        "recipe_ref": plan.recipe_ref,  # a built-in name, or the recipe file's path: how eval and predict find it
        "status": outcome.status,
        "message": outcome.message,
        "run_dir": str(plan.run.path),
        "epochs_planned": plan.config.epochs,
        "stop_at": plan.config.stop_at,
        "epochs_completed": trainer.state.epoch,
        "iterations": trainer.state.iteration,
        "best_epoch": CheckpointName.parse(best).step if best else None,
        "best_checkpoint": best,
        "last_checkpoint": last,
        "test": test,
        "wall_time_s": round(std.recorder.elapsed(), 2),
        "samples_per_s": round(samples / std.throughput.seconds, 1) if std.throughput.seconds else None,
        "device": str(process.device),
        "threads": torch.get_num_threads(),
        "processes": process.world,
        "peak_rss_mb": peak_rss_mb(),
    }
    if process.main:
        records = plan.run.read_metrics()
        draw_curves({recipe.name: records}, plan.run.curves)
        summary["best_val"] = best_val(records, recipe.score, recipe.score_mode)
        history = plan.run.history()
        summary["history"] = [*history, history_event(outcome.status, trainer)]
        try:
            plan.run.write_summary(summary)
        except OSError as exc:
            log.error("cannot write %s: %s", plan.run.summary, exc.strerror or exc)
        if test is not None:
            scalars = [(k, v) for k, v in test.items() if isinstance(v, (int, float))]
            which = f"best epoch {summary['best_epoch']}" if plan.config.test_checkpoint == "best" else "last epoch"
            log.info("test metrics (%s):\n%s", which, format_table(["metric", "value"], scalars))

        log.info("run directory: %s", plan.run.path)
    if outcome.status in (Status.FAILED, Status.INTERRUPTED):
        if process.main:
            log.error("%s", outcome.message)
        raise (Interrupted if outcome.status is Status.INTERRUPTED else RunFailed)(outcome.message)
    if outcome.message:
        log.info(outcome.message)
    return summary


def history_event(event: str, trainer: Engine) -> dict[str, Any]:
    """``epoch`` is the epoch the iteration falls in, whatever Ignite counts (a loaded mid-epoch state says
    the epochs completed, a running one the epoch under way)."""
    iteration, length = trainer.state.iteration, trainer.state.epoch_length
    epoch = -(-iteration // length) if length else trainer.state.epoch
    return {"event": event, "epoch": epoch, "iteration": iteration, "time": now()}


def best_val(records: list[dict[str, Any]], metric: str, mode: str) -> dict[str, Any] | None:
    vals = [r for r in records if r["split"] == "val" and isinstance(r["metrics"].get(metric), (int, float))]
    if not vals:
        return None
    pick = max if mode == "max" else min
    best = pick(vals, key=lambda r: r["metrics"][metric])
    return {"epoch": best["epoch"], metric: best["metrics"][metric]}


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, because Linux carries ru_maxrss across exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
