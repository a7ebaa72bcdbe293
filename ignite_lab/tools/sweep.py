"""``ignite-lab sweep``: hyperparameter search on Optuna, from one machine to many sharing one database.

Each trial is an ordinary run directory (``OUTPUT_DIR/NAME/sweep-STUDY/trial-K``): ``compare``, ``eval``,
``predict`` and ``--resume`` work on it. Its objective is the recipe's own validation score in the recipe's
direction; test metrics are recorded in the run but never used to choose. An Ignite handler reports the
validation score to Optuna after every epoch and stops a trial its pruner judges unpromising (status
``pruned``). We use our own small handler rather than optuna-integration's ``PyTorchIgnitePruningHandler``
because that one raises ``TrialPruned`` inside the evaluator, which aborts the run before its summary and
last checkpoint are written; ours terminates the trainer, so a pruned trial's directory is complete.

Storage is a SQLite file in the sweep directory by default; ``--storage postgresql://...`` (any SQLAlchemy
URL Optuna supports) and the same ``--study`` let many machines run the same command on one study. The
study counts trials under a claim lock (a lock file for SQLite, an advisory lock for PostgreSQL), so all
workers together start exactly ``--trials`` of them. A trial whose worker died is marked failed and
queued again with the same parameters (Optuna's RetryHeartbeatStaleTrialCallback): at once when the worker was on
this machine, else when its heartbeat stops; so a sweep killed at any point and started again with the
same command continues the same study, never losing or duplicating a trial.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import shlex
import socket
import time
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ignite.engine import Events

from ignite_lab.core.compat import optuna_heartbeat
from ignite_lab.core.config import TrainConfig
from ignite_lab.core.errors import Interrupted, RunFailed, UserError
from ignite_lab.core.recipe import Recipe, RunView
from ignite_lab.core.settings import complete_settings
from ignite_lab.core.status import Status, StopReason
from ignite_lab.tools.spaces import Space
from ignite_lab.training.launch import Request

log = logging.getLogger(__name__)


def retry(study: Any, trial: Any) -> None:
    """A dead worker's trial goes back in the queue with its parameters, up to 3 times."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    RetryHeartbeatStaleTrialCallback(max_retry=3)(study, trial)


@dataclass
class Sweep:
    """What ``ignite-lab sweep`` was asked for: the base run, the spaces searched and the study's place."""

    request: Request  # the fixed part of every trial's run
    spaces: list[Space]
    trials: int
    study: str
    storage: str | None
    jobs: int
    pruner: str
    timeout: float | None
    max_failures: int | None = None  # failed runs the study may hold before the sweep stops (default: --trials)
    score: str = "accuracy"
    direction: str = "maximize"

    @property
    def folder(self) -> Path:
        return Path(self.request.launch.output_dir).expanduser() / self.request.config.recipe / f"sweep-{self.study}"

    @property
    def url(self) -> str:
        """The storage as a SQLAlchemy URL; plain postgresql:// means the psycopg (3) driver ignite-lab ships."""
        if self.storage and self.storage.startswith("postgresql://"):
            return "postgresql+psycopg://" + self.storage.removeprefix("postgresql://")
        return self.storage or f"sqlite:///{(self.folder / 'study.db').resolve()}"


