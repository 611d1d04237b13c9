"""Kafka clients with the exchange's safe defaults, and the only place that talks to confluent-kafka.

- producers are idempotent (``acks=all``, ordered retries), compress with lz4 and linger a few milliseconds;
- consumers never auto-commit and read only committed transactions;
- :class:`TransactionalProducer` wraps the KIP-447 loop (begin → produce → send offsets → commit / abort).

Every client takes the resolved bootstrap address and optional overrides; a caller's dict is never mutated.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
from confluent_kafka import Consumer as _Consumer
from confluent_kafka import KafkaError as _CKafkaError
from confluent_kafka import KafkaException as _CKafkaException
from confluent_kafka import Message as _Message
from confluent_kafka import Producer as _Producer
from confluent_kafka import TopicPartition as _TopicPartition
from confluent_kafka.admin import AdminClient

from exchange.kafka.errors import BrokerError, ConsumeError, ProduceError, TransactionError, error_from, translate
from exchange.kafka.local import LocalBroker
from exchange.log import get_logger
from exchange.settings import Settings, get_settings

__all__ = [
    "ConsumedRecord",
    "Consumer",
    "Headers",
    "Producer",
    "TopicNames",
    "TransactionalProducer",
    "client_config",
    "make_admin",
    "read_since",
    "read_to_end",
    "resolve_bootstrap",
]

Headers = list[tuple[str, bytes]]
DeliveryCallback = Callable[["ProduceError | None", str, int, int], None]

_log = get_logger("exchange.kafka")

PRODUCER_DEFAULTS: Mapping[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 5,
    "batch.num.messages": 10000,
    "message.max.bytes": 4_000_000,
}
CONSUMER_DEFAULTS: Mapping[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "isolation.level": "read_committed",
    "auto.offset.reset": "earliest",
    "enable.partition.eof": False,
    "fetch.max.bytes": 16_000_000,
}

PATTERN_REFRESH_MS = 3000
PATTERN_CONSUMER_DEFAULTS: Mapping[str, Any] = {
    # A pattern subscription sees a topic only once the client's metadata lists it, and librdkafka refreshes that
    # every topic.metadata.refresh.interval.ms (5 minutes by default): a fresh matching topic (a record type added
    # at runtime, a demo's new namespace) would wait that long. Every few seconds instead.
    "topic.metadata.refresh.interval.ms": PATTERN_REFRESH_MS,
}
"""Layered under a consumer's overrides when it is built with a subscription pattern (a topic starting '^')."""


class TopicNames:
    """Maps the exchange's logical names to physical ones under ``EXCHANGE_TOPIC_PREFIX`` and back.

    Everything above this module speaks logical names (``ingress.tax.income-assessed``, group
    ``exchange-router``); a prefix lets several exchanges, or test runs, share one cluster without seeing each
    other's topics, consumer groups or transactional ids.
    """

    __slots__ = ("prefix",)

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def physical(self, topic: str) -> str:
        if not self.prefix:
            return topic
        if topic.startswith("^"):  # a subscription pattern
            return "^" + re.escape(self.prefix) + topic[1:]
        return self.prefix + topic

    def logical(self, topic: str) -> str:
        return topic[len(self.prefix):] if self.prefix and topic.startswith(self.prefix) else topic


def resolve_bootstrap(settings: Settings | None = None) -> str:
    """``EXCHANGE_BOOTSTRAP`` if set, else the running local broker's address, else a BrokerError with the fix."""
    settings = settings or get_settings()
    if settings.bootstrap:
        return settings.bootstrap
    state = LocalBroker(settings.cache_dir, settings.kafka_version).state()
    if state is None:
        raise BrokerError("no broker to talk to: run `exchange broker up`, or set EXCHANGE_BOOTSTRAP to the "
                          "bootstrap servers of an existing cluster")
    return state.bootstrap


class LibrdkafkaLog:
    """Where librdkafka's own log lines go (the clients' ``logger``): the exchange's structlog, component
    ``librdkafka``, instead of raw ``%4|…|GETPID|…`` lines on stderr. The client calls ``log(level, format,
    facility, client name, message)`` with a :mod:`logging` level, from the thread that polls it."""

    _log = get_logger("librdkafka")

    def log(self, level: int, msg: str, *args: object) -> None:
        if len(args) == 3:
            facility, client, text = (str(a) for a in args)
        else:  # not the client's own call: keep every part, format none (a stray '%' must not raise here)
            facility, client, text = "", "", " ".join(map(str, (msg, *args)))
        fields = {"facility": facility, "client": client}
        if level >= logging.ERROR:
            self._log.error(text, **fields)
        elif level >= logging.WARNING:
            self._log.warning(text, **fields)
        elif level >= logging.INFO:
            self._log.info(text, **fields)
        else:
            self._log.debug(text, **fields)


