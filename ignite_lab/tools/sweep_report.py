"""The end of a sweep: the trials as a table, the best trial's run directory and the ``ignite-lab run``
command that trains exactly its config, and Optuna's pictures."""

from __future__ import annotations

import dataclasses
import logging
import shlex
import warnings
from pathlib import Path
from typing import Any

from ignite_lab.core.config import TrainConfig
from ignite_lab.core.recipe import Recipe
from ignite_lab.core.settings import complete_settings
from ignite_lab.tools.study import Sweep, open_study, trial_config

log = logging.getLogger(__name__)


def report(sweep: Sweep, recipe: Recipe) -> str:
    """The trials as a table, the best trial's directory and command, and Optuna's pictures in the sweep folder."""
    from ignite_lab.outputs.tables import format_table

    study = open_study(sweep, create=False)
    trials = study.get_trials(deepcopy=False)
    names = sorted({name for t in trials for name in t.params})
    rows = [
        [t.number, t.state.name.lower(), *[short(t.params.get(n)) for n in names], t.value, wall(t)] for t in trials
    ]
    text = [format_table(["trial", "state", *names, f"val {sweep.score}", "wall s"], rows)]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if complete:
        best = study.best_trial
        text.append(f"best: trial {best.number}, val {sweep.score} {best.value:.4f}, {best.user_attrs.get('run_dir')}")
        text.append(f"reproduce it with: {best_command(sweep, recipe, best)}")
        text.append(f"pictures: {', '.join(str(p) for p in pictures(study, sweep.folder))}")
    return "\n".join(text)


def short(value: Any) -> Any:
    """Searched floats to 3 significant digits in the table (the best command keeps them exact)."""
    return f"{value:.3g}" if isinstance(value, float) else value


def wall(trial: Any) -> str | None:
    seconds = trial.user_attrs.get("wall_time_s")
    return f"{seconds:.1f}" if seconds is not None else None


def best_command(sweep: Sweep, recipe: Recipe, best: Any) -> str:
    """``ignite-lab run`` that trains exactly the best trial's config."""
    return run_command_for(recipe, sweep.request.recipe_ref, trial_config(sweep, best))


def run_command_for(recipe: Recipe, ref: str, config: TrainConfig) -> str:
    """The ``ignite-lab run`` command line that trains ``config``: every field and setting that differs from
    what the bare command gives (the recipe's defaults), derived from the config's own fields."""
    base = TrainConfig(recipe=recipe.name, **recipe.defaults())
    words = ["ignite-lab", "run", ref]
    for f in dataclasses.fields(TrainConfig):
        value = getattr(config, f.name)
        if not f.metadata.get("cli", True) or value == getattr(base, f.name) or value is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        words += [flag] if value is True else [flag, repr(value) if isinstance(value, float) else str(value)]
    defaults = complete_settings(recipe.settings, {})
    for key, value in config.settings.items():
        if value != defaults.get(key):
            words += ["--set", f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"]
    return " ".join(shlex.quote(word) for word in words)


def pictures(study: Any, folder: Path) -> list[Path]:
    """Optuna's matplotlib pictures: optimisation history, parameter importances, parallel coordinates."""
    from optuna.visualization import matplotlib as plots

    from ignite_lab.outputs.plots import pyplot

    plt = pyplot()
    written = []
    for name, draw in (
        ("history", plots.plot_optimization_history),
        ("importances", plots.plot_param_importances),
        ("parallel_coordinates", plots.plot_parallel_coordinate),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = draw(study)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            figure.savefig(folder / f"{name}.png", dpi=90)
            plt.close(figure)
            written.append(folder / f"{name}.png")
        except (ValueError, RuntimeError) as exc:  # importances need two finished trials that differ
            log.info("no %s picture: %s", name, exc)
    return written
