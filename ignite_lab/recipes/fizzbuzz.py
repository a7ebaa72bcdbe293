"""FizzBuzz as classification ("PyTorch Deep Learning Hands-On", chapter 2).

Each integer is written as 10 binary digits; the network (10-100-4, sigmoid hidden layer) learns
which of four classes it belongs to.

The default differs from the book (``--preset book``) where we measured it better (REPRODUCE.md):
- data: train on 101..1023 and test on 1..100, numbers it never saw (book: a random 900/100 split of 0..999);
- loss: cross-entropy on logits (book: MSE between sigmoid outputs and one-hot targets);
- optimiser: Adam lr 0.01, 300 epochs, reshuffled batches (book: SGD lr 0.01, 500 epochs, fixed batches);
- bits: least significant first (book: most significant first; an input permutation, no effect on an MLP).
"""

from dataclasses import dataclass
from typing import Literal

import torch
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import (
    Book,
    Parts,
    Predictor,
    Preset,
    Recipe,
    TensorData,
    TrainConfig,
    UserError,
    holdout_split,
    recipe_main,
    setting,
)

CLASSES = ("number", "fizz", "buzz", "fizzbuzz")
DIGITS = 10


@dataclass
class Settings:
    hidden: int = setting(100, "hidden units", min=1)
    data: Literal["unseen", "book"] = setting(
        "unseen", "unseen: train 101..1023, test 1..100; book: random 900/100 of 0..999"
    )
    loss: Literal["cross_entropy", "mse"] = setting(
        "cross_entropy", "mse: sigmoid outputs against one-hot targets (the book)"
    )
    optimizer: Literal["adam", "sgd"] = setting("adam", "optimiser")


def encode(numbers: torch.Tensor, msb_first: bool) -> torch.Tensor:
    """Binary digits of each number."""
    bits = ((numbers.unsqueeze(1) >> torch.arange(DIGITS)) & 1).float()
    return bits.flip(1) if msb_first else bits


def label(numbers: torch.Tensor) -> torch.Tensor:
    return (numbers % 3 == 0).long() + 2 * (numbers % 5 == 0).long()  # 0 number, 1 fizz, 2 buzz, 3 fizzbuzz


def dataset(numbers: torch.Tensor, msb_first: bool = False) -> TensorData:
    return TensorData(encode(numbers, msb_first), label(numbers))


def splits(s: "Settings", seed: int) -> tuple[TensorData, TensorData, TensorData]:
    """(train, val, test). The book draws its 100 test numbers at random from 0..999 and has no validation."""
    if s.data == "book":
        order = torch.randperm(1000, generator=torch.Generator().manual_seed(seed))
        train = dataset(order[:900], msb_first=True)
        return train, train, dataset(order[900:], msb_first=True)
    train, val = holdout_split(dataset(torch.arange(101, 1024)), 0.1, seed)
    return train, val, dataset(torch.arange(1, 101))


class FizBuzNet(nn.Module):
    """The book's network: one sigmoid hidden layer, four outputs (through a sigmoid too, for the MSE loss)."""

    def __init__(self, hidden: int, sigmoid_output: bool) -> None:
        super().__init__()
        self.hidden = nn.Linear(DIGITS, hidden)
        self.out = nn.Linear(hidden, len(CLASSES))
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.out(torch.sigmoid(self.hidden(x)))
        return torch.sigmoid(out) if self.sigmoid_output else out


def mse_on_one_hot(y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(y_pred, nn.functional.one_hot(y, len(CLASSES)).float())


def read_numbers(inputs: list[str], s: Settings) -> tuple[list[str], torch.Tensor]:
    """Integers as the model's 10 binary digits (in the bit order its training data had)."""
    try:
        numbers = torch.tensor([int(text) for text in inputs])
    except ValueError:
        raise UserError(f"fizzbuzz takes integers, got {' '.join(inputs)!r}") from None
    if numbers.min() < 0 or numbers.max() >= 2**DIGITS:
        raise UserError(f"fizzbuzz numbers must be 0 to {2**DIGITS - 1}: 10 binary digits")
    return inputs, encode(numbers, msb_first=s.data == "book")


def build(config: TrainConfig, s: Settings) -> Parts:
    model = FizBuzNet(s.hidden, sigmoid_output=s.loss == "mse")
    train, val, test = splits(s, config.seed)
    optimizer = torch.optim.Adam if s.optimizer == "adam" else torch.optim.SGD
    return Parts(
        model=model,
        optimizer=optimizer(model.parameters(), lr=config.lr),
        loss_fn=mse_on_one_hot if s.loss == "mse" else nn.CrossEntropyLoss(),
        train=train,
        val=val,
        test=test,
        metrics=lambda: {"accuracy": Accuracy()},
        shuffle=s.data != "book",  # the book slices the same 64-row batches every epoch
        predictor=Predictor(lambda inputs: read_numbers(inputs, s), CLASSES, note="integers from 0 to 1023"),
    )


RECIPE = Recipe(
    summary="FizzBuzz as 4-class classification of 10-bit binary numbers.",
    dataset="integers 101-1023 (train), 1-100 (test); the book: a random 900/100 split of 0-999",
    build=build,
    settings=Settings,
    epochs=300,
    batch_size=64,
    lr=0.01,
    presets={
        "book": Preset(
            source="PyTorch Deep Learning Hands-On, ch. 2 (fizbuz.py): SGD and MSE on one-hot targets",
            flags={"epochs": 500, "batch_size": 64, "lr": 0.01, "test_checkpoint": "last"},
            settings={"data": "book", "loss": "mse", "optimizer": "sgd"},
            note="the book prints per-number predictions and no accuracy",
            book=Book(
                cites=("books/001_0223ea76c81a8105.txt:567-585", "books/001_0223ea76c81a8105.txt:590-605"),
                batch=64,
                epochs=500,
                optimizer="SGD",
                lr=0.01,
                tested="last",
                sizes={"hidden": 100, "loss": "mse"},
                data="integers 0-1023 as 10 bits; trained on 101-1023, tested on 1-100",
            ),
        )
    },
)

if __name__ == "__main__":
    recipe_main(RECIPE)
