"""The recipient's SDK: read your deliveries, get verified, typed records.

A department consumes ``delivery.<its id>`` with its encryption key; every record is opened by a
:class:`~exchange.delivery.DeliveryOpener` (decrypted, the router's data-key signature and the publisher's
signature over the minimised record verified). A record that fails any check is never handed over: it is counted
in :attr:`Subscriber.rejected`, goes to ``on_error(record, error)`` (default: log it) and is skipped. No record
can stop the stream: ``error`` is always an :class:`~exchange.delivery.OpenError`, and should opening raise
anything else (a bug), the Subscriber reports it as an :class:`~exchange.delivery.InternalOpenError` (reason
``INTERNAL``) for that record and goes on with the next.

Offsets are committed only when the caller says so (:meth:`Subscriber.commit`, or automatically by
:meth:`Subscriber.iterate` once the caller has asked for the record after a batch), so delivery is at-least-once:
process idempotently by :attr:`~exchange.delivery.ReceivedDelivery.idempotency_key` (``ce_id`` and agreement)::

    with Subscriber("tax-board") as subscriber:
        for delivery in subscriber:                  # commits each batch after you processed it
            upsert(delivery.idempotency_key, delivery.record_type, delivery.fields)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from exchange.context import Context
from exchange.crypto.keys import EncryptionKey
from exchange.delivery import DeliveryOpener, InternalOpenError, OpenError, ReceivedDelivery, delivery_topic
from exchange.kafka import ConsumedRecord, Consumer
from exchange.log import get_logger
from exchange.registry import Keystore, Registry
from exchange.schemas import Catalogue
from exchange.settings import Settings

__all__ = ["ErrorHandler", "RecordSource", "Subscriber"]

ErrorHandler = Callable[[ConsumedRecord, OpenError], None]
"""Called with each record that does not open, and why; it is skipped afterwards."""

_SHOWN = 64
"""How many characters of a hostile record's ``ce_id`` a log line shows."""


class RecordSource(Protocol):
    """What the subscriber reads from (``exchange.kafka.Consumer`` is one; tests pass an in-memory one)."""

    def poll_batch(self, max_records: int = 500, timeout: float = 1.0) -> list[ConsumedRecord]: ...
    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None: ...
    def close(self) -> None: ...


