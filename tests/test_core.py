"""The fast tier: pure pieces of the core (settings, flags, schedules, checkpoint names and discovery, resume
resolution) and the package's shape (no import cycle, private internals only in compat.py)."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO

from ignite_lab.cli.commands import run_options
from ignite_lab.core.config import DashboardConfig, LaunchConfig, TrainConfig
from ignite_lab.core.errors import NothingToDo, UserError
from ignite_lab.core.registry import load_recipe
from ignite_lab.core.settings import complete_settings, parse_settings
from ignite_lab.training.checkpoints import CheckpointName
from ignite_lab.training.resume import settle, stretch_schedule
from ignite_lab.training.rundir import RunDir

PACKAGE = REPO / "ignite_lab"


# Settings and flags ----------------------------------------------------------------------------


def test_settings_are_typed_and_checked():
    settings = load_recipe("mnist").settings
    assert parse_settings(settings, ["channels=8", "dropout=0.5"]) == {"channels": 8, "dropout": 0.5}
    assert complete_settings(settings, {"channels": 8})["channels"] == 8
    assert complete_settings(settings, {})["channels"] == 16

    for pair, message in (
        ("chanels=8", "Did you mean channels"),
        ("channels=8.5", "expected a whole number"),
        ("channels", "expected KEY=VALUE"),
    ):
        with pytest.raises(UserError, match=message):
            parse_settings(settings, [pair])
    with pytest.raises(UserError, match="unknown recipe settings colour"):
        complete_settings(settings, {"colour": "red"})


def test_every_config_field_is_one_flag_with_its_declared_default():
    recipe = load_recipe("xor")
    flags = {opt.name: opt for opt in run_options(recipe)}
    for cls in (TrainConfig, LaunchConfig, DashboardConfig):
        for field in dataclasses.fields(cls):
            if not field.metadata.get("cli", True):
                assert field.name not in flags
                continue
            option = flags.pop(field.name)
            recipe_default = getattr(recipe, field.name, dataclasses.MISSING)
            expected = recipe_default if recipe_default is not dataclasses.MISSING else field.default
            assert option.default == expected, field.name
            assert option.help == field.metadata["help"], field.name
    assert sorted(flags) == ["amp", "set"]  # and nothing else is declared in the CLI (--amp: --precision 16)


def test_build_receives_the_per_process_share_of_the_batches():
    config = TrainConfig(recipe="x", epochs=1, batch_size=64, lr=0.1)
    assert (config.per_process(1).batch_size, config.per_process(1).eval_batch_size) == (64, 128)
    assert (config.per_process(4).batch_size, config.per_process(4).eval_batch_size) == (16, 32)
    explicit = dataclasses.replace(config, eval_batch_size=10)
    assert explicit.per_process(2).eval_batch_size == 5


def test_config_json_of_version_0_1_still_loads(tmp_path):
    old = {"recipe": "xor", "epochs": 2, "batch_size": 2, "lr": 0.1, "device": "cpu", "visdom_port": 8097, "nnodes": 1}
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert TrainConfig.load(tmp_path / "config.json").epochs == 2


# Schedules --------------------------------------------------------------------------------------


def test_cosine_schedule_stretched_to_more_epochs_follows_the_new_closed_form():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=20)  # 2 epochs of 10 iterations
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    stretch_schedule(scheduler, epochs=4, iterations_per_epoch=10)
    assert optimizer.param_groups[0]["lr"] == pytest.approx((1 + math.cos(math.pi * 10 / 40)) / 2)
    optimizer.step()
    scheduler.step()  # torch's chained update continues on the new curve
    assert optimizer.param_groups[0]["lr"] == pytest.approx((1 + math.cos(math.pi * 11 / 40)) / 2)


def test_onecycle_stretched_to_more_epochs_is_the_longer_cycle_from_the_same_step():
    def cycle(total):
        optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        return optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=total, pct_start=0.25)

    optimizer, scheduler = cycle(20)
    longer_optimizer, longer = cycle(40)
    for _ in range(7):
        for o, s in ((optimizer, scheduler), (longer_optimizer, longer)):
            o.step()
            s.step()
    stretch_schedule(scheduler, epochs=4, iterations_per_epoch=10)
    for _ in range(32):  # to the end of the longer cycle: no error past the old one's 20 steps
        for o, s in ((optimizer, scheduler), (longer_optimizer, longer)):
            o.step()
            s.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(longer_optimizer.param_groups[0]["lr"])


def test_step_schedule_stretched_keeps_thirds_of_the_new_length():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.1)  # 3 epochs
    for _ in range(2):
        optimizer.step()
        scheduler.step()
    stretch_schedule(scheduler, epochs=9, iterations_per_epoch=5)
    assert scheduler.step_size == 3 and optimizer.param_groups[0]["lr"] == 1.0  # epoch 2 of 9 is in the first third


# Checkpoint names and discovery -----------------------------------------------------------------


def test_checkpoint_names_are_parsed_one_way():
    assert CheckpointName.parse("best_checkpoint_3_accuracy=0.9880.pt") == CheckpointName("best", 3, 0.988)
    assert CheckpointName.parse("last_checkpoint_1200.pt") == CheckpointName("last", 1200, None)
    assert CheckpointName.parse("best_checkpoint_2_neg_loss=-0.5.pt").score == -0.5
    assert CheckpointName.parse("odd.pt") == CheckpointName("odd", None, None)


def test_run_dir_lists_checkpoints_newest_step_first(tmp_path):
    run = RunDir(tmp_path)
    run.checkpoints.mkdir()
    for name in ("last_checkpoint_8.pt", "last_checkpoint_120.pt", "last_checkpoint_40.pt", "best_checkpoint_2_a=1.pt"):
        (run.checkpoints / name).write_bytes(b"")
    assert [p.name for p in run.checkpoint_files("last")] == [
        "last_checkpoint_120.pt",
        "last_checkpoint_40.pt",
        "last_checkpoint_8.pt",
    ]


# Resume resolution ------------------------------------------------------------------------------


def fake_run(root: Path, name: str, iteration: int, epoch_length: int, status: str, epochs: int = 2) -> RunDir:
    """A run directory as training leaves it: config.json, a last checkpoint and summary.json."""
    run = RunDir(root / "xor" / name)
    run.checkpoints.mkdir(parents=True)
    config = TrainConfig(recipe="xor", epochs=epochs, batch_size=2, lr=0.1, run_dir=str(run.path))
    run.config.write_text(config.to_json())
    trainer = {"iteration": iteration, "epoch_length": epoch_length, "max_epochs": epochs}
    torch.save({"model": {}, "trainer": trainer}, run.checkpoints / f"last_checkpoint_{iteration}.pt")
    run.write_summary({"status": status, "epochs_completed": iteration // epoch_length, "epochs_planned": epochs})
    return run


def plan_for(tmp_path: Path, resume: str | None, given: set[str] = frozenset(), **fields):
    recipe = load_recipe("xor")
    config = TrainConfig(recipe="xor", epochs=fields.pop("epochs", 2), batch_size=2, lr=fields.pop("lr", 0.1))
    return settle(recipe, config, LaunchConfig(output_dir=str(tmp_path), resume=resume), set(given), "xor")


def test_resume_auto_with_nothing_to_resume_starts_a_new_run(tmp_path):
    plan = plan_for(tmp_path, "auto")
    assert plan.checkpoint is None and plan.run.config.is_file()
    assert plan.config.settings == {"hidden": 4, "hidden_layers": 2, "noise": 0.0, "points": 200, "data": "torch"}


def test_resume_auto_takes_the_newest_run_and_its_newest_checkpoint(tmp_path):
    fake_run(tmp_path, "20260101T000000Z", 150, 100, "running")
    newest = fake_run(tmp_path, "20260102T000000Z", 50, 100, "interrupted")
    plan = plan_for(tmp_path, "auto", given={"lr"}, lr=0.5)
    assert plan.run.path == newest.path and plan.checkpoint.name == "last_checkpoint_50.pt"
    assert plan.lr_override == 0.5 and plan.config.lr == 0.5


def test_resume_auto_of_a_completed_run_is_nothing_to_do_unless_epochs_are_raised(tmp_path):
    fake_run(tmp_path, "20260101T000000Z", 200, 100, "completed")
    with pytest.raises(NothingToDo, match="already completed"):
        plan_for(tmp_path, "auto")
    plan = plan_for(tmp_path, "auto", given={"epochs"}, epochs=3)
    assert plan.config.epochs == 3 and plan.checkpoint.name == "last_checkpoint_200.pt"


def test_resume_auto_skips_a_damaged_checkpoint(tmp_path, caplog):
    run = fake_run(tmp_path, "20260101T000000Z", 100, 100, "running", epochs=3)
    (run.checkpoints / "last_checkpoint_150.pt").write_bytes(b"torn")
    assert plan_for(tmp_path, "auto", epochs=3).checkpoint.name == "last_checkpoint_100.pt"
    assert "skipping damaged checkpoint" in caplog.text


def test_explicit_resume_is_strict(tmp_path):
    run = fake_run(tmp_path, "20260101T000000Z", 200, 100, "completed")
    with pytest.raises(UserError, match="already trained 2 epochs"):
        plan_for(tmp_path, str(run.path))
    with pytest.raises(UserError, match="does not exist"):
        plan_for(tmp_path, str(tmp_path / "missing.pt"))
    with pytest.raises(UserError, match="no last_checkpoint"):
        plan_for(tmp_path, str(tmp_path))


# The package's shape ----------------------------------------------------------------------------


def imports_of(path: Path) -> set[str]:
    """ignite_lab modules imported anywhere in ``path`` (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ignite_lab."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("ignite_lab."))
    return found


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


# Each layer imports only the layers before it (the README's architecture section draws the same picture).
LAYERS = ["core", "outputs", "training", "kit", "recipes", "tools", "cli", "api"]


def test_the_import_graph_has_no_cycle():
    graph = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, " -> ".join([*path, module])
        for target in graph.get(module, ()):
            visit(target, [*path, module])

    for module in graph:
        visit(module, [])


def test_each_layer_imports_only_the_layers_below_it():
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name not in ("data", "__pycache__")) == sorted(
        LAYERS
    )
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        layer = path.relative_to(PACKAGE).parts[0]
        if layer not in LAYERS:
            continue
        for target in imports_of(path):
            other = target.split(".")[1]
            if other in LAYERS and LAYERS.index(other) > LAYERS.index(layer):
                wrong.append(f"{module_name(path)} imports {target}")
    assert wrong == []


