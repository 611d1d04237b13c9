"""Test support for deliveries: a registry with fresh signing and encryption keys, signed and verified events,
PERMIT decisions, a signer that counts its signatures, and resealing under a delivery's own data key (what a
compromised router could do). Shared with tests/integration/test_subscriber*.py."""

from __future__ import annotations

import base64
import random
from datetime import datetime, timedelta
from typing import Any

import yaml

from exchange.crypto.keys import EncryptionKey, Signer
from exchange.delivery import SealedDelivery
from exchange.delivery.datakeys import open_data_key
from exchange.delivery.wire import delivery_aad
from exchange.envelope import EnvelopeVerifier, Pseudonymiser, VerifiedEvent, prepare, seal_events
from exchange.kafka import ConsumedRecord
from exchange.policy import Decision, Outcome
from exchange.registry import Registry
from exchange.schemas import Catalogue
from exchange.schemas.samples import sample_record
from tests.keys import T0, identity_signers, shipped_registry_document

__all__ = ["PSEUDO", "SOURCES", "T0", "CountingSigner", "Keys", "permit", "reseal", "signed_events"]

PSEUDO = Pseudonymiser(b"test-secret-of-the-exchange-0001")
SOURCES = {
    "population.person-registered": "population-registry",
    "population.address-changed": "population-registry",
    "population.death-registered": "population-registry",
    "business.company-registered": "business-register",
    "tax.income-assessed": "tax-board",
    "health.coverage-changed": "health-insurance",
    "vehicle.vehicle-registered": "vehicle-registry",
    "social.benefit-granted": "social-insurance",
}
"""Every shareable record type and the agency that publishes it."""


class Keys:
    """Fresh keys for every identity: signing keys for all, encryption keys for every agency."""

    def __init__(self) -> None:
        self.signers: dict[str, Signer] = identity_signers()
        self.encryption: dict[str, EncryptionKey] = {
            a["id"]: EncryptionKey.generate(a["id"]) for a in shipped_registry_document()["agencies"]}

    def registry(self, *, signing: dict[str, dict[str, Any]] | None = None,
                 encryption: dict[str, dict[str, Any] | None] | None = None,
                 router: Signer | None = None) -> Registry:
        """The shipped registry with these keys; ``signing``/``encryption`` add entry fields per identity
        (``revoked_at=…``), ``encryption={id: None}`` leaves an agency without an encryption key."""
        signing, encryption = signing or {}, encryption or {}
        valid_from = (T0 - timedelta(days=365)).isoformat()
        document = shipped_registry_document()
        for section in ("agencies", "services"):
            for identity in document.get(section, []):
                ident = identity["id"]
                signer = router if router is not None and ident == "exchange-router" else self.signers[ident]
                identity["signing_keys"] = [{"key_id": signer.key_id, "public_key": signer.verifier_key(),
                                             "valid_from": valid_from, **signing.get(ident, {})}]
                if ident in self.encryption and (extra := encryption.get(ident, {})) is not None:
                    key = self.encryption[ident]
                    identity["encryption_key"] = {"key_id": key.key_id,
                                                  "public_key": _raw_b64(key), "valid_from": valid_from, **extra}
        return Registry.from_yaml(yaml.safe_dump(document), source="test-registry")


def _raw_b64(key: EncryptionKey) -> str:
    return base64.b64encode(key.public_key.public_bytes_raw()).decode()


def signed_events(catalogue: Catalogue, keys: Keys, registry: Registry, record_type: str, n: int = 3, *,
                  seed: int = 7, revision: int | None = None, at: datetime = T0) -> list[VerifiedEvent]:
    """``n`` sample events of ``record_type``, signed as one batch by its publisher and verified."""
    rng = random.Random(seed)
    source = SOURCES[record_type]
    schema = catalogue.current(record_type) if revision is None else catalogue.revision(record_type, revision)
    prepared = []
    for i in range(n):
        record = sample_record(record_type, rng)
        record = {name: record[name] for name in schema.field_names}
        value = record[schema.key_field]
        key = (PSEUDO.subject(value) if schema.key_kind == "person" else value).encode()
        prepared.append(prepare(schema, record, source=source, key=key, now=at + timedelta(seconds=i)))
    envelopes = seal_events(source, prepared, keys.signers[source])
    verifier = EnvelopeVerifier(registry, catalogue)
    return [verifier.verify(ConsumedRecord(env.topic, 0, i, env.key, env.value, list(env.headers),
                                           int(at.timestamp() * 1000)))
            for i, env in enumerate(envelopes)]


def permit(recipient: str, record_type: str, fields: tuple[str, ...], *, pseudonymise: bool = False,
           agreement: str = "test-agreement", version: int = 3, purpose: str = "testing") -> Decision:
    """A PERMIT of ``fields`` (in schema order) to ``recipient``."""
    return Decision(Outcome.PERMIT, recipient, agreement, version, purpose, "Test Act §1", None, fields, (), (),
                    pseudonymise, f"delivery.{recipient}", "bundle-test")


class CountingSigner:
    """Wraps a signer and counts what it signs."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self.name = signer.name
        self.key_id = signer.key_id
        self.calls = 0

    def sign(self, message: bytes) -> bytes:
        self.calls += 1
        return self._signer.sign(message)


def reseal(d: SealedDelivery, plaintext: bytes, registry: Registry, encryption_key: EncryptionKey,
           headers: list[tuple[str, bytes]] | None = None) -> SealedDelivery:
    """``plaintext`` encrypted under ``d``'s own data key, for ``headers`` (default ``d``'s): it passes the
    AES-GCM tag, so whatever the recipient refuses then, it refuses for the plaintext."""
    headers = list(d.headers) if headers is None else headers
    h = dict(headers)
    data_key = open_data_key(h["ce_exdatakey"], registry, encryption_key)
    nonce = b"\xfe" * 12
    aad = delivery_aad(d.topic.encode(), d.key, h["ce_id"], h["ce_exagreement"], data_key.wrap.key_id.encode())
    return SealedDelivery(d.topic, d.key, b"\x01" + nonce + data_key.aead.encrypt(nonce, plaintext, aad), headers)
