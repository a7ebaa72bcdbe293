"""The run configuration (saved as config.json) and typed recipe settings set by ``--set key=value``."""

from __future__ import annotations

import dataclasses
import difflib
import json
import typing
from pathlib import Path
from typing import Any

from ignite_lab.errors import UserError

LR_SCHEDULES = ("none", "step", "cosine", "plateau")


@dataclasses.dataclass
class RunConfig:
    """Everything that defines a run; the recipe's own hyperparameters live in ``settings``."""

    recipe: str
    epochs: int
    batch_size: int
    lr: float
    device: str = "auto"
    seed: int = 0
    data_dir: str | None = None
    output_dir: str = "runs"
    resume: str | None = None
    patience: int | None = None
    lr_schedule: str = "none"
    amp: bool = False
    limit_batches: int | None = None
    eval_batch_size: int | None = None
    deterministic: bool = False
    checkpoint_every: int | None = None
    nproc_per_node: int | None = None
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    visdom: bool = False
    visdom_server: str = "http://127.0.0.1"
    visdom_port: int = 8097
    visdom_env: str | None = None
    run_dir: str | None = None  # set by the toolkit: where a recipe keeps files bound to the run (graphs, vocabularies)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        """Read a saved config.json; a hand-edited or damaged file is a clear error."""
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read run config {path}: {exc}") from None
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: Any, path: str) -> RunConfig:
        """Validate a config read from ``path`` (a config.json or a checkpoint)."""
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(raw, dict) or not {"recipe", "epochs", "batch_size", "lr"} <= raw.keys():
            raise UserError(f"{path} is not an ignite-lab config.json (recipe, epochs, batch_size and lr are required)")
        unknown = sorted(set(raw) - names)
        if unknown:
            raise UserError(f"{path}: unknown keys {', '.join(unknown)}")
        config = cls(**raw)
        if not isinstance(config.settings, dict):
            raise UserError(f"{path}: 'settings' must be an object of recipe settings")
        for name in ("epochs", "batch_size"):
            value = getattr(config, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"{path}: {name} must be a positive integer, got {value!r}")
        return config


def setting_fields(settings_cls: type) -> list[dataclasses.Field]:
    return list(dataclasses.fields(settings_cls)) if settings_cls else []


def _field_type(settings_cls: type, field: dataclasses.Field) -> Any:
    return typing.get_type_hints(settings_cls)[field.name]


def describe_settings(settings_cls: type) -> list[tuple[str, str, str, str]]:
    """(name, type, default, help) for each setting, for ``--help`` and the README."""
    rows = []
    for field in setting_fields(settings_cls):
        kind = _field_type(settings_cls, field)
        if typing.get_origin(kind) is typing.Literal:
            type_name = "|".join(str(choice) for choice in typing.get_args(kind))
        else:
            type_name = getattr(kind, "__name__", str(kind))
        rows.append((field.name, type_name, repr(field.default), field.metadata.get("help", "")))
    return rows


def _parse_value(name: str, kind: Any, text: str) -> Any:
    if typing.get_origin(kind) is typing.Literal:
        choices = typing.get_args(kind)
        for choice in choices:
            if str(choice) == text:
                return choice
        raise UserError(f"--set {name}={text}: expected one of {', '.join(map(str, choices))}")
    if kind is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise UserError(f"--set {name}={text}: expected true or false")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise UserError(f"--set {name}={text}: expected {'an integer' if kind is int else 'a number'}") from None
    if kind is str:
        return text
    raise UserError(f"--set {name}: settings of type {kind} cannot be set from the command line")


def parse_settings(settings_cls: type, pairs: typing.Iterable[str], base: dict[str, Any] | None = None) -> dict:
    """Apply ``key=value`` strings on top of ``base`` (or the defaults), typed by the settings dataclass."""
    fields = {f.name: f for f in setting_fields(settings_cls)}
    values = {name: f.default for name, f in fields.items()}
    values.update(base or {})
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep:
            raise UserError(f"--set {pair!r}: expected KEY=VALUE")
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            known = ", ".join(fields) or "none"
            raise UserError(f"--set {key}: unknown setting for this recipe.{hint} Known settings: {known}")
        values[key] = _parse_value(key, _field_type(settings_cls, fields[key]), text.strip())
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserError(f"unknown recipe settings {', '.join(unknown)} (known: {', '.join(fields) or 'none'})")
    return values


def make_settings(settings_cls: type, values: dict[str, Any]) -> Any:
    return settings_cls(**values) if settings_cls else None
