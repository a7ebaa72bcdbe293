"""A user's own image folders (torchvision's ImageFolder layout) as labelled splits: found, split by class and
seed where a split is missing, resized to one square size, kept in memory as uint8 or read per batch."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ignite_lab.core.errors import UserError
from ignite_lab.kit.inputs import is_image, read_images
from ignite_lab.training.loaders import TensorData

log = logging.getLogger(__name__)
Files = list[tuple[Path, str]]  # (image, class name)


def labelled_files(folder: Path) -> Files:
    """``folder/<class>/<image>`` pairs, classes and files in sorted order; a folder with none is named. Hidden
    files and folders (a name starting with '.', such as the ``._photo.jpg`` copies macOS leaves on shared
    drives) are not images of the class; an empty class folder is left out, with a warning."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = []
    for c in classes:
        found = [
            (f, c.name)
            for f in sorted(c.rglob("*"))
            if f.is_file() and is_image(f) and not any(part.startswith(".") for part in f.relative_to(c).parts)
        ]
        if not found:
            log.warning("%s has no images: the class is left out", c)
        files += found
    if not files:
        raise UserError(f"{folder} has no class folders of images (expected {folder}/<class>/<image>.jpg ...)")
    return files


def split_by_class(root: Path, val_fraction: float, test_fraction: float, seed: int) -> dict[str, Files]:
    """train/val/test: ``root/train`` (``val/``, ``test/`` when present) or ``root/<class>``; what is missing is
    cut from the training images, the same fraction of every class, by ``seed``."""
    if (root / "train").is_dir():
        splits = {"train": labelled_files(root / "train")}
        splits.update({s: labelled_files(root / s) for s in ("val", "test") if (root / s).is_dir()})
        if "val" not in splits and (root / "valid").is_dir():
            splits["val"] = labelled_files(root / "valid")
    else:
        splits = {"train": labelled_files(root)}
    generator = torch.Generator().manual_seed(seed)
    for split, fraction in (("test", test_fraction), ("val", val_fraction or 0.1)):
        if split in splits or not fraction:
            continue
        kept, held = [], []
        for name in sorted({c for _, c in splits["train"]}):
            files = [f for f in splits["train"] if f[1] == name]
            order = torch.randperm(len(files), generator=generator).tolist()
            n = min(len(files) - 1, max(1, round(len(files) * fraction))) if len(files) > 1 else 0
            held += [files[i] for i in order[:n]]
            kept += [files[i] for i in order[n:]]
        splits["train"], splits[split] = kept, held
    log.info("images: %s", ", ".join(f"{len(f)} {s}" for s, f in splits.items()))
    return splits


def class_folders(root: Path, splits: dict[str, Files]) -> list[str]:
    classes = sorted({c for _, c in splits["train"]})
    if len(classes) < 2:
        raise UserError(f"{root}: {len(classes)} class folder found, a classifier needs two or more")
    return classes


class ImageFiles:
    """One split's files, resized to ``size`` x ``size`` RGB: ``load()`` gives a ``TensorData`` of uint8 when the
    split fits in ``memory_mb``, else a dataset that reads each image from disk when it is drawn."""

    def __init__(self, files: Files, classes: list[str], size: int, memory_mb: int) -> None:
        index = {c: i for i, c in enumerate(classes)}
        self.paths = [path for path, _ in files]
        self.labels = torch.tensor([index[c] for _, c in files])
        self.size, self.memory_mb = size, memory_mb

    def load(self):
        need_mb = len(self.paths) * 3 * self.size * self.size / 2**20
        if need_mb > self.memory_mb:
            log.info(
                "%d images need %.0f MB > memory_mb %d: read from disk per batch",
                len(self.paths),
                need_mb,
                self.memory_mb,
            )
            return StreamedImages(self.paths, self.labels, self.size)
        images = torch.empty(len(self.paths), 3, self.size, self.size, dtype=torch.uint8)
        for i, path in enumerate(self.paths):
            images[i] = read_images([str(path)], "RGB", (self.size, self.size))[1][0]
        return TensorData(images, self.labels)


class StreamedImages(Dataset):
    """Images decoded when drawn; ``transform`` takes a batch of one, as TensorData's transforms take batches."""

    def __init__(self, paths: list[Path], labels: torch.Tensor, size: int, transform=None) -> None:
        self.paths, self.labels, self.size, self.transform = paths, labels, size, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        image = read_images([str(self.paths[index])], "RGB", (self.size, self.size))[1]
        label = self.labels[index : index + 1]
        image, label = self.transform(image, label) if self.transform else (image, label)
        return image[0], label[0]

    def with_transform(self, transform) -> StreamedImages:
        return StreamedImages(self.paths, self.labels, self.size, transform)
