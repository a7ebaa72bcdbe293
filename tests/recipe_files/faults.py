"""A small classifier that signals its own process at exact points, for the fault-injection campaign.

``IGNITE_LAB_FAULTS`` names a JSON file holding a list of faults ``[phase, epoch, batch, signal]``
(phase: train, val or test; epoch: the trainer's epoch, ignored for test; batch: 1-based within the
epoch's training batches or the evaluation pass; signal: SIGINT, SIGTERM, SIGUSR1 or SIGKILL). The
first fault is taken off the list and written back before its signal is sent, so each fires once
however often the job is re-queued.
``IGNITE_LAB_STEP_DELAY`` (seconds, default 0) slows every forward pass, for kills at random times.
"""

import json
import os
import signal
import time
from pathlib import Path

import torch
from ignite.engine import Events
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Preset, Recipe, RunView, TensorData

PHASE = {"name": "train", "epoch": 0, "batch": 0}


def next_fault() -> list | None:
    path = os.environ.get("IGNITE_LAB_FAULTS")
    if not path or not Path(path).is_file():
        return None
    faults = json.loads(Path(path).read_text())
    return faults[0] if faults else None


def maybe_fire() -> None:
    fault = next_fault()
    if fault is None:
        return
    phase, epoch, batch, name = fault
    if phase != PHASE["name"] or batch != PHASE["batch"] or (phase != "test" and epoch != PHASE["epoch"]):
        return
    path = Path(os.environ["IGNITE_LAB_FAULTS"])
    rest = json.loads(path.read_text())[1:]
    tmp = path.with_suffix(".next")
    tmp.write_text(json.dumps(rest))
    os.replace(tmp, path)  # consumed before the signal, so a re-queued job does not meet it again
    os.kill(os.getpid(), getattr(signal, name))


class Probe(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
        self.delay = float(os.environ.get("IGNITE_LAB_STEP_DELAY", "0"))

    def forward(self, x):
        if PHASE["name"] != "train":  # a training batch's place is set from the trainer's counters
            PHASE["batch"] += 1
        if self.delay:
            time.sleep(self.delay)
        out = self.net(x)
        maybe_fire()
        return out


def data(n: int, seed: int) -> TensorData:
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))
    return TensorData(x, (x[:, 0] > 0).long() + (x[:, 1] > 1).long())


def track_phases(run: RunView) -> None:
    def enter(name: str):
        def handler(_=None):
            PHASE.update(name=name, epoch=run.trainer.state.epoch, batch=0)

        return handler

    def training_batch(trainer):
        length = trainer.state.epoch_length
        PHASE.update(name="train", epoch=trainer.state.epoch, batch=(trainer.state.iteration - 1) % length + 1)

    run.trainer.add_event_handler(Events.ITERATION_STARTED, training_batch)
    run.evaluator.add_event_handler(Events.STARTED, enter("val"))
    run.evaluator.add_event_handler(Events.COMPLETED, enter("train"))
    run.trainer.add_event_handler(Events.COMPLETED, enter("test"))  # the test pass comes after training
    run.trainer.add_event_handler(Events.TERMINATE, enter("test"))


def build(config, settings):
    model = Probe()
    return Parts(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=config.lr),
        loss_fn=nn.CrossEntropyLoss(),
        train=data(100, 0),
        val=data(40, 1),
        test=data(40, 2),
        metrics=lambda: {"accuracy": Accuracy()},
        handlers=track_phases,
    )


RECIPE = Recipe(
    summary="fault probe",
    dataset="random",
    build=build,
    epochs=3,
    batch_size=10,
    lr=0.01,
    presets={  # a preset that names its lr and decays it, as the books' presets do
        "decay": Preset(source="test", flags={"lr": 0.02, "lr_schedule": "exponential", "lr_gamma": 0.5})
    },
)
