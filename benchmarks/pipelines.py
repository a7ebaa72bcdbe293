"""Input pipelines for BENCHMARKS.md section 2: data decoded once into tensors against torchvision's per-sample path.

The fast path is ignite-lab's default where data fits in memory: uint8 tensors, batches taken by slicing and
normalized per batch. The per-sample path is torchvision's: a Dataset transforming one sample at a time,
a DataLoader with 2 workers. Both yield the same values (checked on the first 256 samples).
"""

from __future__ import annotations

import gzip
import pickle
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ignite_lab.training.loaders import TensorData, build_loader

CPU = torch.device("cpu")


def iterate(loader, limit: int | None = None) -> float:
    """Samples per second over one pass."""
    start, n = time.perf_counter(), 0
    for i, (x, _) in enumerate(loader):
        n += len(x)
        if limit and i + 1 >= limit:
            break
    return n / (time.perf_counter() - start)


def mnist_pipeline(mnist: Path, repeats: int) -> dict:
    from torchvision import datasets, transforms

    from ignite_lab.kit.datasets import MNIST_MEAN, MNIST_STD, Normalize, load_mnist

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for f in mnist.glob("*-ubyte.gz"):
            (raw / f.name[:-3]).write_bytes(gzip.decompress(f.read_bytes()))
        tv = datasets.MNIST(
            tmp,
            train=True,
            transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))]),
        )
        images, labels = load_mnist(str(mnist), "train")
        fast = TensorData(images.unsqueeze(1), labels, transform=Normalize(((MNIST_MEAN,), (MNIST_STD,))))
        same = torch.allclose(torch.stack([tv[i][0] for i in range(256)]), fast[list(range(256))][0], atol=1e-6)
        return compare_pipelines("MNIST train (60,000 images)", fast, tv, repeats, same)


class PerSampleCifar(torch.utils.data.Dataset):
    """torchvision's CIFAR10.__getitem__: one PIL image per sample, then ToTensor and Normalize."""

    def __init__(self, images: np.ndarray, labels: list[int]) -> None:
        from torchvision import transforms

        self.images, self.labels = images, labels
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def cifar_pipeline(repeats: int) -> dict:
    from ignite_lab.kit.datasets import Normalize, cifar10_splits

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cifar-10-batches-py"
        folder.mkdir()
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            entry = {"data": rng.integers(0, 256, (10000, 3072), dtype=np.uint8), "labels": list(range(10)) * 1000}
            with open(folder / name, "wb") as f:
                pickle.dump(entry, f, protocol=2)
        start = time.perf_counter()
        train, _, _ = cifar10_splits(tmp, seed=0, val_size=1)
        decode = time.perf_counter() - start
        with open(folder / "data_batch_1", "rb") as f:
            entry = pickle.load(f)
        hwc = entry["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        slow = PerSampleCifar(hwc, entry["labels"])
        fast_first = TensorData(  # the same images through ignite-lab's per-batch normalization
            torch.from_numpy(hwc.transpose(0, 3, 1, 2).copy()), torch.tensor(entry["labels"]), transform=Normalize()
        )
        same = torch.allclose(torch.stack([slow[i][0] for i in range(256)]), fast_first[list(range(256))][0], atol=1e-6)
        result = compare_pipelines(
            "CIFAR-10 layout, 49,999 train images (generated)", train, slow, repeats, same, slow_len=len(train)
        )
        result["decode_once_s"] = decode
        return result


class PerSampleChunks(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


def text_pipeline(repeats: int) -> dict:
    from ignite_lab.kit.datasets import BUNDLED
    from ignite_lab.kit.text import Vocab
    from ignite_lab.recipes.char_rnn import chunks

    text = (BUNDLED / "tinyshakespeare" / "input.txt").read_text()

    vocab = Vocab.build([text], level="char", specials=["<unk>"])
    fast = chunks(torch.tensor(vocab.encode(text)), 100)
    slow = PerSampleChunks(*fast.tensors)
    same = torch.equal(torch.stack([slow[i][0] for i in range(256)]), fast[list(range(256))][0])
    return compare_pipelines("Tiny Shakespeare, 100-character chunks", fast, slow, repeats, same)


def compare_pipelines(name: str, fast, slow, repeats: int, same: bool, slow_len: int | None = None) -> dict:
    from torch.utils.data import DataLoader

    fast_rates, slow_rates = [], []
    for _ in range(repeats):
        fast_rates.append(iterate(build_loader(fast, 128, shuffle=True, seed=0, device=CPU)))
        loader = DataLoader(slow, batch_size=128, shuffle=True, num_workers=2, persistent_workers=False)
        limit = None if slow_len is None else max(1, min(len(slow), slow_len) // 128)
        slow_rates.append(iterate(loader, limit))
    fast_rate, slow_rate = statistics.median(fast_rates), statistics.median(slow_rates)
    return {"name": name, "fast": fast_rate, "per_sample": slow_rate, "speedup": fast_rate / slow_rate, "same": same}
