"""Kafka failures, translated into the exchange's own hierarchy at the border.

::

    ExchangeError
    └── KafkaError                 .code (librdkafka error name), .retriable, .fatal
        ├── BrokerError            the local broker cannot be fetched, started, stopped or reached
        ├── TopicError             a topic spec cannot be applied
        ├── ProduceError           a record was not accepted (delivery report or local queue)
        ├── ConsumeError           a fetch or commit failed
        └── TransactionError       .abortable: abort and retry the batch; .fatal: the producer is unusable

Nothing outside :mod:`exchange.kafka` sees a ``confluent_kafka`` exception.
"""

from __future__ import annotations

from typing import TypeVar

from confluent_kafka import KafkaError as _CKafkaError
from confluent_kafka import KafkaException as _CKafkaException

from exchange.errors import ExchangeError

__all__ = [
    "BrokerError",
    "ConsumeError",
    "KafkaError",
    "ProduceError",
    "TopicError",
    "TransactionError",
    "error_from",
    "translate",
]


class KafkaError(ExchangeError):
    """A Kafka operation failed. ``code`` is librdkafka's error name, when there is one."""

    def __init__(self, message: str, *, code: str | None = None, retriable: bool = False, fatal: bool = False):
        super().__init__(message)
        self.code = code
        self.retriable = retriable
        self.fatal = fatal


class BrokerError(KafkaError):
    """The local broker cannot be fetched, started, stopped or reached; the message says the fix."""


class TopicError(KafkaError):
    """A topic cannot be created or changed as the spec asks."""


class ProduceError(KafkaError):
    """A record was not accepted by the broker."""


class ConsumeError(KafkaError):
    """Fetching records or committing offsets failed."""


class TransactionError(KafkaError):
    """A transaction step failed. If ``abortable``, abort and retry the batch; if ``fatal``, start a new producer."""

    abortable: bool = False


_E = TypeVar("_E", bound=KafkaError)


def translate(exc: BaseException, what: str, cls: type[_E]) -> _E:
    """Turn a confluent-kafka exception into ``cls`` with ``what`` as context."""
    if isinstance(exc, _CKafkaException) and exc.args and isinstance(exc.args[0], _CKafkaError):
        return error_from(exc.args[0], what, cls)
    return cls(f"{what}: {exc}")


def error_from(err: _CKafkaError, what: str, cls: type[_E]) -> _E:
    """Turn a confluent-kafka error object (from a delivery report or a message) into ``cls``."""
    failure = cls(f"{what}: {err.str()} ({err.name()})", code=err.name(), retriable=err.retriable(), fatal=err.fatal())
    if isinstance(failure, TransactionError):
        failure.abortable = err.txn_requires_abort()
    return failure
