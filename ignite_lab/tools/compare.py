"""``ignite-lab compare``: runs side by side from their files alone (config.json, metrics.jsonl, summary.json)."""

from __future__ import annotations

from pathlib import Path

from ignite_lab.core.config import TrainConfig, training_fields
from ignite_lab.core.errors import UserError
from ignite_lab.outputs.plots import plot_curves
from ignite_lab.outputs.tables import format_table
from ignite_lab.training.rundir import RunDir


def compare_runs(paths: list[Path], out: Path) -> str:
    """The runs as a table: recipe, status and epochs, then every training field and setting whose value
    differs between them (derived from the config's own fields), best epoch, test metrics, wall time."""
    runs = []
    for path in paths:
        run = RunDir(path)
        if not run.config.is_file():
            raise UserError(f"{path} is not a run directory (no config.json)")
        runs.append((run, TrainConfig.load(run.config), run.read_summary(), run.read_metrics()))
    labels = _labels([run.path for run, *_ in runs])
    configs = [config for _, config, _, _ in runs]
    fields = [name for name in training_fields() if len({repr(getattr(c, name)) for c in configs}) > 1]
    settings = sorted({k for c in configs for k in c.settings})
    settings = [k for k in settings if len({repr(c.settings.get(k)) for c in configs}) > 1]
    test_keys = sorted(
        {k for *_, s, _ in runs for k, v in (s.get("test") or {}).items() if isinstance(v, (int, float))}
    )
    headers = ["run", "recipe", "status", "epochs", *fields, *settings, "best epoch"]
    headers += [*[f"test {k}" for k in test_keys], "time s"]
    rows = []
    for label, (_, config, summary, _) in zip(labels, runs, strict=True):
        test = summary.get("test") or {}
        rows.append(
            [
                label,
                config.recipe,
                summary.get("status", "?"),
                summary.get("epochs_completed"),
                *[getattr(config, name) for name in fields],
                *[config.settings.get(k) for k in settings],
                summary.get("best_epoch"),
                *[test.get(k) for k in test_keys],
                summary.get("wall_time_s"),
            ]
        )
    try:
        plot_curves({label: metrics for label, (*_, metrics) in zip(labels, runs, strict=True)}, out)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}") from None
    return format_table(headers, rows)


def _labels(paths: list[Path]) -> list[str]:
    """Shortest distinguishing names: the run directory, with its recipe when runs of several recipes mix."""
    names = [p.name for p in paths]
    if len(set(names)) == len(names) and len({p.parent.name for p in paths}) == 1:
        return names
    return [f"{p.parent.name}/{p.name}" for p in paths]
