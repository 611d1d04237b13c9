"""The surface an integrator writes against: a :class:`Source` or a :class:`Sink`, and three errors.

A source reads an agency's system; the runtime validates, signs and produces its records and commits them with
the source's offset in one Kafka transaction, then calls :meth:`Source.acknowledge`. A sink receives a
department's deliveries in batches; the runtime commits after :meth:`Sink.write` returns. Everything else —
transactions, fencing, dead letters, retries, metrics, shutdown — is the runtime's.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from exchange.errors import ExchangeError

__all__ = ["Backpressure", "BadRecord", "Offset", "OffsetError", "Retryable", "Sink", "SinkRecord", "Source",
           "SourceContext", "SourceRecord", "offset_bytes", "parse_offset"]

Offset = Mapping[str, str | int]
"""Where a source is: a small JSON object of strings and integers (a file and a line, a row id …), chosen by the
source. The runtime stores the offset of the last record of each committed batch and passes it back to
:meth:`Source.poll` after a restart."""

OFFSET_LIMIT = 4096
"""The largest encoded offset (bytes): an offset names a place, it does not carry data."""


class OffsetError(ExchangeError):
    """An offset that is not one: not a small mapping of names to strings or integers, or a stored one that is
    corrupt (the message says how)."""


def offset_bytes(offset: Offset) -> bytes:
    """The canonical encoding of an offset (sorted keys, no spaces); :class:`OffsetError` if it is not one."""
    if not isinstance(offset, Mapping) or not offset:
        raise OffsetError("an offset is a non-empty mapping of names to strings or integers")
    for name, value in offset.items():
        if not isinstance(name, str) or type(value) not in (str, int):
            raise OffsetError(f"offset entry {name!r}: names are strings, values strings or integers")
    data = json.dumps(dict(offset), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if len(data) > OFFSET_LIMIT:
        raise OffsetError(f"the offset has {len(data)} bytes encoded; at most {OFFSET_LIMIT} are allowed")
    return data


def parse_offset(data: bytes) -> dict[str, str | int]:
    """The offset ``data`` encodes; :class:`OffsetError`, saying why, for anything :func:`offset_bytes` would
    not write."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OffsetError(f"the stored offset is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise OffsetError("the stored offset is not a JSON object")
    if offset_bytes(value) != data:
        raise OffsetError("the stored offset is not in canonical form")
    return value


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record read from the source: its type, its values, and the source's offset once it is committed."""

    record_type: str
    values: Mapping[str, Any]
    offset: Offset


@dataclass(frozen=True, slots=True)
class SinkRecord:
    """One verified delivery for a sink: the released ``fields`` of an event under one agreement.

    ``(event_id, agreement_id)`` identifies it (:attr:`idempotency_key`): an agency with two agreements on a type
    receives an event once per agreement. ``subject`` is the recipient's pseudonym of the subject when the
    agreement pseudonymises, else the record's key (the publisher's pseudonym, or the record id)."""

    event_id: str
    agreement_id: str
    record_type: str
    fields: Mapping[str, Any]
    subject: str
    event_time: datetime
    source: str

    @property
    def idempotency_key(self) -> tuple[str, str]:
        return self.event_id, self.agreement_id


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What the runtime tells a source when it opens it."""

    name: str
    agency: str
    settings: Mapping[str, Any] = field(default_factory=dict)


class BadRecord(Exception):  # noqa: N818 - the name integrators read in their code: a record is bad
    """This record cannot be published (or written): it goes to the dead letters, and the stream goes on.

    A source raises it from :meth:`Source.poll` with the ``offset`` just past the bad record (the runtime dead-
    letters it and polls again from there) and, if it has them, the ``original`` bytes. A sink raises it from
    :meth:`Sink.write` with the bad ``record``; the runtime dead-letters that one and writes the rest again.
    """

    def __init__(self, reason: str, *, offset: Offset | None = None, original: bytes | None = None,
                 record: SinkRecord | None = None) -> None:
        super().__init__(reason)
        self.reason, self.offset, self.original, self.record = reason, offset, original, record


class Retryable(Exception):  # noqa: N818 - as above: the condition, not "an error"
    """A passing failure (a database restarting, a timeout): the runtime retries with backoff."""


class Backpressure(Exception):  # noqa: N818 - as above
    """The other side is saturated: pause ``retry_after`` seconds without committing, then try again."""

    def __init__(self, retry_after: float, reason: str = "backpressure") -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Source(ABC):
    """Reads records from an agency's system. Subclass it and implement :meth:`poll`; the rest is optional."""

    def open(self, context: SourceContext) -> None:  # noqa: B027 - optional hook
        """Connect to the system (called once, before the first poll)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`open` took (called once, also after a failure)."""

    @abstractmethod
    def poll(self, after: Offset | None) -> Iterable[SourceRecord]:
        """The next records after ``after`` (None: from the start), a batch at a time, without blocking long.

        Return an empty batch when nothing is new. Raise :class:`BadRecord` (with the offset after it) for a
        record that cannot be read, :class:`Retryable` or :class:`Backpressure` to wait.
        """

    def acknowledge(self, upto: Offset) -> None:  # noqa: B027 - optional hook
        """Records up to and including ``upto`` are committed to Kafka: move the file, mark the rows. Called only
        after the commit, in order; after a crash it may not be called for a batch that was committed, so make it
        idempotent and let :meth:`poll` skip what the offset says is done."""

    def remaining(self, after: Offset | None) -> int | None:
        """How many records wait after ``after``, for the total of a progress line on a terminal (bulk work);
        None, the default, when the source cannot tell. Called once, before the source is opened."""
        return None


class Sink(ABC):
    """Writes a department's deliveries to its system. Subclass it and implement :meth:`write`."""

    def open(self, context: SourceContext) -> None:  # noqa: B027 - optional hook
        """Connect to the system (called once, before the first write)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`open` took."""

    @abstractmethod
    def write(self, batch: Sequence[SinkRecord]) -> None:
        """Write ``batch``; idempotent by event id (a batch may be written again after a crash). Raise
        :class:`BadRecord` naming the record, :class:`Retryable` or :class:`Backpressure`."""
