"""``ignite-lab eval``: a saved checkpoint, rebuilt with its run's config, scored on a split."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ignite.utils import manual_seed

from ignite_lab.checkpoints import checkpoint_config, load_checkpoint, run_dir_of
from ignite_lab.config import RunConfig, make_settings
from ignite_lab.devices import resolve_device
from ignite_lab.engines import build_evaluator, epoch_length
from ignite_lab.errors import UserError
from ignite_lab.loaders import build_loader
from ignite_lab.recipe import Parts, Recipe


def load_for_inference(recipe: Recipe, path: Path, **overrides: Any) -> tuple[Parts, RunConfig, Any]:
    """The recipe's parts rebuilt with the checkpoint's config (and run files), its weights loaded."""
    checkpoint = load_checkpoint(path)
    config = checkpoint_config(path, checkpoint)
    if config.recipe != recipe.name:
        raise UserError(f"{path} was trained by recipe {config.recipe!r}, not {recipe.name!r}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    config = dataclasses.replace(config, **overrides, run_dir=str(run_dir_of(path)))
    device = resolve_device(config.device)
    manual_seed(config.seed)
    parts = recipe.build(config, make_settings(recipe.settings, config.settings))
    try:
        parts.model.load_state_dict(checkpoint["model"])
    except (RuntimeError, KeyError) as exc:
        raise UserError(f"{path} does not fit {recipe.name}'s model: {str(exc).splitlines()[0]}") from None
    parts.model.to(device).eval()
    return parts, config, device


def evaluate_checkpoint(recipe: Recipe, path: Path, split: str, **overrides: Any) -> dict[str, Any]:
    """Metrics of the checkpoint's model on ``val`` or ``test``; ``overrides`` replace config fields (data_dir...)."""
    parts, config, device = load_for_inference(recipe, path, **overrides)
    data = parts.test if split == "test" else parts.val
    if data is None:
        raise UserError(f"{recipe.name} has no {split} split")
    loader = build_loader(data, config.batch_size, shuffle=False, seed=config.seed, device=device)
    evaluator = build_evaluator(parts, parts.model, device, amp=False)
    evaluator.run(loader, epoch_length=epoch_length(loader, config.limit_batches))
    return dict(evaluator.state.metrics)
