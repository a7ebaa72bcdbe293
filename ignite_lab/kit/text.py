"""The text pipeline the books built with torchtext, on Hugging Face ``tokenizers`` and plain readers.

torchtext (Field, BucketIterator, BPTTIterator, GloVe) is finished upstream and only imports
with torch 2.3, so: ``Vocab`` replaces Field's vocabulary (word or character level, specials,
default unknown index, lowercasing, save/load), ``lm_windows`` replaces BPTTIterator,
``bucket_loader`` replaces BucketIterator, ``load_glove`` replaces ``vocab.load_vectors``.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from ignite_lab.core.errors import UserError
from ignite_lab.training.loaders import ResumableBatches, TensorData, private_generator

log = logging.getLogger(__name__)

UNK, PAD, EOS, SOS = "<unk>", "<pad>", "<eos>", "<sos>"
SPECIALS = (UNK, PAD, EOS, SOS)

# torchtext's basic_english, pattern by pattern and in its order: lowercase, then each substitution
BASIC_ENGLISH = (
    (r"\'", " '  "),
    (r"\"", ""),
    (r"\.", " . "),
    (r"<br \/>", " "),
    (r",", " , "),
    (r"\(", " ( "),
    (r"\)", " ) "),
    (r"\!", " ! "),
    (r"\?", " ? "),
    (r"\;", " "),
    (r"\:", " "),
    (r"\s+", " "),
)


def basic_english_normalizer() -> normalizers.Normalizer:
    """torchtext's ``basic_english`` as a ``tokenizers`` normalizer; split on whitespace after it.
    On WikiText-2 it gives the same tokens as torchtext's own code (2,049,990 train, 241,859 test)."""
    replaces = [normalizers.Replace(Regex(pattern), text) for pattern, text in BASIC_ENGLISH]
    return normalizers.Sequence([normalizers.Lowercase(), *replaces])


