"""Ignite's supervised trainer and evaluator, emitting one output shape so the same metrics fit both.

Both engines output ``{"y_pred", "y", "criterion_kwargs"}`` (what Ignite metrics read from a
mapping); the trainer adds ``"loss"`` as a float for the progress bar and the NaN guard.
Training metrics are therefore computed on the batches already seen, at no extra forward pass.
"""

from __future__ import annotations

from typing import Any

import torch
from ignite.engine import Engine, _prepare_batch, create_supervised_trainer
from ignite.metrics import Loss, Metric
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce

from ignite_lab.recipe import Parts


def _train_output(x: Any, y: Any, y_pred: torch.Tensor, loss: torch.Tensor) -> dict[str, Any]:
    return {"y_pred": y_pred.detach(), "y": y, "criterion_kwargs": {}, "loss": loss.item()}


def _eval_output(x: Any, y: Any, y_pred: torch.Tensor) -> dict[str, Any]:
    return {"y_pred": y_pred, "y": y, "criterion_kwargs": {}}


class StepLoss(Metric):
    """The mean training loss over an epoch, from the loss each step already computed (no second loss pass)."""

    required_output_keys = ("loss", "y")
    _state_dict_all_req_keys = ("_sum", "_num")

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


def make_metrics(parts: Parts) -> dict[str, Metric]:
    """The recipe's metrics plus ``loss`` (every recipe reports its loss)."""
    metrics = parts.metrics()
    metrics.setdefault("loss", Loss(parts.loss_fn))
    return metrics


def build_trainer(
    parts: Parts, model: torch.nn.Module, device: torch.device, amp: bool
) -> tuple[Engine, dict[str, Metric]]:
    """The trainer and its (training-split) metrics; ``model`` is ``parts.model`` or its DDP wrapper."""
    trainer = create_supervised_trainer(
        model,
        parts.optimizer,
        parts.loss_fn,
        device=device,
        non_blocking=device.type == "cuda",
        output_transform=_train_output,
        amp_mode="amp" if amp else None,
        scaler=amp,
    )
    metrics = {**(parts.train_metrics or parts.metrics)(), "loss": StepLoss()}
    for name, metric in metrics.items():
        metric.attach(trainer, name)
    return trainer, metrics


def build_evaluator(parts: Parts, model: torch.nn.Module, device: torch.device, amp: bool) -> Engine:
    """Ignite's supervised evaluation step, under torch.inference_mode (cheaper than no_grad)."""
    non_blocking = device.type == "cuda"

    def evaluate(engine: Engine, batch: Any) -> dict[str, Any]:
        model.eval()
        with torch.inference_mode(), torch.autocast(device.type, enabled=amp):
            x, y = _prepare_batch(batch, device=device, non_blocking=non_blocking)
            return _eval_output(x, y, model(x))

    evaluator = Engine(evaluate)
    for name, metric in make_metrics(parts).items():
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
