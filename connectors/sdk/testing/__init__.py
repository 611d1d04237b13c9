"""The conformance kit: pytest base classes a connector's tests subclass, so every connector keeps the same
promises — records arrive once and in order, a crash at any boundary loses and repeats nothing, bad input is a
dead letter.

A source's tests subclass :class:`SourceConformance` and say how to reach their system::

    class TestMySource(SourceConformance):
        agency = "population-registry"
        record_type = "population.address-changed"

        def make(self, directory: Path) -> tuple[Source, ConnectorConfig]: ...  # a source on `directory`
        def inject(self, n: int) -> list[dict[str, Any]]: ...   # add n records; return them as they must arrive
        def inject_bad(self) -> None: ...                       # add one record the source cannot read
        def future_offset(self) -> Offset: ...                  # a well-formed offset the system does not have

Each ``test_…`` method is inherited. They run on a real broker, each in a fresh :class:`World` (keys, a trust
registry, the exchange's topics under a new prefix, deleted after the test), and need a ``bootstrap`` fixture:
a package outside the exchange gets one with ``pytest_plugins = ["connectors.sdk.testing.plugin"]`` in its
``conftest.py``. The world is built from ``EXCHANGE_SCHEMAS``, ``EXCHANGE_POLICIES``, ``EXCHANGE_REGISTRY`` and the
exchange's topic spec, or from the class attributes ``schemas``, ``policies``, ``registry`` and ``topics``.

The crash tests import the subclass again, by module and class name, in a child process (its module must be
importable by name) and call ``make`` there on a fresh instance, and again after a restart: everything the source
reads must live in (or be reached from) ``directory``, and ``inject`` writes to the system of the last ``make``.
The kit adjusts ``max_batch`` and ``errors_tolerance`` of the config ``make`` returns.

It checks (docs/connectors.md, "The conformance kit", has the table): ``open`` and ``close`` return in time;
injected records arrive as valid events, once each; a SIGKILL at each boundary (``produced``, ``committed``,
``acknowledged``) of the second batch and a restart lose and repeat nothing; a restart with nothing new emits
nothing; acknowledgements handed on late, out of order, or never, lose and repeat nothing; each key's records
keep their order across batches and a restart; :class:`~connectors.sdk.Retryable` from ``poll`` is retried with a
growing backoff; a corrupt or a future offset is an :class:`~connectors.sdk.OffsetError`, not a loop; a bad record
is one dead letter and the rest arrive (``errors_tolerance: all``), or stops the connector with a clear error
(``none``); :class:`~connectors.sdk.Backpressure` once loses nothing; a second instance fences the first.

:class:`SinkConformance` checks what the :class:`~connectors.sdk.Sink` surface alone can show (idempotence,
per-key order), not a sink under the :class:`~connectors.sdk.sink_runtime.SinkRunner` and the broker.
"""

from connectors.sdk.testing._source_base import BOUNDARIES, run_until_killed
from connectors.sdk.testing._support import canonical
from connectors.sdk.testing._watched import Watched
from connectors.sdk.testing.sink import SinkConformance
from connectors.sdk.testing.source import SourceConformance
from connectors.sdk.testing.world import World

__all__ = ["BOUNDARIES", "SinkConformance", "SourceConformance", "Watched", "World", "canonical",
           "run_until_killed"]
