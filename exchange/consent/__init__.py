"""The consent manager and the router's consent view, on the ``consent.events`` topic.

Issue consents (each call returns once the broker acknowledged the record)::

    manager = ConsentManager.connect(Context())
    artefact = manager.grant(person_id="39001010008", recipient="municipal-services",
                             purpose="housing-allowance", record_types=["tax.income-assessed"], expiry=until)
    manager.revoke(artefact.consent_id)

Enforce them in the router (the consent barrier, then lookups)::

    view = ConsentView.connect(Context())
    view.sync(batch_partitions)                       # every consent acknowledged before this call is in force
    view.lookup(subject, recipient, purpose, record_type, at)

On the wire an artefact is keyed by the subject pseudonym, Avro-encoded with ``exchange.consent`` and signed by
``exchange-consent`` (see :mod:`exchange.consent.wire` and :mod:`exchange.consent.signing`).
"""

from __future__ import annotations

from exchange.consent.errors import (
    ConsentConflictError,
    ConsentDeliveryError,
    ConsentRecordError,
    ConsentRequestError,
    ConsentServiceError,
    ConsentSigningError,
    ConsentSyncError,
    UnknownConsentError,
)
from exchange.consent.ledger import ConsentLedger, LedgerStats, RecordOutcome, RecordResult, SkipReason
from exchange.consent.manager import ConsentManager
from exchange.consent.scope import check_grant, consent_agreements
from exchange.consent.signing import ConsentVerifier, sign_artefact
from exchange.consent.view import ConsentView
from exchange.consent.wire import (
    CONSENT_TOPIC,
    CONSENT_TYPE,
    ConsentMessage,
    artefact_from_record,
    artefact_record,
    decode_artefact,
    effective_status,
    encode_artefact,
)

__all__ = [
    "CONSENT_TOPIC",
    "CONSENT_TYPE",
    "ConsentConflictError",
    "ConsentDeliveryError",
    "ConsentLedger",
    "ConsentManager",
    "ConsentMessage",
    "ConsentRecordError",
    "ConsentRequestError",
    "ConsentServiceError",
    "ConsentSigningError",
    "ConsentSyncError",
    "ConsentVerifier",
    "ConsentView",
    "LedgerStats",
    "RecordOutcome",
    "RecordResult",
    "SkipReason",
    "UnknownConsentError",
    "artefact_from_record",
    "artefact_record",
    "check_grant",
    "consent_agreements",
    "decode_artefact",
    "effective_status",
    "encode_artefact",
    "sign_artefact",
]
