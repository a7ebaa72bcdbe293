"""The SimpleCNN of "PyTorch Deep Learning Hands-On" (computer vision chapter) on CIFAR-10.

conv 3->6 (5x5), max pool, conv 6->16 (5x5), max pool, fully connected 120-84-10; cross
entropy, SGD lr 0.001 momentum 0.9 with batches of 4, images normalized to [-1, 1].
"""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Recipe, TrainConfig, recipe_main
from ignite_lab.datasets import cifar10_splits


@dataclass
class Settings:
    augment: bool = field(default=False, metadata={"help": "random flips and 4-pixel-padded crops while training"})
    val_size: int = field(default=5000, metadata={"help": "training images held out for validation"})


class SimpleCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def build(config: TrainConfig, s: Settings) -> Parts:
    model = SimpleCNN()
    train, val, test = cifar10_splits(config.data_dir, config.seed, s.augment, s.val_size)
    return Parts(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9),
        loss_fn=nn.CrossEntropyLoss(),
        train=train,
        val=val,
        test=test,
        metrics=lambda: {"accuracy": Accuracy()},
    )


RECIPE = Recipe(
    summary="The book's SimpleCNN (conv 6-16, fc 120-84-10) on CIFAR-10.",
    dataset="CIFAR-10 (--data-dir: python batches or train/<class>/ image folders)",
    build=build,
    settings=Settings,
    epochs=2,
    batch_size=4,
    lr=1e-3,
)

if __name__ == "__main__":
    recipe_main(RECIPE)
