"""The Python API, for notebooks and scripts: ``run`` trains a recipe in the calling process, ``load`` opens a
run directory; both return a ``Run`` (its summary, its metrics as a pandas DataFrame, its best model, its
curves).

    import ignite_lab
    run = ignite_lab.run("mnist", epochs=3, data_dir="data/mnist")
    run.plot()

Every keyword is a flag of ``ignite-lab run`` (``epochs``, ``preset``, ``output_dir``, ``precision``,
``resume``...), parsed and checked by the same code, so a bad value is the same one-line ``UserError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ignite_lab.core.config import TrainConfig
from ignite_lab.core.errors import UserError
from ignite_lab.core.registry import file_for, load_recipe
from ignite_lab.training.rundir import RunDir


def run(recipe: str, *, settings: dict[str, Any] | None = None, **flags: Any) -> Run:
    """Train ``recipe`` (a built-in name or a recipe ``.py`` file) here and return its run.

    ``settings`` are the recipe's ``--set`` values; every other keyword is a run flag by its Python name
    (``data_dir="..."``, ``batch_size=64``, ``resume="auto"``). ``True`` turns a switch on. Without
    ``threads``, the calling process's own ``torch.get_num_threads()`` is kept.
    """
    import torch

    from ignite_lab.cli.commands import request_from
    from ignite_lab.training.launch import launch
    from ignite_lab.training.logs import setup_logging

    if flags.get("threads") is None:  # this process's count stands: the user's torch.set_num_threads included
        flags = {**flags, "threads": torch.get_num_threads()}
    ref = str(Path(recipe).expanduser().resolve()) if recipe.endswith(".py") else file_for(recipe)
    loaded = load_recipe(ref)
    request = request_from(loaded, ref, arguments(flags, settings or {}))
    setup_logging()
    path = launch(loaded, request)
    if path is None:
        raise UserError("this process trained one share of a distributed run: load the run from its folder")
    return Run(Path(path))


def arguments(flags: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """Keywords as the command line says them: ``batch_size=64`` -> ``--batch-size 64``."""
    args: list[str] = []
    for key, value in flags.items():
        name = "--" + key.replace("_", "-")
        if value is True:
            args.append(name)
        elif value is not None and value is not False:
            args += [name, str(value)]
    for key, value in settings.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ["--set", f"{key}={text}"]
    return args


def load(path: str | Path) -> Run:
    """A run directory, finished or not, as a ``Run``."""
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder} is not an ignite-lab run directory (it has no config.json)")
    return Run(folder)


@dataclass
class Run:
    """One run directory: what it was (``config``), how it ended (``summary``), how it went (``metrics``)."""

    path: Path

    @cached_property
    def config(self) -> TrainConfig:
        return TrainConfig.load(self.path / "config.json")

    @property
    def summary(self) -> dict[str, Any]:
        return RunDir(self.path).read_summary()

    @property
    def metrics(self):
        """One row per (epoch, split) and a column per metric, as metrics.jsonl records them."""
        import pandas as pd

        records = RunDir(self.path).read_metrics()
        rows = [{"epoch": r["epoch"], "split": r["split"], **scalars(r["metrics"])} for r in records]
        return pd.DataFrame(rows)

    def best_model(self, device: str = "cpu"):
        """The model with the run's best weights (its last where it kept no best), in eval mode."""
        from ignite_lab.tools.evaluation import load_for_inference

        summary = self.summary
        name = summary.get("best_checkpoint") or summary.get("last_checkpoint")
        if not name:
            raise UserError(f"{self.path} has no checkpoint yet")
        parts, _, _ = load_for_inference(self.recipe(), self.path / "checkpoints" / name, device)
        return parts.model

    def recipe(self):
        """The run's recipe: built in, or the file it was trained from."""
        return load_recipe(self.summary.get("recipe_ref") or self.config.recipe)

    def plot(self):
        """The training and validation curves, one panel per metric, as a matplotlib figure (shown inline)."""
        from ignite_lab.outputs.plots import curves_figure, pyplot

        fig = curves_figure({self.path.name: RunDir(self.path).read_metrics()})
        if fig is not None:
            pyplot().close(fig)  # shown once, as the cell's value, not again by the inline backend
        return fig

    def __repr__(self) -> str:
        status = self.summary.get("status", "unfinished")
        return f"Run({str(self.path)!r}, recipe={self.config.recipe!r}, status={status!r})"


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
