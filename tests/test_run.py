"""End-to-end runs through the real CLI: the run directory, its files, and the three ways to start a run."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import RECIPE_FILES, REPO, ignite_lab, only_run, read_jsonl, run_process
from hypothesis import given, settings
from hypothesis import strategies as st


def test_mnist_run_writes_the_whole_run_directory(run_cli, tiny_mnist, tmp_path):
    result = run_cli(
        "run", "mnist", "--epochs", "2", "--batch-size", "32", "--data-dir", tiny_mnist, "--output-dir", tmp_path
    )
    assert result.code == 0, result
    run = only_run(tmp_path, "mnist")
    assert "epoch 2/2" in result.output and "test metrics" in result.output and str(run) in result.output

    config = json.loads((run / "config.json").read_text())
    assert config["recipe"] == "mnist" and config["epochs"] == 2 and config["batch_size"] == 32
    assert config["settings"]["model"] == "cnn" and config["settings"]["channels"] == 16

    records = read_jsonl(run / "metrics.jsonl")
    assert [(r["epoch"], r["split"]) for r in records] == [
        (1, "train"),
        (1, "val"),
        (2, "train"),
        (2, "val"),
        (records[-1]["epoch"], "test"),
    ]
    assert {"accuracy", "loss"} <= set(records[1]["metrics"]) and "lr" in records[0]["metrics"]
    assert records[0]["elapsed"] <= records[2]["elapsed"]

    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    assert 0.0 <= summary["test"]["accuracy"] <= 1.0 and summary["samples_per_s"] > 0
    assert summary["best_epoch"] in (1, 2)
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert (
        len(checkpoints) == 2
        and checkpoints[0].startswith("best_checkpoint_")
        and checkpoints[1].startswith("last_checkpoint_")
    )
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "epoch 1/2" in (run / "train.log").read_text()


def test_tiny_data_is_learnable_and_training_reaches_it(run_cli, tiny_mnist, tmp_path):
    """Guards against a loop that runs but does not learn (wrong optimizer wiring, labels, eval mode)."""
    result = run_cli(
        "run", "mnist_mlp", "--epochs", "8", "--data-dir", tiny_mnist, "--output-dir", tmp_path, "--batch-size", "16"
    )
    assert result.code == 0, result
    summary = json.loads((only_run(tmp_path, "mnist_mlp") / "summary.json").read_text())
    assert summary["test"]["accuracy"] >= 0.9


def test_same_seed_same_metrics(run_cli, tmp_path):
    for out in ("a", "b"):
        assert run_cli("run", "xor", "--epochs", "3", "--output-dir", tmp_path / out, "--seed", "7").code == 0
    a, b = (read_jsonl(only_run(tmp_path / out, "xor") / "metrics.jsonl") for out in ("a", "b"))
    assert [r["metrics"] for r in a] == [r["metrics"] for r in b]
    assert run_cli("run", "xor", "--epochs", "3", "--output-dir", tmp_path / "c", "--seed", "8").code == 0
    c = read_jsonl(only_run(tmp_path / "c", "xor") / "metrics.jsonl")
    assert [r["metrics"] for r in a] != [r["metrics"] for r in c]


def test_fizzbuzz_learns_numbers_it_never_saw(run_cli, tmp_path):
    assert run_cli("run", "fizzbuzz", "--output-dir", tmp_path).code == 0
    summary = json.loads((only_run(tmp_path, "fizzbuzz") / "summary.json").read_text())
    assert summary["test"]["accuracy"] > 0.8  # 1..100 is never trained on; always "number" scores 0.53


def test_lr_schedules_change_the_learning_rate(run_cli, tmp_path):
    lrs = {}
    for schedule in ("none", "step", "cosine", "onecycle"):
        out = tmp_path / schedule
        assert (
            run_cli("run", "xor", "--epochs", "3", "--lr", "0.1", "--lr-schedule", schedule, "--output-dir", out).code
            == 0
        )
        lrs[schedule] = [
            r["metrics"]["lr"] for r in read_jsonl(only_run(out, "xor") / "metrics.jsonl") if r["split"] == "train"
        ]
    assert lrs["none"] == [0.1, 0.1, 0.1]
    assert [round(x, 6) for x in lrs["step"]] == [0.1, 0.01, 0.001]
    assert lrs["cosine"][0] == 0.1 and lrs["cosine"][0] > lrs["cosine"][1] > lrs["cosine"][2] > 0
    assert lrs["onecycle"][0] == pytest.approx(0.1 / 25) and lrs["onecycle"][1] > lrs["onecycle"][0]  # warm-up
    assert lrs["onecycle"][1] > lrs["onecycle"][2] > 0 and max(lrs["onecycle"]) <= 0.1


def test_plateau_schedule_and_early_stopping(run_cli, tmp_path):
    recipe = RECIPE_FILES / "frozen.py"
    result = run_cli(
        "run", recipe, "--epochs", "10", "--patience", "2", "--lr-schedule", "plateau", "--output-dir", tmp_path
    )
    assert result.code == 0, result
    summary = json.loads((only_run(tmp_path, "frozen") / "summary.json").read_text())
    assert summary["status"] == "early_stopped" and summary["epochs_completed"] == 3
    assert "no improvement" in result.output


def test_nan_loss_stops_names_the_iteration_and_keeps_the_good_checkpoint(run_cli, tmp_path):
    recipe = RECIPE_FILES / "nan_at_7.py"
    result = run_cli("run", recipe, "--epochs", "5", "--output-dir", tmp_path)
    assert result.code == 1
    assert "loss became nan at epoch 2, iteration 7" in result.output
    run = only_run(tmp_path, "nan_at_7")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "iteration 7" in summary["message"]
    assert summary["last_checkpoint"] == "last_checkpoint_4.pt"  # epoch 1 ended at iteration 4
    assert (run / "checkpoints" / "last_checkpoint_4.pt").exists()


def test_progress_bar_is_one_line_per_epoch(tmp_path, monkeypatch):
    """xor epochs last well under the bar's 0.2 s redraw interval; each still gets its bar, finished at 100%."""
    monkeypatch.setenv("IGNITE_LAB_PROGRESS", "1")  # stderr is a pipe here; force the terminal behaviour
    args = [sys.executable, "-m", "ignite_lab", "run", "xor", "--epochs", "4", "--output-dir", tmp_path]
    proc = subprocess.run(args, capture_output=True, timeout=300)  # bytes: text mode would turn "\r" into "\n"
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr
    bars = [line for line in stderr.split("\n") if "Epoch [" in line]  # a bar redraws itself after "\r"
    assert len(bars) == 4
    for epoch, bar in enumerate(bars, 1):
        final = bar.split("\r")[-1]
        assert re.match(rf"Epoch \[{epoch}/4\]: \[(\d+)/\1\] 100%", final), final


