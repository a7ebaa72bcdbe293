"""The ``ignite-lab`` command and the per-recipe command behind ``python -m recipes.NAME``.

One click command is built per recipe, so ``ignite-lab run NAME``, ``python -m recipes.NAME``
and ``make NAME`` parse the same flags into the same RunConfig.
"""

from __future__ import annotations

import inspect
import logging
import re
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from ignite_lab.config import LR_SCHEDULES, RunConfig, describe_settings, parse_settings
from ignite_lab.errors import UserError
from ignite_lab.recipe import Recipe
from ignite_lab.registry import load_recipe, recipe_module, recipe_names
from ignite_lab.tables import format_table

log = logging.getLogger("ignite_lab")


def setup_logging(level: int = logging.INFO) -> None:
    """Console output for people: plain messages, warnings marked as such."""
    if any(getattr(h, "_ignite_lab", False) for h in log.handlers):
        return
    handler = _StderrHandler()
    handler._ignite_lab = True  # type: ignore[attr-defined]
    handler.setFormatter(_ConsoleFormatter())
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (click's test runner and pytest swap it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return f"{record.levelname.lower()}: {text}" if record.levelno >= logging.WARNING else text


def _settings_epilog(recipe: Recipe) -> str:
    rows = describe_settings(recipe.settings)
    if not rows:
        return "This recipe has no settings of its own."
    lines = ["\b", "Recipe settings (--set KEY=VALUE):"]
    lines += [f"  {name:<14} {kind:<10} default {default:<8} {help_}" for name, kind, default, help_ in rows]
    return "\n".join(lines)


def run_command(recipe: Recipe, name: str | None = None) -> click.Command:
    """The click command that trains ``recipe``; flags default to the recipe's own defaults."""

    def callback(**kwargs) -> None:
        ctx = click.get_current_context()
        explicit = {
            k
            for k in kwargs
            if ctx.get_parameter_source(k) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
        }
        pairs = kwargs.pop("set")
        settings = parse_settings(recipe.settings, pairs)
        if kwargs["resume"]:  # only settings given now override the resumed run's
            given = {p.partition("=")[0].strip() for p in pairs}
            settings = {k: v for k, v in settings.items() if k in given}
            explicit = (explicit - {"set"}) | ({"settings"} if given else set())
        from ignite_lab.training import train

        train(recipe, RunConfig(recipe=recipe.name, settings=settings, **kwargs), explicit)

    params = [
        click.Option(
            ["--epochs"], type=click.IntRange(min=1), default=recipe.epochs, show_default=True, help="Epochs to train."
        ),
        click.Option(["--batch-size"], type=click.IntRange(min=1), default=recipe.batch_size, show_default=True),
        click.Option(
            ["--lr"],
            type=click.FloatRange(min=0, min_open=True),
            default=recipe.lr,
            show_default=True,
            help="Learning rate.",
        ),
        click.Option(["--device"], default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps."),
        click.Option(["--seed"], type=int, default=0, show_default=True),
        click.Option(
            ["--data-dir"],
            type=click.Path(file_okay=False),
            help="Dataset folder (downloaded there when missing and online).",
        ),
        click.Option(["--output-dir"], type=click.Path(file_okay=False), default="runs", show_default=True),
        click.Option(
            ["--resume"], metavar="PATH|auto", help="Continue from a checkpoint, a run directory, or the newest run."
        ),
        click.Option(
            ["--patience"],
            type=click.IntRange(min=1),
            help="Early stopping after this many epochs without improvement.",
        ),
        click.Option(["--lr-schedule"], type=click.Choice(LR_SCHEDULES), default="none", show_default=True),
        click.Option(["--amp"], is_flag=True, help="Mixed precision (CUDA only)."),
        click.Option(
            ["--limit-batches"],
            type=click.IntRange(min=1),
            help="At most N batches per epoch and evaluation (smoke runs).",
        ),
        click.Option(["--set", "set"], multiple=True, metavar="KEY=VALUE", help="A recipe setting (listed below)."),
    ]
    return click.Command(
        name or recipe.name,
        callback=callback,
        params=params,
        help=f"{recipe.summary} Data: {recipe.dataset}.",
        epilog=_settings_epilog(recipe),
        context_settings={"max_content_width": 110},
    )


def recipe_main(recipe: Recipe) -> None:
    """Entry point of ``python -m recipes.NAME`` and of files made by ``ignite-lab copy``."""
    setup_logging()
    run_command(recipe).main(prog_name=f"python -m recipes.{recipe.name}")


class RecipeGroup(click.Group):
    """``ignite-lab run NAME``: each recipe (or a recipe .py file) is a subcommand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return recipe_names()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command:
        return run_command(load_recipe(cmd_name), cmd_name)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def cli() -> None:
    """ignite-lab: train and compare the classic PyTorch models with one set of Ignite handlers."""
    setup_logging()


cli.add_command(RecipeGroup("run", help="Train a recipe: ignite-lab run NAME [FLAGS]. NAME may be a recipe .py file."))


@cli.command("list")
def list_recipes() -> None:
    """List the recipes."""
    rows = [(r.name, r.summary, r.dataset, r.epochs) for r in (load_recipe(n) for n in recipe_names())]
    click.echo(format_table(["name", "what", "dataset", "epochs"], rows))


@cli.command("eval")
@click.argument("name")
@click.option("--checkpoint", "checkpoint", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(["val", "test"]), default="test", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), help="Dataset folder, if not the one used for training.")
@click.option("--device", help="Device to evaluate on (default: the run's).")
@click.option("--batch-size", type=click.IntRange(min=1))
def eval_command(
    name: str, checkpoint: Path, split: str, data_dir: str | None, device: str | None, batch_size: int | None
) -> None:
    """Score a saved checkpoint of recipe NAME on a data split."""
    from ignite_lab.evaluation import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        load_recipe(name), checkpoint, split, data_dir=data_dir, device=device, batch_size=batch_size
    )
    rows = [(k, v) for k, v in metrics.items() if isinstance(v, (int, float))]
    click.echo(f"{name} {split} metrics of {checkpoint}:")
    click.echo(format_table(["metric", "value"], rows))


@cli.command("copy")
@click.argument("name")
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite DEST if it exists.")
def copy_command(name: str, dest: Path, force: bool) -> None:
    """Write recipe NAME's source to DEST.py, renamed after the file, ready to edit and run."""
    if dest.suffix != ".py":
        raise UserError(f"{dest}: the copy must be a .py file")
    new_name = dest.stem
    if not new_name.isidentifier():
        raise UserError(f"{dest}: the file name must be a Python identifier (it becomes the recipe name)")
    if dest.exists() and not force:
        raise UserError(f"{dest} exists; pass --force to overwrite it")
    source = inspect.getsource(recipe_module(name))
    source, count = re.subn(r'(RECIPE = Recipe\(\s*name=)"[^"]+"', rf'\1"{new_name}"', source)
    if count != 1:
        raise UserError(f"cannot find the RECIPE name in recipes/{name}.py")
    dest.write_text(source)
    click.echo(f"wrote {dest} (recipe {new_name!r}); run it with: python {dest} --epochs 1  or  ignite-lab run {dest}")


def main() -> None:
    cli(prog_name="ignite-lab")
