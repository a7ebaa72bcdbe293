"""Bad input at every door: hand-edited configs and run files, checkpoints of the wrong shape, images that
would decode to gigabytes, a full disk, a read-only export folder, sweeps that cannot train. Each is one
clear line naming the file, field or setting, and nothing is torn."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from campaign import environment
from conftest import make_mnist, only_run, read_jsonl, run_process

LAB = [sys.executable, "-m", "ignite_lab"]


def lab(*args, env=None, **kwargs) -> subprocess.CompletedProcess:
    return run_process(*LAB, *map(str, args), env=env or environment(None), **kwargs)


def test_a_run_that_fails_before_training_says_failed(run_cli, tmp_path):
    empty = tmp_path / "no-mnist"
    empty.mkdir()
    result = run_cli("run", "mnist_mlp", "--data-dir", empty, "--output-dir", tmp_path / "runs")
    assert result.code == 2 and "Traceback" not in result.output
    summary = json.loads((only_run(tmp_path / "runs", "mnist_mlp") / "summary.json").read_text())
    assert summary["status"] == "failed" and str(empty) in summary["message"]


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


def test_a_sweep_whose_trials_cannot_train_stops(run_cli, tmp_path):
    nan = run_cli("sweep", "xor", "--trials", "2", "--lr", "nan", "--output-dir", tmp_path)
    assert nan.code == 2 and "--lr nan: expected a finite number > 0" in nan.output
    assert not (tmp_path / "xor").exists()
    diverging = run_cli("sweep", "xor", "--trials", "3", "--lr", "[1e9]", "--epochs", "2", "--output-dir", tmp_path)
    assert diverging.code == 1 and "3 trials failed (the bound is --max-failures 3)" in diverging.output
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


def test_a_decompression_bomb_is_refused_before_decoding(run_cli, tmp_path):
    from PIL import Image

    bomb, bigger = tmp_path / "bomb.png", tmp_path / "bigger.png"
    Image.new("1", (10000, 10000)).save(bomb)  # 100 million pixels in a file of about 15 KB
    Image.new("1", (30000, 30000)).save(bigger)  # past twice the limit, where PIL itself refuses to open it
    assert bomb.stat().st_size < 1_000_000
    data = make_mnist(tmp_path / "mnist", n_train=64, n_test=16)
    runs = tmp_path / "runs"
    assert run_cli("run", "mnist", "--epochs", "1", "--data-dir", data, "--output-dir", runs).code == 0
    ckpt = next(only_run(runs, "mnist").glob("checkpoints/best_*.pt"))
    result = run_cli("predict", "mnist", "--checkpoint", ckpt, bomb)
    assert result.code == 2 and "10000x10000 pixels" in result.output and "Traceback" not in result.output
    result = run_cli("predict", "mnist", "--checkpoint", ckpt, bigger)
    assert result.code == 2 and "900000000 pixels" in result.output and "Traceback" not in result.output


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
