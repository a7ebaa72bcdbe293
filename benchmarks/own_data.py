"""The general recipes on data the hand-written recipes know, side by side: tabular on Auto MPG against
auto_mpg, text_classifier on TREC against trec, image_folder on CIFAR-10's JPEG folders against cifar10.

    python benchmarks/own_data.py --data-root ../shared/data [--only tabular,text] [--seeds 3]

Writes OWN_DATA.md: for each pair, the test figure (median and range over seeds) and the median wall time
of one run, start-up included. TREC's label files are first written as the TSV a user would have.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def trec_as_tsv(trec: Path, out: Path) -> Path:
    """TREC's 'COARSE:fine question' lines as train.tsv/test.tsv with a header: label, question."""
    out.mkdir(parents=True, exist_ok=True)
    for source, name in (("train_5500.label", "train.tsv"), ("TREC_10.label", "test.tsv")):
        lines = (trec / source).read_text(encoding="iso-8859-1").splitlines()
        rows = ["label\tquestion"] + [f"{ln.split(' ', 1)[0].split(':')[0]}\t{ln.split(' ', 1)[1]}" for ln in lines]
        (out / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out


def auto_mpg_as_its_split(mpg: Path, out: Path, seed: int) -> Path:
    """auto_mpg's own rows and seeded split (the 392 complete cars; a fifth tested, a tenth of the rest
    validated) as train/val/test files, so tabular is measured on the very cars auto_mpg is."""
    from ignite_lab import holdout_split

    lines = [ln for ln in (mpg / "auto-mpg.data").read_text().splitlines() if ln.strip()]
    complete = [ln for ln in lines if "?" not in shlex.split(ln)[:8]]
    rest, test = holdout_split(complete, 0.2, seed)
    train, val = holdout_split(rest, 0.1, seed)
    folder = out / f"auto-mpg-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("val", val), ("test", test)):
        (folder / f"{name}.data").write_text("\n".join(rows) + "\n")
    return folder


def run(args, out: Path, seed: int) -> tuple[dict, float]:
    args = args(seed) if callable(args) else args
    start = time.perf_counter()
    command = [sys.executable, "-m", "ignite_lab", "run", *args, "--seed", str(seed), "--output-dir", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    summary = max(out.glob("*/*/summary.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(summary.read_text())["test"], wall


def pairs(root: Path, scratch: Path) -> dict[str, list[tuple[str, list[str], str]]]:
    mpg, trec, cifar = root / "auto-mpg", root / "trec", root / "cifar10-jpeg"
    return {
        "tabular": [
            ("auto_mpg", ["auto_mpg", "--data-dir", str(mpg)], "mse"),
            (
                "tabular",
                lambda seed: [
                    "tabular",
                    "--data-dir",
                    str(auto_mpg_as_its_split(mpg, scratch, seed)),
                    "--set",
                    "target=0",
                ],
                "mse",
            ),
        ],
        "text": [
            ("trec", ["trec", "--data-dir", str(trec)], "accuracy"),
            (
                "text_classifier",
                ["text_classifier", "--data-dir", str(trec_as_tsv(trec, scratch / "trec"))],
                "accuracy",
            ),
        ],
        "images": [
            ("cifar10", ["cifar10", "--data-dir", str(cifar)], "accuracy"),
            ("image_folder", ["image_folder", "--data-dir", str(cifar), "--set", "size=32"], "accuracy"),
        ],
    }


def previous_rows(groups: list[str]) -> list[str]:
    """The rows of OWN_DATA.md for the groups not measured now (each group's rows come from one run)."""
    path = ROOT / "OWN_DATA.md"
    rows = [ln for ln in path.read_text().splitlines() if ln.startswith("| ")][2:] if path.exists() else []
    return [row for row in rows if row.split("|")[1].strip() not in groups]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--only", default="tabular,text,images")
    parser.add_argument("--seeds", type=int, default=3)
    options = parser.parse_args()
    lines = []
    with tempfile.TemporaryDirectory() as scratch:
        for group, members in pairs(options.data_root, Path(scratch)).items():
            if group not in options.only.split(","):
                continue
            for name, args, metric in members:
                results = [run(args, Path(scratch) / "runs" / name / str(seed), seed) for seed in range(options.seeds)]
                values = [test[metric] for test, _ in results]
                median = statistics.median(values)
                spread = f"median of {len(values)}; {min(values):.4f}-{max(values):.4f}"
                wall = statistics.median(w for _, w in results)
                words = " ".join(args(0) if callable(args) else args)
                shown = words.replace(str(options.data_root), "../shared/data").replace(scratch, "SCRATCH")
                lines.append(f"| {group} | {name} | test {metric} {median:.4f} ({spread}) | {wall:.0f} s | `{shown}` |")
                print(lines[-1], flush=True)
    kept = previous_rows(options.only.split(","))
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "CPU")
    text = [
        "# The general recipes beside the hand-written ones\n",
        "Written by `python benchmarks/own_data.py`: each general recipe on data a hand-written recipe was made for,",
        "with its defaults; the median over seeds (their number and range in brackets), the median wall time of one",
        "run, start-up included, with one thread (OMP_NUM_THREADS=1), measured while other jobs may share the cores",
        "(a wall is an upper bound). SCRATCH/trec: TREC's label files as train.tsv and test.tsv (label, question);",
        "SCRATCH/auto-mpg-seedN holds auto_mpg's own 392 cars and seed-N split as train/val/test files.\n",
        f"- Machine: {cpu}, Python {platform.python_version()}, torch {torch.__version__}; {date.today()}\n",
        "| data | recipe | ours | wall | command |",
        "| --- | --- | --- | --- | --- |",
        *kept,
        *lines,
    ]
    (ROOT / "OWN_DATA.md").write_text("\n".join(text) + "\n")


if __name__ == "__main__":
    main()
