"""The access log as C2SP tlog-tiles: paths, the writer against tiles computed from the spec's formula, resuming
after a crash, proofs from the tiles against exchange.crypto.merkle's, and the server's path checks."""

from __future__ import annotations

import argparse
import gzip
import http.client
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from exchange.audit import AuditError
from exchange.audit.serve import IMMUTABLE, MUTABLE, TileServer
from exchange.audit.tile_writer import TileWriter
from exchange.audit.tiles import (
    MAX_ENTRY_SIZE,
    TileError,
    TileReader,
    TileRef,
    checkpoint_size,
    decode_entry_bundle,
    encode_entry_bundle,
    entries_path,
    parse_tile_path,
    read_entry_bundle,
    read_tile,
    tile_path,
)
from exchange.cli._tiles import register_serve
from exchange.crypto import merkle
from exchange.crypto.checkpoint import Checkpoint, sign_checkpoint
from exchange.crypto.errors import InvalidIndexError, InvalidSizeError
from exchange.crypto.keys import Signer

SIGNER = Signer.generate("exchange-audit")
ORIGIN = "test.local/access-log"


def _entries(count: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.choice([0, 1, 7, 32, 200])) for _ in range(count)]


def _reference(entries: Sequence[bytes]) -> dict[str, bytes]:
    """Every tile of the tree of these entries at its size, straight from the spec: hash i of level l is
    MTH(D[i·256^l : (i+1)·256^l]), the tile holds 256 of them (the last one fewer)."""
    leaves = [merkle.leaf_hash(e) for e in entries]
    files: dict[str, bytes] = {}
    level = 0
    while len(entries) >> (8 * level):
        span = 256**level
        hashes = [merkle.root(leaves[i * span:(i + 1) * span]) for i in range(len(entries) >> (8 * level))]
        for n in range(0, len(hashes), 256):
            files[tile_path(level, n // 256, len(hashes[n:n + 256]))] = b"".join(hashes[n:n + 256])
        level += 1
    for n in range(0, len(entries), 256):
        files[entries_path(n // 256, len(entries[n:n + 256]))] = encode_entry_bundle(entries[n:n + 256])
    return files


def _files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def _assert_tiles(directory: Path, entries: Sequence[bytes]) -> None:
    """The directory holds exactly the tiles of ``entries`` (and the checkpoint), plus older partial tiles of the
    tiles still partial, each a prefix of the current one."""
    expected, found = _reference(entries), _files(directory)
    for path, data in expected.items():
        assert found.get(path) == data, path
    current = {(ref.level, ref.index): ref for ref in map(parse_tile_path, expected)}
    for path, data in found.items():
        if path in expected or path == "checkpoint":
            continue
        ref = parse_tile_path(path)  # no temporary or stray file
        now = current.get((ref.level, ref.index))
        assert now is not None, f"{path}: a partial tile of a tile that is full or beyond the size"
        assert ref.width < now.width < 256, path
        if ref.level is None:
            assert decode_entry_bundle(data) == decode_entry_bundle(expected[now.path])[:ref.width], path
        else:
            assert data == expected[now.path][:32 * ref.width], path


def _write(directory: Path, entries: Sequence[bytes], batches: Sequence[int]) -> TileWriter:
    writer = TileWriter(directory, fsync=False)
    at = 0
    for size in batches:
        writer.append(entries[at:at + size])
        at += size
    return writer


def _batches(total: int, rng: random.Random, most: int = 40) -> list[int]:
    out: list[int] = []
    while sum(out) < total:
        out.append(min(rng.randint(1, most), total - sum(out)))
    return out


# -- paths ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("ref", "path"), [
    (TileRef(0, 0), "tile/0/000"),
    (TileRef(0, 1, 5), "tile/0/001.p/5"),
    (TileRef(1, 1234067), "tile/1/x001/x234/067"),
    (TileRef(2, 1000, 255), "tile/2/x001/000.p/255"),
    (TileRef(63, 999), "tile/63/999"),
    (TileRef(None, 67, 1), "tile/entries/067.p/1"),
    (TileRef(None, 1_000_000), "tile/entries/x001/x000/000"),
])
def test_tile_paths(ref: TileRef, path: str) -> None:
    assert ref.path == path
    assert parse_tile_path(path) == ref


@pytest.mark.parametrize("path", [
    "tile/0/x000/005", "tile/0/5", "tile/0/0005", "tile/00/000", "tile/64/000", "tile/-1/000", "tile/0/000.p/0",
    "tile/0/000.p/256", "tile/0/000.p/007", "tile/0/000.p/", "tile/0/000/", "/tile/0/000", "tile/0/X001/000",
    "tile/0/x001", "tile/data/000", "tile/0/../000", "tile/entries/../../etc/passwd", "tile/0/000.p/5/..",
    "tile/0/%30%30%30", "tile/0/00\u0661", "tile/0/000.p/5\n", "tile/8/000.p/1?x", "tile/0//000", "checkpoint",
])
def test_malformed_tile_paths_are_refused(path: str) -> None:
    with pytest.raises(TileError):
        parse_tile_path(path)


@pytest.mark.parametrize(("args", "kind"), [((0, 0, 0), TileError), ((0, 0, 257), TileError),
                                            ((64, 0), TileError), ((0, -1), TileError)])
def test_bad_tile_coordinates(args: tuple[int, ...], kind: type[Exception]) -> None:
    with pytest.raises(kind):
        tile_path(*args)


def test_the_spec_example_of_a_tree_of_70000(tmp_path: Path) -> None:
    entries = [i.to_bytes(4, "big") for i in range(70_000)]
    TileWriter(tmp_path, fsync=False).append(entries)
    tiles = {p for p in _files(tmp_path) if not p.startswith("tile/entries/")}
    assert tiles == ({tile_path(0, n) for n in range(273)} | {tile_path(0, 273, 112), tile_path(1, 0),
                                                               tile_path(1, 1, 17), tile_path(2, 0, 1)})
    assert {p for p in _files(tmp_path) if p.startswith("tile/entries/")} == (
        {entries_path(n) for n in range(273)} | {entries_path(273, 112)})
    reader = TileReader(tmp_path)
    leaves = [merkle.leaf_hash(e) for e in entries]
    for size in (65_535, 65_536, 65_537, 70_000):
        assert reader.root(size) == merkle.root(leaves[:size])
    for index in (0, 255, 256, 65_535, 65_536, 69_999):
        assert reader.inclusion_proof(index, 70_000) == merkle.inclusion_proof(index, leaves)
    for m in (1, 256, 65_535, 65_536, 65_537):
        assert reader.consistency_proof(m, 70_000) == merkle.consistency_proof(m, leaves)


def test_a_tree_of_256_is_a_full_tile_and_a_level_1_tile_of_width_1(tmp_path: Path) -> None:
    TileWriter(tmp_path, fsync=False).append(_entries(256))
    assert set(_files(tmp_path)) == {"tile/0/000", "tile/1/000.p/1", "tile/entries/000"}


# -- the writer -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_random_batches_give_the_tiles_computed_from_scratch(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    entries = _entries(600, seed)
    writer = TileWriter(tmp_path, fsync=seed in (2, 3))
    for batch, size in enumerate(_batches(600, rng, most=[1, 5, 40, 300][seed % 4])):
        assert writer.append(entries[writer.size:writer.size + size]) == writer.size
        if batch % 10 == 0 or writer.size % 256 < 3:
            _assert_tiles(tmp_path, entries[:writer.size])
    _assert_tiles(tmp_path, entries)
    assert writer.size == 600


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 511, 512, 513])
def test_sizes_at_tile_boundaries(tmp_path: Path, size: int) -> None:
    entries = _entries(size)
    _write(tmp_path, entries, _batches(size, random.Random(size)))
    _assert_tiles(tmp_path, entries)


