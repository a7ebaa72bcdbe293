"""The XOR problem (Raschka et al., "Machine Learning with PyTorch and Scikit-Learn", chapter 13).

200 points uniform in [-1, 1]^2, label 1 where x1 * x2 >= 0: no straight line separates
the classes, so the model needs hidden layers.
"""

from dataclasses import dataclass, field

import torch
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Recipe, TensorData, TrainConfig, recipe_main


@dataclass
class Settings:
    hidden: int = field(default=4, metadata={"help": "units in each of the two hidden layers"})
    points: int = field(default=200, metadata={"help": "points drawn; half train, half validation"})


def xor_data(points: int, seed: int) -> TensorData:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(points, 2, generator=generator) * 2 - 1
    y = (x[:, 0] * x[:, 1] >= 0).float()
    return TensorData(x, y)


def binary_accuracy() -> Accuracy:
    """Accuracy of one logit per sample: positive means class 1."""
    return Accuracy(output_transform=lambda out: ((out["y_pred"].squeeze(1) > 0).long(), out["y"].long()))


def build(config: TrainConfig, s: Settings) -> Parts:
    model = nn.Sequential(
        nn.Linear(2, s.hidden),
        nn.ReLU(),
        nn.Linear(s.hidden, s.hidden),
        nn.ReLU(),
        nn.Linear(s.hidden, 1),
    )
    data = xor_data(s.points, config.seed)
    half = s.points // 2
    train, val = data.subset(torch.arange(half)), data.subset(torch.arange(half, s.points))
    bce = nn.BCEWithLogitsLoss()
    return Parts(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=config.lr),
        loss_fn=lambda y_pred, y: bce(y_pred.squeeze(1), y),
        train=train,
        val=val,
        metrics=lambda: {"accuracy": binary_accuracy()},
    )


RECIPE = Recipe(
    summary="XOR of two uniform coordinates, an MLP with two hidden layers.",
    dataset="200 generated points (100 train / 100 validation)",
    build=build,
    settings=Settings,
    epochs=200,
    batch_size=2,
    lr=0.015,
)

if __name__ == "__main__":
    recipe_main(RECIPE)
