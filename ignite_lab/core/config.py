"""The run's configuration, declared once: each field is also its command-line flag (see ``flags.py``).

Three parts, because they answer different questions:

- ``TrainConfig``: what the run learns. Recipes see it in ``build``; it is config.json and travels in
  every checkpoint; a resumed run takes it back. ``build`` receives the per-process share of
  ``batch_size`` and ``eval_batch_size`` (the flags give the global batch, split across processes).
- ``LaunchConfig``: how and where this invocation runs (device, processes, output, resume).
- ``DashboardConfig``: where it is plotted live.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ignite_lab.core.checks import problem
from ignite_lab.core.errors import UserError

LR_SCHEDULES = ("none", "step", "cosine", "onecycle", "plateau", "exponential")
PURPOSES = ("train", "eval", "predict")
PRECISIONS = ("32", "bf16", "16")  # --precision: float32, bfloat16 autocast, float16 autocast with a scaler
VISDOM_PORT = 8097


def flag(
    default: Any = MISSING,
    help: str = "",
    *,
    min: float | None = None,
    max: float | None = None,
    min_open: bool = False,
    choices: tuple[str, ...] | None = None,
    envvar: str | None = None,
    metavar: str | None = None,
    cli: bool = True,
    path: bool | Literal["absolute"] = False,
) -> Any:
    """A config field that is also a ``--flag``: its default, help and checks are declared here only.

    ``path="absolute"``: a folder recorded as an absolute path, so a run's config still finds it from
    wherever ``eval`` or ``predict`` is started later.
    """
    metadata = {"help": help, "min": min, "max": max, "min_open": min_open, "choices": choices, "envvar": envvar}
    metadata.update({"metavar": metavar, "cli": cli, "path": path})
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """What defines the training: what ``build`` sees, what config.json and every checkpoint hold."""

    recipe: str = flag(cli=False)
    epochs: int = flag(help="Epochs to train.", min=1)
    batch_size: int = flag(help="Global batch size, split across processes.", min=1)
    lr: float = flag(help="Learning rate.", min=0, min_open=True)
    seed: int = flag(0, "The same seed gives the same run on CPU.")
    data_dir: str | None = flag(
        None, "Dataset folder (downloaded there when missing and online), or a data file (tabular).", path="absolute"
    )
    lr_schedule: str = flag(
        "none",
        "step: x(lr-gamma) at each third of the epochs; cosine: to 0; onecycle: up to lr over the first quarter "
        "of the iterations (from lr/25), then down to lr/250,000; plateau: x0.1 after 2 flat epochs; "
        "exponential: x(lr-gamma) after every epoch.",
        choices=LR_SCHEDULES,
    )
    lr_gamma: float = flag(0.1, "The factor of the step and exponential schedules.", min=0, min_open=True)
    preset: str = flag("default", "A named configuration of the recipe (listed below), e.g. book.")
    test_checkpoint: str = flag(
        "best", "Which weights the test split judges: best (by validation) or last.", choices=("best", "last")
    )
    patience: int | None = flag(None, "Early stopping after this many epochs without improvement.", min=1)
    stop_at: float | None = flag(
        None,
        "Stop once the validation score (the recipe's metric: accuracy, mse, perplexity...) reaches this value, "
        "and test that checkpoint: the time to a target accuracy.",
    )
    precision: str = flag("32", "32, bf16 (CUDA, or CPUs with native bf16) or 16 (CUDA; --amp).", choices=PRECISIONS)
    eval_batch_size: int | None = flag(None, "Global batch for evaluation (default: 2x --batch-size).", min=1)
    limit_batches: int | None = flag(None, "At most N batches per epoch and evaluation (smoke runs).", min=1)
    deterministic: bool = flag(False, "Deterministic algorithms only (bit-identical resume on CPU).")
    settings: dict[str, Any] = field(default_factory=dict, metadata={"cli": False})
    run_dir: str | None = flag(None, cli=False)  # set by the toolkit: where build() keeps run files (vocabularies)
    # set by the toolkit: "eval" and "predict" (also export and generate) rebuild a trained run, whose own files
    # say how to read inputs; build may then skip the splits ``reads`` rules out
    purpose: str = flag("train", cli=False, choices=PURPOSES)

    def to_json(self) -> str:
        saved = {k: v for k, v in dataclasses.asdict(self).items() if k != "purpose"}  # how it is used, not kept
        return json.dumps(saved, indent=2, sort_keys=True)

    def reads(self, split: str) -> bool:
        """Whether ``build`` must read ``split``: every split to train, not the training one to evaluate a
        checkpoint, none to predict or export (the run's preprocess, tokenizer and label files suffice)."""
        return self.purpose == "train" or (self.purpose == "eval" and split != "train")

    def per_process(self, world: int) -> TrainConfig:
        """The config ``build`` receives in each of ``world`` processes: its share of the batches."""
        eval_batch = self.eval_batch_size or 2 * self.batch_size  # no gradients to keep: room for more
        return dataclasses.replace(
            self, batch_size=max(1, self.batch_size // world), eval_batch_size=max(1, eval_batch // world)
        )

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        """Read a saved config.json; a hand-edited or damaged file is a clear error."""
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read run config {path}: {exc}") from None
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> TrainConfig:
        """Validate a config read from ``where`` (a config.json or a checkpoint)."""
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(raw, dict) or not {"recipe", "epochs", "batch_size", "lr"} <= raw.keys():
            raise UserError(
                f"{where} is not an ignite-lab config.json (recipe, epochs, batch_size and lr are required)"
            )
        if raw.get("amp"):  # ignite-lab 0.1's --amp is --precision 16
            raw = {**raw, "precision": "16"}
        raw = {k: v for k, v in raw.items() if k not in LEGACY_KEYS and k != "purpose"}  # a file's config trains
        unknown = sorted(set(raw) - names)
        if unknown:
            raise UserError(f"{where}: unknown keys {', '.join(unknown)}")
        config = cls(**raw)
        check_fields(config, lambda name: f"{where}: {name}")
        return config

    def check(self) -> TrainConfig:
        """The typed flags checked as a whole (click checks each flag's range, not NaN or infinity)."""
        check_fields(self, lambda name: "--" + name.replace("_", "-"))
        return self


def training_fields() -> list[str]:
    """The TrainConfig fields that say how a model trains (not where its files are): what compare tabulates
    and TensorBoard records as hparams, derived from the fields so a new one is never left out."""
    return [
        f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True) and not f.metadata.get("path")
    ]


def check_fields(config: Any, name_of: Callable[[str], str]) -> None:
    """Every field of a config dataclass against its type and declared range; ``name_of`` names it in errors."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        wrong = problem(hints[f.name], f.metadata, value)
        if wrong:
            raise UserError(f"{name_of(f.name)}: {wrong}, got {value!r}")


@dataclass
class LaunchConfig:
    """How and where this invocation runs; not part of what the run learns, so not saved with it."""

    device: str = flag("auto", "auto, cpu, cuda, cuda:N or mps.")
    threads: int | None = flag(
        None,
        "CPU threads per process (default: OMP_NUM_THREADS if set, else the cores shared by the processes).",
        min=1,
    )
    output_dir: str = flag("runs", "Where run directories go.", path=True)
    resume: str | None = flag(None, "Continue a checkpoint, a run directory, or the newest run.", metavar="PATH|auto")
    checkpoint_every: int | None = flag(None, "Also save the last checkpoint every N iterations.", min=1, metavar="N")
    nproc_per_node: int | None = flag(None, "Processes on this machine (torch.distributed).", min=1)
    nnodes: int = flag(1, "Machines taking part.", min=1)
    node_rank: int = flag(0, "This machine's rank among them.", min=0)
    master_addr: str = flag("127.0.0.1", "Address of the rank-0 machine.")
    master_port: int = flag(29500, "Rendezvous port on the rank-0 machine.", min=1, max=65535)


@dataclass
class DashboardConfig:
    """Where the run is plotted live, besides its files."""

    visdom: bool = flag(False, "Live plots in Visdom (start one with: ignite-lab visdom start).")
    visdom_server: str = flag("http://127.0.0.1", "Visdom server URL.", envvar="VISDOM_SERVER_URL")
    visdom_port: int = flag(VISDOM_PORT, "Visdom server port.", min=1, max=65535, envvar="VISDOM_PORT")
    visdom_env: str | None = flag(None, "Visdom env name (default: RECIPE_TIMESTAMP, one per run).")
    tensorboard: bool = flag(False, "TensorBoard event files too (view them with: ignite-lab tensorboard).")
    tensorboard_dir: str | None = flag(
        None, "Where TensorBoard logs go, one folder per run (default: RUN_DIR/tensorboard).", path=True
    )


# Keys that config.json files of ignite-lab 0.1 held before launch and dashboard fields moved out of it.
LEGACY_KEYS = frozenset(
    {f.name for cls in (LaunchConfig, DashboardConfig) for f in dataclasses.fields(cls)} | {"checkpoint_every", "amp"}
)


def split_fields(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Parsed flag values -> (train, launch, dashboard) keyword arguments."""
    parts = []
    for cls in (TrainConfig, LaunchConfig, DashboardConfig):
        names = {f.name for f in dataclasses.fields(cls)}
        parts.append({k: v for k, v in values.items() if k in names})
    return parts[0], parts[1], parts[2]
