"""ignite-lab: the classic PyTorch models as recipes, trained by one set of PyTorch Ignite engines and handlers.

What a recipe imports from here: ``Recipe``, ``Parts`` and ``Preset`` (what to train), ``TrainConfig`` (what
``build`` receives), ``TensorData``/``holdout_split`` (in-memory data), ``RunView``/``StepTools``/
``step_output`` (a recipe's own handlers and training step), ``UserError`` (a clear message for bad
input), ``setting`` (a ``--set`` setting with its range), ``run_file`` (a file ``build`` keeps with
its run) and ``recipe_main`` (``python my_recipe.py`` runs it with every flag).

From a notebook or script: ``ignite_lab.run(NAME, epochs=3, ...)`` trains and returns a ``Run``;
``ignite_lab.load(RUN_DIR)`` opens one (see ``ignite_lab.api``).
"""

from ignite_lab.core.config import TrainConfig
from ignite_lab.core.errors import UserError
from ignite_lab.core.recipe import Book, Parts, Predictor, Preset, Recipe, RunView, StepTools, step_output
from ignite_lab.core.settings import setting
from ignite_lab.training.loaders import TensorData, holdout_split
from ignite_lab.training.rundir import run_file

__all__ = [
    "Book",
    "Parts",
    "Predictor",
    "Preset",
    "Recipe",
    "RunView",
    "StepTools",
    "TensorData",
    "TrainConfig",
    "UserError",
    "holdout_split",
    "recipe_main",
    "run_file",
    "setting",
    "step_output",
]
__version__ = "0.2.0"


def __getattr__(name: str):
    """``ignite_lab.run``, ``ignite_lab.load`` and ``ignite_lab.Run``: the notebook API, imported when first used."""
    if name in ("run", "load", "Run"):
        from ignite_lab import api

        return getattr(api, name)
    raise AttributeError(f"module 'ignite_lab' has no attribute {name!r}")


def recipe_main(recipe: Recipe) -> None:
    """Run ``recipe`` from the command line with every ignite-lab flag (``python my_recipe.py --epochs 3``)."""
    from ignite_lab.cli.commands import recipe_main as main

    main(recipe)