def test_an_entry_over_65535_bytes_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    writer = TileWriter(tmp_path, fsync=False)
    writer.append([b"x" * MAX_ENTRY_SIZE])
    before = _files(tmp_path)
    with pytest.raises(TileError, match="65535") as caught:
        writer.append([b"ok", b"x" * (MAX_ENTRY_SIZE + 1)])
    assert isinstance(caught.value, AuditError)
    assert writer.size == 1
    assert _files(tmp_path) == before
    with pytest.raises(TileError):
        encode_entry_bundle([b"x" * (MAX_ENTRY_SIZE + 1)])


def test_empty_append_writes_nothing(tmp_path: Path) -> None:
    assert TileWriter(tmp_path).append([]) == 0
    assert _files(tmp_path) == {}


def test_read_helpers(tmp_path: Path) -> None:
    entries = _entries(300)
    TileWriter(tmp_path, fsync=False).append(entries)
    assert read_entry_bundle(tmp_path, 1, 44) == entries[256:]
    assert read_tile(tmp_path, 0, 0) == [merkle.leaf_hash(e) for e in entries[:256]]
    assert read_tile(tmp_path, 1, 0, 1) == [merkle.root([merkle.leaf_hash(e) for e in entries[:256]])]
    reader = TileReader(tmp_path)
    assert [reader.entry(i, 300) for i in (0, 255, 256, 299)] == [entries[i] for i in (0, 255, 256, 299)]
    assert reader.leaf_hashes(250, 260, 300) == [merkle.leaf_hash(e) for e in entries[250:260]]
    with pytest.raises(InvalidIndexError):
        reader.entry(300, 300)
    with pytest.raises(InvalidSizeError):
        reader.leaf_hashes(0, 301, 300)
    with pytest.raises(FileNotFoundError):
        read_tile(tmp_path, 0, 1, 45)
    (tmp_path / tile_path(0, 1, 44)).write_bytes(b"\0" * 33)
    with pytest.raises(TileError, match="bytes"):
        read_tile(tmp_path, 0, 1, 44)
    with pytest.raises(TileError):
        decode_entry_bundle(b"\x00\x05abc")


