"""Search spaces on the command line, typed and checked like ``--set`` values, as Optuna distributions.

    log(LOW,HIGH)        log-uniform between LOW and HIGH (integers for an int setting)
    (LOW,HIGH)           uniform between LOW and HIGH (integers for an int setting)
    (LOW,HIGH,STEP)      uniform on a grid of STEP
    [A,B,C]              one of these values
    anything else        a fixed value for every trial (as --set)

Every value is parsed with the setting's own type (bool, int, float, str, or one of its choices), so a
wrong key or a space that does not fit the setting is one clear error before any trial starts.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ignite_lab.core.checks import problem
from ignite_lab.core.config import TrainConfig
from ignite_lab.core.errors import UserError
from ignite_lab.core.settings import check_setting, parse_value, setting_type, split_pair

RANGE = re.compile(r"^(log)?\(([^,()]+),([^,()]+)(?:,([^,()]+))?\)$")
CHOICES = re.compile(r"^\[(.*)\]$")


@dataclass(frozen=True)
class Space:
    """One searched name: a TrainConfig field (lr, batch_size) or a recipe setting ("settings.hidden")."""

    name: str
    kind: Any  # the Python type (or Literal) values must have
    low: Any = None
    high: Any = None
    step: Any = None
    log: bool = False
    choices: tuple | None = None

    def suggest(self, trial: Any) -> Any:
        """This space's value for an Optuna trial."""
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind is int:
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)


Check = Callable[[Any, str], Any]  # (value, where) -> the value, or a UserError saying what the field accepts


def parse_space(name: str, kind: Any, text: str, flag: str, check: Check) -> Space | Any:
    """A Space, or the plain typed value when ``text`` is not a space; every value it can give is checked
    against the field's declared range, so a space that cannot train is refused before any trial."""
    text = text.strip()
    if match := CHOICES.match(text):
        items = [item.strip() for item in match.group(1).split(",") if item.strip()]
        if not items:
            raise UserError(f"{flag} {text}: a list of choices needs at least one value")
        values = tuple(check(parse_value(name, kind, item), f"{flag} {text}") for item in items)
        return Space(name, kind, choices=values)
    if match := RANGE.match(text.replace(" ", "")):
        return numeric_range(name, kind, match, flag, text, check)
    if text.startswith(("(", "[", "log(")):
        raise UserError(f"{flag} {text}: not a search space; write log(LOW,HIGH), (LOW,HIGH), (LOW,HIGH,STEP) or [A,B]")
    return check(parse_value(name, kind, text), f"{flag} {text}")


def numeric_range(name: str, kind: Any, match: re.Match, flag: str, text: str, check: Check) -> Space:
    if kind not in (int, float):
        shown = (
            "|".join(map(str, typing.get_args(kind))) if typing.get_origin(kind) is typing.Literal else kind.__name__
        )
        raise UserError(f"{flag} {text}: {name} is {shown}; a range needs a number setting (use [A,B] to choose)")
    log, low, high, step = bool(match.group(1)), *(match.group(i) for i in (2, 3, 4))
    low, high = (check(parse_value(name, kind, end), f"{flag} {text}") for end in (low, high))
    step = parse_value(name, kind, step) if step else None
    if step is not None and not (math.isfinite(step) and step > 0):
        raise UserError(f"{flag} {text}: STEP must be a finite number above 0")
    if not low < high:
        raise UserError(f"{flag} {text}: LOW must be below HIGH")
    if log and low <= 0:
        raise UserError(f"{flag} {text}: a log range needs LOW > 0")
    if log and step:
        raise UserError(f"{flag} {text}: a log range takes no STEP")
    return Space(name, kind, low, high, step, log)


def parse_spaces(settings_cls: type | None, pairs: list[str], flags: dict[str, tuple[Any, str | None]]) -> tuple:
    """(spaces, fixed settings, fixed flags) from ``--set KEY=SPACE`` pairs and ``flags`` {name: (type, text)}."""
    spaces, fixed_settings, fixed_flags = [], {}, {}
    for pair in pairs:
        key, text = split_pair(pair, settings_cls)

        def check(value: Any, where: str, key: str = key) -> Any:
            return check_setting(settings_cls, key, value, where)

        parsed = parse_space(f"settings.{key}", setting_type(settings_cls, key), text, f"--set {key}=", check)
        if isinstance(parsed, Space):
            spaces.append(parsed)
        else:
            fixed_settings[key] = parsed
    for name, (kind, text) in flags.items():
        if text is None:
            continue
        parsed = parse_space(name, kind, text, f"--{name.replace('_', '-')}", check_flag(name))
        if isinstance(parsed, Space):
            spaces.append(parsed)
        else:
            fixed_flags[name] = parsed
    return spaces, fixed_settings, fixed_flags


def check_flag(name: str) -> Check:
    """The check of a TrainConfig field's values (its declared type and range), for a searched flag."""
    field = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    hint = typing.get_type_hints(TrainConfig)[name]

    def check(value: Any, where: str) -> Any:
        wrong = problem(hint, field.metadata, value)
        if wrong:
            raise UserError(f"{where}: {wrong}, got {value!r}")
        return value

    return check
