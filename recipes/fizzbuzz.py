"""FizzBuzz as classification ("PyTorch Deep Learning Hands-On", chapter 2).

Each integer is written as 10 binary digits; the network learns which of four classes it
belongs to. It trains on 101..1023 and is tested on 1..100, numbers it has never seen.
"""

from dataclasses import dataclass, field

import torch
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Recipe, TensorData, TrainConfig, holdout_split, recipe_main

CLASSES = ("number", "fizz", "buzz", "fizzbuzz")
DIGITS = 10


@dataclass
class Settings:
    hidden: int = field(default=100, metadata={"help": "hidden units"})


def encode(numbers: torch.Tensor) -> torch.Tensor:
    """Binary digits, least significant first."""
    return ((numbers.unsqueeze(1) >> torch.arange(DIGITS)) & 1).float()


def label(numbers: torch.Tensor) -> torch.Tensor:
    return (numbers % 3 == 0).long() + 2 * (numbers % 5 == 0).long()  # 0 number, 1 fizz, 2 buzz, 3 fizzbuzz


def dataset(first: int, last: int) -> TensorData:
    numbers = torch.arange(first, last + 1)
    return TensorData(encode(numbers), label(numbers))


class FizBuzNet(nn.Module):
    """The book's network: one sigmoid hidden layer, four outputs."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(DIGITS, hidden)
        self.out = nn.Linear(hidden, len(CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.sigmoid(self.hidden(x)))


def build(config: TrainConfig, s: Settings) -> Parts:
    model = FizBuzNet(s.hidden)
    train, val = holdout_split(dataset(101, 1023), 0.1, config.seed)
    return Parts(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=config.lr),
        loss_fn=nn.CrossEntropyLoss(),
        train=train,
        val=val,
        test=dataset(1, 100),
        metrics=lambda: {"accuracy": Accuracy()},
    )


RECIPE = Recipe(
    summary="FizzBuzz as 4-class classification of 10-bit binary numbers.",
    dataset="integers 101-1023 (train), 1-100 (test)",
    build=build,
    settings=Settings,
    epochs=300,
    batch_size=64,
    lr=0.01,
)

if __name__ == "__main__":
    recipe_main(RECIPE)