def open_study(sweep: Sweep, create: bool) -> Any:
    """The sweep's Optuna study (created on first use); an unreachable storage is one clear error."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # heartbeats and retries are "experimental" since Optuna 2.8 and the way a sweep survives dead workers
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # ask/tell with our own heartbeat thread (compat.optuna_heartbeat) is what this warning is about
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    try:
        with claim_lock(sweep):
            return create_or_load(sweep, create)
    except UserError:
        raise
    except Exception as exc:  # sqlalchemy's and the drivers' errors: name the storage, not a traceback
        text = str(exc).strip().splitlines()
        raise UserError(f"cannot open the study at {redacted(sweep.url)}: {text[0][:300] if text else exc}") from None


def create_or_load(sweep: Sweep, create: bool) -> Any:
    import optuna
    from optuna.storages import RDBStorage

    storage = RDBStorage(sweep.url, heartbeat_interval=10, grace_period=30, heartbeat_stale_trial_callback=retry)
    if not create:  # a study keeps no sampler or pruner: each worker brings the sweep's own
        return optuna.load_study(study_name=sweep.study, storage=storage, sampler=sampler(sweep), pruner=pruner(sweep))
    return optuna.create_study(
        study_name=sweep.study,
        storage=storage,
        direction=sweep.direction,
        load_if_exists=True,
        sampler=sampler(sweep),
        pruner=pruner(sweep),
    )


def redacted(url: str) -> str:
    """The storage URL without its password, for messages."""
    head, sep, tail = url.partition("@")
    return (head.rsplit(":", 1)[0] + ":***@" + tail) if sep and head.count(":") >= 2 else url


def sampler(sweep: Sweep) -> Any:
    """TPE, seeded per worker: workers with one seed would propose the same first trials."""
    import optuna

    seed = zlib.crc32(f"{sweep.request.config.seed}/{socket.gethostname()}/{os.getpid()}".encode())
    return optuna.samplers.TPESampler(seed=seed)


def pruner(sweep: Sweep) -> Any:
    import optuna

    if sweep.pruner == "median":  # Optuna's 5 unpruned trials; no pruning in the first third of the epochs
        epochs = sweep.request.config.epochs
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, epochs // 3))

    if sweep.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=sweep.request.config.epochs)
    return optuna.pruners.NopPruner()


@contextlib.contextmanager
def claim_lock(sweep: Sweep) -> Iterator[None]:
    """Serializes creating the study and claiming trials across workers: a lock file next to a SQLite study, an
    advisory lock in PostgreSQL (machines started together would race creating Optuna's tables); other
    databases get the lock file (exact on one machine only)."""
    if sweep.url.startswith("postgresql"):
        from sqlalchemy import create_engine, text

        engine = create_engine(sweep.url, poolclass=None)
        key = zlib.crc32(sweep.study.encode())
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        engine.dispose()
        return
    sweep.folder.mkdir(parents=True, exist_ok=True)
    with open(sweep.folder / ".claim.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def next_trial(sweep: Sweep, study: Any) -> Any | None:
    """Under the claim lock: settle dead workers' trials, then ask for a trial unless enough have started."""
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    with claim_lock(sweep):
        fail_dead_local_trials(study)
        fail_stale_trials(study)
        check_failures(sweep, study)
        started = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
        if len(started) >= sweep.trials:
            return None
        trial = study.ask()
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("pid_started", started_at(os.getpid()))
        return trial


def check_failures(sweep: Sweep, study: Any) -> None:
    """Stop the sweep once the study holds ``max_failures`` trials whose run failed (a dead worker's trial,
    queued again, does not count): a space where nothing trains must not start trials for ever."""
    from optuna.trial import TrialState

    bound = sweep.max_failures or sweep.trials
    failed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if "failure" in t.user_attrs]
    if len(failed) >= bound:
        last = failed[-1].user_attrs["failure"] or "no message"
        message = (
            f"{len(failed)} trials failed (the bound is --max-failures {bound}); stopping the sweep. "
            f"Trial {failed[-1].number}: {last}"
        )
        log.error("%s", message)
        raise RunFailed(message)


def fail_dead_local_trials(study: Any) -> None:
    """Running trials of workers on this machine that are gone (killed): failed now, and queued again."""
    from optuna.trial import TrialState

    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = frozen.user_attrs
        if attrs.get("host") == socket.gethostname() and not alive(attrs.get("pid", 0), attrs.get("pid_started")):
            study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)
            retry(study, study.get_trials(deepcopy=False)[frozen.number])
            log.warning(
                "trial %d's worker (pid %s) is gone: marked failed and queued again", frozen.number, attrs["pid"]
            )


def started_at(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc): a pid and this name one process,
    even after the pid is reused."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def alive(pid: int, started: str | None) -> bool:
    now = started_at(int(pid))
    return now is not None and (started is None or now == started)


