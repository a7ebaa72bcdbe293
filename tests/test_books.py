"""Presets (the books' own configurations), the seed models, profile's Python half and the reproduce table."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import make_mnist, only_run, read_jsonl

from ignite_lab.core.registry import load_recipe

GENERAL = {"image_folder", "tabular", "text_classifier"}  # the user's own data: no book behind them


def config_of(out, recipe: str) -> dict:
    return json.loads((only_run(out, recipe) / "config.json").read_text())


def test_a_preset_applies_its_flags_and_settings_and_typed_flags_win(run_cli, tmp_path):
    result = run_cli("run", "fizzbuzz", "--preset", "book", "--epochs", "2", "--output-dir", tmp_path)
    assert result.code == 0, result
    config = config_of(tmp_path, "fizzbuzz")
    assert config["preset"] == "book" and config["epochs"] == 2  # typed
    assert config["test_checkpoint"] == "last" and config["batch_size"] == 64  # from the preset
    assert config["settings"] == {"hidden": 100, "data": "book", "loss": "mse", "optimizer": "sgd"}
    assert "test metrics (last epoch)" in result.output
    bad = run_cli("run", "fizzbuzz", "--preset", "paperback", "--output-dir", tmp_path)
    assert bad.code == 2 and "has the presets default, book" in bad.output


def test_presets_are_listed_in_help_and_list(run_cli):
    help_text = run_cli("run", "mnist_mlp", "--help").output
    assert "Preset book (--preset book)" in help_text and "Preset lightning" in help_text
    listing = run_cli("list").output
    assert "default book lightning" in listing


def test_a_recipe_sets_the_default_schedule_factor(run_cli):
    """transformer_lm's default is the book's x0.88 per epoch: the recipe, not the global 0.1, sets --lr-gamma."""
    help_text = " ".join(run_cli("run", "transformer_lm", "--help").output.split())
    assert "[default: 0.88; x>0]" in help_text and "[default: 0.1; x>0]" not in help_text


def test_help_shows_each_flag_range_as_declared(run_cli):
    """A float flag without bounds (--stop-at) is FLOAT; bounded ones keep their range."""
    help_text = " ".join(run_cli("run", "mnist", "--help").output.split())
    assert "None" not in help_text and "--stop-at FLOAT Stop once" in help_text
    assert "--lr FLOAT RANGE" in help_text and "x>0" in help_text


def test_every_preset_names_only_known_flags_and_settings():
    from ignite_lab.core.config import TrainConfig
    from ignite_lab.core.registry import recipe_names
    from ignite_lab.core.settings import complete_settings

    fields = {f.name for f in __import__("dataclasses").fields(TrainConfig)}
    for name in recipe_names():
        recipe = load_recipe(name)
        assert "book" in recipe.presets or name in GENERAL, name
        for preset in recipe.presets.values():
            assert set(preset.flags) <= fields, (name, preset.flags)
            complete_settings(recipe.settings, preset.settings, where=name)  # raises on unknown keys


def test_exponential_schedule_multiplies_by_gamma_each_epoch(run_cli, tmp_path):
    args = ["--epochs", "3", "--lr", "0.1", "--lr-schedule", "exponential", "--lr-gamma", "0.5"]
    assert run_cli("run", "xor", *args, "--output-dir", tmp_path).code == 0
    lrs = [r["metrics"]["lr"] for r in read_jsonl(only_run(tmp_path, "xor") / "metrics.jsonl") if r["split"] == "train"]
    assert lrs == pytest.approx([0.1, 0.05, 0.025])


def test_fizzbuzz_book_data_is_the_chapters_split():
    from ignite_lab.recipes.fizzbuzz import Settings, splits

    train, _, test = splits(Settings(data="book"), seed=0)
    assert len(train) == 900 and len(test) == 100
    numbers = torch.cat([train.tensors[0], test.tensors[0]]) @ (2 ** torch.arange(9, -1, -1)).float()  # MSB first
    assert sorted(numbers.long().tolist()) == list(range(1000))


def test_auto_mpg_book_split_is_scikit_learns(tmp_path):
    from ignite_lab.kit.datasets import BUNDLED
    from ignite_lab.recipes.auto_mpg import book_split, read_auto_mpg
    from ignite_lab.training.loaders import TensorData

    raw, mpg, _ = read_auto_mpg(BUNDLED / "auto_mpg" / "auto-mpg.data")
    train, val, test = book_split(TensorData(raw, mpg))
    assert (len(train), len(test)) == (313, 79) and val is train  # train_test_split(train_size=0.8): 313/79


def test_xor_capacity_and_noisy_layer_and_the_decision_regions(run_cli, tmp_path):
    from ignite_lab.recipes.xor import NoisyLinear, Settings, mlp

    for layers in range(5):
        model = mlp(Settings(hidden_layers=layers))
        assert sum(isinstance(m, torch.nn.Linear) for m in model) == layers + 1
    noisy = mlp(Settings(noise=0.07))
    assert isinstance(noisy[0], NoisyLinear)
    x = torch.zeros(3, 2)
    noisy.train()
    assert not torch.equal(noisy[0](x), noisy[0](x))  # noise while training
    noisy.eval()
    assert torch.equal(noisy[0](x), noisy[0](x))
    result = run_cli("run", "xor", "--preset", "noisy", "--epochs", "2", "--output-dir", tmp_path)
    assert result.code == 0, result
    picture = only_run(tmp_path, "xor") / "media" / "decision_regions.png"
    assert picture.read_bytes()[:4] == b"\x89PNG"


def test_lenet_convnet_and_book_architectures_have_the_books_shapes():
    from ignite_lab.kit.models import LeNet
    from ignite_lab.recipes.linknet import BookSegmentationModel, LinkNet
    from ignite_lab.recipes.mnist import ConvNet
    from ignite_lab.recipes.randwire import RandWireNN, Settings

    lenet = LeNet()
    assert lenet(torch.zeros(2, 1, 28, 28)).shape == (2, 10)  # padded to LeNet's 32x32
    assert (lenet.conv2.kernel_size, lenet.fc1.in_features) == ((3, 3), 16 * 6 * 6)  # the tutorial's, not 5x5/400
    assert LeNet(3, pad=0)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert ConvNet()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert BookSegmentationModel(2)(torch.zeros(1, 3, 64, 96)).shape == (1, 2, 64, 96)
    assert LinkNet(11, 8)(torch.zeros(1, 3, 45, 70)).shape == (1, 11, 45, 70)
    graph = {0: [], 1: [0], 2: [0, 1], 3: []}  # node 3 has no predecessor: the book feeds it from the source
    book = RandWireNN([graph], Settings(wiring="book", channels=8, stages=1, node_dropout=0.3))
    stage = book.stages[0]
    assert stage.preds[0] == [-1] and stage.preds[3] == [-1] and "source" in stage.nodes
    assert stage.nodes["1"].weights is None and stage.nodes["2"].weights.tolist() == [1.0, 1.0]  # gates: 2+ inputs
    assert book.stem[0].out_channels == 8 and book.head[0].in_channels == 16  # stem C, stage 2C
    assert book(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def write_trec(folder, n_train: int = 300, n_test: int = 60) -> None:
    """TREC's format (ISO-8859-1, 'COARSE:fine question'), each class with its own telling words."""
    words = {
        "ABBR": "stand for abbreviation",
        "DESC": "why how describe",
        "ENTY": "what animal color",
        "HUM": "who person name",
        "LOC": "where city country",
        "NUM": "how many year",
    }
    folder.mkdir()
    for name, n in (("train_5500.label", n_train), ("TREC_10.label", n_test)):
        lines = []
        for i in range(n):
            label = list(words)[i % 6]
            lines.append(f"{label}:x {words[label]} caf\xe9 question {i % 7} ?")
        (folder / name).write_bytes("\n".join(lines).encode("iso-8859-1"))


