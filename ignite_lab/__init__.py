"""ignite-lab: the classic PyTorch models as recipes, trained by one set of PyTorch Ignite engines and handlers.

What a recipe imports from here: ``Recipe``, ``Parts`` and ``Preset`` (what to train), ``TrainConfig`` (what
``build`` receives), ``TensorData``/``holdout_split`` (in-memory data), ``RunView``/``StepTools``/
``step_output`` (a recipe's own handlers and training step), ``UserError`` (a clear message for bad
input), ``setting`` (a ``--set`` setting with its range), ``run_file`` (a file ``build`` keeps with
its run) and ``recipe_main`` (``python my_recipe.py`` runs it with every flag).
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


def recipe_main(recipe: Recipe) -> None:
    """Run ``recipe`` from the command line with every ignite-lab flag (``python my_recipe.py --epochs 3``)."""
    from ignite_lab.cli.commands import recipe_main as main

    main(recipe)
