"""``ignite-lab export``: a trained model as a file that runs without ignite-lab or the recipe's source.

Formats: TorchScript (``torch.jit.trace``: load with ``torch.jit.load``), ONNX (``torch.onnx.export``: run
with onnxruntime; the onnx packages are the optional extra ``ignite-lab[onnx]``) and ``torch.export``'s
ExportedProgram (load with ``torch.export.load``). The batch dimension is left dynamic where the
exporter allows it. Nothing is written unless it checks out: the exported file is loaded back and run on
a batch of real validation inputs, and its outputs must match the eager model's within TOLERANCE.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from ignite.utils import apply_to_tensor

from ignite_lab.core.errors import UserError
from ignite_lab.core.files import new_temporary, write_atomic
from ignite_lab.core.recipe import Recipe
from ignite_lab.tools.evaluation import load_for_inference
from ignite_lab.training.checkpoints import run_dir_of
from ignite_lab.training.loaders import build_loader
from ignite_lab.training.rundir import RunDir

FORMATS = ("torchscript", "onnx", "exported-program")
SUFFIXES = {"torchscript": ".torchscript.pt", "onnx": ".onnx", "exported-program": ".pt2"}
TOLERANCE = "max |exported - eager| <= 1e-4 x (1 + max |eager|)"


@dataclass
class Exported:
    path: Path
    max_difference: float
    batch: int
    dynamic_batch: bool
    companions: list[Path]  # what turns raw inputs into the model's: beside the model, named after it


def export(recipe: Recipe, checkpoint: Path, fmt: str, out: Path | None = None) -> Exported:
    """Export the checkpoint's model to ``fmt``, check it against the eager model, then write it to ``out``."""
    parts, config, _ = load_for_inference(recipe, checkpoint, "cpu")
    model = parts.model.eval()
    x = example_batch(parts, config)
    with torch.inference_mode():
        eager = model(x)
    if not isinstance(eager, torch.Tensor):
        raise UserError(f"{recipe.name}'s model returns {type(eager).__name__}, not one tensor: it cannot be exported")
    out = out or RunDir(run_dir_of(checkpoint)).exports / f"{recipe.name}{SUFFIXES[fmt]}"
    if fmt == "exported-program" and out.suffix != ".pt2":
        raise UserError(f"--out {out}: torch.export.load reads .pt2 files only; name it {out.stem}.pt2")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = new_temporary(out)  # the same suffix: torch.export checks it
        os.close(fd)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    try:
        run = WRITERS[fmt](model, x, tmp)
        got = run(x)
        difference = max_difference(got, eager)
        if not close(got, eager):
            raise UserError(
                f"{recipe.name} exported to {fmt} gives other outputs than the model: max difference {difference:.3g} "
                f"({TOLERANCE} is required); not written"
            )
        if not answers_like_the_model(run, model, reversed_batch(x)):
            raise UserError(
                f"{recipe.name} does not export to {fmt}: the exported graph holds the example inputs' own control "
                "flow (the same inputs in another order give other outputs); not written"
            )
        dynamic = takes_other_batches(run, model, x)
        os.replace(tmp, out)
    except UserError:
        raise
    except OSError as exc:  # a full disk, a read-only folder
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    except Exception as exc:  # each exporter fails its own way on what it cannot trace
        raise UserError(f"{recipe.name} does not export to {fmt}: {type(exc).__name__}: {first_line(exc)}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return Exported(out, difference, batch_size(x), dynamic, companions(run_dir_of(checkpoint), out, fmt))


COMPANIONS = ("preprocess.json", "tokenizer.json", "labels.json", "vocab.json")


def companions(run: Path, out: Path, fmt: str) -> list[Path]:
    """The run's files that turn raw input into model input (preprocess.json: image size and normalization, or a
    table's columns; tokenizer.json; labels.json; vocab.json), copied beside the model as NAME.<file>, so the
    model runs from those files alone."""
    stem = out.name.removesuffix(SUFFIXES[fmt]) if out.name.endswith(SUFFIXES[fmt]) else out.stem
    written = []
    for name in COMPANIONS:
        source = run / name
        if source.is_file():
            target = out.with_name(f"{stem}.{name}")
            try:
                write_atomic(target, source.read_bytes())
            except OSError as exc:
                raise UserError(f"cannot write {target}: {exc.strerror or exc}") from None
            written.append(target)
    return written


def reversed_batch(x: Any) -> Any:
    """The same inputs in reverse order: a trace that baked in per-example control flow (SPINN's shift and
    reduce) answers them wrongly."""
    return apply_to_tensor(x, lambda t: t.flip(0))


def takes_other_batches(run: Runner, model: torch.nn.Module, x: Any) -> bool:
    """Whether the exported model also answers a batch of another size (half, or twice one input), and answers
    it as the model does."""
    n = batch_size(x)
    other = apply_to_tensor(x, lambda t: t[: n // 2] if n > 1 else torch.cat([t, t]))
    return answers_like_the_model(run, model, other)


def answers_like_the_model(run: Runner, model: torch.nn.Module, x: Any) -> bool:
    try:
        got = run(x)
    except Exception:  # a shape baked into the graph
        return False
    with torch.inference_mode():
        eager = model(x)
    return close(got, eager)


def close(got: torch.Tensor, eager: torch.Tensor) -> bool:
    """TOLERANCE: the largest difference within 1e-4 of the outputs' scale."""
    return max_difference(got, eager) <= 1e-4 * (1 + float(eager.abs().max()))


def max_difference(got: torch.Tensor, eager: torch.Tensor) -> float:
    """The largest absolute difference; infinite when the shapes differ."""
    if got.shape != eager.shape:
        return float("inf")
    return float((got.float() - eager.float()).abs().max())


def example_batch(parts: Any, config: Any) -> Any:
    """The first batch of the validation split (real inputs, converted as training converts them), or the
    predictor's made-up example where the recipe exports from its run files without reading data."""
    if not config.reads("val") and parts.predictor is not None and parts.predictor.example is not None:
        return parts.predictor.example()
    loader = build_loader(
        parts.val, min(8, config.batch_size), shuffle=False, seed=config.seed, device=torch.device("cpu")
    )
    x, _ = next(iter(loader))
    return x


def tensors(x: Any) -> list[torch.Tensor]:
    """The tensors of a model input (a tensor, or tuples, lists and dicts of them), in order."""
    if isinstance(x, torch.Tensor):
        return [x]
    items = x.values() if isinstance(x, dict) else x if isinstance(x, (list, tuple)) else []
    return [t for item in items for t in tensors(item)]


def batch_size(x: Any) -> int:
    return int(tensors(x)[0].shape[0])


def first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


Runner = Callable[[Any], torch.Tensor]  # the exported file, loaded back: inputs -> outputs


def to_torchscript(model: torch.nn.Module, x: Any, path: Path) -> Runner:
    torch.jit.trace(model, (x,), strict=False, check_trace=False).save(str(path))
    loaded = torch.jit.load(str(path))
    return lambda inputs: run_inference(loaded, inputs)


def run_inference(module: Any, inputs: Any) -> torch.Tensor:
    with torch.inference_mode():
        return module(inputs)


def dynamic_batch(x: Any) -> Any:
    """Every tensor of the input with a dynamic first (batch) dimension, for torch.export."""
    return (apply_to_tensor(x, lambda t: {0: torch.export.Dim.AUTO}),)


def exported_program(model: torch.nn.Module, x: Any) -> Any:
    try:
        return torch.export.export(model, (x,), dynamic_shapes=dynamic_batch(x))
    except Exception:  # some models pin the batch (a reshape to a fixed size): export that batch
        return torch.export.export(model, (x,))


def to_exported_program(model: torch.nn.Module, x: Any, path: Path) -> Runner:
    torch.export.save(exported_program(model, x), str(path))
    loaded = torch.export.load(str(path)).module()
    return lambda inputs: run_inference(loaded, inputs)


def to_onnx(model: torch.nn.Module, x: Any, path: Path) -> Runner:
    try:
        import onnxruntime
    except ImportError:
        raise UserError("ONNX export needs the onnx extra: pip install 'ignite-lab[onnx]'") from None
    torch.onnx.export(exported_program(model, x), (x,), str(path), dynamo=True, external_data=False, verbose=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(inputs: Any) -> torch.Tensor:
        feed = {arg.name: leaf.numpy() for arg, leaf in zip(session.get_inputs(), tensors(inputs), strict=True)}
        return torch.from_numpy(session.run(None, feed)[0])

    return run


WRITERS: dict[str, Callable[[torch.nn.Module, Any, Path], Runner]] = {
    "torchscript": to_torchscript,
    "onnx": to_onnx,
    "exported-program": to_exported_program,
}
