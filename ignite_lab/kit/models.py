"""Models two recipes of the books share: LeNet (mnist, cifar10) and MNIST read row by row by a recurrent
layer (mnist_rnn, mnist_lstm), so each recipe file still copies on its own (``ignite-lab copy``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LeNet(nn.Module):
    """LeNet as PyTorch's building-models tutorial writes it (books/003_95ab5c2d176feb33.txt:193-215): a 32x32
    input, conv 6 (5x5) and 16 (3x3), each ReLU and 2x2 max pool, fc 16*6*6-120-84-10."""

    def __init__(self, in_channels: int = 1, pad: int = 2) -> None:
        super().__init__()
        self.pad = pad  # 28x28 digits are padded to the 32x32 LeNet expects
        self.conv1, self.conv2 = nn.Conv2d(in_channels, 6, 5), nn.Conv2d(6, 16, 3)
        self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 6 * 6, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad,) * 4) if self.pad else x
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))))


class RowClassifier(nn.Module):
    """Each 28x28 image as 28 time steps of 28 pixels; the last step's output -> linear (books/004_...:50-72)."""

    def __init__(self, cell: str, hidden: int, layers: int) -> None:
        super().__init__()
        recurrent = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = recurrent(input_size=28, hidden_size=hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(images.squeeze(1))  # (batch, 28 time steps, 28 pixels)
        return self.fc(outputs[:, -1])


def row_classifier_parts(config, s):
    """The parts of mnist_rnn and mnist_lstm: ``s`` has cell, hidden, layers, optimizer, clip, normalize and
    validation."""
    from ignite.metrics import Accuracy

    from ignite_lab.core.recipe import Parts
    from ignite_lab.kit.datasets import BUNDLED, mnist_normalize, mnist_predictor, mnist_splits

    model = RowClassifier(s.cell, s.hidden, s.layers)
    train, val, test = mnist_splits(config.data_dir, config.seed, BUNDLED / "mnist_sample", s.normalize, s.validation)
    optimizer = torch.optim.SGD if s.optimizer == "sgd" else torch.optim.Adam
    return Parts(
        model=model,
        optimizer=optimizer(model.parameters(), lr=config.lr),
        loss_fn=nn.CrossEntropyLoss(),
        train=train,
        val=val,
        test=test,
        metrics=lambda: {"accuracy": Accuracy()},
        predictor=mnist_predictor(mnist_normalize(s.normalize)),
        grad_clip=s.clip or None,  # plain RNNs meet exploding gradients now and then
    )
