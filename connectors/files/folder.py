"""The drop folder on disk: the files waiting in name order, and the moves to ``done/`` and ``rejected/``.

A file is waiting if it is a regular file in the folder whose name matches the pattern and does not start with
a dot (the convention of tools that upload under a hidden name, then rename). A move is a rename, so a file is in
exactly one of the three places; a name already taken in ``done/`` or ``rejected/`` gets a ``.1``, ``.2`` …
suffix rather than replace what is there.
"""

from __future__ import annotations

import contextlib
import os
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from connectors.files.errors import FilesConfigError

__all__ = ["Folder", "Place"]

Place = Literal["waiting", "done", "rejected"]
REASON_SUFFIX = ".reason.txt"


class Folder:
    """A drop folder with its ``done`` and ``rejected`` folders."""

    def __init__(self, directory: Path, pattern: str, done: Path, rejected: Path) -> None:
        self.directory, self.pattern, self.done, self.rejected = directory, pattern, done, rejected

    def prepare(self) -> None:
        """Check the drop folder exists and make ``done`` and ``rejected``; FilesConfigError otherwise."""
        if not self.directory.is_dir():
            raise FilesConfigError(f"the drop folder {self.directory} does not exist (or is not a directory)")
        for folder in (self.done, self.rejected):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise FilesConfigError(f"cannot make {folder}: {exc.strerror}") from exc
            if folder.stat().st_dev != self.directory.stat().st_dev:
                raise FilesConfigError(f"{folder} is on another file system than {self.directory}: a file is moved "
                                       "by renaming it, which must be atomic")

    def waiting(self) -> list[str]:
        """The names of the files waiting, in name order (Unicode code points, as ``sorted`` orders them)."""
        names = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if (not entry.name.startswith(".") and fnmatchcase(entry.name, self.pattern)
                        and entry.is_file(follow_symlinks=False)):
                    names.append(entry.name)
        return sorted(names)

    def path(self, name: str, place: Place = "waiting") -> Path:
        return {"waiting": self.directory, "done": self.done, "rejected": self.rejected}[place] / name

    def has(self, name: str, place: Place) -> bool:
        return self.path(name, place).is_file()

    def finish(self, name: str) -> None:
        """Move a finished file to ``done``. Nothing happens if it is not waiting (acknowledging twice is fine)."""
        if self.has(name, "waiting"):
            self._move(name, self._free(self.done, name))

    def reject(self, name: str, reason: str) -> None:
        """Move a file to ``rejected`` with ``<name>.reason.txt`` beside it (written first, so a crash between
        the two leaves the file waiting and the reason written again). Nothing happens if it is not waiting."""
        if not self.has(name, "waiting"):
            return
        target = self._free(self.rejected, name)
        target.with_name(target.name + REASON_SUFFIX).write_text(reason.rstrip("\n") + "\n", encoding="utf-8")
        self._move(name, target)

    def _move(self, name: str, target: Path) -> None:
        with contextlib.suppress(FileNotFoundError):  # moved meanwhile: the move is what was wanted
            (self.directory / name).rename(target)

    @staticmethod
    def _free(folder: Path, name: str) -> Path:
        target, n = folder / name, 0
        while target.exists():
            n += 1
            target = folder / f"{name}.{n}"
        return target
