"""Resume: the right epoch, the same result as an uninterrupted run, raising --epochs continues."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import make_mnist, only_run, read_jsonl, run_process

ARGS = ["--batch-size", "32", "--seed", "5", "--set", "channels=8", "--set", "hidden=32"]


def final_metrics(run) -> list[dict]:
    return [r["metrics"] for r in read_jsonl(run / "metrics.jsonl")]


def test_resume_raising_epochs_matches_an_uninterrupted_run(run_cli, tiny_mnist, tmp_path):
    # a constant LR: with a schedule, a 2-epoch run is not the first half of a 4-epoch run
    args = [*ARGS, "--lr-schedule", "none", "--data-dir", tiny_mnist]
    full = tmp_path / "full"
    assert run_cli("run", "mnist", "--epochs", "4", "--output-dir", full, *args).code == 0
    part = tmp_path / "part"
    assert run_cli("run", "mnist", "--epochs", "2", "--output-dir", part, *args).code == 0
    result = run_cli("run", "mnist", "--resume", "auto", "--epochs", "4", "--output-dir", part)
    assert result.code == 0, result
    assert "resuming" in result.output and "epoch 3/4" in result.output and "epoch 1/4" not in result.output

    a, b = only_run(full, "mnist"), only_run(part, "mnist")  # resume continued in the same run directory

    def train_val(run):
        return [r["metrics"] for r in read_jsonl(run / "metrics.jsonl") if r["split"] != "test"]

    assert train_val(a) == train_val(b)
    sa, sb = (json.loads((r / "summary.json").read_text()) for r in (a, b))
    assert sa["test"] == sb["test"] and sa["best_epoch"] == sb["best_epoch"] and sb["epochs_completed"] == 4
    assert json.loads((b / "config.json").read_text())["epochs"] == 4


def test_resume_of_a_finished_run_says_how_to_continue(run_cli, tmp_path):
    assert run_cli("run", "xor", "--epochs", "2", "--output-dir", tmp_path).code == 0
    run = only_run(tmp_path, "xor")
    result = run_cli("run", "xor", "--resume", run, "--output-dir", tmp_path)  # an explicit path is strict
    assert result.code == 2 and "already trained 2 epochs" in result.output and "--epochs" in result.output


def test_resume_auto_of_a_finished_run_is_done(run_cli, tmp_path):
    """A re-queued job: the same command after the run completed says so and succeeds, training nothing."""
    command = ["run", "xor", "--epochs", "2", "--resume", "auto", "--output-dir", tmp_path]
    first = run_cli(*command)
    assert first.code == 0 and "starting a new run" in first.output and "epoch 2/2" in first.output
    again = run_cli(*command)
    assert (
        again.code == 0
        and "already completed (2 epochs)" in again.output
        and "epoch" not in again.output.split(")")[-1]
    )
    assert len(list((tmp_path / "xor").iterdir())) == 1


def test_best_checkpoint_tracking_survives_resume(run_cli, tmp_path):
    out = tmp_path / "runs"
    assert run_cli("run", "xor", "--epochs", "30", "--lr", "0.05", "--output-dir", out).code == 0
    run = only_run(out, "xor")
    best_before = json.loads((run / "summary.json").read_text())["best_val"]
    assert run_cli("run", "xor", "--resume", run, "--epochs", "32", "--lr", "1e-9", "--output-dir", out).code == 0
    best_files = list((run / "checkpoints").glob("best_checkpoint_*.pt"))
    assert len(best_files) == 1 and f"_{best_before['epoch']}_" in best_files[0].name  # a frozen model did not beat it


def test_killed_run_resumes_to_the_same_result(tmp_path):
    """SIGKILL after the first epoch's checkpoint, then --resume auto: same metrics as never killed."""
    data = make_mnist(tmp_path / "mnist", n_train=800, n_test=100)
    common = [sys.executable, "-m", "recipes.mnist", "--epochs", "4", "--data-dir", data, *ARGS]
    assert run_process(*common, "--output-dir", tmp_path / "full").returncode == 0

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [str(c) for c in common] + ["--output-dir", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("mnist/*/checkpoints/last_checkpoint_*.pt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(out.glob("mnist/*/checkpoints/last_checkpoint_*.pt")), "the run saved a checkpoint before the kill"
    killed_summary = json.loads(next(out.glob("mnist/*/summary.json")).read_text())
    assert killed_summary["status"] == "running", "the kill landed before the run finished"
    resumed = run_process(*common, "--output-dir", out, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    a, b = only_run(tmp_path / "full", "mnist"), only_run(out, "mnist")
    assert json.loads((a / "summary.json").read_text())["test"] == json.loads((b / "summary.json").read_text())["test"]
    assert final_metrics(a) == final_metrics(b)


def test_cosine_schedule_is_stretched_when_epochs_are_raised(run_cli, tmp_path):
    assert (
        run_cli("run", "xor", "--epochs", "2", "--lr", "0.1", "--lr-schedule", "cosine", "--output-dir", tmp_path).code
        == 0
    )
    assert run_cli("run", "xor", "--resume", "auto", "--epochs", "4", "--output-dir", tmp_path).code == 0
    run = only_run(tmp_path, "xor")
    lrs = [r["metrics"]["lr"] for r in read_jsonl(run / "metrics.jsonl") if r["split"] == "train"]
    assert len(lrs) == 4 and lrs[0] == 0.1 and lrs[1] > lrs[2] > lrs[3] > 0  # keeps decaying, no restart


@pytest.mark.parametrize(
    "trained, change, field",
    [
        (["--lr-schedule", "cosine"], ["--lr-schedule", "onecycle"], "lr_schedule"),  # was a raw KeyError
        (["--lr-schedule", "cosine"], ["--lr-schedule", "exponential"], "lr_schedule"),  # was: trained at lr 0
        (["--lr-schedule", "none"], ["--lr-schedule", "step"], "lr_schedule"),
        (["--lr-schedule", "step", "--lr-gamma", "0.5"], ["--lr-gamma", "0.1"], "lr_gamma"),  # was: 0.5, silently
    ],
)
@pytest.mark.parametrize("how", ["typed", "config.json"])
def test_a_resume_cannot_switch_the_schedule_its_checkpoint_holds(run_cli, tmp_path, trained, change, field, how):
    out = tmp_path / "runs"
    assert run_cli("run", "xor", "--epochs", "2", *trained, "--output-dir", out).code == 0
    run = only_run(out, "xor")
    before = {p.name: p.read_bytes() for p in [*run.glob("*.json*"), *(run / "checkpoints").iterdir()]}
    if how == "config.json":  # a hand edit: the flag's field set to the new value
        config = json.loads((run / "config.json").read_text())
        config[change[0][2:].replace("-", "_")] = float(change[1]) if change[0] == "--lr-gamma" else change[1]
        (run / "config.json").write_text(json.dumps(config))
        before["config.json"] = (run / "config.json").read_bytes()
        change = []
    result = run_cli("run", "xor", "--resume", "auto", "--epochs", "4", *change, "--output-dir", out)
    assert result.code == 2 and f"was trained with {field}" in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in [*run.glob("*.json*"), *(run / "checkpoints").iterdir()]} == before
