"""The XOR problem (Raschka et al., "Machine Learning with PyTorch and Scikit-Learn", chapter 13).

200 points uniform in [-1, 1]^2, label 1 where x1 * x2 >= 0: no straight line separates the classes,
so the model needs hidden layers. ``--set hidden_layers=0..4`` is the chapter's capacity experiment
(0 layers cannot learn XOR); ``--set noise=0.07`` makes the first layer the chapter's custom
``NoisyLinear`` (Gaussian noise on its input while training). Every run publishes the decision
regions over the validation points (media/decision_regions.png).

The default differs from the book (``--preset book``) only in the points: drawn from torch's generator
with the run's seed (the book: numpy's global generator seeded with 1). The book's Sigmoid + BCELoss is
computed here as BCEWithLogitsLoss on the last layer's output: the same function, numerically stable.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from ignite.engine import Events
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Book, Parts, Preset, Recipe, RunView, TensorData, TrainConfig, recipe_main, setting


@dataclass
class Settings:
    hidden: int = setting(4, "units in each hidden layer", min=1)
    hidden_layers: int = setting(2, "hidden layers, 0 to 4 (the chapter's capacity test)", min=0, max=4)
    noise: float = setting(0.0, "std of NoisyLinear's input noise in layer 1 (0: nn.Linear)", min=0)
    points: int = setting(200, "points drawn; half train, half validation", min=4)
    data: Literal["torch", "book"] = setting("torch", "book: numpy's generator, seed 1")


class NoisyLinear(nn.Module):
    """The chapter's custom layer: a linear map whose input gets Gaussian noise while training."""

    def __init__(self, inputs: int, outputs: int, noise_stddev: float = 0.1) -> None:
        super().__init__()
        self.w = nn.Parameter(nn.init.xavier_uniform_(torch.empty(inputs, outputs)))
        self.b = nn.Parameter(torch.zeros(outputs))
        self.noise_stddev = noise_stddev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            x = x + torch.normal(0.0, self.noise_stddev, x.shape, device=x.device)
        return x @ self.w + self.b


def mlp(s: Settings) -> nn.Sequential:
    """``hidden_layers`` ReLU layers of ``hidden`` units (the first a NoisyLinear if ``noise``), then one logit."""
    layers: list[nn.Module] = []
    width = 2
    for i in range(s.hidden_layers):
        layers += [
            NoisyLinear(width, s.hidden, s.noise) if i == 0 and s.noise else nn.Linear(width, s.hidden),
            nn.ReLU(),
        ]
        width = s.hidden
    return nn.Sequential(*layers, nn.Linear(width, 1))


def xor_data(points: int, seed: int, source: str) -> TensorData:
    if source == "book":
        x = torch.tensor(np.random.RandomState(1).uniform(low=-1, high=1, size=(points, 2)), dtype=torch.float32)
    else:
        x = torch.rand(points, 2, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return TensorData(x, (x[:, 0] * x[:, 1] >= 0).float())


def binary_accuracy() -> Accuracy:
    """Accuracy of one logit per sample: positive means class 1."""
    return Accuracy(output_transform=lambda out: ((out["y_pred"].squeeze(1) > 0).long(), out["y"].long()))


def decision_regions(model: nn.Module, x: torch.Tensor, y: torch.Tensor, title: str) -> np.ndarray:
    """The model's class over the plane, with the points on top (the chapter's plot_decision_regions)."""
    from ignite_lab.outputs.plots import figure_to_array, pyplot

    plt = pyplot()

    grid = torch.stack(torch.meshgrid(torch.linspace(-1, 1, 200), torch.linspace(-1, 1, 200), indexing="xy"), -1)
    model.eval()
    with torch.inference_mode():
        regions = (model(grid.view(-1, 2).to(next(model.parameters()).device)) > 0).view(200, 200).cpu()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.contourf(grid[..., 0], grid[..., 1], regions.float(), levels=[-0.5, 0.5, 1.5], colors=["#9ecae1", "#fdae6b"])
    for label, marker in ((0, "o"), (1, "<")):
        ax.plot(*x[y == label].T, marker, alpha=0.75, markersize=5, linestyle="none", label=f"class {label}")
    ax.set(xlabel="$x_1$", ylabel="$x_2$", title=title)
    ax.legend(loc="lower left", fontsize=7)
    return figure_to_array(fig)


def build(config: TrainConfig, s: Settings) -> Parts:
    model = mlp(s)
    data = xor_data(s.points, config.seed, s.data)
    half = s.points // 2
    train, val = data.subset(torch.arange(half)), data.subset(torch.arange(half, s.points))
    bce = nn.BCEWithLogitsLoss()

    def handlers(run: RunView) -> None:
        title = f"{s.hidden_layers} hidden layer(s){', NoisyLinear' if s.noise else ''}"

        @run.trainer.on(Events.COMPLETED)
        def draw(trainer) -> None:
            run.publish.image("decision_regions", decision_regions(run.model, *val.tensors, title), title=title)

    return Parts(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=config.lr),
        loss_fn=lambda y_pred, y: bce(y_pred.squeeze(1), y),
        train=train,
        val=val,
        metrics=lambda: {"accuracy": binary_accuracy()},
        handlers=handlers,
    )


RECIPE = Recipe(
    summary="XOR of two uniform coordinates: an MLP of 0-4 hidden layers, optionally noisy (NoisyLinear).",
    dataset="200 generated points (100 train / 100 validation)",
    build=build,
    settings=Settings,
    epochs=200,
    batch_size=2,
    lr=0.015,
    presets={
        "book": Preset(
            source="Raschka et al., ch. 13: 2-4-4-1 ReLU MLP, SGD lr 0.015, batch 2, 200 epochs",
            flags={"epochs": 200, "batch_size": 2, "lr": 0.015, "test_checkpoint": "last"},
            settings={"data": "book", "hidden_layers": 2, "hidden": 4},
            figures={"train accuracy": 1.0, "val accuracy": 0.95},
            note="read off the chapter's accuracy curves after 200 epochs",
            book=Book(
                cites=(
                    "books/002_a60626adb0267058.txt:355-365",
                    "books/002_a60626adb0267058.txt:423-435",
                    "books/002_a60626adb0267058.txt:533-551",
                ),
                batch=2,
                epochs=200,
                optimizer="SGD",
                lr=0.015,
                tested="last",
                sizes={"hidden_layers": 2, "hidden": 4},
                data="200 points from numpy seed 1: 100 train, 100 validation",
            ),
        ),
        "noisy": Preset(
            source="Raschka et al., ch. 13, 'Writing custom layers': NoisyLinear(2, 4, 0.07) as the first layer",
            flags={"epochs": 200, "batch_size": 2, "lr": 0.015, "test_checkpoint": "last"},
            settings={"data": "book", "hidden_layers": 2, "hidden": 4, "noise": 0.07},
            book=Book(
                cites=(
                    "books/002_a60626adb0267058.txt:593-605",
                    "books/002_a60626adb0267058.txt:815-830",
                    "books/002_a60626adb0267058.txt:889",
                ),
                batch=2,
                epochs=200,
                optimizer="SGD",
                lr=0.015,
                tested="last",
                sizes={"hidden_layers": 2, "hidden": 4, "noise": 0.07},
                data="200 points from numpy seed 1: 100 train, 100 validation",
            ),
        ),
    },
)

if __name__ == "__main__":
    recipe_main(RECIPE)
