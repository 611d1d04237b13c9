"""The Publisher: how an authoritative agency puts a record on the exchange.

Each record is validated against its type's current schema before anything leaves the process, keyed by the
subject's pseudonym, committed field by field, and batched; a batch is signed once (an Ed25519 signed note over
its Merkle root) and produced to ``ingress.<type>`` by the idempotent producer. Every record's delivery is
reported to ``on_delivery``.

    with Publisher.from_keystore("population-registry", keystore, registry=registry, catalogue=catalogue,
                                 pseudonymiser=pseudonymiser) as publisher:
        publisher.publish("population.address-changed", record)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from exchange.crypto.note import NoteSigner
from exchange.envelope import PreparedEvent, Pseudonymiser, ingress_topic, prepare, seal_events
from exchange.errors import ConfigError, ExchangeError
from exchange.kafka import ProduceError, Producer
from exchange.log import get_logger
from exchange.registry import Keystore, Registry
from exchange.registry.errors import RegistryError
from exchange.schemas import Catalogue, RecordSchema
from exchange.schemas.errors import RecordValidationError

__all__ = ["Delivery", "Publisher"]

_log = get_logger("exchange.publisher")


@dataclass(frozen=True, slots=True)
class Delivery:
    """What happened to one published record: where it landed, or why it did not."""

    event_id: str
    record_type: str
    topic: str
    partition: int
    offset: int
    error: ExchangeError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


DELIVERY_TIMEOUT_MS = 60_000
"""How long the Publisher's own producer tries to deliver a record before reporting it failed."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Publisher:
    """Publishes an agency's records: validate, pseudonymise, commit, batch, sign, produce."""

    def __init__(self, agency: str, *, signer: NoteSigner, registry: Registry, catalogue: Catalogue,
                 pseudonymiser: Pseudonymiser, producer: Producer | None = None, batch_size: int = 64,
                 linger_ms: float = 5.0, on_delivery: Callable[[Delivery], None] | None = None,
                 topic_for: Callable[[str], str] = ingress_topic, clock: Callable[[], datetime] = _utcnow) -> None:
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        if signer.name != agency:
            raise ConfigError(f"the signing key is {signer.name!r}'s, not {agency!r}'s")
        try:
            registry.agency(agency)
            registry.verifier(agency, signer.key_id, clock())
        except RegistryError as exc:
            raise ConfigError(f"{agency} cannot publish with key {signer.key_id}: {exc}. Add the key to the "
                              f"registry (`exchange keys show {agency}` prints its entry).") from exc
        self.agency = agency
        self.batch_size = batch_size
        self.linger_s = linger_ms / 1000
        self.published = 0
        self.delivered = 0
        self.failed = 0
        self._signer = signer
        self._registry = registry
        self._catalogue = catalogue
        self._pseudonymiser = pseudonymiser
        # A record must reach the broker within the router's accepted skew of being signed (MAX_SKEW): give up
        # well before, and report the failure to on_delivery, rather than deliver it late to be quarantined.
        self._producer = producer or Producer(overrides={"message.timeout.ms": DELIVERY_TIMEOUT_MS})
        self._on_delivery = on_delivery
        self._topic_for = topic_for
        self._clock = clock
        self._pending: list[PreparedEvent] = []
        self._first_pending = 0.0
        self._allowed: dict[str, RecordSchema] = {}

    @classmethod
    def from_keystore(cls, agency: str, keystore: Keystore | Path, **kwargs: Any) -> Publisher:
        """A publisher signing with ``agency``'s key from ``keystore`` (files mode 0600)."""
        store = keystore if isinstance(keystore, Keystore) else Keystore(keystore)
        return cls(agency, signer=store.signer(agency), **kwargs)

    # -- publishing -----------------------------------------------------------------------------------------

    def publish(self, record_type: str, record: Mapping[str, Any] | BaseModel) -> str:
        """Validate and queue one record; returns its event id (``ce_id``).

        Raises NotAuthoritativeError for a type this agency may not publish, and RecordValidationError (listing
        every bad field) for a record that does not match the schema — in both cases nothing is produced.
        """
        schema = self._allowed.get(record_type) or self._allow(record_type)
        values = record.model_dump() if isinstance(record, BaseModel) else record
        subject = values.get(schema.key_field)
        if not isinstance(subject, str) or not subject:
            schema.encode(values)  # raises, naming every bad field
            raise RecordValidationError(schema.label, [f"field {schema.key_field!r}: the key must be a string"])
        key = self._pseudonymiser.subject(subject) if schema.key_kind == "person" else subject
        event = prepare(schema, values, source=self.agency, key=key.encode(), now=self._clock())
        if not self._pending:
            self._first_pending = time.monotonic()
        self._pending.append(event)
        self.published += 1
        if len(self._pending) >= self.batch_size or time.monotonic() - self._first_pending >= self.linger_s:
            self._seal()
        self._producer.poll(0)
        return event.attributes.id

    def poll(self, timeout: float = 0.0) -> None:
        """Seal a batch whose linger has passed and serve delivery reports; call it in idle loops."""
        if self._pending and time.monotonic() - self._first_pending >= self.linger_s:
            self._seal()
        self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> None:
        """Sign what is pending and wait until every record is delivered (ProduceError if not in time)."""
        if self._pending:
            self._seal()
        self._producer.flush(timeout)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.flush()
        elif self._pending:
            _log.warning("publisher closed by an error; unsigned records dropped", dropped=len(self._pending))

    # -- internals ------------------------------------------------------------------------------------------

    def _allow(self, record_type: str) -> RecordSchema:
        self._registry.require_authoritative(self.agency, record_type)
        schema = self._catalogue.current(record_type)
        self._allowed[record_type] = schema
        return schema

    def _seal(self) -> None:
        events, self._pending = self._pending, []
        for envelope in seal_events(self.agency, events, self._signer):
            self._producer.produce(
                self._topic_for(envelope.topic.removeprefix("ingress.")), envelope.value, envelope.key,
                headers=envelope.headers, on_delivery=self._reporter(envelope.event_id, envelope.topic),
            )

    def _reporter(self, event_id: str, topic: str) -> Callable[[ProduceError | None, str, int, int], None]:
        record_type = topic.removeprefix("ingress.")

        def report(error: ProduceError | None, landed: str, partition: int, offset: int) -> None:
            if error is None:
                self.delivered += 1
            else:
                self.failed += 1
                _log.error("publish failed", ce_id=event_id, topic=landed, error=str(error))
            if self._on_delivery is not None:
                self._on_delivery(Delivery(event_id, record_type, landed, partition, offset, error))

        return report
