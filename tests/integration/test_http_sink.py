"""The HTTP sink on the real broker: a department's routed deliveries POSTed by a SinkRunner to its endpoint,
each stored once per Idempotency-Key though the endpoint answers 503 to some first attempts, in order per subject,
and the one it refuses with 422 dead-lettered while the others are written.

The endpoint (:class:`Endpoint`, a real HTTP server on 127.0.0.1 answering scripted statuses) is shared with the
sink's unit tests."""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.http import WebhookSinkConfig, build_sink
from connectors.sdk.jsonrecord import record_from_json
from connectors.sdk.sink_runtime import SinkRunner
from exchange.delivery.open import ReceivedDelivery
from tests.integration.router_world import RunningRouter, World

TYPE = "population.address-changed"
RECIPIENT = "tax-board"
TOKEN = "tcb-intake-token-integration-0001"  # noqa: S105 - a test token for the local endpoint


@dataclass
class Answer:
    """``hold``: answer once the endpoint is released (the client times out first); ``drop``: close the
    connection after answering, without saying so in a ``Connection: close``."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"status": "ok"}'
    hold: bool = False
    drop: bool = False


@dataclass(frozen=True)
class Received:
    key: str
    headers: dict[str, str]
    body: bytes
    at: float
    peer: int  # the client's port: requests on one kept-alive connection share it
    status: int


class Endpoint:
    """A department's endpoint on 127.0.0.1: each request recorded, answered from ``script`` (a list of answers
    per Idempotency-Key, used in turn) or else 200, and the body of the first 2xx per key stored."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.script: dict[str, list[Answer]] = {}
        self.received: list[Received] = []
        self.stored: dict[str, bytes] = {}
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _handler(self))
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_address[1]}/intake?v=1"

    def answer(self, headers: dict[str, str], body: bytes, peer: int) -> Answer:
        key = headers.get("Idempotency-Key", "")
        with self._lock:
            queued = self.script.get(key)
            chosen = queued.pop(0) if queued else Answer()
            self.received.append(Received(key, headers, body, time.monotonic(), peer, chosen.status))
            if 200 <= chosen.status < 300:
                self.stored.setdefault(key, body)
            return chosen

    def requests(self, key: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.key == key]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A held answer written after the client gave up: expected, and not the test's output."""


def _handler(endpoint: Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            got = endpoint.answer(dict(self.headers.items()), body, self.client_address[1])
            if got.hold:
                endpoint.release.wait(30)
            self.send_response(got.status)
            for name, value in {"Content-Type": "application/json", **got.headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(got.body)))
            self.end_headers()
            self.wfile.write(got.body)
            self.close_connection = got.drop

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads ``endpoint.received``."""

    return Handler




@pytest.fixture(scope="module")
def routed(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[World, list[str]]:
    """Twelve address changes routed to the tax board; five of them (the first, then four moves) are one person's."""
    world = World.create(bootstrap, tmp_path_factory.mktemp("http-sink"))
    others = world.records(TYPE, 8, seed=21, address_protected=False)
    mover = world.records(TYPE, 4, seed=22, address_protected=False, person_id=others[0]["person_id"])
    ids = world.publish("population-registry", TYPE, [*others[:3], *mover[:2], *others[3:], *mover[2:]])
    router = RunningRouter(world, router_id="http-sink-router", group="http-sink-routers")
    try:
        router.wait_events(len(ids))
    finally:
        router.stop()
    return world, ids


def _key(delivery: ReceivedDelivery) -> str:
    return f"{delivery.provenance.event_id}:{delivery.provenance.agreement_id}"


def test_each_delivery_reaches_the_endpoint_once_and_the_refused_one_is_dead_lettered(
        routed: tuple[World, list[str]]) -> None:
    world, ids = routed
    deliveries = world.deliveries(RECIPIENT, ids)  # in the order of the topic's partitions
    assert {d.provenance.event_id for d in deliveries} == set(ids)
    by_event = {d.provenance.event_id: d for d in deliveries}
    refused = _key(by_event[ids[6]])
    endpoint = Endpoint()
    try:
        for event_id in (ids[1], ids[3], ids[4]):  # ids[3]: the mover's first move
            endpoint.script[_key(by_event[event_id])] = [Answer(503)]
        endpoint.script[_key(by_event[ids[9]])] = [Answer(503, {"Retry-After": "1"})]
        endpoint.script[refused] = [Answer(422)] * 5
        config = WebhookSinkConfig(name="tcb-http", recipient=RECIPIENT, url=endpoint.url, token=SecretStr(TOKEN),
                                   max_batch=5, backoff_s=0.05)
        stats = SinkRunner(build_sink(config), config, recipient=RECIPIENT,
                           settings=world.settings).run(max_idle_s=2.0)
    finally:
        endpoint.close()

    written = {_key(d) for d in deliveries} - {refused}
    assert set(endpoint.stored) == written
    assert (stats.written, stats.dead_letters, stats.retries) == (len(written), 1, 3)
    for delivery in deliveries:  # exactly once per key: one 2xx, and every attempt the same request
        attempts = endpoint.requests(_key(delivery))
        assert [a.status for a in attempts if 200 <= a.status < 300] == ([] if _key(delivery) == refused else [200])
        assert len({(a.body, a.headers["Idempotency-Key"], a.headers["Authorization"]) for a in attempts}) == 1
        assert attempts[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert len(endpoint.requests(_key(by_event[ids[1]]))) == 2

    schema = world.context.catalogue.current(TYPE)
    for delivery in deliveries:
        if _key(delivery) in written:  # the fields the agreement releases, read back as the webhook source would
            body = json.loads(endpoint.stored[_key(delivery)])
            values, problems = record_from_json(schema, body["fields"])
            assert {name: values[name] for name in delivery.fields} == dict(delivery.fields)
            assert [p.field for p in problems] == ["address_protected"]  # withheld by the agreement
            assert (body["event_id"], body["record_type"], body["source"]) == (
                delivery.provenance.event_id, TYPE, "population-registry")

    moves = [_key(by_event[i]) for i in (ids[0], ids[3], ids[4], ids[10], ids[11])]
    assert [k for k in endpoint.stored if k in moves] == moves  # one subject, in order, across a retry

    (letter,) = [q for q in world.quarantined() if q["quarantined_by"] == "connector:tcb-http"]
    assert letter["original_key"] == ids[6].encode()
    assert (letter["reason_code"], letter["detail"]) == ("BAD_RECORD", "the endpoint answered 422 Unprocessable Entity")
