"""Checks a value against what its field declares: its type and the range or choices beside it.

One rule for every way a value enters: a flag, a ``--set`` setting, a preset, a sweep's space, a
hand-edited config.json. Floats must be finite (no NaN or infinity) unless a field says otherwise.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from typing import Any


def problem(hint: Any, meta: Mapping[str, Any], value: Any) -> str | None:
    """What is wrong with ``value`` for a field of type ``hint`` with ``meta`` (min, max, min_open, choices,
    finite), in words ("expected a whole number >= 1"), or None when it fits."""
    kind, optional = bare(hint)
    if value is None:
        return None if optional else f"expected {describe(kind, meta)}"
    if typing.get_origin(kind) is typing.Literal:
        choices = typing.get_args(kind)
        return None if value in choices else f"expected one of {', '.join(map(str, choices))}"
    if not of_type(kind, value):
        return f"expected {describe(kind, meta)}"
    if meta.get("choices") and value not in meta["choices"]:
        return f"expected one of {', '.join(map(str, meta['choices']))}"
    if kind in (int, float):
        if not math.isfinite(value) and meta.get("finite", True):
            return f"expected {describe(kind, meta)}"
        low, high = meta.get("min"), meta.get("max")
        if (low is not None and (value < low or (meta.get("min_open") and value == low))) or (
            high is not None and value > high
        ):
            return f"expected {describe(kind, meta)}"
    return None


def bare(hint: Any) -> tuple[Any, bool]:
    """``int | None`` -> (int, True)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else Any), len(args) < len(typing.get_args(hint))
    return hint, False


def of_type(kind: Any, value: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind in (str, dict, list):
        return isinstance(value, kind)
    origin = typing.get_origin(kind)
    return isinstance(value, origin) if isinstance(origin, type) else True


def describe(kind: Any, meta: Mapping[str, Any]) -> str:
    """The values a field takes, in words: "a whole number >= 1", "a finite number > 0", "text"."""
    if meta.get("choices"):
        return f"one of {', '.join(map(str, meta['choices']))}"
    if kind is bool:
        return "true or false"
    if kind in (int, float):
        noun = "a whole number" if kind is int else "a finite number" if meta.get("finite", True) else "a number"
        low, high = meta.get("min"), meta.get("max")
        if low is not None and high is not None:
            return f"{noun} from {low} to {high}" if not meta.get("min_open") else f"{noun} > {low} and <= {high}"
        if low is not None:
            return f"{noun} {'>' if meta.get('min_open') else '>='} {low}"
        if high is not None:
            return f"{noun} <= {high}"
        return noun
    return {str: "text", dict: "an object"}.get(kind, getattr(kind, "__name__", str(kind)))
