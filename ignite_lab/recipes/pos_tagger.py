"""The LSTM part-of-speech tagger of PyTorch's tutorial "Sequence Models and Long Short-Term Memory Networks".

Its two example sentences, one per batch: word embeddings (6-d) -> nn.LSTM (6 units) -> a linear layer
to the tags DET, NN and V at every word; negative log likelihood of the log-softmax (cross-entropy on
the scores), SGD lr 0.1, 300 epochs. Validation and test are the same two sentences, as in the tutorial,
which prints the tag scores of the first sentence after training; so does this recipe (media/tags.txt).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from ignite.engine import Events
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Book, Parts, Preset, Recipe, RunView, TrainConfig, recipe_main, setting
from ignite_lab.kit.text import bucket_loader

TRAINING_DATA = [  # the tutorial's: DET determiner, NN noun, V verb
    ("The dog ate the apple".split(), ["DET", "NN", "V", "DET", "NN"]),
    ("Everybody read that book".split(), ["NN", "V", "DET", "NN"]),
]
TAGS = ("DET", "NN", "V")


@dataclass
class Settings:
    embed: int = setting(6, "word embedding size", min=1)
    hidden: int = setting(6, "LSTM units", min=1)


class LSTMTagger(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.hidden2tag = nn.Linear(hidden, len(TAGS))

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        """(1, words) ids -> (1, tags, words) scores (the layout cross-entropy and Accuracy take)."""
        out, _ = self.lstm(self.embedding(words))
        return self.hidden2tag(out).transpose(1, 2)


def build(config: TrainConfig, s: Settings) -> Parts:
    word_to_ix = {word: i for i, word in enumerate(dict.fromkeys(w for words, _ in TRAINING_DATA for w in words))}
    examples = [([word_to_ix[w] for w in words], [TAGS.index(t) for t in tags]) for words, tags in TRAINING_DATA]

    def collate(batch):
        return torch.tensor([batch[0][0]]), torch.tensor([batch[0][1]])

    def loader(shuffle: bool):
        return bucket_loader(examples, [len(w) for w, _ in examples], 1, shuffle, config.seed, collate)

    model = LSTMTagger(len(word_to_ix), s.embed, s.hidden)

    def handlers(run: RunView) -> None:
        @run.trainer.on(Events.COMPLETED)
        def print_scores(_) -> None:
            words = TRAINING_DATA[0][0]
            run.model.eval()
            with torch.inference_mode():
                scores = torch.log_softmax(run.model(torch.tensor([examples[0][0]])), dim=1)[0].T
            lines = [
                f"{w:<8} {TAGS[int(row.argmax())]:<4} " + " ".join(f"{v:6.3f}" for v in row)
                for w, row in zip(words, scores, strict=True)
            ]
            run.publish.text("tags", "word     tag  " + " ".join(f"{t:>6}" for t in TAGS) + "\n" + "\n".join(lines))

    return Parts(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=config.lr),
        loss_fn=nn.CrossEntropyLoss(),
        train=loader(shuffle=False),  # the tutorial goes through its sentences in order
        val=loader(shuffle=False),
        test=loader(shuffle=False),
        metrics=lambda: {"accuracy": Accuracy()},
        handlers=handlers,
    )


RECIPE = Recipe(
    summary="LSTM part-of-speech tagger on the tutorial's two sentences (DET, NN, V).",
    dataset="two example sentences (built in)",
    build=build,
    settings=Settings,
    epochs=300,
    batch_size=1,
    lr=0.1,
    presets={
        "book": Preset(
            source="PyTorch tutorial, Sequence Models and LSTM Networks: the defaults, the last model tested",
            flags={"test_checkpoint": "last"},
            book=Book(
                cites=(
                    "books/003_95ab5c2d176feb33.txt:246-265",
                    "PyTorch tutorial Sequence Models and Long Short-Term Memory Networks",
                ),
                batch=1,
                epochs=300,
                optimizer="SGD",
                lr=0.1,
                tested="last",
                sizes={"embed": 6, "hidden": 6},
                data="the tutorial's two sentences, trained and tested on",
            ),
        )
    },
)

if __name__ == "__main__":
    recipe_main(RECIPE)
