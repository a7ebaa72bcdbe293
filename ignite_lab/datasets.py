"""Readers for the datasets the recipes use, with messages that say which file is wrong."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import torch

from ignite_lab.errors import UserError
from ignite_lab.loaders import TensorData, holdout_split

log = logging.getLogger(__name__)

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
BUNDLED_MNIST = Path(__file__).resolve().parent.parent / "recipes" / "data" / "mnist_sample"


def read_idx(path: Path) -> torch.Tensor:
    """Read an idx1/idx3 ubyte file (optionally gzipped) into a uint8 tensor."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] not in (1, 3):
        raise UserError(f"{path} is not an idx ubyte file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path} is truncated: its header is incomplete")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise UserError(f"{path} is truncated or padded: header says {shape} ({expected} bytes), file has {len(raw)}")
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy())


def _find(root: Path, stem: str) -> Path | None:
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def _download_mnist(root: Path) -> bool:
    """torchvision's MNIST download into ROOT/MNIST/raw; False (with the reason logged) when offline."""
    from torchvision.datasets import MNIST

    try:
        root.mkdir(parents=True, exist_ok=True)
        MNIST(str(root), train=True, download=True)
        MNIST(str(root), train=False, download=True)
        return True
    except Exception as exc:  # torchvision raises plain RuntimeError/URLError when offline
        log.warning("could not download MNIST into %s: %s", root, exc)
        return False


def load_mnist(data_dir: str | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 for ``train`` or ``test``.

    No ``data_dir``: the bundled 12,000-image sample (offline). With ``data_dir``: the full
    dataset from there, flat or in torchvision's MNIST/raw layout, downloaded by torchvision
    when it is missing and the network allows.
    """
    root = Path(data_dir).expanduser() if data_dir else BUNDLED_MNIST
    stems = MNIST_FILES[split]
    paths = [_find(root, stem) for stem in stems]
    if None in paths and data_dir and _download_mnist(root):
        paths = [_find(root, stem) for stem in stems]
    if None in paths:
        expected = "\n  ".join(str(root / "MNIST" / "raw" / stem) + "[.gz]" for stem in stems)
        raise UserError(
            f"MNIST {split} files not found under {root} and could not be downloaded. Expected:\n  {expected}\n"
            "(also accepted directly in that folder). Copy the four MNIST idx files there, "
            "or run once with network access so torchvision downloads them."
        )
    images, labels = (read_idx(p) for p in paths)
    if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
        raise UserError(f"{paths[0]} and {paths[1]} do not match: {tuple(images.shape)} images, {len(labels)} labels")
    if int(labels.max()) > 9:
        raise UserError(f"{paths[1]}: labels must be digits 0-9, found {int(labels.max())}")
    return images, labels.long()


def mnist_splits(
    data_dir: str | None, seed: int, val_fraction: float = 1 / 12
) -> tuple[TensorData, TensorData, TensorData]:
    """MNIST as normalized (N, 1, 28, 28) float tensors: train, a seeded validation holdout, and test.

    Decoded once; batches are then slices (see loaders.TensorData). The holdout is 1/12 of
    the training images (5,000 of 60,000, the usual MNIST validation size).
    """
    source = data_dir or f"bundled sample {BUNDLED_MNIST}"
    log.info("MNIST from %s", source)

    def prepare(split: str) -> TensorData:
        images, labels = load_mnist(data_dir, split)
        x = (images.unsqueeze(1).float() / 255.0 - MNIST_MEAN) / MNIST_STD
        return TensorData(x, labels)

    train, val = holdout_split(prepare("train"), val_fraction, seed)
    return train, val, prepare("test")