_LIBRDKAFKA_LOG = LibrdkafkaLog()


def client_config(settings: Settings | None = None, bootstrap: str | None = None,
                  *layers: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh librdkafka config: connection settings, then each layer of defaults and overrides in order."""
    settings = settings or get_settings()
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap or resolve_bootstrap(settings),
        "client.id": settings.client_id,
        "security.protocol": settings.security_protocol,
        "logger": _LIBRDKAFKA_LOG,
    }
    if settings.sasl_mechanism:
        config["sasl.mechanism"] = settings.sasl_mechanism
        config["sasl.username"] = settings.sasl_username or ""
        config["sasl.password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
    for layer in layers:
        config.update(layer)
    return config


def make_admin(settings: Settings | None = None, bootstrap: str | None = None) -> AdminClient:
    return AdminClient(client_config(settings, bootstrap))


@dataclass(slots=True)
class ConsumedRecord:
    """One record as read from Kafka, detached from the client library."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int
    log_append_time: bool = False
    """True when ``timestamp_ms`` is the broker's (``message.timestamp.type=LogAppendTime``), not the producer's."""


def _record(msg: _Message, names: TopicNames) -> ConsumedRecord:
    key = msg.key()
    value = msg.value()
    return ConsumedRecord(
        topic=names.logical(msg.topic() or ""),
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=key if isinstance(key, bytes) or key is None else bytes(key),
        value=value if isinstance(value, bytes) or value is None else bytes(value),
        headers=_headers(msg),
        timestamp_ms=msg.timestamp()[1],
        log_append_time=msg.timestamp()[0] == TIMESTAMP_LOG_APPEND_TIME,
    )


def _headers(msg: _Message) -> Headers:
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in pairs]


class Producer:
    """An idempotent producer that reports each record's delivery and raises on what it could not deliver."""

    def __init__(self, *, settings: Settings | None = None, bootstrap: str | None = None,
                 overrides: Mapping[str, Any] | None = None) -> None:
        self._config = client_config(settings, bootstrap, PRODUCER_DEFAULTS, overrides or {})
        self._producer = _Producer(self._config)
        self.names = TopicNames((settings or get_settings()).topic_prefix)
        self._callback_error: Exception | None = None

    @property
    def raw(self) -> _Producer:
        return self._producer

    def produce(self, topic: str, value: bytes | None, key: bytes | None = None, *, headers: Headers | None = None,
                on_delivery: DeliveryCallback | None = None, partition: int | None = None,
                timestamp_ms: int | None = None) -> None:
        """Queue one record; ``on_delivery(error, topic, partition, offset)`` is called from ``poll``/``flush``.

        ``timestamp_ms`` sets the record's CreateTime (a topic with LogAppendTime overrides it)."""
        callback = None
        if on_delivery is not None:
            report = on_delivery

            def callback(err: _CKafkaError | None, msg: _Message) -> None:
                # Nothing may escape into the client: an exception left pending there breaks every report after
                # it (a SystemError). The first one is raised by the poll or flush that served it.
                try:
                    failure = error_from(err, f"delivery to {msg.topic()}", ProduceError) if err else None
                    offset = msg.offset()
                    report(failure, topic, msg.partition() or 0, -1 if offset is None else offset)
                except Exception as exc:  # noqa: BLE001 - kept and raised after the client returns
                    if self._callback_error is None:
                        self._callback_error = exc

        kwargs: dict[str, Any] = {"value": value, "key": key, "headers": headers}
        if callback is not None:
            kwargs["on_delivery"] = callback
        if partition is not None:
            kwargs["partition"] = partition
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        while True:
            try:
                self._producer.produce(self.names.physical(topic), **kwargs)
            except BufferError:
                self._producer.poll(0.05)  # local queue full: serve delivery reports, then retry
            except _CKafkaException as exc:
                raise translate(exc, f"producing to {topic}", ProduceError) from exc
            else:
                return

    def poll(self, timeout: float = 0.0) -> int:
        try:
            served = self._producer.poll(timeout)
        except SystemError as exc:
            raise _client_failure(exc) from exc
        self._raise_callback_error()
        return served

    def _raise_callback_error(self) -> None:
        error, self._callback_error = self._callback_error, None
        if error is not None:
            raise error

    def flush(self, timeout: float = 30.0) -> None:
        """Wait for every queued record; raise ProduceError if some are still undelivered after ``timeout``."""
        try:
            left = self._producer.flush(timeout)
        except SystemError as exc:
            raise _client_failure(exc) from exc
        self._raise_callback_error()
        if left:
            raise ProduceError(f"{left} record(s) not delivered within {timeout:.0f}s", retriable=True)