def test_trec_learns_its_classes(run_cli, tmp_path):
    write_trec(tmp_path / "data")
    out = tmp_path / "runs"
    result = run_cli("run", "trec", "--data-dir", tmp_path / "data", "--epochs", "4", "--output-dir", out)
    assert result.code == 0, result
    assert json.loads((only_run(out, "trec") / "summary.json").read_text())["test"]["accuracy"] >= 0.9


def test_pos_tagger_learns_the_tutorials_sentences(run_cli, tmp_path):
    result = run_cli("run", "pos_tagger", "--output-dir", tmp_path)
    assert result.code == 0, result
    run = only_run(tmp_path, "pos_tagger")
    assert json.loads((run / "summary.json").read_text())["test"]["accuracy"] == 1.0
    tags = (run / "media" / "tags.txt").read_text().split("\n")
    assert [line.split()[1] for line in tags[1:6]] == ["DET", "NN", "V", "DET", "NN"]


def test_mnist_mlp_lightning_preset_splits_a_twelfth_off_unshuffled(tmp_path):
    from ignite_lab.core.config import TrainConfig
    from ignite_lab.recipes.mnist_mlp import Settings, build

    data = make_mnist(tmp_path / "mnist", n_train=1200, n_test=60)
    config = TrainConfig(recipe="mnist_mlp", epochs=1, batch_size=8, lr=1e-3, data_dir=str(data))
    parts = build(config, Settings(normalize=False, validation="lightning"))
    assert (len(parts.train), len(parts.val), parts.shuffle) == (1100, 100, False)
    images, _ = parts.train[list(range(8))]  # a batch as drawn: uint8 in memory, normalized per batch
    assert images.dtype == torch.float32 and float(images.max()) <= 1.0 and float(images.min()) >= 0.0  # ToTensor


