"""MNIST read row by row by a one-layer LSTM of 100 units ("Deep Learning with PyTorch", recurrent chapter).

The same row classifier as ``mnist_rnn``, with an ``nn.LSTM`` cell.
"""

from dataclasses import dataclass, field
from typing import Literal

from ignite_lab import Recipe, recipe_main
from recipes.mnist_rnn import build


@dataclass
class Settings:
    cell: Literal["rnn", "lstm", "gru"] = field(default="lstm", metadata={"help": "recurrent layer type"})
    hidden: int = field(default=100, metadata={"help": "hidden units"})
    layers: int = field(default=1, metadata={"help": "stacked recurrent layers"})


RECIPE = Recipe(
    name="mnist_lstm",
    summary="MNIST rows as a sequence: 1-layer nn.LSTM (100 units), last step -> linear.",
    dataset="MNIST (bundled 12k sample; --data-dir for all 70k)",
    build=build,
    settings=Settings,
    epochs=5,
    batch_size=64,
    lr=1e-3,
)

if __name__ == "__main__":
    recipe_main(RECIPE)