def _client_failure(exc: SystemError) -> ProduceError:
    """What the client raises when it serves delivery reports after a fatal error (a fenced transactional
    producer's purged records): a fatal error, as the producer's state is."""
    return ProduceError(f"the Kafka client failed while serving delivery reports, after a fatal error: {exc}",
                        code="_FATAL", fatal=True)


class TransactionalProducer(Producer):
    """A transactional producer for the consume → transform → produce loop (exactly once, KIP-447)."""

    def __init__(self, transactional_id: str, *, settings: Settings | None = None, bootstrap: str | None = None,
                 overrides: Mapping[str, Any] | None = None, init_timeout: float = 60.0) -> None:
        prefix = (settings or get_settings()).topic_prefix
        layer = {"transactional.id": prefix + transactional_id, "transaction.timeout.ms": 60000, **(overrides or {})}
        super().__init__(settings=settings, bootstrap=bootstrap, overrides=layer)
        self.transactional_id = transactional_id
        self._step("initialising transactions", lambda: self._producer.init_transactions(init_timeout))

    def begin(self) -> None:
        self._step("beginning a transaction", self._producer.begin_transaction)

    def send_offsets(self, consumer: Consumer, offsets: Mapping[tuple[str, int], int], timeout: float = 30.0, *,
                     metadata: Mapping[tuple[str, int], str] | None = None) -> None:
        """Add the next offsets to consume (``{(topic, partition): offset}``) to the open transaction, each with
        its ``metadata`` string if given (committed with the offset, read back by ``committed_with_metadata``)."""
        notes = metadata or {}
        positions = [_TopicPartition(self.names.physical(t), p, o, metadata=notes[(t, p)]) if (t, p) in notes
                     else _TopicPartition(self.names.physical(t), p, o) for (t, p), o in offsets.items()]
        metadata = consumer.raw.consumer_group_metadata()
        self._step("sending offsets to the transaction",
                   lambda: self._producer.send_offsets_to_transaction(positions, metadata, timeout))

    def commit(self, timeout: float = 60.0) -> None:
        self._step("committing the transaction", lambda: self._producer.commit_transaction(timeout))

    def abort(self, timeout: float = 60.0) -> None:
        self._step("aborting the transaction", lambda: self._producer.abort_transaction(timeout))

    def _step(self, what: str, call: Callable[[], object]) -> None:
        try:
            call()
        except _CKafkaException as exc:
            raise translate(exc, f"{self.transactional_id}: {what}", TransactionError) from exc


