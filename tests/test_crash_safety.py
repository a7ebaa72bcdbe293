"""Runs that always finish: each way a run was seen to break when killed, re-queued, doubled, refused,
starved of disk or fed hostile files, tried from outside as a scheduler or a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from campaign import RECIPE, Config, Fault, check, environment, requeue
from conftest import make_mnist, only_run, read_jsonl, run_process

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
        (Config(epochs=3, limit=6), [Fault("train", 2, 3, "SIGUSR1"), Fault("val", 3, 1, "SIGKILL")]),
    ],
    ids=["killed-testing", "limit-batches"],
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


def test_a_second_job_on_a_run_in_training_is_told_who_trains_it(tmp_path):
    args = ["run", RECIPE, "--epochs", "20", "--output-dir", tmp_path, "--resume", "auto"]
    first = subprocess.Popen([*LAB, *map(str, args)], env=environment(None, delay=0.05), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("faults/*/summary.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    second = lab(*args)
    assert second.returncode == 3 and "is being trained by pid" in second.stderr, second.stderr
    assert f"pid {first.pid} on" in second.stderr and "Traceback" not in second.stderr
    assert first.wait(timeout=300) == 0
    run = only_run(tmp_path, "faults")
    epochs = [(r["epoch"], r["split"]) for r in read_jsonl(run / "metrics.jsonl")]
    assert len(epochs) == len(set(epochs)) == 41  # train and val of 20 epochs, then test: once each


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


def test_extending_a_finished_run_keeps_one_best_and_one_last_checkpoint(tmp_path):
    args = ["run", RECIPE, "--checkpoint-every", "5", "--output-dir", tmp_path, "--resume", "auto"]
    assert lab(*args, "--epochs", "2").returncode == 0
    longer = lab(*args, "--epochs", "4")
    assert longer.returncode == 0 and "epoch 4/4" in longer.stderr, longer.stderr
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


def test_a_run_that_fails_before_training_says_failed(tmp_path):
    empty = tmp_path / "no-mnist"
    empty.mkdir()
    proc = lab("run", "mnist_mlp", "--data-dir", empty, "--output-dir", tmp_path / "runs")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    summary = json.loads((only_run(tmp_path / "runs", "mnist_mlp") / "summary.json").read_text())
    assert summary["status"] == "failed" and str(empty) in summary["message"]


def test_stale_temporaries_and_superseded_checkpoints_are_removed(tmp_path):
    args = ["run", RECIPE, "--epochs", "1", "--output-dir", tmp_path, "--resume", "auto"]
    assert lab(*args).returncode == 0
    run = only_run(tmp_path, "faults")
    litter = [
        run / "checkpoints" / ".last_checkpoint_10.4242.0badf00d.tmp.pt",  # a save killed half-way
        run / ".summary.4242.0badf00d.tmp.json",
        run / "checkpoints" / "last_checkpoint_3.pt",  # left by an older version's resume
    ]
    for path in litter:
        path.write_bytes(b"x" * 1000)
    assert lab(*args[:-2], "--epochs", "2", "--resume", "auto").returncode == 0
    assert not any(path.exists() for path in litter)
    assert sorted(p.name for p in run.glob("checkpoints/last_*.pt")) == ["last_checkpoint_20.pt"]


@pytest.fixture
def small_disk(tmp_path):
    """A real filesystem with almost no room: a 64 KiB tmpfs (root only)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", disk], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root (test_robustness covers a full disk with RLIMIT_FSIZE)")
    yield disk
    subprocess.run(["umount", "-l", disk], check=False)


def test_a_full_disk_is_a_clear_failure_that_tears_nothing(small_disk):
    (small_disk / "ballast").write_bytes(b"\0" * 44 * 1024)  # leave room for small files, not for a checkpoint
    proc = lab("run", "xor", "--epochs", "3", "--output-dir", small_disk)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "No space left on device" in proc.stderr
    run = only_run(small_disk, "xor")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left on device" in summary["message"]
    assert not [p for p in run.rglob(".*") if ".tmp" in p.name]
    for checkpoint in run.glob("checkpoints/*.pt"):  # whatever was saved loads whole
        torch.load(checkpoint, weights_only=True)


