"""Tiny vision datasets written in the real on-disk formats (CIFAR-10 python batches, image folders, CamVid)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def make_cifar_batches(root: Path, per_batch: int = 20, seed: int = 0) -> Path:
    """cifar-10-batches-py/ with data_batch_1..5 and test_batch, pickled as the originals (protocol 2 dicts)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [i % 10 for i in range(per_batch)]
        data = rng.integers(0, 80, (per_batch, 3, 32, 32), dtype=np.uint8)
        for i, label in enumerate(labels):  # a class-coloured square makes it learnable
            data[i, label % 3, 4 + label : 14 + label, 4:20] = 250
        entry = {
            "batch_label": name,
            "labels": labels,
            "data": data.reshape(per_batch, -1),
            "filenames": [f"{name}_{i}.png" for i in range(per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(
            {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]},
            f,
            protocol=2,
        )
    return root


def make_image_folder(root: Path, per_class: int = 3, size: int = 32) -> Path:
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        for c, name in enumerate(("cat", "dog", "frog")):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                pixels[:, :, c] = 255
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


def make_camvid(root: Path, counts=(4, 2, 2), size=(48, 64)) -> Path:
    """SegNet layout: SPLIT/*.png RGB images and SPLITannot/*.png label masks (0-10, 11 void)."""
    rng = np.random.default_rng(2)
    for split, count in zip(("train", "val", "test"), counts, strict=True):
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            mask = np.zeros(size, dtype=np.uint8)
            mask[: size[0] // 2] = 0  # sky on top
            mask[size[0] // 2 :] = 3  # road below
            mask[:, : size[1] // 4] = 1 + i % 2
            mask[0, 0] = 11  # a void pixel
            image = np.stack([mask * 20, 255 - mask * 20, rng.integers(0, 255, size)], axis=-1).astype(np.uint8)
            Image.fromarray(image).save(root / split / f"img{i}.png")
            Image.fromarray(mask).save(root / f"{split}annot" / f"img{i}.png")
    return root
