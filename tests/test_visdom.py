"""Live plots against a real Visdom server on 127.0.0.1, the page in headless Chromium, and a dashboard that
never stops training: server down, hung (accepts, never answers) and killed mid-run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
import visdom
from conftest import RECIPE_FILES, chromium, free_port, ignite_lab, only_run, read_jsonl

from ignite_lab.outputs.visdom_server import ServerPaths, install_assets, missing_assets, start_server, stop_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    install_assets()  # from npm; `make test` has already done it once
    paths = ServerPaths(tmp_path_factory.mktemp("visdom-state"), free_port())
    start_server(paths)
    yield paths
    stop_server(paths)


def client(port: int) -> visdom.Visdom:
    return visdom.Visdom(server="http://127.0.0.1", port=port, use_incoming_socket=False, raise_exceptions=True)


def windows(port: int, env: str) -> dict:
    return json.loads(client(port).get_window_data(env=env))


def run_xor(tmp_path, port: int, *extra: str, epochs: int = 4):
    return ignite_lab(
        "run", "xor", "--epochs", str(epochs), "--visdom", "--visdom-port", str(port), "--output-dir", tmp_path, *extra
    )


def test_assets_are_installed_for_offline_start():
    assert missing_assets() == []


def test_run_sends_every_window_to_its_own_env(server, tmp_path):
    proc = run_xor(tmp_path, server.port, "--visdom-env", "xor_live_test")
    assert proc.returncode == 0, proc.stderr
    data = windows(server.port, "xor_live_test")
    traces = {win: {t["name"]: t for t in d["content"]["data"]} for win, d in data.items() if d["type"] == "plot"}
    assert set(traces) == {"loss_by_iteration", "metric_accuracy", "metric_loss", "lr", "throughput"}
    assert data["media_decision_regions"]["type"] == "image"  # the recipe's own picture, beside the plots

    assert set(traces["loss_by_iteration"]) == {"raw", "smoothed"}
    assert len(traces["loss_by_iteration"]["raw"]["x"]) == 4 * 50  # every iteration of 4 epochs of 50 batches
    assert set(traces["metric_accuracy"]) == {"train", "val"}  # train and validation on one plot

    run = only_run(tmp_path, "xor")
    val = [r["metrics"]["accuracy"] for r in read_jsonl(run / "metrics.jsonl") if r["split"] == "val"]
    assert traces["metric_accuracy"]["val"]["y"] == pytest.approx(val)
    assert (server.env_path / "xor_live_test.json").is_file(), "the env is saved, so it survives a server restart"


def test_default_env_is_one_per_run_and_windows_stay(server, tmp_path):
    for _ in range(2):
        assert run_xor(tmp_path, server.port, epochs=1).returncode == 0
        time.sleep(1.1)  # run directories are named by the second
    runs = sorted(p.name for p in (tmp_path / "xor").iterdir())
    envs = client(server.port).get_env_list()
    for name in runs:
        assert f"xor_{name}" in envs
        assert "metric_accuracy" in windows(server.port, f"xor_{name}")


def test_plots_survive_a_server_restart(tmp_path):
    paths = ServerPaths(tmp_path / "state", free_port())
    paths.state_dir.mkdir()
    start_server(paths)
    try:
        assert run_xor(tmp_path, paths.port, "--visdom-env", "persisted", epochs=2).returncode == 0
    finally:
        stop_server(paths)
    start_server(paths)
    try:
        assert "metric_loss" in windows(paths.port, "persisted")
    finally:
        stop_server(paths)


def test_recipe_pictures_and_text_reach_visdom_and_the_run_directory(server, tmp_path):
    recipe = RECIPE_FILES / "drawing.py"
    proc = ignite_lab(
        "run",
        recipe,
        "--epochs",
        "2",
        "--visdom",
        "--visdom-port",
        str(server.port),
        "--visdom-env",
        "drawing_test",
        "--output-dir",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    data = windows(server.port, "drawing_test")
    assert data["media_sample"]["type"] == "text" and "epoch 2 says hello" in data["media_sample"]["content"]
    assert data["media_grid"]["type"] == "image"
    media = only_run(tmp_path, "drawing") / "media"
    assert (media / "grid_epoch2.png").is_file() and "epoch 1 says hello" in (media / "sample.txt").read_text()


def test_page_shows_the_run_in_headless_chromium(server, tmp_path):
    assert run_xor(tmp_path, server.port, "--visdom-env", "xor_page_test", epochs=2).returncode == 0
    url = f"http://127.0.0.1:{server.port}/env/xor_page_test"
    dom = chromium(url, tmp_path / "profile1")
    screenshot = tmp_path / "visdom-page.png"
    chromium(url, tmp_path / "profile2", screenshot=screenshot)
    print(f"screenshot: {screenshot}")
    assert dom.count('class="window"') == 6, "five plots and the decision regions (scripts loaded offline)"
    for title in ("training loss", "accuracy", "learning rate", "samples per second", "2 hidden layer(s)"):
        assert title in dom
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000


def test_server_down_warns_once_and_the_run_completes(tmp_path):
    proc = run_xor(tmp_path, free_port(), epochs=2)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("training continues without live plots") == 1
    assert json.loads((only_run(tmp_path, "xor") / "summary.json").read_text())["status"] == "completed"


def test_hung_server_is_given_up_on_and_the_run_completes(tmp_path):
    with socket.socket() as hung:  # accepts connections (kernel backlog) and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        started = time.monotonic()
        proc = run_xor(tmp_path, hung.getsockname()[1], epochs=2)
        took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert "does not answer" in proc.stderr and proc.stderr.count("without live plots") == 1
    assert took < 60, f"gave up after a timeout, not never ({took:.0f} s)"
    assert len(read_jsonl(only_run(tmp_path, "xor") / "metrics.jsonl")) == 4


@pytest.mark.soak
def test_server_killed_mid_run_warns_once_and_the_run_completes(tmp_path):
    paths = ServerPaths(tmp_path / "state", free_port())
    paths.state_dir.mkdir()
    start_server(paths)
    command = [
        sys.executable,
        "-m",
        "ignite_lab",
        "run",
        "xor",
        "--epochs",
        "150",
        "--visdom",
        "--visdom-port",
        str(paths.port),
        "--visdom-env",
        "doomed",
        "--output-dir",
        str(tmp_path),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and "metric_loss" not in _safe_windows(paths.port, "doomed"):
            time.sleep(0.2)
        assert proc.poll() is None, "the run was still going when the server died"
    finally:
        stop_server(paths)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert stderr.count("stopped answering") == 1
    run = only_run(tmp_path, "xor")
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    assert len([r for r in read_jsonl(run / "metrics.jsonl") if r["split"] == "val"]) == 150


def _safe_windows(port: int, env: str) -> dict:
    try:
        return windows(port, env)
    except Exception:
        return {}


def test_start_status_stop_through_the_cli(tmp_path):
    port, state = str(free_port()), str(tmp_path / "state")
    assert ignite_lab("visdom", "status", "--port", port, "--state-dir", state).returncode == 3
    started = ignite_lab("visdom", "start", "--port", port, "--state-dir", state)
    assert started.returncode == 0 and "Visdom is running" in started.stdout, started.stderr
    try:
        status = ignite_lab("visdom", "status", "--port", port, "--state-dir", state)
        assert status.returncode == 0 and "started by ignite-lab" in status.stdout
        again = ignite_lab("visdom", "start", "--port", port, "--state-dir", state)
        assert again.returncode == 0 and "already running" in again.stderr
    finally:
        stopped = ignite_lab("visdom", "stop", "--port", port, "--state-dir", state)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert ignite_lab("visdom", "status", "--port", port, "--state-dir", state).returncode == 3


def test_start_refuses_a_port_taken_by_something_else(tmp_path):
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        deadline = time.time() + 20
        while (
            time.time() < deadline
            and ignite_lab("visdom", "status", "--port", str(port), "--state-dir", tmp_path / "state").returncode != 0
        ):
            time.sleep(0.2)
        proc = ignite_lab("visdom", "start", "--port", str(port), "--state-dir", tmp_path / "state")
        assert proc.returncode == 2 and "already in use" in proc.stderr
        stop = ignite_lab("visdom", "stop", "--port", str(port), "--state-dir", tmp_path / "state")
        assert "no Visdom server started by ignite-lab" in stop.stdout
        assert web.poll() is None, "stop did not touch a process it did not start"
    finally:
        web.terminate()


def test_exposed_server_without_login_warns(tmp_path):
    port, state = str(free_port()), str(tmp_path / "state")
    proc = ignite_lab("visdom", "start", "--port", port, "--state-dir", state, "--host", "0.0.0.0")
    try:
        assert proc.returncode == 0, proc.stderr
        assert "all network interfaces without a login" in proc.stderr
    finally:
        ignite_lab("visdom", "stop", "--port", port, "--state-dir", state)


def test_compare_prints_a_table_and_writes_overlaid_curves(run_cli, tmp_path):
    for lr in ("0.01", "0.1"):
        assert run_cli("run", "xor", "--epochs", "3", "--lr", lr, "--output-dir", tmp_path / lr).code == 0
    runs = [only_run(tmp_path / lr, "xor") for lr in ("0.01", "0.1")]
    out = tmp_path / "cmp.png"
    result = run_cli("compare", *runs, "--out", out)
    assert result.code == 0, result
    lines = result.output.splitlines()
    assert lines[0].split()[:5] == ["run", "recipe", "status", "epochs", "lr"]  # only what differs: lr
    assert "batch_size" not in lines[0] and "seed" not in lines[0]
    assert "0.0100" in result.output and "0.1000" in result.output and "completed" in result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    bad = run_cli("compare", tmp_path)
    assert bad.code == 2 and "not a run directory" in bad.output
