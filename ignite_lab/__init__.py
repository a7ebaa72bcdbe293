"""ignite-lab: the classic PyTorch models as recipes, trained by one set of PyTorch Ignite engines and handlers."""

from ignite_lab.cli import recipe_main  # noqa: E402  (imports the modules above)
from ignite_lab.config import RunConfig
from ignite_lab.errors import UserError
from ignite_lab.loaders import TensorData, holdout_split
from ignite_lab.recipe import Parts, Recipe

__all__ = ["Parts", "Recipe", "RunConfig", "TensorData", "UserError", "holdout_split", "recipe_main"]
__version__ = "0.1.0"
