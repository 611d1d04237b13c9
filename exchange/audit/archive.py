"""An offline archive of the access log: one zip file that an auditor checks with no broker.

Members, in this order (stored with fixed timestamps and modes, so one export gives the same bytes twice)::

    manifest.json            format, version, origin, first index I, end index J, and each other member's name,
                             size and SHA-256. Anyone can edit it: only the origin and I are read from it, and
                             the checks confirm both (a wrong one fails the checkpoints or the leaf hashes)
    entries                  entries I..J-1 in the C2SP tlog-tiles entry-bundle encoding (uint16 length, bytes)
    leaf-hashes              the 32-byte RFC 6962 leaf hashes of entries 0..J-1, concatenated
    checkpoints              every published checkpoint note of size <= J with its cosignatures, in publication
                             order, separated by an empty line; the last one has size J and covers the archive
    registry.yaml            the trust registry: the log's key (exchange-audit) and the consent issuer's
    schemas/<path>.avsc      the schema catalogue, to decode the entries and compile the bundles
    bundles/<hex>.json       each policy bundle an exported decision names (id ``sha256:<hex>``), as published
    consent/<partition>.jsonl  the consent records of each partition a decision read, from offset 0 up to the
                             furthest any decision saw: one ``{"offset", "key", "value"}`` a line (base64)

:func:`write_archive` writes the pieces; :func:`read_archive` opens an archive within hard limits (members,
sizes, names) and raises a :class:`MalformedArchiveError` for anything that is not this format. Neither trusts
the manifest: reading compares it with the members and reports the differences as notes. Checking what the
pieces say is :func:`exchange.audit.archive_check.verify_archive`; gathering them from the cluster is
:mod:`exchange.audit.export`. No Kafka here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exchange.audit.errors import AuditError
from exchange.audit.tiles import TileError, decode_entry_bundle, encode_entry_bundle
from exchange.crypto.encoding import b64decode_strict
from exchange.crypto.merkle import HASH_SIZE
from exchange.safeparse import SafeParseError, parse_json

__all__ = ["FORMAT", "VERSION", "ArchiveContents", "ArchiveError", "ArchiveLimitError", "ArchiveLimits",
           "ArchiveMemberError", "MalformedArchiveError", "Record", "read_archive", "write_archive"]

FORMAT = "exchange.local/audit-archive"
VERSION = 1
Record = tuple[int, bytes | None, bytes | None]
_CORE = ("manifest.json", "entries", "leaf-hashes", "checkpoints", "registry.yaml")
_BUNDLE = re.compile(r"bundles/([0-9a-f]{64})\.json", re.ASCII)
_CONSENT = re.compile(r"consent/(0|[1-9][0-9]{0,5})\.jsonl", re.ASCII)
_SCHEMA = re.compile(r"schemas/(?:[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}/){0,4}[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}\.avsc",
                     re.ASCII)
_STAMP = (1980, 1, 1, 0, 0, 0)


class ArchiveError(AuditError):
    """An archive of the access log cannot be written or read; the message says why."""


class MalformedArchiveError(ArchiveError):
    """Not an archive of this format: not a zip, a member unreadable or malformed, an unsafe member name."""


class ArchiveMemberError(MalformedArchiveError):
    """A member the format requires is missing, or a member is not one the format has (or appears twice)."""


class ArchiveLimitError(MalformedArchiveError):
    """The archive exceeds a limit the reader sets: too many members, a member or the whole too large."""


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """What :func:`read_archive` accepts; the default fits a log of about a million entries."""

    members: int = 10_000
    member_bytes: int = 1 << 30
    total_bytes: int = 1 << 31


@dataclass(frozen=True, slots=True)
class ArchiveContents:
    """The pieces of an archive. ``schemas`` maps a path under the catalogue's root to its bytes; ``consent``
    maps a partition to its records ``(offset, key, value)`` in offset order. ``manifest_notes`` says where a
    read archive differs from its own manifest (informative: the manifest is never trusted)."""

    origin: str
    first: int
    entries: Sequence[bytes]
    leaf_hashes: Sequence[bytes]
    checkpoints: Sequence[str]
    registry: bytes
    schemas: Mapping[str, bytes]
    bundles: Sequence[bytes] = ()
    consent: Mapping[int, Sequence[Record]] = field(default_factory=dict)
    manifest_notes: tuple[str, ...] = ()

    @property
    def end(self) -> int:
        """The index after the last entry the archive holds."""
        return self.first + len(self.entries)


def write_archive(path: Path, contents: ArchiveContents) -> dict[str, Any]:
    """Write ``contents`` to ``path`` (beside it first, then renamed into place); returns the manifest."""
    members: list[tuple[str, bytes]] = [
        ("entries", encode_entry_bundle(contents.entries)),
        ("leaf-hashes", b"".join(contents.leaf_hashes)),
        ("checkpoints", "\n".join(contents.checkpoints).encode()),
        ("registry.yaml", contents.registry),
        *sorted((f"schemas/{name}", data) for name, data in contents.schemas.items()),
        *sorted({f"bundles/{hashlib.sha256(b).hexdigest()}.json": b for b in contents.bundles}.items()),
        *((f"consent/{p}.jsonl", _consent_lines(contents.consent[p])) for p in sorted(contents.consent)),
    ]
    for name, _ in members:
        if not _known(name):
            raise ArchiveError(f"{name!r} is not a member name the archive format has")
    sizes = [_size(n) for n in contents.checkpoints]
    manifest = {"format": FORMAT, "version": VERSION, "origin": contents.origin, "first_index": contents.first,
                "end_index": contents.end, "checkpoint_size": sizes[-1] if sizes else None,
                "members": [{"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in members]}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(out, "w") as archive:
            for name, data in [("manifest.json", json.dumps(manifest, indent=1).encode() + b"\n"), *members]:
                info = zipfile.ZipInfo(name, _STAMP)
                info.compress_type, info.create_system, info.external_attr = zipfile.ZIP_DEFLATED, 3, 0o100644 << 16
                archive.writestr(info, data, compresslevel=6)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return manifest


def read_archive(path: Path, limits: ArchiveLimits = ArchiveLimits()) -> ArchiveContents:
    """The contents of the archive at ``path``; :class:`MalformedArchiveError` (or a subclass) for anything else.
    A file that cannot be opened at all raises :class:`OSError`."""
    with path.open("rb") as file:
        try:
            with zipfile.ZipFile(file) as archive:
                data = _members(archive, limits)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError,
                RuntimeError) as exc:
            raise MalformedArchiveError(f"{path.name} is not a readable zip archive: {exc}") from None
    manifest = _manifest(data["manifest.json"])
    try:
        entries = decode_entry_bundle(data["entries"])
    except TileError as exc:
        raise MalformedArchiveError(f"entries: {exc}") from None
    hashes = data["leaf-hashes"]
    if len(hashes) % HASH_SIZE:
        raise MalformedArchiveError(f"leaf-hashes has {len(hashes)} bytes, not a multiple of {HASH_SIZE}")
    try:
        notes = _split_notes(data["checkpoints"].decode())
    except UnicodeDecodeError:
        raise MalformedArchiveError("checkpoints is not UTF-8 text") from None
    return ArchiveContents(
        origin=manifest["origin"], first=manifest["first_index"], entries=entries,
        leaf_hashes=[hashes[i:i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE)], checkpoints=notes,
        registry=data["registry.yaml"], schemas={n.removeprefix("schemas/"): d for n, d in data.items()
                                                 if n.startswith("schemas/")},
        bundles=[d for n, d in data.items() if n.startswith("bundles/")],
        consent={int(m[1]): _consent_records(n, d) for n, d in data.items() if (m := _CONSENT.fullmatch(n))},
        manifest_notes=_compare(manifest["members"], data))


def _known(name: str) -> bool:
    return name in _CORE or any(p.fullmatch(name) for p in (_BUNDLE, _CONSENT, _SCHEMA))


def _members(archive: zipfile.ZipFile, limits: ArchiveLimits) -> dict[str, bytes]:
    infos = archive.infolist()
    if len(infos) > limits.members:
        raise ArchiveLimitError(f"the archive has {len(infos)} members, more than {limits.members}")
    data: dict[str, bytes] = {}
    total = 0
    for info in infos:
        name = info.filename
        if name.startswith(("/", "\\")) or ".." in name.split("/") or "\\" in name or "\0" in name or ":" in name:
            raise MalformedArchiveError(f"member {name[:80]!r} has an unsafe name (an absolute or parent path)")
        if not _known(name):
            raise ArchiveMemberError(f"member {name[:80]!r} is not one the archive format has")
        if name in data:
            raise ArchiveMemberError(f"member {name} appears twice")
        if info.flag_bits & 0x1 or stat.S_ISLNK(info.external_attr >> 16):
            raise MalformedArchiveError(f"member {name} is encrypted or a symbolic link")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise MalformedArchiveError(f"member {name} uses compression method {info.compress_type}")
        total += info.file_size
        if info.file_size > limits.member_bytes:
            raise ArchiveLimitError(f"member {name} has {info.file_size} bytes, more than the limit of "
                                    f"{limits.member_bytes}")
        if total > limits.total_bytes:
            raise ArchiveLimitError(f"the members have more than {limits.total_bytes} bytes in all")
        with archive.open(info) as member:
            data[name] = member.read(limits.member_bytes + 1)
        if len(data[name]) > limits.member_bytes:
            raise ArchiveLimitError(f"member {name} is larger than {limits.member_bytes} bytes")
    missing = [n for n in _CORE if n not in data]
    if missing or not any(n.startswith("schemas/") for n in data):
        raise ArchiveMemberError(f"the archive has no member {(missing or ['schemas/...'])[0]}")
    return data


def _manifest(data: bytes) -> dict[str, Any]:
    try:
        manifest = parse_json(data.decode(), "manifest.json")
    except (UnicodeDecodeError, SafeParseError) as exc:
        raise MalformedArchiveError(f"manifest.json is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise MalformedArchiveError(f"manifest.json does not name the format {FORMAT} version {VERSION}")
    first, origin, members = manifest.get("first_index"), manifest.get("origin"), manifest.get("members")
    if type(first) is not int or first < 0 or not isinstance(origin, str) or not origin:
        raise MalformedArchiveError("manifest.json needs a first_index (an integer >= 0) and an origin")
    if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
        raise MalformedArchiveError("manifest.json needs a list of members")
    return manifest


def _compare(listed: list[dict[str, Any]], data: Mapping[str, bytes]) -> tuple[str, ...]:
    notes = []
    names = {str(m.get("name")): m for m in listed}
    for name, content in data.items():
        entry = names.pop(name, None)
        if name == "manifest.json":
            continue
        if entry is None:
            notes.append(f"{name} is not listed in the manifest")
        elif (entry.get("size"), entry.get("sha256")) != (len(content), hashlib.sha256(content).hexdigest()):
            notes.append(f"{name} differs from the manifest's size or SHA-256")
    return (*notes, *(f"{name} is listed in the manifest but absent" for name in names))


def _consent_lines(records: Iterable[Record]) -> bytes:
    def b64(raw: bytes | None) -> str | None:
        return None if raw is None else base64.b64encode(raw).decode()
    return b"".join(json.dumps({"offset": o, "key": b64(k), "value": b64(v)}).encode() + b"\n"
                    for o, k, v in records)


def _consent_records(name: str, data: bytes) -> list[Record]:
    lines = data.split(b"\n")
    records: list[Record] = []
    for number, line in enumerate(lines[:-1] if data.endswith(b"\n") else lines, 1):
        try:
            records.append(_consent_record(line, name, records[-1][0] + 1 if records else 0))
        except (UnicodeDecodeError, SafeParseError, ValueError, binascii.Error) as exc:
            raise MalformedArchiveError(f"{name} line {number}: {exc}") from None
    return records


def _consent_record(line: bytes, name: str, least: int) -> Record:
    item = parse_json(line.decode(), name)
    if not isinstance(item, dict) or set(item) != {"offset", "key", "value"}:
        raise ValueError("not an object of offset, key and value")
    offset, key, value = item["offset"], item["key"], item["value"]
    if type(offset) is not int or offset < least:
        raise ValueError("the offset is not an integer above the one before")
    if not all(v is None or isinstance(v, str) for v in (key, value)):
        raise ValueError("key and value must be base64 strings or null")
    return offset, None if key is None else b64decode_strict(key), None if value is None else b64decode_strict(value)


def _split_notes(text: str) -> list[str]:
    """The notes of the ``checkpoints`` member: each a text, an empty line and signature lines; an empty line
    between two notes."""
    notes: list[str] = []
    at = 0
    while at < len(text):
        body = text.find("\n\n", at)
        if body < 0:
            raise MalformedArchiveError(f"checkpoints: note {len(notes)} has no empty line before its signatures")
        end = text.find("\n\n", body + 2)
        end = len(text) if end < 0 else end + 1
        notes.append(text[at:end])
        at = end + 1
    return notes


def _size(note: str) -> int:
    lines = note.split("\n")
    return int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else -1
