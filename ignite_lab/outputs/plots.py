"""curves.png: every scalar metric by epoch, train against validation."""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ignite_lab.core.files import atomic_path

log = logging.getLogger(__name__)


def scalar_series(records: list[dict[str, Any]]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{metric: {split: [(epoch, value)]}} for the scalar metrics in metrics.jsonl records."""
    series: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        for name, value in record.get("metrics", {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                series[name][record["split"]].append((record["epoch"], float(value)))
    return series


def pyplot():
    """matplotlib, imported on first use (0.5 s and 30 MB a run that draws nothing yet need not pay)."""
    import matplotlib

    if "ipykernel" not in sys.modules:  # in a notebook the kernel's inline backend shows the figures
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(runs: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """``curves_figure`` written to ``path`` as a PNG (atomically)."""
    fig = curves_figure(runs)
    if fig is None:
        return
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=80, format="png")
    finally:
        pyplot().close(fig)


def curves_figure(runs: dict[str, list[dict[str, Any]]]):
    """One panel per metric; each run's train (dashed) and val (solid) lines. ``runs`` maps label -> records.
    None when the records hold no metric yet."""
    plt = pyplot()
    per_run = {label: scalar_series(records) for label, records in runs.items()}
    names = sorted({n for s in per_run.values() for n in s}, key=lambda n: (n != "loss", n == "lr", n))
    if not names:
        return None
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for label, series in per_run.items():
            prefix = f"{label} " if len(runs) > 1 else ""
            for split, points in sorted(series.get(name, {}).items()):
                if split == "test":
                    continue
                epochs, values = zip(*points, strict=False)
                style = "--" if split == "train" else "-"
                ax.plot(epochs, values, style, marker="o", markersize=3, label=f"{prefix}{split}")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def draw_curves(runs: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """``plot_curves`` for a run in progress: a picture that cannot be written (a full disk) is a warning."""
    try:
        plot_curves(runs, path)
    except OSError as exc:
        log.warning("cannot draw %s: %s", path, exc.strerror or exc)


def figure_to_array(fig) -> np.ndarray:
    """A matplotlib figure as an RGB uint8 array (for Publisher.image), closing the figure."""
    plt = pyplot()
    fig.tight_layout()
    fig.canvas.draw()
    array = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return array
