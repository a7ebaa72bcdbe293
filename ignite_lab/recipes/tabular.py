"""Your own table, no code: regression or classification of one column from the others with an MLP.

``--data-dir FILE`` (CSV, TSV, whitespace columns: the delimiter and the header are sniffed, or set with
``--set delimiter=`` and ``--set header=``), or a folder holding ``train`` and optional ``val`` and
``test`` files. ``--set target=COLUMN`` names what to predict (default: the last column). The task is
inferred from the target (text, or at most 20 whole-number values: classification; else regression) and
said in the log, or set with ``--set task=``. Every column is prepared from the training rows only:
numbers standardized, a missing number imputed with the mean and flagged in a 0/1 column, text columns
embedded (or one-hot), a column with more than ``max_levels`` distinct texts (an identifier) left out.
That preparation is kept as ``preprocess.json`` with the run, so ``predict`` and ``export`` apply it.
Regression reports mse, rmse and mae in the target's own units; classification, accuracy.

    ignite-lab run tabular --data-dir cars.csv --set target=mpg
    ignite-lab predict tabular --checkpoint runs/tabular/RUN/checkpoints/best_*.pt new_cars.csv
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import torch
from ignite.metrics import Accuracy, MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError
from torch import nn

from ignite_lab import (
    Parts,
    Predictor,
    Recipe,
    TensorData,
    TrainConfig,
    UserError,
    holdout_split,
    recipe_main,
    run_file,
    setting,
)
from ignite_lab.kit.tables import SUFFIXES, TablePrep, infer_task, read_table


@dataclass
class Settings:
    target: str = setting("", "the column to predict (default: the last)")
    task: Literal["auto", "regression", "classification"] = setting("auto", "inferred from the target when auto")
    delimiter: str = setting("", "column separator: sniffed when empty; 'whitespace' for runs of spaces")
    header: Literal["auto", "first", "none"] = setting("auto", "whether the first line names the columns")
    encoding: str = setting("utf-8", "the files' text encoding (e.g. latin-1)")
    drop: str = setting("", "columns to leave out, comma-separated")
    categorical: Literal["embed", "onehot"] = setting("embed", "how text columns enter the MLP")
    max_levels: int = setting(50, "text columns with more distinct values are left out", min=2)
    hidden: int = setting(64, "units of each hidden layer", min=1)
    layers: int = setting(2, "hidden layers", min=1)
    dropout: float = setting(0.1, "dropout after each hidden layer", min=0, max=1)
    val_fraction: float = setting(0.1, "training rows held out for validation (no val file)", min=0, max=0.9)
    test_fraction: float = setting(0.2, "rows held out for testing (no test file)", min=0, max=0.9)


class TableMLP(nn.Module):
    """Numbers and category embeddings (or one-hot codes) -> MLP; regression outputs are in the target's units."""

    def __init__(self, prep: TablePrep, s: Settings) -> None:
        super().__init__()
        self.onehot = s.categorical == "onehot"
        sizes = [len(levels) + 1 for levels in prep.categorical.values()]
        dims = sizes if self.onehot else [min(16, (n + 1) // 2) for n in sizes]
        self.embeddings = nn.ModuleList(
            [] if self.onehot else [nn.Embedding(n, d) for n, d in zip(sizes, dims, strict=True)]
        )
        self.sizes = sizes
        width, layers = prep.width + sum(dims), []
        for _ in range(s.layers):
            layers += [nn.Linear(width, s.hidden), nn.ReLU(), nn.Dropout(s.dropout)]
            width = s.hidden
        outputs = len(prep.classes) if prep.task == "classification" else 1
        self.net = nn.Sequential(*layers, nn.Linear(width, outputs))
        self.regression = prep.task == "regression"
        self.register_buffer("scale", torch.tensor(prep.target_scale, dtype=torch.float32))

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        numbers, codes = batch
        if self.onehot:
            columns = [nn.functional.one_hot(codes[:, i], n).float() for i, n in enumerate(self.sizes)]
        else:
            columns = [embed(codes[:, i]) for i, embed in enumerate(self.embeddings)]
        out = self.net(torch.cat([numbers, *columns], dim=1))
        return out.squeeze(1) * self.scale[1] + self.scale[0] if self.regression else out


def split_frames(config: TrainConfig, s: Settings) -> dict:
    """train/val/test DataFrames: the folder's files, or seeded holdouts of the one file."""
    if not config.data_dir:
        raise UserError("tabular needs --data-dir FILE.csv (or a folder with train.csv and optional val/test)")
    root = Path(config.data_dir)
    read = partial(read_table, delimiter=s.delimiter, header=s.header, encoding=s.encoding)
    if root.is_dir():
        found = {p.stem.lower(): p for p in sorted(root.iterdir()) if p.suffix.lower() in SUFFIXES}
        if "train" not in found:
            raise UserError(f"{root} has no train file (train.csv, train.tsv ...): or pass the one file itself")
        frames = {split: read(found[split]) for split in ("train", "val", "test") if split in found}
    elif root.is_file():
        frames = {"train": read(root)}
    else:
        raise UserError(f"{root} does not exist")
    rows = list(range(len(frames["train"])))
    if "test" not in frames and s.test_fraction:
        rest, held = holdout_split(rows, s.test_fraction, config.seed)
        frames["test"], rows = frames["train"].iloc[held], rest
    if "val" not in frames:
        rest, held = holdout_split(rows, s.val_fraction or 0.1, config.seed)
        frames["val"], rows = frames["train"].iloc[held], rest
    frames["train"] = frames["train"].iloc[rows]
    return frames


def build(config: TrainConfig, s: Settings) -> Parts:
    frames = split_frames(config, s) if config.reads("val") else {}  # predict and export read the run's files
    prep = TablePrep.from_json(
        run_file(config, "preprocess.json", lambda: fit(frames or split_frames(config, s), s).to_json()),
        Path("preprocess.json"),
    )
    where = str(config.data_dir)

    def data(frame) -> TensorData:
        return TensorData(*prep.inputs(frame, where), prep.targets(frame, where), transform=as_pair)

    model = TableMLP(prep, s)
    classify = prep.task == "classification"

    def read(inputs: list[str]):
        if len(inputs) != 1:
            raise UserError("predict tabular takes one table file of rows (the target column may be left out)")
        named = not all(c.isdigit() for c in [*prep.numeric, *prep.categorical])  # trained with a header line
        header = s.header if s.header != "auto" else ("first" if named else "none")
        frame = read_table(Path(inputs[0]), s.delimiter, header, s.encoding)
        return [f"row {i + 1}" for i in range(len(frame))], prep.inputs(frame, inputs[0])

    return Parts(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=1e-5),
        loss_fn=nn.CrossEntropyLoss() if classify else scaled_mse(prep.target_scale[1]),
        train=data(frames["train"]) if config.reads("train") else [],
        val=data(frames["val"]) if frames else [],
        test=data(frames["test"]) if "test" in frames else None,
        metrics=(lambda: {"accuracy": Accuracy()})
        if classify
        else (lambda: {"mse": MeanSquaredError(), "rmse": RootMeanSquaredError(), "mae": MeanAbsoluteError()}),
        predictor=Predictor(
            read, prep.classes or None, note="one table file of rows, with the training columns", example=prep.example
        ),
    )


def as_pair(numbers: torch.Tensor, codes: torch.Tensor, targets: torch.Tensor):
    return (numbers, codes), targets


def fit(frames: dict, s: Settings) -> TablePrep:
    """The preprocessing fitted on the training rows: the target (by default the last column not dropped)
    and every kept column."""
    train = frames["train"]
    dropped = [c.strip() for c in s.drop.split(",") if c.strip()]
    target = s.target or next(c for c in reversed(train.columns) if c not in dropped)
    if target not in train.columns:
        raise UserError(f"--set target={target}: no such column (the columns: {', '.join(map(repr, train.columns))})")
    kept = [c for c in train.columns if c not in dropped]
    return TablePrep.fit(train[kept], target, infer_task(train[target], s.task), s.max_levels)


def scaled_mse(std: float):
    """MSE on standardized targets: the same step size whatever the target's units."""

    def loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(predicted / std, target / std)

    return loss


RECIPE = Recipe(
    summary="Your own table (CSV/TSV): an MLP predicts one column from the others, regression or classification.",
    dataset="a table file or a folder of train/val/test files (--data-dir)",
    build=build,
    settings=Settings,
    epochs=100,
    batch_size=32,
    lr=1e-3,
    score="loss",  # the validation loss: what regression and classification alike minimise
    score_mode="min",
)

if __name__ == "__main__":
    recipe_main(RECIPE)
