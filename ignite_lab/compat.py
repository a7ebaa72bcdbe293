"""Every use of a private Ignite, torch or visdom internal, in one place, each with why and where it was checked.

Checked against pytorch-ignite 0.5.5, torch 2.14.1 and visdom 0.2.4 (requirements.lock). When one of
them changes, this file is where to look; nothing else in the package touches a private name.
"""

from __future__ import annotations

from typing import Any

import visdom
from ignite.metrics import Metric


def metric_state_keys(metric: Metric) -> tuple[str, ...]:
    """The attributes an Ignite metric saves in ``state_dict()``; empty for metrics that hold no state.

    Why: a run resumed mid-epoch restores the epoch-so-far training metrics, so we must know which
    metrics carry state. Ignite 0.5.5 lists them in the class attribute ``_state_dict_all_req_keys``
    (the one its own ``Metric.state_dict`` reads); there is no public accessor.
    """
    return tuple(getattr(type(metric), "_state_dict_all_req_keys", ()))


class TimeoutVisdom(visdom.Visdom):
    """visdom's client with a timeout on every request.

    Why: the client has no timeout option, so a server that accepts but never answers hangs training.
    visdom 0.2.4 sends every request through ``_handle_post`` (its docstring names it as the hook to
    override); we pass the timeouts there.
    """

    connect_timeout_s = 2.0
    read_timeout_s = 5.0

    def _handle_post(self, url: str, data: Any = None) -> str:
        return self.session.post(url, data=data or {}, timeout=(self.connect_timeout_s, self.read_timeout_s)).text
