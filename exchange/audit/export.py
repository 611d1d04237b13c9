"""Exporting the access log to an offline archive (:mod:`exchange.audit.archive`): the Kafka edge that gathers
its pieces.

The archive ends at the newest published checkpoint at or below the index asked for (J), so it embeds the
signed, cosigned checkpoint that covers it. It holds the entries from the first index asked for (I) to J - 1,
the leaf hashes of all entries 0..J-1 (read from ``audit.log``: an archive of a range can still be checked
against the signed root), every checkpoint of size up to J, each policy bundle an exported PERMIT or DENY names,
the consent records of every partition those decisions read (offsets 0 up to the furthest one a decision saw),
the registry and the schema catalogue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from exchange.audit.archive import (
    ArchiveContents,
    ArchiveError,
    ArchiveLimits,
    Record,
    write_archive,
)
from exchange.audit.log import read_checkpoints
from exchange.audit.names import H_INDEX, LOG_TOPIC
from exchange.audit.sources import DECISION_TYPE
from exchange.consent.wire import CONSENT_TOPIC
from exchange.crypto.checkpoint import parse_checkpoint
from exchange.crypto.errors import MalformedCheckpointError
from exchange.crypto.merkle import leaf_hash
from exchange.kafka import ConsumedRecord, Consumer, read_ranges, read_to_end
from exchange.policy import bundle_id
from exchange.router.service import BUNDLE_TOPIC
from exchange.schemas import Catalogue, SchemaError
from exchange.settings import Settings

__all__ = ["ExportError", "ExportSummary", "export_archive"]

_GROUP = "exchange-audit-export"
_QUIET_S = 60.0


class ExportError(ArchiveError):
    """The log cannot be exported as asked: no checkpoint covers the range, or the log is not as its
    checkpoints say; the message says why."""


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What an export wrote: entries ``first`` to ``end - 1`` under the checkpoint of size ``end``."""

    path: Path
    origin: str
    first: int
    end: int
    checkpoints: int
    bundles: int
    consent_records: int
    missing_bundles: tuple[str, ...]
    """Bundles exported decisions name that ``policy.bundles`` does not hold (a verifier will report them)."""


def export_archive(settings: Settings, path: Path, *, first: int = 0, to_index: int | None = None,
                   catalogue: Catalogue | None = None, progress: Callable[[int], None] | None = None,
                   total: Callable[[int], None] | None = None, bootstrap: str | None = None) -> ExportSummary:
    """Write the archive of entries ``first``.. up to the newest published checkpoint of size at most
    ``to_index`` (default: the newest) to ``path``. ``total`` is told how many entries will be read (J), and
    ``progress`` how many have been, for a progress bar."""
    if first < 0 or (to_index is not None and to_index <= first):
        raise ExportError(f"the range {first}..{to_index} is empty or negative")
    catalogue = catalogue or Catalogue.load(settings.schemas)
    notes = [n.decode(errors="replace") for n in read_checkpoints(settings, bootstrap)]
    sizes = [_size(n, number) for number, n in enumerate(notes)]
    eligible = [s for s in sizes if to_index is None or s <= to_index]
    end = eligible[-1] if eligible else 0
    if end <= first:
        limit = "" if to_index is None else f" at or below {to_index}"
        raise ExportError(f"no published checkpoint{limit} covers entry {first} (the newest{limit} has size {end}); "
                          "export after the next checkpoint, or from an earlier index")
    if total is not None:
        total(end)
    with Consumer(_GROUP, settings=settings, bootstrap=bootstrap) as consumer:
        leaves, entries = _read_log(consumer, first, end, progress)
    bundles, reads = _named(catalogue, entries)
    consent: dict[int, list[Record]] = {p: [] for p, stop in reads.items() if stop > 0}
    for record in read_ranges({(CONSENT_TOPIC, p): (0, reads[p]) for p in consent}, settings=settings,
                              bootstrap=bootstrap):
        consent[record.partition].append((record.offset, record.key, record.value))
    published = {bundle_id(r.value): r.value for r in read_to_end(BUNDLE_TOPIC, settings=settings,
                                                                  bootstrap=bootstrap) if r.value}
    schemas = sorted(settings.schemas.rglob("*.avsc"))
    contents = ArchiveContents(
        origin=settings.audit_origin, first=first, entries=entries, leaf_hashes=leaves,
        checkpoints=[n for n, s in zip(notes, sizes, strict=True) if s <= end], registry=_read(settings.registry),
        schemas={p.relative_to(settings.schemas).as_posix(): _read(p) for p in schemas},
        bundles=[published[b] for b in sorted(bundles) if b in published],
        consent={p: sorted(consent[p], key=lambda r: r[0]) for p in sorted(consent)})
    _check_limits(contents)
    write_archive(path, contents)
    return ExportSummary(path, contents.origin, first, end, len(contents.checkpoints), len(contents.bundles),
                         sum(len(r) for r in contents.consent.values()),
                         tuple(b for b in sorted(bundles) if b not in published))


