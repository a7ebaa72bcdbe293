"""Ignite's trainer and evaluator, emitting one output shape so the same metrics fit both.

Both engines output ``{"y_pred", "y", "criterion_kwargs"}`` (what Ignite metrics read from a
mapping); the trainer adds ``"loss"`` as a float for the progress bar and the NaN guard.
Training metrics are therefore computed on the batches already seen, at no extra forward pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from ignite.engine import Engine, create_supervised_trainer
from ignite.metrics import (
    Accuracy,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    Metric,
    RootMeanSquaredError,
    TopKCategoricalAccuracy,
)
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce

from ignite_lab.core.compat import metric_input, saves_state
from ignite_lab.core.recipe import Parts, StepTools, step_output, to_device
from ignite_lab.training.precision import Precision


@saves_state("_sum", "_num")
class StepLoss(Metric):
    """The mean training loss over an epoch, from the loss each step already computed (no second loss pass)."""

    required_output_keys = ("loss", "y")

    @reinit__is_reduced
    def reset(self) -> None:
        self._sum, self._num = 0.0, 0

    @reinit__is_reduced
    def update(self, output: tuple[float, Any]) -> None:
        loss, y = output
        n = batch_size_of(y) or 1
        self._sum += float(loss) * n
        self._num += n

    def iteration_completed(self, engine: Engine) -> None:
        """Ignite's own less its output checks: 3 us a step against 11 us (the step's output is ours)."""
        output = engine.state.output
        if isinstance(output, Mapping) and "loss" in output and "y" in output:
            self.update((output["loss"], output["y"]))
        else:
            super().iteration_completed(engine)

    @sync_all_reduce("_sum", "_num")
    def compute(self) -> float:
        return self._sum / max(1, self._num)


POOLABLE = (Accuracy, TopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError, RootMeanSquaredError)


class Pooled(Metric):
    """A training metric updated once per ``max_elements`` predictions instead of at every step.

    Each update of an Ignite metric costs about 30 us of checks whatever its size (Accuracy on a batch of
    64), per step on top of a small model's 1-3 ms. The metrics pooled here are sums over samples, so
    updating them with the concatenated batches gives the same figures; a batch of another shape
    (variable-length outputs) flushes the pool first. The pool is flushed before any figure or state is
    read (epoch end, a mid-epoch checkpoint).
    """

    # marks it as a metric with state (a run resumed mid-epoch restores it): ``state_dict`` below flushes the
    # pool and saves the wrapped metric's own state
    _state_dict_all_req_keys = ("metric",)

    def __init__(self, metric: Metric, max_elements: int = 2**18) -> None:
        self.metric, self.max_elements = metric, max_elements
        self.required_output_keys = metric.required_output_keys
        self.pending: list[tuple[torch.Tensor, ...]] = []
        self.size = 0
        transform, device = metric_input(metric)
        super().__init__(output_transform=transform, device=device)

    def reset(self) -> None:
        self.pending, self.size = [], 0
        self.metric.reset()

    def iteration_completed(self, engine: Engine) -> None:
        """Ignite's own, less its per-step checks when the output is the (y_pred, y) tensors it pools."""
        output = self._output_transform(engine.state.output)
        if isinstance(output, Mapping) and all(k in output for k in self.required_output_keys):
            output = tuple(output[k] for k in self.required_output_keys)
        if isinstance(output, tuple) and all(isinstance(t, torch.Tensor) and t.dim() for t in output):
            self.update(output)
        else:
            super().iteration_completed(engine)

    def update(self, output: tuple[torch.Tensor, ...]) -> None:
        output = tuple(t.detach() for t in output)  # a pooled step's graph must not be kept alive
        if self.pending and [t.shape[1:] for t in self.pending[-1]] != [t.shape[1:] for t in output]:
            self.flush()
        self.pending.append(output)
        self.size += output[0].numel()
        if self.size >= self.max_elements:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            pending, self.pending, self.size = self.pending, [], 0
            self.metric.update(tuple(torch.cat(parts) for parts in zip(*pending, strict=True)))

    def compute(self) -> Any:
        self.flush()
        return self.metric.compute()

    def state_dict(self) -> Any:
        self.flush()
        return self.metric.state_dict()

    def load_state_dict(self, state_dict: Any) -> None:
        self.pending, self.size = [], 0
        self.metric.load_state_dict(state_dict)


