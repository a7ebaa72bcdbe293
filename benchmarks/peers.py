"""The same training, four ways, for the overhead table: a hand loop, bare Ignite, ignite-lab, PyTorch Lightning.

Each builds the recipe's parts with ``build_parts`` (same model, optimizer, loss and seed), iterates the
same in-memory batches in the same order, and returns (seconds per iteration, per-iteration losses).
Lightning is a bench-only extra (``pip install -e .[bench]``); nothing in ignite_lab imports it.
"""

from __future__ import annotations

import contextlib
import os
import time

import torch
from ignite.engine import Engine, Events, create_supervised_trainer
from ignite.utils import manual_seed

from ignite_lab.core.config import DashboardConfig, LaunchConfig, TrainConfig
from ignite_lab.core.registry import load_recipe
from ignite_lab.training.loaders import build_loader, set_epoch
from ignite_lab.training.loop import build_parts, train
from ignite_lab.training.resume import settle
from ignite_lab.training.session import Process

CPU = torch.device("cpu")


def same_start(config: TrainConfig):
    """Parts, model and the first epoch's loader, seeded exactly as ignite-lab's first epoch is."""
    parts, model = build_parts(load_recipe(config.recipe), config, Process.alone(CPU))
    loader = build_loader(parts.train, config.batch_size, shuffle=True, seed=config.seed, device=CPU)
    set_epoch(loader, 0)
    manual_seed(config.seed + 1)  # what MidEpochState does at the start of epoch 1
    return parts, model, loader


def hand_loop(config: TrainConfig) -> tuple[float, list[float]]:
    """The minimal PyTorch loop: zero_grad, forward, loss, backward, step, loss.item()."""
    parts, model, loader = same_start(config)
    model.train()
    losses = []
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if i == config.limit_batches:
            break
        parts.optimizer.zero_grad()
        loss = parts.loss_fn(model(x), y)
        loss.backward()
        parts.optimizer.step()  # (build_parts registered the recipe's gradient clipping as a pre-step hook)
        losses.append(loss.item())
    return (time.perf_counter() - start) / len(losses), losses


def bare_ignite(config: TrainConfig) -> tuple[float, list[float]]:
    """Ignite's create_supervised_trainer with nothing attached but the loss recorder."""
    parts, model, loader = same_start(config)
    trainer = create_supervised_trainer(model, parts.optimizer, parts.loss_fn, device=CPU)
    losses: list[float] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output))
    trainer.run(loader, max_epochs=1, epoch_length=min(config.limit_batches, len(loader)))
    return trainer.state.times["EPOCH_COMPLETED"] / len(losses), losses


def ignite_lab_loop(config: TrainConfig, out: str) -> tuple[float, list[float]]:
    """ignite-lab's trainer with every standard handler (the progress bar forced on)."""
    losses: list[float] = []
    seconds: list[float] = []

    @contextlib.contextmanager
    def record(trainer: Engine, run):
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output["loss"]))
        trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seconds.append(e.state.times["EPOCH_COMPLETED"]))
        yield

    recipe, launch = load_recipe(config.recipe), LaunchConfig(device="cpu", output_dir=out)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        train(
            recipe, settle(recipe, config, launch, set(), config.recipe), launch, DashboardConfig(), instrument=record
        )
    return seconds[0] / len(losses), losses


def lightning_loop(config: TrainConfig) -> tuple[float, list[float]]:
    """PyTorch Lightning's default Trainer (progress bar on, logger and checkpoints off) on the same batches."""
    import pytorch_lightning as pl

    parts, model, loader = same_start(config)

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.losses = model, []

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = parts.loss_fn(self.net(x), y)
            self.losses.append(loss.item())
            return loss

        def configure_optimizers(self):
            return parts.optimizer

    module, clock = Module(), EpochClock(pl)
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=config.limit_batches,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        callbacks=[clock.callback],
    )
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull), contextlib.redirect_stdout(devnull):
        trainer.fit(module, train_dataloaders=loader)
    return clock.seconds / len(module.losses), module.losses


class EpochClock:
    """A Lightning callback timing the training epoch from its first batch to its end, as Ignite's epoch time does."""

    def __init__(self, pl) -> None:
        clock = self

        class Callback(pl.Callback):
            def on_train_epoch_start(self, trainer, module) -> None:
                clock.start = time.perf_counter()

            def on_train_epoch_end(self, trainer, module) -> None:
                clock.seconds = time.perf_counter() - clock.start

        self.callback, self.start, self.seconds = Callback(), 0.0, 0.0
