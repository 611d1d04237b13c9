"""A throw-away world for benchmarks: keys in a temporary keystore, a registry that lists them, topics."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from exchange.context import Context
from exchange.envelope import Pseudonymiser
from exchange.kafka import make_admin
from exchange.kafka.admin import apply_topics, broker_count
from exchange.registry import Keystore, Registry, make_demo_keystore
from exchange.schemas import Catalogue
from exchange.settings import Settings, get_settings
from exchange.topics import TopicSpec

__all__ = ["BenchWorld", "make_world"]


@dataclass
class BenchWorld:
    bootstrap: str
    registry: Registry
    catalogue: Catalogue
    keystore: Keystore
    pseudonymiser: Pseudonymiser
    directory: Path


def make_world(bootstrap: str, settings: Settings | None = None) -> BenchWorld:
    """Fresh keys for every identity in a temporary keystore (mode 0600) and the registry that lists them."""
    settings = settings or get_settings()
    directory = Path(tempfile.mkdtemp(prefix="exchange-bench-"))
    registry_file = directory / "registry.yaml"
    make_demo_keystore(directory / "keystore", settings.registry, registry_file)
    context = Context(settings)
    return BenchWorld(bootstrap, Registry.load(registry_file), context.catalogue, Keystore(directory / "keystore"),
                      Pseudonymiser(b"benchmark-pseudonym-secret-0001"), directory)


def ensure_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = make_admin(bootstrap=bootstrap)
    rf = 1 if broker_count(admin) < 3 else 3
    apply_topics(admin, [TopicSpec(n, partitions, rf, {"retention.ms": "3600000"}) for n in names],
                 prefix=get_settings().topic_prefix)
