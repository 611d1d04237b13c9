"""Consent artefacts (DEPA / Account Aggregator style) and the consent state the router decides against.

An artefact says: *subject* lets *recipient* receive records of *record_types* (optionally only *fields*) for
*purpose* between *start* and *expiry*; its *status* is ACTIVE, PAUSED, REVOKED or EXPIRED. The consent manager
(``exchange-consent``) issues a new, signed version of the artefact for every change. The subject is always a
pseudonym: a person id never appears in a consent.

Signing and verifying are passed in as callables, so this module holds no key material::

    signed = artefact.signed(signer)           # signer(message) -> signature bytes
    state = ConsentState(verify)               # verify(message, signature) -> None, raises ExchangeError
    state.apply(signed)
    state.lookup(subject, recipient, purpose, record_type, at)  # -> ConsentDecision
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from exchange.errors import ExchangeError
from exchange.policy import reasons
from exchange.policy.canonical import canonical_json
from exchange.policy.errors import ConsentSignatureError, ConsentTransitionError
from exchange.policy.models import FieldName, Instant, RecordTypeName, Slug

__all__ = [
    "CONSENT_ISSUER",
    "NO_CONSENTS",
    "ConsentArtefact",
    "ConsentDecision",
    "ConsentRef",
    "ConsentState",
    "ConsentStatus",
    "ConsentView",
    "Signer",
    "Verifier",
]

CONSENT_ISSUER = "exchange-consent"
"""The exchange-operated identity that signs consent artefacts."""

_SIGNING_DOMAIN = b"exchange-consent-artefact/v1\n"

Signer = Callable[[bytes], bytes]
"""``signer(message) -> signature``."""

Verifier = Callable[[bytes, bytes], None]
"""``verify(message, signature)`` returns None or raises an :class:`ExchangeError` naming the failed check."""


class ConsentStatus(StrEnum):
    """Where a consent is in its life cycle; REVOKED is final."""

    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"


def _pseudonym(value: str) -> str:
    # National person ids are digit strings; refusing those keeps a mistaken id out of the consent topic.
    if value.isdigit():
        raise ValueError("the subject must be a pseudonym, not a person id")
    return value


Pseudonym = Annotated[
    StrictStr, Field(pattern=r"^[A-Za-z0-9_:.=+/-]+$", min_length=16, max_length=200), AfterValidator(_pseudonym)
]


def _unique_types(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise ValueError("a record type is listed twice")
    return values


@dataclass(frozen=True, slots=True)
class ConsentRef:
    """Which consent, in which version, a decision rested on — what the access log records."""

    consent_id: str
    version: int

    def __str__(self) -> str:
        return f"{self.consent_id}@{self.version}"


class ConsentArtefact(BaseModel):
    """One version of a consent, as issued (and signed) by the consent manager."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    consent_id: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    version: Annotated[StrictInt, Field(ge=1)]
    subject: Pseudonym
    recipient: Slug
    purpose: Slug
    record_types: Annotated[tuple[RecordTypeName, ...], Field(min_length=1), AfterValidator(_unique_types)]
    fields: Annotated[tuple[FieldName, ...], Field(min_length=1)] | None = None
    start: Instant
    expiry: Instant
    status: ConsentStatus
    issued_at: Instant
    issuer: Slug = CONSENT_ISSUER
    signature: StrictStr | None = None

    @model_validator(mode="after")
    def _window(self) -> ConsentArtefact:
        if self.expiry <= self.start:
            raise ValueError("expiry must be after start")
        return self

    @property
    def ref(self) -> ConsentRef:
        """This artefact's reference for the access log."""
        return ConsentRef(self.consent_id, self.version)

    def to_signing_bytes(self) -> bytes:
        """The bytes the consent manager signs: a domain tag, then canonical JSON of all but the signature."""
        return _SIGNING_DOMAIN + canonical_json(self.model_dump(mode="json", exclude={"signature"}))

    def signed(self, signer: Signer) -> ConsentArtefact:
        """A copy carrying ``signer``'s signature (base64) over :meth:`to_signing_bytes`."""
        signature = base64.b64encode(signer(self.to_signing_bytes())).decode("ascii")
        return self.model_copy(update={"signature": signature})

    def verify_signature(self, verify: Verifier) -> None:
        """Return None if the signature verifies with ``verify``; raise :class:`ConsentSignatureError` if not."""
        if self.signature is None:
            raise ConsentSignatureError(f"consent {self.ref}: no signature")
        try:
            signature = base64.b64decode(self.signature, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConsentSignatureError(f"consent {self.ref}: signature is not base64") from exc
        try:
            verify(self.to_signing_bytes(), signature)
        except ExchangeError as exc:
            raise ConsentSignatureError(f"consent {self.ref}: signature does not verify: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    """The answer to a consent lookup: granted (with the consent's field scope, None = all agreed fields) or
    the reason code why not; ``reference`` names the artefact looked at, when there was one."""

    granted: bool
    reason: str | None
    reference: ConsentRef | None
    fields: frozenset[str] | None = None


class ConsentView(Protocol):
    """What the decision engine asks of consent state; the router may plug in its own implementation."""

    def lookup(self, subject: str, recipient: str, purpose: str, record_type: str, at: datetime) -> ConsentDecision:
        """Whether ``subject`` consents to ``recipient`` receiving ``record_type`` for ``purpose`` at ``at``."""
        ...


_NO_CONSENT = ConsentDecision(granted=False, reason=reasons.NO_CONSENT, reference=None)


class _NoConsents:
    def lookup(self, subject: str, recipient: str, purpose: str, record_type: str, at: datetime) -> ConsentDecision:
        return _NO_CONSENT


NO_CONSENTS: ConsentView = _NoConsents()
"""A consent view in which nobody has consented to anything."""

_DENIAL = {
    ConsentStatus.PAUSED: reasons.CONSENT_PAUSED,
    ConsentStatus.REVOKED: reasons.CONSENT_REVOKED,
    ConsentStatus.EXPIRED: reasons.CONSENT_EXPIRED,
}
"""The denial of a consent in that status at a time before its expiry (before its start too)."""

_PAST_EXPIRY = dict.fromkeys(ConsentStatus, reasons.CONSENT_EXPIRED) | {
    ConsentStatus.REVOKED: reasons.CONSENT_REVOKED,
}
"""The denial at or after the expiry: expired whatever the status, except a revocation, the citizen's explicit
and final act, which stays what the log says (as ``exchange consent list`` shows it, see
:func:`exchange.consent.wire.effective_status`)."""


@dataclass(frozen=True, slots=True)
class _Entry:
    # What lookup reads, taken out of the artefact once so the per-event path touches plain slots.
    artefact: ConsentArtefact
    record_types: frozenset[str]
    status_reason: str | None  # None when ACTIVE
    past_expiry_reason: str
    start: datetime
    expiry: datetime
    issued_at: datetime
    granted: ConsentDecision


def _entry(artefact: ConsentArtefact) -> _Entry:
    fields = None if artefact.fields is None else frozenset(artefact.fields)
    return _Entry(
        artefact=artefact,
        record_types=frozenset(artefact.record_types),
        status_reason=_DENIAL.get(artefact.status),
        past_expiry_reason=_PAST_EXPIRY[artefact.status],
        start=artefact.start,
        expiry=artefact.expiry,
        issued_at=artefact.issued_at,
        granted=ConsentDecision(granted=True, reason=None, reference=artefact.ref, fields=fields),
    )


class ConsentState:
    """The newest version of every consent, applied in order, and the lookup the engine uses.

    Rules for a new version of a known consent: subject, recipient and purpose never change; a higher version
    must not be issued earlier; the same version with different content is refused; a REVOKED consent stays
    revoked (a later ACTIVE or PAUSED is refused). An older version is ignored, except a revocation, which
    is applied whenever it arrives (fail closed).
    """

    def __init__(self, verify: Verifier) -> None:
        self._verify = verify
        self._entries: dict[str, _Entry] = {}
        self._by_scope: dict[tuple[str, str, str], list[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[ConsentArtefact]:
        return (entry.artefact for entry in self._entries.values())

    def get(self, consent_id: str) -> ConsentArtefact | None:
        """The newest applied version of ``consent_id``, if any."""
        entry = self._entries.get(consent_id)
        return None if entry is None else entry.artefact

    def apply(self, artefact: ConsentArtefact) -> bool:
        """Verify and apply one artefact; True if the state changed, False for a duplicate or an older version.

        Raises :class:`ConsentSignatureError` or :class:`ConsentTransitionError`; the state is then unchanged.
        """
        artefact.verify_signature(self._verify)
        entry = self._entries.get(artefact.consent_id)
        if entry is None:
            self._store(artefact)
            return True
        current = entry.artefact
        _check_same_scope(current, artefact)
        if artefact.version == current.version:
            if artefact.model_copy(update={"signature": None}) != current.model_copy(update={"signature": None}):
                raise ConsentTransitionError(f"consent {artefact.ref}: two different artefacts with this version")
            return False
        if artefact.version < current.version:
            if artefact.issued_at > current.issued_at:
                raise ConsentTransitionError(f"consent {artefact.ref}: issued after version {current.version}")
            if artefact.status is ConsentStatus.REVOKED and current.status is not ConsentStatus.REVOKED:
                self._store(artefact)
                return True
            return False
        if artefact.issued_at < current.issued_at:
            raise ConsentTransitionError(f"consent {artefact.ref}: issued before version {current.version}")
        if current.status is ConsentStatus.REVOKED and artefact.status is not ConsentStatus.REVOKED:
            raise ConsentTransitionError(
                f"consent {artefact.ref}: revoked in version {current.version}; a revoked consent cannot become "
                f"{artefact.status.value}"
            )
        self._store(artefact)
        return True

    def lookup(self, subject: str, recipient: str, purpose: str, record_type: str, at: datetime) -> ConsentDecision:
        """Granted if some consent covering ``record_type`` is ACTIVE and ``at`` lies in ``[start, expiry)``;
        otherwise the reason given by the most recently issued consent that covers the type.

        A consent's reason: at or after its expiry CONSENT_REVOKED if revoked, else CONSENT_EXPIRED whatever
        its status; before the expiry its status (CONSENT_PAUSED, CONSENT_REVOKED, CONSENT_EXPIRED), or for an
        ACTIVE one CONSENT_NOT_STARTED before its start.
        """
        ids = self._by_scope.get((subject, recipient, purpose))
        if not ids:
            return _NO_CONSENT
        granted: _Entry | None = None
        denied: tuple[_Entry, str] | None = None
        for consent_id in ids:
            entry = self._entries[consent_id]
            if record_type not in entry.record_types:
                continue
            reason = entry.status_reason
            if at >= entry.expiry:
                reason = entry.past_expiry_reason
            elif reason is None:
                if at < entry.start:
                    reason = reasons.CONSENT_NOT_STARTED
                elif granted is None or entry.issued_at > granted.issued_at:
                    granted = entry
                    continue
                else:
                    continue
            if denied is None or entry.issued_at > denied[0].issued_at:
                denied = (entry, reason)
        if granted is not None:
            return granted.granted
        if denied is None:
            return _NO_CONSENT
        return ConsentDecision(granted=False, reason=denied[1], reference=denied[0].artefact.ref)

    def _store(self, artefact: ConsentArtefact) -> None:
        if artefact.consent_id not in self._entries:
            scope = (artefact.subject, artefact.recipient, artefact.purpose)
            self._by_scope.setdefault(scope, []).append(artefact.consent_id)
        self._entries[artefact.consent_id] = _entry(artefact)


def _check_same_scope(current: ConsentArtefact, new: ConsentArtefact) -> None:
    for name in ("subject", "recipient", "purpose", "issuer"):
        if getattr(current, name) != getattr(new, name):
            raise ConsentTransitionError(f"consent {new.ref}: {name} differs from version {current.version}")
