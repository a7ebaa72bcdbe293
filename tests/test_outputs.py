"""What comes out of a run besides its directory: TensorBoard logs and server, predictions on a user's own
files and text, and exported models loaded back in fresh processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest
import torch
from conftest import RECIPE_FILES, chromium, free_port, make_snli, only_run, run_process
from ignite.engine import Events
from test_bad_input import assert_clean_error


def event_scalars(folder, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return [e.value for e in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def summary_tags(folder, tag: str) -> list:
    """Every summary value called ``tag`` in the event files of ``folder`` (hparams carry no tensor, so
    EventAccumulator skips them)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    found = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            found += [value for value in event.summary.value if value.tag == tag]
    return found


def test_tensorboard_logs_what_visdom_shows(run_cli, tmp_path):

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run_cli("run", RECIPE_FILES / "drawing.py", "--epochs", "3", "--tensorboard", "--output-dir", tmp_path)
    assert result.code == 0, result
    board = only_run(tmp_path, "drawing") / "tensorboard"
    assert len(event_scalars(board, "loss/iteration")) == 3 * 2  # 16 points in batches of 8, 3 epochs
    assert len(event_scalars(board, "lr")) == 3 and len(event_scalars(board, "samples_per_s")) == 3
    for split in ("train", "val"):  # one run per split, plain metric tags (as Keras and Lightning write)
        assert len(event_scalars(board / split, "accuracy")) == 3 and len(event_scalars(board / split, "loss")) == 3
    assert sorted(p.name for p in board.iterdir() if p.is_dir()) == ["train", "val"]
    events = EventAccumulator(str(board), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    images = events.Images("grid")
    assert [i.step for i in images] == [1, 2, 3] and images[0].encoded_image_string[:4] == b"\x89PNG"
    assert "sample/text_summary" in events.Tags()["tensors"]  # the recipe's text
    hparams = summary_tags(board, "_hparams_/session_start_info")  # config + test metrics for the HParams view
    content = hparams[0].metadata.plugin_data.content
    assert len(hparams) == 1 and b"batch_size" in content and b"data_dir" not in content  # what defines training

    assert b"test/accuracy" in summary_tags(board, "_hparams_/experiment")[0].metadata.plugin_data.content


def test_tensorboard_dir_gathers_runs_in_one_folder(run_cli, tmp_path):
    board = tmp_path / "tb"
    for _ in range(2):
        result = run_cli(
            "run", "xor", "--epochs", "2", "--tensorboard", "--tensorboard-dir", board, "--output-dir", tmp_path
        )
        assert result.code == 0 and f"ignite-lab tensorboard {board}" in result.output, result
    runs = sorted(board.iterdir())
    assert len(runs) == 2 and all(run.name.startswith("xor_") for run in runs)
    assert all(len(event_scalars(run / "val", "accuracy")) == 2 for run in runs)


def test_tensorboard_server_lists_the_run_in_headless_chromium(run_cli, tmp_path):
    assert run_cli("run", "xor", "--epochs", "2", "--tensorboard", "--output-dir", tmp_path).code == 0
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ignite_lab", "tensorboard", str(tmp_path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                tags = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags").read())
                if tags:
                    break
            except OSError:
                time.sleep(0.5)
        assert any("loss/iteration" in run_tags for run_tags in tags.values()), tags
        # the Time Series tab renders in the light DOM (the Scalars tab hides its charts in shadow roots)
        dom = chromium(f"http://127.0.0.1:{port}/#timeseries", tmp_path / "profile", budget_ms=15000)
        screenshot = tmp_path / "tensorboard-scalars.png"
        chromium(f"http://127.0.0.1:{port}/#scalars", tmp_path / "profile2", screenshot=screenshot, budget_ms=15000)
        print(f"screenshot: {screenshot}")
        for group in ("loss", "accuracy", "lr", "samples_per_s"):  # the charts' groups, and train/val as runs
            assert f'title="{group}"' in dom, group
        assert "tensorboard/val" in dom and "tensorboard/train" in dom and "accuracy_val" not in dom

    finally:
        server.terminate()
        server.wait(timeout=30)
    assert_clean_error(run_cli("tensorboard", tmp_path / "nothing"), "is not a folder of runs")


