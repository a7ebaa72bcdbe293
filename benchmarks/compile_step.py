"""``python compile_step.py RECIPE DATA_DIR``: torch.compile against eager on one recipe's real training step.

Prints one JSON line: eager and compiled milliseconds per step (median of repeats on the same batches),
the first compiled step's seconds (the compile time), and after how many steps compiling pays back,
beside how many steps a default run of the recipe takes.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ignite_lab.core.config import TrainConfig  # noqa: E402
from ignite_lab.core.recipe import to_device  # noqa: E402
from ignite_lab.core.registry import load_recipe  # noqa: E402
from ignite_lab.core.settings import complete_settings  # noqa: E402
from ignite_lab.training.engines import epoch_length  # noqa: E402
from ignite_lab.training.loaders import build_loader, set_epoch  # noqa: E402
from ignite_lab.training.loop import build_parts  # noqa: E402
from ignite_lab.training.session import Process  # noqa: E402

CPU = torch.device("cpu")
STEPS = 15


def batches(recipe_name: str, data_dir: str) -> tuple:
    recipe = load_recipe(recipe_name)
    config = TrainConfig(
        recipe=recipe_name,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        data_dir=data_dir,
        settings=complete_settings(recipe.settings, {}),
    )
    parts, model = build_parts(recipe, config, Process.alone(CPU))
    loader = build_loader(parts.train, config.batch_size, shuffle=True, seed=0, device=CPU)
    set_epoch(loader, 0)
    data = [to_device(b, CPU, parts.channels_last) for _, b in zip(range(STEPS), loader, strict=False)]
    return recipe, parts, model, data, recipe.epochs * (epoch_length(loader, None) or 0)


def timed_steps(model, parts, data) -> tuple[float, float]:
    """(first step seconds, median ms of the following steps)."""

    def step(x, y) -> None:
        parts.optimizer.zero_grad()
        parts.loss_fn(model(x), y).backward()
        parts.optimizer.step()

    start = time.perf_counter()
    step(*data[0])
    first = time.perf_counter() - start
    times = []
    for x, y in data[1:]:
        start = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - start)
    return first, 1000 * statistics.median(times[2:])


def main() -> None:
    recipe, parts, model, data, run_steps = batches(sys.argv[1], sys.argv[2])
    _, eager_ms = timed_steps(model, parts, data)
    compile_s, compiled_ms = timed_steps(torch.compile(model), parts, data)
    gain_ms = eager_ms - compiled_ms
    pays_after = compile_s * 1000 / gain_ms if gain_ms > 0 else None
    print(
        json.dumps(
            {
                "recipe": recipe.name,
                "eager_ms": eager_ms,
                "compiled_ms": compiled_ms,
                "compile_s": compile_s,
                "pays_back_after_steps": pays_after,
                "steps_in_default_run": run_steps,
                "pays_back": pays_after is not None and pays_after < run_steps,
            }
        )
    )


if __name__ == "__main__":
    main()
