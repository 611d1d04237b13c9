"""The consent manager (``exchange-consent``): issues signed consent artefacts to ``consent.events``.

Every call returns only after the broker acknowledged the record (``acks=all``, delivery report received):
that acknowledgement is what the router's consent barrier builds on — a revocation acknowledged before the router
consumed an event is enforced for that event.

**Where the latest version comes from.** ``consent.events`` is the only state. The manager keeps a
:class:`~exchange.consent.view.ConsentView` over *all* partitions of the topic and syncs it before a change, so it
reads the whole topic once and then only what is new; nothing is kept on local disk, and any number of manager
processes agree on the latest version. After writing a change it reads the record back and checks that its
version is the one in force, so two managers changing one consent at once cannot both succeed silently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from pydantic import ValidationError

from exchange.consent.errors import (
    ConsentConflictError,
    ConsentDeliveryError,
    ConsentRequestError,
    ConsentServiceError,
    ConsentSigningError,
    ConsentSyncError,
    UnknownConsentError,
)
from exchange.consent.scope import check_grant
from exchange.consent.signing import ConsentVerifier, sign_artefact
from exchange.consent.view import ConsentView
from exchange.consent.wire import CONSENT_TOPIC, effective_status, encode_artefact
from exchange.context import Context
from exchange.crypto.keys import Signer
from exchange.envelope import Pseudonymiser, uuid7
from exchange.kafka import ProduceError, Producer
from exchange.log import get_logger
from exchange.policy import ConsentArtefact, ConsentSignatureError, ConsentStatus, PolicyIndex
from exchange.policy.consent import CONSENT_ISSUER
from exchange.registry import Registry
from exchange.schemas import Catalogue

__all__ = ["ConsentManager"]

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class ConsentManager:
    """Grants, pauses, resumes and revokes consents; each call returns the new artefact once acknowledged."""

    def __init__(self, *, signer: Signer, registry: Registry, catalogue: Catalogue, policies: PolicyIndex,
                 producer: Producer, reader: ConsentView, pseudonymiser: Pseudonymiser | None = None,
                 topic: str = CONSENT_TOPIC, clock: Clock = _now, timeout: float = 30.0) -> None:
        """Wire the manager from its parts; ``reader`` must read the same ``topic`` (see :meth:`connect`)."""
        if signer.name != CONSENT_ISSUER:
            raise ConsentSigningError(f"the consent manager signs with the key of {CONSENT_ISSUER!r}, "
                                      f"not {signer.name!r}")
        if reader.topic != topic:
            raise ConsentServiceError(f"the reader reads {reader.topic}, the manager writes {topic}")
        self._signer = signer
        self._registry = registry
        self._catalogue = catalogue
        self._policies = policies
        self._producer = producer
        self._reader = reader
        self._pseudonymiser = pseudonymiser
        self._topic = topic
        self._clock = clock
        self._timeout = timeout
        self._verifier = ConsentVerifier(registry)
        self._all_partitions: list[int] | None = None
        self._log = get_logger("exchange.consent.manager", topic=topic)

    @classmethod
    def connect(cls, context: Context, *, topic: str = CONSENT_TOPIC, bootstrap: str | None = None,
                timeout: float = 30.0) -> ConsentManager:
        """A manager with the context's key (keystore), registry, catalogue, policies and pseudonymiser."""
        settings = context.settings
        return cls(
            signer=context.keystore.signer(CONSENT_ISSUER),
            registry=context.registry,
            catalogue=context.catalogue,
            policies=context.policies,
            producer=Producer(settings=settings, bootstrap=bootstrap),
            reader=ConsentView.connect(context, topic=topic, bootstrap=bootstrap),
            pseudonymiser=context.pseudonymiser if settings.pseudonym_secret is not None else None,
            topic=topic,
            timeout=timeout,
        )

    @property
    def topic(self) -> str:
        """The consent topic written to."""
        return self._topic

    def subject_of(self, person_id: str) -> str:
        """The subject pseudonym of ``person_id`` (the key of the person's events and consents)."""
        if self._pseudonymiser is None:
            raise ConsentRequestError("no pseudonymiser: set EXCHANGE_PSEUDONYM_SECRET to name people by their id")
        return self._pseudonymiser.subject(person_id)

    def grant(self, *, recipient: str, purpose: str, record_types: Sequence[str], expiry: datetime,
              person_id: str | None = None, subject: str | None = None, fields: Sequence[str] | None = None,
              start: datetime | None = None) -> ConsentArtefact:
        """Issue version 1 of a new ACTIVE consent; give the person either by ``person_id`` (pseudonymised here,
        never written) or by ``subject`` pseudonym.

        Raises :class:`ConsentRequestError` when no consent-based agreement could use the consent (unknown
        recipient, type, purpose or field, or windows that do not meet), :class:`ConsentDeliveryError` when the
        broker did not acknowledge it.
        """
        if (person_id is None) == (subject is None):
            raise ConsentRequestError("give the person either by person id or by subject pseudonym")
        pseudonym = subject if subject is not None else self.subject_of(str(person_id))
        now = self._clock()
        start = now if start is None else start
        _require_aware(start, "start")
        _require_aware(expiry, "expiry")
        if expiry <= now:
            raise ConsentRequestError(f"the consent would already have expired ({expiry.isoformat()})")
        check_grant(self._registry, self._catalogue, self._policies, recipient=recipient, purpose=purpose,
                    record_types=record_types, fields=fields, start=start, expiry=expiry)
        try:
            artefact = ConsentArtefact.model_validate({
                "consent_id": uuid7(int(now.timestamp() * 1000)),
                "version": 1,
                "subject": pseudonym,
                "recipient": recipient,
                "purpose": purpose,
                "record_types": tuple(record_types),
                "fields": None if fields is None else tuple(fields),
                "start": start,
                "expiry": expiry,
                "status": ConsentStatus.ACTIVE,
                "issued_at": now,
            })
        except ValidationError as exc:
            # Messages without the input values: a person id given as the subject must not be echoed.
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
            raise ConsentRequestError(f"not a valid consent: {problems}") from None
        return self._publish(artefact)

    def pause(self, consent_id: str) -> ConsentArtefact:
        """Pause an ACTIVE consent: nothing is delivered under it until it is resumed."""
        current = self.current(consent_id)
        if current.status is not ConsentStatus.ACTIVE:
            raise ConsentRequestError(f"consent {consent_id} is {current.status.value}; only an ACTIVE one pauses")
        return self._change(current, ConsentStatus.PAUSED)

    def resume(self, consent_id: str) -> ConsentArtefact:
        """Make a PAUSED consent ACTIVE again (not after its expiry)."""
        current = self.current(consent_id)
        if current.status is not ConsentStatus.PAUSED:
            raise ConsentRequestError(f"consent {consent_id} is {current.status.value}; only a PAUSED one resumes")
        if effective_status(current, self._clock()) is ConsentStatus.EXPIRED:
            raise ConsentRequestError(f"consent {consent_id} expired at {current.expiry.isoformat()}; grant anew")
        return self._change(current, ConsentStatus.ACTIVE)

    def revoke(self, consent_id: str) -> ConsentArtefact:
        """Revoke a consent for good; a revoked consent never becomes active again."""
        current = self.current(consent_id)
        if current.status is ConsentStatus.REVOKED:
            raise ConsentRequestError(f"consent {consent_id} is already revoked (version {current.version})")
        return self._change(current, ConsentStatus.REVOKED)

    def current(self, consent_id: str) -> ConsentArtefact:
        """The latest version of ``consent_id`` on the topic; :class:`UnknownConsentError` if there is none."""
        self._reader.sync(self._partitions(), timeout=self._timeout)
        artefact = self._reader.get(consent_id)
        if artefact is None:
            raise UnknownConsentError(f"no consent {consent_id!r} on {self._topic}")
        return artefact

    def consents_of(self, *, person_id: str | None = None, subject: str | None = None) -> list[ConsentArtefact]:
        """The latest version of every consent of one person (by id or pseudonym), oldest grant first."""
        if (person_id is None) == (subject is None):
            raise ConsentRequestError("give the person either by person id or by subject pseudonym")
        pseudonym = subject if subject is not None else self.subject_of(str(person_id))
        self._reader.sync(self._partitions(), timeout=self._timeout)
        return sorted(self._reader.artefacts(pseudonym), key=lambda a: (a.consent_id, a.version))

    def close(self) -> None:
        """Close the reader. Nothing is left to flush: every call waited for its own acknowledgement."""
        self._reader.close()

    def __enter__(self) -> ConsentManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _partitions(self) -> list[int]:
        if self._all_partitions is None:
            self._all_partitions = self._reader.topic_partitions(self._timeout)
        return self._all_partitions

    def _change(self, current: ConsentArtefact, status: ConsentStatus) -> ConsentArtefact:
        # A later version must not be issued earlier than the one it replaces (the consent state refuses it).
        issued_at = max(self._clock(), current.issued_at)
        artefact = current.model_copy(update={
            "version": current.version + 1, "status": status, "issued_at": issued_at, "signature": None,
        })
        published, partition = self._write(artefact)
        # Read it back: if another manager wrote this version first, ours was refused by every reader.
        self._reader.sync([partition], timeout=self._timeout)
        in_force = self._reader.get(published.consent_id)
        if in_force != published:
            seen = "nothing" if in_force is None else f"version {in_force.version} ({in_force.status.value})"
            raise ConsentConflictError(f"consent {published.ref} was written but {seen} is in force: another "
                                       "change came first; look again and retry")
        return published

    def _publish(self, artefact: ConsentArtefact) -> ConsentArtefact:
        return self._write(artefact)[0]

    def _write(self, artefact: ConsentArtefact) -> tuple[ConsentArtefact, int]:
        signed = sign_artefact(artefact, self._signer)
        try:
            # Never publish what every reader would skip: the key must be in the registry, valid at issued_at.
            self._verifier.check(signed)
        except ConsentSignatureError as exc:
            raise ConsentSigningError(f"the registry would not accept this signature: {exc}") from exc
        try:
            self._partitions()  # a missing topic or broker fails here at once, not after the delivery timeout
        except ConsentSyncError as exc:
            raise ConsentDeliveryError(f"consent {signed.ref} was not written: {exc}") from exc
        message = encode_artefact(self._catalogue, signed)
        reports: list[tuple[ProduceError | None, int, int]] = []
        try:
            self._producer.produce(self._topic, message.value, key=message.key, headers=message.headers,
                                   on_delivery=lambda err, _t, p, off: reports.append((err, p, off)))
            self._producer.flush(self._timeout)
        except ProduceError as exc:
            raise ConsentDeliveryError(f"consent {signed.ref} was not acknowledged: {exc}") from exc
        if len(reports) != 1:
            raise ConsentDeliveryError(f"consent {signed.ref}: no delivery report from the broker")
        error, partition, offset = reports[0]
        if error is not None:
            raise ConsentDeliveryError(f"consent {signed.ref} was not acknowledged: {error}") from error
        self._log.info("consent issued", ce_id=str(signed.ref), status=signed.status.value, partition=partition,
                       offset=offset)
        return signed, partition


def _require_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConsentRequestError(f"{what} must carry a time zone")
