"""Finding recipes: by name in the ``recipes`` package, or from a recipe file a user wrote or copied."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

from ignite_lab.errors import UserError
from ignite_lab.recipe import Recipe


def recipe_names() -> list[str]:
    import recipes

    return sorted(m.name for m in pkgutil.iter_modules(recipes.__path__) if not m.name.startswith("_"))


def _module_recipe(module: ModuleType, where: str) -> Recipe:
    recipe = getattr(module, "RECIPE", None)
    if not isinstance(recipe, Recipe):
        raise UserError(f"{where} defines no RECIPE = Recipe(...)")
    return recipe


def recipe_module(name: str) -> ModuleType:
    names = recipe_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UserError(f"unknown recipe {name!r}.{hint} Known recipes: {', '.join(names)} (see: ignite-lab list)")
    return importlib.import_module(f"recipes.{name}")


def load_recipe(name: str) -> Recipe:
    """A recipe by name, or from a ``.py`` file (for example one made with ``ignite-lab copy``)."""
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise UserError(f"recipe file {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"user_recipe_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses (and pickling) look their module up there
        spec.loader.exec_module(module)
        return _module_recipe(module, str(path))
    return _module_recipe(recipe_module(name), f"recipes.{name}")
