"""MNIST read row by row by a recurrent network ("Deep Learning with PyTorch", recurrent chapter).

Each 28x28 image is a sequence of 28 time steps of 28 pixels; the last hidden state is
classified by a linear layer. Here a 2-layer ``nn.RNN`` with 100 hidden units.
"""

from dataclasses import dataclass
from typing import Literal

import torch
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Preset, Recipe, TrainConfig, recipe_main, setting
from ignite_lab.kit.datasets import BUNDLED, MNIST_SOURCE, mnist_predictor, mnist_splits


@dataclass
class Settings:
    cell: Literal["rnn", "lstm", "gru"] = setting("rnn", "recurrent layer type")
    hidden: int = setting(100, "hidden units", min=1)
    layers: int = setting(2, "stacked recurrent layers", min=1)


class RowClassifier(nn.Module):
    def __init__(self, cell: str, hidden: int, layers: int) -> None:
        super().__init__()
        recurrent = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = recurrent(input_size=28, hidden_size=hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        rows = images.squeeze(1)  # (batch, 28 time steps, 28 pixels)
        outputs, _ = self.rnn(rows)
        return self.fc(outputs[:, -1])


def build(config: TrainConfig, s: Settings) -> Parts:
    model = RowClassifier(s.cell, s.hidden, s.layers)
    train, val, test = mnist_splits(config.data_dir, config.seed, bundled=BUNDLED / "mnist_sample")
    return Parts(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=config.lr),
        loss_fn=nn.CrossEntropyLoss(),
        train=train,
        val=val,
        test=test,
        metrics=lambda: {"accuracy": Accuracy()},
        predictor=mnist_predictor(),
        grad_clip=1.0,  # plain RNNs meet exploding gradients now and then
    )


RECIPE = Recipe(
    summary="MNIST rows as a sequence: 2-layer nn.RNN (100 units), last step -> linear.",
    dataset=MNIST_SOURCE,
    build=build,
    settings=Settings,
    epochs=5,
    batch_size=64,
    lr=1e-3,
    presets={
        "book": Preset(
            source="Deep Learning with PyTorch, recurrent chapter: 2-layer nn.RNN of 100, Adam 1e-3, batch 64",
            note="the default is the book's configuration; the chapter prints no test figure",
        )
    },
)


if __name__ == "__main__":
    recipe_main(RECIPE)
