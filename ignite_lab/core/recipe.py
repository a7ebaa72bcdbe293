"""What a recipe is: defaults, a settings dataclass and a ``build`` function returning its Parts.

A recipe is named after its file (``ignite_lab/recipes/mnist.py`` is ``mnist``; a copy ``my_cnn.py`` is
``my_cnn``), so a copy is a plain file copy and can never be mistaken for the recipe it came from.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from ignite.engine import Engine, EventEnum
from ignite.metrics import Metric
from ignite.utils import apply_to_tensor, convert_tensor
from torch import nn
from torch.optim import Optimizer

StepFunction = Callable[[Engine, Any], dict[str, Any]]


@dataclass
class Parts:
    """WHAT to train. The toolkit decides HOW (device, engines, handlers, loaders).

    ``train``/``val``/``test`` are datasets (the toolkit makes the loaders, sharded and seeded) or
    ready-made iterables of batches. ``metrics`` is a factory so the trainer and the evaluator each get
    their own metric objects; ``train_metrics`` (default: the same) are computed on the training batches
    as they pass; ``loss`` is always the step's own loss.

    A recipe that needs its own training step passes ``train_step``: a function of ``StepTools``
    returning Ignite's process function, whose output is ``step_output(...)``. Custom events that step
    fires are declared in ``events`` (an Ignite ``EventEnum``). ``handlers(run)`` attaches the recipe's
    own Ignite handlers (samples, pictures, filters such as ``Events.EPOCH_COMPLETED(every=5)``); they
    run after the standard handlers of the same event.
    """

    model: nn.Module
    optimizer: Optimizer
    loss_fn: Callable[..., Any]
    train: Iterable
    val: Iterable
    metrics: Callable[[], dict[str, Metric]]
    train_metrics: Callable[[], dict[str, Metric]] | None = None
    test: Iterable | None = None
    grad_clip: float | None = None
    shuffle: bool = True  # False: training batches in the data's own order every epoch (as some book code does)
    channels_last: bool = False  # convolutions on NHWC tensors (model and 4-D inputs): faster on CPUs for most CNNs
    train_step: Callable[[StepTools], StepFunction] | None = None
    events: type[EventEnum] | None = None
    handlers: Callable[[RunView], None] | None = None
    generate: Callable[..., str] | None = None  # (prime, length, temperature, seed) -> text, for ignite-lab generate
    predictor: Predictor | None = None  # for ignite-lab predict


@dataclass
class Predictor:
    """How a recipe answers a user's own inputs (``ignite-lab predict``), declared next to its data code.

    ``read(inputs)`` turns the command's inputs (file paths, sentences, numbers) into (a name per item, the
    batch the model takes), through the same conversion and normalization as the training data, so the two
    cannot drift apart. ``classes`` names a classifier's outputs; ``write(names, scores)`` is for outputs that
    are files (LinkNet's coloured masks) and returns what it wrote. ``note`` tells what the inputs should be.
    ``batch=False``: the inputs are image files of any size, read one at a time. ``example()``: a few made-up
    inputs in the model's format (varied, so an export can be checked on them), for recipes that predict and
    export without reading any data.
    """

    read: Callable[[list[str]], tuple[list[str], Any]]
    classes: Sequence[str] | None = None
    write: Callable[[list[str], torch.Tensor], list[str]] | None = None
    note: str = ""
    batch: bool = True
    example: Callable[[], Any] | None = None


@dataclass
class RunView:
    """What a recipe's ``handlers`` see: the engines, the model, and ``publish`` for pictures and text."""

    trainer: Engine
    evaluator: Engine
    model: nn.Module
    device: torch.device
    publish: Any  # dashboard.Publisher: .image(name, array, epoch) and .text(name, text, epoch)
    resumed: bool  # True when the run continues from a checkpoint (e.g. skip drawings made at the start)


@dataclass
class StepTools:
    """What a recipe's own training step needs, with the toolkit's device and precision choices applied."""

    model: nn.Module  # wrapped in DistributedDataParallel when several processes train
    optimizer: Optimizer
    loss_fn: Callable[..., Any]
    device: torch.device
    precision: Any  # precision.Precision: the autocast dtype chosen with --precision
    scaler: torch.amp.GradScaler | None
    channels_last: bool = False

    def to_device(self, batch: Any) -> Any:
        """The batch on the training device (images in channels-last layout when the recipe asked for it)."""
        return to_device(batch, self.device, self.channels_last)

    def autocast(self) -> contextlib.AbstractContextManager:
        return self.precision.autocast()

    def backward_and_step(self, loss: torch.Tensor) -> None:
        """Backward pass and optimizer step (gradient clipping and AMP scaling included)."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()


def to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Tensors of ``batch`` to ``device``; 4-D float tensors (image batches) channels-last if asked."""
    batch = convert_tensor(batch, device=device, non_blocking=device.type == "cuda")
    if channels_last:
        batch = apply_to_tensor(batch, lambda t: t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t)
    return batch


def step_output(y_pred: torch.Tensor, y: Any, loss: torch.Tensor) -> dict[str, Any]:
    """The output every training step returns, so the standard metrics and handlers read it."""
    return {"y_pred": y_pred.detach(), "y": y, "criterion_kwargs": {}, "loss": loss.item()}


@dataclass(frozen=True)
class Book:
    """What a book's program says, as a record: a test holds the preset's resolved configuration to it and
    REPRODUCE.md's sentences about the preset are written from it, so neither can drift from the page.

    ``cites`` are ``books/FILE:LINE`` (or ``:FIRST-LAST``) in ../shared/books, or the published file the
    book points to where its code is an image. ``tested``: "last" when the book's figure comes from the
    weights after its last epoch, "best" when from the best by validation. ``differs``: one line for each
    thing the preset cannot do as the book does, and why.
    """

    cites: tuple[str, ...]
    batch: int
    epochs: int
    optimizer: str  # the torch.optim class the book's code builds: "SGD", "Adam", "Adadelta"
    lr: float
    tested: str
    sizes: dict[str, Any] = field(default_factory=dict)  # settings that size the model, as the book has them
    data: str = ""  # the data and split the book's figure comes from
    differs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Preset:
    """A named configuration of a recipe: run flags and settings that replace the recipe's defaults.

    ``book`` presets hold a book's own configuration, so a reader can put the output beside the page;
    ``figures`` are the numbers the book prints for it (metric -> value), met or explained by
    ``ignite-lab reproduce``.
    """

    source: str  # where the configuration comes from (book, chapter, notebook)
    flags: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields: epochs, batch_size, lr, ...
    settings: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)
    note: str = ""  # how the book arrived at its figure, when that matters for comparing
    book: Book | None = None  # the book's program, for presets that are one


