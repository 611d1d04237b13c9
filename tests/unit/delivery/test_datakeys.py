"""Data keys rotate by count and by time, are signed once per rotation, and only the router's valid key counts."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import timedelta

import pytest

from exchange.crypto.keys import EncryptionKey, Signer
from exchange.crypto.note import sign_note
from exchange.delivery import (
    BadDataKeyError,
    DataKeyWrap,
    DeliveryOpener,
    DeliverySealer,
    RecipientKeyError,
    RouterKeyRejectedError,
    SealedDelivery,
    UnknownRouterKeyError,
    WrongRecipientError,
)
from exchange.delivery.datakeys import DataKeys
from exchange.errors import ConfigError
from exchange.registry import Registry
from exchange.schemas import Catalogue
from tests.unit.delivery.conftest import Clock
from tests.unit.delivery.support import PSEUDO, T0, CountingSigner, Keys, permit, signed_events

Open = Callable[[str], DeliveryOpener]
TYPE = "tax.income-assessed"
FIELDS = ("tax_year", "taxable_income_cents")


def _note(d: SealedDelivery) -> bytes:
    return dict(d.headers)["ce_exdatakey"]


def _wrap(d: SealedDelivery) -> DataKeyWrap:
    text = _note(d).decode()
    return DataKeyWrap.parse(text[:text.rindex("\n\n") + 1])


def test_rotation_by_count_signs_once_per_key(catalogue: Catalogue, keys: Keys, registry: Registry, clock: Clock,
                                              opener: Open) -> None:
    """With a count of 3, seven deliveries use three data keys, each signed exactly once, all of which open."""
    signer = CountingSigner(keys.signers["exchange-router"])
    sealer = DeliverySealer(signer, registry, PSEUDO, rotate_after_count=3, clock=clock)
    events = signed_events(catalogue, keys, registry, TYPE, n=7)
    sealed = [sealer.seal(e, permit("social-insurance", TYPE, FIELDS)) for e in events]
    notes = [_note(d) for d in sealed]
    assert notes[0] == notes[1] == notes[2] != notes[3] == notes[4] == notes[5] != notes[6]
    assert len({_wrap(d).key_id for d in sealed}) == 3
    assert signer.calls == sealer.rotations == 3
    mine = opener("social-insurance")
    assert [mine.open(d.key, d.value, d.headers, d.topic).event_id for d in sealed] == [
        e.attributes.id for e in events]


def test_rotation_by_time(catalogue: Catalogue, keys: Keys, registry: Registry, clock: Clock) -> None:
    """A data key is used until its time is up, then replaced by a newly signed one."""
    signer = CountingSigner(keys.signers["exchange-router"])
    sealer = DeliverySealer(signer, registry, PSEUDO, rotate_after_s=60, clock=clock)
    (event,) = signed_events(catalogue, keys, registry, TYPE, n=1)
    decision = permit("social-insurance", TYPE, FIELDS)
    first = sealer.seal(event, decision)
    clock.now += 59.9
    assert _note(sealer.seal(event, decision)) == _note(first)
    clock.now += 0.1
    later = sealer.seal(event, decision)
    assert _wrap(later).key_id != _wrap(first).key_id
    assert _wrap(later).created_at - _wrap(first).created_at == timedelta(seconds=60)
    assert signer.calls == 2


def test_one_data_key_per_recipient(catalogue: Catalogue, keys: Keys, registry: Registry,
                                    sealer: DeliverySealer) -> None:
    """Each recipient has its own data key, wrapped for its own encryption key."""
    (event,) = signed_events(catalogue, keys, registry, TYPE, n=1)
    wraps = {r: _wrap(sealer.seal(event, permit(r, TYPE, FIELDS))) for r in ("social-insurance", "municipal-services")}
    assert wraps["social-insurance"].key_id != wraps["municipal-services"].key_id
    assert {r: w.recipient_key_id for r, w in wraps.items()} == {r: keys.encryption[r].key_id for r in wraps}
    assert sealer.rotations == 2


def test_unknown_router_key_is_refused(catalogue: Catalogue, keys: Keys, registry: Registry, clock: Clock,
                                       opener: Open) -> None:
    """A data key signed by a key of exchange-router that the registry does not list is refused."""
    rogue = DeliverySealer(Signer.generate("exchange-router"), registry, PSEUDO, clock=clock)
    (event,) = signed_events(catalogue, keys, registry, TYPE, n=1)
    d = rogue.seal(event, permit("social-insurance", TYPE, FIELDS))
    with pytest.raises(UnknownRouterKeyError):
        opener("social-insurance").open(d.key, d.value, d.headers, d.topic)


def test_revoked_router_key_is_refused(catalogue: Catalogue, keys: Keys, registry: Registry, clock: Clock) -> None:
    """A data key made after the router key's revocation is refused; one made before still opens."""
    (event,) = signed_events(catalogue, keys, registry, TYPE, n=1)
    revoked = keys.registry(signing={"exchange-router": {"revoked_at": T0.isoformat()}})
    mine = DeliveryOpener("social-insurance", keys.encryption["social-insurance"], revoked, catalogue)
    sealer = DeliverySealer(keys.signers["exchange-router"], registry, PSEUDO, clock=clock)
    d = sealer.seal(event, permit("social-insurance", TYPE, FIELDS))  # created at T0: revoked at that instant
    with pytest.raises(RouterKeyRejectedError):
        mine.open(d.key, d.value, d.headers, d.topic)
    clock.now -= 1
    earlier = DeliverySealer(keys.signers["exchange-router"], registry, PSEUDO, clock=clock)
    d = earlier.seal(event, permit("social-insurance", TYPE, FIELDS))
    assert mine.open(d.key, d.value, d.headers, d.topic).event_id == event.attributes.id


