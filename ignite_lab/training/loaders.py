"""Data loaders with one shuffling rule: the order of epoch E depends only on (seed, E).

That rule is what makes a resumed run see the same batches as an uninterrupted one, on
one process or several (a DistributedSampler is used in both cases).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import TypeVar

import ignite.distributed as idist
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, Sampler

T = TypeVar("T")


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


class ResumableBatches(Sampler):
    """Wraps a batch sampler (or, for pre-batched data, an index sampler) so a run resumed mid-epoch
    skips the batches it already trained on, without loading them (so no random state is spent on them)."""

    def __init__(self, batches: Sampler[list[int]]) -> None:
        self.batches = batches
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        inner = getattr(self.batches, "sampler", self.batches)
        if hasattr(inner, "set_epoch"):
            inner.set_epoch(epoch)

    def __iter__(self):
        skip, self.skip = self.skip, 0
        for index, batch in enumerate(self.batches):
            if index >= skip:
                yield batch

    def __len__(self) -> int:
        return len(self.batches)


def holdout_split(data: T, fraction: float, seed: int) -> tuple[T, T]:
    """Split off a random ``fraction`` for validation, the same for the same seed: (rest, held out).

    ``data`` is a ``TensorData`` (split by index, no copy of Python objects) or any sequence, such as a
    list of sentences (returned as lists).
    """
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(len(data) * fraction)))
    if isinstance(data, TensorData):
        return data.subset(order[n_val:]), data.subset(order[:n_val])
    items = list(data)
    return [items[i] for i in order[n_val:].tolist()], [items[i] for i in order[:n_val].tolist()]


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
    generator = private_generator(seed)
    if getattr(data, "batched", False):  # every index is already a whole batch (e.g. language-model windows)
        return DataLoader(data, sampler=ResumableBatches(sampler), batch_size=None, pin_memory=pin, generator=generator)
    batches = ResumableBatches(BatchSampler(sampler, batch_size, drop_last=drop_last))
    if isinstance(data, TensorData):
        return DataLoader(data, sampler=batches, batch_size=None, pin_memory=pin, generator=generator)
    workers = min(4, max(0, (torch.get_num_threads() or 1) - 1)) if device.type == "cuda" else 0
    return DataLoader(
        data,
        batch_sampler=batches,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0,
        generator=generator,
    )


def private_generator(seed: int) -> torch.Generator:
    """DataLoader draws a seed for its workers each time an iterator starts; from its own generator that
    leaves the global random state alone, so a resumed run's extra iterator changes nothing."""
    return torch.Generator().manual_seed(seed)


class FirstBatches:
    """The first ``n`` batches of a fresh pass over ``loader`` each epoch (``--limit-batches``).

    Ignite keeps one iterator across epochs shorter than their data, so epoch 2 would go on where epoch 1
    stopped, an order no resumed run can rebuild. Here every epoch is a new pass in its own (seed, epoch)
    order, cut short; a pass resumed mid-epoch yields only the batches left of its ``n``.
    """

    def __init__(self, loader: Iterable, n: int) -> None:
        self.loader, self.n = loader, n

    def __iter__(self):
        sampler = batch_sampler_of(self.loader)  # read when the pass starts, after the epoch's set_epoch
        skip = sampler.skip if sampler is not None else 0
        yield from itertools.islice(self.loader, max(0, self.n - skip))

    def __len__(self) -> int:
        return self.n


def batch_sampler_of(loader: Iterable) -> ResumableBatches | None:
    if isinstance(loader, FirstBatches):
        return batch_sampler_of(loader.loader)
    for sampler in (getattr(loader, "batch_sampler", None), getattr(loader, "sampler", None)):
        if isinstance(sampler, ResumableBatches):
            return sampler
    return None


def set_epoch(loader: Iterable, epoch: int, skip_batches: int = 0) -> None:
    """Tell a loader which epoch starts (its order is (seed, epoch)-determined) and how many batches
    of it were already trained on (a mid-epoch resume)."""
    sampler = batch_sampler_of(loader)
    if sampler is not None:
        sampler.set_epoch(epoch)
        sampler.skip = skip_batches
    elif skip_batches:
        raise RuntimeError(
            "this loader cannot resume mid-epoch: build it with ignite_lab.training.loaders or text.bucket_loader"
        )
