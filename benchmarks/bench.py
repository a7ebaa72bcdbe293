"""``make bench``: measures ignite-lab side by side with its peers and with itself, and rewrites BENCHMARKS.md.

Every figure in BENCHMARKS.md comes from one run of this script. Ratios come from measurements made one
right after the other (interleaved repeats, medians); absolute times are printed but noisy on shared machines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import peers  # noqa: E402
import pipelines  # noqa: E402
import runs  # noqa: E402

from ignite_lab.core.config import TrainConfig  # noqa: E402
from ignite_lab.core.registry import load_recipe  # noqa: E402
from ignite_lab.core.settings import complete_settings, parse_settings  # noqa: E402

LOOPS = ("hand", "ignite", "ignite-lab", "lightning")


def overhead(name: str, recipe: str, repeats: int, pairs: list[str], **fields) -> dict:
    """The four loops on the same parts and batches, interleaved ``repeats`` times; medians and loss agreement."""
    declared = load_recipe(recipe)
    settings = complete_settings(declared.settings, parse_settings(declared.settings, pairs))
    # the recipe's lr and batch unless a case sets them; the rest (precision, schedule) stays TrainConfig's plain
    # default, which the hand loop also follows
    flags = {"lr": declared.lr, "batch_size": declared.batch_size, "epochs": 1, **fields}
    config = TrainConfig(recipe=recipe, seed=0, settings=settings, **flags)
    times: dict[str, list[float]] = {loop: [] for loop in LOOPS}
    losses: dict[str, list[float]] = {}
    with runs.temporary() as tmp:
        for r in range(repeats):
            for loop in LOOPS:
                if loop == "hand":
                    t, losses[loop] = peers.hand_loop(config)
                elif loop == "ignite":
                    t, losses[loop] = peers.bare_ignite(config)
                elif loop == "ignite-lab":
                    t, losses[loop] = peers.ignite_lab_loop(config, f"{tmp}/{r}")
                else:
                    t, losses[loop] = peers.lightning_loop(config)
                times[loop].append(t)
    hand = statistics.median(times["hand"])
    worst = {loop: max(abs(a - b) for a, b in zip(losses["hand"], losses[loop], strict=True)) for loop in LOOPS}
    return {
        "name": name,
        "iterations": len(losses["hand"]),
        "ms": {k: 1000 * statistics.median(v) for k, v in times.items()},
        "ratio": {k: statistics.median(v) / hand for k, v in times.items()},
        "max_loss_diff": worst,
    }


def commit() -> str | None:
    """The commit measured, so a table can be matched to its code."""
    import subprocess

    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or None


def measure(data: Path, repeats: int, batches: int, quick: bool, targets: list[str] | None = None) -> dict:
    mnist = data / "mnist"
    results = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "command": "make bench",
        "commit": commit(),
        "batches": batches,
    }
    mnist_args = {"data_dir": str(mnist), "limit_batches": 200, "lr": 1e-3, "batch_size": 64}
    step("overhead")
    results["overhead"] = [
        overhead("MLP 784-32-16-10, batch 64 (mnist_mlp)", "mnist_mlp", repeats, [], **mnist_args),
        overhead(
            "MNIST CNN, batch 64 (mnist)",
            "mnist",
            repeats,
            ["channels_last=false"],
            **{**mnist_args, "limit_batches": 100},
        ),
        # the books' smallest models, whose steps are a few hundred microseconds: handler cost shows most here
        overhead("XOR 2-4-4-1, batch 2 (xor)", "xor", repeats, [], limit_batches=200),
        overhead("FizzBuzz 10-100-4, batch 64 (fizzbuzz)", "fizzbuzz", repeats, [], limit_batches=200),
    ]
    step("input pipelines")
    results["pipeline"] = [pipelines.mnist_pipeline(mnist, 3), pipelines.cifar_pipeline(3), pipelines.text_pipeline(3)]
    with runs.temporary() as tmp:
        step("speed, before and after")
        results["speed"] = runs.speed(data, Path(tmp))
        step("time to target")
        results["ttt"] = runs.time_to_target(data, Path(tmp), targets) if not quick else []
        step("peak memory")
        results["memory"] = runs.memory(data, Path(tmp), batches)
        results["imports"] = runs.import_peaks()
    step("torch.compile")
    results["compile"] = runs.compile_cases(data) if not quick else []
    return results


def step(what: str) -> None:
    print(f"{what} ...", flush=True)


def machine() -> str:
    import ignite

    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB; Python {platform.python_version()}, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), pytorch-ignite {ignite.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="real datasets folder")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=30, help="batches per memory run")
    parser.add_argument("--quick", action="store_true", help="skip the long sections (time to target, compile)")
    parser.add_argument("--targets", help="time to target of these recipes only (comma-separated)")
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args()
    if not (args.data / "mnist").is_dir():
        sys.exit(f"bench needs the real datasets: {args.data / 'mnist'} not found (pass --data DIR)")
    os.environ["IGNITE_LAB_PROGRESS"] = "1"  # the overhead loops run with ignite-lab's progress bar on
    targets = args.targets.split(",") if args.targets else None
    results = measure(args.data, args.repeats, args.batches, args.quick, targets)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    from report import report

    text = report(results)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
