"""Each book preset is the book's program: its resolved configuration and the model it builds agree with
the record of what the book says (batch, epochs, optimiser, lr, tested weights, sizes), and every citation
points at lines that exist in ../shared/books."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from conftest import make_snli
from vision_data import make_camvid, make_cifar_batches

from ignite_lab.core.config import TrainConfig
from ignite_lab.core.registry import load_recipe, recipe_names
from ignite_lab.core.settings import complete_settings, make_settings

BOOKS = Path(__file__).resolve().parents[2] / "shared" / "books"
RECORDED = [(name, preset) for name in recipe_names() for preset, p in load_recipe(name).presets.items() if p.book]
CITE = re.compile(r"^books/(?P<file>[0-9a-f_]+\.txt):(?P<first>\d+)(?:-(?P<last>\d+))?$")


def tiny_data(name: str, root: Path, mnist: Path) -> str | None:
    """The smallest dataset each recipe's build accepts (None: the recipe brings or makes its own)."""
    if name.startswith("mnist"):
        return str(mnist)
    if name in ("cifar10", "randwire"):
        return str(make_cifar_batches(root / "cifar", per_batch=4))
    if name == "linknet":
        return str(make_camvid(root / "camvid", size=(64, 96)))
    if name == "snli":
        return str(make_snli(root / "snli"))
    if name == "trec":
        (root / "trec").mkdir()
        lines = [f"{label}:x what is question {i} ?" for i, label in enumerate(["HUM", "LOC", "NUM", "DESC"] * 5)]
        for file in ("train_5500.label", "TREC_10.label"):
            (root / "trec" / file).write_text("\n".join(lines) + "\n", encoding="iso-8859-1")
        return str(root / "trec")
    if name == "transformer_lm":
        (root / "wiki").mkdir()
        text = "\n".join(" ".join(f"w{(i * 7 + j) % 50}" for j in range(40)) for i in range(120))
        for split in ("train", "valid", "test"):
            (root / "wiki" / f"wiki.{split}.tokens").write_text(text + "\n")
        return str(root / "wiki")
    return None


def resolved(name: str, preset: str) -> tuple[dict, dict]:
    recipe = load_recipe(name)
    chosen = recipe.presets[preset]
    return {**recipe.defaults(), **chosen.flags}, complete_settings(recipe.settings, chosen.settings, where=name)


def test_every_recipe_of_the_books_has_a_book_preset_with_its_record():
    from ignite_lab.tools.reproduce import book_recipes

    assert set(recipe_names()) - set(book_recipes()) == {"image_folder", "tabular", "text_classifier"}
    for name in book_recipes():
        assert load_recipe(name).presets["book"].book is not None, name


@pytest.mark.parametrize(("name", "preset"), RECORDED, ids=[f"{n}-{p}" for n, p in RECORDED])
def test_a_book_preset_builds_the_books_program(name, preset, tmp_path, tiny_mnist):
    book = load_recipe(name).presets[preset].book
    flags, settings = resolved(name, preset)
    assert (flags["batch_size"], flags["epochs"], flags["lr"]) == (book.batch, book.epochs, book.lr)
    assert flags.get("test_checkpoint", "best") == book.tested
    assert {key: settings[key] for key in book.sizes} == book.sizes

    known = {f.name for f in dataclasses.fields(TrainConfig)}
    run = tmp_path / "run"
    run.mkdir()
    config = TrainConfig(
        recipe=name,
        data_dir=tiny_data(name, tmp_path, tiny_mnist),
        settings=settings,
        run_dir=str(run),
        **{key: value for key, value in flags.items() if key in known},
    )
    recipe = load_recipe(name)
    parts = recipe.build(config.per_process(1), make_settings(recipe.settings, settings))
    assert type(parts.optimizer).__name__ == book.optimizer
    assert parts.optimizer.defaults["lr"] == book.lr


@pytest.mark.parametrize(("name", "preset"), RECORDED, ids=[f"{n}-{p}" for n, p in RECORDED])
def test_a_records_citations_and_differences_are_real_lines(name, preset):
    book = load_recipe(name).presets[preset].book
    assert book.cites and book.tested in ("last", "best") and book.data
    for cite in book.cites:
        match = CITE.match(cite)
        if not match:  # a published file the book points to: "owner/repo path" or a named tutorial
            assert " " in cite and not cite.startswith("books/"), cite
            continue
        lines = (BOOKS / match["file"]).read_text(encoding="utf-8").splitlines()
        first, last = int(match["first"]), int(match["last"] or match["first"])
        assert 1 <= first <= last <= len(lines), cite
        assert any(lines[i - 1].strip() for i in range(first, last + 1)), f"{cite} cites only blank lines"
    for line in book.differs:
        assert "\n" not in line and len(line) <= 110, line