def test_a_signature_by_another_identity_is_refused(catalogue: Catalogue, keys: Keys, registry: Registry,
                                                    clock: Clock, opener: Open) -> None:
    """Only exchange-router signs data keys: a sealer with another signer is refused, and so is its note."""
    with pytest.raises(ConfigError):
        DeliverySealer(keys.signers["tax-board"], registry, PSEUDO, clock=clock)
    (event,) = signed_events(catalogue, keys, registry, TYPE, n=1)
    d = DeliverySealer(keys.signers["exchange-router"], registry, PSEUDO, clock=clock).seal(
        event, permit("social-insurance", TYPE, FIELDS))
    text = _wrap(d).text()
    by_tax_board = sign_note(text, [keys.signers["tax-board"]]).encode()
    headers = [(n, by_tax_board if n == "ce_exdatakey" else v) for n, v in d.headers]
    with pytest.raises(UnknownRouterKeyError):
        opener("social-insurance").open(d.key, d.value, headers, d.topic)


def test_recipient_without_a_valid_key_gets_nothing(catalogue: Catalogue, keys: Keys, clock: Clock) -> None:
    """No encryption key, a revoked one or an unknown recipient: sealing raises RecipientKeyError."""
    (event,) = signed_events(catalogue, keys, keys.registry(), TYPE, n=1)
    for registry in (keys.registry(encryption={"social-insurance": None}),
                     keys.registry(encryption={"social-insurance": {"revoked_at": (T0 - timedelta(1)).isoformat()}})):
        sealer = DeliverySealer(keys.signers["exchange-router"], registry, PSEUDO, clock=clock)
        with pytest.raises(RecipientKeyError):
            sealer.seal(event, permit("social-insurance", TYPE, FIELDS))
    sealer = DeliverySealer(keys.signers["exchange-router"], keys.registry(), PSEUDO, clock=clock)
    with pytest.raises(RecipientKeyError):
        sealer.seal(event, permit("public", TYPE, FIELDS))


