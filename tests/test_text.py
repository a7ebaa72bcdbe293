"""The tokenizers-based text pipeline, the text and tabular recipes, and their bad inputs."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import ignite_lab, make_snli, only_run, read_jsonl
from ignite.metrics import Perplexity
from test_bad_input import assert_clean_error

from ignite_lab.kit.text import EOS, PAD, UNK, BucketBatchSampler, Vocab, batchify, lm_windows, load_glove, pad

WORDS = "the cat sat on the mat . a dog ran to the cat . the bird sang on a tree .".split()


def test_word_vocab_round_trip_unknowns_and_specials(tmp_path):
    vocab = Vocab.build(["The cat sat on the mat.", "A dog ran!"], basic_english=True)
    assert vocab.itos[:4] == [UNK, PAD, EOS, "<sos>"] and vocab.unk_index == 0
    assert vocab.tokenize("The cat, sat!") == ["the", "cat", ",", "sat", "!"]
    ids = vocab.encode("the dog sat on the zebra")
    assert ids[-1] == vocab.unk_index and vocab.decode(ids) == "the dog sat on the <unk>"
    again = Vocab.from_json(vocab.to_json(), tmp_path / "vocab.json")
    assert again.itos == vocab.itos and again.encode("The cat.") == vocab.encode("The cat.")


def test_basic_english_splits_as_torchtext_does():
    """torchtext's substitutions in order: ' splits off, " ; : go, . ( ) ! ? split off, <br /> is a space."""
    text = "He said: \"It's 3 @.@ 5 (ok)!<br />Yes; no?"
    expected = "he said it ' s 3 @ . @ 5 ( ok ) ! yes no ?".split()  # torchtext 0.17's basic_english
    assert Vocab.build([text], basic_english=True).tokenize(text) == expected


def test_char_vocab_keeps_whitespace_and_round_trips():
    vocab = Vocab.build(["to be\nor not"], level="char", specials=[UNK])
    text = "not to be\nor"
    assert vocab.decode(vocab.encode(text)) == text
    assert vocab.encode("z") == [vocab.unk_index]


def test_min_freq_and_max_size():
    vocab = Vocab.build([" ".join(WORDS)], min_freq=2)
    assert "the" in vocab.itos and "mat" not in vocab.itos
    assert len(Vocab.build([" ".join(WORDS)], max_size=3)) == 4 + 3


def test_lm_windows_shapes_and_shift():
    ids = torch.arange(1000)
    assert batchify(ids, 7).shape == (7, 142)
    windows = lm_windows(ids, batch_size=4, bptt=10)
    x, y = windows[0]
    assert x.shape == y.shape == (4, 10)
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y, x + 1)
    assert torch.equal(x[1, :3], torch.tensor([250, 251, 252]))  # column 1 starts a quarter of the way in
    last_x, _ = windows[len(windows) - 1]
    assert last_x[0, -1] < 249  # every target stays inside its own column


def test_bucket_batches_hold_every_example_once_with_similar_lengths():
    lengths = [(i * 37) % 50 + 1 for i in range(1000)]
    sampler = BucketBatchSampler(lengths, batch_size=16, shuffle=True, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000)) and len(batches) == len(sampler)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 5  # random batches would spread ~45
    sampler.set_epoch(1)
    assert list(sampler) != batches
    sampler.set_epoch(0)
    assert list(sampler) == batches
    padded, lens = pad([[5, 6, 7], [8]], pad_index=1)
    assert padded.tolist() == [[5, 6, 7], [8, 1, 1]] and lens.tolist() == [3, 1]


def test_glove_vectors_fill_the_embedding(tmp_path, caplog):
    vocab = Vocab.build(["the cat sat"], specials=[UNK, PAD])
    glove = tmp_path / "glove.txt"
    glove.write_text("the 1 2 3\ncat 4 5 6\ndog 7 8 9\n")
    embedding = load_glove(glove, vocab, freeze=True)
    assert embedding.found == 2 and not embedding.weight.requires_grad
    assert embedding.weight[vocab.lookup(["cat"])[0]].tolist() == [4, 5, 6]
    assert embedding.weight[vocab.pad_index].abs().sum() == 0
    assert load_glove(glove, vocab, freeze=False).weight.requires_grad
    glove.write_text("the 1 2 3\ncat 4 5\n")
    with pytest.raises(Exception, match="line 2"):
        load_glove(glove, vocab)


def test_uniform_model_has_perplexity_equal_to_the_vocabulary_size():
    vocab_size = 37
    metric = Perplexity()
    metric.update((torch.zeros(4, vocab_size, 9), torch.randint(0, vocab_size, (4, 9))))
    assert metric.compute() == pytest.approx(vocab_size, rel=1e-5)


