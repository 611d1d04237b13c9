"""The root of every error the exchange raises.

Each sub-package keeps its own ``errors.py`` whose classes derive from :class:`ExchangeError`, so a caller can
catch everything the exchange raises with one ``except`` and nothing foreign leaks through::

    ExchangeError
    ├── ConfigError                       settings or files that cannot be used
    ├── kafka.errors.KafkaError           the broker or a client failed (translated at the border)
    │   ├── BrokerError                   the local broker cannot be fetched, started or reached
    │   ├── TopicError                    a topic spec cannot be applied
    │   ├── ProduceError / ConsumeError
    │   └── TransactionError              (.retriable / .abortable / .fatal say what to do next)
    ├── schemas.errors.SchemaError        catalogue, encoding and compatibility
    ├── registry.errors.RegistryError     agencies, keys, keystore
    ├── envelope.errors.VerificationError one failed check on a received record
    └── policy.errors.PolicyError         agreements, restrictions, consent
"""

from __future__ import annotations

__all__ = ["ConfigError", "ExchangeError"]


class ExchangeError(Exception):
    """Base class of every error the exchange raises on purpose."""


class ConfigError(ExchangeError):
    """A setting, file or argument cannot be used as given; the message says which and why."""
