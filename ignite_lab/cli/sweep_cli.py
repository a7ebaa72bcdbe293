"""``ignite-lab sweep NAME``: the run flags, where ``--lr``, ``--batch-size`` and ``--set`` take search spaces,
and the sweep's own flags, parsed into a ``sweep.Sweep``."""

from __future__ import annotations

import dataclasses

import click

from ignite_lab.cli.commands import parse_request, recipe_command, run_options
from ignite_lab.core.config import LaunchConfig
from ignite_lab.core.recipe import Recipe

SWEEP_LAUNCH = ("resume", "nproc_per_node", "nnodes", "node_rank", "master_addr", "master_port")  # not for trials


def sweep_options(recipe: Recipe) -> list[click.Option]:
    """The run flags (searchable ones take a SPACE), without resume and multi-process ones, and the sweep's own."""
    searchable = {"lr": str(recipe.lr), "batch_size": str(recipe.batch_size)}
    options_ = []
    for option in run_options(recipe):
        if option.name in SWEEP_LAUNCH:
            continue
        if option.name in searchable:
            help_ = f"{option.help} A value or a SPACE, e.g. 'log(1e-4,1e-1)' or '[32,64]'."
            option = click.Option(option.opts, default=searchable[option.name], show_default=True, help=help_)
        if option.name == "set":
            option = click.Option(
                ["--set", "set"], multiple=True, metavar="KEY=VALUE|SPACE", help="A setting or its space."
            )
        options_.append(option)
    positive = click.IntRange(min=1)
    return options_ + [
        click.Option(["--trials"], type=positive, required=True, help="Trials in the study, all workers together."),
        click.Option(["--study"], default="sweep", show_default=True, help="Study name (the same on every machine)."),
        click.Option(["--storage"], help="SQLAlchemy URL, e.g. postgresql://user:pw@host/db (default: a SQLite file)."),
        click.Option(["--jobs"], type=positive, default=1, show_default=True, help="Trials at a time here."),
        click.Option(["--pruner"], type=click.Choice(["none", "median", "hyperband"]), default="median"),
        click.Option(
            ["--timeout"], type=click.FloatRange(min=0, min_open=True), help="Start no trial after N seconds."
        ),
        click.Option(["--max-failures"], type=positive, help="Stop once this many trials failed (default: --trials)."),
    ]


def sweep_command(recipe: Recipe, ref: str, name: str | None = None) -> click.Command:
    def callback(**values) -> None:
        from ignite_lab.tools.sweep import run_sweep

        click.echo(run_sweep(parse_sweep(recipe, ref, values, click.get_current_context()), recipe))

    help_ = f"Search hyperparameters of {recipe.name} with Optuna. {SPACE_HELP}"
    return recipe_command(recipe, name, callback, sweep_options(recipe), help_)


SPACE_HELP = (
    "SPACE: log(LOW,HIGH) log-uniform; (LOW,HIGH) uniform; (LOW,HIGH,STEP) on a grid; [A,B,C] one of these; "
    "anything else a fixed value. Integer settings get integers."
)


def parse_sweep(recipe: Recipe, ref: str, values: dict, ctx: click.Context):
    """Sweep flags -> a Sweep: the spaces, the fixed values in the base run's config, the study's place."""
    from ignite_lab.tools.spaces import parse_spaces
    from ignite_lab.tools.study import Sweep

    sweep_keys = ("trials", "study", "storage", "jobs", "pruner", "timeout", "max_failures")
    own = {key: values.pop(key) for key in sweep_keys}
    flags = {"lr": (float, values.pop("lr")), "batch_size": (int, values.pop("batch_size"))}
    spaces, settings, fixed = parse_spaces(recipe.settings, list(values.pop("set")), flags)
    # a searched flag keeps the recipe's default in the base config; each trial's config overrides it
    values.update({"set": [f"{k}={v}" for k, v in settings.items()], **fixed})
    values.update({s.name: getattr(recipe, s.name) for s in spaces if not s.name.startswith("settings.")})

    launch_defaults = {f.name: f.default for f in dataclasses.fields(LaunchConfig) if f.name in SWEEP_LAUNCH}
    request = parse_request(recipe, ref, {**values, **launch_defaults}, ctx)
    return Sweep(request, spaces, **own)