class Vocab:
    """Token <-> index, word- or character-level, with specials and a default index for unknown tokens.

    Kept as a Hugging Face ``tokenizers`` WordLevel tokenizer (its normalizer and pre-tokenizer define
    what a token is; saved as JSON with the run). Counting and lookups are plain Python dictionaries:
    tokenizers' trainer needs 0.8 GB to count WikiText-2, a Counter needs next to nothing.
    """

    def __init__(self, tokenizer: Tokenizer, level: str) -> None:
        self.tokenizer = tokenizer
        self.level = level
        self.itos = [tokenizer.id_to_token(i) for i in range(tokenizer.get_vocab_size())]
        self.stoi = {token: i for i, token in enumerate(self.itos)}
        self.unk_index = self.stoi.get(UNK)
        self.pad_index = self.stoi.get(PAD)

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        level: str = "word",
        basic_english: bool = False,
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = SPECIALS,
    ) -> Vocab:
        """Count tokens over ``texts``; specials first (``<unk>`` is 0), then by frequency (ties by token).

        Word level splits on whitespace (for text already tokenized, like WikiText), or with
        ``basic_english`` first normalises as torchtext's ``basic_english`` does (lowercase, split off
        ``' . , ( ) ! ?``, drop ``" ; :``).
        A special that also occurs in the text (WikiText's own ``<unk>``) keeps its special id.
        """
        if level not in ("word", "char"):
            raise ValueError("level is 'word' or 'char'")
        tokenizer = Tokenizer(models.WordLevel(vocab={UNK: 0}, unk_token=UNK))
        tokenizer.normalizer = basic_english_normalizer() if basic_english else None
        if level == "word":
            tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        else:
            tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        counts = count_tokens(texts, tokenizer, level)
        specials = list(dict.fromkeys([UNK, *specials]))
        ranked = sorted(
            (item for item in counts.items() if item[1] >= min_freq and item[0] not in specials),
            key=lambda item: (-item[1], item[0]),
        )[:max_size]
        ordered = specials + [token for token, _ in ranked]
        final = Tokenizer(models.WordLevel(vocab={t: i for i, t in enumerate(ordered)}, unk_token=UNK))
        final.normalizer, final.pre_tokenizer = tokenizer.normalizer, tokenizer.pre_tokenizer
        return cls(final, level)

    def __len__(self) -> int:
        return len(self.itos)

    def tokenize(self, text: str) -> list[str]:
        """The tokens this vocabulary would look up in ``text`` (normalised, split)."""
        text = self.normalize(text)
        if self.level == "char":
            return list(text)
        return [token for token, _ in self.tokenizer.pre_tokenizer.pre_tokenize_str(text)]

    def normalize(self, text: str) -> str:
        return self.tokenizer.normalizer.normalize_str(text) if self.tokenizer.normalizer else text

    def encode(self, text: str) -> list[int]:
        """Raw text -> token ids (unknown tokens -> ``<unk>``)."""
        return self.lookup(self.tokenize(text), normalized=True)

    def lookup(self, tokens: Iterable[str], normalized: bool = False) -> list[int]:
        """Already-split tokens to indices (unknown -> ``<unk>``)."""
        if not normalized and self.tokenizer.normalizer is not None:
            tokens = (self.normalize(token) for token in tokens)
        stoi, unk = self.stoi, self.unk_index
        return [stoi.get(token, unk) for token in tokens]

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids -> text (characters joined, or words joined by spaces)."""
        tokens = [self.itos[i] for i in ids]
        return "".join(tokens) if self.level == "char" else " ".join(tokens)

    def to_json(self) -> str:
        """The tokenizer and level as one JSON document (``run_vocab`` keeps it with a run)."""
        return json.dumps({"level": self.level, "tokenizer": json.loads(self.tokenizer.to_str())})

    @classmethod
    def from_json(cls, text: str, where: Path) -> Vocab:
        try:
            raw = json.loads(text)
            return cls(Tokenizer.from_str(json.dumps(raw["tokenizer"])), raw["level"])
        except Exception as exc:  # the tokenizers library raises its own exception types
            raise UserError(f"{where} is not an ignite-lab vocabulary file: {str(exc).splitlines()[0][:200]}") from None


def count_tokens(texts: Iterable[str], tokenizer: Tokenizer, level: str) -> Counter:
    """How often each token occurs, text by text (characters are counted directly: no token list at all)."""
    counts: Counter = Counter()
    for text in texts:
        if tokenizer.normalizer is not None:
            text = tokenizer.normalizer.normalize_str(text)
        if level == "char":
            counts.update(text)
        else:
            counts.update(token for token, _ in tokenizer.pre_tokenizer.pre_tokenize_str(text))
    return counts


def run_vocab(config: Any, build: Callable[[], Vocab], name: str = "vocab.json") -> Vocab:
    """The run's vocabulary: built once by ``build()`` and kept in the run directory (``rundir.run_file``).

    Use it in a recipe's ``build`` (``vocab = run_vocab(config, lambda: Vocab.build(texts))``): a resumed
    run, ``eval``, ``predict`` and ``generate`` then get the very vocabulary the model was trained with,
    even if the data or the tokenizer settings changed since.
    """
    from ignite_lab.training.rundir import run_file

    where = Path(config.run_dir) / name if config.run_dir else Path(name)
    return Vocab.from_json(run_file(config, name, lambda: build().to_json()), where)


def read_lines(path: Path, encoding: str = "utf-8") -> list[str]:
    """A text file's lines (``encoding``: e.g. "iso-8859-1" for TREC); an unreadable or empty file is a clear error."""
    try:
        text = Path(path).read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not {encoding} text (byte {exc.start}); pass the file's encoding") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    if not text.strip():
        raise UserError(f"{path} is empty")
    return text.splitlines()


# Language-model batching (torchtext's BPTTIterator) -------------------------------------------


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """A token stream cut into ``batch_size`` equal rows (the tail that does not fit is dropped): (B, T)."""
    length = len(ids) // batch_size
    if length < 2:
        raise UserError(f"{len(ids)} tokens are too few for batches of {batch_size} columns")
    return ids[: length * batch_size].view(batch_size, length)


def lm_windows(ids: torch.Tensor, batch_size: int, bptt: int) -> TensorData:
    """Windows of ``bptt`` steps over the batchified stream: inputs (B, L) and targets shifted by one.

    Each item of the returned dataset is one whole batch (index i -> window i), so a loader
    over it keeps the columns aligned; ``TensorData`` gives the batches as slices.
    """
    rows = batchify(ids, batch_size)
    starts = range(0, rows.shape[1] - 1, bptt)
    windows = [(rows[:, s : s + bptt], rows[:, s + 1 : s + 1 + bptt]) for s in starts]
    windows = [(x, y) for x, y in windows if x.shape[1] == y.shape[1] == bptt]  # drop the short last window
    if not windows:
        raise UserError(f"the text is shorter than one window of {bptt} steps per column")
    return WindowBatches(torch.stack([x for x, _ in windows]), torch.stack([y for _, y in windows]))


