"""MNIST read row by row by a recurrent network ("Deep Learning with PyTorch" quick start, chapter 5).

Each 28x28 image is a sequence of 28 time steps of 28 pixels; the last step's output is classified
by a linear layer (books/004_4ca77a64d1a80251.txt:50-72): a 2-layer ``nn.RNN`` of 100 units.

``--preset book`` is the chapter's program. Its code is an image in the text; the published notebook
(PacktPublishing/Deep-Learning-with-PyTorch-Quick-Start-Guide, Chapter05/chapter5_1.ipynb) has it:
batches of 100 (books/004_4ca77a64d1a80251.txt:68), ``ToTensor`` pixels in [0, 1], all 60,000
training images, SGD lr 0.1, one epoch, the last weights tested on the 10,000 test images; the notebook
prints test accuracy 0.8332 for this model.

The default differs from the book: Adam lr 0.001, batches of 64, gradient clipping at 1, standardized
pixels, 5 epochs, 5,000 training images held out to test the best epoch (test accuracy 0.9683,
REPRODUCE.md). ``mnist_lstm`` is the same program with the chapter's LSTM.
"""

from dataclasses import dataclass
from typing import Literal

from ignite_lab import Book, Preset, Recipe, recipe_main, setting
from ignite_lab.kit.datasets import MNIST_SOURCE
from ignite_lab.kit.models import row_classifier_parts


@dataclass
class Settings:
    cell: Literal["rnn", "lstm", "gru"] = setting("rnn", "recurrent layer type")
    hidden: int = setting(100, "hidden units", min=1)
    layers: int = setting(2, "stacked recurrent layers", min=1)
    optimizer: Literal["adam", "sgd"] = setting("adam", "optimiser (the chapter's: plain SGD)")
    clip: float = setting(1.0, "gradient norm clipping (0: none)", min=0)
    normalize: bool = setting(True, "standardize pixels (false: ToTensor's [0, 1])")
    validation: Literal["holdout", "none"] = setting(
        "holdout", "holdout: 5,000 training images by seed; none: train on all 60k, as the chapter"
    )


BOOK_SETTINGS = {"optimizer": "sgd", "clip": 0.0, "normalize": False, "validation": "none"}
BOOK_FLAGS = {"batch_size": 100, "eval_batch_size": 100, "lr": 0.1, "test_checkpoint": "last"}

RECIPE = Recipe(
    summary="MNIST rows as a sequence: 2-layer nn.RNN (100 units), last step -> linear.",
    dataset=MNIST_SOURCE,
    build=row_classifier_parts,
    settings=Settings,
    epochs=5,
    batch_size=64,
    lr=1e-3,
    presets={
        "book": Preset(
            source="Deep Learning with PyTorch quick start, ch. 5 (notebook chapter5_1): 2x100 RNN, SGD 0.1, 1 epoch",
            flags={**BOOK_FLAGS, "epochs": 1},
            settings={**BOOK_SETTINGS, "cell": "rnn", "hidden": 100, "layers": 2},
            figures={"test accuracy": 0.8332},
            note="printed by the chapter's published notebook; the text shows its figures as images",
            book=Book(
                cites=(
                    "books/004_4ca77a64d1a80251.txt:50",
                    "books/004_4ca77a64d1a80251.txt:68",
                    "PacktPublishing/Deep-Learning-with-PyTorch-Quick-Start-Guide Chapter05/chapter5_1.ipynb",
                ),
                batch=100,
                epochs=1,
                optimizer="SGD",
                lr=0.1,
                tested="last",
                sizes={"cell": "rnn", "hidden": 100, "layers": 2, "normalize": False, "validation": "none"},
                data="MNIST: all 60,000 training images, tested on 10,000",
            ),
        )
    },
)


if __name__ == "__main__":
    recipe_main(RECIPE)
