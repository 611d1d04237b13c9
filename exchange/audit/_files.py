"""Files the access log's processes keep: written atomically, so a crash leaves the old content or the new."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["fsync_directory", "read_bounded", "write_atomically"]


def write_atomically(path: Path, data: bytes, *, fsync: bool = True, sync_directory: bool = True) -> None:
    """Write ``data`` to a sibling of ``path``, flush it to disk, rename it over ``path`` and (unless told not
    to, when the caller syncs many at once) sync the directory so the rename is durable too."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            if fsync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fsync and sync_directory:
        fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_bounded(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path``, or None if it holds more than ``limit`` of them; OSError as ``open`` raises it."""
    with path.open("rb") as f:
        data = f.read(limit + 1)
    return None if len(data) > limit else data
