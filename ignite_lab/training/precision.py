"""``--precision 32|bf16|16``: mixed precision where the device does it, one clear warning where it does not.

- ``32``: full precision (the default unless a recipe's measurements say otherwise);
- ``bf16``: bfloat16 autocast, on CUDA devices that support it and on CPUs with native bf16 (AVX-512 BF16
  or AMX); weights, gradients and the optimizer stay float32, so no loss scaling is needed;
- ``16``: float16 autocast with a gradient scaler, on CUDA only (``--amp`` is its old name).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import torch

from ignite_lab.core.compat import cpu_has_native_bf16

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Precision:
    """What a precision choice means on this device: the autocast dtype (None: full precision) and scaling."""

    name: str
    device_type: str
    dtype: torch.dtype | None = None

    @property
    def scaler(self) -> bool:
        return self.dtype is torch.float16  # fp16 gradients underflow without loss scaling; bf16's do not

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def forward(self, model: torch.nn.Module, x: Any) -> Any:
        """The model under autocast, its output back in float32 (the loss and metrics are computed in float32)."""
        with self.autocast():
            out = model(x)
        return out.float() if self.dtype is not None and isinstance(out, torch.Tensor) else out


def resolve_precision(name: str, device: torch.device) -> Precision:
    """The precision to train with on ``device``; an unsupported choice warns once and falls back to 32."""
    full = Precision("32", device.type)
    if name == "32":
        return full
    if name == "16":
        if device.type == "cuda":
            return Precision("16", "cuda", torch.float16)
        log.warning("--precision 16 (--amp) needs a CUDA device; training on %s in full precision instead", device)
        return full
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return Precision("bf16", "cuda", torch.bfloat16)
    if device.type == "cpu" and cpu_has_native_bf16():
        return Precision("bf16", "cpu", torch.bfloat16)
    log.warning("--precision bf16: %s has no native bfloat16 support; training in full precision instead", device)
    return full
