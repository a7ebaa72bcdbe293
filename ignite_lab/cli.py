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


def run_command(recipe: Recipe, name: str | None = None, ref: str | None = None) -> click.Command:
    """The click command that trains ``recipe``; flags default to the recipe's own defaults.

    ``ref`` (a recipe name or .py file) is how spawned processes find the recipe again.
    """

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
        from ignite_lab.launch import run_training

        run_training(recipe, recipe_ref, RunConfig(recipe=recipe.name, settings=settings, **kwargs), explicit)

    recipe_ref = ref or recipe.name

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
        click.Option(["--lr-schedule"], type=click.Choice(LR_SCHEDULES), default=recipe.lr_schedule, show_default=True),
        click.Option(["--amp"], is_flag=True, help="Mixed precision (CUDA only)."),
        click.Option(
            ["--limit-batches"],
            type=click.IntRange(min=1),
            help="At most N batches per epoch and evaluation (smoke runs).",
        ),
        click.Option(
            ["--visdom"], is_flag=True, help="Live plots in Visdom (start one with: ignite-lab visdom start)."
        ),
        click.Option(["--visdom-server"], envvar="VISDOM_SERVER_URL", default="http://127.0.0.1", show_default=True),
        click.Option(
            ["--visdom-port"], envvar="VISDOM_PORT", type=click.IntRange(1, 65535), default=8097, show_default=True
        ),
        click.Option(["--visdom-env"], help="Visdom env name (default: RECIPE_TIMESTAMP, one per run)."),
        click.Option(
            ["--eval-batch-size"], type=click.IntRange(min=1), help="Batch for evaluation (default: 2x --batch-size)."
        ),
        click.Option(["--deterministic"], is_flag=True, help="Deterministic algorithms only (exact resume on CPU)."),
        click.Option(
            ["--checkpoint-every"],
            type=click.IntRange(min=1),
            metavar="N",
            help="Also save the last checkpoint every N iterations (mid-epoch resume).",
        ),
        click.Option(
            ["--nproc-per-node"], type=click.IntRange(min=1), help="Processes on this machine (torch.distributed)."
        ),
        click.Option(["--nnodes"], type=click.IntRange(min=1), default=1, show_default=True),
        click.Option(["--node-rank"], type=click.IntRange(min=0), default=0, show_default=True),
        click.Option(["--master-addr"], default="127.0.0.1", show_default=True),
        click.Option(["--master-port"], type=click.IntRange(1, 65535), default=29500, show_default=True),
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
    module = sys.modules.get(recipe.build.__module__)
    path = Path(getattr(module, "__file__", "") or "")
    in_registry = path.parent.name == "recipes" and path.stem == recipe.name  # python -m recipes.NAME
    ref = recipe.name if in_registry or not path.name else str(path)
    run_command(recipe, ref=ref).main(prog_name=f"python -m recipes.{recipe.name}")


class RecipeGroup(click.Group):
    """``ignite-lab run NAME``: each recipe (or a recipe .py file) is a subcommand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return recipe_names()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command:
        return run_command(load_recipe(cmd_name), cmd_name, ref=cmd_name)


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


@cli.command("generate")
@click.argument("name")
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--prime", default="", help="Text the sample starts from.")
@click.option("--length", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=0.8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives the same sample.")
def generate_command(name: str, checkpoint: Path, prime: str, length: int, temperature: float, seed: int) -> None:
    """Sample text from a generator recipe's checkpoint (e.g. char_rnn)."""
    from ignite_lab.evaluation import load_for_inference

    recipe = load_recipe(name)
    parts, _, _ = load_for_inference(recipe, checkpoint)
    if parts.generate is None:
        raise UserError(f"{name} does not generate text")
    click.echo(parts.generate(prime, length, temperature, seed))