def test_export_to_a_read_only_filesystem_is_one_line(run_cli, tmp_path):
    assert run_cli("run", "xor", "--epochs", "1", "--output-dir", tmp_path).code == 0
    ckpt = next(only_run(tmp_path, "xor").glob("checkpoints/best_*.pt"))
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", frozen], capture_output=True).returncode:
        pytest.skip("mounting a read-only tmpfs needs root")
    try:
        result = run_cli("export", "xor", "--checkpoint", ckpt, "--format", "torchscript", "--out", frozen / "xor.ts")
        assert result.code == 2 and "cannot write" in result.output and "Read-only file system" in result.output
    finally:
        subprocess.run(["umount", "-l", frozen], check=False)


def test_a_sweep_whose_trials_cannot_train_stops(tmp_path):
    nan = lab("sweep", "xor", "--trials", "2", "--lr", "nan", "--output-dir", tmp_path)
    assert nan.returncode == 2 and "--lr nan: expected a finite number > 0" in nan.stderr
    assert not (tmp_path / "xor").exists()
    diverging = lab("sweep", "xor", "--trials", "3", "--lr", "[1e9]", "--epochs", "2", "--output-dir", tmp_path)
    assert diverging.returncode == 1 and "3 trials failed (the bound is --max-failures 3)" in diverging.stderr
    assert len(list((tmp_path / "xor" / "sweep-sweep").glob("trial-*"))) == 3


@pytest.mark.parametrize(
    "key, value, needle",
    [
        ("lr", "abc", "lr: expected a finite number > 0"),
        ("lr", None, "lr: expected a finite number > 0"),
        ("seed", "x", "seed: expected a whole number"),
        ("limit_batches", -5, "limit_batches: expected a whole number >= 1"),
        ("precision", "64", "precision: expected one of 32, bf16, 16"),
        ("lr_schedule", "bogus", "lr_schedule: expected one of none, step"),
        ("eval_batch_size", 0, "eval_batch_size: expected a whole number >= 1"),
        ("settings", {"hidden": -3}, "setting hidden: expected a whole number >= 1"),
    ],
)
def test_a_hand_edited_config_names_the_field(run_cli, tmp_path, key, value, needle):
    assert run_cli("run", "xor", "--epochs", "1", "--output-dir", tmp_path).code == 0
    run = only_run(tmp_path, "xor")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, key: value}))
    ckpt = next(run.glob("checkpoints/best_*.pt"))
    for args in (("eval", "xor", "--checkpoint", ckpt), ("run", "xor", "--resume", run, "--epochs", "2")):
        result = run_cli(*args)
        assert result.code == 2 and needle in result.output and str(run / "config.json") in result.output, result


@pytest.mark.parametrize(
    "content, needle",
    [
        ({"model": "x"}, "'model' is not a state dict of named tensors"),
        ({"model": {}, "trainer": {"iteration": "abc"}}, "the trainer's iteration is 'abc'"),
        ({"model": {}, "trainer": {"iteration": -4}}, "the trainer's iteration is -4"),
        ({"model": {}, "optimizer": [1, 2]}, "'optimizer' is not a saved state"),
        ([1, 2, 3], "not an ignite-lab checkpoint"),
    ],
)
def test_a_checkpoint_of_the_wrong_shape_is_named(run_cli, tmp_path, content, needle):
    assert run_cli("run", "xor", "--epochs", "1", "--output-dir", tmp_path).code == 0
    run = only_run(tmp_path, "xor")
    bad = run / "checkpoints" / "last_checkpoint_999.pt"
    torch.save(content, bad)
    for args in (
        ("eval", "xor", "--checkpoint", bad),
        ("predict", "xor", "--checkpoint", bad, "0.5", "0.5"),
        ("run", "xor", "--resume", bad, "--epochs", "2"),
    ):
        result = run_cli(*args)
        assert result.code == 2 and needle in result.output and str(bad) in result.output, result


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    from PIL import Image

    bomb, bigger = tmp_path / "bomb.png", tmp_path / "bigger.png"
    Image.new("1", (10000, 10000)).save(bomb)  # 100 million pixels in a file of about 15 KB
    Image.new("1", (30000, 30000)).save(bigger)  # past twice the limit, where PIL itself refuses to open it
    assert bomb.stat().st_size < 1_000_000
    data = make_mnist(tmp_path / "mnist", n_train=64, n_test=16)
    runs = tmp_path / "runs"
    assert lab("run", "mnist", "--epochs", "1", "--data-dir", data, "--output-dir", runs).returncode == 0
    ckpt = next(only_run(runs, "mnist").glob("checkpoints/best_*.pt"))
    proc = lab("predict", "mnist", "--checkpoint", ckpt, bomb)
    assert proc.returncode == 2 and "10000x10000 pixels" in proc.stderr and "Traceback" not in proc.stderr
    proc = lab("predict", "mnist", "--checkpoint", ckpt, bigger)
    assert proc.returncode == 2 and "900000000 pixels" in proc.stderr and "Traceback" not in proc.stderr


