"""Errors of the consent manager and the router's consent view.

::

    ExchangeError
    └── ConsentServiceError            the consent manager or view could not do what was asked
        ├── ConsentRequestError        a grant or change the manager refuses (unknown recipient, no agreement, ...)
        │   └── UnknownConsentError    no consent with this id is on the topic
        ├── ConsentSigningError        the manager's key cannot sign an artefact the registry would accept
        ├── ConsentDeliveryError       the broker did not acknowledge the record: nothing is guaranteed
        ├── ConsentConflictError       another version with the same number won on the topic; retry
        ├── ConsentRecordError         a record on the consent topic is not a well-formed artefact
        └── ConsentSyncError           the consent barrier was not reached (timeout or unreadable partition)

Artefacts that decode but do not verify, or break the consent life cycle, raise the policy core's
:class:`~exchange.policy.ConsentSignatureError` and :class:`~exchange.policy.ConsentTransitionError`.
"""

from __future__ import annotations

from exchange.errors import ExchangeError

__all__ = [
    "ConsentConflictError",
    "ConsentDeliveryError",
    "ConsentRecordError",
    "ConsentRequestError",
    "ConsentServiceError",
    "ConsentSigningError",
    "ConsentSyncError",
    "UnknownConsentError",
]


class ConsentServiceError(ExchangeError):
    """The consent manager or the consent view could not do what was asked."""


class ConsentRequestError(ConsentServiceError):
    """The manager refuses a grant or a change; the message says which check failed."""


class UnknownConsentError(ConsentRequestError):
    """No consent with this id is on the consent topic."""


class ConsentSigningError(ConsentServiceError):
    """The artefact the manager signed would not verify against the registry (missing, expired or unknown key)."""


class ConsentDeliveryError(ConsentServiceError):
    """The broker did not acknowledge a consent record; the change may or may not have been written."""


class ConsentConflictError(ConsentServiceError):
    """Another artefact with the same consent id and version is on the topic, so this one was refused; retry."""


class ConsentRecordError(ConsentServiceError):
    """A record on the consent topic cannot be decoded into a consent artefact."""


class ConsentSyncError(ConsentServiceError):
    """The consent barrier was not reached: a partition could not be read up to its end offset in time."""

    def __init__(self, message: str, *, behind: dict[int, tuple[int, int]] | None = None) -> None:
        super().__init__(message)
        self.behind = dict(behind or {})
        """``{partition: (position, end offset)}`` of the partitions still behind."""
