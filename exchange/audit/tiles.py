"""The access log as C2SP tlog-tiles (https://c2sp.org/tlog-tiles): ``checkpoint``; hash tiles
``tile/<L>/<N>[.p/<W>]`` (256 hashes of tree level 8·L, or the W < 256 a smaller tree has); entry bundles
``tile/entries/<N>[.p/<W>]`` (each entry a big-endian uint16 length and its bytes). ``<N>`` is in 3-digit groups,
all but the last prefixed with ``x``: 1234067 is ``x001/x234/067``.

:class:`~exchange.audit.tile_writer.TileWriter` writes each file atomically (a sibling, then a rename); a full
tile never gets other bytes, and once it exists the partial tiles it completes are deleted (the spec allows it;
clients fall back to the full tile). :class:`TileReader` rebuilds any node of the tree from a few tiles, so
proofs never need the whole log.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from exchange.audit.errors import AuditError
from exchange.crypto.checkpoint import Checkpoint, parse_checkpoint
from exchange.crypto.errors import InvalidIndexError, InvalidSizeError, MalformedCheckpointError
from exchange.crypto.merkle import EMPTY_ROOT, HASH_SIZE, node_hash

__all__ = ["CHECKPOINT_PATH", "MAX_ENTRY_SIZE", "TILE_HEIGHT", "TILE_WIDTH", "TileError", "TileReader", "TileRef",
           "checkpoint_size", "decode_entry_bundle", "encode_entry_bundle", "entries_path",
           "parse_tile_path", "read_entry_bundle", "read_tile", "tile_path"]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF
"""The longest entry an entry bundle can hold: its length is a big-endian uint16."""
CHECKPOINT_PATH = "checkpoint"

_PATH = re.compile(r"tile/(entries|0|[1-9][0-9]?)/((?:x[0-9]{3}/){0,6}[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?", re.ASCII)


class TileError(AuditError):
    """A tile, entry bundle or checkpoint cannot be written or read as tlog-tiles requires; the message says why."""


@dataclass(frozen=True, slots=True)
class TileRef:
    """One tile: ``level`` None for an entry bundle, ``width`` :data:`TILE_WIDTH` for a full tile."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    @property
    def path(self) -> str:
        level, index, width = self.level, self.index, self.width
        return entries_path(index, width) if level is None else tile_path(level, index, width)


def _encode_index(index: int) -> str:
    if index < 0:
        raise TileError(f"tile index {index} is negative")
    groups = [f"{index % 1000:03d}"]
    while index := index // 1000:
        groups.insert(0, f"x{index % 1000:03d}")
    return "/".join(groups)


