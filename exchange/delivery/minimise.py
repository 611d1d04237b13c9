"""Minimisation (router step 3): from a verified event and a PERMIT, what one recipient may see of the event.

A field is disclosed if and only if the decision names it; every other field is withheld and only its commitment
travels. The key is disclosed (its bytes and salt) unless the agreement pseudonymises: then the key field and the
key are withheld and the router attests a recipient-specific pseudonym instead
(:meth:`~exchange.envelope.Pseudonymiser.for_recipient`), which the publisher never signed.

:func:`minimise` builds a :class:`~exchange.delivery.disclosure.Disclosure`; :class:`Minimiser` produces the same
bytes for many deliveries of one event, doing the per-event work (salts, field encodings) once and the
per-decision work once per decision (a :class:`Plan`).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from exchange.delivery.disclosure import (
    NO_SUBJECT,
    WITHHELD_TAG,
    Disclosed,
    Disclosure,
    Withheld,
    assemble,
    disclosed_prefixes,
    encode_agreement,
    encode_event_head,
    encode_note,
    encode_subject,
)
from exchange.delivery.errors import NotPermittedError, SealError
from exchange.envelope.commitments import derive_salts
from exchange.envelope.pseudonym import Pseudonymiser
from exchange.envelope.verify import VerifiedEvent
from exchange.policy.decision import Decision, Outcome
from exchange.schemas import RecordSchema
from exchange.schemas.errors import SchemaError

__all__ = ["EventPieces", "Minimiser", "Plan", "disclosed_mask", "minimise"]


def disclosed_mask(schema: RecordSchema, fields: tuple[str, ...], pseudonymise: bool) -> tuple[bool, ...]:
    """Per entry (the key, then each schema field): disclosed? The key field and key never, if pseudonymising."""
    mask = [not pseudonymise]
    mask.extend(name in fields and not (pseudonymise and name == schema.key_field) for name in schema.field_names)
    return tuple(mask)


def _require_permit(decision: Decision) -> None:
    if decision.outcome is not Outcome.PERMIT:
        raise NotPermittedError(f"agreement {decision.agreement_id} v{decision.agreement_version} decided "
                                f"{decision.outcome} for {decision.recipient}: nothing is delivered")


def _subject_value(event: VerifiedEvent) -> str:
    value = event.record.get(event.schema.key_field)
    if not isinstance(value, str) or not value:
        raise SealError(f"{event.schema.label}: key field {event.schema.key_field!r} holds no id to pseudonymise")
    return value


def _parts(event: VerifiedEvent) -> tuple[Sequence[bytes], Sequence[bytes]]:
    """The salts and field encodings of ``event``: those verification used, or derived again if it kept none."""
    if len(event.parts) == len(event.schema.field_names) and len(event.salts) == len(event.parts) + 1:
        return event.salts, event.parts
    try:
        _, parts = event.schema.encode_parts(event.record)
    except SchemaError as exc:  # a VerifiedEvent's record encodes; this guards against a hand-made one
        raise SealError(f"event {event.attributes.id}: the record does not encode: {exc}") from exc
    return derive_salts(event.seed, len(parts) + 1), parts


def minimise(event: VerifiedEvent, decision: Decision, pseudonymiser: Pseudonymiser) -> Disclosure:
    """The disclosure of ``event`` for ``decision``'s recipient; NotPermittedError unless it is a PERMIT."""
    _require_permit(decision)
    salts, parts = _parts(event)
    mask = disclosed_mask(event.schema, decision.fields, decision.pseudonymise)
    pseudonym = (pseudonymiser.for_recipient(decision.recipient, _subject_value(event))
                 if decision.pseudonymise else None)
    values = [event.key, *parts]
    entries = [Disclosed(salts[i], values[i]) if disclosed else Withheld(event.commitments[i])
               for i, disclosed in enumerate(mask)]
    return Disclosure(event.attributes, decision.agreement_id, decision.agreement_version, decision.purpose,
                      pseudonym, event.note, event.proof, entries[0], tuple(entries[1:]))


class Plan:
    """What minimising for one decision and one schema revision needs, compiled once.

    ``picker`` takes an event's pieces (see :class:`EventPieces`) and returns this recipient's entries.
    """

    __slots__ = ("agreement", "picker", "pseudonymise", "recipient")

    def __init__(self, decision: Decision, schema: RecordSchema) -> None:
        _require_permit(decision)
        mask = disclosed_mask(schema, decision.fields, decision.pseudonymise)
        withheld = 2 * len(mask)
        indices: list[int] = []
        for i, disclosed in enumerate(mask):
            start = 2 * i if disclosed else withheld + 2 * i
            indices += (start, start + 1)
        # With two or more indices (always: the key and a field) itemgetter returns a tuple; typeshed cannot
        # match a star-args call to that overload, hence the ignore.
        self.picker: itemgetter[tuple[bytes, ...]] = itemgetter(*indices)  # type: ignore[arg-type]
        self.agreement = encode_agreement(decision.agreement_id, decision.agreement_version, decision.purpose)
        self.recipient = decision.recipient
        self.pseudonymise = decision.pseudonymise


class EventPieces:
    """The encoded pieces of one event that every delivery of it picks from."""

    __slots__ = ("event", "head", "pieces")

    def __init__(self, event: VerifiedEvent, note_block: bytes) -> None:
        salts, parts = _parts(event)
        values = [event.key, *parts]
        n = len(values)
        pieces: list[bytes] = [b""] * (4 * n)
        # Entry i disclosed is pieces[2i:2i+2], withheld pieces[2(n+i):2(n+i)+2]; slice assignments run in C.
        pieces[0:2 * n:2] = disclosed_prefixes(salts, values)
        pieces[1:2 * n:2] = values
        pieces[2 * n::2] = [WITHHELD_TAG] * n
        pieces[2 * n + 1::2] = event.commitments
        self.event = event
        self.head = encode_event_head(event.attributes, note_block, event.proof, n)
        self.pieces = pieces


class Minimiser:
    """Encodes disclosures for the deliveries of one event after another, sharing the per-event work.

    The router seals every decision of an event before it moves on, so only the last event's pieces (and the
    last batch note's encoding) are kept; a :class:`Plan` per decision and schema says which pieces to take.
    """

    __slots__ = ("_last", "_note", "_pseudonymiser")

    def __init__(self, pseudonymiser: Pseudonymiser) -> None:
        self._pseudonymiser = pseudonymiser
        self._last: EventPieces | None = None
        self._note: tuple[str, bytes] = ("", b"")

    def disclose(self, event: VerifiedEvent, plan: Plan) -> tuple[bytes, str | None]:
        """The encoded disclosure and, when pseudonymising, the recipient's subject pseudonym.

        The bytes equal ``minimise(event, decision, pseudonymiser).encode()`` for the plan's decision.
        """
        pieces = self._last
        if pieces is None or pieces.event is not event:
            if self._note[0] != event.note:  # the events of a batch share one note
                self._note = (event.note, encode_note(event.note))
            pieces = self._last = EventPieces(event, self._note[1])
        if plan.pseudonymise:
            pseudonym = self._pseudonymiser.for_recipient(plan.recipient, _subject_value(event))
            return assemble(encode_subject(pseudonym), plan.agreement, pieces.head, plan.picker(pieces.pieces)), \
                pseudonym
        return assemble(NO_SUBJECT, plan.agreement, pieces.head, plan.picker(pieces.pieces)), None
