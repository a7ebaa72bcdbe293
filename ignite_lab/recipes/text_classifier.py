"""Your own labelled sentences, no code: a text classifier from CSV, TSV or JSON-lines files.

``--data-dir DIR`` holding ``train.csv`` (or ``.tsv``, ``.jsonl``, or ``.json``: one object per line or one
array of objects) and optional ``dev``/``val`` and ``test`` files of the same kind; a missing validation split
is cut from the training rows by seed, a missing test split leaves the run without one. The text and label
columns are found (the text: the column of the longest strings; the label: a column named label, class,
category, sentiment or target, else the one of fewest values) or named with ``--set text=`` and ``--set label=``.
Labels 1 and 1.0 are one label. ``--set group=COLUMN`` keeps rows that share a value there in one
split (sub-phrases of one sentence, messages of one author), so validation cannot see its sentences in
training.

A word-level tokenizer is trained with Hugging Face tokenizers on the training text (lowercased, NFKC,
words and punctuation apart) and kept with the run as ``tokenizer.json``, with the label names, so
``predict`` and ``export`` tokenize exactly as training did. The model: embeddings (GloVe-format vectors
with ``--set glove=FILE``) and a bidirectional GRU over the packed sentence, or with ``--set model=cnn``
convolutions of widths 3, 4 and 5 max-pooled over time (Kim, 2014).

    ignite-lab run text_classifier --data-dir reviews/ --set text=review --set label=stars
    ignite-lab predict text_classifier --checkpoint runs/text_classifier/RUN/checkpoints/best_*.pt "a fine film"
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from ignite.metrics import Accuracy
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ignite_lab import Parts, Predictor, Recipe, TrainConfig, UserError, holdout_split, recipe_main, run_file, setting
from ignite_lab.kit.sentences import find_columns, group_split, read_rows, split_files, train_tokenizer
from ignite_lab.kit.tables import level
from ignite_lab.kit.text import bucket_loader, load_glove, pad

PAD, UNK = "[PAD]", "[UNK]"


@dataclass
class Settings:
    text: str = setting("", "the text column (found when empty)")
    label: str = setting("", "the label column (found when empty)")
    group: str = setting("", "rows sharing this column's value stay in one split")
    encoding: str = setting("utf-8", "the files' text encoding (e.g. latin-1)")
    model: Literal["gru", "cnn"] = setting("gru", "bidirectional GRU, or convolutions over time")
    embed: int = setting(128, "word vector size (the GloVe file's when glove is set)", min=1)
    hidden: int = setting(128, "GRU units per direction, or filters per convolution width", min=1)
    dropout: float = setting(0.5, "dropout before the classifier", min=0, max=1)
    glove: str = setting("", "GloVe-format vectors file for the embedding")
    vocab_size: int = setting(30000, "words kept by the tokenizer, most frequent first", min=10)
    min_freq: int = setting(1, "words seen fewer times are unknown", min=1)
    max_tokens: int = setting(256, "longer texts are cut", min=1)
    val_fraction: float = setting(0.1, "training rows (or groups) held out when there is no dev file", max=0.9)


class TextGRU(nn.Module):
    def __init__(self, embedding: nn.Embedding, hidden: int, classes: int, dropout: float) -> None:
        super().__init__()
        self.embedding = embedding
        self.gru = nn.GRU(embedding.embedding_dim, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, classes))

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        ids, lengths = batch
        packed = pack_padded_sequence(self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.gru(packed)
        return self.head(torch.cat([state[0], state[1]], dim=1))


class TextCNN(nn.Module):
    def __init__(self, embedding: nn.Embedding, filters: int, classes: int, dropout: float) -> None:
        super().__init__()
        self.embedding = embedding
        self.convs = nn.ModuleList([nn.Conv1d(embedding.embedding_dim, filters, k, padding=k - 1) for k in (3, 4, 5)])
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(3 * filters, classes))

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        ids, _ = batch
        x = self.embedding(ids).transpose(1, 2)
        return self.head(torch.cat([torch.relu(conv(x)).amax(dim=2) for conv in self.convs], dim=1))


class TokenList:
    """The tokenizer's words in id order, as ``load_glove`` reads a vocabulary."""

    def __init__(self, tokenizer) -> None:
        vocab = tokenizer.get_vocab()
        self.itos = sorted(vocab, key=vocab.get)
        self.pad_index = vocab[PAD]

    def __len__(self) -> int:
        return len(self.itos)


@dataclass
class Splits:
    """The data files' rows by split, with the text and label columns found in the training file."""

    files: dict[str, Path]
    frames: dict
    text: str
    label: str

    @classmethod
    def read(cls, config: TrainConfig, s: Settings) -> Splits:
        files = split_files(config.data_dir)
        frames = {split: read_rows(path, s.encoding) for split, path in files.items()}
        text, label = find_columns(frames["train"], s.text, s.label, files["train"])
        if "val" not in frames:
            split = group_split if s.group else (lambda f, fr, seed, _: holdout_split(f, fr, seed))
            rows = split(
                list(range(len(frames["train"]))), s.val_fraction or 0.1, config.seed, frames["train"].get(s.group)
            )
            frames["train"], frames["val"] = frames["train"].iloc[rows[0]], frames["train"].iloc[rows[1]]
        return cls(files, frames, text, label)


