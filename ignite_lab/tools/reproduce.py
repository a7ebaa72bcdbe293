"""``ignite-lab reproduce``: every recipe on its real data, by preset, into one table (REPRODUCE.md).

Each run is an ordinary ``ignite-lab run`` in its own process (so its wall time and peak memory are
its own). Rows are kept in REPRODUCE.json, so reproducing one recipe updates its rows and leaves the
others; REPRODUCE.md and the README's recipe table (between its ``reproduce`` markers) are rewritten
from them, so a figure is quoted in one place only. Cheap recipes run several seeds: the table shows
the median and the range.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ignite_lab.core.errors import UserError
from ignite_lab.core.files import write_atomic
from ignite_lab.core.recipe import Recipe
from ignite_lab.core.registry import load_recipe, recipe_names
from ignite_lab.core.settings import complete_settings
from ignite_lab.outputs.tables import markdown, replace_between

log = logging.getLogger(__name__)
README_START, README_END = "<!-- reproduce:start -->", "<!-- reproduce:end -->"


@dataclass(frozen=True)
class Target:
    """How a recipe meets its real data: a folder under --data-root (None: built in), extra flags, seeds."""

    folder: str | None
    data: str  # what the runs saw, for the table
    flags: tuple[str, ...] = ()
    seeds: int = 1
    data_by_preset: tuple[tuple[str, str], ...] = ()  # presets whose split differs from ``data``

    def data_of(self, preset: str) -> str:
        return dict(self.data_by_preset).get(preset, self.data)


MNIST_HELD = "MNIST 55k train / 5k held out / 10k test"
MNIST_ALL = "MNIST 60k train / 10k test"
MNIST_PL = "MNIST 55k / 5k random_split(seed 1) / 10k test"
CIFAR_HELD = "CIFAR-10 45k / 5k held out / 10k test (JPEG re-encode)"

# The folders are those of the datasets' usual names (../shared/data/README.md lists them).
TARGETS: dict[str, Target] = {
    "fizzbuzz": Target(None, "generated integers", seeds=3),
    "xor": Target(None, "200 generated points", seeds=3),
    "auto_mpg": Target("auto-mpg", "UCI Auto MPG, 392 complete cars", seeds=5),
    "mnist_mlp": Target("mnist", MNIST_HELD, seeds=3, data_by_preset=(("book", MNIST_ALL), ("lightning", MNIST_PL))),
    "mnist": Target("mnist", MNIST_HELD, seeds=3),
    "mnist_rnn": Target("mnist", MNIST_HELD, data_by_preset=(("book", MNIST_ALL),)),
    "mnist_lstm": Target("mnist", MNIST_HELD, data_by_preset=(("book", MNIST_ALL),)),
    "cifar10": Target("cifar10-jpeg", CIFAR_HELD, data_by_preset=(("book", "CIFAR-10 50k/10k (JPEG re-encode)"),)),
    "randwire": Target("cifar10-jpeg", CIFAR_HELD),
    "linknet": Target("camvid", "CamVid 367/101/233 (SegNet layout)"),
    "transformer_lm": Target("wikitext-2", "WikiText-2 train/valid/test"),
    "char_rnn": Target("tinyshakespeare", "Tiny Shakespeare 90/5/5"),
    "snli": Target(
        "snli", "SNLI trained on DEV (10k; no train split here), tested on test", ("--set", "train_split=dev")
    ),
    "trec": Target("trec", "TREC 5,452 (10% held out) / 500", seeds=3),
    "pos_tagger": Target(None, "the tutorial's 2 sentences", seeds=3),
}


def book_recipes() -> list[str]:
    """The recipes that come from the books (those with a ``book`` preset); the general ones train the user's data."""
    return [name for name in recipe_names() if "book" in load_recipe(name).presets]


def presets_of(recipe: Recipe, which: str) -> list[str]:
    names = ["default", *recipe.presets]
    if which == "all":
        return names
    if which not in names:
        raise UserError(f"{recipe.name} has no preset {which!r} (it has {', '.join(names)})")
    return [which]


def reproduce(
    names: list[str], which: str, data_root: Path | None, out_dir: Path, table: Path, seeds: int | None = None
) -> None:
    """Run every (recipe, preset) asked for, then rewrite the table from all rows kept so far."""
    failed = []
    for name in names:
        recipe = load_recipe(name)
        target = TARGETS.get(name, Target(None, "built in"))
        if seeds is not None:
            target = dataclasses.replace(target, seeds=seeds)
        for preset in presets_of(recipe, which):
            try:
                row = run_target(recipe, preset, target, data_root, out_dir)
            except TargetFailed as failure:  # a configuration that diverges is a result too: the row says so
                row = failed_row(recipe, preset, target, failure)
                failed.append(f"{name} --preset {preset}")
            keep_row(table, f"{name}/{preset}", row)
            log.info("%s --preset %s: %s", name, preset, row["ours"] or row.get("failed"))
    with table_lock(table):
        update_readme(load_rows(table.with_suffix(".json")), table.parent / "README.md")
    if failed:
        raise UserError(f"{len(failed)} run(s) failed: {', '.join(failed)} (their rows say why)")