class Consumer:
    """A consumer with auto-commit off and ``read_committed``; returns plain :class:`ConsumedRecord` batches."""

    def __init__(self, group_id: str, topics: Sequence[str] = (), *, settings: Settings | None = None,
                 bootstrap: str | None = None, overrides: Mapping[str, Any] | None = None,
                 on_assign: Callable[[list[tuple[str, int]]], None] | None = None,
                 on_revoke: Callable[[list[tuple[str, int]]], None] | None = None) -> None:
        prefix = (settings or get_settings()).topic_prefix
        patterns = PATTERN_CONSUMER_DEFAULTS if any(t.startswith("^") for t in topics) else {}
        self._config = client_config(settings, bootstrap, CONSUMER_DEFAULTS, patterns,
                                     {"group.id": prefix + group_id}, overrides or {})
        self._consumer = _Consumer(self._config)
        self.names = TopicNames((settings or get_settings()).topic_prefix)
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        if topics:
            self.subscribe(topics)

    @property
    def raw(self) -> _Consumer:
        return self._consumer

    def subscribe(self, topics: Iterable[str]) -> None:
        def assigned(_: _Consumer, parts: list[_TopicPartition]) -> None:
            if self._on_assign:
                self._on_assign([(self.names.logical(p.topic), p.partition) for p in parts])

        def revoked(_: _Consumer, parts: list[_TopicPartition]) -> None:
            if self._on_revoke:
                self._on_revoke([(self.names.logical(p.topic), p.partition) for p in parts])

        topics = list(topics)
        refresh = int(self._config.get("topic.metadata.refresh.interval.ms", 300_000))
        if any(t.startswith("^") for t in topics) and refresh > PATTERN_REFRESH_MS:
            _log.warning("a pattern subscription on a consumer built without one: topics created from now on are "
                         "seen only at the next metadata refresh", refresh_ms=refresh,
                         fix="pass the pattern to Consumer(), or set topic.metadata.refresh.interval.ms low")
        try:
            self._consumer.subscribe([self.names.physical(t) for t in topics], on_assign=assigned,
                                     on_revoke=revoked)
        except _CKafkaException as exc:
            raise translate(exc, "subscribing", ConsumeError) from exc

    def assign(self, partitions: Iterable[tuple[str, int, int | None]]) -> None:
        """Read the given ``(topic, partition, start offset or None)`` without a group subscription."""
        n = self.names.physical
        parts = [_TopicPartition(n(t), p, o) if o is not None else _TopicPartition(n(t), p) for t, p, o in partitions]
        self._consumer.assign(parts)

    def poll_batch(self, max_records: int = 500, timeout: float = 1.0) -> list[ConsumedRecord]:
        """Up to ``max_records`` records; raises ConsumeError on a fatal fetch error."""
        try:
            messages = self._consumer.consume(max_records, timeout)
        except _CKafkaException as exc:
            raise translate(exc, "consuming", ConsumeError) from exc
        records: list[ConsumedRecord] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == _CKafkaError._PARTITION_EOF:
                    continue
                failure = error_from(err, f"consuming {msg.topic()}", ConsumeError)
                if failure.fatal:
                    raise failure
                # librdkafka recovers from the rest by itself (a leader moving; a topic a pattern will match,
                # once its metadata is refreshed: every topic.metadata.refresh.interval.ms, which
                # PATTERN_CONSUMER_DEFAULTS sets to a few seconds): report and go on.
                _log.warning("consumer error", error=str(failure), code=failure.code)
                continue
            records.append(_record(msg, self.names))
        return records

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Consume ``topic[partition]`` from ``offset`` next (after an aborted transaction, say)."""
        try:
            self._consumer.seek(_TopicPartition(self.names.physical(topic), partition, offset))
        except _CKafkaException as exc:
            raise translate(exc, f"seeking {topic}[{partition}] to {offset}", ConsumeError) from exc

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Commit ``{(topic, partition): next offset}`` synchronously."""
        parts = [_TopicPartition(self.names.physical(t), p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=parts, asynchronous=False)
        except _CKafkaException as exc:
            raise translate(exc, "committing offsets", ConsumeError) from exc

    def end_offsets(self, partitions: Iterable[tuple[str, int]], timeout: float = 10.0) -> dict[tuple[str, int], int]:
        """The high watermark (last stable offset under read_committed) of each partition."""
        ends: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + timeout
        for topic, partition in partitions:
            _, ends[(topic, partition)] = _retrying(
                partial(self._consumer.get_watermark_offsets, _TopicPartition(self.names.physical(topic), partition),
                        timeout=timeout),
                f"reading end offsets of {topic}[{partition}]", deadline)
        return ends

    def partition_count(self, topic: str, timeout: float = 10.0) -> int:
        """How many partitions ``topic`` has (ConsumeError if it does not exist)."""
        return len(_partitions(self, topic, timeout))

    def offset_for_time(self, topic: str, partition: int, timestamp_ms: int, timeout: float = 10.0) -> int:
        """The first offset whose timestamp is at or after ``timestamp_ms`` (the end offset when there is none)."""
        wanted = [_TopicPartition(self.names.physical(topic), partition, timestamp_ms)]
        (found,) = _retrying(lambda: self._consumer.offsets_for_times(wanted, timeout=timeout),
                             f"looking up offsets of {topic}[{partition}] by time", time.monotonic() + timeout)
        if found.error is not None:
            raise error_from(found.error, f"looking up offsets of {topic}[{partition}] by time", ConsumeError)
        if found.offset < 0:  # no record that late: everything from the end on
            return self.end_offsets([(topic, partition)], timeout)[(topic, partition)]
        return int(found.offset)

    def committed(self, partitions: Iterable[tuple[str, int]], timeout: float = 10.0) -> dict[tuple[str, int], int]:
        """The group's committed offset of each partition (-1001, librdkafka's "invalid", when none)."""
        try:
            found = self._consumer.committed([_TopicPartition(self.names.physical(t), p) for t, p in partitions],
                                             timeout=timeout)
        except _CKafkaException as exc:
            raise translate(exc, "reading committed offsets", ConsumeError) from exc
        return {(self.names.logical(tp.topic), tp.partition): tp.offset for tp in found}

    def committed_with_metadata(self, partitions: Iterable[tuple[str, int]],
                                timeout: float = 30.0) -> dict[tuple[str, int], tuple[int, str]]:
        """The group's committed offset of each partition with its metadata string (``(-1001, "")`` when none).

        Under read_committed this waits for a pending transactional commit of the partition to complete
        (KIP-447), so it is the state the previous owner committed."""
        try:
            found = self._consumer.committed([_TopicPartition(self.names.physical(t), p) for t, p in partitions],
                                             timeout=timeout)
        except _CKafkaException as exc:
            raise translate(exc, "reading committed offsets", ConsumeError) from exc
        return {(self.names.logical(tp.topic), tp.partition): (tp.offset, tp.metadata or "") for tp in found}

    def positions(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The next offset this consumer will read in each partition (-1001 when it has no position yet)."""
        try:
            found = self._consumer.position([_TopicPartition(self.names.physical(t), p) for t, p in partitions])
        except _CKafkaException as exc:
            raise translate(exc, "reading positions", ConsumeError) from exc
        return {(self.names.logical(tp.topic), tp.partition): tp.offset for tp in found}

    def assignment(self) -> list[tuple[str, int]]:
        return [(self.names.logical(p.topic), p.partition) for p in self._consumer.assignment()]

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_to_end(topic: str, *, settings: Settings | None = None, bootstrap: str | None = None,
                timeout: float = 60.0) -> list[ConsumedRecord]:
    """Every committed record of ``topic`` from the beginning up to its end offsets as of the call.

    Deterministic (it stops at the end offsets it read first, not after a quiet spell); for audits, tests and
    summaries. Raises ConsumeError if the end is not reached within ``timeout`` seconds.
    """
    with Consumer("exchange-reader", settings=settings, bootstrap=bootstrap) as consumer:
        parts = [(topic, p) for p in _partitions(consumer, topic, 10.0)]
        return _read_until_end(consumer, dict.fromkeys(parts, 0), timeout, f"reading {topic}")


def read_since(since: Mapping[tuple[str, int], int], *, settings: Settings | None = None,
               bootstrap: str | None = None, timeout: float = 60.0) -> list[ConsumedRecord]:
    """Every committed record of each ``(topic, partition)`` in ``since``, from the first one stamped at or after
    its time (Unix ms) up to the end offsets as of the call (in offset order per partition)."""
    with Consumer("exchange-reader", settings=settings, bootstrap=bootstrap) as consumer:
        starts = {tp: consumer.offset_for_time(*tp, ms) if ms > 0 else 0 for tp, ms in since.items()}
        return _read_until_end(consumer, starts, timeout, "reading since a time")


_T = TypeVar("_T")
_SETTLING = frozenset({"NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "UNKNOWN_TOPIC_OR_PART",
                       "_UNKNOWN_PARTITION", "_TIMED_OUT", "REQUEST_TIMED_OUT", "_TRANSPORT"})
"""Answers of a cluster whose metadata is settling (a topic just created, a leader moving): ask again."""


def _retrying(call: Callable[[], _T], what: str, deadline: float) -> _T:
    """``call()``, asked again while it fails retriably (a leader moving, a topic just created answers NOT_LEADER
    for a moment) until ``deadline`` (a ``time.monotonic()``); ConsumeError after that or on any other failure."""
    while True:
        try:
            return call()
        except _CKafkaException as exc:
            failure = translate(exc, what, ConsumeError)
            if not (failure.retriable or failure.code in _SETTLING) or time.monotonic() >= deadline:
                raise failure from exc
        time.sleep(0.1)  # back off before asking the new leader; bounded by the deadline


def _partitions(consumer: Consumer, topic: str, timeout: float) -> list[int]:
    """The partitions of ``topic``, asked again while its metadata settles (a topic just created answers
    LEADER_NOT_AVAILABLE for a moment); ConsumeError if it does not exist after ``timeout``."""
    physical = consumer.names.physical(topic)
    deadline = time.monotonic() + timeout
    while True:
        try:
            metadata = consumer.raw.list_topics(physical, timeout=timeout)
        except _CKafkaException as exc:
            raise translate(exc, f"reading metadata of {topic}", ConsumeError) from exc
        found = metadata.topics.get(physical)
        if found is not None and found.error is None and found.partitions:
            return sorted(found.partitions)
        if time.monotonic() >= deadline:
            why = found.error.str() if found is not None and found.error is not None else "no such topic"
            raise ConsumeError(f"topic {topic} does not exist or has no leader ({why})")
        time.sleep(0.1)  # metadata settling; bounded by the deadline


def read_ranges(ranges: Mapping[tuple[str, int], tuple[int, int]], *, settings: Settings | None = None,
                bootstrap: str | None = None, timeout: float = 60.0) -> list[ConsumedRecord]:
    """The committed records of each ``(topic, partition)`` with ``start <= offset < stop`` (fewer if a partition
    ends before ``stop``; none below its first retained offset).

    A client of its own each time: a client assigned again to partitions it is fetching waits out the fetch in
    flight (seconds), while a new one costs milliseconds."""
    if not ranges:
        return []
    with Consumer("exchange-reader", settings=settings, bootstrap=bootstrap) as consumer:
        return _read_until_end(consumer, {tp: start for tp, (start, _) in ranges.items()}, timeout,
                               "reading ranges", stops={tp: stop for tp, (_, stop) in ranges.items()})


_SETTLE_S = 5.0
"""How long a read waits for transactions still open at its tail to be decided."""


def _settled(consumer: Consumer, ends: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    """The last stable offsets once the transactions open at the tail when asked are decided (or after
    :data:`_SETTLE_S`).

    Under read_committed the end of a partition is its last stable offset, which stops before any transaction
    not yet decided, and a producer's commit returns before the broker has written the commit markers that move
    it: read right after a commit, the end would leave out what was just committed. The high watermarks, read
    uncommitted, say how far the undecided records reach; the stable offsets are asked again until they get
    there."""
    uncommitted = _Consumer({**consumer._config, "isolation.level": "read_uncommitted"})
    try:
        high = {tp: uncommitted.get_watermark_offsets(_TopicPartition(consumer.names.physical(tp[0]), tp[1]),
                                                      timeout=10, cached=False)[1] for tp in ends}
    except _CKafkaException:
        return ends  # the committed ends stand as they were read
    finally:
        uncommitted.close()
    waiting = {tp for tp, end in ends.items() if high[tp] > end}
    deadline = time.monotonic() + _SETTLE_S
    while waiting and time.monotonic() < deadline:
        time.sleep(0.01)  # the brokers write the commit markers within milliseconds; bounded by the deadline
        for tp, end in consumer.end_offsets(waiting).items():
            ends[tp] = end
            if end >= high[tp]:
                waiting.discard(tp)
    return ends


def _read_until_end(consumer: Consumer, starts: Mapping[tuple[str, int], int], timeout: float,
                    what: str, stops: Mapping[tuple[str, int], int] | None = None) -> list[ConsumedRecord]:
    """The committed records from each partition's start offset up to its end offset as of the call (or its
    stop offset, if that comes first)."""
    ends = _settled(consumer, consumer.end_offsets(list(starts)))
    if stops is not None:
        ends = {tp: min(end, stops.get(tp, end)) for tp, end in ends.items()}
    remaining = {tp: end for tp, end in ends.items() if end > starts[tp]}
    following = {tp: starts[tp] for tp in remaining}  # the next offset expected, to ask for no more than is left
    consumer.assign([(t, p, starts[(t, p)]) for t, p in remaining])
    records: list[ConsumedRecord] = []
    deadline = time.monotonic() + timeout
    while remaining:
        if time.monotonic() > deadline:
            raise ConsumeError(f"{what}: the end was not reached within {timeout:.0f}s")
        # At most what is left: a poll for more waits out its whole timeout.
        left = sum(end - following[tp] for tp, end in remaining.items())
        for record in consumer.poll_batch(max(1, min(2000, left)), timeout=0.5):
            tp = (record.topic, record.partition)
            end = remaining.get(tp)
            if end is None or record.offset >= end:
                continue
            records.append(record)
            following[tp] = record.offset + 1
            if record.offset >= end - 1:
                del remaining[tp]
        # Under read_committed, transaction markers occupy offsets too: a partition whose last offsets are
        # markers is done once the consumer's position has passed the end.
        for tp, position in consumer.positions(list(remaining)).items():
            if position >= remaining[tp]:
                del remaining[tp]
    return records
