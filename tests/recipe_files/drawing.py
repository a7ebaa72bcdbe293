"""A recipe whose own handler publishes a picture and a text sample every epoch."""

import numpy as np
import torch
from ignite.engine import Events
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Recipe, RunView, TensorData


def handlers(run: RunView) -> None:
    @run.trainer.on(Events.EPOCH_COMPLETED)
    def draw(trainer) -> None:
        epoch = trainer.state.epoch
        grid = np.zeros((32, 64, 3), dtype=np.uint8)
        grid[:, : 8 * epoch] = (255, 128, 0)
        run.publish.image("grid", grid, epoch=epoch)
        run.publish.text("sample", f"epoch {epoch} says hello", epoch=epoch)


def build(config, settings):
    model = nn.Linear(2, 2)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    data = TensorData(x, (x[:, 0] > 0).long())
    return Parts(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        loss_fn=nn.CrossEntropyLoss(),
        train=data,
        val=data,
        test=data,
        metrics=lambda: {"accuracy": Accuracy()},
        handlers=handlers,
    )


RECIPE = Recipe(summary="test", dataset="none", build=build, epochs=1, batch_size=8, lr=0.1)
