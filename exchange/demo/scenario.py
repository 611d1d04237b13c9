"""The end-to-end demo: agencies publish once, the router enforces law and consent, departments receive.

Everything runs against the real broker under a fresh topic namespace (``demo-<run>.``), so each run is counted
on its own; the namespaces of earlier runs are deleted first. Keys live in ``.demo/keystore`` (files 0600).
"""

from __future__ import annotations

import os
import random
import secrets
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from exchange.audit import AUDIT_IDENTITY, Sequencer, SequencerConfig, Witness, read_checkpoints, verify_log
from exchange.audit.witness_http import WitnessHTTPServer, serve_in_thread
from exchange.consent.manager import ConsentManager
from exchange.context import Context
from exchange.crypto.checkpoint import open_checkpoint
from exchange.crypto.cosignature import Cosigner
from exchange.crypto.errors import CryptoError
from exchange.crypto.keys import Signer
from exchange.crypto.note import Verifier
from exchange.demo.bad_records import bad_records
from exchange.demo.tracker import DemoTracker, start_tracker
from exchange.envelope import EnvelopeVerifier, VerificationError
from exchange.kafka import Producer, make_admin, read_to_end
from exchange.kafka.admin import apply_topics, broker_count
from exchange.kafka.local import deploy_dir
from exchange.publisher import Publisher
from exchange.registry import make_demo_keystore
from exchange.router import RouterConfig, RouterThread, build_router
from exchange.runner import ServiceThread
from exchange.schemas.samples import sample_record
from exchange.settings import Settings
from exchange.subscriber import Subscriber
from exchange.topics import discover_inputs, expand, load_spec

__all__ = ["DemoSummary", "run_demo"]

# Which agency publishes what, and how often relative to the others.
PUBLISHERS: dict[str, tuple[str, int]] = {
    "population.person-registered": ("population-registry", 3),
    "population.address-changed": ("population-registry", 4),
    "population.death-registered": ("population-registry", 1),
    "business.company-registered": ("business-register", 2),
    "tax.income-assessed": ("tax-board", 3),
    "health.coverage-changed": ("health-insurance", 2),
    "vehicle.vehicle-registered": ("vehicle-registry", 2),
    "social.benefit-granted": ("social-insurance", 2),
}
CONSENT = {"recipient": "municipal-services", "purpose": "housing-allowance", "type": "tax.income-assessed"}

Say = Callable[[str], None]


@dataclass
class DemoSummary:
    """What the demo did; ``as_dict`` has the keys `exchange demo --json` prints."""

    published: int = 0
    delivered: Counter[str] = field(default_factory=Counter)
    fields: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    denied: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    audit_entries: int = 0
    decisions: int = 0
    all_deliveries_verified: bool = False
    consent_story: list[str] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)
    tracker: dict[str, Any] = field(default_factory=dict)
    namespace: str = ""
    seconds: float = 0.0
    running_tracker: DemoTracker | None = None
    """The data tracker, still serving: the caller stops it."""

    def as_dict(self) -> dict[str, Any]:
        return {"published": self.published, "delivered": dict(self.delivered), "denied": dict(self.denied),
                "quarantined": dict(self.quarantined), "audit_entries": self.audit_entries,
                "decisions": self.decisions, "all_deliveries_verified": self.all_deliveries_verified,
                "fields": self.fields, "consent": self.consent_story, "audit": self.audit,
                "tracker": self.tracker, "namespace": self.namespace,
                "seconds": round(self.seconds, 1)}


