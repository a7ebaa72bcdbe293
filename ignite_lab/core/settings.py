"""A recipe's own hyperparameters: a dataclass whose typed fields are the ``--set KEY=VALUE`` keys.

Each field is declared once with ``setting(default, help, min=..., max=...)``: its type, default, help
and range drive ``--help``, ``--set``, presets, sweeps and the check of a saved config.json alike.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable
from typing import Any

from ignite_lab.core.checks import describe, problem
from ignite_lab.core.errors import UserError


def setting(
    default: Any,
    help: str = "",
    *,
    min: float | None = None,
    max: float | None = None,
    min_open: bool = False,
    finite: bool = True,
) -> Any:
    """A recipe setting: its default, its help and the values it accepts (floats are finite unless
    ``finite=False``), checked wherever a value enters."""
    meta = {"help": help, "min": min, "max": max, "min_open": min_open, "finite": finite}
    return dataclasses.field(default=default, metadata=meta)


def check_setting(settings_cls: type, name: str, value: Any, where: str) -> Any:
    """``value`` if it fits setting ``name``'s type and range, else a clear error naming ``where``."""
    f = next(f for f in setting_fields(settings_cls) if f.name == name)
    wrong = problem(setting_type(settings_cls, name), f.metadata, value)
    if wrong:
        raise UserError(f"{where}: {wrong}, got {value!r}")
    return value


def setting_fields(settings_cls: type | None) -> list[dataclasses.Field]:
    return list(dataclasses.fields(settings_cls)) if settings_cls else []


def setting_type(settings_cls: type, name: str) -> Any:
    """The declared type of a setting (resolved, so recipes may use postponed annotations)."""
    return typing.get_type_hints(settings_cls)[name]


def describe_settings(settings_cls: type | None) -> list[tuple[str, str, str, str]]:
    """(name, type, default, help) for each setting, for ``--help`` and the README; a range is in the help."""
    rows = []
    for f in setting_fields(settings_cls):
        kind = setting_type(settings_cls, f.name)
        if typing.get_origin(kind) is typing.Literal:
            type_name = "|".join(str(choice) for choice in typing.get_args(kind))
        else:
            type_name = getattr(kind, "__name__", str(kind))
        help_ = f.metadata.get("help", "")
        if kind in (int, float) and (f.metadata.get("min") is not None or f.metadata.get("max") is not None):
            help_ = f"{help_} ({describe(kind, f.metadata)})"
        rows.append((f.name, type_name, repr(f.default), help_))
    return rows


def parse_value(name: str, kind: Any, text: str) -> Any:
    """``text`` as a value of the setting's type, or a clear error naming the setting."""
    if typing.get_origin(kind) is typing.Literal:
        for choice in typing.get_args(kind):
            if str(choice) == text:
                return choice
        raise UserError(f"--set {name}={text}: expected one of {', '.join(map(str, typing.get_args(kind)))}")
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
            raise UserError(f"--set {name}={text}: expected {describe(kind, {})}") from None
    if kind is str:
        return text
    raise UserError(f"--set {name}: settings of type {kind} cannot be set from the command line")


def split_pair(pair: str, settings_cls: type | None) -> tuple[str, str]:
    """``KEY=VALUE`` -> (key, value text), the key checked against the recipe's settings (did-you-mean)."""
    key, sep, text = pair.partition("=")
    key = key.strip()
    if not sep:
        raise UserError(f"--set {pair!r}: expected KEY=VALUE")
    names = [f.name for f in setting_fields(settings_cls)]
    if key not in names:
        close = difflib.get_close_matches(key, names, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UserError(
            f"--set {key}: unknown setting for this recipe.{hint} Known settings: {', '.join(names) or 'none'}"
        )
    return key, text.strip()


def parse_settings(settings_cls: type | None, pairs: Iterable[str]) -> dict[str, Any]:
    """Only the settings given as ``key=value`` strings, typed by the settings dataclass."""
    values = {}
    for pair in pairs:
        key, text = split_pair(pair, settings_cls)
        value = parse_value(key, setting_type(settings_cls, key), text)
        values[key] = check_setting(settings_cls, key, value, f"--set {key}={text}")
    return values


def complete_settings(settings_cls: type | None, values: dict[str, Any], where: str = "settings") -> dict[str, Any]:
    """The defaults with ``values`` on top; keys the recipe does not know are an error."""
    fields = {f.name: f for f in setting_fields(settings_cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserError(f"{where}: unknown recipe settings {', '.join(unknown)} (known: {', '.join(fields) or 'none'})")
    for name, value in values.items():
        check_setting(settings_cls, name, value, f"{where}: setting {name}")
    return {name: values.get(name, f.default) for name, f in fields.items()}


def make_settings(settings_cls: type | None, values: dict[str, Any]) -> Any:
    return settings_cls(**complete_settings(settings_cls, values)) if settings_cls else None