# -- resuming ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_resume_after_a_crash_continues_byte_identically(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    entries = _entries(600, seed)
    batches = _batches(600, rng, most=70)
    _write(tmp_path / "straight", entries, batches)
    cut = rng.randint(1, len(batches) - 1)
    crashed = _write(tmp_path / "crashed", entries, batches[:cut])
    writer = TileWriter(tmp_path / "crashed", fsync=False).resume(crashed.size)
    for size in batches[cut:]:
        writer.append(entries[writer.size:writer.size + size])
    assert _files(tmp_path / "crashed") == _files(tmp_path / "straight")


def test_resume_after_a_crash_in_the_middle_of_a_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = _entries(600, 3)
    batches = [100, 250, 250]  # the second fills tile 0, starts tile 1, extends level 1
    _write(tmp_path / "straight", entries, batches)
    real = TileWriter._write
    for crash_after in range(5):  # the batch writes 5 files: bundle 0, tile 0/0, bundle 1, tile 0/1, tile 1/0
        directory = tmp_path / f"crashed-{crash_after}"
        writer = _write(directory, entries, batches[:1])
        writes = 0

        def failing(self: TileWriter, path: str, data: bytes, limit: int = crash_after) -> None:
            nonlocal writes
            if writes == limit:
                raise OSError("killed")
            writes += 1
            real(self, path, data)

        monkeypatch.setattr(TileWriter, "_write", failing)
        with pytest.raises(OSError, match="killed"):
            writer.append(entries[100:350])
        monkeypatch.setattr(TileWriter, "_write", real)
        writes = 0
        resumed = TileWriter(directory, fsync=False).resume(100)
        resumed.append(entries[100:350])
        resumed.append(entries[350:])
        assert _files(directory) == _files(tmp_path / "straight"), crash_after


def test_resume_behind_the_directory(tmp_path: Path) -> None:
    entries = _entries(600, 4)
    writer = _write(tmp_path, entries, [300, 100])  # the tiles reach 400; what was committed ends at 300
    resumed = TileWriter(tmp_path, fsync=False).resume(300)
    resumed.append(entries[300:450])  # the same entries again: the same bytes
    _assert_tiles(tmp_path, entries[:450])
    other = TileWriter(tmp_path, fsync=False).resume(300)
    other.append([b"another entry"] * 150)  # within tile 1 only partial tiles change
    _assert_tiles(tmp_path, entries[:300] + [b"another entry"] * 150)
    with pytest.raises(TileError, match="other contents"):
        TileWriter(tmp_path, fsync=False).resume(0).append(_entries(256, 99))  # tile 0 is full and immutable
    assert writer.size == 400


