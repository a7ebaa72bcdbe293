"""Turn a --device string into a torch.device that really exists on this machine."""

import logging

import torch

from ignite_lab.core.errors import UserError

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """Resolve ``auto|cpu|cuda|cuda:N|mps``; ``auto`` prefers CUDA, then CPU."""
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
        if device.index is not None and device.index >= count:
            raise UserError(f"--device {name}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(f"--device {name}: Apple MPS is not available on this machine; use --device cpu or auto")
    elif device.type != "cpu":
        raise UserError(f"unsupported device {name!r}: expected auto, cpu, cuda, cuda:N or mps")
    return device
