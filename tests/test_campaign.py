"""Property-based tests of the crash and input promises (Hypothesis, derandomized so CI is repeatable).

The fault campaign here is the quick tier: a few generated scenarios of configuration and kill points,
each re-queued to completion and checked against an uninterrupted run. ``make soak`` runs the long tier
(benchmarks/soak.py) and writes SOAK.md.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import typing
from pathlib import Path

from campaign import SIGNALS, Config, Fault, check, requeue, timeline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ignite_lab.core.config import TrainConfig
from ignite_lab.core.errors import UserError
from ignite_lab.core.registry import load_recipe, recipe_names
from ignite_lab.core.settings import complete_settings, parse_settings, setting_fields, setting_type

QUICK = int(os.environ.get("IGNITE_LAB_CAMPAIGN_EXAMPLES", "2"))
CONFIGS = st.builds(
    Config,
    epochs=st.sampled_from([2, 3]),
    checkpoint_every=st.sampled_from([None, 3, 5, 10]),  # dividing the epoch, not, and the epoch itself
    limit=st.sampled_from([None, 6]),
    schedule=st.sampled_from([None, "step", "cosine", "onecycle"]),  # per epoch, per iteration, warm-up
    preset=st.sampled_from([None, "decay"]),  # a preset that names its lr, re-sent by every re-queue
)


@st.composite
def scenarios(draw) -> tuple[Config, list[Fault]]:
    config = draw(CONFIGS)
    points = draw(st.lists(st.sampled_from(timeline(config)), min_size=1, max_size=3, unique=True))
    return config, [Fault(*point, draw(st.sampled_from(SIGNALS))) for point in points]


@settings(
    max_examples=QUICK,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenarios())
def test_any_kills_then_requeues_end_in_the_uninterrupted_run(references, scenario):
    config, faults = scenario
    with tempfile.TemporaryDirectory() as folder:
        report = requeue(config, Path(folder) / "out", faults)
        assert report.problems == [], (config, faults, report)
        assert report.kills == len(faults), (config, faults, report)
        assert check(Path(folder) / "out", references(config)) == [], (config, faults)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=4,
)
VALID = {"recipe": "xor", "epochs": 2, "batch_size": 4, "lr": 0.1}


def whole(low: int | None = None, optional: bool = False):
    return lambda v: (optional and v is None) or (type(v) is int and (low is None or v >= low))


def positive(v) -> bool:
    return type(v) in (int, float) and math.isfinite(v) and v > 0


# What a config that loads may hold, written out by hand (not derived from the code under test).
ACCEPTABLE = {
    "epochs": whole(1),
    "batch_size": whole(1),
    "lr": positive,
    "seed": whole(),
    "data_dir": lambda v: v is None or type(v) is str,
    "lr_schedule": lambda v: v in ("none", "step", "cosine", "onecycle", "plateau", "exponential"),
    "lr_gamma": positive,
    "preset": lambda v: type(v) is str,
    "test_checkpoint": lambda v: v in ("best", "last"),
    "patience": whole(1, optional=True),
    "stop_at": lambda v: v is None or (type(v) in (int, float) and math.isfinite(v)),
    "precision": lambda v: v in ("32", "bf16", "16"),
    "eval_batch_size": whole(1, optional=True),
    "limit_batches": whole(1, optional=True),
    "deterministic": lambda v: type(v) is bool,
    "settings": lambda v: type(v) is dict,
    "run_dir": lambda v: v is None or type(v) is str,
    "purpose": lambda v: v == "train",  # whatever a file says, a config read back trains
}
FIELDS = sorted(ACCEPTABLE)


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(field=st.sampled_from(FIELDS), value=JSON_VALUES)
def test_any_value_in_a_hand_edited_config_is_named_or_fits(field, value):
    assert set(FIELDS) == set(TrainConfig.__dataclass_fields__) - {"recipe"}  # a new field needs its line above
    raw = json.loads(json.dumps({**VALID, field: value}))  # through JSON, as a file would hold it
    try:
        config = TrainConfig.from_dict(raw, "config.json")
    except UserError as exc:
        assert exc.message.startswith(f"config.json: {field}: expected ") and "Traceback" not in exc.message
        return
    assert ACCEPTABLE[field](getattr(config, field)), (field, value)
    assert TrainConfig.from_dict(json.loads(config.to_json()), "again") == config  # what loads, saves and loads


SETTINGS = [(name, f.name) for name in recipe_names() for f in setting_fields(load_recipe(name).settings)]


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(setting=st.sampled_from(SETTINGS), value=JSON_VALUES, text=st.text(max_size=8))
def test_any_recipe_setting_value_is_named_or_fits(setting, value, text):
    recipe, name = setting
    settings_cls = load_recipe(recipe).settings
    for attempt in (
        lambda: complete_settings(settings_cls, {name: value}, where="config.json"),
        lambda: parse_settings(settings_cls, [f"{name}={text}"]),
    ):
        try:
            accepted = attempt()[name]
        except UserError as exc:
            assert name in exc.message and "expected" in exc.message, exc.message
            continue
        kind = setting_type(settings_cls, name)
        if kind in (int, float):  # a number of the right kind, finite, inside the range its help states
            assert type(accepted) is int or (kind is float and type(accepted) is float), (setting, accepted)
            assert math.isfinite(accepted), (setting, accepted)
        else:
            assert type(accepted) is kind or typing.get_origin(kind) is typing.Literal, (setting, accepted)