def work(sweep: Sweep, recipe: Recipe) -> None:
    """A worker: trials one after another until the study has its trials (or the time is up)."""
    from optuna.exceptions import UpdateFinishedTrialError

    study = open_study(sweep, create=False)
    deadline = time.monotonic() + sweep.timeout if sweep.timeout else None
    while deadline is None or time.monotonic() < deadline:
        trial = next_trial(sweep, study)
        if trial is None:
            return
        try:
            with optuna_heartbeat(trial, study):
                outcome = run_trial(sweep, recipe, trial)
            study.tell(trial, outcome.value, state=outcome.state, skip_if_finished=True)
        except UpdateFinishedTrialError:  # another worker judged it dead (a stalled heartbeat) and queued it again
            log.warning("trial %d was marked failed by another worker; its re-run counts instead", trial.number)
            continue
        if outcome.status == Status.INTERRUPTED:  # Ctrl-C: the trial is failed (and re-run when the sweep continues)
            log.error("the sweep was interrupted; the same command continues it")
            raise Interrupted("the sweep was interrupted; the same command continues it")


@dataclass
class TrialOutcome:
    status: Status  # the run's summary status
    state: Any  # Optuna's TrialState
    value: float | None


class Pruning:
    """Reports the validation score to the trial after every epoch; stops the run when the pruner says so."""

    def __init__(self, trial: Any, score: str) -> None:
        self.trial, self.score = trial, score

    def __call__(self, run: RunView) -> None:
        run.evaluator.add_event_handler(Events.COMPLETED, self.report, run.trainer)

    def report(self, evaluator: Any, trainer: Any) -> None:
        epoch = trainer.state.epoch
        self.trial.report(float(evaluator.state.metrics[self.score]), epoch)
        if self.trial.should_prune():
            trainer.state.stop_reason = StopReason(Status.PRUNED, f"pruned by Optuna after epoch {epoch}")
            trainer.terminate()


def trial_config(sweep: Sweep, trial: Any) -> Any:
    """The base config with this trial's values: flags by name, settings as "settings.KEY"."""
    config = sweep.request.config
    values = {space.name: space.suggest(trial) for space in sweep.spaces}
    flags = {k: v for k, v in values.items() if not k.startswith("settings.")}
    settings = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("settings.")}
    return dataclasses.replace(config, **flags, settings={**config.settings, **settings})


def run_trial(sweep: Sweep, recipe: Recipe, trial: Any) -> TrialOutcome:
    """One trial as an ordinary run in ``sweep-STUDY/trial-K``; its value is the best validation score."""
    from optuna.trial import TrialState

    from ignite_lab.training.loop import train
    from ignite_lab.training.resume import new_run

    request = sweep.request
    plan = new_run(
        recipe, trial_config(sweep, trial), request.launch, request.recipe_ref, sweep.folder / f"trial-{trial.number}"
    )
    trial.set_user_attr("run_dir", str(plan.run.path))
    try:
        summary = train(recipe, plan, request.launch, request.dashboard, handlers=Pruning(trial, sweep.score))
    except UserError:  # failed (NaN, bad data), interrupted: the run's summary says which
        summary = plan.run.read_summary()
    finally:
        plan.run.unlock()
    status = Status(summary.get("status", Status.FAILED))
    trial.set_user_attr("wall_time_s", summary.get("wall_time_s"))
    trial.set_user_attr("test", summary.get("test"))
    if status == Status.PRUNED:
        return TrialOutcome(status, TrialState.PRUNED, None)
    best = (summary.get("best_val") or {}).get(sweep.score)
    if status.finished and best is not None:
        return TrialOutcome(status, TrialState.COMPLETE, float(best))
    if status != Status.INTERRUPTED:  # counted towards --max-failures
        trial.set_user_attr("failure", summary.get("message") or f"the run ended {status}")
    return TrialOutcome(status, TrialState.FAIL, None)


def run_sweep(sweep: Sweep, recipe: Recipe) -> str:
    """Create or continue the study, run ``jobs`` workers here, and report the study as it now stands."""
    sweep.score, sweep.direction = recipe.score, "maximize" if recipe.score_mode == "max" else "minimize"
    sweep.folder.mkdir(parents=True, exist_ok=True)
    open_study(sweep, create=True)
    log.info(
        "study %s at %s: %d trials, objective val %s (%s)",
        sweep.study,
        redacted(sweep.url),
        sweep.trials,
        sweep.score,
        sweep.direction,
    )
    if sweep.jobs == 1:
        work(sweep, recipe)
    else:
        run_workers(sweep)
    return report(sweep, recipe)


