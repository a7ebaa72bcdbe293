"""The fault-injection campaign behind ``test_campaign.py`` (quick tier) and ``make soak`` (long tier).

One trial: a configuration, a list of faults (a signal at an exact phase and batch, or at a random
moment), and the same ``--resume auto`` command re-queued until it exits 0, as a scheduler would,
optionally with a twin job started beside each attempt. Then the promise is checked against an
uninterrupted run of the same configuration: bit-identical final weights, the same metric records
once each, no temporary file, exactly one last checkpoint, a best checkpoint that exists, a
completed summary, and a further re-run that does nothing.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "tests" / "recipe_files" / "faults.py"
SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1", "SIGKILL")
GRACEFUL_EXIT = 75  # interrupted with its state saved
BUSY_EXIT = 3  # a twin found the run taken


@dataclass(frozen=True)
class Config:
    """What varies the run's checkpoint and data pattern: 10 batches an epoch, or ``limit`` of them."""

    epochs: int = 3
    checkpoint_every: int | None = None
    limit: int | None = None
    schedule: str | None = None
    preset: str | None = None

    @property
    def batches(self) -> int:
        return self.limit or 10

    def args(self) -> list[str]:
        args = ["--epochs", str(self.epochs), "--seed", "3", "--deterministic"]
        args += ["--lr-schedule", self.schedule] if self.schedule else []
        args += ["--preset", self.preset] if self.preset else []
        if self.checkpoint_every:
            args += ["--checkpoint-every", str(self.checkpoint_every)]
        if self.limit:
            args += ["--limit-batches", str(self.limit)]
        return args


@dataclass(frozen=True)
class Fault:
    """A signal at an exact point: phase train (batch 1..batches of ``epoch``), val or test (batch 1..2)."""

    phase: str
    epoch: int
    batch: int
    signal: str

    def key(self) -> tuple:
        """Where the fault sits on the run's timeline (test comes after every epoch)."""
        epoch = 10**6 if self.phase == "test" else self.epoch
        return (epoch, {"train": 0, "val": 1, "test": 2}[self.phase], self.batch)


@dataclass
class Report:
    attempts: int = 0
    kills: int = 0  # signals delivered (faults fired and random kills)
    resumes: int = 0
    busy: int = 0  # twin jobs told the run was taken
    problems: list[str] = field(default_factory=list)


def command(config: Config, out: Path) -> list[str]:
    return [sys.executable, "-m", "ignite_lab", "run", str(RECIPE), *config.args(), "--output-dir", str(out)]


def environment(faults_file: Path | None, delay: float = 0.0) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "IGNITE_LAB_FAULTS"}
    env.update(OMP_NUM_THREADS="1", IGNITE_LAB_STEP_DELAY=str(delay), PYTHONUNBUFFERED="1")
    if faults_file is not None:
        env["IGNITE_LAB_FAULTS"] = str(faults_file)
    return env