def test_resume_rebuilds_its_partial_tiles_from_wider_ones(tmp_path: Path) -> None:
    entries = _entries(400, 5)
    _write(tmp_path, entries, [300, 100])
    (tmp_path / tile_path(0, 1, 44)).unlink()
    (tmp_path / entries_path(1, 44)).unlink()
    TileWriter(tmp_path, fsync=False).resume(300)
    assert read_tile(tmp_path, 0, 1, 44) == [merkle.leaf_hash(e) for e in entries[256:300]]
    assert read_entry_bundle(tmp_path, 1, 44) == entries[256:300]
    assert not (tmp_path / tile_path(0, 1, 144)).exists()  # beyond the size: gone
    assert not (tmp_path / entries_path(1, 144)).exists()
    _assert_tiles(tmp_path, entries[:300])


def test_resume_needs_the_tiles_of_its_size(tmp_path: Path) -> None:
    entries = _entries(300)
    _write(tmp_path, entries, [300])
    with pytest.raises(TileError, match="missing"):
        TileWriter(tmp_path).resume(301)
    bundle = tmp_path / entries_path(1, 44)
    bundle.write_bytes(encode_entry_bundle([b"changed", *entries[257:300]]))
    with pytest.raises(TileError, match="does not hash"):
        TileWriter(tmp_path).resume(300)
    assert TileWriter(tmp_path).resume(256).size == 256  # a prefix of the full tile serves an older size


# -- proofs -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [1, 2, 3, 7, 255, 256, 257, 300, 511, 512, 600])
def test_proofs_from_tiles_equal_merkles(tmp_path: Path, size: int) -> None:
    rng = random.Random(size)
    entries = _entries(size, size)
    _write(tmp_path, entries, _batches(size, rng, most=90))
    leaves = [merkle.leaf_hash(e) for e in entries]
    reader = TileReader(tmp_path, cache=4)
    indices = sorted({0, size - 1, *rng.sample(range(size), min(size, 25))})
    for index in indices:
        assert reader.inclusion_proof(index, size) == merkle.inclusion_proof(index, leaves), index
        smaller = rng.randint(index + 1, size)
        assert reader.inclusion_proof(index, smaller) == merkle.inclusion_proof(index, leaves[:smaller])
    for m in sorted({0, 1, size, *rng.sample(range(size + 1), min(size + 1, 25))}):
        assert reader.consistency_proof(m, size) == merkle.consistency_proof(m, leaves), m
        assert reader.root(m) == merkle.root(leaves[:m])
    with pytest.raises(InvalidIndexError):
        reader.inclusion_proof(size, size)
    with pytest.raises(InvalidSizeError):
        reader.consistency_proof(size, size - 1)


# -- checkpoints ------------------------------------------------------------------------------------------------

def _note(reader: TileReader, size: int) -> bytes:
    return sign_checkpoint(Checkpoint(ORIGIN, size, reader.root(size)), [SIGNER]).encode()


def test_checkpoints_follow_the_tiles(tmp_path: Path) -> None:
    writer = _write(tmp_path, _entries(300), [300])
    reader = TileReader(tmp_path)
    assert checkpoint_size(tmp_path) == 0
    writer.write_checkpoint(_note(reader, 200))
    assert checkpoint_size(tmp_path) == 200
    writer.write_checkpoint(_note(reader, 300))
    assert (tmp_path / "checkpoint").read_bytes() == _note(reader, 300)
    with pytest.raises(TileError, match="write the tiles first"):
        writer.write_checkpoint(sign_checkpoint(Checkpoint(ORIGIN, 301, b"\0" * 32), [SIGNER]))
    with pytest.raises(TileError, match="not the root"):
        writer.write_checkpoint(sign_checkpoint(Checkpoint(ORIGIN, 300, b"\0" * 32), [SIGNER]))
    with pytest.raises(TileError, match="would replace"):
        writer.write_checkpoint(_note(reader, 100))
    with pytest.raises(TileError, match="not a signed note"):
        writer.write_checkpoint(b"not a note")
    with pytest.raises(TileError, match="malformed"):
        writer.write_checkpoint("not a checkpoint\n\n\u2014 exchange-audit AAAA\n".encode())
    assert checkpoint_size(tmp_path) == 300
    assert TileWriter(tmp_path).resume(checkpoint_size(tmp_path)).size == 300