def _suffix(width: int) -> str:
    if not 1 <= width <= TILE_WIDTH:
        raise TileError(f"tile width {width} is outside 1..{TILE_WIDTH}")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """``tile/<L>/<N>[.p/<W>]``, the hash tile of tile level ``level`` (tree level 8·L)."""
    if not 0 <= level <= MAX_LEVEL:
        raise TileError(f"tile level {level} is outside 0..{MAX_LEVEL}")
    return f"tile/{level}/{_encode_index(index)}{_suffix(width)}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """``tile/entries/<N>[.p/<W>]``, the entry bundle of entries 256·N onwards."""
    return f"tile/entries/{_encode_index(index)}{_suffix(width)}"


def parse_tile_path(path: str) -> TileRef:
    """The tile a canonical tlog-tiles path names; anything else (a leading ``x000``, a width of 256, a level
    above 63, a dot segment, an encoded character) raises :class:`TileError`."""
    found = _PATH.fullmatch(path)
    if found is None:
        raise TileError(f"{path[:80]!r} is not a tlog-tiles tile path")
    level = None if found[1] == "entries" else int(found[1])
    ref = TileRef(level, int(found[2].replace("x", "").replace("/", "")), int(found[3] or TILE_WIDTH))
    if (level is not None and level > MAX_LEVEL) or ref.width > TILE_WIDTH or ref.path != path:
        raise TileError(f"{path!r} is not a canonical tlog-tiles tile path")
    return ref


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """The entries as a bundle: each one a big-endian uint16 length and its bytes."""
    out = bytearray()
    for i, entry in enumerate(entries):
        if len(entry) > MAX_ENTRY_SIZE:
            raise TileError(f"entry {i} of the bundle has {len(entry)} bytes, more than {MAX_ENTRY_SIZE}")
        out += len(entry).to_bytes(2, "big")
        out += entry
    return bytes(out)


def decode_entry_bundle(data: bytes) -> list[bytes]:
    """The entries of a bundle; a truncated length or entry raises :class:`TileError`."""
    entries: list[bytes] = []
    at = 0
    while at < len(data):
        end = at + 2 + int.from_bytes(data[at:at + 2], "big")
        if at + 2 > len(data) or end > len(data):
            raise TileError(f"the entry bundle ends inside entry {len(entries)}")
        entries.append(data[at + 2:end])
        at = end
    return entries


def _read(directory: Path, ref: TileRef) -> list[bytes]:
    data = (directory / ref.path).read_bytes()
    if ref.level is None:
        items = decode_entry_bundle(data)
        if len(items) != ref.width:
            raise TileError(f"{ref.path} holds {len(items)} entries, not {ref.width}")
        return items
    if len(data) != ref.width * HASH_SIZE:
        raise TileError(f"{ref.path} has {len(data)} bytes, not {ref.width * HASH_SIZE}")
    return [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def read_tile(directory: str | Path, level: int, index: int, width: int = TILE_WIDTH) -> list[bytes]:
    """The hashes of one hash tile file (missing: :class:`FileNotFoundError`; malformed: :class:`TileError`)."""
    return _read(Path(directory), TileRef(level, index, width))


def read_entry_bundle(directory: str | Path, index: int, width: int = TILE_WIDTH) -> list[bytes]:
    """The entries of one entry bundle file (missing: :class:`FileNotFoundError`; malformed: :class:`TileError`)."""
    return _read(Path(directory), TileRef(None, index, width))


def checkpoint_size(directory: str | Path) -> int:
    """The tree size of the ``checkpoint`` file (0 if there is none), read **without** checking its signature:
    a point the tiles are known to cover, where a writer can resume."""
    try:
        note = (Path(directory) / CHECKPOINT_PATH).read_bytes()
    except FileNotFoundError:
        return 0
    return _unverified_checkpoint(note).size


def _unverified_checkpoint(note: bytes) -> Checkpoint:
    try:
        text = note.decode()
        split = text.rfind("\n\n")
        if split < 0:
            raise TileError("the checkpoint is not a signed note: no blank line before its signatures")
        return parse_checkpoint(text[:split + 1])
    except (UnicodeDecodeError, MalformedCheckpointError) as exc:
        raise TileError(f"the checkpoint is malformed: {exc}") from exc


def _perfect_root(hashes: Sequence[bytes]) -> bytes:
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


class TileReader:
    """The tree of a tiles directory at any size it covers, rebuilt from the tiles (a few at a time, cached)."""

    def __init__(self, directory: str | Path, *, cache: int = 64) -> None:
        self.directory = Path(directory)
        self._cache: OrderedDict[TileRef, list[bytes]] = OrderedDict()
        self._cache_size = cache

    def tile(self, level: int | None, index: int, width: int = TILE_WIDTH) -> list[bytes]:
        """The first ``width`` items of a tile: from its file, else from the full tile or a wider partial one."""
        ref = TileRef(level, index, width)
        if (found := self._cache.get(ref)) is not None:
            self._cache.move_to_end(ref)
            return found
        for candidate in self._candidates(ref):
            try:
                items = _read(self.directory, candidate)[:width]
            except FileNotFoundError:
                continue
            self._cache[ref] = items
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return items
        raise TileError(f"{self.directory / ref.path} is missing, and no full or wider tile holds its contents")

    def _candidates(self, ref: TileRef) -> list[TileRef]:
        if ref.width == TILE_WIDTH:
            return [ref]
        full = TileRef(ref.level, ref.index)
        partials = self.directory / (full.path + ".p")
        wider = sorted(int(p.name) for p in partials.iterdir() if p.name.isdigit()) if partials.is_dir() else []
        return [ref, full, *(TileRef(ref.level, ref.index, w) for w in wider if ref.width < w < TILE_WIDTH)]

    def entry(self, index: int, size: int) -> bytes:
        """Entry ``index`` of the log of ``size`` entries."""
        _check_index(index, size)
        n = index >> TILE_HEIGHT
        return self.tile(None, n, _width(0, n, size))[index & (TILE_WIDTH - 1)]

    def node_hash(self, level: int, index: int, size: int) -> bytes:
        """The hash of the perfect subtree at tree level ``level`` (0: a leaf hash) and ``index`` in that level,
        in the log of ``size`` entries (which must hold the whole subtree)."""
        if level < 0 or index < 0 or (index + 1) << level > size:
            raise InvalidIndexError(f"node {index} of level {level} is outside a tree of size {size}")
        tile_level, height = divmod(level, TILE_HEIGHT)
        n, offset = divmod(index << height, TILE_WIDTH)
        hashes = self.tile(tile_level, n, _width(tile_level, n, size))
        return _perfect_root(hashes[offset:offset + (1 << height)])

    def leaf_hashes(self, start: int, end: int, size: int) -> list[bytes]:
        """The leaf hashes of entries ``start`` to ``end - 1``."""
        if not 0 <= start <= end <= size:
            raise InvalidSizeError(f"leaves {start}..{end} are outside a tree of size {size}")
        return [self.node_hash(0, i, size) for i in range(start, end)]

    def _range_root(self, lo: int, hi: int, size: int) -> bytes:
        # MTH(D[lo:hi]) for a range RFC 9162's recursion yields (lo a multiple of the power of two >= hi - lo):
        # the perfect subtrees of hi - lo, largest first, folded from the right.
        pieces, at, count = [], lo, hi - lo
        for bit in reversed(range(count.bit_length())):
            if count >> bit & 1:
                pieces.append(self.node_hash(bit, at >> bit, size))
                at += 1 << bit
        result = pieces[-1]
        for piece in reversed(pieces[:-1]):
            result = node_hash(piece, result)
        return result

    def root(self, size: int) -> bytes:
        """The root of the log of ``size`` entries."""
        if size < 0:
            raise InvalidSizeError(f"tree size {size} is negative")
        return self._range_root(0, size, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The RFC 9162 inclusion proof of entry ``index`` in the log of ``size`` entries, from the tiles."""
        _check_index(index, size)
        top_down: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = 1 << ((hi - lo - 1).bit_length() - 1)
            if index < lo + k:
                top_down.append(self._range_root(lo + k, hi, size))
                hi = lo + k
            else:
                top_down.append(self._range_root(lo, lo + k, size))
                lo += k
        return top_down[::-1]

    def consistency_proof(self, m: int, n: int) -> list[bytes]:
        """The RFC 9162 consistency proof from the log of ``m`` entries to that of ``n``, from the tiles."""
        if not 0 <= m <= n:
            raise InvalidSizeError(f"tree sizes {m} -> {n} are not 0 <= m <= n")
        if m in (0, n):
            return []
        top_down: list[bytes] = []
        lo, hi, rel, whole = 0, n, m, True
        while rel != hi - lo:
            k = 1 << ((hi - lo - 1).bit_length() - 1)
            if rel <= k:
                top_down.append(self._range_root(lo + k, hi, n))
                hi = lo + k
            else:
                top_down.append(self._range_root(lo, lo + k, n))
                lo += k
                rel -= k
                whole = False
        return ([] if whole else [self._range_root(lo, hi, n)]) + top_down[::-1]


def _check_index(index: int, size: int) -> None:
    if not 0 <= index < size:
        raise InvalidIndexError(f"leaf index {index} is outside a tree of size {size}")


def _width(tile_level: int, index: int, size: int) -> int:
    # How many hashes tile ``index`` of ``tile_level`` has in a tree of ``size`` leaves.
    return min(TILE_WIDTH, (size >> (TILE_HEIGHT * tile_level)) - index * TILE_WIDTH)
