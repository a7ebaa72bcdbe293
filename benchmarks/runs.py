"""Whole ``ignite-lab run`` measurements for BENCHMARKS.md, each in a fresh child process.

- speed: each conv recipe trained the way the toolkit did before (float32, NCHW) and the fast way
  (bfloat16 autocast, channels-last), side by side on the same batches, with the accuracy each reached;
- memory: peak RSS of every recipe's default run, and LinkNet on 701 CamVid-sized images;
- time to target: each recipe's default and book preset to a validation score, start-up included;
- torch.compile: compile time against the per-step gain, per recipe.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BEFORE = ("--precision", "32", "--set", "channels_last=false")  # how every conv recipe trained before issue 12
FAST = ("--precision", "bf16", "--set", "channels_last=true")


def run_cli(args: list[str], out: Path) -> tuple[dict, float]:
    """Run ignite-lab in a child process; returns its summary and wall seconds (start-up included)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "stderr.log", "w+") as log:  # a file, not a pipe: a full pipe would block the child
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "ignite_lab", "run", *args, "--output-dir", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=REPO,
            env={**os.environ, "IGNITE_LAB_PROGRESS": "0"},
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"ignite-lab run {' '.join(args)} failed:\n{log.read()[-2000:]}")
    summary = json.loads(max(out.glob("*/*/summary.json"), key=lambda p: p.stat().st_mtime).read_text())
    return summary, wall


def validations(summary: dict) -> list[dict]:
    """The run's validation records, through the run folder's own reader."""
    from ignite_lab.training.rundir import RunDir

    return [r for r in RunDir(Path(summary["run_dir"])).read_metrics() if r["split"] == "val"]


def last_val(summary: dict, metric: str) -> float | None:
    vals = validations(summary)
    return vals[-1]["metrics"].get(metric) if vals else None


SPEED_CASES = [  # (label, recipe, data folder, extra flags, batches, unit multiplier, metric)
    ("MNIST CNN (mnist)", "mnist", "mnist", (), 120, 1, "accuracy"),
    (
        "SimpleCNN, the book's (cifar10 --preset book)",
        "cifar10",
        "cifar10-jpeg",
        ("--preset", "book", "--set", "val_size=5000"),  # the book validates on nothing: hold out 5,000 here
        150,
        1,
        "accuracy",
    ),
    ("fast CNN (cifar10)", "cifar10", "cifar10-jpeg", (), 100, 1, "accuracy"),
    ("RandWire, compact (randwire)", "randwire", "cifar10-jpeg", (), 25, 1, "accuracy"),
    (
        "RandWire, the book's (randwire --preset book)",
        "randwire",
        "cifar10-jpeg",
        ("--preset", "book"),
        15,
        1,
        "accuracy",
    ),
    ("LinkNet (linknet)", "linknet", "camvid-sample", (), 7, 1, "miou"),
]


def speed(data: Path, tmp: Path) -> list[dict]:
    """Each case before and after, one right after the other (so machine load hits both alike)."""
    rows = []
    for i, (label, recipe, folder, extra, batches, _, metric) in enumerate(SPEED_CASES):
        common = [recipe, *extra, "--data-dir", str(data / folder), "--epochs", "1", "--limit-batches", str(batches)]
        results = {}
        for name, flags in (("before", BEFORE), ("fast", FAST)):
            summary, _ = run_cli([*common, *flags], tmp / f"speed{i}-{name}")
            results[name] = (summary["samples_per_s"] or 0.0, last_val(summary, metric), summary["peak_rss_mb"])
        (b_rate, b_acc, b_rss), (f_rate, f_acc, f_rss) = results["before"], results["fast"]
        rows.append(
            {
                "case": label,
                "batches": batches,
                "metric": metric,
                "before": b_rate,
                "fast": f_rate,
                "speedup": f_rate / b_rate if b_rate else 0.0,
                "before_metric": b_acc,
                "fast_metric": f_acc,
                "before_rss": b_rss,
                "fast_rss": f_rss,
            }
        )
    return rows


