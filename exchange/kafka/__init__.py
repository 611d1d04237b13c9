"""The Kafka edge: the only package that imports confluent_kafka. It moves bytes; it never decides."""

from __future__ import annotations

from exchange.kafka.clients import (
    ConsumedRecord,
    Consumer,
    Headers,
    Producer,
    TopicNames,
    TransactionalProducer,
    client_config,
    make_admin,
    read_ranges,
    read_since,
    read_to_end,
    resolve_bootstrap,
)
from exchange.kafka.errors import BrokerError, ConsumeError, KafkaError, ProduceError, TopicError, TransactionError
from exchange.kafka.local import BrokerState, LocalBroker

__all__ = [
    "BrokerError",
    "BrokerState",
    "ConsumeError",
    "ConsumedRecord",
    "Consumer",
    "Headers",
    "KafkaError",
    "LocalBroker",
    "ProduceError",
    "Producer",
    "TopicError",
    "TopicNames",
    "TransactionError",
    "TransactionalProducer",
    "client_config",
    "make_admin",
    "read_ranges",
    "read_since",
    "read_to_end",
    "resolve_bootstrap",
]