# -- the server -------------------------------------------------------------------------------------------------

@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[TileServer, Path]]:
    directory = tmp_path / "tiles"
    writer = _write(directory, _entries(300), [261, 39])
    writer.write_checkpoint(_note(TileReader(directory), 300))
    (directory / "secret.txt").write_text("not a tile")
    (tmp_path / "outside").write_text("outside")
    (directory / "tile" / "0" / "002").symlink_to(tmp_path / "outside")
    (directory / "tile" / "0" / ".000.tmp").write_text("temporary")
    with TileServer(directory).start() as running:
        yield running, directory


def _get(server: TileServer, path: str, method: str = "GET",
         headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    host, port = server.url.removeprefix("http://").rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest(method, path, skip_accept_encoding=True)
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_server_serves_tiles_with_their_caching(server: tuple[TileServer, Path]) -> None:
    running, directory = server
    for path, cache, kind in [("/checkpoint", MUTABLE, "text/plain; charset=utf-8"),
                              ("/tile/0/000", IMMUTABLE, "application/octet-stream"),
                              ("/tile/0/001.p/44", MUTABLE, "application/octet-stream"),
                              ("/tile/1/000.p/1", MUTABLE, "application/octet-stream"),
                              ("/tile/entries/000", IMMUTABLE, "application/octet-stream"),
                              ("/tile/entries/001.p/44", MUTABLE, "application/octet-stream")]:
        response = _get(running, path)
        assert response.status == 200, path
        assert response.getheader("Cache-Control") == cache, path
        assert response.getheader("Content-Type") == kind, path
    host, port = running.url.removeprefix("http://").rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/tile/entries/000", headers={"Accept-Encoding": "gzip"})
    zipped = connection.getresponse()
    assert zipped.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(zipped.read()) == (directory / "tile/entries/000").read_bytes()
    connection.request("GET", "/tile/entries/000", headers={"Accept-Encoding": "gzip;q=0, identity"})
    plain = connection.getresponse()
    assert plain.getheader("Content-Encoding") is None
    assert plain.read() == (directory / "tile/entries/000").read_bytes()
    connection.request("GET", "/tile/0/000")  # the same connection: HTTP/1.1 keep-alive
    assert connection.getresponse().read() == (directory / "tile/0/000").read_bytes()
    connection.close()


@pytest.mark.parametrize("path", [
    "/", "/secret.txt", "/../outside", "/tile/../secret.txt", "/tile/0/../../secret.txt", "/%2e%2e/outside",
    "/tile/0/%30%30%30", "/tile/0/000?x=1", "/tile/0/000#x", "/tile/0/x000/000", "/tile/0/000.p/0",
    "/tile/entries/000.p/256", "/tile/0/.000.tmp", "/tile/0/002", "/tile/0/003", "/tile/0/001.p/45", "/tile",
    "/tile/", "/checkpoint/", "/checkpoint?", "/CHECKPOINT", "http://example.com/checkpoint", "/tile/0/001",
])
def test_server_refuses_other_paths(server: tuple[TileServer, Path], path: str) -> None:
    assert _get(server[0], path).status == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD"])
def test_server_is_get_only(server: tuple[TileServer, Path], method: str) -> None:
    response = _get(server[0], "/checkpoint", method)
    assert response.status == 405
    assert response.getheader("Allow") == "GET"


def test_server_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(TileError, match="not a directory"):
        TileServer(tmp_path / "missing")


def test_cli_registration() -> None:
    parser = argparse.ArgumentParser()
    register_serve(parser.add_subparsers(dest="action"))
    args = parser.parse_args(["serve", "--tiles", "log-tiles"])
    assert (args.tiles, args.port, args.host) == (Path("log-tiles"), 8080, "127.0.0.1")
    args = parser.parse_args(["serve", "--tiles", "t", "--port", "0", "--host", "::1"])
    assert (args.port, args.host) == (0, "::1")
