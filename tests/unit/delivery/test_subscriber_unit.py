"""The Subscriber without a broker: verified deliveries out, failures reported and skipped, commits on request."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from exchange.delivery import DeliveryOpener, DeliverySealer, InternalOpenError, OpenError, ReceivedDelivery
from exchange.kafka import ConsumedRecord
from exchange.registry import Keystore, Registry
from exchange.schemas import Catalogue
from exchange.subscriber import ErrorHandler, Subscriber
from tests.unit.delivery.support import Keys, permit, signed_events

TYPE = "social.benefit-granted"
FIELDS = ("benefit_type", "monthly_amount_cents", "granted_from")


class MemorySource:
    """An in-memory record source: hands out its records in batches and remembers commits."""

    def __init__(self, records: list[ConsumedRecord]) -> None:
        self.records = records
        self.position = 0
        self.commits: list[dict[tuple[str, int], int]] = []
        self.closed = False

    def poll_batch(self, max_records: int = 500, timeout: float = 1.0) -> list[ConsumedRecord]:
        batch = self.records[self.position:self.position + max_records]
        self.position += len(batch)
        return batch

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.commits.append(dict(offsets))

    def close(self) -> None:
        self.closed = True


def _records(catalogue: Catalogue, keys: Keys, registry: Registry, sealer: DeliverySealer,
             n: int = 4) -> list[ConsumedRecord]:
    out = []
    for i, event in enumerate(signed_events(catalogue, keys, registry, TYPE, n=n)):
        d = sealer.seal(event, permit("municipal-services", TYPE, FIELDS))
        out.append(ConsumedRecord(d.topic, 0, 100 + i, d.key, d.value, list(d.headers), 0))
    return out


def _subscriber(keys: Keys, registry: Registry, catalogue: Catalogue, source: MemorySource,
                on_error: ErrorHandler | None = None) -> Subscriber:
    return Subscriber("municipal-services", encryption_key=keys.encryption["municipal-services"],
                      registry=registry, catalogue=catalogue, source=source, on_error=on_error)


def test_poll_yields_verified_records_and_reports_failures(catalogue: Catalogue, keys: Keys, registry: Registry,
                                                           sealer: DeliverySealer) -> None:
    """A tampered record goes to on_error with its reason and is skipped; the others come out typed."""
    records = _records(catalogue, keys, registry, sealer)
    bad = records[1]
    assert bad.value is not None
    bad.value = bad.value[:-1] + bytes([bad.value[-1] ^ 1])
    errors: list[tuple[int, str]] = []
    source = MemorySource(records)
    sub = _subscriber(keys, registry, catalogue, source, on_error=lambda r, e: errors.append((r.offset, e.reason)))
    got = sub.poll(10)
    assert [d.event_id for d in got] == [dict(r.headers)["ce_id"].decode() for r in records if r is not bad]
    assert all(set(d.fields) == set(FIELDS) for d in got)
    assert errors == [(101, "DECRYPT_FAILED")]
    assert sub.rejected == {"DECRYPT_FAILED": 1}
    assert sub.received == 3


def test_offsets_are_committed_only_on_commit(catalogue: Catalogue, keys: Keys, registry: Registry,
                                              sealer: DeliverySealer) -> None:
    """poll marks offsets (failed records included); commit() sends them once; nothing is committed before."""
    source = MemorySource(_records(catalogue, keys, registry, sealer))
    sub = _subscriber(keys, registry, catalogue, source)
    sub.poll(2)
    assert source.commits == []
    sub.commit()
    assert source.commits == [{("delivery.municipal-services", 0): 102}]
    sub.commit()
    assert len(source.commits) == 1
    sub.poll(10)
    sub.commit()
    assert source.commits[-1] == {("delivery.municipal-services", 0): 104}


def test_iteration_commits_a_batch_after_it_was_processed(catalogue: Catalogue, keys: Keys, registry: Registry,
                                                          sealer: DeliverySealer) -> None:
    """The iterator commits a batch only when the caller asks for the record after it (at-least-once)."""
    source = MemorySource(_records(catalogue, keys, registry, sealer))
    sub = _subscriber(keys, registry, catalogue, source)
    it = sub.iterate(max_records=2)
    next(it)
    next(it)
    assert source.commits == []
    next(it)  # the first batch was processed: committed before the second is read
    assert source.commits == [{("delivery.municipal-services", 0): 102}]


def test_default_error_handler_logs_and_counts(catalogue: Catalogue, keys: Keys, registry: Registry,
                                               sealer: DeliverySealer) -> None:
    """Without on_error, a failing record is counted by reason and skipped."""
    records = _records(catalogue, keys, registry, sealer, n=2)
    records[0].headers = [(n, b"other:1" if n == "ce_exagreement" else v) for n, v in records[0].headers]
    sub = _subscriber(keys, registry, catalogue, MemorySource(records))
    assert len(sub.poll()) == 1
    assert sub.rejected == {"DECRYPT_FAILED": 1}


def test_a_raising_error_handler_marks_nothing(catalogue: Catalogue, keys: Keys, registry: Registry,
                                               sealer: DeliverySealer) -> None:
    """If on_error raises, poll raises and no offset of that batch is committed."""
    records = _records(catalogue, keys, registry, sealer, n=3)
    records[2].key = b"moved"
    source = MemorySource(records)

    def stop(record: ConsumedRecord, error: OpenError) -> None:
        raise RuntimeError(error.reason)

    sub = _subscriber(keys, registry, catalogue, source, on_error=stop)
    with pytest.raises(RuntimeError, match="DECRYPT_FAILED"):
        sub.poll()
    sub.commit()
    assert source.commits == []


def test_subscriber_defaults_and_close(keys: Keys, registry: Registry, catalogue: Catalogue) -> None:
    """The default topic and group come from the recipient; close closes the source; a foreign opener is refused."""
    source = MemorySource([])
    with _subscriber(keys, registry, catalogue, source) as sub:
        assert (sub.topic, sub.group_id) == ("delivery.municipal-services", "municipal-services.subscriber")
        assert sub.poll() == []
    assert source.closed
    police = DeliveryOpener("police-board", keys.encryption["police-board"], registry, catalogue)
    with pytest.raises(ValueError, match="police-board"):
        Subscriber("municipal-services", opener=police, source=source)


def test_subscriber_reads_its_key_from_a_keystore(tmp_path: Path, registry: Registry, catalogue: Catalogue) -> None:
    """Without an explicit key, the recipient's encryption key comes from the keystore."""
    keystore = Keystore(tmp_path / "keystore")
    keystore.create_identity("municipal-services")
    sub = Subscriber("municipal-services", keystore=keystore, registry=registry, catalogue=catalogue,
                     source=MemorySource([]))
    assert keystore.encryption_private_key("municipal-services").key_id in repr(sub.opener)


