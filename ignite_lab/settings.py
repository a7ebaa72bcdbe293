"""A recipe's own hyperparameters: a dataclass whose typed fields are the ``--set KEY=VALUE`` keys."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable
from typing import Any

from ignite_lab.errors import UserError


def setting_fields(settings_cls: type | None) -> list[dataclasses.Field]:
    return list(dataclasses.fields(settings_cls)) if settings_cls else []


def setting_type(settings_cls: type, name: str) -> Any:
    """The declared type of a setting (resolved, so recipes may use postponed annotations)."""
    return typing.get_type_hints(settings_cls)[name]


def describe_settings(settings_cls: type | None) -> list[tuple[str, str, str, str]]:
    """(name, type, default, help) for each setting, for ``--help`` and the README."""
    rows = []
    for f in setting_fields(settings_cls):
        kind = setting_type(settings_cls, f.name)
        if typing.get_origin(kind) is typing.Literal:
            type_name = "|".join(str(choice) for choice in typing.get_args(kind))
        else:
            type_name = getattr(kind, "__name__", str(kind))
        rows.append((f.name, type_name, repr(f.default), f.metadata.get("help", "")))
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
            raise UserError(f"--set {name}={text}: expected {'an integer' if kind is int else 'a number'}") from None
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
        values[key] = parse_value(key, setting_type(settings_cls, key), text)
    return values


def complete_settings(settings_cls: type | None, values: dict[str, Any], where: str = "settings") -> dict[str, Any]:
    """The defaults with ``values`` on top; keys the recipe does not know are an error."""
    fields = {f.name: f for f in setting_fields(settings_cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserError(f"{where}: unknown recipe settings {', '.join(unknown)} (known: {', '.join(fields) or 'none'})")
    return {name: values.get(name, f.default) for name, f in fields.items()}


def make_settings(settings_cls: type | None, values: dict[str, Any]) -> Any:
    return settings_cls(**complete_settings(settings_cls, values)) if settings_cls else None
