"""What re-evaluating the log reads from the cluster: the published policy bundles, the consent log and the
ingress records the decisions were about (the edge around :mod:`exchange.audit.reevaluate`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from exchange.audit.reevaluate import ConsentReplay, Reevaluator
from exchange.audit.verify import Discrepancy
from exchange.consent.signing import ConsentVerifier
from exchange.consent.wire import CONSENT_TOPIC
from exchange.envelope import EnvelopeVerifier, ReceivedRecord
from exchange.kafka import ConsumedRecord, ConsumeError, Consumer, read_range, read_to_end
from exchange.registry import Registry
from exchange.router.service import BUNDLE_TOPIC
from exchange.schemas import Catalogue, SchemaError
from exchange.settings import Settings

__all__ = ["DECISION_TYPE", "IngressEvents", "decision_checker", "log_reevaluator", "read_consent_records"]

DECISION_TYPE = "exchange.decision"
_CHUNK = 2000


class IngressEvents:
    """Ingress records by place, read forward in chunks per partition (a log's entries name their events in
    nearly ascending offsets); None for a record no longer retained."""

    def __init__(self, settings: Settings, bootstrap: str | None = None) -> None:
        self._consumer = Consumer("exchange-audit-verify", settings=settings, bootstrap=bootstrap)
        self._chunks: dict[tuple[str, int], tuple[int, int, dict[int, ConsumedRecord]]] = {}

    def event(self, topic: str, partition: int, offset: int) -> ReceivedRecord | None:
        chunk = self._chunks.get((topic, partition))
        if chunk is None or not chunk[0] <= offset < chunk[1]:
            try:
                records = read_range(self._consumer, topic, partition, offset, offset + _CHUNK)
            except ConsumeError:
                return None  # the topic itself is gone: nothing of it is retained
            chunk = (offset, offset + _CHUNK, {r.offset: r for r in records})
            self._chunks[(topic, partition)] = chunk
        return chunk[2].get(offset)

    def close(self) -> None:
        self._consumer.close()


def read_consent_records(settings: Settings, bootstrap: str | None = None
                         ) -> dict[int, list[tuple[int, bytes | None, bytes | None]]]:
    """Every record of the consent log, ``{partition: [(offset, key, value), ...]}`` in offset order."""
    out: dict[int, list[tuple[int, bytes | None, bytes | None]]] = {}
    for record in read_to_end(CONSENT_TOPIC, settings=settings, bootstrap=bootstrap):
        out.setdefault(record.partition, []).append((record.offset, record.key, record.value))
    for records in out.values():
        records.sort(key=lambda r: r[0])
    return out


def log_reevaluator(settings: Settings, registry: Registry, catalogue: Catalogue,
                    bootstrap: str | None = None) -> tuple[Reevaluator, IngressEvents]:
    """A re-evaluator over what the cluster holds: the bundles on ``policy.bundles``, the consent log and the
    ingress records while retained. Close the returned event source when done."""
    bundles = [r.value or b"" for r in read_to_end(BUNDLE_TOPIC, settings=settings, bootstrap=bootstrap)]
    consents = ConsentReplay(catalogue, ConsentVerifier(registry), read_consent_records(settings, bootstrap))
    events = IngressEvents(settings, bootstrap)
    envelope = EnvelopeVerifier(registry, catalogue)
    return Reevaluator(catalogue, bundles, consents, events=events, envelope=envelope), events


def decision_checker(catalogue: Catalogue, reevaluator: Reevaluator | None
                     ) -> Callable[[int, bytes], Discrepancy | str | None]:
    """``check_entry`` for :func:`~exchange.audit.verify.verify_integrity`: every entry must be an
    ``exchange.decision`` record, and (given a re-evaluator) a decision its bundle and consent support."""

    def check(index: int, value: bytes) -> Discrepancy | str | None:
        try:
            schema, decoded = catalogue.decode(value)
        except SchemaError as exc:
            return str(exc)
        if schema.type_name != DECISION_TYPE:
            return f"a {schema.type_name} record"
        return None if reevaluator is None else reevaluator.check(index, _as_mapping(decoded))

    return check


def _as_mapping(decoded: Any) -> Mapping[str, Any]:
    return decoded if isinstance(decoded, Mapping) else {}