def make_camvid(root: Path, counts: dict[str, int], size=(360, 480)) -> Path:
    """Random CamVid-sized images and masks in the SegNet layout (only memory and speed are measured)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in counts.items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / split / f"{i:04d}.png")
            Image.fromarray(rng.integers(0, 12, size, dtype=np.uint8)).save(root / f"{split}annot" / f"{i:04d}.png")
    return root


MEMORY_CASES = [  # (recipe, data folder or None, extra flags, what the run saw)
    ("fizzbuzz", None, (), "generated"),
    ("xor", None, (), "generated"),
    ("auto_mpg", None, (), "bundled"),
    ("mnist_mlp", "mnist", (), "MNIST"),
    ("mnist", "mnist", (), "MNIST"),
    ("mnist_rnn", "mnist", (), "MNIST"),
    ("mnist_lstm", "mnist", (), "MNIST"),
    ("cifar10", "cifar10-jpeg", (), "CIFAR-10 50k/10k"),
    ("randwire", "cifar10-jpeg", (), "CIFAR-10 50k/10k"),
    ("linknet", "camvid-sample", (), "CamVid sample (107)"),
    ("transformer_lm", "wikitext-2", (), "WikiText-2"),
    ("char_rnn", None, (), "Tiny Shakespeare"),
    ("snli", "snli", ("--set", "train_split=dev"), "SNLI dev/test"),
    ("trec", "trec", (), "TREC"),
    ("pos_tagger", None, (), "2 sentences"),
]


READ_PEAK = "import re; print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]) / 1024)"


def import_peaks() -> dict[str, float]:
    """Peak RSS (MB) of a fresh process that only imports torch, and of one that imports the command line."""
    peaks = {}
    for name, module in (("torch", "torch"), ("ignite-lab", "ignite_lab.cli.main")):
        code = f"import {module}; {READ_PEAK}"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
        peaks[name] = float(done.stdout.split()[-1])
    return peaks


def memory(data: Path, tmp: Path, batches: int) -> list[dict]:
    """Peak RSS and throughput of each default run (one epoch of ``batches`` batches), and LinkNet on 701 images."""
    rows = []
    for i, (recipe, folder, extra, seen) in enumerate(MEMORY_CASES):
        args = [recipe, *extra, "--epochs", "1", "--limit-batches", str(batches)]
        summary, _ = run_cli(args + (["--data-dir", str(data / folder)] if folder else []), tmp / f"memory{i}")
        rows.append(
            {"recipe": recipe, "data": seen, "rate": summary["samples_per_s"], "peak_rss_mb": summary["peak_rss_mb"]}
        )
    camvid = make_camvid(tmp / "camvid701", {"train": 367, "val": 101, "test": 233})
    summary, _ = run_cli(
        ["linknet", "--data-dir", str(camvid), "--epochs", "1", "--limit-batches", "4"], tmp / "memory-701"
    )
    rows.append(
        {
            "recipe": "linknet",
            "data": "701 CamVid-sized images (generated)",
            "rate": summary["samples_per_s"],
            "peak_rss_mb": summary["peak_rss_mb"],
        }
    )
    return rows


@dataclass(frozen=True)
class Target:
    recipe: str
    folder: str
    score: float  # the validation score --stop-at waits for
    budget_s: int  # the wall time the target should take on 2 cores
    limits: str  # the cause of the time, beside the run's own seconds (BENCHMARKS.md prints both)


TARGETS = [  # the seconds of start-up and of an epoch come from the bench's own runs; ``limits`` adds the cause
    Target("mnist", "mnist", 0.992, 15, "the CNN's accuracy within its epochs (best val), and start-up"),
    Target("cifar10", "cifar10-jpeg", 0.80, 300, "the fast CNN's accuracy within its 15 epochs (best val)"),
    Target("randwire", "cifar10-jpeg", 0.6773, 900, "compute: the random-graph stages' many small convolutions"),
    Target(
        "transformer_lm",
        "wikitext-2",
        175.96,  # the book preset's test perplexity when it read the default's tokens (no <eos>)
        1800,
        "compute: the 28,782-word output layer is about 15 of the 17 billion multiply-adds of a forward "
        "pass of 32 x 64 tokens",
    ),
    Target(
        "char_rnn",
        "tinyshakespeare",
        4.78,
        150,
        "compute: the GRU runs one time step after another, so each step is a small matrix product that two "
        "cores share poorly",
    ),
]
MORE_SEEDS_UNDER_S = 300  # runs shorter than this are repeated: the median of 3 seeds
# A preset whose REPRODUCE.md row ran longer is quoted from it, not run again: the three rows over 45 min
# (transformer_lm default 58.7 min, randwire book 92.9, transformer_lm book 100.1, on 2 cores) would add about
# 4 hours to make bench, and each is two to six times its target's time budget.
QUOTE_OVER_S = 2700


def time_to_target(data: Path, tmp: Path, only: list[str] | None = None) -> list[dict]:
    """For each recipe, default and book preset: ``run --stop-at TARGET`` in a fresh process, the wall time
    from start (imports, data, every validation) to the end of the test of the first checkpoint whose
    validation score reached the target; a run that never reaches it trains all its epochs, and the row
    gives its best validation score instead. A preset whose current REPRODUCE.md row took over 45 minutes
    is quoted from it (its whole run, tested with the weights that row tests)."""
    from ignite_lab.core.registry import load_recipe

    rows = []
    for t in TARGETS:
        if only and t.recipe not in only:
            continue
        recipe = load_recipe(t.recipe)
        for preset in ("default", *(["book"] if "book" in recipe.presets else [])):
            row = {"recipe": t.recipe, "preset": preset, "score": recipe.score, "mode": recipe.score_mode}
            row |= {"target": t.score}
            row |= {"budget_s": t.budget_s, "limits": t.limits}
            quoted = quoted_row(t.recipe, preset)
            if quoted is not None:
                rows.append(row | quoted)
                continue
            args = [t.recipe, "--data-dir", str(data / t.folder), "--stop-at", str(t.score), "--preset", preset]
            seeds = []
            while len(seeds) < (3 if seeds and seeds[0]["wall_s"] < MORE_SEEDS_UNDER_S else 1):
                seed = len(seeds)
                summary, wall = run_cli([*args, "--seed", str(seed)], tmp / f"ttt-{t.recipe}-{preset}-{seed}")
                seeds.append(
                    {
                        "seed": seed,
                        "wall_s": wall,
                        "train_s": trained_seconds(summary),  # training and validation; the rest is start-up
                        "reached": "reached --stop-at" in (summary.get("message") or ""),
                        "epochs": summary["epochs_completed"],
                        "best_val": (summary.get("best_val") or {}).get(recipe.score),
                        "test": summary.get("test") or {},
                    }
                )
            rows.append(row | {"seeds": seeds, "median_wall_s": statistics.median(s["wall_s"] for s in seeds)})
    return rows


def trained_seconds(summary: dict) -> float | None:
    """Seconds from the trainer's start to its last validation (metrics.jsonl's ``elapsed``)."""
    return max((r["elapsed"] for r in validations(summary)), default=None)


def quoted_row(recipe: str, preset: str) -> dict | None:
    """REPRODUCE.json's row of a long run, if it measured the preset as it is now: one seed, its whole wall
    time and its test figure."""
    from ignite_lab.tools.reproduce import is_current

    try:
        row = json.loads((REPO / "REPRODUCE.json").read_text())[f"{recipe}/{preset}"]
    except (OSError, ValueError, KeyError):
        return None
    if row.get("failed") or float(row.get("wall_s") or 0) <= QUOTE_OVER_S or not is_current(row):
        return None
    metric, figures = next(iter(row["ours"].items()))
    seed = {"seed": 0, "wall_s": row["wall_s"], "reached": None, "epochs": row["epochs"], "best_val": None}
    seed["test"] = {metric.split()[-1]: figures["median"]}
    quote = f"REPRODUCE.md, {row['date']}, {row['machine'].split(',')[0]}"
    return {"seeds": [seed], "median_wall_s": row["wall_s"], "quoted": quote}


def compile_cases(data: Path) -> list[dict]:
    """torch.compile against eager on each recipe's real training step, in a child process each (compiling
    leaves caches behind that would distort what follows)."""
    rows = []
    cases = [("mnist_mlp", "mnist"), ("mnist", "mnist"), ("cifar10", "cifar10-jpeg"), ("transformer_lm", "wikitext-2")]
    for recipe, folder in cases:
        with temporary() as cache:  # a fresh inductor cache: what a first compile costs, not a cache hit
            out = subprocess.run(
                [sys.executable, str(Path(__file__).with_name("compile_step.py")), recipe, str(data / folder)],
                capture_output=True,
                text=True,
                cwd=REPO,
                timeout=1200,
                env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache},
            )
        if out.returncode != 0:
            rows.append({"recipe": recipe, "error": out.stderr.strip().splitlines()[-1][:200]})
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]) | {"fresh_cache": True})
    return rows


def temporary() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="ignite-lab-bench-")
