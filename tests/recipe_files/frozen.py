"""A model whose optimizer never changes it: validation cannot improve."""

import torch
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Recipe, TensorData


def build(config, settings):
    model = nn.Linear(2, 2)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    data = TensorData(x, (x[:, 0] > 0).long())
    return Parts(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.0),
        loss_fn=nn.CrossEntropyLoss(),
        train=data,
        val=data,
        metrics=lambda: {"accuracy": Accuracy()},
    )


RECIPE = Recipe(summary="test", dataset="none", build=build, epochs=1, batch_size=8, lr=0.1)
