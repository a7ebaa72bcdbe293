"""Ignite's trainer and evaluator, emitting one output shape so the same metrics fit both.

Both engines output ``{"y_pred", "y", "criterion_kwargs"}`` (what Ignite metrics read from a
mapping); the trainer adds ``"loss"`` as a float for the progress bar and the NaN guard.
Training metrics are therefore computed on the batches already seen, at no extra forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from ignite.engine import Engine, create_supervised_trainer
from ignite.metrics import Loss, Metric
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce
from ignite.utils import convert_tensor

from ignite_lab.recipe import Parts, StepTools, step_output


class StepLoss(Metric):
    """The mean training loss over an epoch, from the loss each step already computed (no second loss pass)."""

    required_output_keys = ("loss", "y")
    _state_dict_all_req_keys = ("_sum", "_num")  # what Metric.state_dict saves (see compat.metric_state_keys)

    @reinit__is_reduced
    def reset(self) -> None:
        self._sum, self._num = 0.0, 0

    @reinit__is_reduced
    def update(self, output: tuple[float, Any]) -> None:
        loss, y = output
        n = batch_size_of(y) or 1
        self._sum += float(loss) * n
        self._num += n

    @sync_all_reduce("_sum", "_num")
    def compute(self) -> float:
        return self._sum / max(1, self._num)


@dataclass
class Engines:
    """The trainer, the evaluator of validation (and test) data, and the training-split metrics."""

    trainer: Engine
    evaluator: Engine
    train_metrics: dict[str, Metric]
    step: Any = None  # the recipe's own training step, if it brought one


def build_engines(parts: Parts, model: torch.nn.Module, device: torch.device, amp: bool) -> Engines:
    """``model`` is ``parts.model`` or its DistributedDataParallel wrapper."""
    step = None
    if parts.train_step is not None:
        scaler = torch.amp.GradScaler("cuda") if amp else None
        step = parts.train_step(StepTools(model, parts.optimizer, parts.loss_fn, device, amp, scaler))
    trainer = build_trainer(parts, model, device, amp, step)
    train_metrics = {**(parts.train_metrics or parts.metrics)(), "loss": StepLoss()}
    for name, metric in train_metrics.items():
        metric.attach(trainer, name)
    return Engines(trainer, build_evaluator(parts, model, device, amp), train_metrics, step)


def build_trainer(parts: Parts, model: torch.nn.Module, device: torch.device, amp: bool, step: Any = None) -> Engine:
    """Ignite's supervised trainer, or an Engine over the recipe's own step; custom events registered."""
    if step is not None:
        trainer = Engine(step)
    else:
        trainer = create_supervised_trainer(
            model,
            parts.optimizer,
            parts.loss_fn,
            device=device,
            non_blocking=device.type == "cuda",
            output_transform=lambda x, y, y_pred, loss: step_output(y_pred, y, loss),
            amp_mode="amp" if amp else None,
            scaler=amp,
        )
    if parts.events is not None:
        trainer.register_events(*parts.events)
    return trainer


def build_evaluator(parts: Parts, model: torch.nn.Module, device: torch.device, amp: bool) -> Engine:
    """The supervised evaluation step under torch.inference_mode (cheaper than no_grad), with every metric."""
    non_blocking = device.type == "cuda"

    def evaluate(engine: Engine, batch: Any) -> dict[str, Any]:
        model.eval()
        with torch.inference_mode(), torch.autocast(device.type, enabled=amp):
            x, y = (convert_tensor(part, device=device, non_blocking=non_blocking) for part in batch)
            return {"y_pred": model(x), "y": y, "criterion_kwargs": {}}

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
