"""``ignite-lab profile``: a few real training iterations, seen three ways at once.

- cProfile: the Python hot spots of the training loop (the half of ``torch.utils.bottleneck``, gone from
  torch 2.14, that shows where Python time goes), saved as profile.prof for snakeviz or pstats;
- torch.profiler: the top operators by self time and a Chrome trace (trace.json);
- Ignite's HandlersTimeProfiler: what each of the toolkit's handlers costs per event (handlers.csv).

cProfile's hooks slow Python code down, so its times are relative: compare entries with each other.
"""

from __future__ import annotations

import contextlib
import cProfile
import csv
import io
import logging
import pstats
from collections.abc import Iterator

import torch
from ignite.engine import Engine
from ignite.handlers import HandlersTimeProfiler
from torch.profiler import ProfilerActivity, profile

from ignite_lab.core.files import atomic_path
from ignite_lab.core.recipe import Recipe
from ignite_lab.training.resume import settle
from ignite_lab.training.rundir import RunDir

log = logging.getLogger(__name__)
TOP = 15


def profile_recipe(recipe: Recipe, request) -> None:
    """Train ``request`` (a launch.Request of a few iterations) in a new run directory, profiled."""
    from ignite_lab.training.loop import train

    plan = settle(recipe, request.config, request.launch, set(), request.recipe_ref)
    try:
        train(recipe, plan, request.launch, request.dashboard, instrument=instrument)
    finally:
        plan.run.unlock()


@contextlib.contextmanager
def instrument(trainer: Engine, run: RunDir) -> Iterator[None]:
    """Wraps the training loop (training.train's ``instrument``) in the three profilers; reports afterwards."""
    handlers = HandlersTimeProfiler()
    handlers.attach(trainer)
    cuda = torch.cuda.is_available()
    python = cProfile.Profile()
    with profile(activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]) as ops:
        python.enable()
        try:
            yield
        finally:
            python.disable()
    report_python(python, run)
    report_operators(ops, run, cuda)
    report_handlers(handlers, run)


def report_python(python: cProfile.Profile, run: RunDir) -> None:
    with atomic_path(run.profile) as tmp:
        python.dump_stats(tmp)
    out = io.StringIO()
    pstats.Stats(python, stream=out).sort_stats("cumulative").print_stats(TOP)
    table = out.getvalue().split("ncalls", 1)
    log.info(
        "Python hot spots (cProfile, by cumulative time):\n   ncalls%s", table[1] if len(table) > 1 else out.getvalue()
    )
    log.info("full Python profile: %s (snakeviz, or python -m pstats)", run.profile)


def report_operators(ops: profile, run: RunDir, cuda: bool) -> None:
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    log.info("top operators by self time (torch.profiler):\n%s", ops.key_averages().table(sort_by=sort, row_limit=TOP))
    with atomic_path(run.trace) as tmp:
        ops.export_chrome_trace(str(tmp))
    log.info("Chrome trace %s (chrome://tracing or ui.perfetto.dev)", run.trace)


def report_handlers(handlers: HandlersTimeProfiler, run: RunDir) -> None:
    results = handlers.get_results()
    with atomic_path(run.handler_times) as tmp, open(tmp, "w", newline="") as f:  # (its own writer needs pandas)
        header = ["handler", "event", "total_s", "min_s/index", "max_s/index", "mean_s", "std_s"]
        csv.writer(f).writerows([header, *results])
    *per_handler, total, processing, dataflow = results
    rows = [f"  {r[0]:<45} {r[1]:<22} {1000 * float(r[2]):10.3f}" for r in per_handler]
    log.info("time in the training engine's handlers (ms, whole run):\n%s", "\n".join(rows))
    log.info(
        "handlers %.1f ms in all | model steps %.1f ms | data loading %.1f ms | %s",
        1000 * float(total[2]),
        1000 * float(processing[2]),
        1000 * float(dataflow[2]),
        run.path / "handlers.csv",
    )
