"""Command-line flags generated from the config dataclasses, so each flag is declared once (config.py)."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import click


def options(config_cls: type, defaults: dict[str, Any] | None = None) -> list[click.Option]:
    """One ``--flag`` per field of ``config_cls`` whose metadata allows it; ``defaults`` override (a recipe's own)."""
    hints = typing.get_type_hints(config_cls)
    result = []
    for f in dataclasses.fields(config_cls):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        default = (defaults or {}).get(f.name, None if f.default is dataclasses.MISSING else f.default)
        name = "--" + f.name.replace("_", "-")
        kind = bare_type(hints[f.name])
        if kind is bool:
            result.append(click.Option([name], is_flag=True, default=bool(default), help=meta["help"]))
            continue
        result.append(
            click.Option(
                [name],
                type=click_type(kind, meta),
                default=default,
                show_default=default is not None,
                help=meta["help"],
                envvar=meta["envvar"],
                metavar=meta["metavar"],
            )
        )
    return result


def bare_type(hint: Any) -> Any:
    """``int | None`` -> ``int``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return hint


def click_type(kind: Any, meta: dict[str, Any]) -> Any:
    if meta["choices"]:
        return click.Choice(meta["choices"])
    if kind is int:
        return click.IntRange(min=meta["min"], max=meta["max"]) if meta["min"] is not None else int
    if kind is float:  # a range only where one is declared: an open one shows as "x<=None" in --help
        bounded = meta["min"] is not None or meta["max"] is not None
        return click.FloatRange(min=meta["min"], max=meta["max"], min_open=meta["min_open"]) if bounded else float
    if meta["path"]:
        return click.Path(resolve_path=meta["path"] == "absolute")  # a folder, or a file (a table, a text)
    return str
