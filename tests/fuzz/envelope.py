"""The envelope verifier, fed mutated genuine ingress records: key, value, headers and timestamp.

Seeds are signed records of a person-keyed and a record-keyed type, alone and in a batch of three (so the
inclusion proofs are not empty), on the catalogue and registry the exchange ships (with fixed keys).
"""

from __future__ import annotations

import hashlib
import random
from datetime import timedelta

from exchange.envelope import EnvelopeVerifier, InternalError, VerificationError, prepare, seal_events
from exchange.envelope.attributes import HEADER_LIMITS
from exchange.schemas import Catalogue
from exchange.schemas.samples import sample_record
from tests.fuzz.engine import ROOT, Harness, RuleBroken, internal_kind
from tests.fuzz.records import T0_MS, Record, decode, encode, fixed_signers
from tests.keys import T0, registry_with_keys

TYPES = {"population.address-changed": "population-registry", "business.company-registered": "business-register",
         "tax.income-assessed": "tax-board"}
MAX_MESSAGE = 5000


class EnvelopeHarness(Harness):
    name = "envelope"

    def __init__(self) -> None:
        self.catalogue = Catalogue.load(ROOT / "schemas")
        self.signers = fixed_signers()
        self.registry = registry_with_keys(self.signers)
        self.verifier = EnvelopeVerifier(self.registry, self.catalogue)

    def seeds(self) -> list[bytes]:
        rng = random.Random(11)
        seeds = []
        for record_type, source in TYPES.items():
            schema = self.catalogue.current(record_type)
            for size in (1, 3):
                prepared = []
                for i in range(size):
                    record = sample_record(record_type, rng)
                    record = {name: record[name] for name in schema.field_names}
                    key = (hashlib.sha256(str(record[schema.key_field]).encode()).hexdigest()[:32]
                           if schema.key_kind == "person" else str(record[schema.key_field]))
                    prepared.append(prepare(schema, record, source=source, key=key.encode(),
                                            now=T0 + timedelta(milliseconds=i), seed=rng.randbytes(32)))
                for envelope in seal_events(source, prepared, self.signers[source]):
                    seeds.append(encode(Record(envelope.key, envelope.value, list(envelope.headers), T0_MS)))
        verifier = EnvelopeVerifier(self.registry, self.catalogue)
        for seed in seeds:  # the material is sound: every seed verifies
            verifier.verify(decode(seed))
        return seeds

    def tokens(self) -> list[bytes]:
        return [name.encode() + b"\x00" for name in HEADER_LIMITS]

    def run(self, data: bytes) -> None:
        record = decode(data)
        try:
            self.verifier.verify(record)
        except InternalError as exc:
            raise RuleBroken(internal_kind("the verifier", exc), str(exc)[:200]) from exc
        except VerificationError as exc:
            if len(str(exc)) > MAX_MESSAGE:
                raise RuleBroken("a verification error echoes a long input", f"{len(str(exc))} characters") from exc