def reference(config: Config, out: Path) -> Path:
    """The uninterrupted run of ``config`` (its run directory), made once under ``out``."""
    if (out / "faults").is_dir():
        (run,) = (out / "faults").iterdir()
        return run
    proc = subprocess.run(command(config, out), env=environment(None), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (run,) = (out / "faults").iterdir()
    return run


def requeue(
    config: Config,
    out: Path,
    faults: list[Fault] = (),
    random_kills: list[tuple[float, str]] = (),
    twin: bool = False,
    delay: float = 0.0,
) -> Report:
    """Start the same ``--resume auto`` command until it exits 0 (bounded), firing ``faults`` in timeline order
    and sending each random kill (seconds after an attempt starts, signal) to one attempt each."""
    out.mkdir(parents=True, exist_ok=True)
    faults_file = out.parent / f"{out.name}.faults.json"
    faults_file.write_text(json.dumps([[f.phase, f.epoch, f.batch, f.signal] for f in sorted(faults, key=Fault.key)]))
    args = [*command(config, out), "--resume", "auto"]
    env = environment(faults_file, delay)
    report, kills = Report(), list(random_kills)
    for _ in range(len(faults) + len(kills) + 4):
        report.attempts += 1
        jobs = [subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)]
        if twin:
            jobs.append(subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        if kills:
            after, name = kills.pop(0)
            try:
                jobs[0].wait(timeout=after)
            except subprocess.TimeoutExpired:
                jobs[0].send_signal(getattr(signal, name))
                report.kills += 1
        codes = [(job.wait(timeout=300), job.stderr.read()) for job in jobs]
        report.resumes += sum("resuming" in err for _, err in codes)
        report.busy += sum(code == BUSY_EXIT for code, _ in codes)
        for code, err in codes:
            if code not in (0, GRACEFUL_EXIT, BUSY_EXIT, -signal.SIGKILL, -signal.SIGTERM, -signal.SIGINT):
                report.problems.append(f"exit {code}: {err.strip().splitlines()[-1:] if err.strip() else ''}")
            if "Traceback" in err:
                report.problems.append(f"a traceback: {err.strip().splitlines()[-1]}")
        if any(code == 0 for code, _ in codes) and not kills:
            break
    report.kills += len(faults) - len(json.loads(faults_file.read_text()))
    final = subprocess.run(args, env=environment(None), capture_output=True, text=True, timeout=300)
    if final.returncode != 0 or "nothing to do" not in final.stderr:
        report.problems.append(f"the re-run after completion did something: exit {final.returncode}")
    return report


def records(run: Path) -> list[tuple]:
    """metrics.jsonl without the wall-clock field, in order."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [(r["epoch"], r["iteration"], r["split"], json.dumps(r["metrics"], sort_keys=True)) for r in rows]


def check(out: Path, expected: Path) -> list[str]:
    """What breaks the promise in the run under ``out``, against the uninterrupted run ``expected``."""
    runs = [p for p in (out / "faults").iterdir() if p.is_dir()]
    if len(runs) != 1:
        return [f"{len(runs)} run directories"]
    run, problems = runs[0], []
    summary = json.loads((run / "summary.json").read_text())
    if summary.get("status") != "completed" or not summary.get("test"):
        problems.append(f"summary says {summary.get('status')} with test {summary.get('test')}")
    temporaries = [p.name for p in run.rglob(".*") if ".tmp" in p.name]
    if temporaries:
        problems.append(f"temporaries left: {temporaries}")
    lasts = sorted(p.name for p in (run / "checkpoints").glob("last_checkpoint_*.pt"))
    if len(lasts) != 1:
        problems.append(f"{len(lasts)} last checkpoints: {lasts}")
        return problems
    last = torch.load(run / "checkpoints" / lasts[0], weights_only=True)
    named = sorted(name for _, name in last["best_checkpointer"]["_saved"])
    bests = sorted(p.name for p in (run / "checkpoints").glob("best_checkpoint_*.pt"))
    if bests != named:
        problems.append(f"best checkpoints on disk {bests}, the last checkpoint names {named}")
    (want,) = (expected / "checkpoints").glob("last_checkpoint_*.pt")
    weights = torch.load(want, weights_only=True)["model"]
    if any(not torch.equal(weights[k], last["model"][k]) for k in weights):
        problems.append("final weights differ from the uninterrupted run's")
    if records(run) != records(expected):
        problems.append(f"metric records differ: {len(records(run))} against {len(records(expected))}")
    if summary.get("test") != json.loads((expected / "summary.json").read_text())["test"]:
        problems.append("test metrics differ")
    return problems


def timeline(config: Config) -> list[tuple[str, int, int]]:
    """Every point a fault can sit at: each training batch, each validation batch, each test batch."""
    epochs = range(1, config.epochs + 1)
    points = [("train", e, b) for e in epochs for b in range(1, config.batches + 1)]
    return points + [("val", e, b) for e in epochs for b in (1, 2)] + [("test", 0, 1), ("test", 0, 2)]


def random_faults(rng: random.Random, config: Config, count: int) -> list[Fault]:
    """``count`` faults at distinct random points of the timeline."""
    return [Fault(*point, rng.choice(SIGNALS)) for point in rng.sample(timeline(config), count)]
