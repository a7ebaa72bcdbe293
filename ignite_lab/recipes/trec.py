"""Question classification on TREC (Li and Roth, 2002), the torchtext workflow without torchtext.

Copy this recipe to classify sentences of your own (``ignite-lab copy trec my_task.py``). The steps
are torchtext's: lowercased whitespace tokens (``Field(lower=True)``), the 6 coarse labels
(``fine_grained=False``), a validation set cut from the training questions (``train.split()``), a
vocabulary of the training split with GloVe vectors when a local file is given (``build_vocab(vectors=)``)
and length-bucketed batches (``BucketIterator``). The model: 300-d embeddings (GloVe's usual size), a
bidirectional GRU over the packed questions, both final states -> dropout -> linear; Adam lr 0.002 with a
cosine decay over 15 epochs: test accuracy 0.880, the median of seeds 0-2 (REPRODUCE.md) and of seeds 0-4
(0.856-0.890), where the previous 100-d embeddings and 10 epochs at a constant lr gave 0.868 of seeds 0-2.
Max-pooling the GRU outputs measured no better at this spread. ``--preset book`` is the same workflow with
torchtext's default 70/30 train/validation split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from ignite.metrics import Accuracy
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ignite_lab import Parts, Predictor, Preset, Recipe, TrainConfig, UserError, holdout_split, recipe_main, setting
from ignite_lab.kit.datasets import data_file
from ignite_lab.kit.inputs import words
from ignite_lab.kit.text import PAD, UNK, Vocab, bucket_loader, load_glove, pad, read_lines, run_vocab

LABELS = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
FILES = {"train": ("train_5500.label",), "test": ("TREC_10.label",)}


@dataclass
class Settings:
    embed: int = setting(300, "word vector size (the GloVe file's when glove is set)", min=1)
    hidden: int = setting(128, "GRU units per direction", min=1)
    dropout: float = setting(0.5, "dropout before the classifier", min=0, max=1)
    val_fraction: float = setting(0.1, "training questions held out for validation", min=0, max=0.9, min_open=True)
    glove: str = setting("", "GloVe-format vectors file for the embedding")


def read_trec(path: Path) -> list[tuple[list[str], int]]:
    """``COARSE:fine question ...`` lines (ISO-8859-1) -> (lowercased tokens, coarse label index)."""
    questions = []
    for number, line in enumerate(read_lines(path, encoding="iso-8859-1"), 1):
        label, _, question = line.partition(" ")
        coarse = label.split(":")[0]
        if coarse not in LABELS or not question.strip():
            raise UserError(f"{path}, line {number}: expected 'COARSE:fine question', got {line[:60]!r}")
        questions.append((question.lower().split(), LABELS.index(coarse)))
    return questions


class QuestionClassifier(nn.Module):
    def __init__(self, embedding: nn.Embedding, hidden: int, dropout: float) -> None:
        super().__init__()
        self.embedding = embedding
        self.gru = nn.GRU(embedding.embedding_dim, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, len(LABELS)))

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        ids, lengths = batch
        packed = pack_padded_sequence(self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.gru(packed)  # (2 directions, batch, hidden)
        return self.head(torch.cat([state[0], state[1]], dim=1))


def build(config: TrainConfig, s: Settings) -> Parts:
    splits = {
        split: read_trec(data_file(config.data_dir, names, f"TREC {split}", "trec")) for split, names in FILES.items()
    }
    train, val = holdout_split(splits["train"], s.val_fraction, config.seed)
    vocab = run_vocab(config, lambda: Vocab.build([" ".join(tokens) for tokens, _ in train], specials=[UNK, PAD]))

    def loader(questions, batch_size: int, shuffle: bool):
        examples = [(vocab.lookup(tokens), label) for tokens, label in questions]

        def collate(batch):
            return pad([ids for ids, _ in batch], vocab.pad_index), torch.tensor([label for _, label in batch])

        return bucket_loader(examples, [len(ids) for ids, _ in examples], batch_size, shuffle, config.seed, collate)

    if s.glove:
        embedding = load_glove(Path(s.glove), vocab, freeze=False)
    else:
        embedding = nn.Embedding(len(vocab), s.embed, padding_idx=vocab.pad_index)
    model = QuestionClassifier(embedding, s.hidden, s.dropout)

    def read(questions: list[str]) -> tuple[list[str], tuple[torch.Tensor, torch.Tensor]]:
        return questions, pad([vocab.lookup(words(q)) for q in questions], vocab.pad_index)

    return Parts(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=config.lr),
        loss_fn=nn.CrossEntropyLoss(),
        train=loader(train, config.batch_size, shuffle=True),
        val=loader(val, config.eval_batch_size, shuffle=False),
        test=loader(splits["test"], config.eval_batch_size, shuffle=False),
        metrics=lambda: {"accuracy": Accuracy()},
        predictor=Predictor(read, LABELS, note="questions, one per argument"),
    )


RECIPE = Recipe(
    summary="TREC question classification, 6 coarse classes: a bidirectional GRU over word vectors.",
    dataset="TREC (--data-dir with train_5500.label and TREC_10.label)",
    build=build,
    settings=Settings,
    epochs=15,
    batch_size=64,
    lr=2e-3,
    lr_schedule="cosine",
    presets={
        "book": Preset(
            source="torchtext's TREC workflow: Field(lower=True), TREC.splits(fine_grained=False), train.split()",
            settings={"val_fraction": 0.3},
            note="a workflow with no figure of its own",
        )
    },
)

if __name__ == "__main__":
    recipe_main(RECIPE)
