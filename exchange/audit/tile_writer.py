"""Writing the access log as C2SP tlog-tiles (the format is in :mod:`exchange.audit.tiles`): each file atomically,
a full tile never rewritten with other bytes, the checkpoint only after the tiles it covers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from exchange.audit._files import fsync_directory, write_atomically
from exchange.audit.tiles import (
    CHECKPOINT_PATH,
    MAX_ENTRY_SIZE,
    MAX_LEVEL,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileError,
    TileReader,
    TileRef,
    _perfect_root,
    _unverified_checkpoint,
    checkpoint_size,
    encode_entry_bundle,
    entries_path,
    tile_path,
)
from exchange.crypto.checkpoint import Checkpoint
from exchange.crypto.merkle import leaf_hash

__all__ = ["TileWriter"]


class TileWriter:
    """Writes a log's tiles into ``directory``: a new log, or, after :meth:`resume`, one written before. One writer
    per directory; with ``fsync`` (the default) each file and directory entry is on disk when a call returns."""

    def __init__(self, directory: str | Path, *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self._fsync = fsync
        self._size = 0
        self._levels: list[list[bytes]] = [[]]  # per tile level, the hashes of its partial tile
        self._bundle: list[bytes] = []  # the entries of the partial entry bundle
        self._synced: set[Path] = set()

    @property
    def size(self) -> int:
        """Entries written so far."""
        return self._size

    def resume(self, size: int) -> TileWriter:
        """Continue the log of ``size`` entries in the directory, reading back the partial tiles it needs (from
        the full tile or a wider partial one if need be). The directory may hold more, written before a crash:
        the partial tiles beyond ``size`` are deleted, and appending entries again writes the same full tiles, or
        raises :class:`TileError` if a full tile would get other bytes."""
        if size < 0:
            raise TileError(f"cannot resume at size {size}")
        reader = TileReader(self.directory)
        levels: list[list[bytes]] = []
        for level in range((size.bit_length() + TILE_HEIGHT - 1) // TILE_HEIGHT):
            width = (size >> (TILE_HEIGHT * level)) % TILE_WIDTH
            levels.append(reader.tile(level, size >> (TILE_HEIGHT * (level + 1)), width) if width else [])
        width = size % TILE_WIDTH
        bundle = reader.tile(None, size >> TILE_HEIGHT, width) if width else []
        for i, entry in enumerate(bundle):
            if leaf_hash(entry) != levels[0][i]:
                raise TileError(f"entry {size - width + i} does not hash to its leaf hash in the level-0 tile")
        self._size, self._levels, self._bundle = size, levels or [[]], list(bundle)
        self._write_partials(len(self._levels) - 1)  # the partial tiles of this size exist before any is deleted
        self._discard_ahead(None)
        for level in range(MAX_LEVEL + 1):
            if not (self.directory / "tile" / str(level)).is_dir():
                break
            self._discard_ahead(level)
        return self

    def _discard_ahead(self, level: int | None) -> None:
        # Delete the partial tiles of this level (None: entry bundles) that are wider than this size's.
        shift = TILE_HEIGHT * (level or 0)
        index, keep = self._size >> (shift + TILE_HEIGHT), (self._size >> shift) % TILE_WIDTH
        while _drop_partials(self.directory / TileRef(level, index).path, keep) or (
                self.directory / TileRef(level, index).path).exists():
            index, keep = index + 1, 0

    def append(self, entries: Sequence[bytes]) -> int:
        """Append entries; returns the new size. Writes the entry bundles and the hash tiles at every level that
        the entries complete or extend; nothing is written if an entry is longer than 65,535 bytes."""
        for i, entry in enumerate(entries):
            if len(entry) > MAX_ENTRY_SIZE:
                raise TileError(f"entry {self._size + i} has {len(entry)} bytes, more than {MAX_ENTRY_SIZE}")
        if not entries:
            return self._size
        full: list[tuple[str, bytes]] = []
        top = 0
        for entry in entries:
            self._size += 1
            self._bundle.append(bytes(entry))
            if len(self._bundle) == TILE_WIDTH:
                full.append((entries_path((self._size - 1) >> TILE_HEIGHT), encode_entry_bundle(self._bundle)))
                self._bundle = []
            top = max(top, self._add(leaf_hash(entry), full))
        for path, data in full:
            self._write_full(path, data)
        self._write_partials(top)
        return self._size

    def _write_partials(self, top: int) -> None:
        if self._bundle:
            self._write(entries_path(self._size >> TILE_HEIGHT, len(self._bundle)), encode_entry_bundle(self._bundle))
        for level, hashes in enumerate(self._levels[:top + 1]):
            if hashes:
                self._write(tile_path(level, self._size >> (TILE_HEIGHT * (level + 1)), len(hashes)), b"".join(hashes))
        self._sync_directories()

    def _add(self, h: bytes, full: list[tuple[str, bytes]]) -> int:
        # Add a leaf hash; a tile it fills is queued and its root goes up a level. Returns the top level touched.
        level = 0
        while True:
            if level == len(self._levels):
                self._levels.append([])
            hashes = self._levels[level]
            hashes.append(h)
            if len(hashes) < TILE_WIDTH:
                return level
            full.append((tile_path(level, ((self._size >> (TILE_HEIGHT * level)) - 1) >> TILE_HEIGHT),
                         b"".join(hashes)))
            h = _perfect_root(hashes)
            self._levels[level] = []
            level += 1

    def write_checkpoint(self, note: bytes | str) -> Checkpoint:
        """Publish a signed checkpoint as the ``checkpoint`` file. Its signature is not checked here, but its
        size must be covered by the tiles written, its root must be theirs at that size, and it must not be
        smaller than the checkpoint it replaces."""
        raw = note.encode() if isinstance(note, str) else note
        checkpoint = _unverified_checkpoint(raw)
        if checkpoint.size > self._size:
            raise TileError(f"the checkpoint covers {checkpoint.size} entries, the tiles only {self._size}: write "
                            "the tiles first")
        if (before := checkpoint_size(self.directory)) > checkpoint.size:
            raise TileError(f"the checkpoint of size {checkpoint.size} would replace one of size {before}")
        if TileReader(self.directory).root(checkpoint.size) != checkpoint.root_hash:
            raise TileError(f"the checkpoint's root is not the root of the tiles at size {checkpoint.size}")
        self._write(CHECKPOINT_PATH, raw)
        self._sync_directories()
        return checkpoint

    def _write_full(self, path: str, data: bytes) -> None:
        target = self.directory / path
        try:
            existing = target.read_bytes()
        except FileNotFoundError:
            self._write(path, data)
        else:
            if existing != data:
                raise TileError(f"{target} exists with other contents: the directory holds another log, or an "
                                "entry it covers was changed")
        if _drop_partials(target):
            target.with_name(target.name + ".p").rmdir()

    def _write(self, path: str, data: bytes) -> None:
        target = self.directory / path
        if not target.parent.is_dir():
            target.parent.mkdir(parents=True)
            new = target.parent
            while new != self.directory and new.parent not in self._synced:  # new directories' entries, too
                self._synced.add(new.parent)
                new = new.parent
        write_atomically(target, data, fsync=self._fsync, sync_directory=False)
        self._synced.add(target.parent)

    def _sync_directories(self) -> None:
        for directory in sorted(self._synced, key=lambda p: len(p.parts), reverse=True) if self._fsync else ():
            fsync_directory(directory)
        self._synced.clear()


def _drop_partials(full: Path, keep: int = 0) -> bool:
    # Delete the partial tiles of a tile wider than ``keep``; whether it has a directory of partial tiles.
    partials = full.with_name(full.name + ".p")
    if not partials.is_dir():
        return False
    for child in partials.iterdir():
        if not (child.name.isdigit() and int(child.name) <= keep):
            child.unlink()
    return True
