"""``make bench``: measures ignite-lab side by side with plain PyTorch and rewrites BENCHMARKS.md.

Every figure in BENCHMARKS.md comes from this script. Ratios come from interleaved repeats in
one process (medians); absolute times are printed but noisy on shared machines.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ignite.engine import Events  # noqa: E402
from ignite.utils import manual_seed  # noqa: E402

from ignite_lab.config import DashboardConfig, LaunchConfig, TrainConfig  # noqa: E402
from ignite_lab.loaders import TensorData, build_loader, set_epoch  # noqa: E402
from ignite_lab.registry import load_recipe  # noqa: E402
from ignite_lab.resume import settle  # noqa: E402
from ignite_lab.settings import parse_settings  # noqa: E402
from ignite_lab.training import Process, build_parts, train  # noqa: E402

CPU = torch.device("cpu")


# 1. Overhead against a hand-written loop ------------------------------------------------------


def hand_loop(recipe_name: str, config: TrainConfig) -> tuple[float, list[float]]:
    """The minimal PyTorch loop over the same parts, batches and random state. Returns (s/iteration, losses)."""
    parts, model = build_parts(load_recipe(recipe_name), config, Process(CPU, world=1, rank=0, amp=False))
    optimizer, loss_fn = parts.optimizer, parts.loss_fn
    loader = build_loader(parts.train, config.batch_size, shuffle=True, seed=config.seed, device=CPU)
    set_epoch(loader, 0)
    manual_seed(config.seed + 1)
    model.train()
    losses = []
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        if i == config.limit_batches:
            break
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()  # (build_parts registered the recipe's gradient clipping as a pre-step hook)
        losses.append(loss.item())
    return (time.perf_counter() - start) / len(losses), losses


def lab_loop(recipe_name: str, config: TrainConfig, out: Path) -> tuple[float, list[float]]:
    """ignite-lab's trainer with every standard handler (progress bar and logging on), one epoch."""
    losses: list[float] = []
    seconds: list[float] = []

    @contextlib.contextmanager
    def record(trainer, run):
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(e.state.output["loss"]))
        trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seconds.append(e.state.times["EPOCH_COMPLETED"]))
        yield

    recipe, launch = load_recipe(recipe_name), LaunchConfig(device="cpu", output_dir=str(out))
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        train(recipe, settle(recipe, config, launch, set(), recipe_name), launch, DashboardConfig(), instrument=record)
    return seconds[0] / len(losses), losses


def overhead(name: str, recipe: str, repeats: int, **fields) -> dict:
    settings = parse_settings(load_recipe(recipe).settings, fields.pop("set", []))
    config = TrainConfig(recipe=recipe, epochs=1, seed=0, settings=settings, **fields)
    hand, lab = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):  # interleaved, so drifts in machine load hit both alike
            h, hand_losses = hand_loop(recipe, config)
            t, lab_losses = lab_loop(recipe, config, Path(tmp) / str(r))
            hand.append(h)
            lab.append(t)
    worst = max(abs(a - b) for a, b in zip(hand_losses, lab_losses, strict=True))
    return {
        "name": name,
        "iterations": len(lab_losses),
        "hand_ms": 1000 * statistics.median(hand),
        "lab_ms": 1000 * statistics.median(lab),
        "ratio": statistics.median(lab) / statistics.median(hand),
        "loss_max_abs_diff": worst,
        "losses_agree_5dp": worst < 5e-6,
    }


# 2. Input pipeline: decoded-once tensors against torchvision's per-sample path ----------------


def iterate(loader, limit: int | None = None) -> float:
    """Samples per second over one pass."""
    start, n = time.perf_counter(), 0
    for i, (x, _) in enumerate(loader):
        n += len(x)
        if limit and i + 1 >= limit:
            break
    return n / (time.perf_counter() - start)


def mnist_pipeline(mnist: Path, repeats: int) -> dict:
    from torchvision import datasets, transforms

    from ignite_lab.datasets import MNIST_MEAN, MNIST_STD, load_mnist

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for f in mnist.glob("*-ubyte.gz"):
            (raw / f.name[:-3]).write_bytes(gzip.decompress(f.read_bytes()))
        tv = datasets.MNIST(
            tmp,
            train=True,
            transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))]),
        )
        images, labels = load_mnist(str(mnist), "train")
        fast = TensorData((images.unsqueeze(1).float() / 255.0 - MNIST_MEAN) / MNIST_STD, labels)
        same = torch.allclose(torch.stack([tv[i][0] for i in range(256)]), fast[list(range(256))][0], atol=1e-6)
        return compare_pipelines("MNIST train (60,000 images)", fast, tv, repeats, same)


