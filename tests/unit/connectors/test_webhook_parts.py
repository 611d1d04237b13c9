"""The webhook's parts on their own: its config file, reading records from JSON, the idempotency store."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from connectors.http import KIND, WebhookSourceConfig, load_webhook_config, token_digest
from connectors.http.idempotency import Claimed, Conflict, IdempotencyStore, InProgress, Replay
from connectors.http.webhook import producer_overrides
from connectors.sdk import ConnectorConfigError
from connectors.sdk.jsonrecord import record_from_json
from exchange.schemas import Catalogue
from exchange.schemas.samples import SAMPLE_TYPES, sample_record
from tests.unit.connectors.conftest import TOKEN, as_json

CONFIG = f"""\
name: prc-webhook
kind: http-webhook
agency: population-registry
port: 8480
token_sha256: {token_digest(TOKEN).upper()}
record_types:
  - population.address-changed
durable_timeout_s: 2.5
"""

# -- config ----------------------------------------------------------------------------------------------------


def test_a_config_file_reads_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "webhook.yaml"
    path.write_text(CONFIG)
    config = load_webhook_config(path)
    assert config.kind == KIND
    assert config.token_sha256 == token_digest(TOKEN)  # kept lower-case
    assert config.record_types == ("population.address-changed",)
    assert (config.host, config.max_body_bytes, config.idempotency_ttl_s) == ("127.0.0.1", 512 * 1024, 86400)
    assert config.durable_timeout_s == 2.5
    assert config.idempotency_path() == Path("connector-state/prc-webhook/idempotency.sqlite3")


@pytest.mark.parametrize(("change", "line", "message"), [
    (("token_sha256: ", "token_sha256: abc"), 5, "token_sha256"),
    (("port: 8480", "port: 0"), 4, "port"),
    (("kind: http-webhook", "kind: file-source"), 2, "this connector is 'http-webhook'"),
    (("  - population.address-changed", "  - Population"), 7, "not a record type"),
    (("durable_timeout_s: 2.5", "durable_timeout_s: 600"), 8, "durable_timeout_s"),
    (("durable_timeout_s: 2.5", "token: s3cret"), 8, "token: Extra inputs are not permitted"),
])
def test_a_bad_config_names_the_file_and_line(tmp_path: Path, change: tuple[str, str], line: int,
                                              message: str) -> None:
    old, new = change
    text = "\n".join(new if ln.startswith(old) else ln for ln in CONFIG.splitlines()) + "\n"
    path = tmp_path / "webhook.yaml"
    path.write_text(text)
    with pytest.raises(ConnectorConfigError) as info:
        load_webhook_config(path)
    assert (info.value.path, info.value.line) == (str(path), line)
    assert message in info.value.reason


def test_a_type_listed_twice_and_half_a_tls_pair_are_refused() -> None:
    base: dict[str, Any] = {"name": "w", "agency": "population-registry", "port": 1,
                            "token_sha256": token_digest(TOKEN), "record_types": ["population.address-changed"]}
    with pytest.raises(ValueError, match="listed twice"):
        WebhookSourceConfig.model_validate({**base, "record_types": ["a.b", "a.b"]})
    with pytest.raises(ValueError, match="go together"):
        WebhookSourceConfig.model_validate({**base, "tls_certfile": "cert.pem"})


# -- records from JSON -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("record_type", SAMPLE_TYPES)
def test_every_type_reads_back_from_json_as_the_record_it_was(catalogue: Catalogue, record_type: str) -> None:
    """Dates, times, bytes, fixed, enums, unions, arrays: JSON in, the exact record out, and it encodes."""
    schema = catalogue.current(record_type)
    for seed in range(20):
        original = sample_record(record_type, random.Random(seed))
        values, problems = record_from_json(schema, as_json(original))
        assert problems == []
        assert values == original
        schema.encode(values)


def test_nested_and_typed_problems_are_named_by_path(catalogue: Catalogue) -> None:
    schema = catalogue.current("exchange.decision")
    body = as_json(sample_record("exchange.decision", random.Random(1)))
    body.update(decided_at="2026-11-02 08:30:00", event_digest="AAAA", subject_ref="not base64!",
                ingress_partition=2**31, fields_released=["ok", 7], ingress_offset=1.5)
    _, problems = record_from_json(schema, body)
    found = {p.field: p.problem for p in problems}
    assert found["decided_at"].startswith("expected an RFC 3339 time with a zone")
    assert found["event_digest"] == "expected base64 of exactly 32 bytes, got 3"
    assert found["subject_ref"] == "expected standard base64 (A-Z a-z 0-9 + /, padded with =)"
    assert found["ingress_partition"] == "integer out of 32-bit range"
    assert found["fields_released[1]"] == "expected a string, got a number"
    assert found["ingress_offset"] == "expected an integer, got a number"


def test_a_time_without_a_zone_is_refused(catalogue: Catalogue) -> None:
    schema = catalogue.current("exchange.decision")
    body = as_json(sample_record("exchange.decision", random.Random(2)))
    body["decided_at"] = "2026-11-02T08:30:00"
    _, problems = record_from_json(schema, body)
    assert [p.field for p in problems] == ["decided_at"]


# -- the idempotency store -------------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _store(tmp_path: Path, clock: _Clock) -> IdempotencyStore:
    return IdempotencyStore(tmp_path / "state" / "keys.sqlite3", ttl_s=100, pending_lease_s=30, clock=clock)


def test_an_answer_is_replayed_until_its_ttl_then_forgotten(tmp_path: Path) -> None:
    clock = _Clock()
    store = _store(tmp_path, clock)
    claim = store.claim("prc", "k", "t.x", "h1")
    assert isinstance(claim, Claimed)
    assert isinstance(store.claim("prc", "k", "t.x", "h1"), InProgress)
    assert store.complete("prc", "k", claim.token, 202, '{"event_id": "e"}')
    clock.now += 99
    assert store.claim("prc", "k", "t.x", "h1") == Replay(202, '{"event_id": "e"}')
    assert isinstance(store.claim("prc", "k", "t.x", "h2"), Conflict)
    clock.now += 2
    assert isinstance(store.claim("prc", "k", "t.x", "h2"), Claimed)


def test_a_pending_claim_of_a_dead_process_lapses_after_its_lease(tmp_path: Path) -> None:
    clock = _Clock()
    store = _store(tmp_path, clock)
    first = store.claim("prc", "k", "t.x", "h")
    assert isinstance(first, Claimed)
    store.close()
    reopened = _store(tmp_path, clock)  # the process restarted
    assert isinstance(reopened.claim("prc", "k", "t.x", "h"), InProgress)
    clock.now += 31
    second = reopened.claim("prc", "k", "t.x", "h")
    assert isinstance(second, Claimed)
    assert not reopened.complete("prc", "k", first.token, 202, "{}")  # the lapsed claim cannot answer
    reopened.release("prc", "k", first.token)  # nor give away the new one
    assert isinstance(reopened.claim("prc", "k", "t.x", "h"), InProgress)
    assert reopened.complete("prc", "k", second.token, 202, "{}")


def test_the_store_keeps_no_key_in_clear_and_is_private(tmp_path: Path) -> None:
    clock = _Clock()
    store = _store(tmp_path, clock)
    claim = store.claim("prc", "invoice-4711-for-49002010965", "t.x", "h")
    assert isinstance(claim, Claimed)
    store.complete("prc", "invoice-4711-for-49002010965", claim.token, 202, "{}")
    store.close()
    path = tmp_path / "state" / "keys.sqlite3"
    assert path.stat().st_mode & 0o077 == 0
    for file in path.parent.iterdir():
        assert b"49002010965" not in file.read_bytes()


def test_the_producer_waits_for_every_replica_writes_once_and_gives_up_with_the_request() -> None:
    config = WebhookSourceConfig(name="w", agency="population-registry", port=1, token_sha256=token_digest(TOKEN),
                                 record_types=("population.address-changed",), durable_timeout_s=3.5)
    overrides = producer_overrides(config)
    assert overrides["acks"] == "all"
    assert overrides["enable.idempotence"] is True
    assert overrides["message.timeout.ms"] == 3500