class WindowBatches(TensorData):
    """A TensorData whose every index is already a batch; the loader takes one index at a time."""

    batched = True


# Length-bucketed batches (torchtext's BucketIterator) -----------------------------------------


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar lengths: shuffle, sort within pools of 50 batches, cut, shuffle the batches.

    Every example appears exactly once per epoch; the order depends on (seed, epoch) only, and
    under torch.distributed each process takes every world_size-th batch.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool, seed: int = 0, pool: int = 50) -> None:
        self.lengths, self.batch_size, self.shuffle, self.seed, self.pool = (
            list(lengths),
            batch_size,
            shuffle,
            seed,
            pool,
        )
        self.epoch = 0
        self.rank, self.world = idist.get_rank(), idist.get_world_size()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        order = list(range(len(self.lengths)))
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        if self.shuffle:
            rng.shuffle(order)
        batches = []
        span = self.batch_size * self.pool
        for start in range(0, len(order), span):
            chunk = sorted(order[start : start + span], key=lambda i: self.lengths[i])
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return batches[self.rank :: self.world]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return math.ceil(math.ceil(len(self.lengths) / self.batch_size) / self.world)


def pad(sequences: Sequence[Sequence[int]], pad_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists -> (B, longest) ids padded with ``pad_index``, and (B,) lengths.

    The lengths are what ``torch.nn.utils.rnn.pack_padded_sequence`` needs, so an RNN skips the padding.
    Use it in a loader's collate function: ``ids, lengths = pad([e.ids for e in examples], vocab.pad_index)``.
    """
    lengths = torch.tensor([len(s) for s in sequences])
    out = torch.full((len(sequences), int(lengths.max()) if len(sequences) else 0), pad_index, dtype=torch.long)
    for i, seq in enumerate(sequences):
        out[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return out, lengths


def bucket_loader(
    dataset: Dataset | Sequence, lengths: Sequence[int], batch_size: int, shuffle: bool, seed: int, collate: Callable
) -> DataLoader:
    """A DataLoader of length-bucketed batches (torchtext's BucketIterator) for a recipe's ``Parts``.

    ``dataset`` is any indexable collection of examples (a list will do), ``lengths[i]`` the length of
    example ``i``, ``collate(examples)`` makes a batch (usually with ``pad``). Examples of similar
    length share a batch, so little padding is computed. The order depends on (seed, epoch) only, each
    process of a distributed run takes its share, and a run resumed mid-epoch skips the batches it
    already trained on: the toolkit drives all of that, so pass ``config.batch_size`` for training and
    ``config.eval_batch_size`` for validation and test.
    """
    batches = ResumableBatches(BucketBatchSampler(lengths, batch_size, shuffle, seed))
    return DataLoader(dataset, batch_sampler=batches, collate_fn=collate, generator=private_generator(seed))


# Pretrained vectors (torchtext's GloVe) ---------------------------------------------------------


def load_glove(path: Path, vocab: Vocab, freeze: bool = True) -> nn.Embedding:
    """An embedding for ``vocab`` initialised from a GloVe-format text file (``word v1 v2 ...`` per line).

    Words missing from the file keep a small random vector; the padding row is zero. Logs
    how many vocabulary words were found.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"vectors file {path} does not exist")
    wanted = {token: i for i, token in enumerate(vocab.itos)}
    weights = None
    found = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if len(parts) < 2:
                continue
            if weights is None:
                dim = len(parts) - 1
                weights = torch.randn(len(vocab), dim) * 0.1
            if len(parts) - 1 != weights.shape[1]:
                raise UserError(
                    f"{path}, line {number}: {len(parts) - 1} numbers where the file has {weights.shape[1]}"
                )
            index = wanted.get(parts[0])
            if index is None:
                continue
            try:
                weights[index] = torch.tensor([float(v) for v in parts[1:]])
            except ValueError:
                raise UserError(f"{path}, line {number}: not a word followed by numbers") from None
            found += 1
    if weights is None:
        raise UserError(f"{path} holds no vectors")
    if vocab.pad_index is not None:
        weights[vocab.pad_index] = 0
    log.info("vectors: %d of %d vocabulary words found in %s (dim %d)", found, len(vocab), path, weights.shape[1])
    embedding = nn.Embedding.from_pretrained(weights, freeze=freeze, padding_idx=vocab.pad_index)
    embedding.found = found  # type: ignore[attr-defined]
    return embedding
