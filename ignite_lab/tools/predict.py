"""``ignite-lab predict``: what a trained model says about a user's own files or text.

The recipe's ``Predictor`` (recipe.py) converts the inputs exactly as its training data was converted;
this module runs the model's forward pass as the evaluator does (device, precision, channels-last) and
formats the answer: the top-k classes with their probabilities, or the files a segmentation model wrote.

"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ignite_lab.core.errors import UserError
from ignite_lab.core.recipe import Predictor, Recipe, to_device
from ignite_lab.kit.inputs import image_files
from ignite_lab.outputs.tables import format_table
from ignite_lab.tools.evaluation import load_for_inference


def predict(
    recipe: Recipe, checkpoint: Path, inputs: list[str], top_k: int, device: str | None = None, **overrides: Any
) -> list[dict]:
    """One result per input: its name and either its top-k classes with probabilities or the files written.

    ``overrides`` replace config fields, as in ``load_for_inference`` (``data_dir`` for a moved dataset).
    """
    parts, _, process = load_for_inference(recipe, checkpoint, device, **overrides)
    predictor = parts.predictor
    if predictor is None:
        hint = f"; it writes text: ignite-lab generate {recipe.name} --checkpoint PATH" if parts.generate else ""
        raise UserError(f"{recipe.name} does not predict on inputs of your own{hint}")
    if not inputs:
        raise UserError(f"nothing to predict: give {recipe.name} some inputs ({predictor.note})")
    # whole images of any size cannot share a batch: such a model sees one file at a time
    chunks = [inputs] if predictor.batch else [[str(path)] for path in image_files(inputs)]
    results = []
    for chunk in chunks:
        names, x = predictor.read(chunk)
        with torch.inference_mode():
            scores = process.precision.forward(parts.model, to_device(x, process.device, parts.channels_last)).cpu()
        results += answers(predictor, names, scores, top_k)
    return results


def answers(predictor: Predictor, names: list[str], scores: torch.Tensor, top_k: int) -> list[dict]:
    """The files the predictor wrote, each input's predicted value (a regression), or its top-k classes with
    their probabilities."""
    if predictor.write is not None:
        return [{"input": name, "wrote": out} for name, out in zip(names, predictor.write(names, scores), strict=True)]
    if scores.dim() == 1:
        return [{"input": name, "value": round(float(v), 6)} for name, v in zip(names, scores, strict=True)]
    probabilities = torch.softmax(scores.float(), dim=1)
    classes = predictor.classes or [str(i) for i in range(probabilities.shape[1])]
    top = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    return [
        {
            "input": name,
            "top": [
                {"class": classes[int(i)], "probability": round(float(p), 4)} for p, i in zip(ps, ids, strict=True)
            ],
        }
        for name, ps, ids in zip(names, top.values, top.indices, strict=True)
    ]


def render(results: list[dict], as_json: bool) -> str:
    if as_json:
        return json.dumps(results, indent=1)
    if results and "wrote" in results[0]:
        return format_table(["input", "wrote"], [(r["input"], r["wrote"]) for r in results])
    if results and "value" in results[0]:
        return format_table(["input", "predicted"], [(r["input"], f"{r['value']:.4g}") for r in results])
    rows = [(r["input"], *[f"{t['class']} {t['probability']:.3f}" for t in r["top"]]) for r in results]
    k = len(results[0]["top"]) if results else 0
    return format_table(["input", *[f"#{i + 1}" for i in range(k)]], rows)
