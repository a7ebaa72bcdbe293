"""A multilayer perceptron on MNIST (Raschka et al., chapter 13): 784-32-16-10, Adam 1e-3.

The book reports 95.6% test accuracy after 20 epochs on the full dataset.
"""

from dataclasses import dataclass, field

import torch
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Recipe, TrainConfig, recipe_main
from ignite_lab.datasets import BUNDLED, MNIST_SOURCE, mnist_splits


@dataclass
class Settings:
    hidden1: int = field(default=32, metadata={"help": "units in the first hidden layer"})
    hidden2: int = field(default=16, metadata={"help": "units in the second hidden layer"})


def build(config: TrainConfig, s: Settings) -> Parts:
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(28 * 28, s.hidden1),
        nn.ReLU(),
        nn.Linear(s.hidden1, s.hidden2),
        nn.ReLU(),
        nn.Linear(s.hidden2, 10),
    )
    train, val, test = mnist_splits(config.data_dir, config.seed, bundled=BUNDLED / "mnist_sample")
    return Parts(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=config.lr),
        loss_fn=nn.CrossEntropyLoss(),
        train=train,
        val=val,
        test=test,
        metrics=lambda: {"accuracy": Accuracy()},
    )


RECIPE = Recipe(
    summary="MLP 784-32-16-10 on MNIST digits.",
    dataset=MNIST_SOURCE,
    build=build,
    settings=Settings,
    epochs=20,
    batch_size=64,
    lr=1e-3,
)

if __name__ == "__main__":
    recipe_main(RECIPE)
