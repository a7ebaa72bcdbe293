"""One run on one process, several processes (``--nproc-per-node``), several machines, or under torchrun.

Everything goes through ``ignite.distributed.Parallel``: it spawns the processes (or picks up
the environment torchrun set), initialises torch.distributed (gloo on CPU, nccl on CUDA), and
every process runs the same ``train``.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Collection

import ignite.distributed as idist
import torch

from ignite_lab.config import RunConfig
from ignite_lab.errors import UserError
from ignite_lab.recipe import Recipe

log = logging.getLogger(__name__)


def under_torchrun() -> bool:
    return (
        all(name in os.environ for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE")) and int(os.environ["WORLD_SIZE"]) > 1
    )


def backend_for(config: RunConfig) -> str:
    wants_cuda = config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available())
    return "nccl" if wants_cuda else "gloo"


def run_training(recipe: Recipe, recipe_ref: str, config: RunConfig, explicit: Collection[str]) -> None:
    """Train here, or in N processes that each load the recipe again from ``recipe_ref`` (a name or a file)."""
    nproc = config.nproc_per_node or 1
    if under_torchrun():
        with idist.Parallel(backend=backend_for(config)) as parallel:
            parallel.run(_worker, recipe_ref, config, set(explicit))
        return
    if nproc == 1 and config.nnodes == 1:
        from ignite_lab.training import train

        train(recipe, config, explicit)
        return
    if backend_for(config) == "nccl" and nproc > torch.cuda.device_count():
        raise UserError(
            f"--nproc-per-node {nproc} needs {nproc} CUDA devices; this machine has {torch.cuda.device_count()}"
        )
    try:
        with idist.Parallel(
            backend=backend_for(config),
            nproc_per_node=nproc,
            nnodes=config.nnodes,
            node_rank=config.node_rank,
            master_addr=config.master_addr,
            master_port=config.master_port,
        ) as parallel:
            parallel.run(_worker, recipe_ref, config, set(explicit))
    except Exception as exc:  # torch.multiprocessing reports a worker's exit as its own exception types
        if type(exc).__name__ in ("ProcessExitedException", "ProcessRaisedException"):
            detail = [line for line in str(exc).splitlines() if line.strip()]
            raise UserError(f"a training process failed: {detail[-1] if detail else exc!r}") from None
        raise


def _worker(local_rank: int, recipe_ref: str, config: RunConfig, explicit: set[str]) -> None:
    from ignite_lab.cli import setup_logging
    from ignite_lab.registry import load_recipe
    from ignite_lab.training import train

    rank = idist.get_rank()
    setup_logging(logging.INFO if rank == 0 else logging.WARNING)
    per_process = max(1, (os.cpu_count() or 1) // idist.get_nproc_per_node())
    torch.set_num_threads(per_process)  # N processes share the cores instead of each taking all of them
    try:
        train(load_recipe(recipe_ref), config, explicit)
        # The DDP model (which holds the gloo process group and its threads) sits in reference cycles with the
        # engines. Free it now, while the interpreter is whole: left to interpreter exit, gloo's threads are
        # torn down mid-finalisation and the process dies with SIGABRT ("terminate called without an active
        # exception") after a run that succeeded.
        gc.collect()
    except UserError as exc:
        if rank == 0 or under_torchrun():
            log.error("%s", exc.message)
        sys.exit(exc.exit_code)
