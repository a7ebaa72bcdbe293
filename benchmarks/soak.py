"""``make soak``: the long tier of the fault-injection campaign; rewrites SOAK.md and SOAK.json.

For each configuration (periodic checkpoints dividing the epoch or not, ``--limit-batches``), trials of
random faults are run until the campaign has delivered ``--kills`` signals: exact points (a training,
validation or test batch) with SIGINT, SIGTERM, SIGUSR1 or SIGKILL, random moments (SIGKILL or SIGTERM
at any time after the start: importing, building, training, saving, testing, writing the summary), and
in some trials a twin job started beside every attempt. Each trial re-queues the same ``--resume auto``
command until it exits 0 and is then checked against an uninterrupted run (tests/campaign.py).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench import machine  # noqa: E402
from campaign import Config, check, random_faults, reference, requeue  # noqa: E402

from ignite_lab.outputs.tables import markdown  # noqa: E402

CONFIGS = [
    Config(epochs=3),
    Config(epochs=3, checkpoint_every=5),  # divides the epoch of 10 batches
    Config(epochs=3, checkpoint_every=3),  # does not
    Config(epochs=2, checkpoint_every=10),  # the epoch itself
    Config(epochs=3, limit=6),
    Config(epochs=3, checkpoint_every=4, limit=6),
]
STEP_DELAY = 0.02  # seconds a forward pass: a run lasts long enough for random moments to land everywhere


def trial(rng: random.Random, config: Config, ref: Path, folder: Path) -> dict:
    faults = random_faults(rng, config, rng.randint(0, 3))
    kills = [(rng.uniform(0.5, 9.0), rng.choice(["SIGKILL", "SIGTERM"])) for _ in range(rng.randint(0, 2))]
    if not faults and not kills:
        kills = [(rng.uniform(0.5, 9.0), "SIGKILL")]
    twin = rng.random() < 0.3
    report = requeue(config, folder / "out", faults, kills, twin=twin, delay=STEP_DELAY)
    problems = report.problems + check(folder / "out", ref)
    return {
        "config": str(config),
        "faults": [[f.phase, f.epoch, f.batch, f.signal] for f in faults],
        "random_kills": kills,
        "twin": twin,
        "attempts": report.attempts,
        "kills": report.kills,
        "resumes": report.resumes,
        "busy": report.busy,
        "problems": problems,
    }


def campaign(kills: int, seed: int, budget_s: float) -> list[dict]:
    rng, trials, start = random.Random(seed), [], time.monotonic()
    with tempfile.TemporaryDirectory() as root:
        refs = {c: reference(c, Path(root) / f"ref{i}") for i, c in enumerate(CONFIGS)}
        while sum(t["kills"] for t in trials) < kills and time.monotonic() - start < budget_s:
            config = CONFIGS[len(trials) % len(CONFIGS)]
            with tempfile.TemporaryDirectory(dir=root) as folder:
                trials.append(trial(rng, config, refs[config], Path(folder)))
            last = trials[-1]
            print(
                f"trial {len(trials)}: {last['config']} kills {last['kills']} "
                f"problems {last['problems'] or 'none'} (total kills {sum(t['kills'] for t in trials)})",
                flush=True,
            )
    return trials


def table(trials: list[dict]) -> str:
    rows = []
    for config in dict.fromkeys(t["config"] for t in trials):
        mine = [t for t in trials if t["config"] == config]
        signals = Counter(f[3] for t in mine for f in t["faults"])
        signals += Counter(k[1] for t in mine for k in t["random_kills"])
        rows.append(
            [
                config.removeprefix("Config"),
                len(mine),
                sum(t["kills"] for t in mine),
                ", ".join(f"{name} {n}" for name, n in sorted(signals.items())),
                sum(t["resumes"] for t in mine),
                sum(t["twin"] for t in mine),
                sum(t["busy"] for t in mine),
                sum(bool(t["problems"]) for t in mine),
            ]
        )
    headers = ["configuration", "trials", "kills", "signals drawn", "resumes", "twin trials", "twins refused", "broken"]
    return markdown(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200, help="Signals to deliver in all.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-min", type=float, default=90.0, help="Stop starting trials after this long.")
    args = parser.parse_args()
    started = time.monotonic()
    trials = campaign(args.kills, args.seed, args.budget_min * 60)
    broken = [t for t in trials if t["problems"]]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    lines = [
        "# Soak: the fault-injection campaign",
        "",
        "Written by `make soak` (benchmarks/soak.py); every figure below comes from that run.",
        "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Command: `make soak` (--kills {args.kills} --seed {args.seed}) at commit {commit.stdout.strip()}, "
        f"{(time.monotonic() - started) / 60:.0f} min",
        "",
        __doc__.split("\n\n", 1)[1].strip().replace("\n", " "),
        "'broken' counts trials with any of: a run not completed, weights or metric records or test metrics that "
        "differ from the uninterrupted run, a temporary file left, other than one last checkpoint, a best "
        "checkpoint the last one does not name, an exit status other than 0, 3 (busy), 75 (interrupted) or a "
        "signal's, a traceback, or a re-run after completion that did anything.",
        "",
        "'kills' counts signals delivered; 'signals drawn' counts the ones planned, of which a random moment may "
        "fall after the run had finished. 'twins refused' counts twin jobs that exited 3 because the other held "
        "the run.",
        "",
        table(trials),
        "",
        f"Total: {len(trials)} trials, {sum(t['kills'] for t in trials)} kills, "
        f"{sum(t['resumes'] for t in trials)} resumes, {len(broken)} broken.",
    ]
    for t in broken:
        lines.append(f"- broken: {t['config']} faults {t['faults']} kills {t['random_kills']}: {t['problems']}")
    (REPO / "SOAK.md").write_text("\n".join(lines) + "\n")
    (REPO / "SOAK.json").write_text(json.dumps(trials, indent=1) + "\n")
    print("\n".join(lines))
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
