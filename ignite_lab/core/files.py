"""Whole files written safely: a unique temporary beside the target, flushed, fsynced and renamed over it.

A reader (or a later resume) sees the old file or the new one, never half of one; two writers never
share a temporary; a failed write (a full disk) leaves the old file and no temporary. Whoever owns a
folder (a run's lock holder) clears the temporaries a killed writer left with ``remove_temporaries``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"  # every temporary file is named .STEM.PID.RANDOM.tmp[.SUFFIX]


def new_temporary(beside: Path) -> tuple[int, Path]:
    """A new, uniquely named temporary file beside ``beside`` (``.STEM.PID.RANDOM.tmp.SUFFIX``), open for
    writing, with the permissions the user's umask gives. Never shared by two writers."""
    while True:
        tmp = beside.with_name(f".{beside.stem}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}{beside.suffix}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write to a unique temporary name, fsync, then rename: a reader never sees half a file, two writers
    never share a temporary, and a failed write (a full disk) leaves the old file and no temporary."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A unique temporary path beside ``path`` to write; renamed onto ``path`` if the block succeeds, else removed."""
    fd, tmp = new_temporary(path)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_temporaries(folder: Path) -> list[Path]:
    """Temporaries a killed writer left in ``folder`` (only safe while its run's lock is held)."""
    removed = []
    for path in folder.glob(f".*{TEMP_SUFFIX}*"):
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    return removed