def run_demo(bootstrap: str, base: Settings, events: int, workdir: Path, say: Say) -> DemoSummary:
    started = time.monotonic()
    settings = _prepare(bootstrap, base, workdir, say)
    context = Context(settings)
    summary = DemoSummary(namespace=settings.topic_prefix)
    rng = random.Random(2026)  # noqa: S311 - synthetic citizens, not secrets

    router = RouterThread(build_router(RouterConfig(router_id="demo-router", group_id="routers"), settings))
    producer = Producer(settings=settings)
    publishers: dict[str, Publisher] = {}

    def publisher(agency: str) -> Publisher:
        if agency not in publishers:
            publishers[agency] = Publisher.from_keystore(
                agency, context.keystore, registry=context.registry, catalogue=context.catalogue,
                pseudonymiser=context.pseudonymiser, producer=producer, batch_size=64, linger_ms=20)
        return publishers[agency]

    def publish(record_type: str, record: dict[str, Any]) -> str:
        summary.published += 1
        return publisher(PUBLISHERS[record_type][0]).publish(record_type, record)

    def flush_and_wait(expected: int) -> None:
        for p in publishers.values():
            p.flush()
        router.wait_events(expected, timeout=120)

    try:
        say(f"publishing {events} records from {len({a for a, _ in PUBLISHERS.values()})} agencies ...")
        kinds = list(PUBLISHERS)
        weights = [w for _, w in PUBLISHERS.values()]
        for record_type in rng.choices(kinds, weights, k=events):
            publish(record_type, sample_record(record_type, rng))
        flush_and_wait(summary.published)

        person, story = _consent_story(context, rng, publish=publish, flush_and_wait=flush_and_wait, summary=summary,
                               say=say)

        bad = bad_records(context, rng)
        say(f"injecting {len(bad) - 1} bad records: " + ", ".join(b.kind for b in bad if b.reason))
        for record in bad:
            record.produce(producer)
        producer.flush()
        summary.published += 1  # the replayed event's original is a good event
        flush_and_wait(summary.published + len(bad) - 1)
    finally:
        router.stop()

    stats = router.router.stats
    summary.denied = Counter(stats.denied)
    summary.quarantined = Counter(stats.quarantined)
    summary.decisions = stats.audit_entries - sum(stats.quarantined.values())
    entries = [context.catalogue.decode(r.value or b"")[1] for r in read_to_end("audit.decisions", settings=settings)]
    summary.audit_entries = len(entries)
    outcome = {e["event_id"]: e for e in entries if e["recipient"] == CONSENT["recipient"]
               and e["agreement_id"] is not None and e["purpose"] == CONSENT["purpose"]}
    summary.consent_story = [f"{step}: {_verdict(outcome.get(event_id))}" for step, event_id in story]
    say("sequencing the access log and verifying it ...")
    summary.audit, witness_key = _sequence_and_verify(settings, context, summary.audit_entries)
    say("departments reading their deliveries ...")
    summary.all_deliveries_verified = _receive(settings, context, Counter(stats.delivered), summary)
    summary.running_tracker, summary.tracker = _track(settings, context, workdir, person=person,
                                                             story=story, witness_key=witness_key, say=say)
    summary.seconds = time.monotonic() - started
    return summary


def _sequence_and_verify(settings: Settings, context: Context, entries: int) -> tuple[dict[str, Any], str]:
    """Run the sequencer, with the log written as tiles and a witness cosigning every checkpoint, until it has
    published a checkpoint of every entry; then replay and verify the log and check every cosignature. Returns
    the facts and the witness's verifier key."""
    state = Path(settings.audit_state_dir)
    signer = context.keystore.signer(AUDIT_IDENTITY)
    cosigner = Cosigner(Signer.generate("witness.demo/data-protection-authority"))
    witness = Witness(cosigner, {settings.audit_origin: [Verifier(signer.name, signer.public_key)]},
                      state / "witness")
    server = WitnessHTTPServer(("127.0.0.1", 0), witness)
    serving = serve_in_thread(server, poll_interval=0.05)
    config = SequencerConfig(checkpoint_every=100, checkpoint_interval=0.5, max_batch=100, tiles_dir=state / "tiles",
                             witnesses=(server.url,))
    try:
        sequencer = ServiceThread(Sequencer(config, signer, settings=settings), "audit-sequencer")
        try:
            sequencer.wait_for(lambda s: s.signed is not None and s.signed.size >= entries, timeout=120)
        finally:
            sequencer.stop()
    finally:
        server.shutdown()
        serving.join(5)
        server.server_close()
        witness.close()
    report = verify_log(settings, context.registry, catalogue=context.catalogue, reevaluate=True)
    notes = read_checkpoints(settings)
    cosigned = sum(1 for note in notes if _opens(note, cosigner.verifier()))
    return {"entries": report.entries, "checkpoints": report.checkpoints, "verified": report.ok,
            "decisions_reevaluated": report.decisions_reevaluated,
            "witnessed": cosigned == len(notes) > 0,
            "first_error": None if report.first_error is None else str(report.first_error)
            }, cosigner.verifier().key_string()


def _track(settings: Settings, context: Context, workdir: Path, *, person: str, story: list[tuple[str, str]],
           witness_key: str, say: Say) -> tuple[DemoTracker, dict[str, Any]]:
    """Serve the data tracker and check the consent citizen's rows: the delivery during the grant is listed and
    neither denied assessment is."""
    tracker = start_tracker(settings, context, workdir, person, tiles=Path(settings.audit_state_dir) / "tiles",
                            witness_key=witness_key, say=say)
    during = {event_id for step, event_id in story if step == "income assessed with consent"}
    denied = {event_id for step, event_id in story if step != "income assessed with consent"}
    consented = {i["event_id"] for i in tracker.items
                 if (i["receiver_code"], i["purpose"]) == (CONSENT["recipient"], CONSENT["purpose"])}
    return tracker, {**tracker.facts, "token": tracker.token, "shows_the_grant": during <= consented,
                     "hides_the_denials": not denied & consented}


def _opens(note: bytes, verifier: Verifier) -> bool:
    try:
        open_checkpoint(note, [verifier])
    except CryptoError:
        return False
    return True