@contextmanager
def table_lock(table: Path) -> Iterator[None]:
    """One writer of the table at a time: two ``reproduce`` jobs at once each keep the other's rows."""
    with open(table.with_suffix(".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def keep_row(table: Path, key: str, row: dict) -> dict[str, dict]:
    """Add one row to the rows on disk now (not those read when this job began) and rewrite the table."""
    with table_lock(table):
        rows = {**load_rows(table.with_suffix(".json")), key: row}
        write_atomic(table.with_suffix(".json"), json.dumps(rows, indent=1, sort_keys=True) + "\n")
        write_table(rows, table)
    return rows


class TargetFailed(UserError):
    """An ``ignite-lab run`` that exited non-zero: its command, its own error line and its console log."""

    def __init__(self, command: list[str], reason: str, log_path: Path) -> None:
        super().__init__(f"{' '.join(command)} failed ({reason}); see {log_path}")
        self.command, self.reason = command, reason


def command_for(name: str, preset: str, target: Target, data_root: Path | None) -> list[str]:
    args = ["ignite-lab", "run", name]
    if preset != "default":
        args += ["--preset", preset]
    if target.folder:
        if data_root is None:
            raise UserError(f"{name} needs its dataset: pass --data-root DIR holding {target.folder}/")
        folder = data_root / target.folder
        if not folder.is_dir():
            raise UserError(f"{name}: {folder} does not exist (the layout of ../shared/data/README.md is expected)")
        args += ["--data-dir", str(folder)]
    return args + list(target.flags)


def run_target(recipe: Recipe, preset: str, target: Target, data_root: Path | None, out_dir: Path) -> dict:
    """Run the target's seeds one after the other; summarize them as one row."""
    command = command_for(recipe.name, preset, target, data_root)
    resolved = resolution(recipe, preset)
    runs = []
    for seed in range(target.seeds):
        out = out_dir / recipe.name / preset / f"seed{seed}"
        runs.append(run_once([*command, "--seed", str(seed)], out, resolved))
    return summarize(recipe, preset, target, command, runs)


def run_once(command: list[str], out: Path, resolved: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``ignite-lab run`` in a child process; its summary, plus the wall time measured from outside.

    A run of the same command and configuration that a kill left unfinished in ``out`` is resumed
    (``--resume auto``) rather than started over: a reproduce of hours survives a reboot or a re-queue.
    Its wall time is then the run's own training time over all its pieces (start-ups not counted).
    """
    out.mkdir(parents=True, exist_ok=True)
    attempt = json.loads(json.dumps({"command": command, "resolved": resolved}))  # as attempt.json reads back
    resume = unfinished(out) is not None and read_json(out / "attempt.json") == attempt
    write_atomic(out / "attempt.json", json.dumps(attempt, indent=1, sort_keys=True))
    argv = [sys.executable, "-m", "ignite_lab", *command[1:], "--output-dir", str(out)]
    log.info("$ %s%s", " ".join(command), " (resuming its unfinished run)" if resume else "")
    with open(out / "console.log", "a" if resume else "w") as console:
        start = time.perf_counter()
        proc = subprocess.run(
            [*argv, *(["--resume", "auto"] if resume else [])],
            stdout=console,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wall = time.perf_counter() - start
    load = os.getloadavg()[0]
    summaries = sorted(out.glob("*/*/summary.json"), key=lambda p: p.stat().st_mtime)
    if proc.returncode != 0 or not summaries:
        errors = [line for line in (out / "console.log").read_text().splitlines() if line.startswith("error: ")]
        reason = errors[-1].removeprefix("error: ") if errors else f"exit {proc.returncode}"
        raise TargetFailed(command, reason, out / "console.log")
    run = summaries[-1].parent
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    config = json.loads((run / "config.json").read_text())
    summary = json.loads(summaries[-1].read_text())
    resumes = sum(event.get("event") == "resumed" for event in summary.get("history", []))
    if resumes:
        wall = float(summary.get("wall_time_s") or wall)
    return {"summary": summary, "records": records, "config": config, "wall_s": wall, "load": load, "resumes": resumes}


def unfinished(out: Path) -> Path | None:
    """The newest run under ``out`` if a kill left it unfinished (its summary not completed nor early stopped)."""
    runs = sorted(p.parent for p in out.glob("*/*/config.json"))
    if not runs:
        return None
    status = (read_json(runs[-1] / "summary.json") or {}).get("status")
    return None if status in ("completed", "early_stopped") else runs[-1]


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None where it is missing or damaged (a kill mid-write)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def figures_of(run: dict[str, Any], keys: list[str]) -> dict[str, float]:
    """'test accuracy' from the summary; 'val x' / 'train x' from the epoch the test judged (best or last)."""
    summary, records = run["summary"], run["records"]
    last = run["config"].get("test_checkpoint") == "last"
    judged = summary["epochs_completed"] if last else summary.get("best_epoch")  # the epoch test figures come from

    found = {}
    for key in keys:
        split, metric = key.split(" ", 1)
        if split == "test":
            value = (summary.get("test") or {}).get(metric)
        else:
            value = next(
                (r["metrics"].get(metric) for r in records if r["split"] == split and r["epoch"] == judged), None
            )
        if isinstance(value, (int, float)):
            found[key] = value
    return found


def summarize(recipe: Recipe, preset: str, target: Target, command: list[str], runs: list[dict]) -> dict:
    book = recipe.presets.get(preset)
    keys = list(book.figures) if book and book.figures else [default_key(recipe, runs[0])]
    per_run = [figures_of(run, keys) for run in runs]
    ours = {}
    for key in keys:
        values = [r[key] for r in per_run if key in r]
        if values:
            ours[key] = {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}
    return {
        **row_of(recipe, preset, target),
        "ours": ours,
        "epochs": runs[0]["summary"]["epochs_completed"],
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "conditions": conditions(runs),
        "peak_rss_mb": max(r["summary"]["peak_rss_mb"] for r in runs),
        "command": " ".join(command) + (f" --seed 0..{len(runs) - 1}" if len(runs) > 1 else " --seed 0"),
    }


def conditions(runs: list[dict]) -> str:
    """Under what the wall time was measured: the threads a run used and the machine's load as it ended
    (a load above the core count means other jobs shared the cores)."""
    threads = runs[0]["summary"].get("threads")
    load = max(r.get("load", 0.0) for r in runs)
    resumes = sum(r.get("resumes", 0) for r in runs)
    said = f"{threads} thread(s), load {load:.1f}" if threads else f"load {load:.1f}"
    return said + (f", resumed {resumes} time(s): the run's own training time" if resumes else "")


def failed_row(recipe: Recipe, preset: str, target: Target, failure: TargetFailed) -> dict:
    command = " ".join(failure.command)
    return {**row_of(recipe, preset, target), "ours": {}, "failed": failure.reason, "command": command}


def row_of(recipe: Recipe, preset: str, target: Target) -> dict:
    """What every row says whatever its runs gave: the recipe, the book's source and figures, the data, when, where."""
    book = recipe.presets.get(preset)
    return {
        "recipe": recipe.name,
        "preset": preset,
        "source": book.source if book else "the recipe's defaults",
        "book": dict(book.figures) if book else {},
        "note": book.note if book else "",
        "data": target.data_of(preset),
        "resolved": resolution(recipe, preset),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": machine(),
    }


def resolution(recipe: Recipe, preset: str) -> dict[str, Any]:
    """What the preset resolves to now (the recipe's flags with the preset's on top, every setting): kept with
    a row, so a row measured before its configuration changed is shown as such, never as a current figure."""
    chosen = recipe.presets.get(preset)
    flags = {**recipe.defaults(), **(chosen.flags if chosen else {})}
    settings = complete_settings(recipe.settings, chosen.settings if chosen else {}, where=recipe.name)
    return json.loads(json.dumps({**flags, "settings": settings}, sort_keys=True, default=str))


def is_current(row: dict) -> bool:
    try:
        return bool(row) and row.get("resolved") == resolution(load_recipe(row["recipe"]), row["preset"])
    except UserError:  # a recipe or preset that is gone
        return False


def default_key(recipe: Recipe, run: dict) -> str:
    """The recipe's own score on test (or validation when it has no test split)."""
    metric = next((r for r in run["records"] if r["split"] == "val"), {"metrics": {}})["metrics"]
    score = next((k for k in ("accuracy", "perplexity", "miou", "mse") if k in metric), next(iter(metric), "loss"))
    return f"{'test' if run['summary'].get('test') else 'val'} {score}"


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "CPU"
    )
    import torch

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}"


def load_rows(path: Path) -> dict[str, dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def fmt(value: dict | float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        median = fmt(value["median"])
        return (
            median if value["n"] == 1 else f"{median} (median of {value['n']}; {fmt(value['min'])}-{fmt(value['max'])})"
        )
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def fmt_printed(value: float) -> str:
    """A book's figure as printed: all its digits (0.94996 must not read 0.9500)."""
    return f"{value:.4f}" if round(value, 4) == value else f"{value:g}"


def row_cells(row: dict) -> list[str]:
    keys = list(row["ours"]) or list(row["book"])
    book = "; ".join(f"{k} {fmt_printed(row['book'][k])}" for k in keys if k in row["book"]) or "-"
    ours = "; ".join(f"{k} {fmt(row['ours'][k])}" for k in keys if k in row["ours"])
    if row["note"]:
        book += f" ({row['note']})"
    tested = TESTED[row["resolved"].get("test_checkpoint", "best")]
    if "failed" in row:
        cells = [row["recipe"], row["preset"], book, f"failed: {row['failed']}", tested, "-", "-", "-"]
        return [*cells, f"`{row['command']}`", row["data"]]
    wall = f"{row['wall_s']:.0f} s" if row["wall_s"] < 600 else f"{row['wall_s'] / 60:.1f} min"
    wall += f" ({row['conditions']})" if row.get("conditions") else ""
    cells = [row["recipe"], row["preset"], book, ours, tested, str(row["epochs"]), wall, f"{row['peak_rss_mb']:.0f} MB"]
    return [*cells, f"`{row['command']}`", row["data"]]


TESTED = {"last": "last epoch", "best": "best by validation"}
HEADER = ["recipe", "preset", "book figure", "ours", "tested", "epochs", "wall", "peak RSS", "command", "data"]
README_COLUMNS = ["recipe", "preset", "book figure", "ours", "tested", "epochs", "wall", "data"]


def markdown_table(rows: dict[str, dict], columns: list[str] = HEADER) -> str:
    current = [r for r in rows.values() if is_current(r)]
    ordered = sorted(current, key=lambda r: (recipe_order(r["recipe"]), r["preset"] != "book", r["preset"]))
    keep = [HEADER.index(c) for c in columns]
    return markdown(columns, [[row_cells(r)[i] for i in keep] for r in ordered])


def recipe_order(name: str) -> int:
    names = list(TARGETS) + [n for n in recipe_names() if n not in TARGETS]
    return names.index(name) if name in names else len(names)


def write_table(rows: dict[str, dict], path: Path) -> None:
    current = [r for r in rows.values() if is_current(r)]
    machines = sorted({r["machine"] for r in current})
    dates = sorted({r["date"] for r in current})
    text = [
        "# Reproducing the books\n",
        "Written by `make reproduce` (`ignite-lab reproduce all --preset all --data-root ../shared/data`); every row",
        "is an ordinary `ignite-lab run` of the command shown. Test figures are on each dataset's test split",
        "(validation where a recipe has none), from the weights the `tested` column names: a `book` preset",
        "tests the weights its book's figure came from. Wall time includes start-up, data loading and every",
        "evaluation; where the threads and load are given beside it, other jobs shared the cores (a load above 2),",
        "so it is longer than the run alone would take; rows without them were measured before this was recorded.",
        f"\n- Machine: {'; '.join(machines)}\n- Dates: {', '.join(dates)}\n",
        markdown_table(rows),
        not_reproduced(rows),
        book_programs(),
    ]
    write_atomic(path, "\n".join(text))


def book_programs() -> str:
    """Each book preset's record in sentences: what it follows, where, and what it cannot do as the book does."""
    lines = ["## The book presets and their books\n"]
    for name in sorted(recipe_names(), key=recipe_order):
        for preset, chosen in load_recipe(name).presets.items():
            book = chosen.book
            if book is None:
                continue
            weights = "the last epoch's weights" if book.tested == "last" else "the best weights by validation"
            lines.append(
                f"- **{name} --preset {preset}**: {chosen.source}. Batch {book.batch}, {book.epochs} epoch(s), "
                f"{book.optimizer} lr {book.lr:g}, {weights} tested; the book's data: {book.data}. "
                f"Sources: {', '.join(f'`{c}`' for c in book.cites)}."
                + "".join(f"\n  - Differs: {line}." for line in book.differs)
            )
    return "\n".join(lines) + "\n"


def not_reproduced(rows: dict[str, dict]) -> str:
    """A line naming the presets with no current row, so a missing or outdated figure is never taken for one."""
    missing = []
    for name in sorted(book_recipes(), key=recipe_order):
        presets = [p for p in presets_of(load_recipe(name), "all") if not is_current(rows.get(f"{name}/{p}", {}))]
        if presets:
            missing.append(f"{name} ({', '.join(presets)})")
    if not missing:
        return ""
    return f"\nNot reproduced with the current configuration: {'; '.join(missing)} (`ignite-lab reproduce NAME`).\n"


def update_readme(rows: dict[str, dict], readme: Path) -> None:
    """The README's recipe results come from the same rows (between its reproduce markers)."""
    table = "\n".join([markdown_table(rows, README_COLUMNS), not_reproduced(rows)]).rstrip("\n")
    replace_between(readme, README_START, README_END, table)