def test_amp_on_cpu_says_so_and_trains(run_cli, tmp_path):
    result = run_cli("run", "xor", "--epochs", "1", "--amp", "--device", "cpu", "--output-dir", tmp_path)
    assert result.code == 0 and "--precision 16 (--amp) needs a CUDA device" in result.output


def test_list_shows_every_recipe(run_cli):
    result = run_cli("list")
    assert result.code == 0
    for name in ("fizzbuzz", "xor", "mnist_mlp", "mnist"):
        assert f"\n{name} " in result.output


def test_eval_scores_a_saved_checkpoint(run_cli, tiny_mnist, tmp_path):
    assert run_cli("run", "mnist_mlp", "--epochs", "1", "--data-dir", tiny_mnist, "--output-dir", tmp_path).code == 0
    run = only_run(tmp_path, "mnist_mlp")
    summary = json.loads((run / "summary.json").read_text())
    best = run / "checkpoints" / summary["best_checkpoint"]
    result = run_cli("eval", "mnist_mlp", "--checkpoint", best)
    assert result.code == 0, result
    line = next(x for x in result.output.splitlines() if x.startswith("accuracy"))
    assert abs(float(line.split()[1]) - summary["test"]["accuracy"]) < 1e-6


def test_three_entry_points_are_the_same_run(tmp_path):
    """ignite-lab run, python -m recipes.NAME and make NAME parse the same flags into the same config."""
    args = ["--epochs", "1", "--set", "hidden=8", "--seed", "3"]
    console = shutil.which("ignite-lab", path=str(REPO / ".venv" / "bin")) or shutil.which("ignite-lab")
    assert console, "the ignite-lab console script is installed"
    runs = {
        "console": run_process(console, "run", "xor", *args, "--output-dir", tmp_path / "console"),
        "module": run_process(sys.executable, "-m", "recipes.xor", *args, "--output-dir", tmp_path / "module"),
        "make": run_process("make", "-s", "xor", f"ARGS={' '.join(args)} --output-dir {tmp_path / 'make'}"),
    }
    configs = {}
    for name, proc in runs.items():
        assert proc.returncode == 0, (name, proc.stdout, proc.stderr)
        config = json.loads((only_run(tmp_path / name, "xor") / "config.json").read_text())
        configs[name] = {k: v for k, v in config.items() if k not in ("output_dir", "run_dir")}
        metrics = [r["metrics"] for r in read_jsonl(only_run(tmp_path / name, "xor") / "metrics.jsonl")]
        configs[name]["metrics"] = metrics
    assert configs["console"] == configs["module"] == configs["make"]
    assert configs["console"]["settings"]["hidden"] == 8


