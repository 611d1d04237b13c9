"""The consent manager's checks before and after producing, without a broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from exchange.consent import (
    ConsentDeliveryError,
    ConsentManager,
    ConsentRequestError,
    ConsentServiceError,
    ConsentSigningError,
    ConsentView,
)
from exchange.crypto.keys import Signer
from exchange.kafka import Producer
from exchange.policy import PolicyIndex
from exchange.registry import Registry
from exchange.schemas import Catalogue

from .support import NOW, PERSON, PSEUDONYMISER, PURPOSE, RECIPIENT, SUBJECT, TYPE

_NOWHERE = "127.0.0.1:1"  # nothing listens here: every record stays unacknowledged


MakeManager = Callable[..., ConsentManager]


@pytest.fixture
def make_manager(signer: Signer, registry: Registry, catalogue: Catalogue,
                 policies: PolicyIndex) -> Iterator[MakeManager]:
    """``make_manager(**changes)``: a manager whose broker never answers, with constructor arguments changed."""
    reader = ConsentView(catalogue, registry, bootstrap=_NOWHERE)
    parts: dict[str, Any] = {
        "signer": signer, "registry": registry, "catalogue": catalogue, "policies": policies,
        "producer": Producer(bootstrap=_NOWHERE, overrides={"socket.connection.setup.timeout.ms": 1000}),
        "reader": reader, "pseudonymiser": PSEUDONYMISER, "clock": lambda: NOW, "timeout": 1.0,
    }
    yield lambda **changes: ConsentManager(**{**parts, **changes})
    reader.close()


def _grant(manager: ConsentManager, person_id: str | None = None, subject: str | None = None) -> None:
    manager.grant(recipient=RECIPIENT, purpose=PURPOSE, record_types=[TYPE], expiry=NOW + timedelta(days=30),
                  person_id=person_id, subject=subject)


def test_unacknowledged_grant_raises_a_typed_error(make_manager: MakeManager) -> None:
    """When the broker cannot be reached, grant raises ConsentDeliveryError: nothing was acknowledged."""
    manager = make_manager()
    with pytest.raises(ConsentDeliveryError, match=r"was not written: .*Broker transport failure"):
        _grant(manager, person_id=PERSON)


def test_person_is_given_exactly_once(make_manager: MakeManager) -> None:
    """Neither or both of person id and pseudonym is refused before anything is sent."""
    manager = make_manager()
    with pytest.raises(ConsentRequestError, match="either by person id or by subject"):
        _grant(manager)
    with pytest.raises(ConsentRequestError, match="either by person id or by subject"):
        _grant(manager, person_id=PERSON, subject=SUBJECT)
    assert manager.subject_of(PERSON) == SUBJECT


def test_person_id_needs_the_pseudonym_secret(make_manager: MakeManager) -> None:
    """Without a pseudonymiser a person id is refused (a pseudonym still works up to the broker)."""
    manager = make_manager(pseudonymiser=None)
    with pytest.raises(ConsentRequestError, match="EXCHANGE_PSEUDONYM_SECRET"):
        _grant(manager, person_id=PERSON)


def test_expired_or_unusable_grants_are_refused_before_sending(make_manager: MakeManager) -> None:
    """A grant that has already expired, or that no agreement could use, never reaches the producer."""
    manager = make_manager()
    with pytest.raises(ConsentRequestError, match="already have expired"):
        manager.grant(subject=SUBJECT, recipient=RECIPIENT, purpose=PURPOSE, record_types=[TYPE],
                      expiry=NOW - timedelta(seconds=1), start=NOW - timedelta(days=1))
    with pytest.raises(ConsentRequestError, match="no consent-based agreement"):
        manager.grant(subject=SUBJECT, recipient=RECIPIENT, purpose="marketing", record_types=[TYPE],
                      expiry=NOW + timedelta(days=1))


def test_signing_key_must_be_registered(make_manager: MakeManager) -> None:
    """A manager whose key the registry does not hold refuses to publish; an agency key is refused outright."""
    stranger = make_manager(signer=Signer.generate("exchange-consent"))
    with pytest.raises(ConsentSigningError, match="registry would not accept"):
        _grant(stranger, subject=SUBJECT)
    with pytest.raises(ConsentSigningError, match="signs with the key of 'exchange-consent'"):
        make_manager(signer=Signer.generate("tax-board"))


def test_reader_must_read_the_written_topic(make_manager: MakeManager) -> None:
    """A reader of another topic could not confirm what the manager writes."""
    with pytest.raises(ConsentServiceError, match=r"reads consent\.events, the manager writes other\.topic"):
        make_manager(topic="other.topic")


def test_a_person_id_given_as_pseudonym_is_refused_without_echoing_it(make_manager: MakeManager) -> None:
    """A person id passed where the pseudonym belongs is refused, and the message does not repeat it."""
    with pytest.raises(ConsentRequestError, match="subject") as caught:
        _grant(make_manager(), subject=PERSON)
    assert PERSON not in str(caught.value)
