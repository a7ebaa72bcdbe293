"""The command line: ``ignite-lab`` and its commands, each recipe's flags generated from the config
dataclasses, and finding recipes by name or file. The only layer that imports click."""

from ignite_lab.cli.main import cli, main

__all__ = ["cli", "main"]
