"""LinkNet semantic segmentation on CamVid ("PyTorch Deep Learning Hands-On", semantic segmentation chapter).

An initial block (7x7 conv stride 2 + max pool), four encoder blocks (two ConvBlocks each, with a
strided residual path), four decoder blocks (1x1 conv, transposed conv to the size of the matching
encoder output, 1x1 conv) added to that encoder output, and a final block that upsamples twice back
to the input size. CamVid is read in SegNet's layout, images matched to masks by file stem in any
format PIL reads; void pixels (label 11) are ignored by loss and metrics.

``--preset book`` is the chapter's program. ``SegmentationModel`` as its code has it
(books/001_0223ea76c81a8105.txt:2070-2110): every ConvBlock ends in ReLU and has a bias, an encoder adds
its strided residual before its second pair of convs and returns ``block2 + block1``, the last decoder
has no skip connection, and the final 2x2 transposed conv to 2 channels is followed by BatchNorm and
ReLU. The training is the authors' published script (segmentation.py, dataset.py): pedestrians
against everything else (their label files keep pedestrians only; here SegNet's class 9 against the
rest, void included), ToTensor pixels normalized with mean (104.0, 116.7, 122.7) and std 255 as their
code has it, whole 480x360 images without augmentation, Adam lr 0.001, batches of 8, 64 epochs, the
last weights tested. Run on all of CamVid (REPRODUCE.md), it tests at mIoU 0.496: background IoU 0.992 and
pedestrian IoU 0.0001. Pedestrians are 0.77% of the test pixels and the book's network marks almost none of
them; the chapter prints only losses, so there is no figure of its own to compare.

The default (``arch=linknet``) differs from the book: the 11 CamVid classes, the LinkNet paper's
ResNet-18 blocks (ReLU after each residual sum, no bias before BN), a skip at every decoder, raw class
scores from a 3x3 final transposed conv (which also returns odd image sizes), ImageNet's mean and std,
and 30 epochs of 256x256 random crops with flips.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from ignite.engine import Events
from ignite.metrics import ConfusionMatrix, IoU, mIoU
from ignite.metrics.confusion_matrix import cmAccuracy
from torch import nn

from ignite_lab import (
    Book,
    Parts,
    Predictor,
    Preset,
    Recipe,
    RunView,
    TensorData,
    TrainConfig,
    UserError,
    recipe_main,
    setting,
)
from ignite_lab.kit.augment import random_crop, random_flip
from ignite_lab.kit.datasets import CAMVID_CLASSES, CAMVID_PALETTE, CAMVID_VOID, load_camvid
from ignite_lab.kit.inputs import read_images

MEAN_STD = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # the authors' dataset.py: Normalize([104.00699, 116.66877, 122.67892], [255] * 3) after ToTensor's 0-1
    "book": ((104.00699, 116.66877, 122.67892), (255.0, 255.0, 255.0)),
}
PEDESTRIAN = CAMVID_CLASSES.index("pedestrian")


@dataclass
class Settings:
    width: int = setting(64, "channels of the initial block (the chapter's 64; encoders x1-x8)", min=1)
    crop: int = setting(256, "square random crop while training (evaluation uses whole images)", min=32)
    grid: int = setting(3, "validation images in the prediction grid", min=0)
    grid_every: int = setting(1, "publish the prediction grid every N epochs", min=1)
    arch: Literal["linknet", "book"] = setting("linknet", "see the recipe's docstring")
    classes: Literal["camvid", "pedestrian"] = setting(
        "camvid", "camvid: the 11 classes, void ignored; pedestrian: the chapter's 2, pedestrian against the rest"
    )
    augment: bool = setting(True, "random flips and crops while training (off: whole images, as the chapter)")
    normalize: Literal["imagenet", "book"] = setting(
        "imagenet", "imagenet: ImageNet mean/std; book: the chapter's mean 104-123 and std 255 on 0-1 pixels"
    )
    channels_last: bool = setting(True, "NHWC convolutions (faster on CPUs)")


class ConvBlock(nn.Sequential):
    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, padding: int, relu: bool = True, bias: bool = False
    ) -> None:
        layers = [nn.Conv2d(cin, cout, kernel, stride, padding, bias=bias), nn.BatchNorm2d(cout)]
        super().__init__(*layers, *([nn.ReLU(inplace=True)] if relu else []))


class DeconvBlock(nn.Module):
    """Transposed conv told the exact output size, so odd feature-map sizes line up with the encoder."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, padding: int, relu: bool = True, bias: bool = False
    ) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(cin, cout, kernel, stride, padding, bias=bias)
        self.after = nn.Sequential(nn.BatchNorm2d(cout), *([nn.ReLU(inplace=True)] if relu else []))

    def forward(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        return self.after(self.deconv(x, output_size=size[-2:]))


class EncoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.block1 = nn.Sequential(ConvBlock(cin, cout, 3, 2, 1), ConvBlock(cout, cout, 3, 1, 1, relu=False))
        self.residual = ConvBlock(cin, cout, 3, 2, 1, relu=False)
        self.block2 = nn.Sequential(ConvBlock(cout, cout, 3, 1, 1), ConvBlock(cout, cout, 3, 1, 1, relu=False))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.relu(self.block1(x) + self.residual(x))
        return self.relu(self.block2(first) + first)


class DecoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int, bias: bool = False) -> None:
        super().__init__()
        self.conv1 = ConvBlock(cin, cin // 4, 1, 1, 0, bias=bias)
        self.deconv = DeconvBlock(cin // 4, cin // 4, 3, 2, 1, bias=bias)
        self.conv2 = ConvBlock(cin // 4, cout, 1, 1, 0, bias=bias)

    def forward(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        return self.conv2(self.deconv(self.conv1(x), size))


class LinkNet(nn.Module):
    def __init__(self, classes: int, width: int = 64) -> None:
        super().__init__()
        w = [width, width, 2 * width, 4 * width, 8 * width]
        self.initial = ConvBlock(3, w[0], 7, 2, 3)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.encoders = nn.ModuleList([EncoderBlock(w[i], w[i + 1]) for i in range(4)])
        self.decoders = nn.ModuleList([DecoderBlock(w[i + 1], w[i]) for i in range(4)])
        self.final_deconv1 = DeconvBlock(w[0], w[0] // 2, 3, 2, 1)
        self.final_conv = ConvBlock(w[0] // 2, w[0] // 2, 3, 1, 1)
        # 3x3 rather than the chapter's 2x2 kernel: it can return odd sizes too (2n-1 or 2n), so any image fits
        self.final_deconv2 = DeconvBlock(w[0] // 2, classes, 3, 2, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        initial = self.initial(x)
        skips = [self.pool(initial)]
        for encoder in self.encoders:
            skips.append(encoder(skips[-1]))
        y = skips[-1]
        for i in reversed(range(4)):  # decoder i+1 brings encoder i+1's output back to encoder i's size
            y = skips[i] + self.decoders[i](y, skips[i].shape)
        y = self.final_conv(self.final_deconv1(y, initial.shape))
        return self.final_deconv2(y, x.shape)


class BookEncoderBlock(nn.Module):
    """The chapter's encoder: ReLU in every ConvBlock; the residual joins before the second pair of convs."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.block1 = nn.Sequential(ConvBlock(cin, cout, 3, 2, 1, bias=True), ConvBlock(cout, cout, 3, 1, 1, bias=True))
        self.block2 = nn.Sequential(
            ConvBlock(cout, cout, 3, 1, 1, bias=True), ConvBlock(cout, cout, 3, 1, 1, bias=True)
        )
        self.residue = ConvBlock(cin, cout, 3, 2, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.block1(x)
        return self.block2(out1 + self.residue(x)) + out1


class BookSegmentationModel(nn.Module):
    """The chapter's SegmentationModel, with ``classes`` outputs."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.init_conv = ConvBlock(3, 64, 7, 2, 3, bias=True)
        self.init_maxpool = nn.MaxPool2d(3, 2, 1)
        w = [64, 64, 128, 256, 512]
        self.encoders = nn.ModuleList([BookEncoderBlock(w[i], w[i + 1]) for i in range(4)])
        self.decoders = nn.ModuleList([DecoderBlock(w[i + 1], w[i], bias=True) for i in range(4)])
        self.final_deconv1 = DeconvBlock(64, 32, 3, 2, 1, bias=True)
        self.final_conv = ConvBlock(32, 32, 3, 1, 1, bias=True)
        self.final_deconv2 = DeconvBlock(32, classes, 2, 2, 0, bias=True)  # with BatchNorm and ReLU, as the book

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        init_conv = self.init_conv(x)
        skips = [self.init_maxpool(init_conv)]
        for encoder in self.encoders:
            skips.append(encoder(skips[-1]))
        y = skips[-1]
        for i in reversed(range(4)):  # d4 = dec4(e4) + e3 ... d1 = dec1(d2), no skip
            y = self.decoders[i](y, skips[i].shape) + (skips[i] if i > 0 else 0)
        y = self.final_conv(self.final_deconv1(y, init_conv.shape))
        return self.final_deconv2(y, x.shape)


class Normalize:
    """uint8 (N, 3, H, W) -> float with one of the MEAN_STD pairs, per batch (images stay uint8 in memory)."""

    def __init__(self, name: str) -> None:
        mean, std = MEAN_STD[name]
        self.mean, self.std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() / 255 - self.mean) / self.std


def targets(masks: torch.Tensor, classes: str) -> torch.Tensor:
    """CamVid labels as the model's targets: as they are, or 1 for pedestrian and 0 for the rest (void too)."""
    return masks.long() if classes == "camvid" else (masks == PEDESTRIAN).long()


def class_names(classes: str) -> tuple[str, ...]:
    return CAMVID_CLASSES if classes == "camvid" else ("other", "pedestrian")


def colorize(mask: np.ndarray, classes: str = "camvid") -> np.ndarray:
    """Labels in the CamVid palette (the two-class target: pedestrians in its colour on black)."""
    if classes != "camvid":
        mask = np.where(mask == 1, PEDESTRIAN, CAMVID_VOID)
    return CAMVID_PALETTE[np.clip(mask, 0, CAMVID_VOID)]


def write_masks(names: list[str], scores: torch.Tensor, classes: str = "camvid") -> list[str]:
    """Each image's predicted classes as a mask in the CamVid palette, written beside it as NAME.mask.png."""
    from PIL import Image

    written = []
    for name, image_scores in zip(names, scores, strict=True):
        path = Path(name).with_name(f"{Path(name).stem}.mask.png")
        try:
            Image.fromarray(colorize(image_scores.argmax(0).numpy(), classes)).save(path)
        except OSError as exc:
            raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
        written.append(str(path))
    return written


def prediction_grid(model: nn.Module, images: torch.Tensor, truth: torch.Tensor, pictures: torch.Tensor, s, device):
    """Rows of (image, prediction, truth) in the CamVid palette."""
    model.eval()
    with torch.inference_mode():
        predicted = model(images.to(device)).argmax(1).cpu().numpy()
    rows = [
        np.concatenate([pic, colorize(pred, s.classes), colorize(true, s.classes)], axis=1)
        for pic, pred, true in zip(pictures.permute(0, 2, 3, 1).numpy(), predicted, truth.numpy(), strict=True)
    ]
    return np.concatenate(rows, axis=0)


def build(config: TrainConfig, s: Settings) -> Parts:
    data = {split: TensorData(*load_camvid(config.data_dir, split)) for split in ("train", "val", "test")}  # uint8
    normalize, names = Normalize(s.normalize), class_names(s.classes)
    void = CAMVID_VOID if s.classes == "camvid" else -100  # the two-class target has no void: it is "other"

    def prepare(images: torch.Tensor, masks: torch.Tensor):
        return normalize(images), targets(masks, s.classes)

    def augment(images: torch.Tensor, masks: torch.Tensor):
        images, masks = random_flip(*prepare(images, masks))
        size = (min(s.crop, images.shape[-2]), min(s.crop, images.shape[-1]))
        return random_crop(images, size, masks=masks, mask_fill=void)

    def metrics():
        cm = ConfusionMatrix(num_classes=len(names))  # CamVid targets >= 11 (void) are left out
        return {"pixel_accuracy": cmAccuracy(cm), "miou": mIoU(cm), "iou": IoU(cm)}

    model = BookSegmentationModel(len(names)) if s.arch == "book" else LinkNet(len(names), s.width)
    shown_images, shown_masks = data["val"].tensors[0][: s.grid], data["val"].tensors[1][: s.grid]
    shown = (*prepare(shown_images, shown_masks), shown_images)

    def handlers(run: RunView) -> None:
        @run.trainer.on(Events.EPOCH_COMPLETED(every=s.grid_every))
        def publish_grid(trainer) -> None:
            grid = prediction_grid(run.model, *shown, s, run.device)
            epoch = trainer.state.epoch
            run.publish.image("predictions", grid, epoch=epoch, title=f"image | prediction | truth (epoch {epoch})")

    def read(inputs: list[str]) -> tuple[list[str], torch.Tensor]:
        paths, images = read_images(inputs, "RGB", None)  # whole images, any size, as evaluation sees them
        return paths, normalize(images)

    def write(paths: list[str], scores: torch.Tensor) -> list[str]:
        return write_masks(paths, scores, s.classes)

    predictor = Predictor(read, names, write=write, note="image files or folders, any size", batch=False)

    return Parts(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=config.lr),
        loss_fn=nn.CrossEntropyLoss(ignore_index=void),
        train=data["train"].with_transform(augment if s.augment else prepare),
        val=data["val"].with_transform(prepare),
        test=data["test"].with_transform(prepare),
        metrics=metrics,
        channels_last=s.channels_last,
        handlers=handlers,
        predictor=predictor,
    )


RECIPE = Recipe(
    score="miou",
    summary="LinkNet encoder-decoder segmentation, 11 CamVid classes, mIoU.",
    dataset="CamVid, SegNet layout (--data-dir with train/ trainannot/ val/ ...)",
    build=build,
    settings=Settings,
    epochs=30,
    batch_size=8,
    eval_batch_size=4,  # whole 360x480 images: 4 at a time keep the peak memory 0.5 GB lower than 16
    lr=1e-3,
    presets={
        "book": Preset(
            source="PyTorch Deep Learning Hands-On, segmentation chapter: SegmentationModel, Adam, batch 8, 64 epochs",
            flags={"epochs": 64, "batch_size": 8, "lr": 1e-3, "test_checkpoint": "last"},
            settings={"arch": "book", "classes": "pedestrian", "augment": False, "normalize": "book"},
            note="the chapter prints losses only",
            book=Book(
                cites=(
                    "books/001_0223ea76c81a8105.txt:2070-2110",
                    "hhsecond/HandsOnDeepLearningWithPytorch 4.ComputerVision/SemSeg/segmentation.py",
                    "hhsecond/HandsOnDeepLearningWithPytorch 4.ComputerVision/SemSeg/dataset.py",
                ),
                batch=8,
                epochs=64,
                optimizer="Adam",
                lr=0.001,
                tested="last",
                sizes={"arch": "book", "classes": "pedestrian", "augment": False, "normalize": "book"},
                data="CamVid 367 training images, pedestrians against the rest, tested on 233",
                differs=(
                    "the authors' label files keep pedestrians only; here they are cut from SegNet's 11-class masks",
                    "the script tests every 50 epochs; here validation runs every epoch (it changes no weights)",
                ),
            ),
        )
    },
)

if __name__ == "__main__":
    recipe_main(RECIPE)
