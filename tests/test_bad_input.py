"""Mistakes a person makes get one clear message and a non-zero exit, never a traceback or lost files."""

from __future__ import annotations

import json
import os

import pytest
import torch
from conftest import ignite_lab, make_mnist, only_run, write_idx


def assert_clean_error(proc_or_result, *needles: str, code: int = 2) -> None:
    output = getattr(proc_or_result, "output", None) or (proc_or_result.stdout + proc_or_result.stderr)
    exit_code = getattr(proc_or_result, "code", getattr(proc_or_result, "returncode", None))
    assert exit_code == code, output
    assert "Traceback" not in output, output
    for needle in needles:
        assert needle in output, output


def test_unknown_recipe_suggests_close_names():
    assert_clean_error(ignite_lab("run", "mnsit"), "unknown recipe 'mnsit'", "Did you mean: mnist")


@pytest.mark.parametrize(
    "pair, needle",
    [
        ("chanels=8", "Did you mean channels"),
        ("channels=eight", "expected a whole number"),
        ("dropout=lots", "expected a finite number"),
        ("channels", "expected KEY=VALUE"),
    ],
)
def test_bad_set_values(run_cli, tmp_path, pair, needle):
    assert_clean_error(run_cli("run", "mnist", "--set", pair, "--output-dir", tmp_path), needle)
    assert not (tmp_path / "mnist").exists() or not any((tmp_path / "mnist").iterdir())


@pytest.mark.parametrize("flag, value", [("--epochs", "0"), ("--batch-size", "-3"), ("--lr", "0")])
def test_non_positive_numbers(run_cli, flag, value):
    assert_clean_error(run_cli("run", "xor", flag, value), f"Invalid value for '{flag}'")


def test_missing_device(run_cli, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert_clean_error(run_cli("run", "xor", "--device", "cuda", "--output-dir", tmp_path), "CUDA is not available")
    assert_clean_error(run_cli("run", "xor", "--device", "tpu9", "--output-dir", tmp_path), "unknown device")


def test_data_dir_without_files_lists_the_expected_paths(tmp_path):
    empty = tmp_path / "nothing-here"
    proc = ignite_lab("run", "mnist", "--data-dir", empty, "--output-dir", tmp_path / "runs")
    assert_clean_error(proc, "MNIST train files not found", str(empty / "MNIST" / "raw" / "train-images-idx3-ubyte"))


def test_truncated_and_wrong_magic_idx_files_name_the_file(run_cli, tmp_path):
    root = make_mnist(tmp_path / "bad", n_train=40, n_test=20, compress=False)
    images = root / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    assert_clean_error(run_cli("run", "mnist", "--data-dir", root, "--output-dir", tmp_path), str(images), "truncated")
    write_idx(images, torch.zeros(40, 28, 28), compress=False)
    (root / "train-labels-idx1-ubyte").write_bytes(b"GIF89a not labels")
    assert_clean_error(
        run_cli("run", "mnist", "--data-dir", root, "--output-dir", tmp_path), "train-labels-idx1-ubyte", "magic"
    )


def test_unwritable_output_dir(run_cli, tmp_path):
    if os.geteuid() == 0:  # root writes through permission bits; /proc refuses everyone
        locked = "/proc/ignite-lab-test"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
    assert_clean_error(run_cli("run", "xor", "--output-dir", locked), "cannot write to output directory")


def test_output_dir_that_is_a_file(run_cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("I am a file")
    assert_clean_error(run_cli("run", "xor", "--output-dir", blocker / "runs"), "cannot write to output directory")
    assert blocker.read_text() == "I am a file"


def test_corrupt_checkpoint_for_eval_and_resume(run_cli, tmp_path):
    assert run_cli("run", "xor", "--epochs", "2", "--output-dir", tmp_path).code == 0
    run = only_run(tmp_path, "xor")
    last = next((run / "checkpoints").glob("last_checkpoint_*.pt"))
    good = last.read_bytes()
    bad = run / "checkpoints" / "last_checkpoint_999.pt"
    bad.write_bytes(good[: len(good) // 2])
    assert_clean_error(run_cli("eval", "xor", "--checkpoint", bad, "--split", "val"), "damaged")
    assert_clean_error(run_cli("run", "xor", "--resume", bad, "--epochs", "3"), "damaged")
    # auto skips the damaged newest file and resumes from the good one, which is left intact
    result = run_cli("run", "xor", "--resume", "auto", "--epochs", "3", "--output-dir", tmp_path)
    assert result.code == 0 and "skipping damaged checkpoint" in result.output
    assert json.loads((run / "summary.json").read_text())["epochs_completed"] == 3
    assert_clean_error(run_cli("eval", "xor", "--checkpoint", tmp_path / "missing.pt"), "does not exist")


def test_checkpoint_that_would_run_code_is_refused(run_cli, tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    evil = tmp_path / "evil.pt"
    torch.save({"model": Boom()}, evil)
    assert_clean_error(run_cli("eval", "xor", "--checkpoint", evil), "refusing to load")
    assert not (tmp_path / "pwned").exists()


def test_checkpoint_of_another_recipe(run_cli, tmp_path):
    assert run_cli("run", "xor", "--epochs", "1", "--output-dir", tmp_path).code == 0
    ckpt = next((only_run(tmp_path, "xor") / "checkpoints").glob("best_*.pt"))
    assert_clean_error(run_cli("eval", "fizzbuzz", "--checkpoint", ckpt), "trained by recipe 'xor'")


def test_hand_edited_config_is_a_clear_error(run_cli, tmp_path):
    assert run_cli("run", "xor", "--epochs", "1", "--output-dir", tmp_path).code == 0
    run = only_run(tmp_path, "xor")
    ckpt = next((run / "checkpoints").glob("best_*.pt"))
    for text, needle in (
        ("{not json", "cannot read run config"),
        ('{"recipe": "xor", "epochs": -1, "batch_size": 2, "lr": 1}', "epochs: expected a whole number >= 1"),
        ('{"recipe": "xor", "epochs": 1, "batch_size": 2, "lr": 1, "colour": "red"}', "unknown keys colour"),
    ):
        (run / "config.json").write_text(text)
        assert_clean_error(run_cli("eval", "xor", "--checkpoint", ckpt), needle)
