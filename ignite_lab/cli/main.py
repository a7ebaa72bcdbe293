"""The ``ignite-lab`` command: ``run`` and ``sweep`` (a subcommand per recipe), then the tools around runs."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from ignite_lab.cli.commands import LabGroup, RecipeGroup, parse_request, run_command
from ignite_lab.cli.sweep_cli import sweep_command
from ignite_lab.core.config import VISDOM_PORT
from ignite_lab.core.errors import UserError
from ignite_lab.core.registry import file_for, load_recipe, recipe_module, recipe_names
from ignite_lab.outputs.tables import format_table
from ignite_lab.training.logs import setup_logging

log = logging.getLogger("ignite_lab")


@click.group(cls=LabGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def cli() -> None:
    """ignite-lab: train and compare the classic PyTorch models with one set of Ignite handlers."""
    setup_logging()


cli.add_command(
    RecipeGroup("run", run_command, help="Train a recipe: ignite-lab run NAME [FLAGS]. NAME may be a recipe .py file.")
)
cli.add_command(
    RecipeGroup(
        "sweep",
        sweep_command,
        help="Search a recipe's hyperparameters with Optuna: ignite-lab sweep NAME --trials N ...",
    )
)


@cli.command("list")
def list_recipes() -> None:
    """List the recipes."""
    rows = []
    for recipe in (load_recipe(n) for n in recipe_names()):
        rows.append(
            (recipe.name, recipe.summary, recipe.dataset, recipe.epochs, " ".join(["default", *recipe.presets]))
        )
    click.echo(format_table(["name", "what", "dataset", "epochs", "presets"], rows))


@cli.command("eval")
@click.argument("name")
@click.option("--checkpoint", "checkpoint", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(["val", "test"]), default="test", show_default=True)
@click.option("--data-dir", type=click.Path(), help="Dataset folder, if not the one used for training.")
@click.option("--device", default="auto", show_default=True, help="Device to evaluate on.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Evaluation batch (default: the run's).")
def eval_command(
    name: str, checkpoint: Path, split: str, data_dir: str | None, device: str | None, batch_size: int | None
) -> None:
    """Score a saved checkpoint of recipe NAME on a data split."""
    from ignite_lab.tools.evaluation import evaluate_checkpoint

    metrics = evaluate_checkpoint(
        load_recipe(name), checkpoint, split, device, data_dir=data_dir, eval_batch_size=batch_size
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
    from ignite_lab.tools.evaluation import load_for_inference

    recipe = load_recipe(name)
    parts, _, _ = load_for_inference(recipe, checkpoint)
    if parts.generate is None:
        raise UserError(f"{name} does not generate text")
    click.echo(parts.generate(prime, length, temperature, seed))


@cli.command("predict")
@click.argument("name")
@click.argument("inputs", nargs=-1)
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True, help="Classes shown per input.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts instead of a table.")
@click.option("--device", default="auto", show_default=True)
@click.option("--data-dir", type=click.Path(), help="Dataset folder, if not the one used for training.")
def predict_command(
    name: str, inputs: tuple[str, ...], checkpoint: Path, top_k: int, as_json: bool, device: str, data_dir: str | None
) -> None:
    """What a trained model of NAME says about INPUTS: image files or folders, sentences, numbers."""
    from ignite_lab.tools.predict import predict, render

    results = predict(load_recipe(name), checkpoint, list(inputs), top_k, device, data_dir=data_dir)
    click.echo(render(results, as_json))


@cli.command("export")
@click.argument("name")
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["torchscript", "onnx", "exported-program"]),
    required=True,
    help="torchscript is deprecated upstream (torch 2.14 warns); exported-program is its successor",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Default: RUN_DIR/export/NAME.<format>")
def export_command(name: str, checkpoint: Path, fmt: str, out: Path | None) -> None:
    """Export a checkpoint of NAME to a file that loads without ignite-lab (checked against the model first)."""
    from ignite_lab.tools.export import TOLERANCE, export

    done = export(load_recipe(name), checkpoint, fmt, out)
    batch = "dynamic batch" if done.dynamic_batch else f"batch fixed at {done.batch}"
    click.echo(
        f"wrote {done.path} ({fmt}, {batch}); on {done.batch} validation inputs its outputs differ from the model's "
        f"by at most {done.max_difference:.2g} ({TOLERANCE})"
    )
    for path in done.companions:
        click.echo(f"wrote {path} (what turns raw inputs into the model's)")


@cli.command("profile", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.option("--iterations", type=click.IntRange(min=1), default=20, show_default=True)
@click.argument("flags", nargs=-1, type=click.UNPROCESSED)
def profile_command(name: str, iterations: int, flags: tuple[str, ...]) -> None:
    """Profile a few training iterations of NAME (any run flag may follow, e.g. --data-dir, --batch-size)."""
    from ignite_lab.tools.profiling import profile_recipe

    ref = str(Path(name).resolve()) if name.endswith(".py") else file_for(name)
    recipe = load_recipe(ref)
    command = run_command(recipe, ref)
    ctx = command.make_context(f"profile {name}", [*flags, "--epochs", "1", "--limit-batches", str(iterations)])
    profile_recipe(recipe, parse_request(recipe, ref, dict(ctx.params), ctx))


@cli.command("reproduce")
@click.argument("name")
@click.option("--preset", default="all", show_default=True, help="A preset name, default, or all of them.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), help="Datasets by their usual names.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/reproduce"))
@click.option("--table", type=click.Path(dir_okay=False, path_type=Path), default=Path("REPRODUCE.md"))
@click.option("--seeds", type=click.IntRange(min=1), help="Seeds per row (default: 1, or 3-5 for cheap recipes).")
def reproduce_command(
    name: str, preset: str, data_root: Path | None, output_dir: Path, table: Path, seeds: int | None
) -> None:
    """Run recipe NAME (or all) on its real data by preset and update the REPRODUCE.md table."""
    from ignite_lab.tools.reproduce import book_recipes, reproduce

    names = book_recipes() if name == "all" else [load_recipe(name).name]
    reproduce(names, preset, data_root, output_dir, table, seeds)

    click.echo(f"table: {table}")


@cli.command("copy")
@click.argument("name")
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite DEST if it exists.")
def copy_command(name: str, dest: Path, force: bool) -> None:
    """Copy recipe NAME's file to DEST.py: a recipe of your own, named after its file, ready to edit and run."""
    if dest.suffix != ".py" or not dest.stem.isidentifier():
        raise UserError(f"{dest}: the copy must be a .py file whose name is a Python identifier (the recipe's name)")
    if dest.exists() and not force:
        raise UserError(f"{dest} exists; pass --force to overwrite it")
    ref = file_for(name)
    source = Path(ref) if ref.endswith(".py") else Path(recipe_module(ref).__file__)
    if not source.is_file():
        raise UserError(f"recipe file {source} does not exist")
    origin = f"ignite-lab's recipes/{source.name}" if not ref.endswith(".py") else str(source)
    header = (
        f"# Copied from {origin}: recipe {dest.stem!r}, named after this file.\n"
        f"# RECIPE's summary and dataset below still describe {name}; change them to describe yours.\n"
    )
    try:
        dest.write_text(header + source.read_text())
    except OSError as exc:
        raise UserError(f"cannot write {dest}: {exc.strerror}") from None
    click.echo(f"wrote {dest} (recipe {dest.stem!r}); run it with: python {dest} --epochs 1  or  ignite-lab run {dest}")


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
    port = click.IntRange(1, 65535)
    return click.option("--port", envvar="VISDOM_PORT", type=port, default=VISDOM_PORT, show_default=True)(func)


