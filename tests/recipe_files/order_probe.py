"""Watches the standard handlers from the outside and writes what it saw to RUN_DIR/probe.jsonl.

When the evaluator completes (validation, best checkpoint) and when the last checkpoint is saved, it
notes whether this epoch's metrics line is written yet and which LR the optimizer holds.
"""

import json
from pathlib import Path

import torch
from ignite.engine import Events
from ignite.handlers.checkpoint import CheckpointEvents
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Recipe, RunView, TensorData


def build(config, settings):
    model = nn.Linear(2, 2)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    data = TensorData(x, (x[:, 0] > 0).long())
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    run_dir = Path(config.run_dir)

    def note(event: str, epoch: int) -> None:
        metrics = run_dir / "metrics.jsonl"
        lines = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
        seen = {"event": event, "epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        seen["recorded"] = sorted(r["split"] for r in lines if r["epoch"] == epoch)
        seen["last_checkpoints"] = sorted(p.name for p in (run_dir / "checkpoints").glob("last_*.pt"))
        with open(run_dir / "probe.jsonl", "a") as f:
            f.write(json.dumps(seen) + "\n")

    def handlers(run: RunView) -> None:
        run.trainer.register_events(*CheckpointEvents)
        run.trainer.add_event_handler(CheckpointEvents.SAVED_CHECKPOINT, lambda t: note("last saved", t.state.epoch))
        run.trainer.add_event_handler(Events.EPOCH_STARTED, lambda t: note("epoch started", t.state.epoch))
        run.evaluator.add_event_handler(Events.COMPLETED, lambda _: note("validated", run.trainer.state.epoch))

    return Parts(
        model=model,
        optimizer=optimizer,
        loss_fn=nn.CrossEntropyLoss(),
        train=data,
        val=data,
        metrics=lambda: {"accuracy": Accuracy()},
        handlers=handlers,
    )


RECIPE = Recipe(summary="test", dataset="none", build=build, epochs=3, batch_size=8, lr=0.1, lr_schedule="step")
