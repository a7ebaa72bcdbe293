"""Runs that always finish: each way a run was seen to break when killed, re-queued, doubled, refused,
starved of disk or fed hostile files, tried from outside as a scheduler or a user would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from campaign import RECIPE, Config, Fault, check, environment, requeue
from conftest import only_run, read_jsonl, run_process

LAB = [sys.executable, "-m", "ignite_lab"]


def lab(*args, env=None, **kwargs) -> subprocess.CompletedProcess:
    return run_process(*LAB, *map(str, args), env=env or environment(None), **kwargs)


def faults_env(tmp_path: Path, *faults: Fault, delay: float = 0.0) -> dict[str, str]:
    path = tmp_path / "faults.json"
    path.write_text(json.dumps([[f.phase, f.epoch, f.batch, f.signal] for f in faults]))
    return environment(path, delay)


@pytest.mark.parametrize(
    "config, faults",
    [
        # a periodic save that divides the epoch, killed while testing (was stuck for good: a deleted best)
        (Config(epochs=2, checkpoint_every=5), [Fault("test", 0, 1, "SIGKILL")]),
        # --limit-batches, SIGUSR1 and killed while validating (was: weights off by 0.03)
        pytest.param(
            Config(epochs=3, limit=6),
            [Fault("train", 2, 3, "SIGUSR1"), Fault("val", 3, 1, "SIGKILL")],
            marks=pytest.mark.soak,
        ),
        # a per-iteration one-cycle schedule, killed mid-epoch twice (its step count must survive both)
        pytest.param(
            Config(epochs=2, checkpoint_every=3, schedule="onecycle"),
            [Fault("train", 1, 7, "SIGKILL"), Fault("train", 2, 5, "SIGTERM")],
            marks=pytest.mark.soak,
        ),
        # a preset naming the lr it decays from: the re-queued command must not reset the decayed lr
        pytest.param(
            Config(epochs=3, checkpoint_every=4, preset="decay"),
            [Fault("train", 2, 6, "SIGTERM")],
            marks=pytest.mark.soak,
        ),
    ],
    ids=["killed-testing", "limit-batches", "onecycle", "preset-decay"],
)
def test_a_requeued_job_converges_to_the_uninterrupted_run(references, tmp_path, config, faults):
    report = requeue(config, tmp_path / "out", faults)
    assert report.problems == [] and report.kills == len(faults), report
    assert check(tmp_path / "out", references(config)) == []


def test_two_jobs_at_once_train_one_run_once(references, tmp_path):
    """A doubled job (schedulers re-queue exactly like this): one trains, the other exits 3 and changes nothing."""
    config = Config(epochs=2, checkpoint_every=5)
    report = requeue(config, tmp_path / "out", [Fault("train", 1, 7, "SIGKILL")], twin=True)
    assert report.problems == [] and report.busy >= 1, report
    assert check(tmp_path / "out", references(config)) == []


@pytest.mark.soak
def test_a_second_job_on_a_run_in_training_is_told_who_trains_it(tmp_path):
    args = ["run", RECIPE, "--epochs", "40", "--output-dir", tmp_path, "--resume", "auto"]
    first = subprocess.Popen([*LAB, *map(str, args)], env=environment(None, delay=0.05), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("faults/*/summary.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    second = lab(*args)
    assert second.returncode == 3 and "is being trained by pid" in second.stderr, second.stderr
    assert f"pid {first.pid} on" in second.stderr and "Traceback" not in second.stderr
    (only_run(tmp_path, "faults") / ".lock").unlink()  # the lock is on the folder; the note only names the holder
    third = lab(*args)
    assert third.returncode == 3 and "is being trained by another process" in third.stderr, third.stderr
    assert first.wait(timeout=300) == 0
    run = only_run(tmp_path, "faults")
    epochs = [(r["epoch"], r["split"]) for r in read_jsonl(run / "metrics.jsonl")]
    assert len(epochs) == len(set(epochs)) == 81  # train and val of 40 epochs, then test: once each


def test_the_printed_resume_command_finishes_a_run_interrupted_while_validating(references, tmp_path):
    config = Config(epochs=2, checkpoint_every=5)
    args = ["run", RECIPE, *config.args(), "--output-dir", tmp_path]
    first = lab(*args, env=faults_env(tmp_path, Fault("val", 2, 1, "SIGINT")))
    assert first.returncode == 75, first.stderr
    message = next(line for line in first.stderr.splitlines() if "Resume with:" in line)
    assert "interrupted (SIGINT) at the end of epoch 2 (iteration 20)" in message
    again = lab(*message.split("Resume with: ignite-lab ")[1].split())
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stderr and "at the end of epoch 2 (iteration 20)" in again.stderr
    assert check(tmp_path, references(config)) == []
    run = only_run(tmp_path, "faults")
    events = [h["event"] for h in json.loads((run / "summary.json").read_text())["history"]]
    assert events == ["started", "interrupted", "resumed", "completed"]


def test_the_interrupt_and_resume_messages_name_the_same_place(tmp_path):
    args = ["run", RECIPE, "--epochs", "2", "--output-dir", tmp_path]
    first = lab(*args, env=faults_env(tmp_path, Fault("train", 2, 3, "SIGTERM")))
    assert first.returncode == 75 and "interrupted (SIGTERM) at epoch 2, batch 3 of 10 (iteration 13)" in first.stderr
    summary = json.loads((only_run(tmp_path, "faults") / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["history"][-1]["event"] == "interrupted"
    again = lab(*args, "--resume", "auto")
    assert again.returncode == 0 and "at epoch 2, batch 3 of 10 (iteration 13)" in again.stderr, again.stderr
    history = json.loads((only_run(tmp_path, "faults") / "summary.json").read_text())["history"]
    places = [(h["event"], h["epoch"], h["iteration"]) for h in history]
    assert places == [("started", 0, 0), ("interrupted", 2, 13), ("resumed", 2, 13), ("completed", 2, 20)]


def test_extending_a_finished_run_keeps_one_best_and_one_last_checkpoint(run_cli, tmp_path):
    args = ["run", RECIPE, "--checkpoint-every", "5", "--output-dir", tmp_path, "--resume", "auto"]
    assert run_cli(*args, "--epochs", "2").code == 0
    longer = run_cli(*args, "--epochs", "4")
    assert longer.code == 0 and "epoch 4/4" in longer.output, longer
    run = only_run(tmp_path, "faults")
    assert len(list(run.glob("checkpoints/best_*.pt"))) == 1 and len(list(run.glob("checkpoints/last_*.pt"))) == 1
    vals = [r for r in read_jsonl(run / "metrics.jsonl") if r["split"] == "val"]
    best = max(vals, key=lambda r: r["metrics"]["accuracy"])  # the first of equal scores is kept
    (kept,) = run.glob("checkpoints/best_*.pt")
    assert kept.name.startswith(f"best_checkpoint_{best['epoch']}_")


def test_a_refused_resume_changes_nothing(run_cli, tmp_path):
    assert run_cli("run", "xor", "--epochs", "1", "--set", "hidden=4", "--output-dir", tmp_path).code == 0
    run = only_run(tmp_path, "xor")
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "train.log"}
    refused = run_cli("run", "xor", "--epochs", "2", "--set", "hidden=8", "--resume", "auto", "--output-dir", tmp_path)
    assert refused.code == 2 and "does not fit" in refused.output
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "train.log"}
    assert after == before
    ckpt = next(run.glob("checkpoints/best_*.pt"))
    assert run_cli("eval", "xor", "--checkpoint", ckpt, "--split", "val").code == 0
    assert run_cli("run", "xor", "--resume", "auto", "--output-dir", tmp_path).code == 0  # nothing to do


def test_stale_temporaries_and_superseded_checkpoints_are_removed(run_cli, tmp_path):
    args = ["run", RECIPE, "--epochs", "1", "--output-dir", tmp_path, "--resume", "auto"]
    assert run_cli(*args).code == 0
    run = only_run(tmp_path, "faults")
    litter = [
        run / "checkpoints" / ".last_checkpoint_10.4242.0badf00d.tmp.pt",  # a save killed half-way
        run / ".summary.4242.0badf00d.tmp.json",
        run / "checkpoints" / "last_checkpoint_3.pt",  # left by an older version's resume
    ]
    for path in litter:
        path.write_bytes(b"x" * 1000)
    assert run_cli(*args[:-2], "--epochs", "2", "--resume", "auto").code == 0
    assert not any(path.exists() for path in litter)
    assert sorted(p.name for p in run.glob("checkpoints/last_*.pt")) == ["last_checkpoint_20.pt"]


@pytest.mark.parametrize(
    "fault, resumes",
    [
        (Fault("train", 2, 4, "SIGKILL"), 1),
        pytest.param(Fault("val", 2, 1, "SIGKILL"), 1, marks=pytest.mark.soak),
        pytest.param(Fault("test", 0, 1, "SIGTERM"), 1, marks=pytest.mark.soak),
        # before the first checkpoint: the same run starts over
        pytest.param(Fault("val", 1, 1, "SIGKILL"), 0, marks=pytest.mark.soak),
    ],
    ids=["training", "validating", "testing", "before-any-checkpoint"],
)
def test_a_killed_reproduce_row_resumes_its_run_instead_of_starting_over(tmp_path, monkeypatch, fault, resumes):
    """``make reproduce`` runs for hours: re-run after a kill, a row continues its unfinished run."""
    from ignite_lab.tools import reproduce

    for key, value in faults_env(tmp_path, fault).items():
        monkeypatch.setenv(key, value)
    command = ["ignite-lab", "run", str(RECIPE), "--epochs", "3", "--seed", "3", "--deterministic"]
    out = tmp_path / "row"
    with pytest.raises(reproduce.TargetFailed):
        reproduce.run_once(command, out, {"lr": 0.1})
    killed = only_run(out, "faults")
    row = reproduce.run_once(command, out, {"lr": 0.1})
    assert only_run(out, "faults") == killed  # the same run, continued
    assert row["summary"]["status"] == "completed" and row["summary"]["epochs_completed"] == 3
    assert row["resumes"] == resumes
    epochs = [r["epoch"] for r in row["records"] if r["split"] == "val"]
    assert epochs == [1, 2, 3]  # each epoch recorded once
    if resumes:  # the wall time of a run in pieces is its own training time, and the table says so
        assert row["wall_s"] == row["summary"]["wall_time_s"]
        assert "resumed 1 time(s)" in reproduce.conditions([row])


def test_a_reproduce_row_whose_configuration_changed_starts_a_new_run(tmp_path, monkeypatch):
    from ignite_lab.tools import reproduce

    for key, value in faults_env(tmp_path, Fault("train", 1, 3, "SIGKILL")).items():
        monkeypatch.setenv(key, value)
    command = ["ignite-lab", "run", str(RECIPE), "--epochs", "2", "--seed", "3"]
    out = tmp_path / "row"
    with pytest.raises(reproduce.TargetFailed):
        reproduce.run_once(command, out, {"lr": 0.1})
    row = reproduce.run_once(command, out, {"lr": 0.2})  # the preset changed since: its old run is no measure
    assert row["resumes"] == 0 and len(list((out / "faults").iterdir())) == 2