def pooled(metric: Metric) -> Metric:
    """``metric`` pooled across steps where that gives the same figures (see ``Pooled``), else itself."""
    return Pooled(metric) if type(metric) in POOLABLE else metric


@dataclass
class Engines:
    """The trainer, the evaluator of validation (and test) data, and the training-split metrics."""

    trainer: Engine
    evaluator: Engine
    train_metrics: dict[str, Metric]
    step: Any = None  # the recipe's own training step, if it brought one


def build_engines(parts: Parts, model: torch.nn.Module, device: torch.device, precision: Precision) -> Engines:
    """``model`` is ``parts.model`` or its DistributedDataParallel wrapper."""
    step = None
    if parts.train_step is not None:
        scaler = torch.amp.GradScaler("cuda") if precision.scaler else None
        tools = StepTools(model, parts.optimizer, parts.loss_fn, device, precision, scaler, parts.channels_last)
        step = parts.train_step(tools)
    trainer = build_trainer(parts, model, device, precision, step)
    made = (parts.train_metrics or parts.metrics)()
    train_metrics = {**{name: pooled(metric) for name, metric in made.items()}, "loss": StepLoss()}
    for name, metric in train_metrics.items():
        metric.attach(trainer, name)
    return Engines(trainer, build_evaluator(parts, model, device, precision), train_metrics, step)


def build_trainer(
    parts: Parts, model: torch.nn.Module, device: torch.device, precision: Precision, step: Any = None
) -> Engine:
    """Ignite's supervised trainer, or an Engine over the recipe's own step; custom events registered.

    fp16 uses Ignite's own AMP step and scaler; bf16 runs the forward pass under autocast (``model_fn``).
    """
    if step is not None:
        trainer = Engine(step)
    else:
        trainer = create_supervised_trainer(
            model,
            parts.optimizer,
            parts.loss_fn,
            device=device,
            non_blocking=device.type == "cuda",
            prepare_batch=lambda batch, device, non_blocking: to_device(batch, device, parts.channels_last),
            output_transform=lambda x, y, y_pred, loss: step_output(y_pred, y, loss),
            amp_mode="amp" if precision.scaler else None,
            scaler=precision.scaler,
            model_fn=precision.forward if precision.dtype is torch.bfloat16 else (lambda model, x: model(x)),
        )
    if parts.events is not None:
        trainer.register_events(*parts.events)
    return trainer


def build_evaluator(parts: Parts, model: torch.nn.Module, device: torch.device, precision: Precision) -> Engine:
    """The supervised evaluation step under torch.inference_mode (cheaper than no_grad), with every metric."""

    def evaluate(engine: Engine, batch: Any) -> dict[str, Any]:
        model.eval()
        with torch.inference_mode():
            x, y = to_device(batch, device, parts.channels_last)
            return {"y_pred": precision.forward(model, x), "y": y, "criterion_kwargs": {}}

    evaluator = Engine(evaluate)
    metrics = parts.metrics()
    metrics.setdefault("loss", Loss(parts.loss_fn))  # every recipe reports its loss
    for name, metric in metrics.items():
        metric.attach(evaluator, name)
    return evaluator


def epoch_length(loader: Any, limit: int | None) -> int | None:
    """Batches per epoch: the loader's length, cut to ``--limit-batches``."""
    try:
        length = len(loader)
    except TypeError:
        return limit
    return min(length, limit) if limit else length


def batch_size_of(batch: Any) -> int:
    """Samples in a batch (the first tensor found), for throughput figures."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, (list, tuple)) and batch:
        return batch_size_of(batch[0])
    if isinstance(batch, dict) and batch:
        return batch_size_of(next(iter(batch.values())))
    return 0