def test_sigterm_between_runs_of_a_sweep_is_not_lost(tmp_path):
    """A sweep worker stopped by SIGTERM: the trial is failed and run again by the same command."""
    args = ["sweep", RECIPE, "--trials", "2", "--epochs", "2", "--pruner", "none", "--output-dir", tmp_path]
    proc = subprocess.Popen([*LAB, *map(str, args)], env=environment(None, delay=0.05), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("faults/sweep-sweep/trial-0/metrics.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) != 0
    finished = lab(*args, env=environment(None))
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.count("complete") >= 2 and os.path.isdir(tmp_path / "faults" / "sweep-sweep" / "trial-1")


def test_a_metrics_line_cut_short_is_dropped_when_the_run_resumes(run_cli, tmp_path):
    """A full disk or a kill can cut the last metrics.jsonl line short: the resumed run carries on without it."""
    args = ["run", "xor", "--output-dir", tmp_path, "--resume", "auto"]
    assert run_cli(*args, "--epochs", "2").code == 0
    metrics = only_run(tmp_path, "xor") / "metrics.jsonl"
    with open(metrics, "a") as f:
        f.write('{"epoch": 3, "iteration": 150, "metr')
    result = run_cli(*args, "--epochs", "3")
    assert result.code == 0, result
    records = [(r["epoch"], r["split"]) for r in read_jsonl(metrics)]
    assert records == [(1, "train"), (1, "val"), (2, "train"), (2, "val"), (3, "train"), (3, "val")]  # xor: no test


def test_a_deleted_lock_note_does_not_let_a_second_job_in(tmp_path):
    args = ["run", RECIPE, "--epochs", "20", "--output-dir", tmp_path, "--resume", "auto"]
    first = subprocess.Popen([*LAB, *map(str, args)], env=environment(None, delay=0.05), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("faults/*/summary.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    (only_run(tmp_path, "faults") / ".lock").unlink()  # the lock is on the folder; the file only names the holder
    second = lab(*args)
    assert second.returncode == 3 and "is being trained by another process" in second.stderr, second.stderr
    assert first.wait(timeout=300) == 0


@pytest.mark.parametrize(
    "name, text, needle",
    [
        ("summary.json", "[1, 2]", None),  # not an object: the run counts as unfinished and resumes
        ("summary.json", '{"status": 7, "history": "x"}', None),
        ("metrics.jsonl", "3\n", "metrics.jsonl, line 1: not a metrics record"),
        ("metrics.jsonl", '{"split": "val"}\n{oops\n', "metrics.jsonl, line 1: not a metrics record"),
    ],
)
def test_hostile_run_files_are_named_or_survived(run_cli, tmp_path, name, text, needle):
    args = ["run", "xor", "--output-dir", tmp_path, "--resume", "auto"]
    assert run_cli(*args, "--epochs", "1").code == 0
    (only_run(tmp_path, "xor") / name).write_text(text)
    result = run_cli(*args, "--epochs", "2")
    if needle is None:
        assert result.code == 0 and "epoch 2/2" in result.output, result
    else:
        assert result.code == 2 and needle in result.output and "Traceback" not in result.output, result