def run_workers(sweep: Sweep) -> None:
    """``jobs`` worker processes on this machine, sharing the cores; a failed worker is a clear error."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=worker_main, args=(sweep, max(1, (os.cpu_count() or 1) // sweep.jobs)))
        for _ in range(sweep.jobs)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join()
    failed = [p.exitcode for p in workers if p.exitcode]
    if failed:
        message = f"{len(failed)} of {sweep.jobs} sweep workers stopped early (exit codes {failed})"
        log.error("%s", message)
        raise RunFailed(message)


def worker_main(sweep: Sweep, threads: int) -> None:
    import sys

    import torch

    from ignite_lab.core.registry import load_recipe
    from ignite_lab.training.logs import setup_logging

    setup_logging()
    torch.set_num_threads(threads)
    try:
        work(sweep, load_recipe(sweep.request.recipe_ref))
    except RunFailed as exc:  # logged where it was raised
        sys.exit(exc.exit_code)
    except UserError as exc:
        log.error("%s", exc.message)
        sys.exit(exc.exit_code or 1)
    except Exception as exc:  # one line here; the parent says how many workers stopped
        log.error("sweep worker %d stopped: %s: %s", os.getpid(), type(exc).__name__, exc)
        log.debug("worker traceback", exc_info=True)
        sys.exit(1)


def report(sweep: Sweep, recipe: Recipe) -> str:
    """The trials as a table, the best trial's directory and command, and Optuna's pictures in the sweep folder."""
    from ignite_lab.outputs.tables import format_table

    study = open_study(sweep, create=False)
    trials = study.get_trials(deepcopy=False)
    names = sorted({name for t in trials for name in t.params})
    rows = [
        [t.number, t.state.name.lower(), *[short(t.params.get(n)) for n in names], t.value, wall(t)] for t in trials
    ]
    text = [format_table(["trial", "state", *names, f"val {sweep.score}", "wall s"], rows)]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if complete:
        best = study.best_trial
        text.append(f"best: trial {best.number}, val {sweep.score} {best.value:.4f}, {best.user_attrs.get('run_dir')}")
        text.append(f"reproduce it with: {best_command(sweep, recipe, best)}")
        text.append(f"pictures: {', '.join(str(p) for p in pictures(study, sweep.folder))}")
    return "\n".join(text)


def short(value: Any) -> Any:
    """Searched floats to 3 significant digits in the table (the best command keeps them exact)."""
    return f"{value:.3g}" if isinstance(value, float) else value


def wall(trial: Any) -> str | None:
    seconds = trial.user_attrs.get("wall_time_s")
    return f"{seconds:.1f}" if seconds is not None else None


def best_command(sweep: Sweep, recipe: Recipe, best: Any) -> str:
    """``ignite-lab run`` that trains exactly the best trial's config."""
    return run_command_for(recipe, sweep.request.recipe_ref, trial_config(sweep, best))


def run_command_for(recipe: Recipe, ref: str, config: TrainConfig) -> str:
    """The ``ignite-lab run`` command line that trains ``config``: every field and setting that differs from
    what the bare command gives (the recipe's defaults), derived from the config's own fields."""
    base = TrainConfig(recipe=recipe.name, **recipe.defaults())
    words = ["ignite-lab", "run", ref]
    for f in dataclasses.fields(TrainConfig):
        value = getattr(config, f.name)
        if not f.metadata.get("cli", True) or value == getattr(base, f.name) or value is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        words += [flag] if value is True else [flag, repr(value) if isinstance(value, float) else str(value)]
    defaults = complete_settings(recipe.settings, {})
    for key, value in config.settings.items():
        if value != defaults.get(key):
            words += ["--set", f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"]
    return " ".join(shlex.quote(word) for word in words)


def pictures(study: Any, folder: Path) -> list[Path]:
    """Optuna's matplotlib pictures: optimisation history, parameter importances, parallel coordinates."""
    from optuna.visualization import matplotlib as plots

    from ignite_lab.outputs.plots import pyplot

    plt = pyplot()
    written = []
    for name, draw in (
        ("history", plots.plot_optimization_history),
        ("importances", plots.plot_param_importances),
        ("parallel_coordinates", plots.plot_parallel_coordinate),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = draw(study)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            figure.savefig(folder / f"{name}.png", dpi=90)
            plt.close(figure)
            written.append(folder / f"{name}.png")
        except (ValueError, RuntimeError) as exc:  # importances need two finished trials that differ
            log.info("no %s picture: %s", name, exc)
    return written