def _verdict(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "no decision logged"
    if entry["outcome"] == "PERMIT":
        return "delivered"
    return f"denied ({', '.join(entry['reason_codes'])})"


def _prepare(bootstrap: str, base: Settings, workdir: Path, say: Say) -> Settings:
    """Demo keys and registry under ``workdir``, a shared pseudonym secret, and a fresh topic namespace."""
    workdir.mkdir(parents=True, exist_ok=True)
    made = make_demo_keystore(workdir / "keystore", base.registry, workdir / "registry.yaml")
    say(f"keys: {workdir / 'keystore'} ({len(made.created)} new), registry with their public keys: "
        f"{workdir / 'registry.yaml'}")
    secret_file = workdir / "pseudonym.secret"
    if not secret_file.exists():
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    namespace = f"demo-{uuid.uuid4().hex[:6]}."
    settings = base.model_copy(update={
        "bootstrap": bootstrap, "topic_prefix": namespace, "registry": workdir / "registry.yaml",
        "keystore": workdir / "keystore", "pseudonym_secret": SecretStr(secret_file.read_text().strip()),
        "audit_state_dir": workdir / "audit-state" / namespace.rstrip("."),
    })
    admin = make_admin(settings)
    old = [t for t in admin.list_topics(timeout=30).topics if t.startswith("demo-")]
    if old:
        for future in admin.delete_topics(old, operation_timeout=60).values():
            future.result(timeout=60)
        say(f"deleted {len(old)} topics of earlier demo runs")
    inputs = discover_inputs(settings.schemas, settings.registry, settings.policies)
    specs = expand(load_spec(deploy_dir().parent / "topics.yaml"), inputs, broker_count(admin))
    apply_topics(admin, specs, prefix=namespace)
    say(f"topics: {len(specs)} under the namespace {namespace!r}")
    return settings


def _consent_story(context: Context, rng: random.Random, *, publish: Callable[[str, dict[str, Any]], str],
                   flush_and_wait: Callable[[int], None], summary: DemoSummary, say: Say
                   ) -> tuple[str, list[tuple[str, str]]]:
    """One citizen's income assessments: no consent, then a grant, then a revocation mid-run.
    Returns the citizen's person id and ``(step, event id)`` pairs; their outcomes are read back from the access
    log."""
    person = sample_record(CONSENT["type"], rng)["person_id"]
    manager = ConsentManager.connect(context)
    story: list[tuple[str, str]] = []

    def assess(step: str) -> None:
        event_id = publish(CONSENT["type"], sample_record(CONSENT["type"], rng, person_id=person))
        flush_and_wait(summary.published)
        story.append((step, event_id))

    try:
        assess("income assessed without consent")
        artefact = manager.grant(person_id=person, recipient=CONSENT["recipient"], purpose=CONSENT["purpose"],
                                 record_types=[CONSENT["type"]], expiry=datetime.now(UTC) + timedelta(days=365))
        say(f"consent {artefact.consent_id} granted to {CONSENT['recipient']} for {CONSENT['purpose']}")
        assess("income assessed with consent")
        manager.revoke(artefact.consent_id)
        say(f"consent {artefact.consent_id} revoked (acknowledged by the broker)")
        assess("income assessed after revocation")
    finally:
        manager.close()
    return person, story


def _receive(settings: Settings, context: Context, expected: Counter[str], summary: DemoSummary) -> bool:
    """Each department reads and verifies its deliveries; open data is verified as the publisher signed it."""
    verified = True
    fields: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for recipient, count in sorted(expected.items()):
        if recipient == "public":
            verifier = EnvelopeVerifier(context.registry, context.catalogue)
            listed = make_admin(settings).list_topics(timeout=30).topics
            # Only the types with an open-data agreement have a topic: asking for the others would wait for them.
            for topic in sorted(t for t in {f"opendata.{t}" for t in PUBLISHERS}
                                if settings.topic_prefix + t in listed):
                for record in read_to_end(topic, settings=settings):
                    try:
                        event = verifier.verify(record)
                    except VerificationError:
                        verified = False
                        continue
                    summary.delivered[recipient] += 1
                    fields[recipient][event.attributes.type].update(event.record)
            verified &= summary.delivered[recipient] == count
            continue
        with Subscriber(recipient, keystore=context.keystore, registry=context.registry,
                        catalogue=context.catalogue, settings=settings, group_id="department") as subscriber:
            deadline = time.monotonic() + 60
            while summary.delivered[recipient] < count and time.monotonic() < deadline:
                for delivery in subscriber.poll(1000, timeout=0.5):
                    summary.delivered[recipient] += 1
                    fields[recipient][delivery.record_type].update(delivery.fields)
                    if delivery.subject_pseudonym is not None:
                        fields[recipient][delivery.record_type].add("(recipient pseudonym)")
            subscriber.commit()
            verified &= not subscriber.rejected and summary.delivered[recipient] == count
    summary.fields = {r: {t: sorted(f) for t, f in sorted(by_type.items())} for r, by_type in sorted(fields.items())}
    return verified
