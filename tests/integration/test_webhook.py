"""The webhook source on the real broker, served by uvicorn: 202 only once the record is durable and verifies,
one event per Idempotency-Key however often it is sent, 503 with Retry-After when Kafka cannot be reached."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from connectors.http import WebhookSourceConfig, token_digest, webhook_source
from exchange.envelope import EnvelopeVerifier
from exchange.kafka import ConsumedRecord
from exchange.schemas.samples import sample_record
from exchange.settings import Settings
from tests.integration.router_world import World

TYPE = "population.address-changed"
TOKEN = "integration-webhook-token-7f3a9c"  # noqa: S105 - a test token; the config holds its digest


@pytest.fixture(scope="module")
def world(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> World:
    return World.create(bootstrap, tmp_path_factory.mktemp("webhook"))


def _config(directory: Path, **extra: Any) -> WebhookSourceConfig:
    return WebhookSourceConfig(name="prc-webhook", agency="population-registry", port=8480,
                               token_sha256=token_digest(TOKEN), record_types=(TYPE,),
                               idempotency_db=directory / "idempotency.sqlite3", **extra)


@contextmanager
def _serving(config: WebhookSourceConfig, settings: Settings) -> Iterator[httpx2.Client]:
    """The webhook served by uvicorn in a thread, on a free port, and a client for it."""
    source = webhook_source(config, settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=source.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not source.server.started:
        assert thread.is_alive(), "the server thread ended"
        assert time.monotonic() < deadline, "the server did not start within 30 s"
        time.sleep(0.02)  # polling the server's started flag, the condition above
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                           headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            yield client
    finally:
        source.server.should_exit = True
        thread.join(timeout=60)
        sock.close()
    assert not thread.is_alive()


def _json(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in record.items()}


def _with_id(world: World, event_id: str) -> list[ConsumedRecord]:
    return [r for r in world.read(f"ingress.{TYPE}") if dict(r.headers)["ce_id"].decode() == event_id]


def test_a_post_is_answered_once_the_event_is_on_the_topic_and_it_verifies(world: World, tmp_path: Path) -> None:
    original = sample_record(TYPE, random.Random(41))
    with _serving(_config(tmp_path), world.settings) as client:
        assert client.get("/health").json() == {"status": "ok"}
        answer = client.post(f"/records/{TYPE}", json=_json(original))
        assert answer.status_code == 202
        event_id = answer.json()["event_id"]
        # Read right after the answer, with no waiting: 202 means the broker has it (read_committed).
        (landed,) = _with_id(world, event_id)
    event = EnvelopeVerifier(world.context.registry, world.context.catalogue).verify(landed)
    assert event.attributes.id == event_id
    assert event.attributes.source == "population-registry"
    assert event.record == original
    assert landed.key == world.context.pseudonymiser.subject(original["person_id"]).encode()


def test_a_retried_post_with_one_key_gives_one_event(world: World, tmp_path: Path) -> None:
    body = _json(sample_record(TYPE, random.Random(42)))
    with _serving(_config(tmp_path), world.settings) as client:
        headers = {"Idempotency-Key": "prc-2026-000042"}
        first = client.post(f"/records/{TYPE}", json=body, headers=headers)
        again = client.post(f"/records/{TYPE}", json=body, headers=headers)
        assert first.status_code == again.status_code == 202
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"

        # Many at once with a new key: one publishes, the others are told it is in progress or get its answer.
        body = _json(sample_record(TYPE, random.Random(43)))
        headers = {"Idempotency-Key": "prc-2026-000043"}
        start = threading.Barrier(8)

        def send() -> httpx2.Response:
            start.wait()
            return client.post(f"/records/{TYPE}", json=body, headers=headers)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: send(), range(8)))
        assert {a.status_code for a in answers} <= {202, 409}
        winners = {a.json()["event_id"] for a in answers if a.status_code == 202}
        assert len(winners) == 1
        settled = client.post(f"/records/{TYPE}", json=body, headers=headers)
    assert settled.json()["event_id"] in winners
    assert len(_with_id(world, first.json()["event_id"])) == 1
    assert len(_with_id(world, winners.pop())) == 1


def test_with_kafka_unreachable_a_post_is_503_with_retry_after_in_time(world: World, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    settings = world.settings.model_copy(update={"bootstrap": dead})
    config = _config(tmp_path, durable_timeout_s=2.0, retry_after_s=7)
    body = _json(sample_record(TYPE, random.Random(44)))
    with _serving(config, settings) as client:
        started = time.monotonic()
        answer = client.post(f"/records/{TYPE}", json=body, headers={"Idempotency-Key": "prc-dead-1"})
        waited = time.monotonic() - started
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "7"
    assert answer.json()["error"] == "unavailable"
    assert 2.0 <= waited < 4.0