def test_a_plain_run_imports_no_optional_package(tmp_path):
    """TensorBoard, Optuna, onnx and Visdom cost start-up time and memory: only their flags import them."""
    from conftest import run_process

    probe = (
        "import sys; from ignite_lab.cli.main import cli\n"
        f"cli(['run', 'xor', '--epochs', '1', '--output-dir', {str(tmp_path)!r}], standalone_mode=False)\n"
        "heavy = ('tensorboard', 'optuna', 'onnx', 'onnxruntime', 'visdom', 'sqlalchemy', 'pytorch_lightning')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))"
    )
    done = run_process(sys.executable, "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_core_does_not_depend_on_click():

    users = sorted({p.parent.name for p in PACKAGE.rglob("*.py") if "import click" in p.read_text()})
    assert users == ["cli"]


def test_private_internals_of_other_packages_are_used_in_compat_only():
    """Attributes with a leading underscore read off objects that are not our own ``self``/``cls``."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            private_attr = (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            )
            private_import = isinstance(node, ast.ImportFrom) and any(a.name.startswith("_") for a in node.names)
            if private_attr or private_import:
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def test_no_toolkit_function_is_longer_than_about_60_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{path.name}:{node.name}")
    assert long == []


def test_built_in_recipes_are_self_contained():
    """Each copies to a file of its own: no recipe imports another."""
    for path in (PACKAGE / "recipes").glob("*.py"):
        text = path.read_text()
        assert "recipes import" not in text and "import ignite_lab.recipes" not in text, path.name
