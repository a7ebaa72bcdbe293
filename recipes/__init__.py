"""``python -m recipes.NAME`` and ``make NAME`` from a checkout: the built-in recipes live in ignite_lab/recipes/
(installed as ``ignite_lab.recipes``, so a wheel adds no top-level ``recipes`` package beside other tools')."""

from pathlib import Path

__path__ = [str(Path(__file__).resolve().parent.parent / "ignite_lab" / "recipes")]
