"""The consent manager and the router's consent view against the real broker, on throw-away consent topics."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from confluent_kafka.admin import AdminClient, NewTopic

from exchange.cli._app import main
from exchange.consent import (
    ConsentDeliveryError,
    ConsentManager,
    ConsentRequestError,
    ConsentSyncError,
    ConsentView,
    SkipReason,
    encode_artefact,
    sign_artefact,
)
from exchange.crypto.keys import Signer
from exchange.kafka import ConsumedRecord, Consumer, Producer, TransactionalProducer
from exchange.policy import ConsentArtefact, ConsentStatus, PolicyIndex
from exchange.policy import reasons as r
from exchange.registry import Keystore, Registry
from exchange.schemas import Catalogue
from tests.unit.consent.support import (
    PERSON,
    PSEUDONYMISER,
    PURPOSE,
    RECIPIENT,
    SUBJECT,
    TYPE,
    compile_shipped,
    load_catalogue,
    make_registry,
    registry_document,
)

PARTITIONS = 6
ALL = range(PARTITIONS)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate("exchange-consent")


@pytest.fixture(scope="module")
def registry(signer: Signer) -> Registry:
    return make_registry(signer)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="module")
def policies(catalogue: Catalogue, registry: Registry) -> PolicyIndex:
    return compile_shipped(catalogue, registry)


@pytest.fixture
def topic(make_topic: Callable[..., str], unique: str) -> str:
    return make_topic(f"consent.events.{unique}", PARTITIONS)


@pytest.fixture
def new_view(bootstrap: str, catalogue: Catalogue, registry: Registry,
             topic: str) -> Iterator[Callable[[], ConsentView]]:
    views: list[ConsentView] = []

    def make() -> ConsentView:
        views.append(ConsentView(catalogue, registry, topic=topic, bootstrap=bootstrap))
        return views[-1]

    yield make
    for view in views:
        view.close()


@pytest.fixture
def manager(bootstrap: str, signer: Signer, registry: Registry, catalogue: Catalogue, policies: PolicyIndex,
            topic: str, new_view: Callable[[], ConsentView]) -> Iterator[ConsentManager]:
    with ConsentManager(signer=signer, registry=registry, catalogue=catalogue, policies=policies,
                        producer=Producer(bootstrap=bootstrap), reader=new_view(), pseudonymiser=PSEUDONYMISER,
                        topic=topic) as built:
        yield built


def _grant(manager: ConsentManager, fields: list[str] | None = None) -> ConsentArtefact:
    return manager.grant(person_id=PERSON, recipient=RECIPIENT, purpose=PURPOSE, record_types=[TYPE],
                         expiry=datetime.now(UTC) + timedelta(days=30), fields=fields)


def _decision(view: ConsentView) -> tuple[bool, str | None]:
    decision = view.lookup(SUBJECT, RECIPIENT, PURPOSE, TYPE, datetime.now(UTC))
    return decision.granted, decision.reason


def test_grant_then_sync_grants(manager: ConsentManager, new_view: Callable[[], ConsentView]) -> None:
    """An acknowledged grant is in force in a view after its next sync, and nowhere before."""
    view = new_view()
    assert view.sync(ALL) == 0
    granted = _grant(manager, fields=["taxable_income_cents"])
    assert (granted.version, granted.status) == (1, ConsentStatus.ACTIVE)
    assert _decision(view) == (False, r.NO_CONSENT)
    assert view.sync(ALL) == 1
    decision = view.lookup(SUBJECT, RECIPIENT, PURPOSE, TYPE, datetime.now(UTC))
    assert decision.granted
    assert decision.reference is not None
    assert decision.reference.consent_id == granted.consent_id
    assert decision.fields == frozenset({"taxable_income_cents"})
    assert view.sync(ALL) == 0  # nothing new: only the watermark queries


def test_revoke_is_enforced_by_the_next_sync(manager: ConsentManager, new_view: Callable[[], ConsentView]) -> None:
    """A revocation acknowledged before a sync starts is in force when the sync returns."""
    view = new_view()
    granted = _grant(manager)
    view.sync(ALL)
    assert _decision(view) == (True, None)
    revoked = manager.revoke(granted.consent_id)
    assert (revoked.version, revoked.status) == (2, ConsentStatus.REVOKED)
    view.sync(ALL)
    assert _decision(view) == (False, r.CONSENT_REVOKED)
    with pytest.raises(ConsentRequestError, match="already revoked"):
        manager.revoke(granted.consent_id)
    with pytest.raises(ConsentRequestError, match="only a PAUSED one resumes"):
        manager.resume(granted.consent_id)


def test_pause_and_resume(manager: ConsentManager, new_view: Callable[[], ConsentView]) -> None:
    """Pausing denies with CONSENT_PAUSED, resuming grants again; versions count up."""
    view = new_view()
    granted = _grant(manager)
    paused = manager.pause(granted.consent_id)
    view.sync(ALL)
    assert (paused.version, _decision(view)) == (2, (False, r.CONSENT_PAUSED))
    with pytest.raises(ConsentRequestError, match="only an ACTIVE one pauses"):
        manager.pause(granted.consent_id)
    resumed = manager.resume(granted.consent_id)
    view.sync(ALL)
    assert (resumed.version, _decision(view)) == (3, (True, None))
    assert manager.current(granted.consent_id) == resumed


def test_barrier_on_a_partition_never_seen(manager: ConsentManager, new_view: Callable[[], ConsentView]) -> None:
    """A view that has never read the partition reads it from 0 and enforces the acknowledged revocation."""
    granted = _grant(manager)
    manager.revoke(granted.consent_id)
    view = new_view()
    assert view.partitions == frozenset()
    assert view.sync(ALL) == 2
    assert _decision(view) == (False, r.CONSENT_REVOKED)
    home = next(p for p, position in view.positions.items() if position > 0)  # this topic holds one subject
    fresh = new_view()
    assert fresh.sync([home]) == 2  # the subject's own partition alone is enough
    assert _decision(fresh) == (False, r.CONSENT_REVOKED)


def test_bad_signature_is_skipped_and_counted(bootstrap: str, manager: ConsentManager, catalogue: Catalogue,
                                              topic: str, new_view: Callable[[], ConsentView]) -> None:
    """A forged revocation and a grant signed by an unregistered key are skipped, counted, never applied."""
    granted = _grant(manager)
    forged = granted.model_copy(update={"version": 2, "status": ConsentStatus.REVOKED})  # keeps v1's signature
    stranger = sign_artefact(granted.model_copy(update={"consent_id": "forged-grant", "signature": None,
                                                        "purpose": "social-services"}),
                             Signer.generate("exchange-consent"))
    producer = Producer(bootstrap=bootstrap)
    for artefact in (forged, stranger):
        message = encode_artefact(catalogue, artefact)
        producer.produce(topic, message.value, key=message.key, headers=message.headers)
    producer.flush()
    view = new_view()
    assert view.sync(ALL) == 3
    assert view.stats.skipped == {SkipReason.BAD_SIGNATURE: 2}
    assert view.stats.applied == 1
    assert _decision(view) == (True, None)
    assert view.get("forged-grant") is None


def test_partition_ending_in_a_transaction_marker_is_read_to_its_end(
        bootstrap: str, signer: Signer, catalogue: Catalogue, topic: str, unique: str,
        new_view: Callable[[], ConsentView]) -> None:
    """Records written in a transaction leave a commit marker at the end; the barrier still completes."""
    granted = sign_artefact(ConsentArtefact.model_validate({
        "consent_id": f"txn-{unique}", "version": 1, "subject": SUBJECT, "recipient": RECIPIENT,
        "purpose": PURPOSE, "record_types": (TYPE,), "status": ConsentStatus.ACTIVE,
        "start": datetime.now(UTC) - timedelta(days=1), "expiry": datetime.now(UTC) + timedelta(days=1),
        "issued_at": datetime.now(UTC),
    }), signer)
    message = encode_artefact(catalogue, granted)
    txn = TransactionalProducer(f"consent-txn-{unique}", bootstrap=bootstrap)
    txn.begin()
    txn.produce(topic, message.value, key=message.key, headers=message.headers)
    txn.commit()
    # Kafka writes the commit markers after commit_transaction returns; until they land, the committed record
    # lies beyond a read_committed reader's end offset. Wait for that, as any reader must.
    with Consumer(f"lso-{unique}", bootstrap=bootstrap) as probe:
        deadline = time.monotonic() + 30
        while sum(probe.end_offsets([(topic, p) for p in ALL]).values()) < 2:
            assert time.monotonic() < deadline, "the transaction's commit never became visible"
            time.sleep(0.05)  # polling the broker's last stable offsets; the condition is checked above
    view = new_view()
    assert view.sync(ALL, timeout=10.0) == 1
    assert _decision(view) == (True, None)
    assert sum(view.positions.values()) == 2  # the record and the marker after it


def test_release_forgets_and_resync_reads_again(manager: ConsentManager, new_view: Callable[[], ConsentView]) -> None:
    """Released partitions look up as no consent; syncing them again reads them from the start."""
    _grant(manager)
    view = new_view()
    view.sync(ALL)
    view.release(ALL)
    assert view.partitions == frozenset()
    assert _decision(view) == (False, r.NO_CONSENT)
    assert view.sync(ALL) == 1
    assert _decision(view) == (True, None)


def test_sync_of_a_partition_the_topic_lacks_fails_closed(new_view: Callable[[], ConsentView]) -> None:
    """A partition the consent topic does not have (broken co-partitioning) raises instead of passing."""
    view = new_view()
    with pytest.raises(ConsentSyncError):
        view.sync([PARTITIONS + 3], timeout=5.0)
    assert view.partitions == frozenset()


def test_refused_record_raises_a_typed_error(bootstrap: str, signer: Signer, registry: Registry,
                                             catalogue: Catalogue, policies: PolicyIndex, unique: str) -> None:
    """A record the broker refuses (here: larger than the topic allows) makes grant raise ConsentDeliveryError."""
    name = f"consent.tiny.{unique}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1,
                                  config={"max.message.bytes": "50"})])[name].result(timeout=30)
    try:
        reader = ConsentView(catalogue, registry, topic=name, bootstrap=bootstrap)
        with ConsentManager(signer=signer, registry=registry, catalogue=catalogue, policies=policies,
                            producer=Producer(bootstrap=bootstrap), reader=reader, pseudonymiser=PSEUDONYMISER,
                            topic=name) as manager, pytest.raises(ConsentDeliveryError, match="not acknowledged"):
            _grant(manager)
    finally:
        admin.delete_topics([name], operation_timeout=30)[name].result(timeout=30)


def test_cli_grant_list_pause_resume_revoke(bootstrap: str, tmp_path: Path, topic: str,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The commands grant, list and change a consent; the person id never reaches the topic."""
    keystore = Keystore(tmp_path / "keystore")
    keystore.create_identity("exchange-consent")
    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text(yaml.safe_dump(registry_document(keystore.signer("exchange-consent"))))
    monkeypatch.setenv("EXCHANGE_BOOTSTRAP", bootstrap)
    monkeypatch.setenv("EXCHANGE_KEYSTORE", str(keystore.path))
    monkeypatch.setenv("EXCHANGE_REGISTRY", str(registry_file))
    monkeypatch.setenv("EXCHANGE_PSEUDONYM_SECRET", "consent-cli-test-secret-0123456789")

    def run(*argv: str) -> str:
        capsys.readouterr()
        code = main(["consent", *argv, "--topic", topic])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    granted = run("grant", "--person", PERSON, "--recipient", RECIPIENT, "--purpose", PURPOSE, "--type", TYPE,
                  "--field", "taxable_income_cents", "tax_year", "--days", "30").split()
    consent_id = granted[0]
    assert granted[1:] == ["version", "1", "ACTIVE"]
    assert run("pause", consent_id).split()[1:] == ["version", "2", "PAUSED"]
    listed = [json.loads(line) for line in run("list", "--person", PERSON, "--json").splitlines()]
    assert [(c["consent_id"], c["version"], c["status"]) for c in listed] == [(consent_id, 2, "PAUSED")]
    assert listed[0]["fields"] == ["taxable_income_cents", "tax_year"]
    assert run("resume", consent_id).split()[1:] == ["version", "3", "ACTIVE"]
    assert run("revoke", consent_id).split()[1:] == ["version", "4", "REVOKED"]
    table = run("list", "--person", PERSON)
    assert consent_id in table
    assert "REVOKED" in table
    assert PERSON not in table
    assert run("list", "--person", "49002020019").strip() == "no consents"

    capsys.readouterr()
    assert main(["consent", "grant", "--person", PERSON, "--recipient", RECIPIENT, "--purpose", "marketing",
                 "--type", TYPE, "--topic", topic]) == 2
    assert "no consent-based agreement" in capsys.readouterr().err

    with Consumer(f"check.{topic}", bootstrap=bootstrap) as consumer:
        consumer.assign([(topic, p, 0) for p in ALL])
        records: list[ConsumedRecord] = []
        while len(records) < 4:
            batch = consumer.poll_batch(4 - len(records), timeout=5.0)  # returns once that many arrived
            assert batch, "the consent records did not come back within 5 s"
            records.extend(batch)
    for record in records:
        wire = (record.key or b"") + (record.value or b"") + b"".join(v for _, v in record.headers)
        assert PERSON.encode() not in wire