# -- hostile records: each is reported with its typed reason, and the stream goes on --------------------------

def _hostile(good: ConsumedRecord) -> dict[str, tuple[ConsumedRecord, str]]:
    """Records an attacker with write access to the topic could produce, each with the reason it must get."""
    def variant(**changes: object) -> ConsumedRecord:
        return dataclasses.replace(good, **changes)  # type: ignore[arg-type]  # test-only: fields by name

    def header(name: str, raw: bytes) -> list[tuple[str, bytes]]:
        return [(n, raw if n == name else v) for n, v in good.headers]

    assert good.value is not None
    return {
        "ce_id of 70 KiB": (variant(headers=header("ce_id", b"i" * 70_000)), "MALFORMED_DELIVERY"),
        "key of 70 KiB": (variant(key=b"k" * 70_000), "MALFORMED_DELIVERY"),
        "agreement of 70 KiB": (variant(headers=header("ce_exagreement", b"a" * 70_000)), "MALFORMED_DELIVERY"),
        "timestamp past 9999": (variant(timestamp_ms=253_402_300_800_000), "BAD_DATA_KEY"),
        "random data key": (variant(headers=header("ce_exdatakey", bytes(range(256)))), "BAD_DATA_KEY"),
        "repeated header": (variant(headers=[*good.headers, good.headers[0]]), "MALFORMED_DELIVERY"),
        "huge header name": (variant(headers=[*good.headers, ("x" * 100_000, b"")]), "MALFORMED_DELIVERY"),
        "tombstone": (variant(value=None), "MALFORMED_DELIVERY"),
        "truncated value": (variant(value=good.value[:20]), "MALFORMED_DELIVERY"),
    }


