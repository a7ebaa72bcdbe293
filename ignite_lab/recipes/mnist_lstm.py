"""MNIST read row by row by a one-layer LSTM of 100 units ("Deep Learning with PyTorch", recurrent chapter).

Each 28x28 image is a sequence of 28 time steps of 28 pixels; the LSTM's last output is
classified by a linear layer.
"""

from dataclasses import dataclass

import torch
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Preset, Recipe, TrainConfig, recipe_main, setting
from ignite_lab.kit.datasets import BUNDLED, MNIST_SOURCE, mnist_predictor, mnist_splits


@dataclass
class Settings:
    hidden: int = setting(100, "hidden units", min=1)
    layers: int = setting(1, "stacked LSTM layers", min=1)


class RowLSTM(nn.Module):
    def __init__(self, hidden: int, layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size=28, hidden_size=hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.lstm(images.squeeze(1))  # (batch, 28 rows as time steps, 28 pixels)
        return self.fc(outputs[:, -1])


def build(config: TrainConfig, s: Settings) -> Parts:
    model = RowLSTM(s.hidden, s.layers)
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
    )


RECIPE = Recipe(
    summary="MNIST rows as a sequence: 1-layer nn.LSTM (100 units), last step -> linear.",
    dataset=MNIST_SOURCE,
    build=build,
    settings=Settings,
    epochs=5,
    batch_size=64,
    lr=1e-3,
    presets={
        "book": Preset(
            source="Deep Learning with PyTorch, recurrent chapter: 1-layer nn.LSTM of 100, Adam 1e-3, batch 64",
            note="the default is the book's configuration; the chapter prints no test figure",
        )
    },
)


if __name__ == "__main__":
    recipe_main(RECIPE)