def test_spinn_on_a_hand_checked_parse():
    from ignite_lab.recipes.snli import REDUCE, SHIFT, SKIP, SPINN, parse_tree

    tokens, transitions = parse_tree("( ( The cat ) sat )")
    assert tokens == ["the", "cat", "sat"] and transitions == [SHIFT, SHIFT, REDUCE, SHIFT, REDUCE]
    torch.manual_seed(0)
    spinn = SPINN(embed=5, hidden=4, tracker=3)
    words = torch.randn(1, 3, 5)
    root = spinn(words, torch.tensor([3]), torch.tensor([transitions]))

    # the same tree by hand: leaves, tracker steps, ((the cat) sat)
    leaf = spinn.leaf(words[0])
    zero = torch.zeros(8)
    state, stack, buffer = None, [zero, zero], [leaf[2], leaf[1], leaf[0]]
    for move in transitions:
        top = buffer[-1] if buffer else zero
        state = spinn.tracker(torch.cat([top[:4], stack[-1][:4], stack[-2][:4]]).unsqueeze(0), state)
        if move == SHIFT:
            stack.append(buffer.pop())
        else:
            right, left = stack.pop(), stack.pop()
            stack.append(spinn.reduce(left.unsqueeze(0), right.unsqueeze(0), state[0])[0])
    assert torch.allclose(root[0], stack[-1][:4], atol=1e-6)

    # batched with a different, longer tree (padded with SKIP), the first result does not change
    other_tokens, other = parse_tree("( a ( ( b c ) d ) )")
    batch_words = torch.cat([torch.cat([words, torch.zeros(1, 1, 5)], dim=1), torch.randn(1, 4, 5)])
    moves = torch.tensor([transitions + [SKIP] * 2, other])
    batched = spinn(batch_words, torch.tensor([3, 4]), moves)
    assert len(other_tokens) == 4 and torch.allclose(batched[0], root[0], atol=1e-6)


# recipes on tiny data ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wikitext(tmp_path_factory):
    root = tmp_path_factory.mktemp("wikitext")
    for split, repeats in (("train", 40), ("valid", 8), ("test", 8)):
        lines = [" = Title = ", ""] + [" ".join(WORDS)] * repeats
        (root / f"wiki.{split}.tokens").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def snli(tmp_path_factory):
    return make_snli(tmp_path_factory.mktemp("snli"))


def test_transformer_lm_reports_perplexity(run_cli, wikitext, tmp_path):
    result = run_cli(
        "run",
        "transformer_lm",
        "--data-dir",
        wikitext,
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--output-dir",
        tmp_path,
        "--set",
        "d_model=16",
        "--set",
        "ff=16",
        "--set",
        "bptt=8",
    )
    assert result.code == 0, result
    run = only_run(tmp_path, "transformer_lm")
    summary = json.loads((run / "summary.json").read_text())
    assert 1 < summary["test"]["perplexity"] < 30 and summary["best_checkpoint"].startswith("best_checkpoint_")
    assert math.isclose(math.log(summary["test"]["perplexity"]), summary["test"]["loss"], rel_tol=1e-4)
    # the book's basic_english: <unk> the one special, no <eos> at line ends
    vocab = Vocab.from_json((run / "vocab.json").read_text(), run / "vocab.json")
    assert vocab.itos[0] == UNK and EOS not in vocab.itos and PAD not in vocab.itos


def test_transformer_lm_trains_on_valid_when_train_is_missing(run_cli, wikitext, tmp_path):
    data = tmp_path / "no-train"
    data.mkdir()
    for split in ("valid", "test"):
        (data / f"{split}.txt").write_text((wikitext / f"wiki.{split}.tokens").read_text())
    assert_clean_error(
        run_cli("run", "transformer_lm", "--data-dir", data, "--output-dir", tmp_path),
        "train split not found",
        "wiki.train.tokens or train.txt",
    )
    result = run_cli(
        "run",
        "transformer_lm",
        "--data-dir",
        data,
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--set",
        "train_split=valid",
        "--set",
        "d_model=8",
        "--set",
        "ff=8",
        "--set",
        "bptt=4",
        "--output-dir",
        tmp_path,
    )
    assert result.code == 0, result


