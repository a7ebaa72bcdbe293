"""10 batches an epoch, a little slow, with dropout (random state) and shuffling (data order)."""

import time

import torch
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Recipe, TensorData


class Slow(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))

    def forward(self, x):
        time.sleep(0.03)
        return self.net(x)


def build(config, settings):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 4, generator=g)
    data = TensorData(x, (x[:, 0] > 0).long() + (x[:, 1] > 1).long())
    model = Slow()
    return Parts(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=config.lr),
        loss_fn=nn.CrossEntropyLoss(),
        train=data,
        val=data.subset(torch.arange(20)),
        metrics=lambda: {"accuracy": Accuracy()},
    )


RECIPE = Recipe(summary="test", dataset="random", build=build, epochs=3, batch_size=10, lr=0.01)
