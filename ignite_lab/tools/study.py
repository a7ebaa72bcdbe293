"""A sweep's Optuna study: where it is stored, how workers claim trials under one lock, and what happens
to the trials of workers that died (failed, then queued again with the same parameters).

Storage is a SQLite file in the sweep directory by default; ``--storage postgresql://...`` (any SQLAlchemy
URL Optuna supports) and the same ``--study`` let many machines run the same command on one study. The
study counts trials under a claim lock (a lock file for SQLite, an advisory lock for PostgreSQL), so all
workers together start exactly ``--trials`` of them. A trial whose worker died is marked failed and
queued again with the same parameters (Optuna's RetryHeartbeatStaleTrialCallback): at once when the worker was on
this machine, else when its heartbeat stops. Failed runs count towards ``--max-failures``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import socket
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ignite_lab.core.errors import RunFailed, UserError
from ignite_lab.tools.spaces import Space
from ignite_lab.training.launch import Request

log = logging.getLogger(__name__)


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


def trial_config(sweep: Sweep, trial: Any) -> Any:
    """The base config with this trial's values: flags by name, settings as "settings.KEY"."""
    config = sweep.request.config
    values = {space.name: space.suggest(trial) for space in sweep.spaces}
    flags = {k: v for k, v in values.items() if not k.startswith("settings.")}
    settings = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("settings.")}
    return dataclasses.replace(config, **flags, settings={**config.settings, **settings})


def retry(study: Any, trial: Any) -> None:
    """A dead worker's trial goes back in the queue with its parameters, up to 3 times."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    RetryHeartbeatStaleTrialCallback(max_retry=3)(study, trial)


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
