"""Where the toolkit's log lines go: the console for people, and the run directory's train.log."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

LOGGER = "ignite_lab"


def setup_logging(level: int = logging.INFO) -> None:
    """Console output for people: plain messages, warnings and errors marked as such (idempotent)."""
    log = logging.getLogger(LOGGER)
    if any(isinstance(h, _StderrHandler) for h in log.handlers):
        log.setLevel(level)
        return
    handler = _StderrHandler()
    handler.setFormatter(_ConsoleFormatter())
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
    # Ignite's engines log "Engine run is terminating due to exception: ..." (empty for Ctrl-C) before
    # re-raising; the toolkit reports every such stop itself, in one line.
    logging.getLogger("ignite.engine").setLevel(logging.CRITICAL)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (click's test runner and pytest swap it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return f"{record.levelname.lower()}: {text}" if record.levelno >= logging.WARNING else text


@contextlib.contextmanager
def log_to_file(path: Path) -> Iterator[None]:
    """Copy the toolkit's log lines into ``path`` (the run's train.log) for the duration of a run."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
