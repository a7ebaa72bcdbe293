"""Shared fixtures: tiny datasets in the real formats, and ways to call the real CLI."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ignite_lab.cli.main import cli

REPO = Path(__file__).resolve().parent.parent
RECIPE_FILES = Path(__file__).resolve().parent / "recipe_files"  # small recipes made for the tests


def write_idx(path: Path, data: torch.Tensor, compress: bool = True) -> None:
    """An idx ubyte file exactly as MNIST ships them (magic 0x0803 images, 0x0801 labels)."""
    data = data.to(torch.uint8)
    header = bytes([0, 0, 8, data.dim()]) + b"".join(int(n).to_bytes(4, "big") for n in data.shape)
    raw = header + data.numpy().tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def make_mnist(root: Path, n_train: int = 240, n_test: int = 60, seed: int = 0, compress: bool = True) -> Path:
    """Learnable fake digits: each class lights a different 4-row band, plus noise."""
    root.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    suffix = ".gz" if compress else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.arange(n) % 10
        images = torch.randint(0, 60, (n, 28, 28), generator=g)
        for i, c in enumerate(labels.tolist()):
            images[i, 2 + 2 * c : 6 + 2 * c, 4:24] = 255
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
    return root


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory) -> Path:
    return make_mnist(tmp_path_factory.mktemp("mnist"))


class Result:
    def __init__(self, code: int, output: str, stdout: str = "") -> None:
        self.code, self.output, self.stdout = code, output, stdout  # output: stdout and stderr interleaved

    def __repr__(self) -> str:
        return f"exit {self.code}\n{self.output}"


@pytest.fixture
def run_cli():
    """Invoke the real click CLI in-process (fast); returns exit code and combined output."""

    def invoke(*args: str) -> Result:
        result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        return Result(result.exit_code, result.output, result.stdout)

    return invoke


def free_port() -> int:
    """A TCP port nobody listens on now, for a server or a torch.distributed rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_process(
    *args: str, cwd: Path = REPO, timeout: float = 300, env: dict | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """A real subprocess with the test interpreter's environment (or ``env``)."""
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, **kwargs
    )


def ignite_lab(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return run_process(sys.executable, "-m", "ignite_lab", *args, **kwargs)


def only_run(output_dir: Path, recipe: str) -> Path:
    runs = sorted((output_dir / recipe).iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
]


def chromium(url: str, profile: Path, *, screenshot: Path | None = None, budget_ms: int = 8000) -> str:
    """Debian's headless chromium on a local page: its DOM after ``budget_ms`` of virtual time (or a screenshot)."""
    import shutil

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "make test installs Debian's chromium; run `make test` or apt-get install chromium"
    action = [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    args = [binary, *CHROMIUM_FLAGS, f"--virtual-time-budget={budget_ms}", f"--user-data-dir={profile}", *action, url]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=bool(screenshot)).stdout


def make_snli(root: Path, counts=(("train", 16), ("dev", 4), ("test", 4))) -> Path:
    """SNLI jsonl files with learnable pairs (and a '-' row the reader must skip)."""
    pairs = [
        ("( ( a dog ) runs )", "( ( a dog ) moves )", "entailment"),
        ("( ( a cat ) sleeps )", "( ( a cat ) runs )", "contradiction"),
        ("( ( the man ) ( eats food ) )", "( ( the man ) ( is hungry ) )", "neutral"),
        ("( ( the man ) sleeps )", "( ( a man ) runs )", "-"),
    ]
    root.mkdir(parents=True, exist_ok=True)
    for split, n in counts:
        with open(root / f"snli_1.0_{split}.jsonl", "w") as f:
            for i in range(n):
                p, h, label = pairs[i % len(pairs)]
                row = {"gold_label": label, "sentence1_binary_parse": p, "sentence2_binary_parse": h}
                f.write(json.dumps({**row, "sentence1": p, "sentence2": h}) + "\n")
    return root


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Uninterrupted runs of the fault-injection campaign (tests/campaign.py), made once per configuration."""
    from campaign import reference

    root, made = tmp_path_factory.mktemp("references"), {}

    def get(config):
        if config not in made:
            made[config] = reference(config, root / f"ref{len(made)}")
        return made[config]

    return get