def draw_digit(path, fmt: str) -> None:
    """A '1' drawn the way a person would: a dark stroke on light paper, any size."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (90, 120), "white")
    ImageDraw.Draw(image).line([(45, 15), (45, 105)], fill="black", width=12)
    image.save(path, fmt)


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    from conftest import make_mnist

    out = tmp_path_factory.mktemp("runs")
    data = make_mnist(tmp_path_factory.mktemp("mnist"))
    args = ["run", "mnist", "--epochs", "1", "--data-dir", data, "--output-dir", out, "--set", "channels=8"]
    assert run_process(sys.executable, "-m", "ignite_lab", *args).returncode == 0
    run = only_run(out, "mnist")
    return run / "checkpoints" / json.loads((run / "summary.json").read_text())["best_checkpoint"]


def test_predict_a_drawn_digit_as_the_evaluation_path_would(run_cli, mnist_run, tmp_path):
    from ignite_lab.core.registry import load_recipe
    from ignite_lab.tools.evaluation import load_for_inference
    from ignite_lab.training.engines import build_evaluator

    draw_digit(tmp_path / "one.png", "PNG")
    draw_digit(tmp_path / "one.jpg", "JPEG")
    result = run_cli(
        "predict", "mnist", tmp_path / "one.png", tmp_path / "one.jpg", "--checkpoint", mnist_run, "--json"
    )
    assert result.code == 0, result
    answers = json.loads(result.stdout)
    assert [a["input"] for a in answers] == [str(tmp_path / "one.png"), str(tmp_path / "one.jpg")]
    assert len(answers[0]["top"]) == 3 and answers[0]["top"][0]["probability"] >= answers[0]["top"][1]["probability"]

    parts, _, process = load_for_inference(load_recipe("mnist"), mnist_run)
    names, x = parts.predictor.read([str(tmp_path / "one.png"), str(tmp_path / "one.jpg")])
    assert x.shape == (2, 1, 28, 28) and x.dtype == torch.float32  # greyscale 28x28, normalized as in training
    evaluator = build_evaluator(parts, parts.model, process.device, process.precision)
    keep = lambda e: setattr(e.state, "kept", e.state.output["y_pred"])  # noqa: E731
    evaluator.add_event_handler(Events.ITERATION_COMPLETED, keep)

    evaluator.run([(x, torch.zeros(2, dtype=torch.long))])
    probabilities = torch.softmax(evaluator.state.kept, dim=1)
    for answer, row in zip(answers, probabilities, strict=True):
        best = int(row.argmax())
        assert answer["top"][0]["class"] == str(best)
        assert answer["top"][0]["probability"] == pytest.approx(float(row[best]), abs=1e-4)
    table = run_cli("predict", "mnist", tmp_path, "--checkpoint", mnist_run, "--top-k", "2").output
    assert "one.png" in table and "#2" in table  # a folder: its images


def test_predict_bad_inputs_are_one_clear_line(run_cli, mnist_run, tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    assert_clean_error(
        run_cli("predict", "mnist", tmp_path / "notes.png", "--checkpoint", mnist_run), "not a readable image"
    )
    assert_clean_error(
        run_cli("predict", "mnist", tmp_path / "missing.png", "--checkpoint", mnist_run), "does not exist"
    )
    assert_clean_error(run_cli("predict", "mnist", "--checkpoint", mnist_run), "nothing to predict")


def test_predict_sentence_pairs_and_a_generator_points_to_generate(run_cli, tmp_path, monkeypatch):
    make_snli(tmp_path / "snli")
    monkeypatch.chdir(tmp_path)  # a relative --data-dir, as people type it
    args = ["--epochs", "2", "--data-dir", "snli", "--output-dir", tmp_path / "runs", "--batch-size", "4"]
    assert run_cli("run", "snli", *args).code == 0
    run = only_run(tmp_path / "runs", "snli")
    assert json.loads((run / "config.json").read_text())["data_dir"] == str(tmp_path / "snli")
    best = run / "checkpoints" / json.loads((run / "summary.json").read_text())["best_checkpoint"]
    monkeypatch.chdir(run)  # the run remembers where its data is: predict works from any folder
    pairs = ["A dog runs.", "A dog moves.", "A cat sleeps.", "A cat runs."]
    result = run_cli("predict", "snli", *pairs, "--checkpoint", best, "--top-k", "3")
    assert result.code == 0, result
    assert "A dog runs. | A dog moves." in result.output and "entailment" in result.output
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("A dog runs.\tA dog moves.\n")
    assert json.loads(run_cli("predict", "snli", tsv, "--checkpoint", best, "--json").stdout)[0]["input"].startswith(
        "A dog"
    )
    assert_clean_error(run_cli("predict", "snli", "just one sentence", "--checkpoint", best), "in pairs")
    (tmp_path / "snli").rename(tmp_path / "moved")  # a dataset moved since training: say so, and take --data-dir
    assert_clean_error(run_cli("predict", "snli", *pairs, "--checkpoint", best), "which is not here: pass --data-dir")
    moved = run_cli("predict", "snli", *pairs, "--checkpoint", best, "--data-dir", tmp_path / "moved")
    assert moved.code == 0 and "entailment" in moved.output
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be\n" * 40)
    char_args = ["--epochs", "1", "--set", f"text={text}", "--set", "hidden=8", "--set", "embed=4", "--set", "chunk=20"]
    assert run_cli("run", "char_rnn", *char_args, "--set", "bptt=10", "--output-dir", tmp_path / "lm").code == 0
    lm = only_run(tmp_path / "lm", "char_rnn")
    last = lm / "checkpoints" / json.loads((lm / "summary.json").read_text())["last_checkpoint"]
    assert_clean_error(run_cli("predict", "char_rnn", "hello", "--checkpoint", last), "ignite-lab generate char_rnn")


LOAD_AND_RUN = """
import sys, torch
fmt, path, inputs, outputs = sys.argv[1:]
x, expected = torch.load(inputs), torch.load(outputs)
if fmt == "torchscript":
    got = torch.jit.load(path)(x)
