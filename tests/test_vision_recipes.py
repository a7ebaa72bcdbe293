"""Smoke runs of the vision recipes on tiny data in the real formats, and their data and wiring checks."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from conftest import only_run, read_jsonl
from test_bad_input import assert_clean_error
from vision_data import make_camvid, make_cifar_batches, make_image_folder


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return make_cifar_batches(tmp_path_factory.mktemp("cifar"))


@pytest.mark.parametrize("recipe", ["mnist_rnn", "mnist_lstm"])
def test_sequence_recipes_read_rows_and_learn(run_cli, tiny_mnist, tmp_path, recipe):
    result = run_cli(
        "run",
        recipe,
        "--epochs",
        "6",
        "--batch-size",
        "16",
        "--lr",
        "0.005",
        "--data-dir",
        tiny_mnist,
        "--output-dir",
        tmp_path,
    )
    assert result.code == 0, result
    summary = json.loads((only_run(tmp_path, recipe) / "summary.json").read_text())
    assert summary["test"]["accuracy"] > 0.5  # 10 classes: chance is 0.1


def test_recurrent_models_are_the_textbook_shapes():
    from ignite_lab.kit.models import RowClassifier

    rnn = RowClassifier("rnn", 100, 2)
    assert isinstance(rnn.rnn, torch.nn.RNN) and rnn.rnn.num_layers == 2 and rnn.rnn.hidden_size == 100
    assert rnn.rnn.batch_first and rnn(torch.zeros(5, 1, 28, 28)).shape == (5, 10)
    lstm = RowClassifier("lstm", 100, 1)  # the chapter's single-layer LSTM (the text prints its six tensors)
    assert isinstance(lstm.rnn, torch.nn.LSTM) and lstm.rnn.num_layers == 1 and lstm.rnn.hidden_size == 100
    assert [tuple(p.shape) for p in lstm.parameters()][:2] == [(400, 28), (400, 100)]
    assert lstm(torch.zeros(5, 1, 28, 28)).shape == (5, 10)


@pytest.mark.parametrize("augment", ["false", "true"])
def test_cifar10_from_python_batches(run_cli, cifar, tmp_path, augment):
    result = run_cli(
        "run",
        "cifar10",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--data-dir",
        cifar,
        "--output-dir",
        tmp_path,
        "--set",
        f"augment={augment}",
        "--set",
        "val_size=10",
    )
    assert result.code == 0, result
    summary = json.loads((only_run(tmp_path, "cifar10") / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["iterations"] == 12  # 90 training images / 8


def test_cifar10_from_an_image_folder(run_cli, tmp_path):
    root = make_image_folder(tmp_path / "folder")
    result = run_cli(
        "run", "cifar10", "--epochs", "1", "--data-dir", root, "--output-dir", tmp_path / "runs", "--set", "val_size=2"
    )
    assert result.code == 0, result


def test_batch_augmentation_keeps_images_and_masks_aligned():
    from ignite_lab.kit.augment import random_crop, random_flip

    torch.manual_seed(0)
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float).view(2, 3, 8, 8)
    masks = torch.arange(2 * 8 * 8).view(2, 8, 8)
    flipped, flipped_masks = random_flip(images, masks)
    cropped, cropped_masks = random_crop(flipped, (6, 6), masks=flipped_masks)
    assert cropped.shape == (2, 3, 6, 6) and cropped_masks.shape == (2, 6, 6)
    for img, mask in zip(cropped, cropped_masks, strict=True):  # image and mask moved together
        assert torch.equal((img[0] // 1).long() % 64, mask % 64)


def test_a_cifar_pickle_that_would_run_code_is_refused(run_cli, tmp_path):
    root = make_cifar_batches(tmp_path / "evil")

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(root / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump({"data": Boom(), "labels": []}, f)
    result = run_cli("run", "cifar10", "--data-dir", root, "--output-dir", tmp_path / "runs")
    assert_clean_error(result, "data_batch_3 is not a CIFAR-10 python batch", "refusing to load builtins.print")


def test_missing_cifar_names_the_expected_layout(run_cli, tmp_path):
    assert_clean_error(
        run_cli("run", "cifar10", "--data-dir", tmp_path / "none", "--output-dir", tmp_path),
        "cifar-10-batches-py",
        "train/<class>",
    )


def test_randwire_saves_draws_and_reloads_its_graphs(run_cli, cifar, tmp_path):
    args = ["--set", "channels=8", "--set", "nodes=6", "--set", "stages=2", "--data-dir", cifar, "--batch-size", "16"]
    result = run_cli("run", "randwire", "--epochs", "1", "--output-dir", tmp_path, *args)
    assert result.code == 0, result
    run = only_run(tmp_path, "randwire")
    graphs = json.loads((run / "graphs.json").read_text())
    assert graphs["settings"]["graph"] == "ws" and len(graphs["stages"]) == 2
    assert {p.name for p in (run / "media").iterdir()} == {"graph_stage1.png", "graph_stage2.png", "architecture.png"}

    # eval and resume rebuild from graphs.json even if the generator seed setting would now differ
    best = run / "checkpoints" / json.loads((run / "summary.json").read_text())["best_checkpoint"]
    assert run_cli("eval", "randwire", "--checkpoint", best).code == 0
    assert run_cli("run", "randwire", "--resume", run, "--epochs", "2").code == 0

    # a different wiring than the checkpoint's is a clear error
    stages = graphs["stages"]
    stages[0] = {n: ([] if int(n) < 2 else [0]) for n in stages[0]}
    (run / "graphs.json").write_text(json.dumps(graphs))
    assert_clean_error(run_cli("eval", "randwire", "--checkpoint", best), "does not fit randwire's model")
    graphs["settings"]["nodes"] = 99
    (run / "graphs.json").write_text(json.dumps(graphs))
    assert_clean_error(run_cli("eval", "randwire", "--checkpoint", best), "holds graphs made with")


@pytest.mark.parametrize("kind", ["er", "ba"])
def test_randwire_other_generators(kind):
    from ignite_lab.recipes.randwire import Settings, predecessors, random_graph

    s = Settings(graph=kind, nodes=12, p=0.3, m=2)
    preds = predecessors(random_graph(s, seed=1))
    assert sorted(preds) == list(range(12)) and all(p < n for n, ps in preds.items() for p in ps)


def test_linknet_segments_camvid_layout(run_cli, tmp_path):
    root = make_camvid(tmp_path / "camvid")
    result = run_cli(
        "run",
        "linknet",
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--data-dir",
        root,
        "--output-dir",
        tmp_path / "runs",
        "--set",
        "width=8",
        "--set",
        "crop=32",
        "--set",
        "grid=2",
    )
    assert result.code == 0, result
    run = only_run(tmp_path / "runs", "linknet")
    val = [r for r in read_jsonl(run / "metrics.jsonl") if r["split"] == "val"]
    assert {"pixel_accuracy", "miou", "iou", "loss"} <= set(val[-1]["metrics"])
    assert len(val[-1]["metrics"]["iou"]) == 11
    assert (run / "media" / "predictions_epoch2.png").is_file()
    best = json.loads((run / "summary.json").read_text())["best_checkpoint"]
    assert best.startswith("best_checkpoint_")

    # a user's own photos, two sizes in one folder: each gets a mask of its own size in the CamVid colours
    from PIL import Image

    from ignite_lab.kit.datasets import CAMVID_PALETTE

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (70, 45), (90, 120, 30)).save(photos / "street.jpg")
    Image.new("L", (40, 33), 200).save(photos / "grey.png")
    result = run_cli("predict", "linknet", photos, "--checkpoint", run / "checkpoints" / best)
    assert result.code == 0, result
    for name, size in (("street", (70, 45)), ("grey", (40, 33))):
        mask = Image.open(photos / f"{name}.mask.png")
        assert mask.size == size and mask.mode == "RGB"
        assert {tuple(c) for c in np.asarray(mask).reshape(-1, 3)} <= {tuple(c) for c in CAMVID_PALETTE}
        assert f"{name}.mask.png" in result.output


def test_linknet_output_matches_input_size_for_odd_sizes():
    from ignite_lab.recipes.linknet import LinkNet

    out = LinkNet(11, width=8)(torch.zeros(1, 3, 45, 70))
    assert out.shape == (1, 11, 45, 70)


def test_camvid_mask_of_the_wrong_size_names_the_file(run_cli, tmp_path):
    from PIL import Image

    root = make_camvid(tmp_path / "camvid")
    bad = root / "valannot" / "img1.png"
    Image.new("L", (10, 10)).save(bad)
    assert_clean_error(
        run_cli("run", "linknet", "--data-dir", root, "--output-dir", tmp_path), str(bad), "does not match"
    )
    (root / "val" / "img0.png").write_bytes(b"not a png at all")
    assert_clean_error(
        run_cli("run", "linknet", "--data-dir", root, "--output-dir", tmp_path), "img0.png", "not a readable"
    )
