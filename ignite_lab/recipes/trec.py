"""Question classification on TREC (Li and Roth, 2002), the chapter's torchtext workflow without torchtext.

The workflow of "PyTorch Deep Learning Hands-On", chapter 3 (books/001_0223ea76c81a8105.txt:1255-1290):
tokenized and lowercased questions, the 6 coarse labels, a validation set cut from the training
questions, a vocabulary of the training split with GloVe vectors when a local file is given
(``--set glove=FILE``), and length-bucketed batches. The chapter stops at the batches; the model is
ours: embeddings, a bidirectional GRU over the packed questions, both final states -> dropout -> linear.
One tokenizer serves training and ``predict`` alike.

``--preset book`` follows the chapter where it speaks: spaCy's English tokenizer (``spacy.blank("en")``,
the rule-based tokenizer the chapter's ``spacy_en.tokenizer`` is; ``pip install 'ignite-lab[books]'``),
50-d embeddings (GloVe 6B 50d's size; the vectors cannot be downloaded here, so they start random),
batches of 32 and 99.

The default: lowercased words and punctuation, 300-d embeddings, batches of 64, Adam lr 0.002 with a
cosine decay over 15 epochs, 10% of the training questions held out, the best epoch tested
(REPRODUCE.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from ignite.metrics import Accuracy
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ignite_lab import (
    Book,
    Parts,
    Predictor,
    Preset,
    Recipe,
    TrainConfig,
    UserError,
    holdout_split,
    recipe_main,
    setting,
)
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
    tokenizer: Literal["words", "spacy"] = setting(
        "words", "words: lowercased words and punctuation; spacy: spaCy's English tokenizer, lowercased (the chapter's)"
    )


def tokenizer(name: str) -> Callable[[str], list[str]]:
    """One tokenizer for training and prediction alike: ``words``, or spaCy's rule-based English tokenizer
    (``spacy.load('en').tokenizer`` in the chapter, which uses no trained model: ``spacy.blank("en")`` has it)."""
    if name == "words":
        return words
    try:
        import spacy
    except ImportError:
        raise UserError("--set tokenizer=spacy needs spaCy: pip install 'ignite-lab[books]'") from None
    english = spacy.blank("en").tokenizer
    return lambda text: [token.text.lower() for token in english(text)]


def read_trec(path: Path, tokenize: Callable[[str], list[str]]) -> list[tuple[list[str], int]]:
    """``COARSE:fine question ...`` lines (ISO-8859-1) -> (lowercased tokens, coarse label index)."""
    questions = []
    for number, line in enumerate(read_lines(path, encoding="iso-8859-1"), 1):
        label, _, question = line.partition(" ")
        coarse = label.split(":")[0]
        if coarse not in LABELS or not question.strip():
            raise UserError(f"{path}, line {number}: expected 'COARSE:fine question', got {line[:60]!r}")
        questions.append((tokenize(question), LABELS.index(coarse)))
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
    tokenize = tokenizer(s.tokenizer)
    splits = {
        split: read_trec(data_file(config.data_dir, names, f"TREC {split}", "trec"), tokenize)
        for split, names in FILES.items()
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
        return questions, pad([vocab.lookup(tokenize(q)) for q in questions], vocab.pad_index)

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
            source="PyTorch Deep Learning Hands-On, ch. 3: spaCy tokens, lowercased, GloVe 50-d, batches of 32 and 99",
            flags={"batch_size": 32, "eval_batch_size": 99},
            settings={"tokenizer": "spacy", "embed": 50},
            note="a workflow with no model and no figure of its own",
            book=Book(
                cites=("books/001_0223ea76c81a8105.txt:1255-1262", "books/001_0223ea76c81a8105.txt:1282-1290"),
                batch=32,
                epochs=15,
                optimizer="Adam",
                lr=0.002,
                tested="best",
                sizes={"tokenizer": "spacy", "embed": 50},
                data="TREC 5,452 training questions (its own train/val cut), tested on 500",
                differs=(
                    "the chapter stops at the batches: model, optimiser, epochs and tested weights are the default's",
                    "GloVe 6B 50d cannot be downloaded here: 50-d embeddings start random (--set glove=FILE takes it)",
                    "the chapter's TRECval.tsv is a cut of unknown size: 10% of the training questions here",
                ),
            ),
        )
    },
)

if __name__ == "__main__":
    recipe_main(RECIPE)