def build(config: TrainConfig, s: Settings) -> Parts:
    from tokenizers import Tokenizer

    read = Splits.read(config, s) if config.reads("val") else None  # predict and export read the run's files

    @functools.cache
    def training() -> Splits:  # read once, and only where the run lacks its files
        return read or Splits.read(config, s)

    def column(name: str):
        return training().frames["train"][getattr(training(), name)]

    meta = json.loads(run_file(config, "labels.json", lambda: json.dumps(label_names(column("label")))))
    tokenizer = Tokenizer.from_str(
        run_file(config, "tokenizer.json", lambda: train_tokenizer(column("text"), s, PAD, UNK).to_str())
    )
    tokenizer.enable_truncation(s.max_tokens)
    pad_index = tokenizer.token_to_id(PAD)

    def encode(texts) -> list[list[int]]:
        return [e.ids or [tokenizer.token_to_id(UNK)] for e in tokenizer.encode_batch([str(t) for t in texts])]

    def loader(split: str, batch_size: int, shuffle: bool):
        if read is None or split not in read.frames or not config.reads(split):
            return [] if split != "test" else None
        frame = read.frames[split]
        labels = labels_of(frame[read.label], meta, read.files.get(split, read.files["train"]))
        examples = list(zip(encode(frame[read.text]), labels, strict=True))

        def collate(batch):
            return pad([ids for ids, _ in batch], pad_index), torch.tensor([y for _, y in batch])

        return bucket_loader(examples, [len(ids) for ids, _ in examples], batch_size, shuffle, config.seed, collate)

    kind = TextCNN if s.model == "cnn" else TextGRU
    model = kind(word_vectors(config, s, tokenizer), s.hidden, len(meta), s.dropout)

    def sentences(inputs: list[str]):
        return inputs, pad(encode(inputs), pad_index)

    def example():  # sentences of random words, of four lengths
        words = torch.Generator().manual_seed(0)
        size = tokenizer.get_vocab_size()
        return pad([torch.randint(0, size, (n,), generator=words).tolist() for n in (5, 2, 7, 1)], pad_index)

    return Parts(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=config.lr),
        loss_fn=nn.CrossEntropyLoss(),
        train=loader("train", config.batch_size, shuffle=True),
        val=loader("val", config.eval_batch_size, shuffle=False),
        test=loader("test", config.eval_batch_size, shuffle=False),
        metrics=lambda: {"accuracy": Accuracy()},
        predictor=Predictor(sentences, meta, note="sentences, one per argument", example=example),
    )


def word_vectors(config: TrainConfig, s: Settings, tokenizer) -> nn.Embedding:
    """The embedding: GloVe's vectors when training with them (their width kept with the run as
    embedding.json), otherwise a table of the right width that a checkpoint's weights fill."""
    pad_index = tokenizer.token_to_id(PAD)
    if not s.glove:
        return nn.Embedding(tokenizer.get_vocab_size(), s.embed, padding_idx=pad_index)
    if config.reads("train"):
        vectors = load_glove(Path(s.glove), TokenList(tokenizer), freeze=False)
        run_file(config, "embedding.json", lambda: json.dumps({"dim": vectors.embedding_dim}))
        return vectors
    dim = json.loads(
        run_file(
            config,
            "embedding.json",
            lambda: json.dumps({"dim": load_glove(Path(s.glove), TokenList(tokenizer)).embedding_dim}),
        )
    )["dim"]
    return nn.Embedding(tokenizer.get_vocab_size(), dim, padding_idx=pad_index)


def label_names(values) -> list[str]:
    names = sorted({level(v) for v in values.dropna()})
    if len(names) < 2:
        raise UserError(f"the label column has {len(names)} distinct value(s); a classifier needs two or more")
    return names


def labels_of(values, names: list[str], where: Path) -> list[int]:
    """Class indices of ``values``; a bad cell is named by its row among the file's rows (1: the first: a split
    keeps the file's row numbers as its index)."""
    index = {name: i for i, name in enumerate(names)}
    missing = values[values.isna()].sort_index()
    if len(missing):
        raise UserError(f"{where}, row {missing.index[0] + 1}: the label is missing (give one, or drop the row)")
    levels = values.map(level)
    unknown = values[~levels.isin(index)].sort_index()
    if len(unknown):
        row, value = unknown.index[0] + 1, unknown.iloc[0]
        raise UserError(f"{where}, row {row}: label {value!r} is not one of the training labels {names[:8]}")
    return [index[name] for name in levels]


RECIPE = Recipe(
    summary="Your own labelled sentences (CSV/TSV/JSONL): a BiGRU or CNN text classifier.",
    dataset="a folder with train and optional dev/test files (--data-dir)",
    build=build,
    settings=Settings,
    epochs=10,
    batch_size=64,
    lr=2e-3,
    lr_schedule="cosine",
)

if __name__ == "__main__":
    recipe_main(RECIPE)