def _paths(port: int, state_dir: Path | None):
    from ignite_lab.outputs.visdom_server import ServerPaths, default_state_dir

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
    from ignite_lab.outputs.visdom_server import start_server

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
    from ignite_lab.outputs.visdom_server import stop_server

    if stop_server(_paths(port, state_dir)):
        click.echo(f"stopped the Visdom server on port {port}")
    else:
        click.echo(f"no Visdom server started by ignite-lab is running on port {port}")


@visdom_group.command("status")
@_server_options
def visdom_status(port: int, state_dir: Path | None) -> None:
    """Say whether a server answers on the port (exit 0) or not (exit 3)."""
    from ignite_lab.outputs.visdom_server import server_status

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
    from ignite_lab.outputs.visdom_server import install_assets, static_dir

    placed = install_assets()
    click.echo(
        f"installed {placed} files into {static_dir()}" if placed else f"assets already installed in {static_dir()}"
    )


@cli.command("tensorboard")
@click.argument("runs_dir", default="runs", type=click.Path(file_okay=False, path_type=Path))
@click.option("--port", type=click.IntRange(1, 65535), default=6006, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="127.0.0.1 keeps it to this machine.")
def tensorboard_command(runs_dir: Path, port: int, host: str) -> None:
    """TensorBoard over the runs in RUNS_DIR (those trained with --tensorboard), offline; Ctrl-C stops it."""
    import os
    import socket

    if not runs_dir.is_dir():
        raise UserError(f"{runs_dir} is not a folder of runs (train with --tensorboard first)")
    with socket.socket() as probe:
        if probe.connect_ex((host, port)) == 0:
            raise UserError(f"port {port} on {host} is taken; pass --port")
    click.echo(f"TensorBoard over {runs_dir}: http://{host}:{port} (Ctrl-C stops it)")
    argv = [sys.executable, "-m", "tensorboard.main", "--logdir", str(runs_dir), "--host", host, "--port", str(port)]
    os.execv(sys.executable, argv)  # the process becomes TensorBoard: its own logs, Ctrl-C and exit code


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
    from ignite_lab.tools.compare import compare_runs

    table = compare_runs(list(run_dirs), out)
    click.echo(table)
    click.echo(f"curves: {out}")