def test_data_key_never_outlives_the_recipient_key(catalogue: Catalogue, keys: Keys, clock: Clock) -> None:
    """A data key is replaced when the recipient's key expires, and sealing then fails: nothing is sent to it."""
    until = T0 + timedelta(seconds=30)
    registry = keys.registry(encryption={"social-insurance": {"valid_until": until.isoformat()}})
    (event,) = signed_events(catalogue, keys, registry, TYPE, n=1)
    sealer = DeliverySealer(keys.signers["exchange-router"], registry, PSEUDO, clock=clock)
    sealer.seal(event, permit("social-insurance", TYPE, FIELDS))
    clock.now = until.timestamp()
    with pytest.raises(RecipientKeyError):
        sealer.seal(event, permit("social-insurance", TYPE, FIELDS))


def test_stale_data_key_is_refused(catalogue: Catalogue, keys: Keys, registry: Registry, sealer: DeliverySealer,
                                   opener: Open) -> None:
    """A record whose broker time is long after (or well before) its data key's creation is refused."""
    (event,) = signed_events(catalogue, keys, registry, TYPE, n=1)
    d = sealer.seal(event, permit("social-insurance", TYPE, FIELDS))
    mine = opener("social-insurance")
    t0_ms = int(T0.timestamp() * 1000)
    assert mine.open(d.key, d.value, d.headers, d.topic, timestamp_ms=t0_ms + 59 * 60_000) is not None
    for ts in (t0_ms + 61 * 60_000, t0_ms - 16 * 60_000):
        with pytest.raises(BadDataKeyError):
            mine.open(d.key, d.value, d.headers, d.topic, timestamp_ms=ts)


def test_wrap_text_round_trips_and_is_strict(catalogue: Catalogue, keys: Keys, registry: Registry,
                                             sealer: DeliverySealer) -> None:
    """The wrap text parses back to itself; other origins, sizes, ids or a non-canonical time are refused."""
    (event,) = signed_events(catalogue, keys, registry, TYPE, n=1)
    wrap = _wrap(sealer.seal(event, permit("social-insurance", TYPE, FIELDS)))
    text = wrap.text()
    assert DataKeyWrap.parse(text) == wrap
    lines = text.split("\n")
    for i, bad in ((0, "exchange.datakey/v2"), (1, "XYZ"), (2, "Tax Board"), (3, "1234"),
                   (4, "2026-06-01T12:00:00Z"), (5, "AAAA"), (6, lines[5])):
        broken = list(lines)
        broken[i] = bad
        with pytest.raises(BadDataKeyError):
            DataKeyWrap.parse("\n".join(broken))


def test_data_keys_keep_their_secret(keys: Keys, registry: Registry, clock: Clock) -> None:
    """A data key shows no secret in its repr and cannot be pickled."""
    key = DataKeys(keys.signers["exchange-router"], registry, clock=clock).current("social-insurance")
    assert "social-insurance" in repr(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_a_retired_key_still_opens_what_was_wrapped_for_it(catalogue: Catalogue, keys: Keys, registry: Registry,
                                                          sealer: DeliverySealer) -> None:
    """After a key rotation, the new key alone refuses older deliveries; new plus retired key opens them."""
    (event,) = signed_events(catalogue, keys, registry, TYPE, n=1)
    d = sealer.seal(event, permit("social-insurance", TYPE, FIELDS))
    new = EncryptionKey.generate("social-insurance")
    with pytest.raises(WrongRecipientError):
        DeliveryOpener("social-insurance", new, registry, catalogue).open(d.key, d.value, d.headers, d.topic)
    both = DeliveryOpener("social-insurance", [new, keys.encryption["social-insurance"]], registry, catalogue)
    assert both.open(d.key, d.value, d.headers, d.topic).event_id == event.attributes.id
    with pytest.raises(ValueError, match="tax-board"):
        DeliveryOpener("social-insurance", [new, keys.encryption["tax-board"]], registry, catalogue)
