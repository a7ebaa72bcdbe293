"""``ignite-lab sweep``: hyperparameter search on Optuna, from one machine to many sharing one database.

Each trial is an ordinary run directory (``OUTPUT_DIR/NAME/sweep-STUDY/trial-K``): ``compare``, ``eval``,
``predict`` and ``--resume`` work on it. Its objective is the recipe's own validation score in the recipe's
direction; test metrics are recorded in the run but never used to choose. An Ignite handler reports the
validation score to Optuna after every epoch and stops a trial its pruner judges unpromising (status
``pruned``). We use our own small handler rather than optuna-integration's ``PyTorchIgnitePruningHandler``
because that one raises ``TrialPruned`` inside the evaluator, which aborts the run before its summary and
last checkpoint are written; ours terminates the trainer, so a pruned trial's directory is complete.

The study (storage, claims, dead workers) is ``study.py``; the closing report ``sweep_report.py``. A sweep
killed at any point and started again with the same command continues the same study, never losing or
duplicating a trial.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from ignite.engine import Events

from ignite_lab.core.compat import optuna_heartbeat
from ignite_lab.core.errors import Interrupted, RunFailed, UserError
from ignite_lab.core.recipe import Recipe, RunView
from ignite_lab.core.status import FINISHED, Status, StopReason
from ignite_lab.tools.study import Sweep, next_trial, open_study, redacted, trial_config
from ignite_lab.tools.sweep_report import report

log = logging.getLogger(__name__)


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
    if status in FINISHED and best is not None:
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
