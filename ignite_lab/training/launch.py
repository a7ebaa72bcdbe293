"""One run on one process, several processes (``--nproc-per-node``), several machines, or under torchrun.

Everything goes through ``ignite.distributed.Parallel``: it spawns the processes (or picks up the
environment torchrun set), initialises torch.distributed (gloo on CPU, nccl on CUDA), and every
process runs the same ``train``. The run plan (run directory, final config, checkpoint) is settled
once: by this process when it is or spawns global rank 0, else by rank 0 after the process group is
up, and then broadcast, so every process trains the same plan.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import ignite.distributed as idist
import torch

from ignite_lab.core.config import DashboardConfig, LaunchConfig, TrainConfig
from ignite_lab.core.errors import RunFailed, UserError
from ignite_lab.core.recipe import Recipe
from ignite_lab.training.handlers import interrupting_before_training
from ignite_lab.training.logs import setup_logging
from ignite_lab.training.resume import RunPlan, settle

log = logging.getLogger(__name__)


@dataclass
class Request:
    """What the command line asked for, before the plan is settled."""

    recipe_ref: str  # a built-in name or a recipe file's absolute path: how other processes load the recipe
    config: TrainConfig
    given: set[str]
    launch: LaunchConfig
    dashboard: DashboardConfig


def under_torchrun() -> bool:
    return (
        all(name in os.environ for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE")) and int(os.environ["WORLD_SIZE"]) > 1
    )


def backend_for(launch: LaunchConfig) -> str:
    wants_cuda = launch.device.startswith("cuda") or (launch.device == "auto" and torch.cuda.is_available())
    return "nccl" if wants_cuda else "gloo"


def launch(recipe: Recipe, request: Request) -> Path | None:
    """Train here, or in N processes that each load the recipe again from ``request.recipe_ref``; the run
    directory (None in a process torchrun started, which trains one share)."""
    spec = request.launch
    if under_torchrun():
        with idist.Parallel(backend=backend_for(spec)) as parallel:
            parallel.run(worker, request, None)
        return None
    nproc = spec.nproc_per_node or 1
    if nproc == 1 and spec.nnodes == 1:
        from ignite_lab.training.loop import train

        set_threads(spec.threads, 1)
        with interrupting_before_training():
            plan = settle(recipe, request.config, spec, request.given, request.recipe_ref)
            try:
                train(recipe, plan, spec, request.dashboard)
            finally:
                plan.run.unlock()
        return plan.run.path
    if backend_for(spec) == "nccl" and nproc > torch.cuda.device_count():
        raise UserError(
            f"--nproc-per-node {nproc} needs {nproc} CUDA devices; this machine has {torch.cuda.device_count()}"
        )
    plan = settle(recipe, request.config, spec, request.given, request.recipe_ref) if spec.node_rank == 0 else None
    try:
        spawn(request, plan)
    finally:
        if plan is not None:
            plan.run.unlock()
    return plan.run.path if plan is not None else None


def set_threads(threads: int | None, processes: int) -> int:
    """--threads, else the user's OMP_NUM_THREADS (torch read it at start), else the cores shared by the processes."""
    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // processes))
    return torch.get_num_threads()


def spawn(request: Request, plan: RunPlan | None) -> None:
    spec = request.launch
    try:
        with idist.Parallel(
            backend=backend_for(spec),
            nproc_per_node=spec.nproc_per_node or 1,
            nnodes=spec.nnodes,
            node_rank=spec.node_rank,
            master_addr=spec.master_addr,
            master_port=spec.master_port,
        ) as parallel:
            parallel.run(worker, request, plan.to_dict() if plan else None)
    except Exception as exc:  # torch.multiprocessing reports a worker's exit as its own exception types
        if type(exc).__name__ in ("ProcessExitedException", "ProcessRaisedException"):
            detail = [line for line in str(exc).splitlines() if line.strip()]
            raise UserError(f"a training process failed: {detail[-1] if detail else exc!r}") from None
        raise


def worker(local_rank: int, request: Request, plan: dict | None) -> None:
    from ignite_lab.core.registry import load_recipe
    from ignite_lab.training.loop import train

    rank = idist.get_rank()
    setup_logging(logging.INFO if rank == 0 else logging.WARNING)
    set_threads(request.launch.threads, idist.get_nproc_per_node())
    try:
        recipe = load_recipe(request.recipe_ref)
        shared = share_plan(recipe, request, plan)
        try:
            train(recipe, shared, request.launch, request.dashboard)
        finally:
            shared.run.unlock()  # held by this process only where it settled the plan (torchrun's rank 0)
        # The DDP model (which holds the gloo process group and its threads) sits in reference cycles with the
        # engines. Free it now, while the interpreter is whole: left to interpreter exit, gloo's threads are
        # torn down mid-finalisation and the process dies with SIGABRT ("terminate called without an active
        # exception") after a run that succeeded.
        gc.collect()
    except UserError as exc:
        if exc.message and not isinstance(exc, RunFailed) and (rank == 0 or under_torchrun()):
            (log.info if exc.exit_code == 0 else log.error)("%s", exc.message)
        sys.exit(exc.exit_code)


def share_plan(recipe: Recipe, request: Request, plan: dict | None) -> RunPlan:
    """Rank 0's plan (settled here under torchrun), broadcast to every process; a refusal stops them all alike."""
    message: dict = {}
    if idist.get_rank() == 0:
        try:
            if plan is None:
                plan = settle(recipe, request.config, request.launch, request.given, request.recipe_ref).to_dict()
            message = {"plan": plan}
        except UserError as exc:
            message = {"stop": exc.message, "code": exc.exit_code}
    message = json.loads(idist.broadcast(json.dumps(message) if idist.get_rank() == 0 else "", src=0, safe_mode=True))
    if "stop" in message:
        error = UserError(message["stop"] if idist.get_rank() == 0 else "")
        error.exit_code = message["code"]  # the same exit status in every process (0, 2, 3)
        raise error
    return RunPlan.from_dict(message["plan"])
