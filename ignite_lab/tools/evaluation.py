"""``ignite-lab eval`` and ``generate``: a saved checkpoint, rebuilt with its run's config, put to use."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ignite_lab.core.config import TrainConfig
from ignite_lab.core.errors import UserError
from ignite_lab.core.recipe import Parts, Recipe
from ignite_lab.training.checkpoints import load_checkpoint, run_dir_of
from ignite_lab.training.devices import resolve_device
from ignite_lab.training.engines import build_evaluator, epoch_length
from ignite_lab.training.loaders import build_loader
from ignite_lab.training.loop import build_parts
from ignite_lab.training.rundir import checkpoint_config
from ignite_lab.training.session import Process


def load_for_inference(
    recipe: Recipe, path: Path, device: str | None = None, purpose: str = "predict", **overrides: Any
) -> tuple[Parts, TrainConfig, Process]:
    """The recipe's parts rebuilt with the checkpoint's config (and run files), its weights loaded, in eval mode.

    ``purpose``: "eval" needs the evaluated split's data; "predict" (predict, export, generate) needs none where
    the recipe reads its inputs from the run's files, and the data folder only where it does not.
    ``overrides`` replace config fields (a different data_dir, batch size...).
    """
    checkpoint = load_checkpoint(path)
    config = checkpoint_config(path, checkpoint, recipe.name, recipe.settings)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    config = dataclasses.replace(config, **overrides, run_dir=str(run_dir_of(path)), purpose=purpose)
    moved = f"{path} was trained on {config.data_dir}, which is not here: pass --data-dir DIR"
    missing = bool(config.data_dir) and not Path(config.data_dir).exists()  # moved, or relative to another folder
    if missing and purpose == "eval":
        raise UserError(moved)
    if missing:
        config = dataclasses.replace(config, data_dir=None)
    process = Process.alone(resolve_device(device or "auto"))
    try:
        parts, _ = build_parts(recipe, config, process)
    except UserError:
        if missing:  # a recipe that needs its data even to predict
            raise UserError(moved) from None
        raise
    try:
        parts.model.load_state_dict(checkpoint["model"])
    except (RuntimeError, KeyError) as exc:
        raise UserError(f"{path} does not fit {recipe.name}'s model: {str(exc).splitlines()[0]}") from None
    parts.model.eval()
    return parts, config, process


def evaluate_checkpoint(recipe: Recipe, path: Path, split: str, device: str | None = None, **overrides: Any) -> dict:
    """Metrics of the checkpoint's model on ``val`` or ``test``."""
    parts, config, process = load_for_inference(recipe, path, device, "eval", **overrides)
    data = parts.test if split == "test" else parts.val
    if data is None:
        raise UserError(f"{recipe.name} has no {split} split")
    batch = config.per_process(1).eval_batch_size
    loader = build_loader(data, batch, shuffle=False, seed=config.seed, device=process.device)
    evaluator = build_evaluator(parts, parts.model, process.device, process.precision)
    evaluator.run(loader, epoch_length=epoch_length(loader, config.limit_batches))
    return dict(evaluator.state.metrics)
