"""What one process's run is made of: its place among the processes, its loaders, and the ``Session`` that
holds the objects owning the run's state, so each phase of the loop takes the session, not copies of its parts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ignite_lab.core.config import LaunchConfig, TrainConfig
from ignite_lab.core.recipe import Parts, Recipe
from ignite_lab.training.engines import Engines
from ignite_lab.training.precision import Precision
from ignite_lab.training.resume import RunPlan
from ignite_lab.training.rundir import RunDir

if TYPE_CHECKING:
    from ignite_lab.outputs.dashboard import LiveSinks


@dataclass
class Process:
    """This process's place in the run: its device, the world size and rank, and its precision."""

    device: torch.device
    world: int
    rank: int
    precision: Precision

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def alone(cls, device: torch.device) -> Process:
        """A single full-precision process on ``device``: how eval, predict, export and benchmarks rebuild a model."""
        return cls(device, world=1, rank=0, precision=Precision("32", device.type))


@dataclass
class Loaders:
    train: Iterable
    val: Iterable
    test: Iterable | None
    train_length: int | None
    val_length: int | None
    test_length: int | None

    @property
    def iterations_per_epoch(self) -> int:
        return self.train_length or 1


@dataclass
class Session:
    """One process's run as built: the recipe and its parts, the plan, this process, its loaders and engines,
    and the live sinks (Visdom, TensorBoard) on rank 0."""

    recipe: Recipe
    plan: RunPlan
    launch: LaunchConfig
    process: Process
    parts: Parts
    model: torch.nn.Module  # parts.model, or its DistributedDataParallel wrapper
    loaders: Loaders
    engines: Engines
    live: LiveSinks | None

    @property
    def config(self) -> TrainConfig:
        return self.plan.config

    @property
    def run(self) -> RunDir:
        return self.plan.run

    @property
    def trainer(self) -> Any:
        return self.engines.trainer
