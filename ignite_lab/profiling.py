"""``ignite-lab profile``: a few real training iterations under torch.profiler, plus what each of the
toolkit's own handlers costs per event (Ignite's HandlersTimeProfiler)."""

from __future__ import annotations

import contextlib
import csv
import logging
from collections.abc import Iterator

import torch
from ignite.engine import Engine
from ignite.handlers import HandlersTimeProfiler
from torch.profiler import ProfilerActivity, profile

from ignite_lab.recipe import Recipe
from ignite_lab.resume import settle
from ignite_lab.rundir import RunDir

log = logging.getLogger(__name__)


def profile_recipe(recipe: Recipe, request, top: int = 15) -> None:
    """Train ``request`` (a launch.Request of a few iterations) in a new run directory, profiled."""
    from ignite_lab.training import train

    @contextlib.contextmanager
    def instrument(trainer: Engine, run: RunDir) -> Iterator[None]:
        handlers = HandlersTimeProfiler()
        handlers.attach(trainer)
        cuda = torch.cuda.is_available()
        with profile(activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]) as prof:
            yield
        sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
        log.info("top operators by self time:\n%s", prof.key_averages().table(sort_by=sort, row_limit=top))
        prof.export_chrome_trace(str(run.path / "trace.json"))
        results = handlers.get_results()
        with open(run.path / "handlers.csv", "w", newline="") as f:  # (HandlersTimeProfiler's own writer needs pandas)
            header = ["handler", "event", "total_s", "min_s/index", "max_s/index", "mean_s", "std_s"]
            csv.writer(f).writerows([header, *results])
        *per_handler, total, processing, dataflow = results
        rows = [f"  {r[0]:<45} {r[1]:<22} {1000 * float(r[2]):10.3f}" for r in per_handler]
        log.info("time in the training engine's handlers (ms, whole run):\n%s", "\n".join(rows))
        log.info(
            "handlers %.1f ms in all | model steps %.1f ms | data loading %.1f ms",
            1000 * float(total[2]),
            1000 * float(processing[2]),
            1000 * float(dataflow[2]),
        )
        log.info("Chrome trace %s (chrome://tracing or ui.perfetto.dev); %s", run.path / "trace.json", f.name)

    plan = settle(recipe, request.config, request.launch, set(), request.recipe_ref)
    train(recipe, plan, request.launch, request.dashboard, instrument=instrument)
