"""A multilayer perceptron on MNIST (Raschka et al., chapter 13): 784-32-16-10 ReLU, Adam lr 0.001, batch 64.

Two configurations from the chapter are presets: ``book`` (the plain PyTorch loop: 20 epochs on all
60,000 training images, pixels in [0, 1], the last epoch's model tested; the book prints 0.9645) and
``lightning`` (the Lightning version: 10 epochs, a 55,000/5,000 ``random_split`` with seed 1, an
unshuffled training loader, the best validation checkpoint tested; the book prints 0.94996).

The default differs from ``book`` where we measured it better (REPRODUCE.md): pixels normalized with
MNIST's mean and std, and 5,000 training images held out to pick the best epoch.
"""

from dataclasses import dataclass
from typing import Literal

import torch
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Preset, Recipe, TensorData, TrainConfig, holdout_split, recipe_main, setting
from ignite_lab.kit.datasets import BUNDLED, MNIST_MEAN, MNIST_SOURCE, MNIST_STD, Normalize, load_mnist, mnist_predictor


@dataclass
class Settings:
    hidden1: int = setting(32, "units in the first hidden layer", min=1)
    hidden2: int = setting(16, "units in the second hidden layer", min=1)
    normalize: bool = setting(True, "standardize pixels (false: ToTensor's [0, 1])")
    validation: Literal["holdout", "lightning", "none"] = setting(
        "holdout", "holdout: 5,000 by seed; lightning: random_split(seed 1); none: all 60k train"
    )


def splits(config: TrainConfig, s: Settings) -> tuple[TensorData, TensorData, TensorData]:
    """(train, val, test) of (B, 1, 28, 28) float batches. ``none`` validates on the training images (monitoring)."""
    source = config.data_dir or BUNDLED / "mnist_sample"

    def prepare(split: str) -> TensorData:
        images, labels = load_mnist(source, split, download=bool(config.data_dir))
        return TensorData(images.unsqueeze(1), labels)  # uint8, normalized per batch

    normalize = normalizer(s)
    train, val = split_train(prepare("train"), s, config.seed)
    return train.with_transform(normalize), val.with_transform(normalize), prepare("test").with_transform(normalize)


def normalizer(s: Settings) -> Normalize:
    """The pixels as the chapter's ToTensor gives them ([0, 1]) or standardized."""
    return Normalize(((MNIST_MEAN,), (MNIST_STD,)) if s.normalize else ((0.0,), (1.0,)))


def split_train(train: TensorData, s: Settings, seed: int) -> tuple[TensorData, TensorData]:
    """(train, val) of the training images: a seeded twelfth, Lightning's random_split, or none."""
    if s.validation == "none":
        return train, train
    if s.validation == "lightning":  # random_split(lengths=[55000, 5000], seed 1): the last twelfth of randperm
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(1))
        n_val = round(len(train) / 12)
        return train.subset(order[:-n_val]), train.subset(order[-n_val:])
    return holdout_split(train, 1 / 12, seed)  # 5,000 of 60,000


def build(config: TrainConfig, s: Settings) -> Parts:
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(28 * 28, s.hidden1),
        nn.ReLU(),
        nn.Linear(s.hidden1, s.hidden2),
        nn.ReLU(),
        nn.Linear(s.hidden2, 10),
    )
    train, val, test = splits(config, s)
    return Parts(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=config.lr),
        loss_fn=nn.CrossEntropyLoss(),
        train=train,
        val=val,
        test=test,
        metrics=lambda: {"accuracy": Accuracy()},
        shuffle=s.validation != "lightning",  # the chapter's LightningDataModule does not shuffle
        predictor=mnist_predictor(normalizer(s)),
    )


RECIPE = Recipe(
    summary="MLP 784-32-16-10 on MNIST digits.",
    dataset=MNIST_SOURCE,
    build=build,
    settings=Settings,
    epochs=20,
    batch_size=64,
    lr=1e-3,
    presets={
        "book": Preset(
            source="Raschka et al., ch. 13, plain PyTorch: 20 epochs on all 60k, ToTensor pixels, last model tested",
            flags={"epochs": 20, "batch_size": 64, "lr": 1e-3, "test_checkpoint": "last"},
            settings={"normalize": False, "validation": "none"},
            figures={"test accuracy": 0.9645},
        ),
        "lightning": Preset(
            source="Raschka et al., ch. 13, PyTorch Lightning: 10 epochs, 55k/5k random_split(seed 1), no shuffle",
            flags={"epochs": 10, "batch_size": 64, "lr": 1e-3, "test_checkpoint": "best"},
            settings={"normalize": False, "validation": "lightning"},
            figures={"test accuracy": 0.94996},
        ),
    },
)

if __name__ == "__main__":
    recipe_main(RECIPE)
