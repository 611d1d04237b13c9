"""Sealing (router steps 3 and 4): minimise a verified event for one PERMIT and encrypt it for the recipient.

:class:`DeliverySealer` is pure apart from the clock it is given and the randomness of new data keys: it returns
the Kafka record to produce and never talks to Kafka. Work is done as rarely as it can be: per event the salts,
field encodings and headers (shared by the event's deliveries), per decision the field selection, agreement
block and headers, per data key its wrap and its one signature by ``exchange-router``
(see :mod:`exchange.delivery.datakeys`).

Nothing is sealed that a recipient would refuse for its size: a key, header or value over its bound in
:mod:`exchange.delivery.wire` (or a part too long for its length prefix) raises
:class:`~exchange.delivery.errors.UnencodableError`, and the sealer stays usable for the next delivery.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

from exchange.crypto.note import NoteSigner
from exchange.delivery.datakeys import DataKey, DataKeys
from exchange.delivery.errors import UnencodableError
from exchange.delivery.minimise import Minimiser, Plan
from exchange.delivery.wire import (
    CONTENT_TYPE,
    H_AGREEMENT,
    H_PURPOSE,
    HEADER_LIMITS,
    MAX_KEY_SIZE,
    MAX_TOPIC_SIZE,
    MAX_VALUE_SIZE,
    NONCE_SIZE,
    TAG_SIZE,
    aad_part,
    aad_prefix,
    agreement_header,
)
from exchange.envelope.attributes import H_CONTENT_TYPE, H_ID, H_SOURCE, H_SPECVERSION, H_TIME, H_TYPE, SPECVERSION
from exchange.envelope.pseudonym import Pseudonymiser
from exchange.envelope.verify import VerifiedEvent
from exchange.errors import ConfigError
from exchange.policy.decision import Decision
from exchange.registry import Registry
from exchange.schemas import RecordSchema

__all__ = ["DeliverySealer", "SealedDelivery"]

Header = tuple[str, bytes]
_CACHE_LIMIT = 4096
_SPECVERSION = (H_SPECVERSION, SPECVERSION.encode())
_CONTENT_TYPE = (H_CONTENT_TYPE, CONTENT_TYPE.encode())
_MAX_PLAINTEXT = MAX_VALUE_SIZE - 1 - NONCE_SIZE - TAG_SIZE


def _encoded(text: str, what: str, limit: int) -> bytes:
    """``text`` as UTF-8, within ``limit`` bytes; :class:`UnencodableError` otherwise."""
    try:
        raw = text.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate
        raise UnencodableError(f"{what} is not encodable as UTF-8") from exc
    if len(raw) > limit:
        raise UnencodableError(f"{what} has {len(raw)} bytes; recipients accept at most {limit}")
    return raw


def _header(name: str, text: str) -> Header:
    return name, _encoded(text, f"header {name}", HEADER_LIMITS[name])


def _checked_key(key: bytes, what: str) -> bytes:
    if len(key) > MAX_KEY_SIZE:
        raise UnencodableError(f"{what} has {len(key)} bytes; recipients accept at most {MAX_KEY_SIZE}")
    return aad_part(key, what)


class SealedDelivery(NamedTuple):
    """One delivery, ready to produce: topic, key, value and headers (a fresh list, the caller may keep it).

    A named tuple rather than a frozen dataclass: the router builds one per delivery, and a tuple is built
    several times faster.
    """

    topic: str
    key: bytes
    value: bytes
    headers: list[Header]


class _Route:
    """Everything about one decision that does not depend on the event."""

    __slots__ = ("aad", "agreement", "data_key", "decision", "headers", "plans", "recipient", "topic", "topic_bytes")

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.recipient = decision.recipient
        self.topic = decision.topic
        self.topic_bytes = _encoded(decision.topic, "the topic", MAX_TOPIC_SIZE)
        agreement = _header(H_AGREEMENT, agreement_header(decision.agreement_id, decision.agreement_version))
        self.agreement = agreement[1]
        self.headers = (agreement, _header(H_PURPOSE, decision.purpose))
        self.plans: dict[RecordSchema, Plan] = {}
        self.data_key: DataKey | None = None
        self.aad = b""

    def plan(self, schema: RecordSchema) -> Plan:
        plan = self.plans.get(schema)
        if plan is None:
            plan = self.plans[schema] = Plan(self.decision, schema)
        return plan

    def aad_for(self, data_key: DataKey) -> bytes:
        if data_key is not self.data_key:
            self.aad = aad_prefix(self.topic_bytes, self.agreement, data_key.key_id.encode())
            self.data_key = data_key
        return self.aad


class DeliverySealer:
    """Minimises and encrypts deliveries for the router.

    ``router_signer`` is the signing key of ``exchange-router``; ``registry`` gives recipients' encryption keys,
    checked for validity when a data key is made; ``clock`` returns seconds since the epoch. A data key is
    replaced after ``rotate_after_s`` seconds or ``rotate_after_count`` deliveries, whichever comes first, and
    never outlives the recipient's key entry. A changed registry takes a new sealer.
    """

    __slots__ = ("_data_keys", "_event", "_event_headers", "_event_id_aad", "_event_key_aad", "_minimiser", "_routes",
                 "_shared")

    def __init__(self, router_signer: NoteSigner, registry: Registry, pseudonymiser: Pseudonymiser, *,
                 rotate_after_s: float = 600.0, rotate_after_count: int = 100_000,
                 clock: Callable[[], float] = time.time) -> None:
        try:
            self._data_keys = DataKeys(router_signer, registry, rotate_after_s=rotate_after_s,
                                       rotate_after_count=rotate_after_count, clock=clock)
        except ValueError as exc:
            raise ConfigError(f"delivery sealer: {exc}") from exc
        self._minimiser = Minimiser(pseudonymiser)
        self._event: VerifiedEvent | None = None
        self._event_headers: tuple[Header, ...] = ()
        self._event_key_aad = self._event_id_aad = b""
        # Keyed by id() (with the decision held, so the id stays its own): the policy engine hands out the same
        # Decision object for the same verdict, and hashing a whole Decision would cost more than the lookup.
        self._routes: dict[int, tuple[Decision, _Route]] = {}
        self._shared: dict[tuple[object, ...], _Route] = {}

    @property
    def rotations(self) -> int:
        """Data keys made (each signed once) so far."""
        return self._data_keys.rotations

    def seal(self, event: VerifiedEvent, decision: Decision) -> SealedDelivery:
        """The encrypted, minimised delivery of ``event`` under ``decision`` (a PERMIT).

        Raises :class:`~exchange.delivery.errors.NotPermittedError` for a DENY,
        :class:`~exchange.delivery.errors.RecipientKeyError` when the recipient has no encryption key valid now and
        :class:`~exchange.delivery.errors.UnencodableError` when a part is too long to deliver (see the module
        docstring). Each is a :class:`~exchange.delivery.errors.SealError` (an input too long is never a struct.error).
        """
        cached = self._routes.get(id(decision))
        route = cached[1] if cached is not None and cached[0] is decision else self._route(decision)
        plaintext, pseudonym = self._minimiser.disclose(event, route.plan(event.schema))
        if len(plaintext) > _MAX_PLAINTEXT:
            raise UnencodableError(f"event {event.attributes.id[:40]}: the sealed value would have more than "
                                   f"{MAX_VALUE_SIZE} bytes")
        if event is not self._event:
            self._remember(event)  # checks the event's parts first: a refused event leaves nothing behind
        data_key = self._data_keys.current(route.recipient)
        if pseudonym is None:
            key, key_aad = event.key, self._event_key_aad
        else:
            key = pseudonym.encode()
            key_aad = _checked_key(key, "the recipient pseudonym")
        aad = b"".join((route.aad_for(data_key), key_aad, self._event_id_aad))
        return SealedDelivery(route.topic, key, data_key.encrypt(plaintext, aad),
                              [*self._event_headers, *route.headers, data_key.header_pair])

    def _remember(self, event: VerifiedEvent) -> None:
        """Encode (and bound) what all deliveries of ``event`` share; only then make it the current event."""
        a = event.attributes
        key_aad = _checked_key(event.key, "the key")
        id_header = _header(H_ID, a.id)
        headers = (_SPECVERSION, id_header, _header(H_SOURCE, a.source), _header(H_TYPE, a.type),
                   _header(H_TIME, a.time), _CONTENT_TYPE)
        self._event_key_aad = key_aad
        self._event_id_aad = aad_part(id_header[1], "ce_id")
        self._event_headers = headers
        self._event = event

    def _route(self, decision: Decision) -> _Route:
        # Decisions made per event (consent-based ones) are new objects with the same content: share their route.
        content = (decision.outcome, decision.recipient, decision.topic, decision.agreement_id,
                   decision.agreement_version, decision.purpose, decision.fields, decision.pseudonymise)
        route = self._shared.get(content)
        if route is None:
            if len(self._shared) >= _CACHE_LIMIT:
                self._shared.clear()
            route = self._shared[content] = _Route(decision)
        if len(self._routes) >= _CACHE_LIMIT:
            self._routes.clear()
        self._routes[id(decision)] = (decision, route)
        return route

    def __repr__(self) -> str:
        return f"DeliverySealer({self._data_keys!r})"
