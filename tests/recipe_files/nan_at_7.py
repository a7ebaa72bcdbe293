"""Loss turns NaN at the 7th training iteration (4 batches per epoch, so in epoch 2)."""

import torch
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Recipe, TensorData

calls = {"n": 0}


def loss_fn(y_pred, y):
    loss = nn.functional.cross_entropy(y_pred, y)
    if y_pred.requires_grad:  # count training steps only, not metric updates
        calls["n"] += 1
        if calls["n"] >= 7:
            return loss * float("nan")
    return loss


def build(config, settings):
    model = nn.Linear(2, 2)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    data = TensorData(x, (x[:, 0] > 0).long())
    return Parts(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        loss_fn=loss_fn,
        train=data,
        val=data,
        metrics=lambda: {"accuracy": Accuracy()},
    )


RECIPE = Recipe(summary="test", dataset="none", build=build, epochs=1, batch_size=8, lr=0.1)