@cli.command("profile", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.option("--iterations", type=click.IntRange(min=1), default=20, show_default=True)
@click.argument("flags", nargs=-1, type=click.UNPROCESSED)
def profile_command(name: str, iterations: int, flags: tuple[str, ...]) -> None:
    """Profile a few training iterations of NAME (any run flag may follow, e.g. --data-dir, --batch-size)."""
    from ignite_lab.profiling import profile_recipe

    recipe = load_recipe(name)
    command = run_command(recipe, name)
    ctx = command.make_context(f"profile {name}", [*flags, "--epochs", "1", "--limit-batches", str(iterations)])
    params = dict(ctx.params)
    pairs = params.pop("set")
    config = RunConfig(recipe=recipe.name, settings=parse_settings(recipe.settings, pairs), **params)
    profile_recipe(recipe, config, set())


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


@cli.group("visdom")
def visdom_group() -> None:
    """Run a local Visdom server for live plots (start, stop, status, assets)."""


def _server_options(func):
    func = click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where the server keeps its envs, log and PID file (default: ~/.cache/ignite-lab/visdom).",
    )(func)
    return click.option("--port", envvar="VISDOM_PORT", type=click.IntRange(1, 65535), default=8097, show_default=True)(
        func
    )


def _paths(port: int, state_dir: Path | None):
    from ignite_lab.visdom_server import ServerPaths, default_state_dir

    state = (state_dir or default_state_dir()).expanduser()
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the Visdom state directory {state}: {exc.strerror}") from None
    return ServerPaths(state, port)


@visdom_group.command("start")
@_server_options
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="127.0.0.1 listens on loopback only; any other address makes visdom listen on all interfaces.",
)
@click.option("--enable-login", is_flag=True, help="Require VISDOM_USERNAME / VISDOM_PASSWORD in the browser.")
def visdom_start(port: int, state_dir: Path | None, host: str, enable_login: bool) -> None:
    """Start a Visdom server in the background (its browser assets come from npm when offline)."""
    from ignite_lab.visdom_server import start_server

    paths = _paths(port, state_dir)
    pid = start_server(paths, host=host, enable_login=enable_login)
    click.echo(
        f"Visdom is running: http://127.0.0.1:{port} (pid {pid}, envs in {paths.env_path}, log {paths.log_file})"
    )
    click.echo(f"Train with live plots: ignite-lab run mnist --visdom --visdom-port {port}")


@visdom_group.command("stop")
@_server_options
def visdom_stop(port: int, state_dir: Path | None) -> None:
    """Stop the server that `visdom start` started on this port (and no other process)."""
    from ignite_lab.visdom_server import stop_server

    if stop_server(_paths(port, state_dir)):
        click.echo(f"stopped the Visdom server on port {port}")
    else:
        click.echo(f"no Visdom server started by ignite-lab is running on port {port}")


@visdom_group.command("status")
@_server_options
def visdom_status(port: int, state_dir: Path | None) -> None:
    """Say whether a server answers on the port (exit 0) or not (exit 3)."""
    from ignite_lab.visdom_server import server_status

    answering, pid = server_status(_paths(port, state_dir))
    owner = f"started by ignite-lab, pid {pid}" if pid else "not started by ignite-lab"
    if answering:
        click.echo(f"Visdom answers on http://127.0.0.1:{port} ({owner})")
    else:
        click.echo(f"nothing answers on http://127.0.0.1:{port}")
        sys.exit(3)


@visdom_group.command("assets")
def visdom_assets() -> None:
    """Install Visdom's browser assets from the npm registry, so the server starts offline."""
    from ignite_lab.visdom_server import install_assets, static_dir

    placed = install_assets()
    click.echo(
        f"installed {placed} files into {static_dir()}" if placed else f"assets already installed in {static_dir()}"
    )


@cli.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("compare.png"),
    show_default=True,
    help="PNG with the runs' curves overlaid.",
)
def compare_command(run_dirs: tuple[Path, ...], out: Path) -> None:
    """Compare finished runs from their files: a table of configs and final metrics, and overlaid curves."""
    from ignite_lab.compare import compare_runs

    table = compare_runs(list(run_dirs), out)
    click.echo(table)
    click.echo(f"curves: {out}")
