"""Augmentation on whole batches of tensors (the in-memory fast path has no per-sample transforms).

Masks, when given, get exactly the same flips and crops as their images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_flip(images: torch.Tensor, masks: torch.Tensor | None = None):
    """Mirror a random half of the batch left-right."""
    flip = torch.rand(images.shape[0]) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    if masks is not None:
        masks = torch.where(flip[:, None, None], masks.flip(-1), masks)
    return images, masks


def random_crop(
    images: torch.Tensor, size: tuple[int, int], padding: int = 0, masks: torch.Tensor | None = None, mask_fill: int = 0
):
    """A random ``size`` window per sample, after zero padding (CIFAR style) if ``padding``."""
    if padding:
        images = F.pad(images, (padding,) * 4)
        if masks is not None:
            masks = F.pad(masks, (padding,) * 4, value=mask_fill)
    height, width = images.shape[-2:]
    th, tw = size
    if th > height or tw > width:
        raise ValueError(f"crop {size} is larger than the images ({height}, {width})")
    tops = torch.randint(0, height - th + 1, (images.shape[0],)).tolist()
    lefts = torch.randint(0, width - tw + 1, (images.shape[0],)).tolist()
    images = torch.stack([img[:, t : t + th, lf : lf + tw] for img, t, lf in zip(images, tops, lefts, strict=True)])
    if masks is not None:
        masks = torch.stack([m[t : t + th, lf : lf + tw] for m, t, lf in zip(masks, tops, lefts, strict=True)])
    return images, masks
