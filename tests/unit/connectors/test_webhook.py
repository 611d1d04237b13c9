"""The webhook source over a fake producer: what each request is answered, and what reaches the producer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import structlog
from starlette.testclient import TestClient

from connectors.http.idempotency import Claimed, Conflict
from exchange.errors import ConfigError
from exchange.kafka import ProduceError
from exchange.metrics import REGISTRY
from exchange.schemas import Catalogue
from tests.unit.connectors.conftest import AUTH, OTHER_TYPE, TOKEN, TYPE, Webhook, record

MakeWebhook = Callable[..., Webhook]


def _until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        time.sleep(0.01)  # polling the condition above, not standing in for it


# -- success ---------------------------------------------------------------------------------------------------


def test_a_valid_post_is_answered_202_with_the_event_id_of_the_record_produced(
        make_webhook: MakeWebhook, catalogue: Catalogue) -> None:
    webhook = make_webhook()
    body = record(1)
    with TestClient(webhook.app) as client, structlog.testing.capture_logs() as logs:
        answer = webhook.post(client, body)
    assert answer.status_code == 202
    said = json.dumps(logs, default=str)
    assert "record accepted" in said
    for secret in (TOKEN, body["person_id"], body["street_address"], body["postal_code"]):
        assert secret not in said
    assert answer.headers["content-type"] == "application/json"
    (event_id,) = webhook.producer.event_ids()
    assert answer.json() == {"event_id": event_id}
    topic, value, _, headers = webhook.producer.produced[0]
    assert topic == f"ingress.{TYPE}"
    assert dict(headers)["ce_source"] == b"population-registry"
    _, decoded = catalogue.decode(value)
    assert {**decoded, "moved_on": decoded["moved_on"].isoformat()} == body


def test_the_answer_waits_for_the_delivery_report(make_webhook: MakeWebhook) -> None:
    """Produced is not enough: 202 comes only once the broker's acknowledgement is reported."""
    webhook = make_webhook(mode="hold")
    with TestClient(webhook.app) as client, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(webhook.post, client, record(2))
        assert webhook.producer.got_one.wait(10)
        assert not pending.done()  # produced, not acknowledged: no answer yet
        webhook.producer.release()
        answer = pending.result(timeout=10)
    assert answer.status_code == 202
    assert answer.json()["event_id"] == webhook.producer.event_ids()[0]


def test_a_field_with_a_default_may_be_left_out(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook()
    body = record(3)
    del body["dwelling_type"]
    with TestClient(webhook.app) as client:
        assert webhook.post(client, body).status_code == 202


# -- refusals before anything is published ---------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"bearer{TOKEN}",
                                           "Bearer ", f"Bearer {TOKEN}x"])
