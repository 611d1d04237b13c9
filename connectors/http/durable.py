"""Publish one record and learn when the broker has it: the Publisher, in a thread of its own.

The :class:`~exchange.publisher.Publisher` is not thread-safe, so exactly one thread ever touches it (and through
it the Kafka producer): requests hand it :class:`Job` s through a queue and wait on the job's futures. The thread
publishes each job with ``batch_size=1`` (every record sealed and produced at once, one signature each) and polls
the producer while deliveries are outstanding; each delivery report (acks=all) resolves its job.

A job's ``accepted`` future gets the event id once the record is signed and queued (or the publish error:
RecordValidationError, NotAuthoritativeError, a KafkaError); ``delivered`` gets the :class:`Delivery`, which may
carry an error. ``delivered`` always resolves in the end: librdkafka reports every record within its
``message.timeout.ms``, and :meth:`DurablePublisher.close` fails whatever is still in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exchange.context import Context
from exchange.crypto.note import NoteSigner
from exchange.envelope import Pseudonymiser
from exchange.errors import ConfigError, ExchangeError
from exchange.kafka import ProduceError, Producer
from exchange.log import get_logger
from exchange.publisher import Delivery, Publisher
from exchange.registry import Registry
from exchange.registry.errors import RegistryError
from exchange.schemas import Catalogue, RecordSchema
from exchange.schemas.errors import SchemaError

__all__ = ["DurablePublisher", "InFlightLimitError", "Job"]

_log = get_logger("connectors.http.publisher")


class InFlightLimitError(ExchangeError):
    """More bytes are waiting for the broker than ``max_in_flight_bytes`` allows: try again later."""


@dataclass(eq=False)
class Job:
    """One record to publish, and the futures its request waits on."""

    record_type: str
    values: dict[str, Any]
    size: int
    accepted: Future[str] = field(default_factory=Future)
    delivered: Future[Delivery] = field(default_factory=Future)


def _settle(future: Future[Any], value: Any = None, error: BaseException | None = None) -> None:
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
    except InvalidStateError:  # already settled (close() failing a job the last poll delivered)
        pass


class DurablePublisher:
    """An agency's Publisher behind a queue, run by one thread; see the module doc."""

    def __init__(self, agency: str, *, signer: NoteSigner, registry: Registry, catalogue: Catalogue,
                 pseudonymiser: Pseudonymiser, producer: Producer, max_in_flight_bytes: int = 64 * 1024 * 1024,
                 poll_interval_s: float = 0.005, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.agency = agency
        self.registry = registry
        self.catalogue = catalogue
        self.max_in_flight_bytes = max_in_flight_bytes
        self._publisher = Publisher(agency, signer=signer, registry=registry, catalogue=catalogue,
                                    pseudonymiser=pseudonymiser, producer=producer, batch_size=1, linger_ms=0,
                                    on_delivery=self._report, clock=clock)
        self._poll_interval_s = poll_interval_s
        self._wake = threading.Condition()
        self._queue: list[Job] = []
        self._in_flight_bytes = 0
        self._stopping = False
        # Touched only by the publishing thread:
        self._waiting: dict[str, Job] = {}
        self._early: dict[str, Delivery] = {}
        self._thread: threading.Thread | None = None

    @classmethod
    def from_context(cls, agency: str, context: Context, producer: Producer, **kwargs: Any) -> DurablePublisher:
        """A durable publisher signing with ``agency``'s key from the context's keystore."""
        return cls(agency, signer=context.keystore.signer(agency), registry=context.registry,
                   catalogue=context.catalogue, pseudonymiser=context.pseudonymiser, producer=producer, **kwargs)

    def schemas(self, record_types: Iterable[str]) -> dict[str, RecordSchema]:
        """The current schema of each type; ConfigError naming the first the agency may not publish."""
        found: dict[str, RecordSchema] = {}
        for record_type in record_types:
            try:
                self.registry.require_authoritative(self.agency, record_type)
                found[record_type] = self.catalogue.current(record_type)
            except (RegistryError, SchemaError) as exc:
                raise ConfigError(f"record_types: {record_type}: {exc}; list only types {self.agency} is "
                                  f"authoritative for in the trust registry") from exc
        return found

    # -- the requests' side ---------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def start(self) -> None:
        """Start the publishing thread (once; later calls do nothing)."""
        with self._wake:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"publisher-{self.agency}", daemon=True)
                self._thread.start()

    def submit(self, record_type: str, values: dict[str, Any], size: int) -> Job:
        """Queue one record; InFlightLimitError if too much is in flight, ProduceError if the publisher is stopped."""
        job = Job(record_type, values, size)
        with self._wake:
            if not self.alive:
                raise ProduceError("the publisher is not running", retriable=True)
            if self._in_flight_bytes and self._in_flight_bytes + size > self.max_in_flight_bytes:
                raise InFlightLimitError(f"{self._in_flight_bytes} bytes are waiting for the broker")
            self._in_flight_bytes += size
            self._queue.append(job)
            self._wake.notify()
        return job

    def close(self, timeout: float = 30.0) -> None:
        """Publish what is queued, wait up to ``timeout`` for the deliveries, fail the rest, stop the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join()
        try:
            self._publisher.flush(timeout)
        except ExchangeError as exc:
            _log.warning("closing with records not delivered", error=str(exc))
        stopped = ProduceError("the connector stopped before the broker acknowledged the record", retriable=True)
        for job in [*self._queue, *self._waiting.values()]:
            _settle(job.accepted, error=stopped)
            _settle(job.delivered, error=stopped)
        self._queue.clear()
        self._waiting.clear()

    # -- the publishing thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._queue and not self._waiting and not self._stopping:
                    self._wake.wait(1.0)
                jobs, self._queue = self._queue, []
                stopping = self._stopping
            for job in jobs:
                self._publish(job)
            try:
                self._publisher.poll(self._poll_interval_s if self._waiting and not jobs else 0)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive one failed poll; it is logged
                _log.error("polling the producer failed", error=str(exc))
            if stopping:
                return

    def _publish(self, job: Job) -> None:
        try:
            event_id = self._publisher.publish(job.record_type, job.values)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the request that asked
            self._done(job.size)
            _settle(job.accepted, error=exc)
            _settle(job.delivered, error=exc)
            return
        _settle(job.accepted, event_id)
        early = self._early.pop(event_id, None)
        if early is not None:  # publish() polls once itself: the report may have come already
            self._resolve(job, early)
        else:
            self._waiting[event_id] = job

    def _report(self, delivery: Delivery) -> None:
        job = self._waiting.pop(delivery.event_id, None)
        if job is None:
            self._early[delivery.event_id] = delivery
        else:
            self._resolve(job, delivery)

    def _resolve(self, job: Job, delivery: Delivery) -> None:
        self._done(job.size)
        _settle(job.delivered, delivery)

    def _done(self, size: int) -> None:
        with self._wake:
            self._in_flight_bytes -= size