class Subscriber:
    """Reads one recipient's deliveries and yields only those that verify.

    ``encryption_key`` (or several, current first: see :class:`~exchange.delivery.DeliveryOpener`; default the
    recipient's key from ``keystore``, itself by default the settings' keystore), ``registry``
    and ``catalogue`` (default: from ``settings``) are what the recipient trusts. ``topic`` defaults to
    ``delivery.<recipient>``, ``group_id`` to ``<recipient>.subscriber``. The Kafka consumer is created on the
    first poll, with ``bootstrap`` (default: from settings) and ``consumer_overrides``; ``source`` replaces it.
    """

    def __init__(self, recipient: str, *, encryption_key: EncryptionKey | Sequence[EncryptionKey] | None = None,
                 keystore: Keystore | None = None, registry: Registry | None = None,
                 catalogue: Catalogue | None = None, group_id: str | None = None, topic: str | None = None,
                 settings: Settings | None = None, bootstrap: str | None = None,
                 on_error: ErrorHandler | None = None, consumer_overrides: Mapping[str, Any] | None = None,
                 source: RecordSource | None = None, opener: DeliveryOpener | None = None) -> None:
        self.recipient = recipient
        self.topic = topic or delivery_topic(recipient)
        self.group_id = group_id or f"{recipient}.subscriber"
        self._settings = settings
        self._bootstrap = bootstrap
        self._overrides = dict(consumer_overrides or {})
        self._source = source
        self._on_error = on_error or self._log_error
        self._pending: dict[tuple[str, int], int] = {}
        self.rejected: Counter[str] = Counter()
        """Records skipped, by reason code."""
        self.received = 0
        """Records handed over so far."""
        if opener is None:
            context = Context(settings)  # loads only what is asked of it, below
            if encryption_key is None:
                encryption_key = (keystore or context.keystore).encryption_private_key(recipient)
            opener = DeliveryOpener(recipient, encryption_key,
                                    context.registry if registry is None else registry,
                                    context.catalogue if catalogue is None else catalogue)
        elif opener.recipient != recipient:
            raise ValueError(f"the opener is {opener.recipient}'s, not {recipient}'s")
        self.opener = opener

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[ReceivedDelivery]:
        """Up to ``max_records`` verified deliveries (maybe none within ``timeout`` seconds).

        Records that fail a check are counted, go to ``on_error`` and are skipped; the others are returned in
        order. Their offsets, and those of the deliveries returned, are committed by the next :meth:`commit`. If
        ``on_error`` raises, the exception propagates and nothing of this batch is marked for commit (close the
        subscriber; a new one resumes after the last commit).
        """
        records = self._consumer().poll_batch(max_records, timeout)
        out: list[ReceivedDelivery] = []
        offsets: dict[tuple[str, int], int] = {}
        for record in records:
            error = self._open(record, out)
            if error is not None:
                self.rejected[error.reason] += 1
                self._on_error(record, error)
            offsets[(record.topic, record.partition)] = record.offset + 1
        self._pending.update(offsets)
        self.received += len(out)
        return out

    def _open(self, record: ConsumedRecord, out: list[ReceivedDelivery]) -> OpenError | None:
        """Open ``record`` into ``out``; why not, if it does not open (never an exception)."""
        try:
            out.append(self.opener.open(record.key, record.value, record.headers, record.topic,
                                        timestamp_ms=record.timestamp_ms))
        except OpenError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - a bug in opening one record must not end the stream: it is reported
            kind = type(exc).__name__
            error = InternalOpenError(f"opening the record raised {kind}: {_describe(exc)}", kind)
            error.__cause__ = exc
            return error
        return None

    def commit(self) -> None:
        """Commit the offsets of everything :meth:`poll` returned or skipped so far (call after processing)."""
        if self._pending:
            self._consumer().commit(self._pending)
            self._pending = {}

    def iterate(self, max_records: int = 500, timeout: float = 1.0) -> Iterator[ReceivedDelivery]:
        """Verified deliveries for ever; each batch is committed when the caller asks for what comes after it."""
        while True:
            yield from self.poll(max_records, timeout)
            self.commit()

    def __iter__(self) -> Iterator[ReceivedDelivery]:
        return self.iterate()

    def close(self) -> None:
        """Close the consumer (uncommitted offsets are not committed: their records will be read again)."""
        if self._source is not None:
            self._source.close()
            self._source = None

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _consumer(self) -> RecordSource:
        if self._source is None:
            self._source = Consumer(self.group_id, [self.topic], settings=self._settings, bootstrap=self._bootstrap,
                                    overrides=self._overrides)
        return self._source

    def _log_error(self, record: ConsumedRecord, error: OpenError) -> None:
        ce_id = next((v for n, v in record.headers if n == "ce_id"), b"")[:_SHOWN].decode(errors="replace")
        log = get_logger("exchange.subscriber", recipient=self.recipient)
        report = log.error if isinstance(error, InternalOpenError) else log.warning
        report("delivery rejected", reason=error.reason, detail=str(error)[:500], ce_id=ce_id, topic=record.topic,
               partition=record.partition, offset=record.offset)

    def __repr__(self) -> str:
        return f"Subscriber(recipient={self.recipient!r}, topic={self.topic!r}, group_id={self.group_id!r})"


def _describe(exc: BaseException) -> str:
    """The start of ``exc``'s message, even if its ``__str__`` fails."""
    try:
        return str(exc)[:200]
    except Exception:  # noqa: BLE001 - only a description: an exception that cannot say what it is gets none
        return "(no description)"
