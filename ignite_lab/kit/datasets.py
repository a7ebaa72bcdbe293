"""Readers for the datasets the recipes use, with messages that say which file is wrong."""

from __future__ import annotations

import gzip
import logging
import pickle
from pathlib import Path

import numpy as np
import torch

from ignite_lab.core.errors import UserError
from ignite_lab.core.recipe import Predictor
from ignite_lab.kit.augment import random_crop, random_flip
from ignite_lab.kit.inputs import as_batch, is_image, read_image, read_images
from ignite_lab.training.loaders import TensorData, holdout_split

log = logging.getLogger(__name__)

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
# Samples shipped with the toolkit, so recipes run offline: a recipe passes one of these folders to a reader.
BUNDLED = Path(__file__).resolve().parent.parent / "data"
MNIST_SOURCE = "MNIST (bundled 12k sample; --data-dir for all 70k)"


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


def load_mnist(data_dir: str | Path, split: str, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 for ``train`` or ``test`` from ``data_dir``.

    The idx files may be flat or in torchvision's MNIST/raw layout, gzipped or not; when they are
    missing, torchvision downloads them there if ``download`` and the network allows.
    """
    root = Path(data_dir).expanduser()
    stems = MNIST_FILES[split]
    paths = [_find(root, stem) for stem in stems]
    if None in paths and download and _download_mnist(root):
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
    data_dir: str | None,
    seed: int,
    bundled: Path | None = None,
    normalize: bool = True,
    validation: str = "holdout",
) -> tuple[TensorData, TensorData, TensorData]:
    """MNIST: train, validation and test; batches of (B, 1, 28, 28) floats.

    From ``data_dir``, or without one from ``bundled`` (the 12,000-image sample shipped with the
    toolkit). Decoded once and kept as uint8; batches are slices (see loaders.TensorData), converted as
    they are drawn: standardized, or with ``normalize=False`` in [0, 1] as the books' ``ToTensor`` gives
    them. ``validation``: "holdout", a seeded twelfth of the training images (5,000 of 60,000);
    "lightning", Raschka's ``random_split([55000, 5000], seed 1)``; "none", all 60,000 train and the
    training images are validated on (monitoring only), as the books that hold nothing out.
    """
    if not data_dir and bundled is None:
        raise UserError("MNIST: pass --data-dir DIR (torchvision downloads it there when online)")
    log.info("MNIST from %s", data_dir or f"bundled sample {bundled}")

    def prepare(split: str) -> TensorData:
        images, labels = load_mnist(data_dir or bundled, split, download=bool(data_dir))
        return TensorData(images.unsqueeze(1), labels)  # uint8: each batch is converted as it is drawn

    convert = mnist_normalize(normalize)
    train, val = mnist_validation(prepare("train"), validation, seed)
    return train.with_transform(convert), val.with_transform(convert), prepare("test").with_transform(convert)


def mnist_normalize(normalize: bool) -> Normalize:
    """Standardized with MNIST's mean and std, or ToTensor's [0, 1]."""
    return Normalize(((MNIST_MEAN,), (MNIST_STD,)) if normalize else ((0.0,), (1.0,)))


def mnist_validation(train: TensorData, validation: str, seed: int) -> tuple[TensorData, TensorData]:
    """(train, val) of the training images, as ``mnist_splits`` describes."""
    if validation == "none":
        return train, train
    if validation == "lightning":  # random_split(lengths=[55000, 5000], seed 1): the last twelfth of randperm
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(1))
        n_val = round(len(train) / 12)
        return train.subset(order[:-n_val]), train.subset(order[-n_val:])
    return holdout_split(train, 1 / 12, seed)  # 5,000 of 60,000


CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


class _ArrayUnpickler(pickle.Unpickler):
    """CIFAR's python batches are pickles; allow only what they hold (dicts, lists, bytes, numpy arrays)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    try:
        with open(path, "rb") as f:
            entry = _ArrayUnpickler(f, encoding="latin1").load()
        data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = list(entry.get("labels", entry.get("fine_labels", [])))
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise UserError(f"{path} is not a CIFAR-10 python batch: {exc}") from None
    if len(labels) != len(data) or (labels and not 0 <= min(labels) <= max(labels) < 10):
        raise UserError(f"{path}: {len(data)} images but {len(labels)} labels in 0-9")
    return data, labels


def _cifar_root(data_dir: Path) -> Path | None:
    for folder in (data_dir / "cifar-10-batches-py", data_dir):
        if all((folder / name).is_file() for names in CIFAR10_FILES.values() for name in names):
            return folder
    return None


def load_cifar10(data_dir: str | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 ``train`` or ``test`` as (N, 3, 32, 32) uint8 images and int64 labels.

    Reads the python batches (``cifar-10-batches-py/``), downloading them with torchvision when
    missing and online, or an image folder (``train/<class>/*.png|jpg``, ``test/<class>/...``).
    """
    if not data_dir:
        raise UserError("CIFAR-10 is not bundled: pass --data-dir DIR (torchvision downloads it there when online)")
    root = Path(data_dir).expanduser()
    if (root / "train").is_dir() and (root / "test").is_dir():
        return load_image_folder(root / split)
    folder = _cifar_root(root)
    if folder is None:
        from torchvision.datasets import CIFAR10

        try:
            CIFAR10(str(root), train=True, download=True)
            folder = _cifar_root(root)
        except Exception as exc:
            log.warning("could not download CIFAR-10 into %s: %s", root, exc)
    if folder is None:
        names = ", ".join(n for names in CIFAR10_FILES.values() for n in names)
        raise UserError(
            f"CIFAR-10 not found under {root} and could not be downloaded. Expected {root / 'cifar-10-batches-py'}/ "
            f"with {names} (the python version from https://www.cs.toronto.edu/~kriz/cifar.html), "
            f"or an image folder {root}/train/<class>/*.png and {root}/test/<class>/*.png."
        )
    parts = [_read_cifar_batch(folder / name) for name in CIFAR10_FILES[split]]
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = torch.tensor([label for p in parts for label in p[1]], dtype=torch.long)
    return images, labels


def data_file(data_dir: str | None, names: tuple[str, ...], what: str, subfolder: str = "") -> Path:
    """The first of ``names`` in ``data_dir`` (or its ``subfolder``), else a clear error saying ``what`` is missing."""
    if not data_dir:
        raise UserError(f"{what} is not bundled: pass --data-dir DIR holding {' or '.join(names)}")
    root = Path(data_dir).expanduser()
    for folder in (root, root / subfolder) if subfolder else (root,):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    raise UserError(f"{what} not found: expected {root}/{' or '.join(names)}")


class ImageStack:
    """Images decoded one by one into a single preallocated uint8 (N, C, H, W) tensor: no list of N small
    tensors and no copy when stacking, so peak memory is the data itself. All images must share one size."""

    def __init__(self, count: int, folder: Path) -> None:
        if not count:
            raise UserError(f"no .png/.jpg images in {folder}")
        self.count, self.folder, self.data = count, folder, None

    def put(self, index: int, image: np.ndarray, path: Path) -> None:
        chw = torch.from_numpy(image).permute(2, 0, 1) if image.ndim == 3 else torch.from_numpy(image)
        if self.data is None:
            self.data = torch.empty((self.count, *chw.shape), dtype=torch.uint8)
        if chw.shape != self.data.shape[1:]:
            raise UserError(
                f"{path} is {tuple(chw.shape)} but {self.folder} began with {tuple(self.data.shape[1:])}; "
                "resize the images to one size"
            )
        self.data[index] = chw


def load_image_folder(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """``folder/<class>/*.png|jpg`` decoded once into uint8 (N, 3, H, W) tensors; classes in sorted order."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not classes:
        raise UserError(f"{folder} has no class folders (expected {folder}/<class>/*.png)")
    files = [(i, path) for i, name in enumerate(classes) for path in sorted((folder / name).iterdir())]
    files = [(i, path) for i, path in files if is_image(path)]
    stack = ImageStack(len(files), folder)
    for index, (_, path) in enumerate(files):
        stack.put(index, read_image(path), path)
    return stack.data, torch.tensor([label for label, _ in files])


CAMVID_CLASSES = (
    "sky",
    "building",
    "pole",
    "road",
    "pavement",
    "tree",
    "sign",
    "fence",
    "car",
    "pedestrian",
    "bicyclist",
)
CAMVID_VOID = 11
CAMVID_PALETTE = np.array(
    [
        (128, 128, 128),
        (128, 0, 0),
        (192, 192, 128),
        (128, 64, 128),
        (60, 40, 222),
        (128, 128, 0),
        (192, 128, 128),
        (64, 64, 128),
        (64, 0, 128),
        (64, 64, 0),
        (0, 128, 192),
        (0, 0, 0),
    ],
    dtype=np.uint8,
)  # the SegNet tutorial colours; void is black


def load_camvid(data_dir: str | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """CamVid in the SegNet layout: ``SPLIT/`` images and ``SPLITannot/`` masks (labels 0-10, 11 void).

    An image and its mask share a file stem, in any formats PIL reads (the full CamVid here has JPEG
    images and PNG masks). Returns uint8 images (N, 3, H, W) and uint8 masks (N, H, W), decoded once (a
    batch becomes float and int64 only when it is drawn: 701 CamVid images take 0.5 GB instead of 2.4 GB).
    """
    if not data_dir:
        raise UserError("CamVid is not bundled: pass --data-dir DIR holding train/ trainannot/ val/ valannot/ ...")
    root = Path(data_dir).expanduser()
    image_dir, mask_dir = root / split, root / f"{split}annot"
    if not image_dir.is_dir() or not mask_dir.is_dir():
        raise UserError(
            f"CamVid {split} split not found: expected {image_dir}/ images and {mask_dir}/ masks "
            "(the SegNet CamVid layout: train, val, test and their *annot folders)"
        )
    pairs = stem_pairs(image_dir, mask_dir)
    images, masks = ImageStack(len(pairs), image_dir), ImageStack(len(pairs), mask_dir)
    for index, (path, mask_path) in enumerate(pairs):
        image, labels = read_image(path), read_image(mask_path, mode=None)
        if labels.ndim != 2 or labels.shape != image.shape[:2]:
            raise UserError(f"{mask_path}: mask of size {labels.shape} does not match its image {image.shape[:2]}")
        if labels.max() > CAMVID_VOID:
            raise UserError(f"{mask_path}: labels must be 0-{CAMVID_VOID}, found {labels.max()}")
        images.put(index, image, path)
        masks.put(index, labels.astype(np.uint8), mask_path)
    return images.data, masks.data


def stem_pairs(image_dir: Path, mask_dir: Path) -> list[tuple[Path, Path]]:
    """Each image with the mask of the same stem; a missing or doubled mask is named."""
    masks: dict[str, list[Path]] = {}
    for mask in sorted(p for p in mask_dir.iterdir() if p.is_file() and is_image(p)):
        masks.setdefault(mask.stem, []).append(mask)
    images = sorted(p for p in image_dir.iterdir() if p.is_file() and is_image(p))
    if not images:
        raise UserError(f"{image_dir} holds no images (no file with a suffix PIL reads)")
    pairs = []
    for image in images:
        found = masks.get(image.stem, [])
        if len(found) != 1:
            what = "no mask" if not found else f"{len(found)} masks ({', '.join(p.name for p in found)})"
            raise UserError(f"{image} has {what} named {image.stem}.* in {mask_dir}: each image needs exactly one")
        pairs.append((image, found[0]))
    return pairs


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # the books' Normalize((0.5,) * 3, (0.5,) * 3): pixels to [-1, 1]


class Normalize:
    """uint8 image batches -> normalized float, per batch (images stay uint8 in memory: 4x smaller)."""

    def __init__(self, mean_std: tuple[tuple[float, ...], tuple[float, ...]] = HALF, augment: bool = False) -> None:
        mean = torch.tensor(mean_std[0]).view(1, -1, 1, 1)
        std = torch.tensor(mean_std[1]).view(1, -1, 1, 1)
        self.scale, self.shift = 1 / (255 * std), mean / std  # (x / 255 - mean) / std = x * scale - shift
        self.augment = augment

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # one new tensor and two in-place passes: 66 us against 119 us for four passes (an MNIST batch of 64)
        images = images.to(torch.float32, copy=True).mul_(self.scale).sub_(self.shift)
        if self.augment:  # flips and 4-pixel-padded crops (zero padding after normalization, as torchvision's)
            images, _ = random_flip(images)
            images, _ = random_crop(images, tuple(images.shape[-2:]), padding=4)
        return images, labels


def mixed(data: TensorData) -> TensorData:
    """The same examples in one fixed order that mixes the classes (the same for every run and seed): image
    folders list each class in turn, and an evaluation cut short by ``--limit-batches`` should see them all.
    Only for evaluation data, whose full-pass metrics do not depend on order."""
    return data.subset(torch.randperm(len(data), generator=torch.Generator().manual_seed(0)))


def cifar10_splits(
    data_dir: str | None, seed: int, augment: bool = False, val_size: int = 5000, mean_std=HALF
) -> tuple[TensorData, TensorData, TensorData]:
    """CIFAR-10 decoded once into uint8 tensors: train (with batch flips and padded crops if ``augment``), a
    seeded validation holdout of ``val_size`` (0: validate on the training images) and test; every batch is
    normalized with ``mean_std`` as it is drawn."""
    images, labels = load_cifar10(data_dir, "train")
    data = TensorData(images, labels)
    if val_size:
        train, val = holdout_split(data, min(val_size, len(labels) - 1) / len(labels), seed)
    else:
        train, val = data, mixed(data)
    test = mixed(TensorData(*load_cifar10(data_dir, "test")))
    plain = Normalize(mean_std)
    train = train.with_transform(Normalize(mean_std, augment) if augment else plain)
    return train, val.with_transform(plain), test.with_transform(plain)


MNIST_NORMALIZE = Normalize(((MNIST_MEAN,), (MNIST_STD,)))


def mnist_predictor(normalize: Normalize = MNIST_NORMALIZE) -> Predictor:
    """A user's images as MNIST digits: greyscale 28x28 and the training normalization. MNIST digits are light
    on dark; an image whose mean is light (a dark pen on paper) is inverted first."""

    def read(inputs: list[str]) -> tuple[list[str], torch.Tensor]:
        names, images = read_images(inputs, "L", (28, 28))
        light = images.float().mean(dim=(1, 2, 3)) > 127
        images = torch.where(light[:, None, None, None], 255 - images, images)
        return names, as_batch(normalize, images)

    return Predictor(read, classes=[str(d) for d in range(10)], note="image files or folders of digits")


def cifar10_predictor(mean_std=HALF) -> Predictor:
    """A user's images as CIFAR-10 ones: RGB resized to 32x32, the training normalization."""

    def read(inputs: list[str]) -> tuple[list[str], torch.Tensor]:
        names, images = read_images(inputs, "RGB", (32, 32))
        return names, as_batch(Normalize(mean_std), images)

    return Predictor(read, classes=CIFAR10_CLASSES, note="image files or folders")
