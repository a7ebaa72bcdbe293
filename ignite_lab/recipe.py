"""What a recipe is: a name, defaults, a settings dataclass and a ``build`` function returning its Parts."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ignite.metrics import Metric
from torch import nn
from torch.optim import Optimizer


@dataclass
class Parts:
    """WHAT to train. The toolkit decides HOW (device, engines, handlers, loaders).

    ``train``/``val``/``test`` are datasets (the toolkit makes the loaders, sharded and seeded)
    or ready-made iterables of batches. ``metrics`` is a factory so the trainer and the
    evaluator each get their own metric objects. ``train_metrics`` (default: the same) are computed
    on the training batches as they pass; ``loss`` is always the step's own loss.
    """

    model: nn.Module
    optimizer: Optimizer
    loss_fn: Callable[..., Any]
    train: Iterable
    val: Iterable
    metrics: Callable[[], dict[str, Metric]]
    train_metrics: Callable[[], dict[str, Metric]] | None = None  # on training batches; default: ``metrics``
    test: Iterable | None = None
    score: str = "accuracy"
    score_mode: Literal["max", "min"] = "max"
    grad_clip: float | None = None
    on_start: Callable[[RunView], None] | None = None
    on_epoch: Callable[[RunView], None] | None = None
    generate: Callable[..., str] | None = None  # (prime, length, temperature, seed) -> text, for ignite-lab generate


@dataclass
class RunView:
    """What a recipe's hooks see: ``on_start`` (epoch 0, e.g. architecture drawings) and ``on_epoch``
    after each validation (samples, predictions)."""

    epoch: int
    model: nn.Module
    device: Any
    publish: Any  # dashboard.Publisher: .image(name, array, epoch) and .text(name, text, epoch)


@dataclass(frozen=True)
class Recipe:
    """One trainable model. ``build(config, settings)`` returns its Parts."""

    name: str
    summary: str
    dataset: str
    build: Callable[..., Parts]
    epochs: int
    batch_size: int
    lr: float
    settings: type | None = None
    lr_schedule: str = "none"
