"""A user's own labelled sentences: the files of a folder (CSV, TSV, JSON lines) as DataFrames, their text and
label columns found, a split that keeps groups together, and a Hugging Face word-level tokenizer trained
on the training text."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ignite_lab.core.errors import UserError
from ignite_lab.kit.tables import is_numeric, read_table

log = logging.getLogger(__name__)
KINDS = (".csv", ".tsv", ".jsonl", ".json")
SPLITS = {"train": ("train",), "val": ("dev", "val", "valid", "validation"), "test": ("test",)}
LABEL_NAMES = ("label", "labels", "class", "category", "sentiment", "target", "y", "gold_label")


def split_files(data_dir: str | None) -> dict[str, Path]:
    """train (required), val and test files of ``data_dir``, by name: train.csv, dev.tsv, test.jsonl ..."""
    if not data_dir or not Path(data_dir).is_dir():
        raise UserError(
            "text_classifier needs --data-dir DIR holding train.csv (or .tsv/.jsonl), dev and test optional"
        )
    root = Path(data_dir)
    found = {}
    for split, stems in SPLITS.items():
        for path in sorted(root.iterdir()):
            if path.suffix.lower() in KINDS and path.stem.lower() in stems and split not in found:
                found[split] = path
    if "train" not in found:
        raise UserError(f"{root} has no train file (train.csv, train.tsv or train.jsonl)")
    return found


def read_rows(path: Path, encoding: str):
    """A CSV/TSV (delimiter by suffix) or JSON file (one object per line, or one array of objects) as a
    DataFrame; a broken line or a nested cell is named."""
    import pandas as pd

    if path.suffix.lower() not in (".jsonl", ".json"):
        return read_table(path, "\t" if path.suffix.lower() == ".tsv" else ",", "first", encoding)
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not {encoding} text (byte {exc.start}): pass --set encoding=NAME") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    frame = pd.DataFrame(json_objects(text, path))
    if frame.empty:
        raise UserError(f"{path} has no rows")
    frame.columns = [str(c) for c in frame.columns]
    check_flat(frame, path)
    return frame


def json_objects(text: str, path: Path) -> list[dict]:
    """The objects of JSON lines, or of one JSON array; the first line that is not an object is named."""
    if text.lstrip().startswith("["):
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise UserError(f"{path}, line {exc.lineno}: {exc.msg} (column {exc.colno})") from None
        lines = list(enumerate(values, 1)) if isinstance(values, list) else [(1, values)]
        where = "item"
    else:
        lines, where = [], "line"
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                lines.append((number, json.loads(line)))
            except ValueError as exc:
                raise UserError(
                    f"{path}, line {number}: {exc.msg} (column {exc.colno}): each line must be one JSON object"
                ) from None
    for number, value in lines:
        if not isinstance(value, dict):
            raise UserError(f"{path}, {where} {number}: a JSON {json_kind(value)}, where an object belongs")
    return [value for _, value in lines]


def json_kind(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def check_flat(frame, path: Path) -> None:
    """Every cell text, a number or empty: an array or object (nested JSON) is named by row and column."""
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        nested = frame[column].map(lambda v: isinstance(v, (list, dict)))
        if nested.any():
            row = int(nested.to_numpy().argmax()) + 1
            kind = json_kind(frame[column].iloc[row - 1])
            raise UserError(
                f"{path}, row {row}, column {column!r}: a JSON {kind}, where text or a label belongs "
                "(flatten it, or leave the field out)"
            )


def find_columns(frame, text: str, label: str, where: Path) -> tuple[str, str]:
    """The text and label columns: as named, else found (and said in the log)."""
    columns = list(frame.columns)
    for name, what in ((text, "text"), (label, "label")):
        if name and name not in columns:
            raise UserError(f"--set {what}={name}: {where} has no such column (its columns: {', '.join(columns)})")
    strings = [c for c in columns if not is_numeric(frame[c])]
    if not text:
        if not strings:
            raise UserError(f"{where} has no text column: name it with --set text=COLUMN")
        text = max(strings, key=lambda c: frame[c].astype(str).str.len().mean())
    if not label:
        named = [c for c in columns if c.lower() in LABEL_NAMES and c != text]
        others = sorted((c for c in columns if c != text), key=lambda c: frame[c].nunique())
        if not (named or others):
            raise UserError(f"{where} has one column: add a label column, or name it with --set label=COLUMN")
        label = (named or others)[0]
    log.info("text column %r, label column %r (set --set text= / --set label= to choose)", text, label)
    return text, label


def group_split(rows: list[int], fraction: float, seed: int, groups) -> tuple[list[int], list[int]]:
    """(kept, held) rows such that every value of ``groups`` falls wholly in one side, about ``fraction`` held."""
    if groups is None:
        raise UserError("--set group=COLUMN: no such column in the training file")
    keys = sorted({str(g) for g in groups})
    order = torch.randperm(len(keys), generator=torch.Generator().manual_seed(seed)).tolist()
    held_keys = {keys[i] for i in order[: max(1, round(len(keys) * fraction))]}
    held = [r for r, g in zip(rows, groups.astype(str), strict=True) if g in held_keys]
    kept = [r for r, g in zip(rows, groups.astype(str), strict=True) if g not in held_keys]
    if not kept:
        raise UserError("--set group: one group holds every row; there is nothing left to train on")
    return kept, held


def train_tokenizer(texts, s, pad: str, unk: str):
    """A word-level tokenizer (NFKC, lowercase, words and punctuation apart) trained on ``texts``."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from tokenizers.trainers import WordLevelTrainer

    tokenizer = Tokenizer(WordLevel(unk_token=unk))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = WordLevelTrainer(vocab_size=s.vocab_size, min_frequency=s.min_freq, special_tokens=[pad, unk])
    tokenizer.train_from_iterator((str(t) for t in texts), trainer=trainer)
    return tokenizer
