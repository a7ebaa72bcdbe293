"""A recipe as a click command: the flags of ``ignite-lab run NAME``, ``python -m recipes.NAME`` and ``make NAME``.

One click command is built per recipe, so every entry point parses the same flags into the same configs.
The flags are generated from the config dataclasses (flags.py); a preset's flags and settings sit between
the recipe's defaults and what was typed. The core raises plain exceptions; ``Reported`` turns them into
click's one-line errors and exit codes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from ignite_lab.cli.flags import options
from ignite_lab.core.config import DashboardConfig, LaunchConfig, TrainConfig, split_fields
from ignite_lab.core.errors import RunFailed, UserError
from ignite_lab.core.recipe import Preset, Recipe
from ignite_lab.core.registry import file_for, file_ref, load_recipe, recipe_names
from ignite_lab.core.settings import describe_settings, parse_settings
from ignite_lab.training.logs import setup_logging

log = logging.getLogger("ignite_lab")


class Reported:
    """Turns the core's exceptions into click's: one line on stderr and the error's exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except UserError as exc:
            if exc.exit_code == 0:  # nothing to do: say so and succeed
                log.info("%s", exc.message)
                ctx.exit(0)
            if isinstance(exc, RunFailed):  # the run logged its reason itself
                ctx.exit(exc.exit_code)
            error = click.ClickException(exc.message)
            error.exit_code = exc.exit_code
            raise error from None


class LabCommand(Reported, click.Command):
    pass


class LabGroup(Reported, click.Group):
    pass


def settings_epilog(recipe: Recipe) -> str:
    rows = describe_settings(recipe.settings)
    lines = ["\b", "Recipe settings (--set KEY=VALUE):"] if rows else ["\b", "This recipe has no settings of its own."]
    lines += [f"  {name:<14} {kind:<10} default {default:<8} {help_}" for name, kind, default, help_ in rows]
    for name, preset in recipe.presets.items():
        lines += ["", f"Preset {name} (--preset {name}): {preset.source}", f"  {describe_preset(preset)}"]
    return "\n".join(lines)


def describe_preset(preset: Preset) -> str:
    """A preset's flags and settings as command-line text."""
    flags = [f"--{k.replace('_', '-')} {v}" for k, v in preset.flags.items()]
    return " ".join(flags + [f"--set {k}={v}" for k, v in preset.settings.items()]) or "(the defaults)"


def run_options(recipe: Recipe) -> list[click.Option]:
    """Every run flag: the config dataclasses' fields (recipe defaults where it has them), then --set."""
    set_option = click.Option(["--set", "set"], multiple=True, metavar="KEY=VALUE", help="A recipe setting (below).")
    amp = click.Option(["--amp"], is_flag=True, help="The old name of --precision 16.")
    train = options(TrainConfig, recipe.defaults())
    return [*train, amp, *options(LaunchConfig), *options(DashboardConfig), set_option]


def parse_request(recipe: Recipe, ref: str, values: dict, ctx: click.Context):
    """Parsed flags -> a launch Request; ``given`` names the training fields the user typed (a preset's count too).

    Precedence: the recipe's defaults, then the preset's flags and settings, then what was typed.
    """
    from ignite_lab.training.launch import Request

    sources = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    typed = {k for k in values if ctx.get_parameter_source(k) in sources}
    if values.pop("amp") and "precision" not in typed:
        values["precision"] = "16"
        typed.add("precision")

    preset = preset_of(recipe, values["preset"])
    for key, value in preset.flags.items():
        if key not in typed:
            values[key] = value
            typed.add(key)
    settings = {**preset.settings, **parse_settings(recipe.settings, values.pop("set"))}
    train, launch, dashboard = split_fields(values)
    given = {k for k in typed if k in train} | ({"settings"} if settings else set())
    config = TrainConfig(recipe=recipe.name, settings=settings, **train).check()
    return Request(ref, config, given, LaunchConfig(**launch), DashboardConfig(**dashboard))


def request_from(recipe: Recipe, ref: str, args: list[str]):
    """A launch Request from command-line words (the Python API's keywords, spelled as flags): the same parsing
    and checks as ``ignite-lab run``; a bad flag or value is a UserError."""
    command = run_command(recipe, ref)
    try:
        ctx = command.make_context(recipe.name, args)
    except click.ClickException as exc:
        raise UserError(exc.format_message()) from None
    return parse_request(recipe, ref, dict(ctx.params), ctx)


def preset_of(recipe: Recipe, name: str) -> Preset:
    if name == "default":
        return Preset(source="the recipe's defaults")
    if name not in recipe.presets:
        known = ", ".join(["default", *recipe.presets])
        raise UserError(f"--preset {name}: {recipe.name} has the presets {known}")
    return recipe.presets[name]


def run_command(recipe: Recipe, ref: str, name: str | None = None) -> click.Command:
    """The click command that trains ``recipe``. ``ref`` (a built-in name or a recipe file's absolute path) is
    how spawned processes load that same recipe again."""

    def callback(**values) -> None:
        from ignite_lab.training.launch import launch

        launch(recipe, parse_request(recipe, ref, values, click.get_current_context()))

    return recipe_command(recipe, name, callback, run_options(recipe), f"{recipe.summary} Data: {recipe.dataset}.")


def recipe_command(
    recipe: Recipe, name: str | None, callback: Callable, params: list[click.Option], help_: str
) -> click.Command:
    """A command about one recipe, its settings listed below the flags."""
    return LabCommand(
        name or recipe.name,
        callback=callback,
        params=params,
        help=help_,
        epilog=settings_epilog(recipe),
        context_settings={"max_content_width": 110},
    )


def recipe_main(recipe: Recipe) -> None:
    """Entry point of ``python -m recipes.NAME``, ``python my_recipe.py`` and files made by ``ignite-lab copy``."""
    setup_logging()
    ref = file_ref(recipe)  # the file itself, never a guess from its folder's name
    run_command(dataclasses.replace(recipe, name=Path(ref).stem), ref).main(prog_name=f"python {Path(ref).name}")


class RecipeGroup(LabGroup):
    """A group whose subcommands are the recipes, or recipe .py files (``ignite-lab run NAME``, ``sweep NAME``):
    ``command_for(recipe, ref, name)`` builds each one when it is asked for."""

    def __init__(self, name: str, command_for: Callable[[Recipe, str, str], click.Command], **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.command_for = command_for

    def list_commands(self, ctx: click.Context) -> list[str]:
        return recipe_names()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command:
        ref = str(Path(cmd_name).resolve()) if cmd_name.endswith(".py") else file_for(cmd_name)
        return self.command_for(load_recipe(ref), ref, cmd_name)