def test_profile_shows_python_hot_spots_beside_the_operators(run_cli, tmp_path):
    result = run_cli("profile", "xor", "--iterations", "5", "--output-dir", tmp_path)
    assert result.code == 0, result
    assert "Python hot spots (cProfile" in result.output and "top operators by self time" in result.output
    assert (only_run(tmp_path, "xor") / "profile.prof").stat().st_size > 0


def test_reproduce_writes_the_table_and_the_readme_section(run_cli, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- reproduce:start -->\nold\n<!-- reproduce:end -->\nrest\n")
    table = tmp_path / "REPRODUCE.md"
    args = ["--output-dir", tmp_path / "runs", "--table", table, "--seeds", "2"]
    result = run_cli("reproduce", "xor", "--preset", "book", *args)
    assert result.code == 0, result
    rows = json.loads(table.with_suffix(".json").read_text())
    row = rows["xor/book"]
    assert row["book"] == {"train accuracy": 1.0, "val accuracy": 0.95} and row["ours"]["val accuracy"]["n"] == 2
    assert 0.0 <= row["ours"]["val accuracy"]["median"] <= 1.0 and not math.isnan(row["wall_s"])
    assert "| xor | book |" in table.read_text() and "ignite-lab run xor --preset book" in table.read_text()
    assert "| xor | book |" in readme.read_text() and "old" not in readme.read_text()
    # the recipes with no row yet are named, in the table and the README
    missing = "Not reproduced with the current configuration: fizzbuzz (default, book); xor (default, noisy); auto_mpg"
    assert missing in table.read_text() and missing in readme.read_text()
    assert "| xor | book |" in table.read_text() and "| last epoch |" in table.read_text()
    # a row measured before its preset changed is no current figure: out of the table, named as not reproduced
    rows["xor/book"]["resolved"]["lr"] = 0.5
    table.with_suffix(".json").write_text(json.dumps(rows))
    from ignite_lab.tools import reproduce

    reproduce.write_table(rows, table)
    text = table.read_text()
    assert "| xor | book |" not in text and "xor (default, book, noisy)" in text
    # the book presets' sentences come from their records
    for line in load_recipe("snli").presets["spinn"].book.differs:
        assert f"Differs: {line}." in text
    missing = run_cli("reproduce", "mnist", "--preset", "book", *args)
    assert missing.code == 2 and "--data-root" in missing.output


def test_reproduce_keeps_a_diverging_run_as_a_failed_row(tmp_path):
    from ignite_lab.tools import reproduce

    with pytest.raises(reproduce.TargetFailed) as failure:
        reproduce.run_once(["ignite-lab", "run", "xor", "--epochs", "3", "--lr", "1e30"], tmp_path / "out")
    assert failure.value.reason.startswith("loss became nan at epoch 1")
    row = reproduce.failed_row(load_recipe("xor"), "default", reproduce.TARGETS["xor"], failure.value)
    rows = {"xor/default": row}
    reproduce.write_table(rows, tmp_path / "REPRODUCE.md")
    assert "| xor | default | - | failed: loss became nan at epoch 1" in (tmp_path / "REPRODUCE.md").read_text()
