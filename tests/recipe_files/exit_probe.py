"""XOR points; at exit, each process notes whether its model (held by DDP with the process group) still lives."""

import atexit
import os
import weakref

import ignite.distributed as idist
import torch
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Recipe, TensorData


def build(config, settings):
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(0))
    data = TensorData(x, (x[:, 0] * x[:, 1] >= 0).long())
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    model_ref, note = weakref.ref(model), os.path.join(os.environ["EXIT_PROBE_DIR"], f"rank{idist.get_rank()}")
    atexit.register(lambda: open(note, "w").write("alive" if model_ref() is not None else "freed"))
    return Parts(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=config.lr),
        loss_fn=nn.CrossEntropyLoss(),
        train=data,
        val=data,
        metrics=lambda: {"accuracy": Accuracy()},
    )


RECIPE = Recipe(summary="test", dataset="random", build=build, epochs=1, batch_size=10, lr=0.01)