def _read_log(consumer: Consumer, first: int, end: int,
              progress: Callable[[int], None] | None) -> tuple[list[bytes], list[bytes]]:
    """The leaf hashes of entries 0..end-1 and the entries first..end-1, checked contiguous."""
    leaves: list[bytes] = []
    entries: list[bytes] = []
    for record in _stream(consumer, LOG_TOPIC, 0, None):
        found = dict(record.headers).get(H_INDEX, b"")
        index = int(found) if found.isdigit() else -1
        if index != len(leaves):
            raise ExportError(f"audit.log has entry {index} at offset {record.offset} where entry {len(leaves)} "
                              "belongs: run `exchange audit verify`")
        value = record.value or b""
        leaves.append(leaf_hash(value))
        if index >= first:
            entries.append(value)
        if progress is not None and (len(leaves) % 1000 == 0 or len(leaves) == end):
            progress(len(leaves))
        if len(leaves) == end:
            return leaves, entries
    raise ExportError(f"audit.log holds {len(leaves)} entries; its checkpoint of size {end} covers more")


def _named(catalogue: Catalogue, entries: list[bytes]) -> tuple[set[str], dict[int, int]]:
    """The bundles the PERMIT and DENY entries name, and the furthest consent offset read of each partition."""
    bundles: set[str] = set()
    reads: dict[int, int] = {}
    for value in entries:
        try:
            schema, entry = catalogue.decode(value)
        except SchemaError:
            continue  # not a decision: the verifier reports it
        if schema.type_name != DECISION_TYPE or entry["outcome"] == "REJECT":
            continue
        bundles.add(entry["bundle_id"])
        partition = entry["ingress_partition"]
        reads[partition] = max(reads.get(partition, 0), entry.get("consent_offset") or 0)
    return bundles, reads


def _stream(consumer: Consumer, topic: str, partition: int, stop: int | None) -> Iterator[ConsumedRecord]:
    """The committed records of ``topic[partition]`` below ``stop`` (default: its end offset as of the call), in
    offset order. :class:`ExportError` if the partition gives nothing for a minute before its end."""
    end = consumer.end_offsets([(topic, partition)])[(topic, partition)]
    end = end if stop is None else min(end, stop)
    if end <= 0:
        return
    consumer.assign([(topic, partition, 0)])
    quiet_until = time.monotonic() + _QUIET_S
    while True:
        batch = consumer.poll_batch(2000, timeout=0.5)
        for record in batch:
            if record.offset < end:
                yield record
            if record.offset >= end - 1:
                return
        if batch:
            quiet_until = time.monotonic() + _QUIET_S
        elif consumer.positions([(topic, partition)])[(topic, partition)] >= end:
            return  # the last offsets are transaction markers
        elif time.monotonic() > quiet_until:
            raise ExportError(f"reading {topic}[{partition}]: nothing arrived for {_QUIET_S:.0f}s before offset {end}")


def _size(note: str, number: int) -> int:
    split = note.rfind("\n\n")
    try:
        return parse_checkpoint(note[:split + 1]).size
    except MalformedCheckpointError as exc:
        raise ExportError(f"published checkpoint {number} is malformed ({exc}): run `exchange audit verify`") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc.strerror}") from exc


def _check_limits(contents: ArchiveContents) -> None:
    """Refuse to write an archive that a reader with the default limits would refuse."""
    limits = ArchiveLimits()
    sizes = [2 * len(contents.entries) + sum(map(len, contents.entries)), 32 * len(contents.leaf_hashes)]
    if len(contents.schemas) + len(contents.bundles) + len(contents.consent) + 5 > limits.members or \
            max(sizes) > limits.member_bytes or sum(sizes) > limits.total_bytes:
        raise ExportError("the archive would exceed the limits a reader accepts: export a shorter range "
                          "(--from, --to-index)")