def test_without_the_agencys_token_the_answer_is_401_and_says_no_more(
        make_webhook: MakeWebhook, authorization: str | None) -> None:
    webhook = make_webhook()
    headers = {} if authorization is None else {"Authorization": authorization}
    with TestClient(webhook.app) as client:
        answer = client.post(f"/records/{TYPE}", json=record(1), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.json() == {"error": "unauthorized", "message": "a valid bearer token of the agency is required"}
    assert webhook.producer.produced == []


def test_the_scheme_is_case_insensitive(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook()
    with TestClient(webhook.app) as client:
        answer = client.post(f"/records/{TYPE}", json=record(1), headers={"Authorization": f"bearer {TOKEN}"})
    assert answer.status_code == 202


def test_a_body_over_the_limit_is_413_whatever_content_length_says(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook(max_body_bytes=1024)
    exact = json.dumps({**record(1), "pad": ""}).encode()
    exact = exact[:-2] + b" " * (1024 - len(exact)) + exact[-2:]  # valid JSON of exactly the limit
    assert len(exact) == 1024
    too_big = exact[:-1] + b" " + exact[-1:]
    with TestClient(webhook.app) as client:
        at_limit = client.post(f"/records/{TYPE}", content=exact, headers=AUTH)
        declared = client.post(f"/records/{TYPE}", content=too_big, headers=AUTH)
        chunked = client.post(f"/records/{TYPE}", content=iter([too_big[:600], too_big[600:]]), headers=AUTH)
        lying = client.post(f"/records/{TYPE}", content=iter([too_big]), headers={**AUTH, "Content-Length": "10"})
    assert at_limit.status_code == 422  # read whole: only the unknown field "pad" is wrong
    for answer in (declared, chunked):
        assert answer.status_code == 413
        assert answer.json()["error"] == "too_large"
    assert lying.status_code == 413  # the body, not its Content-Length, is measured
    assert webhook.producer.produced == []


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json", "not JSON"),
    (b"[1, 2]", "JSON object"),
    (b'"text"', "JSON object"),
    (b'{"person_id": NaN}', "NaN"),
    (b'{"a": 1, "a": 2}', "same key twice"),
    (b'{"a": "\xff"}', "UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deep"),
    (b"", "not JSON"),
])
def test_a_body_that_is_not_a_json_object_is_400(make_webhook: MakeWebhook, body: bytes, reason: str) -> None:
    webhook = make_webhook()
    with TestClient(webhook.app) as client:
        answer = client.post(f"/records/{TYPE}", content=body, headers=AUTH)
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_json"
    assert reason in answer.json()["message"]
    assert webhook.producer.produced == []


def test_a_record_type_this_endpoint_does_not_take_is_404(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook(record_types=[TYPE])
    with TestClient(webhook.app) as client:
        other = webhook.post(client, record(1, OTHER_TYPE), record_type=OTHER_TYPE)
        unknown = webhook.post(client, record(1), record_type="population.no-such-type")
    for answer in (other, unknown):
        assert answer.status_code == 404
        assert answer.json()["error"] == "unknown_record_type"
        assert answer.json()["accepts"] == [TYPE]
    assert webhook.producer.produced == []


def test_a_body_declared_as_something_else_is_415(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook()
    with TestClient(webhook.app) as client:
        answer = client.post(f"/records/{TYPE}", content=json.dumps(record(1)),
                             headers={**AUTH, "Content-Type": "text/plain"})
        typed = client.post(f"/records/{TYPE}", content=json.dumps(record(1)),
                            headers={**AUTH, "Content-Type": "application/json; charset=utf-8"})
    assert answer.status_code == 415
    assert typed.status_code == 202


def test_a_bad_record_is_422_naming_every_bad_field_and_no_value(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook()
    body = record(4, postal_code=12345, moved_on="yesterday", address_protected="no", colour="blue")
    del body["municipality_code"]
    with TestClient(webhook.app) as client, structlog.testing.capture_logs() as logs:
        answer = webhook.post(client, body)
    assert answer.status_code == 422
    found = answer.json()
    assert found["error"] == "invalid_record"
    assert found["field"] == "postal_code"  # the first bad field, in the schema's order
    problems = {p["field"]: p["problem"] for p in found["problems"]}
    assert problems == {
        "postal_code": "expected a string, got a number",
        "municipality_code": "missing (expected string)",
        "moved_on": 'expected a date "YYYY-MM-DD", got a string in another form',
        "address_protected": "expected true or false, got a string",
        "colour": "not a field of this record type",
    }
    assert found["count"] == 5
    said = answer.text + json.dumps(logs)
    for value in (body["person_id"], body["street_address"], "12345", "yesterday", '"no"', "blue"):
        assert value not in said
    assert webhook.producer.produced == []


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("moved_on", "2026-02-30", "not a valid calendar date"),
    ("moved_on", 20260101, 'expected a date "YYYY-MM-DD", got a number'),
    ("dwelling_type", "CASTLE", "expected one of APARTMENT, HOUSE, OTHER"),
    ("person_id", "", "the key field must not be empty"),
    ("person_id", None, "expected a string, got null"),
    ("street_address", "\ud800", "the string is not valid Unicode (a lone surrogate escape)"),
])
def test_each_kind_of_bad_value_is_named(make_webhook: MakeWebhook, field: str, value: Any, problem: str) -> None:
    webhook = make_webhook()
    with TestClient(webhook.app) as client:
        answer = webhook.post(client, record(5, **{field: value}))
    assert answer.status_code == 422
    assert answer.json()["field"] == field
    assert answer.json()["problems"] == [{"field": field, "problem": problem}]


def test_a_record_the_router_would_refuse_as_oversized_or_by_its_key_is_refused_here(
        make_webhook: MakeWebhook) -> None:
    webhook = make_webhook(max_body_bytes=2 * 1024 * 1024)
    business = make_webhook(agency="business-register", record_types=["business.company-registered"])
    with TestClient(webhook.app) as client, TestClient(business.app) as other:
        oversized = webhook.post(client, record(19, street_address="x" * (600 * 1024)))
        long_key = business.post(other, record(19, "business.company-registered", company_id="1" * 257),
                                 record_type="business.company-registered")
    assert oversized.status_code == 413
    assert oversized.json()["message"].endswith("the exchange takes at most 524288")
    assert long_key.status_code == 422
    assert long_key.json()["problems"] == [{"field": "company_id", "problem": "the key must be at most 256 bytes"}]
    assert webhook.producer.produced == business.producer.produced == []


# -- idempotency -----------------------------------------------------------------------------------------------


def test_a_retry_with_the_same_key_gets_the_same_answer_and_no_second_event(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook()
    body = record(6)
    with TestClient(webhook.app) as client:
        first = webhook.post(client, body, key="order-6")
        again = webhook.post(client, body, key="order-6")
        other_key = webhook.post(client, body, key="order-6b")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert other_key.json() != first.json()
    assert webhook.producer.event_ids() == [first.json()["event_id"], other_key.json()["event_id"]]


def test_the_same_key_with_another_body_or_type_is_422(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook()
    with TestClient(webhook.app) as client:
        first = webhook.post(client, record(7), key="k-7")
        changed = webhook.post(client, record(8), key="k-7")
        elsewhere = webhook.post(client, record(7, OTHER_TYPE), key="k-7", record_type=OTHER_TYPE)
    assert first.status_code == 202
    assert changed.status_code == 422
    assert changed.json() == {"error": "idempotency_key_reused",
                              "message": "the Idempotency-Key was used with a different request body"}
    assert elsewhere.status_code == 422
    assert elsewhere.json()["message"] == "the Idempotency-Key was used for another record type"
    assert len(webhook.producer.produced) == 1


def test_keys_are_kept_apart_per_agency(make_webhook: MakeWebhook, tmp_path: Path) -> None:
    """A store shared by two agencies' endpoints: one agency's key is not the other's."""
    shared = tmp_path / "shared.sqlite3"
    population = make_webhook(idempotency_db=shared)
    with TestClient(population.app) as client:
        assert population.post(client, record(9), key="same").status_code == 202
    assert isinstance(population.store.claim("tax-board", "same", "tax.income-assessed", "0" * 64), Claimed)
    assert isinstance(population.store.claim("population-registry", "same", TYPE, "0" * 64), Conflict)


@pytest.mark.parametrize("key", ["", "x" * 201, "has space", "tab\there", "ünï"])
def test_a_malformed_key_is_400(make_webhook: MakeWebhook, key: str) -> None:
    webhook = make_webhook()
    with TestClient(webhook.app) as client:
        answer = client.post(f"/records/{TYPE}", json=record(1),
                             headers=[*AUTH.items(), ("Idempotency-Key", key)] if key.isascii() else
                             [*AUTH.items(), ("Idempotency-Key", key.encode())])
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_idempotency_key"
    assert webhook.producer.produced == []


def test_a_key_in_progress_is_409_and_the_first_request_alone_publishes(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook(mode="hold")
    body = record(10)
    with TestClient(webhook.app) as client, ThreadPoolExecutor(1) as pool:
        first = pool.submit(webhook.post, client, body, key="k-10")
        assert webhook.producer.got_one.wait(10)
        second = webhook.post(client, body, key="k-10")
        assert second.status_code == 409
        assert second.headers["retry-after"] == "5"
        webhook.producer.release()
        answered = first.result(timeout=10)
        third = webhook.post(client, body, key="k-10")
    assert answered.status_code == 202
    assert third.json() == answered.json()
    assert len(webhook.producer.produced) == 1


def test_concurrent_requests_with_one_key_publish_once(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook(mode="hold")
    body = record(11)
    n = 12
    start = threading.Barrier(n)

    def send() -> Any:
        start.wait()
        return webhook.post(client, body, key="k-11")

    with TestClient(webhook.app) as client, ThreadPoolExecutor(n) as pool:
        sent = [pool.submit(send) for _ in range(n)]
        _until(lambda: sum(f.done() for f in sent) == n - 1, "all but the publishing request answered")
        webhook.producer.release()
        answers = [f.result(timeout=10) for f in sent]
    codes = sorted(a.status_code for a in answers)
    assert codes == [202] + [409] * (n - 1)
    assert len(webhook.producer.produced) == 1


def test_the_store_lets_one_of_many_concurrent_claims_win(make_webhook: MakeWebhook) -> None:
    store = make_webhook().store
    n = 16
    start = threading.Barrier(n)

    def claim() -> str:
        start.wait()
        return type(store.claim("population-registry", "race", TYPE, "ab" * 32)).__name__

    with ThreadPoolExecutor(n) as pool:
        outcomes = sorted(pool.map(lambda _: claim(), range(n)))
    assert outcomes == ["Claimed"] + ["InProgress"] * (n - 1)


# -- the broker does not take the record -----------------------------------------------------------------------


def test_a_failed_delivery_is_503_and_the_key_stays_free(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook(mode="fail")
    body = record(12)
    with TestClient(webhook.app) as client:
        failed = webhook.post(client, body, key="k-12")
        webhook.producer.mode = "deliver"
        retried = webhook.post(client, body, key="k-12")
    assert failed.status_code == 503
    assert failed.headers["retry-after"] == "5"
    assert failed.json()["error"] == "unavailable"
    assert retried.status_code == 202
    first_id, second_id = webhook.producer.event_ids()
    assert retried.json()["event_id"] == second_id != first_id


def test_no_report_in_time_is_503_and_a_late_delivery_keeps_its_answer(make_webhook: MakeWebhook) -> None:
    """The record may still land after the 503: the key stays claimed until the report says, and then a retry
    gets the event id of the record that landed instead of publishing a second one."""
    webhook = make_webhook(mode="hold", durable_timeout_s=0.3, retry_after_s=2)
    body = record(13)
    with TestClient(webhook.app) as client:
        started = time.monotonic()
        late = webhook.post(client, body, key="k-13")
        waited = time.monotonic() - started
        assert late.status_code == 503
        assert late.headers["retry-after"] == "2"
        assert 0.3 <= waited < 3
        assert webhook.post(client, body, key="k-13").status_code == 409  # outcome not known yet
        webhook.producer.release()
        _until(lambda: webhook.post(client, body, key="k-13").status_code != 409, "the late report settled")
        retried = webhook.post(client, body, key="k-13")
    assert retried.status_code == 202
    assert webhook.producer.event_ids() == [retried.json()["event_id"]]


def test_no_report_in_time_then_a_failure_frees_the_key(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook(mode="hold", durable_timeout_s=0.3)
    body = record(14)
    with TestClient(webhook.app) as client:
        assert webhook.post(client, body, key="k-14").status_code == 503
        webhook.producer.mode = "deliver"
        webhook.producer.release(ProduceError("Local: Message timed out", retriable=True))
        _until(lambda: webhook.post(client, body, key="k-14").status_code == 202, "the key freed and reused")
        retried = webhook.post(client, body, key="k-14")
    first_id, second_id = webhook.producer.event_ids()
    assert retried.json()["event_id"] == second_id != first_id


def test_too_much_in_flight_is_503(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook(mode="hold", max_in_flight_bytes=1)
    with TestClient(webhook.app) as client, ThreadPoolExecutor(1) as pool:
        first = pool.submit(webhook.post, client, record(15))
        assert webhook.producer.got_one.wait(10)
        second = webhook.post(client, record(16), key="k-16")
        webhook.producer.release()
        assert first.result(timeout=10).status_code == 202
        assert second.status_code == 503
        assert second.headers["retry-after"] == "5"
        webhook.producer.mode = "deliver"
        assert webhook.post(client, record(16), key="k-16").status_code == 202  # the key was not kept
    assert len(webhook.producer.produced) == 2


def test_before_start_and_after_close_the_answer_is_503(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook()
    client = TestClient(webhook.app)  # no lifespan: the publishing thread never started
    assert client.get("/health").status_code == 503
    assert webhook.post(client, record(17)).status_code == 503
    with TestClient(webhook.app) as running:
        assert running.get("/health").json() == {"status": "ok"}
    assert client.get("/health").status_code == 503
    assert webhook.producer.produced == []


# -- metrics, config -------------------------------------------------------------------------------------------


def test_requests_are_counted_by_status(make_webhook: MakeWebhook) -> None:
    webhook = make_webhook(name="counted-webhook")

    def count(status: str) -> float:
        return REGISTRY.get_sample_value("exchange_webhook_requests_total",
                                         {"connector": "counted-webhook", "status": status}) or 0.0

    with TestClient(webhook.app) as client:
        webhook.post(client, record(18))
        webhook.post(client, record(18), headers={"Authorization": "Bearer nope"})
        webhook.post(client, record(18), headers={"Authorization": "Bearer nope"})
    assert (count("202"), count("401")) == (1, 2)
    assert (REGISTRY.get_sample_value("exchange_webhook_publish_latency_seconds_count",
                                      {"connector": "counted-webhook"}) or 0) == 1


def test_a_record_type_the_agency_is_not_authoritative_for_fails_at_start(make_webhook: MakeWebhook) -> None:
    with pytest.raises(ConfigError, match=r"record_types: tax\.income-assessed: .*not authoritative"):
        make_webhook(record_types=[TYPE, "tax.income-assessed"])
