"""A user's own data with no code: image folders, a table, labelled sentences. Each trains, evaluates,
predicts and exports from the command line; bad files get one line naming the file, row or column."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
from conftest import ignite_lab, only_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ignite_lab.core.errors import UserError
from ignite_lab.kit.tables import TablePrep, read_table


def make_photos(root, per_class: int = 6, modes=("RGB", "L", "RGBA"), sizes=((40, 30), (24, 48), (33, 33))):
    """Class folders of images in several sizes, modes and formats; each class its own colour."""
    colours = {"cats": (200, 40, 40), "dogs": (40, 200, 40), "owls": (40, 40, 200)}
    for c, (name, colour) in enumerate(colours.items()):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            size, mode = sizes[i % len(sizes)], modes[(i + c) % len(modes)]
            pixels = np.full((size[1], size[0], 3), colour, dtype=np.uint8) + np.random.default_rng(i).integers(
                0, 30, (size[1], size[0], 3), dtype=np.uint8
            )
            image = Image.fromarray(pixels).convert(mode)
            image.save(root / name / f"{i}.{('png', 'jpg', 'webp')[i % 3] if mode != 'RGBA' else 'png'}")
    return root


def test_hidden_files_and_empty_class_folders_are_not_classes_or_images(tmp_path, caplog):
    """macOS leaves ``._name.jpg`` beside each photo copied to a shared drive: not images of the class."""
    from ignite_lab.kit.images import labelled_files

    photos = make_photos(tmp_path / "photos", per_class=2)
    (photos / "cats" / "._0.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (photos / "cats" / ".thumbnails").mkdir()
    (photos / "cats" / ".thumbnails" / "0.png").write_bytes(b"not one")
    (photos / ".Trashes").mkdir()
    (photos / "empty").mkdir()
    files = labelled_files(photos)
    assert sorted({c for _, c in files}) == ["cats", "dogs", "owls"] and len(files) == 6
    assert "empty has no images: the class is left out" in caplog.text


def test_image_folders_train_eval_predict_and_export_with_their_preprocessing(tmp_path):
    photos = make_photos(tmp_path / "photos")
    out = tmp_path / "runs"
    result = ignite_lab(
        "run", "image_folder", "--data-dir", photos, "--set", "size=16", "--epochs", "2", "--output-dir", out
    )
    assert result.returncode == 0, result.stderr
    run = only_run(out, "image_folder")
    prep = json.loads((run / "preprocess.json").read_text())
    assert prep["classes"] == ["cats", "dogs", "owls"] and prep["size"] == 16
    best = next((run / "checkpoints").glob("best_*.pt"))
    photos = photos.rename(tmp_path / "moved")  # predict and export read the run's files, never the training data
    answer = ignite_lab("predict", "image_folder", "--checkpoint", best, photos / "owls", "--json")
    assert answer.returncode == 0, answer.stderr
    assert {r["top"][0]["class"] for r in json.loads(answer.stdout)} <= set(prep["classes"])
    exported = ignite_lab(
        "export", "image_folder", "--checkpoint", best, "--format", "onnx", "--out", tmp_path / "model.onnx"
    )
    assert exported.returncode == 0, exported.stderr
    assert json.loads((tmp_path / "model.preprocess.json").read_text()) == prep  # the model travels with it
    # the README's dozen lines classify an image from those two files alone, as predict does
    import onnxruntime

    image = Image.open(photos / "owls" / "0.png").convert("RGB").resize((prep["size"], prep["size"]), Image.BILINEAR)
    x = (np.asarray(image, np.float32) / 255 - prep["mean"]) / prep["std"]
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"))
    scores = session.run(None, {session.get_inputs()[0].name: x.transpose(2, 0, 1)[None].astype(np.float32)})[0]
    said = ignite_lab("predict", "image_folder", "--checkpoint", best, photos / "owls" / "0.png", "--json")
    assert prep["classes"][int(scores.argmax())] == json.loads(said.stdout)[0]["top"][0]["class"]
    gone = ignite_lab("eval", "image_folder", "--checkpoint", best)  # eval does need data: one line says where
    assert gone.returncode != 0 and "pass --data-dir" in gone.stderr and "Traceback" not in gone.stderr
    scored = ignite_lab("eval", "image_folder", "--checkpoint", best, "--data-dir", photos)
    assert scored.returncode == 0 and "accuracy" in scored.stdout, scored.stderr


def test_pretrained_weights_come_from_the_torch_cache_or_a_clear_line(tmp_path):
    import torchvision

    photos = make_photos(tmp_path / "photos", per_class=3)
    cache = tmp_path / "torch"
    offline = {"TORCH_HOME": str(cache), "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    args = [
        "run",
        "image_folder",
        "--data-dir",
        photos,
        "--set",
        "pretrained=resnet18",
        "--set",
        "size=32",
        "--epochs",
        "1",
        "--output-dir",
        tmp_path / "runs",
    ]
    missing = ignite_lab(*args, env={**os.environ, **offline})
    assert missing.returncode == 2 and "pretrained=resnet18" in missing.stderr and str(cache) in missing.stderr
    assert "Traceback" not in missing.stderr
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    (cache / "hub" / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.resnet18().state_dict(), cache / "hub" / "checkpoints" / weights.url.split("/")[-1])
    cached = ignite_lab(*args, env={**os.environ, **offline})
    assert cached.returncode == 0, cached.stderr


def write_cars(path, rows: int = 80, header: bool = True):
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=";")
        if header:
            writer.writerow(["weight", "origin", "name", "mpg"])
        for i in range(rows):
            weight = rng.uniform(1500, 4500)
            origin = ["usa", "europe", "japan"][i % 3]
            cell = "" if i % 10 == 0 else f"{weight:.1f}"  # missing values the model must impute and flag
            writer.writerow([cell, origin, f"car {i}", f"{40 - weight / 200 + (i % 3):.2f}"])


def test_a_table_trains_a_regression_and_predicts_in_its_units(tmp_path):
    data = tmp_path / "cars.csv"
    write_cars(data)
    out = tmp_path / "runs"
    result = ignite_lab(
        "run", "tabular", "--data-dir", data, "--set", "target=mpg", "--epochs", "3", "--output-dir", out
    )
    assert result.returncode == 0, result.stderr
    assert "task: regression" in result.stderr and "'name' left out" in result.stderr
    run = only_run(out, "tabular")
    prep = json.loads((run / "preprocess.json").read_text())
    assert prep["flagged"] == ["weight"] and prep["categorical"] == {"origin": ["europe", "japan", "usa"]}
    assert {"mse", "rmse", "mae"} <= set(json.loads((run / "summary.json").read_text())["test"])
    rows = tmp_path / "new.csv"
    rows.write_text("weight;origin\n2000;japan\n;mars\n")  # a missing weight and an origin never seen
    best = next((run / "checkpoints").glob("best_*.pt"))
    data.unlink()  # the table is gone: predict and export need only the run's preprocess.json
    answer = ignite_lab("predict", "tabular", "--checkpoint", best, rows, "--json")
    assert answer.returncode == 0, answer.stderr
    assert [r["input"] for r in json.loads(answer.stdout)] == ["row 1", "row 2"]
    exported = ignite_lab("export", "tabular", "--checkpoint", best, "--format", "onnx", "--out", tmp_path / "t.onnx")
    assert exported.returncode == 0, exported.stderr
    assert json.loads((tmp_path / "t.preprocess.json").read_text()) == prep


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        ("a,b\n1,2\n", ["--set", "target=c"], "--set target=c: no such column"),
        (
            "a,b\n1,2\n2,3\n3,x\n4,5\n5,6\n6,7\n",
            ["--set", "target=a", "--set", "task=regression"],
            "row 3, column 'b': 'x' is not",
        ),
        ("", [], "is empty"),
        (b"a,b\n1,\xff\n", [], "--set encoding="),
        ("a,b,y\n" + "".join(f"{i},{i % 3},cat\n" for i in range(30)), [], "one class in the training rows ('cat')"),
        ("a,b,y\n0,0,0,extra\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(30)), [], "line 2: more fields"),
        ("a,y\n" + "".join(f"{1e200 * (i % 3)},{i % 2}\n" for i in range(30)), [], "e+200 is too large to train on"),
        ("y\n" + "".join(f"{i % 2}\n" for i in range(30)), [], "nothing to learn from besides the target 'y'"),
    ],
    ids=["no-such-target", "text-in-a-number-column", "empty", "not-utf8", "one-class", "ragged", "huge", "no-inputs"],
)
def test_a_bad_table_is_one_line_naming_the_file_and_the_fix(tmp_path, content, args, expected):
    data = tmp_path / "bad.csv"
    data.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = ignite_lab("run", "tabular", "--data-dir", data, *args, "--epochs", "1", "--output-dir", tmp_path / "r")
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr, result.stderr


numbers = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**20), 10**20)
cells = st.one_of(numbers, st.floats(width=32), st.text(max_size=6), st.none())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(cells, cells, st.one_of(st.sampled_from(["yes", "no"]), numbers)), min_size=1, max_size=12),
    task=st.sampled_from(["classification", "regression"]),
    extra=st.sampled_from(["", ",x", ",,"]),
)
def test_any_table_trains_to_a_finite_loss_or_is_refused_in_one_line(tmp_path, rows, task, extra):
    """Whatever the cells (huge, infinite, text, empty; one class; a first row longer than the header),
    a table becomes inputs on which the model's loss is finite, or a UserError naming the file or column:
    never a crash, a NaN or silently shifted columns."""
    from ignite_lab.recipes.tabular import Settings, TableMLP, scaled_mse

    path = tmp_path / "t.csv"
    lines = [",".join("" if c is None else csv_cell(c) for c in row) for row in rows]
    path.write_text("x,y,label\n" + "\n".join([lines[0] + extra, *lines[1:]]) + "\n")
    try:
        frame = read_table(path, header="first")
        prep = TablePrep.fit(frame, "label", task, max_levels=50)
        inputs = prep.inputs(frame, str(path))
        targets = prep.targets(frame, str(path))
    except UserError as exc:
        assert "\n" not in exc.message and (str(path) in exc.message or "'" in exc.message), exc.message
        return
    assert extra == "" and list(frame.columns) == ["x", "y", "label"]  # a longer first row is never read
    assert torch.isfinite(inputs[0]).all() and len(inputs[1]) == len(targets) == len(frame)
    model = TableMLP(prep, Settings()).eval()
    with torch.no_grad():
        out = model(inputs)
        loss = torch.nn.functional.cross_entropy(out, targets) if task == "classification" else None
        loss = scaled_mse(prep.target_scale[1])(out, targets) if loss is None else loss
    assert torch.isfinite(loss), (prep, out, targets)


def test_a_row_to_predict_too_far_from_the_training_rows_is_named(tmp_path):
    import pandas as pd

    train = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "label": ["a", "b", "a", "b"]})
    prep = TablePrep.fit(train, "label", "classification", max_levels=50)
    with pytest.raises(UserError, match=r"new.csv, row 2, column 'x': 1e\+300 is too far from the training rows"):
        prep.inputs(pd.DataFrame({"x": [1.0, 1e300]}), "new.csv")


def csv_cell(value) -> str:
    text = str(value)
    return '"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"\n\r') else text


def write_reviews(folder, rows: int = 120):
    folder.mkdir()
    good, bad = ["a fine warm film", "loved every minute"], ["a dull cold film", "hated every minute"]
    with open(folder / "train.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "review", "stars", "movie"])
        for i in range(rows):
            writer.writerow(
                [i, (good if i % 2 else bad)[i % 2] + f", take {i % 5}", "5" if i % 2 else "1", f"m{i % 12}"]
            )
    with open(folder / "test.jsonl", "w") as f:
        for i in range(20):
            f.write(json.dumps({"review": (good if i % 2 else bad)[0], "stars": "5" if i % 2 else "1"}) + "\n")


def test_labelled_sentences_train_with_their_tokenizer_and_export_it(tmp_path):
    data = tmp_path / "reviews"
    write_reviews(data)
    out = tmp_path / "runs"
    result = ignite_lab(
        "run", "text_classifier", "--data-dir", data, "--set", "group=movie", "--epochs", "2", "--output-dir", out
    )
    assert result.returncode == 0, result.stderr
    assert "text column 'review', label column 'stars'" in result.stderr
    run = only_run(out, "text_classifier")
    assert json.loads((run / "labels.json").read_text()) == ["1", "5"] and (run / "tokenizer.json").is_file()
    best = next((run / "checkpoints").glob("best_*.pt"))
    data.rename(tmp_path / "elsewhere")  # predict and export need only the run's tokenizer and labels
    answer = ignite_lab("predict", "text_classifier", "--checkpoint", best, "a fine film", "--json")
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)[0]["top"][0]["class"] in ("1", "5")  # the label names came with the run
    exported = ignite_lab(
        "export",
        "text_classifier",
        "--checkpoint",
        best,
        "--format",
        "torchscript",
        "--out",
        tmp_path / "clf.torchscript.pt",
    )
    assert exported.returncode == 0, exported.stderr
    from tokenizers import Tokenizer  # the exported model and its tokenizer classify a sentence on their own

    tokenizer = Tokenizer.from_file(str(tmp_path / "clf.tokenizer.json"))
    ids = torch.tensor([tokenizer.encode("a fine film").ids])
    model = torch.jit.load(str(tmp_path / "clf.torchscript.pt"))
    assert model((ids, torch.tensor([ids.shape[1]]))).shape == (1, 2)


def test_a_group_never_spans_training_and_validation():
    import pandas as pd

    from ignite_lab.kit.sentences import group_split

    groups = pd.Series([f"g{i % 7}" for i in range(70)])
    kept, held = group_split(list(range(70)), 0.3, seed=3, groups=groups)
    assert set(groups[kept]).isdisjoint(set(groups[held])) and sorted(kept + held) == list(range(70))


def test_a_label_unseen_in_training_names_its_file_and_row(tmp_path):
    data = tmp_path / "reviews"
    write_reviews(data)
    with open(data / "test.jsonl", "a") as f:
        f.write(json.dumps({"review": "meh", "stars": "3"}) + "\n")
    result = ignite_lab("run", "text_classifier", "--data-dir", data, "--epochs", "1", "--output-dir", tmp_path / "r")
    assert result.returncode == 2 and "test.jsonl, row 21: label '3'" in result.stderr, result.stderr


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["text", "label", "x"]), inner),
    max_leaves=6,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(json_values.map(json.dumps) | st.text(max_size=12), min_size=1, max_size=8))
def test_any_json_lines_file_is_read_or_refused_in_one_line(tmp_path, lines):
    """Any lines (objects, nested values, scalars, broken JSON) give labelled rows or one UserError that names
    the file and its line or row: never a raw pandas error."""
    from ignite_lab.kit.sentences import find_columns, read_rows
    from ignite_lab.recipes.text_classifier import label_names, labels_of

    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines) + "\n")
    try:
        frame = read_rows(path, "utf-8")
        text, label = find_columns(frame, "", "", path)
        labels = labels_of(frame[label], label_names(frame[label]), path)
    except UserError as exc:
        assert "\n" not in exc.message and (str(path) in exc.message or "label column" in exc.message), exc.message
        return
    assert len(labels) == len(frame) and set(labels) >= {0, 1}


def test_labels_written_1_in_one_file_and_1_0_in_another_are_one_label(tmp_path):
    import pandas as pd

    from ignite_lab.recipes.text_classifier import label_names, labels_of

    train = pd.Series([0, 1, None, 1]).dropna()  # a missing cell makes pandas read the column as 0.0, 1.0
    assert label_names(train) == ["0", "1"]
    assert labels_of(pd.Series([1, 0]), ["0", "1"], tmp_path / "test.csv") == [1, 0]
    with pytest.raises(UserError, match=r"test.csv, row 2: the label is missing"):
        labels_of(pd.Series(["1", None, None]), ["0", "1"], tmp_path / "test.csv")


def test_a_recipe_file_is_found_by_its_name_in_the_working_folder(tmp_path):
    copied = ignite_lab("copy", "xor", tmp_path / "mine.py", cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    trained = ignite_lab("run", "mine", "--epochs", "1", "--output-dir", tmp_path / "runs", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    best = next((tmp_path / "runs" / "mine").glob("*/checkpoints/best_*.pt"))
    scored = ignite_lab("eval", "mine", "--checkpoint", best, "--split", "val", cwd=tmp_path)
    assert scored.returncode == 0 and "accuracy" in scored.stdout, scored.stderr


def test_sentences_with_glove_vectors_predict_after_the_vectors_and_data_are_gone(tmp_path):
    """The embedding's width comes with the run (embedding.json): predict needs neither the vectors file
    nor the training data, and a width of the vectors' own, not the --set embed default."""
    data = tmp_path / "reviews"
    write_reviews(data, rows=60)
    glove = tmp_path / "vectors.txt"
    glove.write_text("".join(f"{w} {' '.join(['0.5'] * 7)}\n" for w in ("a", "fine", "film", "dull", "minute")))
    out = tmp_path / "runs"
    result = ignite_lab(
        "run", "text_classifier", "--data-dir", data, "--set", f"glove={glove}", "--epochs", "1", "--output-dir", out
    )
    assert result.returncode == 0, result.stderr
    run = only_run(out, "text_classifier")
    assert json.loads((run / "embedding.json").read_text()) == {"dim": 7}
    glove.unlink()
    data.rename(tmp_path / "gone")
    best = next((run / "checkpoints").glob("best_*.pt"))
    answer = ignite_lab("predict", "text_classifier", "--checkpoint", best, "a fine film", "--json")
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)[0]["top"][0]["class"] in ("1", "5")
