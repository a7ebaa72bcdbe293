"""Every use of a private Ignite, torch or visdom internal, in one place, each with why and where it was checked.

Checked against pytorch-ignite 0.5.5, torch 2.14.1 and visdom 0.2.4 (requirements.lock). When one of
them changes, this file is where to look; nothing else in the package touches a private name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from ignite.metrics import Metric


def metric_state_keys(metric: Metric) -> tuple[str, ...]:
    """The attributes an Ignite metric saves in ``state_dict()``; empty for metrics that hold no state.

    Why: a run resumed mid-epoch restores the epoch-so-far training metrics, so we must know which
    metrics carry state. Ignite 0.5.5 lists them in the class attribute ``_state_dict_all_req_keys``
    (the one its own ``Metric.state_dict`` reads); there is no public accessor.
    """
    return tuple(getattr(type(metric), "_state_dict_all_req_keys", ()))


def metric_input(metric: Metric) -> tuple[Callable, Any]:
    """(output transform, device) of an Ignite metric, to wrap it in another that reads the same output.

    Why: a pooled training metric must transform the engine's output as the metric it wraps would and
    live on its device; Ignite 0.5.5 keeps both in ``_output_transform`` and ``_device``, with no accessor.
    """
    return metric._output_transform, metric._device


def declare_fused_step(optimizer: torch.optim.Optimizer) -> None:
    """Tell AMP's GradScaler that ``optimizer`` (switched to ``fused=True`` after construction) unscales in
    its own fused kernel. Why: torch 2.14's Adam, AdamW and SGD set ``_step_supports_amp_scaling`` in
    ``__init__`` when built fused; GradScaler reads that private flag and has no other way to be told."""
    optimizer._step_supports_amp_scaling = True


def stretch_one_cycle(scheduler: torch.optim.lr_scheduler.OneCycleLR, total_steps: int) -> None:
    """Refit a restored one-cycle schedule to ``total_steps``, each phase ending at the same share of it.

    Why: a resume that raises --epochs lengthens the cycle. torch 2.14's OneCycleLR computes its LR in
    closed form from ``total_steps`` and the phase ends it fixed in ``__init__`` (``_schedule_phases``, a
    list of dicts with ``end_step``); there is no public way to change the length.
    """
    for phase in scheduler._schedule_phases:
        phase["end_step"] = float((phase["end_step"] + 1) / scheduler.total_steps * total_steps) - 1
    scheduler.total_steps = total_steps


def saves_state(*keys: str):
    """Class decorator for a metric of ours: the attributes ``Metric.state_dict`` saves, so a run resumed
    mid-epoch restores it. Ignite 0.5.5 reads them from the private ``_state_dict_all_req_keys``."""

    def mark(cls: type) -> type:
        cls._state_dict_all_req_keys = keys
        return cls

    return mark


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), so bf16 autocast is fast, not emulated.

    Why: torch has no public query for it; ``torch.ops.mkldnn._is_mkldnn_bf16_supported`` is what torch's
    own CPU autocast tests use (checked in torch 2.14.1). If it disappears, bf16 is simply not offered.
    """
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


@functools.cache
def timeout_visdom() -> type:
    """visdom's client class with a timeout on every request (made on first use: visdom loads only with --visdom).

    Why: the client has no timeout option, so a server that accepts but never answers hangs training.
    visdom 0.2.4 sends every request through ``_handle_post`` (its docstring names it as the hook to
    override); we pass the timeouts there.
    """
    import visdom

    class TimeoutVisdom(visdom.Visdom):
        connect_timeout_s = 2.0
        read_timeout_s = 5.0

        def _handle_post(self, url: str, data: Any = None) -> str:
            timeout = (self.connect_timeout_s, self.read_timeout_s)
            return self.session.post(url, data=data or {}, timeout=timeout).text

    return TimeoutVisdom


def optuna_heartbeat(trial: Any, study: Any) -> Any:
    """A context manager that records the trial's heartbeat in the storage while it runs.

    Why: Optuna marks a trial failed when its heartbeat stops (a worker killed on another machine) and
    re-queues it; ``study.optimize`` starts the heartbeat itself, but a sweep that asks for trials under a
    claim lock (so machines together run exactly N) uses ask/tell. optuna 5.0.0 exposes the thread only as
    ``optuna.storages._heartbeat.get_heartbeat_thread``, the trial's id only as ``Trial._trial_id`` and the
    study's storage only as ``Study._storage``.
    """
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(trial._trial_id, study._storage)
