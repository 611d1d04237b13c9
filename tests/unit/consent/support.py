"""Builders shared by the consent unit and integration tests: a registry holding a fresh exchange-consent key,
the shipped catalogue and policies, and signed artefacts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from exchange.consent import sign_artefact
from exchange.context import type_infos
from exchange.crypto.keys import Signer
from exchange.envelope import Pseudonymiser
from exchange.policy import ConsentArtefact, ConsentStatus, PolicyIndex, compile_policies, load_policies
from exchange.registry import Registry
from exchange.schemas import Catalogue

REPO = Path(__file__).resolve().parents[3]

KEY_VALID_FROM = datetime(2020, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
PSEUDONYMISER = Pseudonymiser(b"consent-tests-pseudonym-secret!!")
PERSON = "39001010008"
SUBJECT = PSEUDONYMISER.subject(PERSON)
OTHER_SUBJECT = PSEUDONYMISER.subject("49002020019")

RECIPIENT = "municipal-services"
PURPOSE = "housing-allowance"
TYPE = "tax.income-assessed"


def registry_document(signer: Signer, **key_fields: Any) -> dict[str, Any]:
    """The shipped registry as a dict, with ``signer`` as exchange-consent's one signing key."""
    document: dict[str, Any] = yaml.safe_load((REPO / "policies" / "registry.yaml").read_text())
    entry = {"key_id": signer.key_id, "public_key": signer.verifier_key(), "valid_from": KEY_VALID_FROM.isoformat(),
             **key_fields}
    for service in document["services"]:
        if service["id"] == "exchange-consent":
            service["signing_keys"] = [entry]
    return document


def make_registry(signer: Signer, **key_fields: Any) -> Registry:
    """The shipped registry with ``signer`` as exchange-consent's key (extra key entry fields in ``key_fields``)."""
    return Registry.from_yaml(yaml.safe_dump(registry_document(signer, **key_fields)), source="test-registry")


def load_catalogue() -> Catalogue:
    return Catalogue.load(REPO / "schemas")


def compile_shipped(catalogue: Catalogue, registry: Registry) -> PolicyIndex:
    """The shipped agreements and restrictions, compiled against ``catalogue`` and ``registry``."""
    return compile_policies(load_policies(REPO / "policies"), type_infos(catalogue),
                            [a.id for a in registry.agencies], registry.canonical())


def artefact(signer: Signer | None, **fields: Any) -> ConsentArtefact:
    """A consent for the housing allowance, version 1, ACTIVE, signed by ``signer`` (unsigned if None)."""
    data: dict[str, Any] = {
        "consent_id": "0197a0b0-0000-7000-8000-000000000001",
        "version": 1,
        "subject": SUBJECT,
        "recipient": RECIPIENT,
        "purpose": PURPOSE,
        "record_types": (TYPE,),
        "start": NOW - timedelta(days=1),
        "expiry": NOW + timedelta(days=365),
        "status": ConsentStatus.ACTIVE,
        "issued_at": NOW - timedelta(days=1),
        **fields,
    }
    built = ConsentArtefact.model_validate(data)
    return built if signer is None else sign_artefact(built, signer)


def next_version(previous: ConsentArtefact, signer: Signer, status: ConsentStatus,
                 issued_at: datetime | None = None) -> ConsentArtefact:
    """The next version of ``previous`` with ``status``, signed."""
    changed = previous.model_copy(update={
        "version": previous.version + 1, "status": status, "signature": None,
        "issued_at": issued_at or previous.issued_at + timedelta(minutes=1),
    })
    return sign_artefact(changed, signer)