@dataclass(frozen=True)
class Recipe:
    """One trainable model. ``build(config, settings)`` returns its Parts.

    What a recipe knows without its data is declared here: its defaults for the run flags (the fields
    that share a name with a ``TrainConfig`` field, see ``defaults``), its settings, its score and its
    presets. ``build`` receives the per-process share of the batch sizes in ``config.batch_size`` and
    ``config.eval_batch_size`` (the command line gives global ones, split across processes).
    ``name`` is set from the recipe's file when it is loaded.
    """

    summary: str
    dataset: str
    build: Callable[..., Parts]
    epochs: int
    batch_size: int
    lr: float
    settings: type | None = None
    score: str = "accuracy"  # the validation metric that picks the best checkpoint, early stopping and sweeps
    score_mode: Literal["max", "min"] = "max"
    lr_schedule: str = "none"
    lr_gamma: float = 0.1  # the factor of the step and exponential schedules
    eval_batch_size: int | None = None  # default: twice batch_size (large images may want less: memory)
    precision: str = "32"  # bf16 only where it measured as accurate as float32 (REPRODUCE.md)

    presets: dict[str, Preset] = field(default_factory=dict)

    name: str = ""

    def defaults(self) -> dict[str, Any]:
        """The run flags this recipe sets: its fields named like ``TrainConfig`` fields (epochs, lr, ...)."""
        from ignite_lab.core.config import TrainConfig

        train = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True)}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name in train}
