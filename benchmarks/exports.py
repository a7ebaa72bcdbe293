"""Which recipe exports to which format: the README's export table (between its ``export`` markers).

Each recipe trains for two batches on its real data (the weights do not matter, only the graph does), then
``ignite_lab.tools.export.export`` tries every format: the same check a user's export goes through (the file is
loaded back and run on real validation inputs). Run: ``python benchmarks/exports.py --data-root ../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runs import run_cli  # noqa: E402

from ignite_lab.core.errors import UserError  # noqa: E402
from ignite_lab.core.registry import load_recipe, recipe_names  # noqa: E402
from ignite_lab.outputs.tables import markdown, replace_between  # noqa: E402
from ignite_lab.tools.export import FORMATS, SUFFIXES, export  # noqa: E402
from ignite_lab.tools.reproduce import TARGETS, command_for  # noqa: E402

START, END = "<!-- export:start -->", "<!-- export:end -->"


def checkpoint_of(name: str, data_root: Path, out: Path) -> Path:
    """A two-batch run of the recipe on its real data; its last checkpoint."""
    args = command_for(name, "default", TARGETS[name], data_root)[3:]
    summary, _ = run_cli([name, *args, "--epochs", "1", "--limit-batches", "2"], out)
    return Path(summary["run_dir"]) / "checkpoints" / summary["last_checkpoint"]


def try_formats(name: str, checkpoint: Path, out: Path, reasons: list[str]) -> dict[str, str]:
    """One cell per format: the largest difference from the eager model and the batch, or "no" (and why)."""
    cells = {}
    for fmt in FORMATS:
        try:
            done = export(load_recipe(name), checkpoint, fmt, out / f"{name}{SUFFIXES[fmt]}")
        except UserError as exc:
            cells[fmt] = "no"
            reasons.append(f"- `{name}` to {fmt}: {exc.message.split(f'to {fmt}: ', 1)[-1][:200]}")
            continue
        batch = "dynamic batch" if done.dynamic_batch else f"batch {done.batch} only"
        cells[fmt] = f"yes, {done.max_difference:.1e}, {batch}"
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows, reasons = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in recipe_names():
            if name not in TARGETS:
                continue
            checkpoint = checkpoint_of(name, args.data_root, Path(tmp) / name)
            cells = try_formats(name, checkpoint, Path(tmp) / "out", reasons)
            print(json.dumps({name: cells}), flush=True)
            rows.append([f"`{name}`", *(cells[f] for f in FORMATS)])
    note = (
        "Each cell: whether it exports, the largest |exported - eager| output difference on a batch of real "
        "validation inputs, and whether other batch sizes give the model's answers too "
        "(`python benchmarks/exports.py`, default settings). Why not:"
    )
    table = markdown(["recipe", *FORMATS], rows)
    replace_between(args.readme, START, END, "\n\n".join([table, note, "\n".join(reasons)]).strip())


if __name__ == "__main__":
    main()
