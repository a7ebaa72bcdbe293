"""Finding recipes: by name in the ``recipes`` package, or from a recipe file a user wrote or copied.

A recipe's name is its file's name. Spawned worker processes find the recipe again from its
reference: a built-in name, or the absolute path of a recipe file (never a guess from a folder name).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import pkgutil
import sys
import typing
from pathlib import Path
from types import ModuleType

from ignite_lab.core.checks import problem
from ignite_lab.core.config import TrainConfig
from ignite_lab.core.errors import UserError
from ignite_lab.core.recipe import Preset, Recipe
from ignite_lab.core.settings import complete_settings

BUILT_IN = "ignite_lab.recipes"  # found by name, like a recipe file: the recipes sit above every layer they use


def recipe_names() -> list[str]:
    package = importlib.import_module(BUILT_IN)
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))


def named(module: ModuleType, name: str, where: str) -> Recipe:
    """The module's ``RECIPE``, named ``name``."""
    recipe = getattr(module, "RECIPE", None)
    if not isinstance(recipe, Recipe):
        raise UserError(f"{where} defines no RECIPE = Recipe(...)")
    recipe = dataclasses.replace(recipe, name=name)
    check_declarations(recipe, where)
    return recipe


def check_declarations(recipe: Recipe, where: str) -> None:
    """The recipe's defaults and every preset's flags and settings against the fields they name: a misspelled
    or out-of-range key fails loading, naming the recipe and the preset."""
    hints = typing.get_type_hints(TrainConfig)
    fields = {f.name: f for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True)}
    for preset_name, preset in {"default": Preset("the recipe's fields", recipe.defaults()), **recipe.presets}.items():
        for key, value in preset.flags.items():
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise UserError(f"{where}: preset {preset_name!r} sets {key!r}, which is no run flag{hint}")
            wrong = problem(hints[key], fields[key].metadata, value)
            if wrong:
                raise UserError(f"{where}: preset {preset_name!r}: {key}: {wrong}, got {value!r}")
        complete_settings(recipe.settings, preset.settings, where=f"{where}: preset {preset_name!r}")


def recipe_module(name: str) -> ModuleType:
    names = recipe_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UserError(
            f"unknown recipe {name!r}.{hint} Known recipes: {', '.join(names)} (see: ignite-lab list); "
            "a recipe file's path works too (my_recipe.py)"
        )
    return importlib.import_module(f"{BUILT_IN}.{name}")


def load_recipe(ref: str) -> Recipe:
    """A recipe by name, or from a ``.py`` file (for example one made with ``ignite-lab copy``); a name that is
    no built-in recipe but names ``NAME.py`` here is that file."""
    ref = file_for(ref)
    if not ref.endswith(".py"):
        return named(recipe_module(ref), ref, f"{BUILT_IN}.{ref}")
    path = Path(ref).expanduser()
    if not path.is_file():
        raise UserError(f"recipe file {path} does not exist")
    if not path.stem.isidentifier():
        raise UserError(f"{path}: a recipe file's name must be a Python identifier (it is the recipe's name)")
    spec = importlib.util.spec_from_file_location(f"ignite_lab_recipe_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses (and pickling) look their module up there
    spec.loader.exec_module(module)
    return named(module, path.stem, str(path))


def file_for(ref: str) -> str:
    """``NAME`` -> the absolute path of ``NAME.py`` in the working folder, when NAME is no built-in recipe."""
    if ref.endswith(".py") or ref in recipe_names() or not ref.isidentifier():
        return ref
    path = Path(f"{ref}.py")
    return str(path.resolve()) if path.is_file() else ref


def file_ref(recipe: Recipe) -> str:
    """The absolute path of the file that defines ``recipe`` (how worker processes load that same file)."""
    module = sys.modules.get(recipe.build.__module__)
    return str(Path(module.__file__).resolve())
