"""A webhook app over a Publisher whose producer is a fake (no broker): keys and registry in memory."""

from __future__ import annotations

import base64
import json
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from connectors.http import DurablePublisher, IdempotencyStore, WebhookSourceConfig, build_app, token_digest
from exchange.crypto.keys import Signer
from exchange.envelope import Pseudonymiser
from exchange.kafka import Headers, ProduceError
from exchange.registry import Registry
from exchange.schemas import Catalogue
from exchange.schemas.samples import sample_record
from tests.keys import identity_signers, registry_with_keys

TOKEN = "webhook-test-token-0123456789abcdef"  # noqa: S105 - a test token; its digest is the config's
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TYPE = "population.address-changed"
OTHER_TYPE = "population.person-registered"

Report = Callable[[ProduceError | None, str, int, int], None]


class FakeProducer:
    """Stands in for exchange.kafka.Producer: keeps what is produced and reports deliveries as told.

    ``mode`` is ``deliver`` (reported on the next poll), ``fail`` (reported failed) or ``hold`` (kept until
    :meth:`release`). Thread-safe: the publishing thread produces and polls, the test releases."""

    def __init__(self, mode: str = "deliver") -> None:
        self.mode = mode
        self.produced: list[tuple[str, bytes, bytes, Headers]] = []
        self.got_one = threading.Event()
        self._ready: list[tuple[Report, ProduceError | None, str, int]] = []
        self._held: list[tuple[Report, str, int]] = []
        self._cv = threading.Condition()

    def produce(self, topic: str, value: bytes, key: bytes | None = None, *, headers: Headers | None = None,
                on_delivery: Report | None = None, **_: Any) -> None:
        assert on_delivery is not None
        with self._cv:
            offset = len(self.produced)
            self.produced.append((topic, value, key or b"", list(headers or [])))
            if self.mode == "hold":
                self._held.append((on_delivery, topic, offset))
            else:
                error = ProduceError("Local: Message timed out", retriable=True) if self.mode == "fail" else None
                self._ready.append((on_delivery, error, topic, offset))
            self._cv.notify_all()
        self.got_one.set()

    def release(self, error: ProduceError | None = None) -> None:
        """Report every held record: delivered, or failed with ``error``."""
        with self._cv:
            self._ready.extend((report, error, topic, offset) for report, topic, offset in self._held)
            self._held.clear()
            self._cv.notify_all()

    def poll(self, timeout: float = 0.0) -> int:
        with self._cv:
            if not self._ready and timeout > 0:
                self._cv.wait(timeout)
            ready, self._ready = self._ready, []
        for report, error, topic, offset in ready:
            report(error, topic, 0, -1 if error else offset)
        return len(ready)

    def flush(self, timeout: float = 30.0) -> None:
        self.poll(0)
        with self._cv:
            left = len(self._held)
        if left:
            raise ProduceError(f"{left} record(s) not delivered within {timeout:.0f}s", retriable=True)

    def event_ids(self) -> list[str]:
        with self._cv:
            return [dict(h)["ce_id"].decode() for _, _, _, h in self.produced]


def as_json(value: Any) -> Any:
    """A sample record's values as the JSON a client sends (dates and times as text, bytes as base64)."""
    if isinstance(value, Mapping):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def record(seed: int = 1, record_type: str = TYPE, **fixed: Any) -> dict[str, Any]:
    """A JSON record of ``record_type``, reproducible from ``seed``."""
    values: dict[str, Any] = as_json(sample_record(record_type, random.Random(seed)))
    values.update(fixed)
    return values


@pytest.fixture(scope="session")
def catalogue(repo_root: Path) -> Catalogue:
    return Catalogue.load(repo_root / "schemas")


@pytest.fixture(scope="session")
def signers() -> dict[str, Signer]:
    return identity_signers()


@pytest.fixture(scope="session")
def registry(signers: dict[str, Signer]) -> Registry:
    return registry_with_keys(signers)


class Webhook:
    """An app, its fake producer, its store and its config, with a client that runs its lifespan."""

    def __init__(self, tmp: Path, catalogue: Catalogue, registry: Registry, signers: dict[str, Signer],
                 mode: str = "deliver", max_in_flight_bytes: int = 1 << 20, agency: str = "population-registry",
                 **config: Any) -> None:
        settings: dict[str, Any] = {
            "name": "prc-webhook", "agency": agency, "port": 8480,
            "token_sha256": token_digest(TOKEN), "record_types": [TYPE, OTHER_TYPE], "durable_timeout_s": 5.0,
            "idempotency_db": tmp / "idempotency.sqlite3", **config}
        self.config = WebhookSourceConfig.model_validate(settings)
        self.producer = FakeProducer(mode)
        self.store = IdempotencyStore(self.config.idempotency_path(), ttl_s=self.config.idempotency_ttl_s,
                                      pending_lease_s=60.0)
        self.publisher = DurablePublisher(
            agency, signer=signers[agency], registry=registry, catalogue=catalogue,
            pseudonymiser=Pseudonymiser(b"webhook-unit-test-secret-01"),
            producer=self.producer,
            max_in_flight_bytes=max_in_flight_bytes)
        self.app = build_app(self.config, self.publisher, self.store)

    def post(self, client: TestClient, body: Any, *, key: str | None = None, record_type: str = TYPE,
             headers: Mapping[str, str] | None = None) -> Any:
        sent = {**AUTH, "Content-Type": "application/json", **({"Idempotency-Key": key} if key is not None else {}),
                **(headers or {})}
        # json.dumps escapes what UTF-8 cannot carry (a lone surrogate), as a client's encoder would.
        return client.post(f"/records/{record_type}", content=json.dumps(body).encode(), headers=sent)


@pytest.fixture
def make_webhook(tmp_path: Path, catalogue: Catalogue, registry: Registry,
                 signers: dict[str, Signer]) -> Iterator[Callable[..., Webhook]]:
    made: list[Webhook] = []

    def make(**kwargs: Any) -> Webhook:
        webhook = Webhook(tmp_path / str(len(made)), catalogue, registry, signers, **kwargs)
        made.append(webhook)
        return webhook

    yield make
    for webhook in made:
        webhook.producer.release()
        webhook.store.close()
