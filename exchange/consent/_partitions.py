"""Consumer questions for the consent view: a topic's partitions and how far the client has read.

The Kafka edge has no ``partitions(topic)`` yet, so :func:`partition_ids` asks the wrapped client for metadata
(under the physical topic name); failures come back as :class:`ConsumeError`.
"""

from __future__ import annotations

from exchange.kafka import ConsumeError, Consumer
from exchange.kafka.errors import translate

__all__ = ["fetch_positions", "partition_ids"]


def partition_ids(consumer: Consumer, topic: str, timeout: float = 10.0) -> list[int]:
    """The partition numbers of ``topic``, sorted; :class:`ConsumeError` if it does not exist or cannot be read."""
    physical = consumer.names.physical(topic)
    try:
        metadata = consumer.raw.list_topics(physical, timeout=timeout)
    except Exception as exc:  # confluent_kafka's KafkaException, which only exchange.kafka may name
        raise translate(exc, f"reading the partitions of {topic}", ConsumeError) from exc
    described = metadata.topics.get(physical)
    if described is None or described.error is not None or not described.partitions:
        error = None if described is None else described.error
        reason = "it has none" if error is None else error.str()
        raise ConsumeError(f"cannot read the partitions of {topic}: {reason}",
                           code=None if error is None else error.name())
    return sorted(int(p) for p in described.partitions)


def fetch_positions(consumer: Consumer) -> dict[tuple[str, int], int]:
    """The client's next offset in each assigned partition that has one (it moves past transaction markers)."""
    return {tp: offset for tp, offset in consumer.positions(consumer.assignment()).items() if offset >= 0}
