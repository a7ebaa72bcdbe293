"""Sweeps on Optuna: a SQLite study here, pruning by Ignite events, kill -9 and continue, two processes on a
real PostgreSQL study, and the errors a person can make."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import RECIPE_FILES, free_port, ignite_lab, run_process
from test_bad_input import assert_clean_error

from ignite_lab.cli.commands import parse_request, run_command
from ignite_lab.core.config import TrainConfig
from ignite_lab.core.registry import load_recipe
from ignite_lab.core.settings import complete_settings


def lab(*args) -> list[str]:
    return [sys.executable, "-m", "ignite_lab", *map(str, args)]


def study_trials(url: str, name: str = "sweep") -> list:
    import optuna

    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def states(trials) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def test_a_six_trial_sweep_beats_its_worst_trial_and_writes_table_and_pictures(tmp_path):
    """Two workers on one machine (--jobs 2) on the default SQLite study."""
    # a space where every trial learns something in 15 epochs (XOR stays at chance below lr 0.1 or so, and
    # six trials all there once gave six equal scores), so the scores differ
    args = ["sweep", "xor", "--trials", "6", "--epochs", "15", "--lr", "(0.05,0.5)", "--set", "hidden=[8,16]"]
    proc = run_process(*lab(*args, "--pruner", "none", "--jobs", "2", "--output-dir", tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "is gone" not in proc.stderr  # a live worker's trial is never taken for a dead one's

    folder = tmp_path / "xor" / "sweep-sweep"
    trials = study_trials(f"sqlite:///{folder / 'study.db'}")
    assert states(trials) == {"COMPLETE": 6}
    values = [t.value for t in trials]
    assert max(values) > min(values)  # the search found something better than its worst trial
    assert "reproduce it with: ignite-lab run xor" in proc.stdout and "best: trial" in proc.stdout
    for picture in ("history", "importances", "parallel_coordinates"):
        assert (folder / f"{picture}.png").read_bytes()[:4] == b"\x89PNG", picture
    for trial in trials:  # each trial is an ordinary run directory
        summary = json.loads((folder / f"trial-{trial.number}" / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["best_val"]["accuracy"] == pytest.approx(trial.value)
        config = json.loads((folder / f"trial-{trial.number}" / "config.json").read_text())
        assert config["lr"] == pytest.approx(trial.params["lr"])
        assert config["settings"]["hidden"] == trial.params["settings.hidden"]


def test_a_hopeless_trial_is_pruned_after_an_epoch_and_says_so(tmp_path):
    """A real study whose earlier trials reached 0.9 by epoch 2; a real xor run at lr 1e-7 cannot: pruned."""
    import optuna

    from ignite_lab.core.config import DashboardConfig, LaunchConfig, TrainConfig
    from ignite_lab.core.registry import load_recipe
    from ignite_lab.tools.spaces import Space
    from ignite_lab.tools.study import Sweep, open_study
    from ignite_lab.tools.sweep import run_trial
    from ignite_lab.training.launch import Request

    config = TrainConfig(recipe="xor", epochs=6, batch_size=2, lr=1e-7, settings={"hidden": 4})
    request = Request("xor", config, set(), LaunchConfig(output_dir=str(tmp_path)), DashboardConfig())
    sweep = Sweep(request, [Space("lr", float, choices=(1e-7,))], 5, "prune", None, 1, "median", None)
    study = open_study(sweep, create=True)
    for _ in range(5):
        done = {1: 0.9, 2: 0.92, 3: 0.93, 4: 0.94, 5: 0.95, 6: 0.96}
        study.add_trial(optuna.create_trial(value=0.96, params={}, distributions={}, intermediate_values=done))
    trial = study.ask()
    outcome = run_trial(sweep, load_recipe("xor"), trial)
    assert outcome.status == "pruned" and outcome.state.name == "PRUNED"
    summary = json.loads((sweep.folder / f"trial-{trial.number}" / "summary.json").read_text())
    assert summary["status"] == "pruned" and summary["epochs_completed"] < 6
    assert "pruned by Optuna" in summary["message"]

    assert summary["history"][-1]["event"] == "pruned"


def test_kill_9_mid_trial_then_the_same_command_completes_the_study(tmp_path):
    command = lab(
        "sweep",
        RECIPE_FILES / "slow.py",
        "--trials",
        "3",
        "--epochs",
        "2",
        "--lr",
        "log(1e-3,1e-1)",
        "--pruner",
        "none",
        "--output-dir",
        tmp_path,
    )
    folder = tmp_path / "slow" / "sweep-sweep"
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and not glob.glob(str(folder / "trial-1" / "checkpoints" / "last_*.pt")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    url = f"sqlite:///{folder / 'study.db'}"
    assert states(study_trials(url)).get("RUNNING") == 1, "the kill landed inside trial 1"
    again = run_process(*command)
    assert again.returncode == 0, again.stderr
    trials = study_trials(url)
    assert states(trials) == {"COMPLETE": 3, "FAIL": 1}  # nothing lost, nothing duplicated
    failed = next(t for t in trials if t.state.name == "FAIL")
    rerun = next(t for t in trials if t.system_attrs.get("failed_trial") == failed.number)
    assert rerun.params == failed.params and rerun.state.name == "COMPLETE"  # the interrupted trial, run again
    assert "gone: marked failed and queued again" in again.stderr


@pytest.fixture
def postgres(tmp_path):
    """A throwaway PostgreSQL cluster on a free loopback port, owned by an unprivileged user when run as root."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not binaries:
        pytest.skip("PostgreSQL server binaries are absent: `make test` installs Debian's postgresql")
    bin_dir, port = Path(binaries[-1]), free_port()
    root = Path(tempfile.mkdtemp(prefix="ignite-lab-pg-"))  # under /tmp: pytest's own folders are root-only
    data = root / "data"
    as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "nobody")

    def as_owner(*args) -> None:
        done = subprocess.run([*as_user, *map(str, args)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr

    as_owner(bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    as_owner(bin_dir / "pg_ctl", "-D", data, "-o", options, "-l", root / "log", "-w", "start")
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("CREATE DATABASE sweeps"))
        engine.dispose()
        yield f"postgresql://postgres@127.0.0.1:{port}/sweeps"
    finally:
        subprocess.run([*as_user, bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_two_processes_share_one_postgresql_study_and_run_exactly_the_trials_asked(postgres, tmp_path):
    common = [
        "sweep",
        "xor",
        "--trials",
        "5",
        "--epochs",
        "4",
        "--lr",
        "log(1e-3,0.3)",
        "--pruner",
        "none",
        "--storage",
        postgres,
        "--study",
        "shared",
    ]
    workers = [
        subprocess.Popen(
            lab(*common, "--output-dir", tmp_path / f"machine{i}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    trials = study_trials(postgres.replace("postgresql://", "postgresql+psycopg://"), "shared")
    assert states(trials) == {"COMPLETE": 5}
    ran = [len(list((tmp_path / f"machine{i}" / "xor" / "sweep-shared").glob("trial-*"))) for i in (1, 2)]
    assert sum(ran) == 5 and min(ran) >= 1, ran  # both took part, together exactly 5


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--lr", "log(0.1)"], "not a search space"),
        (["--lr", "log(-1,1)"], "expected a finite number > 0, got -1.0"),
        (["--set", "hidden=(8,2)"], "LOW must be below HIGH"),
        (["--set", "hiden=[2,4]"], "Did you mean hidden"),
        (["--set", "hidden=[2,four]"], "expected a whole number"),
        (["--set", "data=(1,2)"], "a range needs a number setting"),
        (["--batch-size", "[0,4]"], "expected a whole number >= 1, got 0"),
    ],
)
def test_bad_search_spaces_are_one_clear_line_before_any_trial(run_cli, tmp_path, args, needle):
    assert_clean_error(run_cli("sweep", "xor", "--trials", "2", *args, "--output-dir", tmp_path), needle)
    assert not (tmp_path / "xor").exists()


def test_an_unreachable_storage_is_one_clear_line(run_cli, tmp_path):
    url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/nothing"
    result = run_cli("sweep", "xor", "--trials", "2", "--storage", url, "--output-dir", tmp_path)
    assert_clean_error(result, "cannot open the study at postgresql+psycopg://nobody:***@127.0.0.1")
    assert "secret" not in result.output


def test_the_printed_command_reproduces_the_best_trials_config(tmp_path):
    """Every flag the sweep held fixed, and the searched values, come back from the printed command."""
    fixed = ["--patience", "3", "--lr-gamma", "0.5", "--limit-batches", "5", "--deterministic", "--seed", "4"]
    fixed += ["--test-checkpoint", "last", "--eval-batch-size", "7", "--lr-schedule", "step", "--epochs", "3"]
    args = ["sweep", "xor", "--trials", "2", "--pruner", "none", "--lr", "log(0.05,0.5)", "--set", "hidden=[3,5]"]
    proc = ignite_lab(*args, *fixed, "--set", "noise=0.05", "--preset", "noisy", "--output-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    command = next(line for line in proc.stdout.splitlines() if line.startswith("reproduce it with: "))
    words = shlex.split(command.removeprefix("reproduce it with: "))
    assert words[:3] == ["ignite-lab", "run", "xor"]
    recipe = load_recipe("xor")
    click_command = run_command(recipe, "xor")
    ctx = click_command.make_context("run", words[3:])
    printed = parse_request(recipe, "xor", dict(ctx.params), ctx).config
    best_dir = Path(next(line for line in proc.stdout.splitlines() if line.startswith("best: ")).rsplit(", ", 1)[1])
    trained = TrainConfig.load(best_dir / "config.json")
    printed.settings = complete_settings(recipe.settings, printed.settings)
    assert dataclasses.replace(printed, run_dir=None) == dataclasses.replace(trained, run_dir=None)
