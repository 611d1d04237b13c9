"""The source kit's base: what a subclass provides, the fixtures, and the helpers its checks use."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from connectors.sdk.api import Offset, Source
from connectors.sdk.config import ConnectorConfig
from connectors.sdk.source_runtime import SourceRunner, SourceStats, offsets_topic
from connectors.sdk.testing._support import canonical, expect
from connectors.sdk.testing._watched import Acks, Watched
from connectors.sdk.testing.world import World
from exchange.envelope import EnvelopeVerifier
from exchange.kafka import ConsumedRecord
from exchange.settings import Settings, get_settings

__all__ = ["BOUNDARIES", "SourceKit", "run_until_killed"]

BOUNDARIES = ("produced", "committed", "acknowledged")
"""Where the source runtime calls its ``boundary`` hook in each batch, in order."""

_NOT_KILLED = 3
_CHILD = """
import importlib, sys
from pathlib import Path
from connectors.sdk.testing import run_until_killed
module, qualname, directory, boundary, batch, max_batch, acks = sys.argv[1:8]
kit = importlib.import_module(module)
for part in qualname.split("."):
    kit = getattr(kit, part)
run_until_killed(kit(), Path(directory), boundary, int(batch), int(max_batch), acks=acks)
"""


class SourceKit:
    """What :class:`~connectors.sdk.testing.SourceConformance` is built on (see the package doc)."""

    agency: ClassVar[str]
    record_type: ClassVar[str]
    open_timeout_s: ClassVar[float] = 10.0
    idle_s: ClassVar[float] = 0.5
    """How long a run waits with nothing new before it counts as done."""
    kill_batch: ClassVar[int] = 10
    """``max_batch`` in the crash tests (they inject three and a half batches and kill in the second)."""
    schemas: ClassVar[Path | None] = None
    policies: ClassVar[Path | None] = None
    registry: ClassVar[Path | None] = None
    topics: ClassVar[Path | None] = None
    """The world's catalogue, policies, trust registry and topic spec; None: ``EXCHANGE_SCHEMAS``,
    ``EXCHANGE_POLICIES``, ``EXCHANGE_REGISTRY`` and the exchange's ``deploy/topics.yaml``."""

    # -- what a subclass provides ---------------------------------------------------------------------------

    def make(self, directory: Path) -> tuple[Source, ConnectorConfig]:
        """A new source on the system at ``directory``, and its config."""
        raise NotImplementedError(f"{type(self).__name__} must implement make(directory)")

    def inject(self, n: int) -> list[dict[str, Any]]:
        """Add ``n`` new records to the system; return their values as the events must carry them."""
        raise NotImplementedError(f"{type(self).__name__} must implement inject(n)")

    def inject_bad(self) -> None:
        """Add one record the source cannot read (it must raise BadRecord for it)."""
        raise NotImplementedError(f"{type(self).__name__} must implement inject_bad()")

    def future_offset(self) -> Offset:
        """A well-formed offset beyond anything the system has; the source must raise an OffsetError for it."""
        raise NotImplementedError(f"{type(self).__name__} must implement future_offset()")

    # -- fixtures -------------------------------------------------------------------------------------------

    @pytest.fixture
    def world(self, bootstrap: str, tmp_path: Path) -> Iterator[World]:
        """A throw-away exchange (keys, registry, topics under a fresh prefix), deleted after the test."""
        world = World.create(bootstrap, tmp_path / "world", schemas=self.schemas, policies=self.policies,
                             registry=self.registry, topics=self.topics)
        yield world
        world.delete_topics()

    @pytest.fixture
    def directory(self, tmp_path: Path) -> Path:
        """Where the connector's system lives."""
        path = tmp_path / "system"
        path.mkdir()
        return path

    # -- helpers --------------------------------------------------------------------------------------------

    def runner(self, world: World, source: Source, config: ConnectorConfig, **kwargs: Any) -> SourceRunner:
        return SourceRunner(source, config, agency=self.agency, settings=world.settings, **kwargs)

    def run_to_idle(self, world: World, directory: Path, *, max_batch: int | None = None,
                    wrap: Callable[[Source], Source] | None = None, **config: Any) -> SourceStats:
        """A fresh source on ``directory`` run until it has nothing new (``config``: settings to change)."""
        source, settings = self.make(directory)
        if max_batch is not None:
            config["max_batch"] = max_batch
        if config:
            settings = settings.model_copy(update=config)
        return self.runner(world, wrap(source) if wrap else source, settings).run(max_idle_s=self.idle_s)

    def verified(self, world: World) -> list[tuple[ConsumedRecord, dict[str, Any]]]:
        """Every committed event of the record type with its verified values, in partition and offset order;
        fails if one is not valid or not this agency's, or if an event id repeats."""
        verifier = EnvelopeVerifier(world.context.registry, world.context.catalogue)
        records = sorted(world.read(f"ingress.{self.record_type}"), key=lambda r: (r.partition, r.offset))
        verified = [(record, verifier.verify(record)) for record in records]
        ids = Counter(v.attributes.id for _, v in verified)
        expect(all(n == 1 for n in ids.values()), "an event id appears twice")
        kinds = {(v.attributes.source, v.attributes.type) for _, v in verified}
        expect(kinds <= {(self.agency, self.record_type)}, f"events of other sources or types: {kinds}")
        return [(record, dict(v.record)) for record, v in verified]

    def events(self, world: World) -> list[dict[str, Any]]:
        """The values of every committed event of the record type (see :meth:`verified`)."""
        return [values for _, values in self.verified(world)]

    def assert_once_each(self, world: World, injected: Sequence[Mapping[str, Any]]) -> None:
        """The events are exactly ``injected``: nothing missing, nothing twice, nothing else."""
        got = Counter(canonical(r) for r in self.events(world))
        want = Counter(canonical(r) for r in injected)
        missing, extra = want - got, got - want
        expect(not missing and not extra, f"{sum(missing.values())} injected records missing, "
                                          f"{sum(extra.values())} events not injected or repeated")

    def dead_letters(self, world: World, config: ConnectorConfig) -> list[dict[str, Any]]:
        return [q for q in world.quarantined() if q["quarantined_by"] == f"connector:{config.name}"]

    def kill_at(self, world: World, directory: Path, boundary: str, *, batch: int = 2,
                max_batch: int | None = None, acks: Acks = "direct") -> None:
        """Run the source in a child process that SIGKILLs itself at ``boundary`` of batch number ``batch``
        (``acks``: how acknowledgements reach the source there, see :class:`Watched`)."""
        cls = type(self)
        env = {**os.environ, **world.env(), "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        done = subprocess.run(  # noqa: S603 - the interpreter running the tests, with the kit's own script
            [sys.executable, "-c", _CHILD, cls.__module__, cls.__qualname__, str(directory), boundary, str(batch),
             str(max_batch or self.kill_batch), acks], env=env, capture_output=True, timeout=120, check=False)
        expect(done.returncode == -signal.SIGKILL,
               f"the child did not die at {boundary} of batch {batch} (exit {done.returncode}): "
               f"{done.stderr.decode(errors='replace')[-3000:]}")

    def write_offset(self, world: World, source: Source, config: ConnectorConfig, value: bytes) -> None:
        """Store ``value`` as the connector's committed offset, by hand (a runner made first makes its topic;
        it does not touch the source)."""
        self.runner(world, source, config)
        producer = world.raw_producer()
        producer.produce(offsets_topic(config.name), value, config.name.encode(), partition=0)
        producer.flush()


def run_until_killed(kit: SourceKit, directory: Path, boundary: str, batch: int, max_batch: int, *,
                     acks: Acks = "direct") -> None:
    """The crash tests' child: run the source, SIGKILL at ``boundary`` of batch number ``batch``."""
    inner, config = kit.make(directory)
    source = Watched(inner, acks=acks) if acks != "direct" else inner
    config = config.model_copy(update={"max_batch": max_batch})
    batches = 0

    def hook(name: str) -> None:
        nonlocal batches
        if name == "produced":
            batches += 1
        if name == boundary and batches == batch:
            os.kill(os.getpid(), signal.SIGKILL)

    settings: Settings = get_settings()
    SourceRunner(source, config, agency=kit.agency, settings=settings, boundary=hook).run(max_idle_s=kit.idle_s)
    sys.exit(_NOT_KILLED)
