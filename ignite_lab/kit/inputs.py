"""A user's own inputs as model batches: image files and folders, sentences. Used by recipes' predictors
(``ignite-lab predict``) next to their data code, so prediction converts inputs as training did."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ignite_lab.core.errors import UserError


def is_image(path: Path) -> bool:
    """Whether PIL can read files named like ``path`` (by suffix, any case: .png, .JPG, .webp, .tif ...)."""
    from PIL import Image

    Image.init()  # registers every format plugin, so the table below is complete
    return path.suffix.lower() in Image.registered_extensions()


MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb limit (about 0.25 GB of RGB); larger images are refused


def read_image(path: Path, mode: str = "RGB") -> np.ndarray:
    """One image file as an array (RGB: H x W x 3 uint8; "L"/None: as stored), or a clear error naming it.

    The size is checked from the header before anything is decoded, so a small file that would decode
    to gigabytes (a decompression bomb) is refused at once.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # PIL warns past MAX_PIXELS; here such an image is refused instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            if img.width * img.height > MAX_PIXELS:
                raise UserError(
                    f"{path} is {img.width}x{img.height} pixels, more than the {MAX_PIXELS:,} an image may have here"
                )
            return np.asarray(img.convert(mode) if mode else img).copy()
    except Image.DecompressionBombError as exc:
        raise UserError(f"{path} is refused: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"{path} is not a readable image: {exc}") from None


def image_files(inputs: list[str]) -> list[Path]:
    """Image paths from files and folders (a folder: its images, sorted); a missing path is a clear error."""
    paths = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_image(p))
            if not found:
                raise UserError(f"{path} holds no images (no file with a suffix PIL reads: .png, .jpg, .webp ...)")
            paths += found
        elif path.is_file():
            paths.append(path)
        else:
            raise UserError(f"{path} does not exist")
    return paths


def read_images(inputs: list[str], mode: str, size: tuple[int, int] | None) -> tuple[list[str], torch.Tensor]:
    """Any image files, converted to ``mode`` ("L" or "RGB") and resized to ``size`` (height, width): uint8 NCHW."""
    from PIL import Image

    paths = image_files(inputs)
    arrays = []
    for path in paths:
        array = read_image(path, mode)  # a non-image is one clear error naming the file
        if size is not None and array.shape[:2] != size:
            array = np.asarray(Image.fromarray(array).resize((size[1], size[0]), Image.BILINEAR))
        arrays.append(array if array.ndim == 3 else array[..., None])
    if len({a.shape for a in arrays}) > 1:
        raise UserError("the images have different sizes; this model takes one size at a time: predict them apart")
    return [str(p) for p in paths], torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def as_batch(transform: Any, images: torch.Tensor) -> torch.Tensor:
    """uint8 images through a recipe's training transform (a ``Normalize``), labels aside."""
    x, _ = transform(images, torch.zeros(len(images), dtype=torch.long))
    return x


def words(text: str) -> list[str]:
    """Lowercased words and punctuation apart ("What's this?" -> what ' s this ?), as TREC and SNLI are tokenized."""
    tokens = re.findall(r"\w+|[^\w\s]", text.lower())
    if not tokens:
        raise UserError(f"{text!r} has no words")
    return tokens
