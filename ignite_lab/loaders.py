"""Data loaders with one shuffling rule: the order of epoch E depends only on (seed, E).

That rule is what makes a resumed run see the same batches as an uninterrupted one, on
one process or several (a DistributedSampler is used in both cases).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import ignite.distributed as idist
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler


class TensorData(Dataset):
    """Tensors already decoded in memory; indexed by a whole list of indices per batch.

    Batches are made by slicing, so there is no per-sample Python work and no collate.
    """

    def __init__(self, *tensors: torch.Tensor, transform: Callable | None = None) -> None:
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("TensorData needs tensors with the same first dimension")
        self.tensors = tensors
        self.transform = transform

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index):
        batch = tuple(t[index] for t in self.tensors)
        return self.transform(*batch) if self.transform else batch

    def with_transform(self, transform: Callable) -> TensorData:
        """The same tensors with a batch transform (augmentation), e.g. for the training split only."""
        return TensorData(*self.tensors, transform=transform)

    def subset(self, index: torch.Tensor) -> TensorData:
        return TensorData(*(t[index] for t in self.tensors))


def holdout_split(data: TensorData, fraction: float, seed: int) -> tuple[TensorData, TensorData]:
    """Split off a random validation fraction, the same for the same seed."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(len(data) * fraction)))
    return data.subset(order[n_val:]), data.subset(order[:n_val])


def build_loader(
    data: Iterable, batch_size: int, *, shuffle: bool, seed: int, device: torch.device, drop_last: bool = False
) -> Iterable:
    """A loader for ``data``: datasets get a seeded (distributed) sampler; other iterables pass through."""
    if not isinstance(data, Dataset):
        return data
    sampler = DistributedSampler(
        data,
        num_replicas=idist.get_world_size(),
        rank=idist.get_rank(),
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
    )
    pin = device.type == "cuda"
    if getattr(data, "batched", False):  # every index is already a whole batch (e.g. language-model windows)
        return DataLoader(data, sampler=sampler, batch_size=None, pin_memory=pin)
    if isinstance(data, TensorData):
        batches = BatchSampler(sampler, batch_size, drop_last=drop_last)
        return DataLoader(data, sampler=batches, batch_size=None, pin_memory=pin)
    workers = min(4, max(0, (torch.get_num_threads() or 1) - 1)) if device.type == "cuda" else 0
    return DataLoader(
        data,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0,
        drop_last=drop_last,
    )


def set_epoch(loader: Iterable, epoch: int) -> None:
    """Tell a loader's sampler which epoch starts, so its order is (seed, epoch)-determined."""
    for sampler in (getattr(loader, "batch_sampler", None), getattr(loader, "sampler", None)):
        sampler = getattr(sampler, "sampler", sampler) if not hasattr(sampler, "set_epoch") else sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
            return
