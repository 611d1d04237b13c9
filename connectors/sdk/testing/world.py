"""A throw-away exchange on a real broker, for a connector's tests: keys for every identity of a trust registry,
that registry with their public keys, and the exchange's topics under a fresh prefix.

It needs only what an exchange deployment has — a schema catalogue, the policies, a trust registry and the topic
spec (``deploy/topics.yaml``) — so an integrator's own package can use it; by default they are the ones its
``EXCHANGE_SCHEMAS``, ``EXCHANGE_POLICIES`` and ``EXCHANGE_REGISTRY`` name (and the topic spec of the exchange's
checkout). Delete its topics with :meth:`World.delete_topics` once done: a broker keeps files open per partition.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from pydantic import SecretStr

from exchange.context import Context
from exchange.delivery.open import DeliveryOpener, ReceivedDelivery
from exchange.errors import ConfigError
from exchange.kafka import ConsumedRecord, Producer, make_admin, read_to_end
from exchange.kafka.admin import apply_topics, broker_count
from exchange.kafka.local import deploy_dir
from exchange.publisher import Publisher
from exchange.registry import make_demo_keystore
from exchange.schemas.samples import sample_record
from exchange.settings import Settings, get_settings
from exchange.topics import discover_inputs, expand, load_spec

__all__ = ["PSEUDONYM_SECRET", "World", "default_topics_spec"]

PSEUDONYM_SECRET = "connector-kit-pseudonym-secret-0001"  # noqa: S105 - a throw-away world's, not a secret
"""The pseudonym secret of a test world (a world's records are throw-away: the secret is not one)."""


def default_topics_spec() -> Path:
    """The exchange's topic spec: ``deploy/topics.yaml`` of the checkout the exchange runs from."""
    return deploy_dir().parent / "topics.yaml"


@dataclass
class World:
    """One namespaced exchange: its ``settings`` (bootstrap, prefix, keystore, registry …) and ``context``."""

    settings: Settings
    context: Context
    directory: Path

    @classmethod
    def create(cls, bootstrap: str, directory: Path, *, schemas: Path | None = None, policies: Path | None = None,
               registry: Path | None = None, topics: Path | None = None,
               pseudonym_secret: str = PSEUDONYM_SECRET) -> Self:
        """Keys for every agency and service of ``registry`` in ``directory/keystore``, the registry with them as
        ``directory/registry.yaml``, and every topic of ``topics`` under a fresh prefix on ``bootstrap``.

        ``schemas``, ``policies`` and ``registry`` default to the process's settings (``EXCHANGE_SCHEMAS`` …),
        ``topics`` to :func:`default_topics_spec`; a missing one is a :class:`~exchange.errors.ConfigError`."""
        base = get_settings()
        schemas, policies = _existing("schemas", schemas or base.schemas), _existing("policies",
                                                                                   policies or base.policies)
        registry_in = _existing("registry", registry or base.registry)
        spec = _existing("topics", topics or default_topics_spec())
        directory.mkdir(parents=True, exist_ok=True)
        make_demo_keystore(directory / "keystore", registry_in, directory / "registry.yaml")
        settings = Settings(bootstrap=bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
                            registry=directory / "registry.yaml", keystore=directory / "keystore",
                            schemas=schemas, policies=policies, pseudonym_secret=SecretStr(pseudonym_secret))
        admin = make_admin(bootstrap=bootstrap)
        specs = expand(load_spec(spec), discover_inputs(schemas, settings.registry, policies),
                       brokers=broker_count(admin))
        apply_topics(admin, specs, prefix=settings.topic_prefix)
        return cls(settings, Context(settings), directory)

    def delete_topics(self) -> None:
        """Delete every topic of this world."""
        admin = make_admin(bootstrap=self.settings.bootstrap)
        mine = [t for t in admin.list_topics(timeout=30).topics if t.startswith(self.settings.topic_prefix)]
        if mine:
            for future in admin.delete_topics(mine, operation_timeout=60).values():
                future.result(timeout=60)

    def env(self) -> dict[str, str]:
        """The environment a process of the exchange (a connector, a router) needs to join this world."""
        s = self.settings
        secret = s.pseudonym_secret.get_secret_value() if s.pseudonym_secret else ""
        return {"EXCHANGE_BOOTSTRAP": s.bootstrap or "", "EXCHANGE_TOPIC_PREFIX": s.topic_prefix,
                "EXCHANGE_REGISTRY": str(s.registry), "EXCHANGE_KEYSTORE": str(s.keystore),
                "EXCHANGE_SCHEMAS": str(s.schemas), "EXCHANGE_POLICIES": str(s.policies),
                "EXCHANGE_PSEUDONYM_SECRET": secret}

    def publisher(self, agency: str, batch_size: int = 16) -> Publisher:
        c = self.context
        return Publisher.from_keystore(agency, c.keystore, registry=c.registry, catalogue=c.catalogue,
                                       pseudonymiser=c.pseudonymiser, producer=Producer(settings=self.settings),
                                       batch_size=batch_size, linger_ms=1000)

    def publish(self, agency: str, record_type: str, records: Iterable[dict[str, Any]]) -> list[str]:
        with self.publisher(agency) as publisher:
            return [publisher.publish(record_type, r) for r in records]

    def raw_producer(self) -> Producer:
        return Producer(settings=self.settings)

    def read(self, topic: str) -> list[ConsumedRecord]:
        """Every committed record of ``topic`` (a read_committed reader's view), up to its end now."""
        return read_to_end(topic, settings=self.settings)

    def opener(self, recipient: str) -> DeliveryOpener:
        c = self.context
        return DeliveryOpener(recipient, c.keystore.encryption_private_key(recipient), c.registry, c.catalogue)

    def deliveries(self, recipient: str, event_ids: Iterable[str] | None = None) -> list[ReceivedDelivery]:
        """Every delivery to ``recipient`` (opened and verified), optionally only of ``event_ids``."""
        wanted = set(event_ids) if event_ids is not None else None
        opener = self.opener(recipient)
        opened = []
        for record in self.read(f"delivery.{recipient}"):
            if wanted is not None and dict(record.headers).get("ce_id", b"").decode() not in wanted:
                continue
            opened.append(opener.open(record.key, record.value, record.headers, record.topic,
                                      timestamp_ms=record.timestamp_ms))
        return opened

    def decisions(self, event_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Access-log entries, decoded, optionally only those about ``event_ids``."""
        wanted = set(event_ids) if event_ids is not None else None
        entries = [self.context.catalogue.decode(r.value or b"")[1] for r in self.read("audit.decisions")]
        return [e for e in entries if wanted is None or e["event_id"] in wanted]

    def quarantined(self) -> list[dict[str, Any]]:
        return [self.context.catalogue.decode(r.value or b"")[1] for r in self.read("exchange.quarantine")]

    def records(self, record_type: str, n: int, seed: int, **fixed: Any) -> list[dict[str, Any]]:
        """``n`` sample records of ``record_type`` (reproducible from ``seed``), with ``fixed`` values."""
        rng = random.Random(seed)  # noqa: S311 - reproducible sample data, not a secret
        return [{**sample_record(record_type, rng), **fixed} for _ in range(n)]


def _existing(what: str, path: Path) -> Path:
    if not path.exists():
        where = "pass topics=" if what == "topics" else f"set EXCHANGE_{what.upper()} or pass {what}="
        raise ConfigError(f"the test world's {what} {path} does not exist: {where} (in the conformance kit, the "
                          "class attribute of that name)")
    return path.resolve()