def test_hostile_records_are_reported_and_the_genuine_ones_handed_over(
        catalogue: Catalogue, keys: Keys, registry: Registry, sealer: DeliverySealer) -> None:
    """Hostile records between genuine ones: every genuine record comes out in order, every hostile one goes to
    on_error with its reason and is counted, and poll never raises."""
    genuine = _records(catalogue, keys, registry, sealer, n=3)
    hostile = _hostile(genuine[0])
    records = [genuine[0], *(r for r, _ in list(hostile.values())[:5]), genuine[1],
               *(r for r, _ in list(hostile.values())[5:]), genuine[2]]
    records = [dataclasses.replace(r, offset=i) for i, r in enumerate(records)]
    errors: list[tuple[int, str]] = []
    sub = _subscriber(keys, registry, catalogue, MemorySource(records),
                      on_error=lambda r, e: errors.append((r.offset, e.reason)))
    got = sub.poll(100)
    assert [d.event_id for d in got] == [dict(r.headers)["ce_id"].decode() for r in genuine]
    expected = [reason for _, reason in hostile.values()]
    assert [reason for _, reason in errors] == expected
    assert [offset for offset, _ in errors] == [o for o in range(len(records)) if o not in (0, 6, 11)]
    assert sub.rejected == Counter(expected)
    assert sub.received == 3


class _Buggy(DeliveryOpener):
    """An opener with a bug that one record triggers (its key)."""

    def open(self, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]], topic: str, *,
             timestamp_ms: int = 0) -> ReceivedDelivery:
        if key == b"boom":
            raise ZeroDivisionError("a bug")
        return super().open(key, value, headers, topic, timestamp_ms=timestamp_ms)


def test_an_unexpected_exception_is_reported_as_internal(catalogue: Catalogue, keys: Keys, registry: Registry,
                                                        sealer: DeliverySealer) -> None:
    """Anything but an OpenError escaping the opener becomes an InternalOpenError (reason INTERNAL, the type
    name, the original chained) for that record only; iteration goes on with the next record."""
    records = _records(catalogue, keys, registry, sealer, n=3)
    records[1].key = b"boom"
    errors: list[OpenError] = []
    opener = _Buggy("municipal-services", keys.encryption["municipal-services"], registry, catalogue)
    sub = Subscriber("municipal-services", opener=opener, source=MemorySource(records),
                     on_error=lambda r, e: errors.append(e))
    it = sub.iterate(max_records=10)
    assert [next(it).event_id, next(it).event_id] == [dict(r.headers)["ce_id"].decode() for r in (records[0],
                                                                                                    records[2])]
    (error,) = errors
    assert isinstance(error, InternalOpenError)
    assert (error.reason, error.exception_type) == ("INTERNAL", "ZeroDivisionError")
    assert isinstance(error.__cause__, ZeroDivisionError)
    assert "ZeroDivisionError: a bug" in str(error)
    assert sub.rejected == {"INTERNAL": 1}


def test_the_default_handler_logs_a_hostile_ce_id_shortened(catalogue: Catalogue, keys: Keys, registry: Registry,
                                                            sealer: DeliverySealer) -> None:
    """The default handler logs a bounded ce_id and detail (no 100 KiB log lines), INTERNAL at error level."""
    records = _records(catalogue, keys, registry, sealer, n=2)
    records[0].headers = [(n, b"\xff" * 100_000 if n == "ce_id" else v) for n, v in records[0].headers]
    records[1].key = b"boom"
    opener = _Buggy("municipal-services", keys.encryption["municipal-services"], registry, catalogue)
    sub = Subscriber("municipal-services", opener=opener, source=MemorySource(records))
    with capture_logs() as logs:
        assert sub.poll() == []
    assert [(entry["log_level"], entry["reason"]) for entry in logs] == [("warning", "MALFORMED_DELIVERY"),
                                                                         ("error", "INTERNAL")]
    assert all(len(entry["ce_id"]) <= 64 and len(entry["detail"]) <= 500 for entry in logs)
