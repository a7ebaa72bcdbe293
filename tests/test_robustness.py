"""Runs that survive kills, Ctrl-C and full disks, and scale out on real torch.distributed (gloo) processes."""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import RECIPE_FILES, free_port, only_run, read_jsonl, run_process


@pytest.fixture
def slow_recipe() -> Path:
    """10 batches an epoch, a little slow, with dropout (random state) and shuffling (data order)."""
    return RECIPE_FILES / "slow.py"


def lab(*args):
    return [sys.executable, "-m", "ignite_lab", *map(str, args)]


def final_weights(out: Path, recipe: str) -> dict[str, torch.Tensor]:
    run = only_run(out, recipe)
    last = json.loads((run / "summary.json").read_text())["last_checkpoint"]
    return torch.load(run / "checkpoints" / last, weights_only=True)["model"]


def wait_for(predicate, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and not predicate():
        time.sleep(0.02)


def test_sigkill_mid_epoch_then_resume_gives_bit_identical_weights(slow_recipe, tmp_path):
    args = ["run", slow_recipe, "--deterministic", "--checkpoint-every", "3", "--seed", "4"]
    assert run_process(*lab(*args, "--output-dir", tmp_path / "whole")).returncode == 0

    out = tmp_path / "killed"
    proc = subprocess.Popen(lab(*args, "--output-dir", out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: list(out.glob("slow/*/checkpoints/last_checkpoint_15.pt")))  # iteration 5 of epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = [p.name for p in out.glob("slow/*/checkpoints/last_checkpoint_*.pt")]
    step = int(saved[0].split("_")[-1][:-3])
    assert step % 10 != 0, f"the kill left a mid-epoch checkpoint, not {saved}"
    assert json.loads(next(out.glob("slow/*/summary.json")).read_text())["status"] == "running"

    resumed = run_process(*lab(*args, "--output-dir", out, "--resume", "auto"))
    assert resumed.returncode == 0, resumed.stderr
    whole, again = final_weights(tmp_path / "whole", "slow"), final_weights(out, "slow")
    assert whole.keys() == again.keys()
    for name in whole:
        assert torch.equal(whole[name], again[name]), name  # bit for bit
    metrics = lambda o: [r["metrics"] for r in read_jsonl(only_run(o, "slow") / "metrics.jsonl")]  # noqa: E731
    assert metrics(tmp_path / "whole") == metrics(out)


def test_disk_full_at_first_save_is_a_clear_error(tmp_path):
    def small_files():  # files over 64 KiB fail to grow, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    proc = subprocess.run(
        lab("run", "mnist_mlp", "--epochs", "2", "--limit-batches", "2", "--output-dir", tmp_path),
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        timeout=300,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "cannot write to" in proc.stderr and "File too large" in proc.stderr
    run = only_run(tmp_path, "mnist_mlp")
    assert not list((run / "checkpoints").glob("*.pt")), "no torn checkpoint was left"
    assert json.loads((run / "config.json").read_text())["recipe"] == "mnist_mlp"


def single_process_run(tmp_path) -> tuple[list[str], list[dict]]:
    """The reference: the same XOR run in one process; returns its flags and metrics records."""
    common = ["--epochs", "3", "--batch-size", "10", "--seed", "2", "--set", "hidden=8"]
    single = run_process(*lab("run", "xor", *common, "--output-dir", tmp_path / "single"))
    assert single.returncode == 0, single.stderr
    return common, read_jsonl(only_run(tmp_path / "single", "xor") / "metrics.jsonl")


def assert_agree(a: list[dict], b: list[dict]) -> None:
    assert [(r["epoch"], r["split"]) for r in a] == [(r["epoch"], r["split"]) for r in b]
    for x, y in zip(a, b, strict=True):
        for name, value in x["metrics"].items():
            assert y["metrics"][name] == pytest.approx(value, rel=1e-4, abs=1e-6), (x["split"], x["epoch"], name)


def test_two_processes_with_nproc_per_node_agree_with_one(tmp_path):
    common, single = single_process_run(tmp_path)
    out = tmp_path / "two"
    proc = run_process(
        *lab("run", "xor", *common, "--nproc-per-node", "2", "--master-port", free_port(), "--output-dir", out)
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("epoch 3/3") == 1, "only rank 0 logs"
    assert len(list((out / "xor").iterdir())) == 1, "one run directory"
    summary = json.loads((only_run(out, "xor") / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["status"] == "completed"
    assert_agree(single, read_jsonl(only_run(out, "xor") / "metrics.jsonl"))


@pytest.mark.soak
def test_two_nodes_on_loopback_under_torchrun(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun comes with torch"
    common, single = single_process_run(tmp_path)
    out, port = tmp_path / "nodes", free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    nodes = [
        subprocess.Popen(
            [
                torchrun,
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(rank),
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                str(port),
                "-m",
                "ignite_lab",
                "run",
                "xor",
                *common,
                "--output-dir",
                str(out),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for rank in (0, 1)
    ]
    outputs = [p.communicate(timeout=300) for p in nodes]
    for p, (_, err) in zip(nodes, outputs, strict=True):
        assert p.returncode == 0, err
    assert len(list((out / "xor").iterdir())) == 1
    summary = json.loads((only_run(out, "xor") / "summary.json").read_text())
    assert summary["processes"] == 2
    assert_agree(single, read_jsonl(only_run(out, "xor") / "metrics.jsonl"))


@pytest.mark.soak
def test_distributed_resume_continues(tmp_path):
    out = tmp_path / "runs"
    base = ["run", "xor", "--batch-size", "10", "--nproc-per-node", "2", "--output-dir", out]
    assert run_process(*lab(*base, "--epochs", "2", "--master-port", free_port())).returncode == 0
    proc = run_process(*lab(*base, "--epochs", "3", "--resume", "auto", "--master-port", free_port()))
    assert proc.returncode == 0, proc.stderr
    records = read_jsonl(only_run(out, "xor") / "metrics.jsonl")
    assert [r["epoch"] for r in records if r["split"] == "val"] == [1, 2, 3]


def test_distributed_processes_free_the_model_before_exit(tmp_path, monkeypatch):
    """Left to interpreter exit, DDP's gloo process group is torn down mid-finalisation, and a run that
    succeeded can die with SIGABRT (it did, rarely, in CI); each worker frees it before returning."""
    recipe = RECIPE_FILES / "exit_probe.py"
    notes = tmp_path / "notes"
    notes.mkdir()
    monkeypatch.setenv("EXIT_PROBE_DIR", str(notes))
    args = ["run", recipe, "--nproc-per-node", "2", "--output-dir", tmp_path / "runs", "--master-port", free_port()]
    proc = run_process(*lab(*args))
    assert proc.returncode == 0, proc.stderr
    assert {p.name: p.read_text() for p in notes.iterdir()} == {"rank0": "freed", "rank1": "freed"}


@pytest.mark.soak
def test_ctrl_c_at_a_random_moment_then_resume_gives_bit_identical_weights(slow_recipe, tmp_path):
    """The interrupt checkpoint is the state after the last whole batch, so nothing is skipped or trained twice."""
    args = ["run", slow_recipe, "--deterministic", "--seed", "4", "--epochs", "3"]
    assert run_process(*lab(*args, "--output-dir", tmp_path / "whole")).returncode == 0

    out = tmp_path / "interrupted"
    proc = subprocess.Popen(lab(*args, "--output-dir", out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: list(out.glob("slow/*/checkpoints/last_checkpoint_*.pt")))  # epoch 1 is done
    time.sleep(random.uniform(0.0, 0.4))  # somewhere in epoch 2 or its validation
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 75 and "Traceback" not in stderr and "terminating due to exception" not in stderr, stderr
    resume_command = next(line for line in stderr.splitlines() if "Resume with:" in line).split("Resume with: ")[1]
    assert resume_command.startswith(f"ignite-lab run {slow_recipe} --resume ")  # the file, not an unknown name

    resumed = run_process(*lab(*resume_command.split()[1:]))  # the printed command, as printed
    assert resumed.returncode == 0, resumed.stderr
    whole, again = final_weights(tmp_path / "whole", "slow"), final_weights(out, "slow")
    for name in whole:
        assert torch.equal(whole[name], again[name]), name
    summary = json.loads((only_run(out, "slow") / "summary.json").read_text())
    assert [h["event"] for h in summary["history"]] == ["started", "interrupted", "resumed", "completed"]
    log = (only_run(out, "slow") / "train.log").read_text()
    assert "interrupted (SIGINT) at epoch" in log and "resuming" in log


USERS_MNIST = '''
"""A user's own recipes/mnist.py (a copy with changes): each process notes that it runs this file."""
import os
import random

import ignite.distributed as idist
import torch
from ignite.metrics import Accuracy
from torch import nn

from ignite_lab import Parts, Recipe, TensorData, recipe_main


def build(config, settings):
    open(os.path.join(os.environ["MARK_DIR"], f"rank{idist.get_rank()}"), "w").write("users mnist")
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(0))
    data = TensorData(x, (x[:, 0] > 0).long())
    model = nn.Linear(2, 2)
    return Parts(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=nn.CrossEntropyLoss(),
                 train=data, val=data, metrics=lambda: {"accuracy": Accuracy()})


RECIPE = Recipe(name="mnist", summary="mine", dataset="mine", build=build, epochs=1, batch_size=10, lr=0.1)

if __name__ == "__main__":
    recipe_main(RECIPE)
'''


@pytest.mark.soak
def test_a_users_own_recipes_mnist_runs_in_every_process(tmp_path, monkeypatch):
    """A file named like a built-in recipe, in a folder named recipes, is still the user's file in the workers."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "mnist.py").write_text(USERS_MNIST)
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("MARK_DIR", str(marks))
    args = ["--nproc-per-node", "2", "--master-port", free_port(), "--output-dir", tmp_path / "runs"]
    proc = run_process(sys.executable, folder / "mnist.py", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in marks.iterdir()) == ["rank0", "rank1"]