elif fmt == "exported-program":
    got = torch.export.load(path).module()(x)
else:
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
print(float((got - expected).abs().max()))
"""


@pytest.mark.parametrize("fmt", ["torchscript", "exported-program", "onnx"])
def test_export_loads_without_ignite_lab_in_a_fresh_process(run_cli, mnist_run, tmp_path, fmt):
    from ignite_lab.core.registry import load_recipe
    from ignite_lab.tools.evaluation import load_for_inference
    from ignite_lab.tools.export import SUFFIXES, example_batch

    out = tmp_path / f"model{SUFFIXES[fmt]}"
    result = run_cli("export", "mnist", "--checkpoint", mnist_run, "--format", fmt, "--out", out)
    assert result.code == 0, result
    assert "dynamic batch" in result.output  # checked by the export on half its batch

    parts, config, _ = load_for_inference(load_recipe("mnist"), mnist_run, "cpu")
    x = torch.cat([example_batch(parts, config)] * 2)  # twice the batch the export saw
    with torch.inference_mode():
        expected = parts.model(x)
    torch.save(x, tmp_path / "x.pt")
    torch.save(expected, tmp_path / "y.pt")
    script = tmp_path / "load.py"
    script.write_text(LOAD_AND_RUN)
    proc = subprocess.run(  # a fresh interpreter that never imports ignite_lab
        [sys.executable, "-I", str(script), fmt, str(out), str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.strip()) < 1e-4


def test_a_model_that_does_not_export_is_a_clear_error_and_writes_nothing(run_cli, tmp_path):
    """SPINN decides per sentence what to compute (shift or reduce): torch.export cannot capture that."""
    data = make_snli(tmp_path / "snli")
    args = ["--epochs", "1", "--data-dir", data, "--output-dir", tmp_path / "runs", "--set", "encoder=spinn"]
    assert run_cli("run", "snli", *args, "--set", "hidden=8", "--set", "tracker=4").code == 0
    run = only_run(tmp_path / "runs", "snli")
    best = run / "checkpoints" / json.loads((run / "summary.json").read_text())["best_checkpoint"]
    for fmt, suffix in (("exported-program", ".pt2"), ("onnx", ".onnx"), ("torchscript", ".pt")):
        out = tmp_path / f"spinn{suffix}"
        result = run_cli("export", "snli", "--checkpoint", best, "--format", fmt, "--out", out)
        assert_clean_error(result, f"snli does not export to {fmt}")  # a trace would hold one batch's parses
        assert not out.exists() and not list(tmp_path.glob(".*spinn*"))

    wrong = run_cli("export", "snli", "--checkpoint", best, "--format", "exported-program", "--out", tmp_path / "m.pt")
    assert_clean_error(wrong, "reads .pt2 files only")

    assert_clean_error(
        run_cli("export", "snli", "--checkpoint", tmp_path / "none.pt", "--format", "onnx"), "does not exist"
    )