class PerSampleCifar(torch.utils.data.Dataset):
    """torchvision's CIFAR10.__getitem__: one PIL image per sample, then ToTensor and Normalize."""

    def __init__(self, images: np.ndarray, labels: list[int]) -> None:
        from torchvision import transforms

        self.images, self.labels = images, labels
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def cifar_pipeline(repeats: int) -> dict:
    from ignite_lab.datasets import cifar10_splits

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cifar-10-batches-py"
        folder.mkdir()
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            entry = {"data": rng.integers(0, 256, (10000, 3072), dtype=np.uint8), "labels": list(range(10)) * 1000}
            with open(folder / name, "wb") as f:
                pickle.dump(entry, f, protocol=2)
        start = time.perf_counter()
        train, _, _ = cifar10_splits(tmp, seed=0, val_size=1)
        decode = time.perf_counter() - start
        with open(folder / "data_batch_1", "rb") as f:
            entry = pickle.load(f)
        hwc = entry["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        slow = PerSampleCifar(hwc, entry["labels"])
        fast_first = TensorData(
            torch.from_numpy(hwc.transpose(0, 3, 1, 2).copy()).float().div(255).sub(0.5).div(0.5),
            torch.tensor(entry["labels"]),
        )
        same = torch.allclose(torch.stack([slow[i][0] for i in range(256)]), fast_first[list(range(256))][0], atol=1e-6)
        result = compare_pipelines(
            "CIFAR-10 layout, 49,999 train images (generated)", train, slow, repeats, same, slow_len=len(train)
        )
        result["decode_once_s"] = decode
        return result


class PerSampleChunks(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


def text_pipeline(repeats: int) -> dict:
    from ignite_lab.text import Vocab
    from recipes.char_rnn import BUNDLED, chunks

    text = BUNDLED.read_text()
    vocab = Vocab.build([text], level="char", specials=["<unk>"])
    fast = chunks(torch.tensor(vocab.encode(text)), 100)
    slow = PerSampleChunks(*fast.tensors)
    same = torch.equal(torch.stack([slow[i][0] for i in range(256)]), fast[list(range(256))][0])
    return compare_pipelines("Tiny Shakespeare, 100-character chunks", fast, slow, repeats, same)


def compare_pipelines(name: str, fast, slow, repeats: int, same: bool, slow_len: int | None = None) -> dict:
    from torch.utils.data import DataLoader

    fast_rates, slow_rates = [], []
    for _ in range(repeats):
        fast_rates.append(iterate(build_loader(fast, 128, shuffle=True, seed=0, device=CPU)))
        loader = DataLoader(slow, batch_size=128, shuffle=True, num_workers=2, persistent_workers=False)
        limit = None if slow_len is None else max(1, min(len(slow), slow_len) // 128)
        slow_rates.append(iterate(loader, limit))
    fast_rate, slow_rate = statistics.median(fast_rates), statistics.median(slow_rates)
    return {"name": name, "fast": fast_rate, "per_sample": slow_rate, "speedup": fast_rate / slow_rate, "same": same}


# 3-5. Whole runs in subprocesses: time to accuracy, throughput, peak memory -------------------


def run_cli(args: list[str], out: Path) -> tuple[dict, float, float]:
    """Run ignite-lab in a child process; returns its summary, wall seconds and peak RSS (MB)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "stderr.log", "w+") as log:  # a file, not a pipe: a full pipe would block the child
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "ignite_lab", "run", *args, "--output-dir", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=REPO,
        )
        _, status, _ = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            log.seek(0)
            raise RuntimeError(f"ignite-lab run {' '.join(args)} failed:\n{log.read()[-2000:]}")
    summary = json.loads(next(out.glob("*/*/summary.json")).read_text())
    return summary, wall, summary["peak_rss_mb"]  # the run's own figure: wait4's is inflated by the fork


def time_to_accuracy(mnist: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        summary, wall, rss = run_cli(["mnist", "--data-dir", str(mnist)], Path(tmp))
    return {
        "accuracy": summary["test"]["accuracy"],
        "epochs": summary["epochs_completed"],
        "wall_s": wall,
        "train_s": summary["wall_time_s"],
        "peak_rss_mb": rss,
        "samples_per_s": summary["samples_per_s"],
    }


def recipe_throughput(data: Path, batches: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cifar = Path(tmp) / "cifar"
        rng = np.random.default_rng(1)
        (cifar / "cifar-10-batches-py").mkdir(parents=True)
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            entry = {"data": rng.integers(0, 256, (2000, 3072), dtype=np.uint8), "labels": list(range(10)) * 200}
            with open(cifar / "cifar-10-batches-py" / name, "wb") as f:
                pickle.dump(entry, f, protocol=2)
        cases = [
            ("fizzbuzz", [], "samples", 1, "bundled"),
            ("xor", [], "samples", 1, "generated"),
            ("auto_mpg", [], "samples", 1, "bundled"),
            ("mnist_mlp", ["--data-dir", str(data / "mnist")], "images", 1, "MNIST"),
            ("mnist", ["--data-dir", str(data / "mnist")], "images", 1, "MNIST"),
            ("mnist_rnn", ["--data-dir", str(data / "mnist")], "images", 1, "MNIST"),
            ("mnist_lstm", ["--data-dir", str(data / "mnist")], "images", 1, "MNIST"),
            ("cifar10", ["--data-dir", str(cifar), "--set", "val_size=100"], "images", 1, "generated CIFAR layout"),
            ("randwire", ["--data-dir", str(cifar)], "images", 1, "generated CIFAR layout"),
            ("linknet", ["--data-dir", str(data / "camvid-sample")], "images (256x256 crops)", 1, "CamVid sample"),
            (
                "transformer_lm",
                ["--data-dir", str(data / "wikitext-2"), "--set", "train_split=valid"],
                "tokens",
                64,
                "WikiText-2 valid",
            ),
            ("char_rnn", [], "tokens (characters)", 100, "Tiny Shakespeare"),
            ("snli", ["--data-dir", str(data / "snli"), "--set", "train_split=dev"], "pairs", 1, "SNLI dev"),
            (
                "snli",
                ["--data-dir", str(data / "snli"), "--set", "train_split=dev", "--set", "encoder=spinn"],
                "pairs",
                1,
                "SNLI dev (SPINN)",
            ),
        ]
        for i, (recipe, args, unit, per_sample, source) in enumerate(cases):
            summary, wall, rss = run_cli(
                [recipe, "--epochs", "1", "--limit-batches", str(batches), *args], Path(tmp) / f"run{i}"
            )
            label = recipe + (" (spinn)" if "encoder=spinn" in args else "")
            rows.append(
                {
                    "recipe": label,
                    "data": source,
                    "unit": unit,
                    "rate": (summary["samples_per_s"] or 0) * per_sample,
                    "peak_rss_mb": rss,
                }
            )
    return rows


# Report ------------------------------------------------------------------------------------------


def machine() -> str:
    import ignite

    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB; Python {platform.python_version()}, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), pytorch-ignite {ignite.__version__}"
    )


def report(results: dict) -> str:
    out = io.StringIO()
    w = out.write
    w("# Benchmarks\n\nWritten by `make bench` (benchmarks/bench.py); every figure below comes from that run.\n\n")
    w(f"- Date: {results['date']}\n- Machine: {results['machine']}\n- Command: `{results['command']}`\n\n")
    w(
        "## 1. Overhead against a hand-written loop\n\nThe same recipe parts, in-memory batches and seed, trained by "
        "ignite-lab's trainer with all its standard handlers (progress bar forced on, logging, training metrics, NaN "
        "guard, throughput, checkpointing; constant LR so both loops match) and by a minimal PyTorch loop "
        "(zero_grad, forward, loss, backward, step, "
        "loss.item()). Per-iteration time is the median over interleaved repeats. Target: ratio <= 1.02 and "
        "per-iteration losses equal to 5 decimals.\n\n"
    )
    w("| model | iterations | hand loop ms/it | ignite-lab ms/it | ratio | losses agree (5 dp) | max loss diff |\n")
    w("| --- | --- | --- | --- | --- | --- | --- |\n")
    for r in results["overhead"]:
        w(
            f"| {r['name']} | {r['iterations']} | {r['hand_ms']:.3f} | {r['lab_ms']:.3f} | {r['ratio']:.3f} | "
            f"{'yes' if r['losses_agree_5dp'] else 'NO'} | {r['loss_max_abs_diff']:.1e} |\n"
        )
    w(
        "\n## 2. Input pipeline: decoded once into tensors vs. per-sample\n\nThe fast path (ignite-lab's default "
        "where data fits in memory) decodes once and batches by slicing; the per-sample path is torchvision's "
        "(a Dataset transforming one sample at a time, DataLoader with 2 workers, batch 128). Samples per second, "
        "median of repeats; 'same values' checks the first 256 samples of both paths are equal.\n\n"
    )
    w(
        "| data | fast path samples/s | per-sample samples/s | speed-up | same values |\n"
        "| --- | --- | --- | --- | --- |\n"
    )
    for r in results["pipeline"]:
        w(
            f"| {r['name']} | {r['fast']:,.0f} | {r['per_sample']:,.0f} | {r['speedup']:.1f}x | "
            f"{'yes' if r['same'] else 'NO'} |\n"
        )
    t = results["tta"]
    w(
        "\n## 3. Time to accuracy: MNIST CNN to 99.0% on the full test set\n\n`python -m recipes.mnist --data-dir "
        "../shared/data/mnist` with its default configuration (3 epochs, Adam 3e-3 with cosine decay, batch 128, "
        "16/32 channels), in a fresh process: wall time includes start-up, data loading, validation each epoch and "
        "the final test. Target: 60 s or less.\n\n"
    )
    w("| test accuracy | epochs | wall time s | training samples/s | peak RSS MB |\n| --- | --- | --- | --- | --- |\n")
    w(
        f"| {100 * t['accuracy']:.2f}% | {t['epochs']} | {t['wall_s']:.1f} | {t['samples_per_s']:,.0f} | "
        f"{t['peak_rss_mb']:.0f} |\n"
    )
    w(
        f"\n## 4-5. Throughput and peak memory of each recipe\n\nEach default configuration for one epoch of "
        f"{results['batches']} batches (`--epochs 1 --limit-batches {results['batches']}`) in a fresh process; "
        "throughput is training samples per second over the iterations (evaluation excluded), in the recipe's "
        "natural unit; peak RSS is the process's maximum resident memory for that run.\n\n"
    )
    w("| recipe | data | rate | unit / s | peak RSS MB |\n| --- | --- | --- | --- | --- |\n")
    for r in results["throughput"]:
        w(f"| {r['recipe']} | {r['data']} | {r['rate']:,.0f} | {r['unit']} | {r['peak_rss_mb']:.0f} |\n")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="real datasets folder")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=30, help="batches per throughput run")
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args()
    mnist = args.data / "mnist"
    if not mnist.is_dir():
        sys.exit(f"bench needs the real datasets: {mnist} not found (pass --data DIR)")
    os.environ["IGNITE_LAB_PROGRESS"] = "1"
    results = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "command": "make bench",
        "batches": args.batches,
    }
    mnist_args = {"data_dir": str(mnist), "limit_batches": 200, "lr": 1e-3}
    print("overhead ...", flush=True)
    results["overhead"] = [
        overhead("MLP 784-32-16-10, batch 64 (mnist_mlp)", "mnist_mlp", args.repeats, batch_size=64, **mnist_args),
        overhead(
            "MNIST CNN, batch 64 (mnist)", "mnist", args.repeats, batch_size=64, **{**mnist_args, "limit_batches": 100}
        ),
        overhead(
            "Transformer LM, batch 32 x 64 tokens (transformer_lm)",
            "transformer_lm",
            max(3, args.repeats // 2),
            batch_size=32,
            lr=5e-4,
            data_dir=str(args.data / "wikitext-2"),
            limit_batches=20,
            set=["train_split=valid"],
        ),
    ]
    print("input pipelines ...", flush=True)
    results["pipeline"] = [mnist_pipeline(mnist, 3), cifar_pipeline(3), text_pipeline(3)]
    print("time to accuracy ...", flush=True)
    results["tta"] = time_to_accuracy(mnist)
    print("recipe throughput ...", flush=True)
    results["throughput"] = recipe_throughput(args.data, args.batches)
    text = report(results)
    args.out.write_text(text)
    (args.out.with_suffix(".json")).write_text(json.dumps(results, indent=1))
    print(text)


if __name__ == "__main__":
    main()
