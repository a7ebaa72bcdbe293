"""Your own photos, no code: a folder per class trains an image classifier.

``--data-dir DIR`` in torchvision's ImageFolder layout: ``DIR/<class>/*`` (any format PIL reads, any size
and mode), or ``DIR/train/<class>`` with ``DIR/val/`` and/or ``DIR/test/`` beside it. Missing splits are
cut from the training images by seed, class by class. Every image is resized to ``--set size=`` pixels
square and kept in memory as uint8 while that fits in ``--set memory_mb=``; beyond it, images are read
from disk batch by batch. Flips and padded crops while training (``--set augment=false`` turns them off).

The model is a small residual CNN trained from scratch (a stride-2 stem, so its three stages work at half
the image size and up: at 32x32 pixels a training step costs 1.4x the cifar10 recipe's CNN, against 4.6x
at full size; ``--set stride=1`` keeps full size), or with ``--set pretrained=NAME`` a torchvision
model (``resnet18``, ``mobilenet_v3_small``...) with its published ImageNet weights and a new last layer.
The weights are read from the torch cache (``$TORCH_HOME/hub/checkpoints``) and downloaded only where the
network allows. The class names, image size and normalization are kept with the run (``preprocess.json``).

    ignite-lab run image_folder --data-dir photos/ --set size=96
    ignite-lab predict image_folder --checkpoint runs/image_folder/RUN/checkpoints/best_*.pt some.jpg
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Predictor, Recipe, TrainConfig, UserError, recipe_main, run_file, setting
from ignite_lab.kit.augment import random_crop, random_flip
from ignite_lab.kit.images import ImageFiles, class_folders, split_by_class
from ignite_lab.kit.inputs import read_images

log = logging.getLogger("ignite_lab.recipes.image_folder")
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@dataclass
class Settings:
    size: int = setting(64, "images are resized to SIZE x SIZE pixels", min=8, max=1024)
    augment: bool = setting(True, "random flips and 4-pixel-padded crops while training")
    width: int = setting(32, "channels of the small CNN's first stage (doubling twice)", min=4)
    stride: int = setting(2, "the small CNN's stem stride: its stages work at size/stride pixels", min=1, max=4)
    pretrained: str = setting("", "a torchvision model with ImageNet weights, e.g. resnet18 (empty: the small CNN)")
    val_fraction: float = setting(0.1, "images per class held out for validation when there is no val/", max=0.9)
    test_fraction: float = setting(0.1, "images per class held out for testing when there is no test/", max=0.9)
    memory_mb: int = setting(2048, "above this, images are read from disk per batch instead of kept", min=1)


def block(cin: int, cout: int, stride: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout),
    )


class Residual(nn.Module):
    """A ResNet basic block: two 3x3 convs and a shortcut (a strided 1x1 conv where the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = block(cin, cout, stride)
        self.short = (
            nn.Identity()
            if cin == cout and stride == 1
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.short(x))


def small_resnet(classes: list[str], width: int, stride: int = 1) -> nn.Module:
    """Stem (``stride``), three residual stages (width, 2x, 4x; the last two halve the size), global average
    pool, linear."""
    w = [width, 2 * width, 4 * width]
    return nn.Sequential(
        nn.Conv2d(3, w[0], 3, stride, 1, bias=False),
        nn.BatchNorm2d(w[0]),
        nn.ReLU(inplace=True),
        Residual(w[0], w[0], 1),
        Residual(w[0], w[1], 2),
        Residual(w[1], w[2], 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(w[2], len(classes)),
    )


def pretrained_model(name: str, classes: int) -> nn.Module:
    """torchvision's ``name`` with its default ImageNet weights and a new last linear layer for ``classes``."""
    import torchvision

    try:
        model = torchvision.models.get_model(name, weights="DEFAULT")
    except ValueError:
        known = ", ".join(sorted(torchvision.models.list_models(torchvision.models))[:12])
        raise UserError(f"--set pretrained={name}: no such torchvision model (e.g. {known} ...)") from None
    except (OSError, RuntimeError) as exc:  # offline with no cached file (URLError is an OSError), or a bad file
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        raise UserError(
            f"--set pretrained={name}: its weights are not in {hub} and cannot be downloaded here ({exc}); "
            "copy the .pth file there (TORCH_HOME sets the cache)"
        ) from None
    last_name, last = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    parent = model.get_submodule(last_name.rsplit(".", 1)[0]) if "." in last_name else model
    setattr(parent, last_name.rsplit(".", 1)[-1], nn.Linear(last.in_features, classes))
    return model


def build(config: TrainConfig, s: Settings) -> Parts:
    splits = image_splits(config, s) if config.reads("val") else None  # predict and export read the run's files
    mean_std = IMAGENET if s.pretrained else HALF

    def describe() -> str:
        found = splits if splits is not None else image_splits(config, s)
        return preprocess_json(class_folders(Path(str(config.data_dir)), found), s.size, mean_std)

    prep = json.loads(run_file(config, "preprocess.json", describe))
    classes, mean, std = prep["classes"], torch.tensor(prep["mean"]), torch.tensor(prep["std"])
    unknown = sorted({c for files in (splits or {}).values() for _, c in files} - set(classes))
    if unknown:
        raise UserError(f"{config.data_dir}: classes {unknown} are not among the {len(classes)} the run trained with")

    def normalize(images: torch.Tensor) -> torch.Tensor:
        return (images.float() / 255 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)

    def prepare(images: torch.Tensor, labels: torch.Tensor):
        return normalize(images), labels

    def augment(images: torch.Tensor, labels: torch.Tensor):
        images, _ = random_flip(normalize(images))
        images, _ = random_crop(images, tuple(images.shape[-2:]), padding=4)
        return images, labels

    def data(split: str, transform) -> ImageFiles | list:
        files = (splits or {}).get(split)
        return ImageFiles(files, classes, s.size, s.memory_mb).load().with_transform(transform) if files else []

    model = pretrained_model(s.pretrained, len(classes)) if s.pretrained else small_resnet(classes, s.width, s.stride)

    def read(inputs: list[str]):
        paths, images = read_images(inputs, "RGB", (s.size, s.size))
        return paths, normalize(images)

    def example() -> torch.Tensor:
        return normalize(torch.randint(0, 256, (4, 3, s.size, s.size), dtype=torch.uint8))

    return Parts(
        model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=5e-4),
        loss_fn=nn.CrossEntropyLoss(),
        train=data("train", augment if s.augment else prepare) if config.reads("train") else [],
        val=data("val", prepare),
        test=data("test", prepare) or None,
        channels_last=True,  # a step of the small CNN in 250 ms against 298 ms NCHW (batch 128 of 32x32, 1 thread)
        metrics=lambda: {"accuracy": Accuracy()},
        predictor=Predictor(read, classes, note="image files or folders", example=example),
    )


def image_splits(config: TrainConfig, s: Settings) -> dict:
    """train/val/test lists of (file, class): the folder's own splits, or per-class holdouts by seed."""
    if not config.data_dir or not Path(config.data_dir).is_dir():
        raise UserError("image_folder needs --data-dir DIR holding one folder of images per class")
    return split_by_class(Path(config.data_dir), s.val_fraction, s.test_fraction, config.seed)


def preprocess_json(classes: list[str], size: int, mean_std) -> str:
    """What turns an image file into the model's input, for predict and for an exported model's users."""
    mean, std = mean_std
    steps = "RGB, resized to size x size (bilinear), /255, minus mean, over std per channel"
    return json.dumps({"kind": "image", "classes": classes, "size": size, "mean": mean, "std": std, "steps": steps})


RECIPE = Recipe(
    summary="Your own image folders (one per class): a small residual CNN, or a pretrained torchvision model.",
    dataset="a folder of class folders, or train/ val/ test/ of them (--data-dir)",
    build=build,
    settings=Settings,
    epochs=15,
    batch_size=64,
    lr=2e-3,
    lr_schedule="cosine",
)

if __name__ == "__main__":
    recipe_main(RECIPE)