def test_char_rnn_samples_each_epoch_and_generates_reproducibly(run_cli, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("ROMEO: to be or not to be, that is the question.\n" * 60)
    result = run_cli(
        "run",
        "char_rnn",
        "--epochs",
        "2",
        "--output-dir",
        tmp_path / "runs",
        "--set",
        f"text={corpus}",
        "--set",
        "hidden=32",
        "--set",
        "chunk=20",
        "--set",
        "sample_length=30",
        "--batch-size",
        "8",
    )
    assert result.code == 0, result
    run = only_run(tmp_path / "runs", "char_rnn")
    assert "sample after epoch 2" in result.output and "--- epoch 2" in (run / "media" / "sample.txt").read_text()
    best = run / "checkpoints" / json.loads((run / "summary.json").read_text())["best_checkpoint"]
    samples = [
        ignite_lab(
            "generate",
            "char_rnn",
            "--checkpoint",
            best,
            "--prime",
            "ROMEO:",
            "--length",
            "50",
            "--temperature",
            "0.8",
            "--seed",
            seed,
        )
        for seed in ("1", "1", "2")
    ]
    assert all(s.returncode == 0 for s in samples), samples[0].stderr
    texts = [s.stdout[:-1] for s in samples]  # click.echo adds one newline; the sample may end in its own
    assert texts[0] == texts[1] != texts[2] and texts[0].startswith("ROMEO:") and len(texts[0]) == 56
    assert set(texts[0]) <= set(corpus.read_text())


def test_generate_refuses_a_recipe_that_does_not_generate(run_cli, tmp_path):
    assert run_cli("run", "xor", "--epochs", "1", "--output-dir", tmp_path).code == 0
    best = next((only_run(tmp_path, "xor") / "checkpoints").glob("best_*.pt"))
    assert_clean_error(run_cli("generate", "xor", "--checkpoint", best), "does not generate text")


@pytest.mark.parametrize(
    "encoder, extra",
    [("rnn", []), ("lstm", ["--set", "bidirectional=true", "--set", "layers=2"]), ("gru", []), ("spinn", [])],
)
def test_snli_encoders(run_cli, snli, tmp_path, encoder, extra):
    result = run_cli(
        "run",
        "snli",
        "--data-dir",
        snli,
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--output-dir",
        tmp_path,
        "--set",
        f"encoder={encoder}",
        "--set",
        "embed=8",
        "--set",
        "hidden=8",
        "--set",
        "mlp=8",
        *extra,
    )
    assert result.code == 0, result
    assert "1 without a gold label skipped" in result.output  # 4 dev rows: one has '-'
    records = read_jsonl(only_run(tmp_path, "snli") / "metrics.jsonl")
    test = next(r for r in records if r["split"] == "test")["metrics"]
    assert len(test["confusion"]) == 3 and sum(map(sum, test["confusion"])) == 3


def test_snli_with_glove_vectors(run_cli, snli, tmp_path):
    glove = tmp_path / "vectors.txt"
    glove.write_text("dog 0.1 0.2 0.3 0.4\ncat 0.5 0.6 0.7 0.8\nrunning 1 1 1 1\n")
    result = run_cli(
        "run",
        "snli",
        "--data-dir",
        snli,
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--output-dir",
        tmp_path,
        "--set",
        f"glove={glove}",
        "--set",
        "hidden=8",
        "--set",
        "mlp=8",
    )
    assert result.code == 0, result
    assert "vectors: 2 of" in result.output


def test_snli_malformed_jsonl_names_the_line(run_cli, snli, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for split in ("train", "dev", "test"):
        (bad / f"snli_1.0_{split}.jsonl").write_text((snli / f"snli_1.0_{split}.jsonl").read_text())
    with open(bad / "snli_1.0_dev.jsonl", "a") as f:
        f.write('{"gold_label": "neutral", "sentence1_binary_parse": \n')
    assert_clean_error(
        run_cli("run", "snli", "--data-dir", bad, "--output-dir", tmp_path), "snli_1.0_dev.jsonl, line 5"
    )


def test_auto_mpg_bundled_and_malformed(run_cli, tmp_path):
    result = run_cli("run", "auto_mpg", "--epochs", "3", "--output-dir", tmp_path)
    assert result.code == 0, result
    summary = json.loads((only_run(tmp_path, "auto_mpg") / "summary.json").read_text())
    assert {"mse", "mae", "r2"} <= set(summary["test"]) and summary["best_val"]["mse"] > 0
    from ignite_lab.kit.datasets import BUNDLED
    from ignite_lab.recipes.auto_mpg import read_auto_mpg

    raw, mpg, dropped = read_auto_mpg(BUNDLED / "auto_mpg" / "auto-mpg.data")
    assert raw.shape == (392, 7) and dropped == 6
    bad = tmp_path / "mpg"
    bad.mkdir()
    (bad / "auto-mpg.data").write_text(
        (BUNDLED / "auto_mpg" / "auto-mpg.data").read_text().splitlines()[0] + "\n18.0 8 307.0 130.0\n"
    )
    assert_clean_error(run_cli("run", "auto_mpg", "--data-dir", bad, "--output-dir", tmp_path), "auto-mpg.data, line 2")


def test_empty_text_file_and_a_vocabulary_that_does_not_match(run_cli, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert_clean_error(
        run_cli("run", "char_rnn", "--set", f"text={empty}", "--output-dir", tmp_path), "empty.txt is empty"
    )

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abcdefgh " * 300)
    args = ["--set", f"text={corpus}", "--set", "hidden=8", "--set", "chunk=10", "--set", "sample_length=5"]
    assert run_cli("run", "char_rnn", "--epochs", "1", "--output-dir", tmp_path / "runs", *args).code == 0
    run = only_run(tmp_path / "runs", "char_rnn")
    best = next((run / "checkpoints").glob("best_*.pt"))
    (run / "vocab.json").write_text(Vocab.build(["xyz"], level="char", specials=[UNK]).to_json())
    assert_clean_error(run_cli("eval", "char_rnn", "--checkpoint", best), "does not fit char_rnn's model")
    (run / "vocab.json").write_text("{broken")
    assert_clean_error(run_cli("eval", "char_rnn", "--checkpoint", best), "not an ignite-lab vocabulary file")