def test_copy_writes_a_recipe_that_runs_standalone(tmp_path, tiny_mnist):
    dest = tmp_path / "my_cnn.py"
    proc = ignite_lab("copy", "mnist", dest)
    assert proc.returncode == 0, proc.stderr
    text = dest.read_text()
    assert text.startswith("# Copied from ignite-lab's recipes/mnist.py: recipe 'my_cnn'") and "name=" not in text
    run = run_process(
        sys.executable,
        dest,
        "--epochs",
        "1",
        "--limit-batches",
        "2",
        "--data-dir",
        tiny_mnist,
        "--output-dir",
        tmp_path / "runs",
        "--set",
        "channels=4",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    config = json.loads((only_run(tmp_path / "runs", "my_cnn") / "config.json").read_text())
    assert config["recipe"] == "my_cnn" and config["settings"]["channels"] == 4
    again = ignite_lab("copy", "mnist", dest)
    assert again.returncode != 0 and "exists" in again.stderr


def test_module_entry_point_of_a_recipe_with_postponed_annotations(tmp_path):
    """python -m recipes.NAME for a recipe using `from __future__ import annotations` (dataclass settings)."""
    proc = run_process(sys.executable, "-m", "recipes.auto_mpg", "--epochs", "1", "--output-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((only_run(tmp_path, "auto_mpg") / "summary.json").read_text())["status"] == "completed"


def test_standard_handlers_run_in_their_written_order(run_cli, tmp_path):
    """handlers.py: validation, then the LR step, then the metrics record, then the last checkpoint."""
    assert run_cli("run", RECIPE_FILES / "order_probe.py", "--output-dir", tmp_path).code == 0
    seen = read_jsonl(only_run(tmp_path, "order_probe") / "probe.jsonl")
    for epoch in (1, 2, 3):
        lr = 0.1 * 0.1 ** (epoch - 1)  # the step schedule: x0.1 after each of the 3 epochs
        validated = next(s for s in seen if s["event"] == "validated" and s["epoch"] == epoch)
        assert validated["recorded"] == [] and validated["lr"] == pytest.approx(lr)  # before record and LR step
        saved = next(s for s in seen if s["event"] == "last saved" and s["epoch"] == epoch)
        assert saved["recorded"] == ["train", "val"]  # the record came before the last checkpoint
        assert saved["lr"] == pytest.approx(lr * 0.1)  # and the LR step before both
    train_lrs = [
        r["metrics"]["lr"]
        for r in read_jsonl(only_run(tmp_path, "order_probe") / "metrics.jsonl")
        if r["split"] == "train"
    ]
    assert train_lrs == pytest.approx([0.1, 0.01, 0.001])  # each epoch is recorded with the LR it trained with


def test_a_recipe_brings_its_own_step_events_and_handlers(tmp_path):
    """char_rnn trains with its own truncated-BPTT step (firing its window events) and logs samples from its
    own handler; checkpoints and resume work for it as for any recipe."""
    from ignite.engine import Events

    from ignite_lab.core.config import DashboardConfig, LaunchConfig, TrainConfig
    from ignite_lab.core.registry import load_recipe
    from ignite_lab.recipes.char_rnn import WindowEvents
    from ignite_lab.training.loop import train
    from ignite_lab.training.resume import settle

    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question.\n" * 60)
    recipe = load_recipe("char_rnn")
    settings = {"text": str(text), "chunk": 40, "bptt": 10, "hidden": 16, "embed": 8, "sample_length": 20}
    counts = {"windows": 0, "iterations": 0}

    def instrument(trainer, run):
        trainer.add_event_handler(WindowEvents.WINDOW_COMPLETED, lambda _: counts.update(windows=counts["windows"] + 1))
        trainer.add_event_handler(
            Events.ITERATION_COMPLETED, lambda _: counts.update(iterations=counts["iterations"] + 1)
        )
        return contextlib.nullcontext()

    def run(out, epochs, resume=None):
        config = TrainConfig(recipe="char_rnn", epochs=epochs, batch_size=8, lr=0.01, settings=settings)
        launch = LaunchConfig(output_dir=str(out), resume=resume)
        plan = settle(recipe, config, launch, {"epochs"}, "char_rnn")
        return train(recipe, plan, launch, DashboardConfig(), instrument=instrument)

    whole = run(tmp_path / "whole", 2)
    assert counts["windows"] == 4 * counts["iterations"] > 0  # 40-character chunks in windows of 10
    assert whole["status"] == "completed"
    samples = (Path(whole["run_dir"]) / "media" / "sample.txt").read_text()
    assert samples.count("--- epoch") == 2  # the recipe's own handler, every epoch
    run(tmp_path / "halves", 1)
    resumed = run(tmp_path / "halves", 2, resume="auto")
    assert resumed["run_dir"] == str(only_run(tmp_path / "halves", "char_rnn"))
    weights = [torch.load(Path(s["run_dir"]) / "checkpoints" / s["last_checkpoint"])["model"] for s in (whole, resumed)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_every_built_in_recipe_copies_to_a_file_that_loads_on_its_own(run_cli, tmp_path):
    from ignite_lab.core.registry import recipe_names

    names = recipe_names()
    for name in names:
        assert run_cli("copy", name, tmp_path / f"my_{name}.py").code == 0
    script = (
        "import sys\nfrom ignite_lab.core.registry import load_recipe\n"
        "for path in sys.argv[1:]:\n    r = load_recipe(path)\n    assert r.name == path.split('/')[-1][:-3], r.name\n"
        "print(len(sys.argv) - 1)"
    )
    proc = run_process(sys.executable, "-c", script, *sorted(tmp_path.glob("my_*.py")), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == str(len(names)), proc.stderr


def test_the_users_thread_count_is_respected_and_said(tmp_path):
    """OMP_NUM_THREADS stands unless --threads says otherwise; the count is in the first line and the summary."""
    import json
    import os

    from conftest import ignite_lab

    one = ignite_lab(
        "run", "xor", "--epochs", "1", "--output-dir", tmp_path / "a", env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert one.returncode == 0 and "xor on cpu, 1 CPU thread(s)" in one.stderr, one.stderr
    two = ignite_lab(
        "run",
        "xor",
        "--epochs",
        "1",
        "--threads",
        "2",
        "--output-dir",
        tmp_path / "b",
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert two.returncode == 0, two.stderr
    threads = [json.loads(p.read_text())["threads"] for p in sorted(tmp_path.glob("*/xor/*/summary.json"))]
    assert threads == [1, 2]


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.tuples(st.integers(1, 9), st.sampled_from([(), (3,), (5,)])), min_size=1, max_size=12),
    pool=st.integers(1, 80),
    save_at=st.integers(0, 12),
    data=st.data(),
)
def test_a_pooled_training_metric_gives_the_figures_of_the_metric_itself(batches, pool, save_at, data):
    """Pooled updates (fewer, larger) give the same accuracy and error as per-step ones, through shape changes
    (variable-length outputs) and a mid-epoch save and restore."""
    from ignite.engine import Engine
    from ignite.metrics import Accuracy, MeanSquaredError

    from ignite_lab.training.engines import Pooled

    for make, classify in ((Accuracy, True), (MeanSquaredError, False)):
        plain, pooled, restored = make(), Pooled(make(), max_elements=pool), Pooled(make(), max_elements=pool)
        for metric in (plain, pooled, restored):
            metric.reset()
        engine = Engine(lambda e, b: None)
        for i, (n, tail) in enumerate(batches):
            seed = data.draw(st.integers(0, 2**16))
            g = torch.Generator().manual_seed(seed)
            y_pred = torch.randn(n, 4, *tail, generator=g)
            y = torch.randint(0, 4, (n, *tail), generator=g) if classify else torch.randn(n, 4, *tail, generator=g)
            engine.state.output = {"y_pred": y_pred, "y": y, "criterion_kwargs": {}, "loss": 0.0}
            if i == save_at:  # a mid-epoch checkpoint, then a resumed process
                restored.load_state_dict(copy.deepcopy(pooled.state_dict()))  # as through a checkpoint file
            for metric in (plain, pooled, restored):
                metric.iteration_completed(engine)
        expected = plain.compute()
        assert pooled.compute() == pytest.approx(expected, rel=1e-6)
        if save_at < len(batches):
            assert restored.compute() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "recipe, target, reached",
    [("fizzbuzz", 0.0, True), ("fizzbuzz", 1.01, False), ("auto_mpg", 1e9, True), ("auto_mpg", -1.0, False)],
    ids=["accuracy-reached", "accuracy-never", "mse-reached", "mse-never"],
)
def test_stop_at_ends_the_run_at_the_first_validation_reaching_the_target(run_cli, tmp_path, recipe, target, reached):
    """Time to accuracy: ``--stop-at`` stops at the first epoch whose validation score is at least the target
    (at most, for a loss-like score), tests that checkpoint, and a re-queued job finds it done."""
    args = ["run", recipe, "--epochs", "4", "--output-dir", tmp_path, "--stop-at", target]
    if recipe == "auto_mpg":
        args += ["--data-dir", REPO / "ignite_lab" / "data" / "auto_mpg"]
    result = run_cli(*args)
    assert result.code == 0, result.output
    summary = json.loads((only_run(tmp_path, recipe) / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["test"]
    assert summary["epochs_completed"] == (1 if reached else 4)
    assert ("reached --stop-at" in summary["message"]) == reached
    again = run_cli(*args, "--resume", "auto")
    assert again.code == 0 and "nothing to do" in again.output, again.output
