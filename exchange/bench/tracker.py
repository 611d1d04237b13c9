"""``exchange bench tracker``: how fast the data tracker indexes the access log, and how fast it answers a citizen.

One run, under a fresh topic namespace:

1. **the log**: the policy bundle published to ``policy.bundles`` as the router publishes it, then ``entries``
   sequenced entries written to ``audit.log`` as the sequencer writes them (one partition; key and
   ``ce_exindex`` = the index; the router's CloudEvents headers; an ``exchange.decision`` value in the
   catalogue's encoding) by a plain producer: PERMIT, DENY and a few REJECT decisions of the real agreements
   about many subjects, and among them one citizen with ``subject_rows`` PERMIT rows spread through the log, some
   of them police lookups that ``pbb-address-changed-law-enforcement`` hides for 180 days;
2. **indexing**: the tracker's :class:`~exchange.tracker.indexer.Indexer` catches the whole log up into a fresh
   SQLite index: entries/s, from the first poll to the last commit;
3. **serving**: the tracker's app, over that index, in a process of its own (uvicorn on a free port, so this
   client's work is not timed with it), answers ``GET /`` (the page) and ``GET /api/v1/usages`` (the API) for the
   citizen with a bearer token, one request after another on a keep-alive connection: pages and offsets spread
   over the citizen's rows, some with a period or an agency filter. The rate limit's burst is set above the
   requests sent, so no answer is a 429. The API's total must be the rows written less the hidden ones.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exchange.audit.names import H_INDEX, LOG_TOPIC
from exchange.bench._world import BenchWorld, apply_bench_topics, bench_settings
from exchange.cli._progress import Progress
from exchange.context import Context
from exchange.envelope import format_time, uuid7
from exchange.envelope.attributes import CONTENT_TYPE, H_ID, H_TIME, ce_headers, dataschema_uri
from exchange.kafka import Producer
from exchange.policy.bundle import PolicyBundle, make_bundle
from exchange.policy.files import load_policies
from exchange.policy.models import Agreement, period_seconds
from exchange.router.entries import ROUTER_SOURCE, router_headers
from exchange.router.service import BUNDLE_TOPIC, BUNDLE_TYPE
from exchange.schemas import RecordSchema
from exchange.schemas.samples import sample_person_id
from exchange.settings import Settings
from exchange.tracker.indexer import Indexer
from exchange.tracker.runtime import log_keys
from exchange.tracker.store import TrackerStore
from exchange.tracker.tokens import IssuerSigningKey, mint_token

__all__ = ["TARGET_ENTRIES_PER_S", "TARGET_P99_MS", "TrackerFigures", "bench_tracker"]

TARGET_ENTRIES_PER_S = 20_000
TARGET_P99_MS = 100.0
DECISION = "exchange.decision"
HIDING = "pbb-address-changed-law-enforcement"
SPAN = timedelta(days=730)
"""The log's entries are spread over the two years before the run."""
SUBJECTS = 100_000
ISSUER, AUDIENCE = "https://id.bench.local", "exchange-tracker"
PAGE_SIZE = 20
WARM_UP = 20


@dataclass(frozen=True)
class TrackerFigures:
    entries: int
    subject_rows: int
    """PERMIT rows about the citizen written to the log, hidden ones included."""
    hidden_rows: int
    """Of those, the ones still hidden from the citizen (police lookups of the last 180 days)."""
    api_total: int
    """The citizen's total as the API answers it: ``subject_rows - hidden_rows``."""
    write_entries_per_s: float
    index_entries_per_s: float
    index_s: float
    requests: int
    """Requests timed per endpoint (after a warm-up of 20)."""
    rate_limit_burst: int
    page_p50_ms: float
    page_p99_ms: float
    page_p999_ms: float | None
    api_p50_ms: float
    api_p99_ms: float
    api_p999_ms: float | None
    target_index_entries_per_s: int
    target_p99_ms: float
    index_target_met: bool
    page_target_met: bool
    api_target_met: bool
    namespace: str
    """The run's topic prefix (its topics are deleted afterwards)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench_tracker(world: BenchWorld, entries: int, subject_rows: int, requests: int) -> TrackerFigures:
    if not 1 <= subject_rows <= entries // 2 or requests < 1:
        raise ValueError("--subject-rows must be from 1 to half the entries, and --requests 1 or more")
    settings = bench_settings(world)
    apply_bench_topics(settings, [])
    bundle = _publish_bundle(world, settings)
    person = sample_person_id(random.Random(3))  # noqa: S311 - synthetic benchmark data
    log = _LogWriter(world, settings, bundle, world.pseudonymiser.subject(person))
    written = log.write(entries, subject_rows)
    database = world.directory / "tracker" / "tracker.sqlite"
    shown, burst = subject_rows - log.hidden, 4 * (requests + WARM_UP) + 100
    try:
        with TrackerStore.open(path=database) as store:
            indexed, index_s = _index(world, settings, store)
        if indexed != entries:
            raise AssertionError(f"the indexer indexed {indexed} of {entries} entries")
        with _Server(world, settings, database, burst) as server:
            token = server.token(person)
            api_total = server.total(token)
            if api_total != shown:
                raise AssertionError(f"the API lists {api_total} rows for the citizen, not the {shown} written "
                                     "and shown")
            pages = server.timed(token, _page_paths(shown, requests, log))
            api = server.timed(token, _api_paths(shown, requests, log))
    finally:
        shutil.rmtree(database.parent, ignore_errors=True)  # half a gigabyte at the full size
    p = {name: (_quantile(found, 0.5), _quantile(found, 0.99), _quantile(found, 0.999) if len(found) >= 1000
                else None) for name, found in (("page", pages), ("api", api))}
    rate = entries / index_s
    return TrackerFigures(
        entries, subject_rows, log.hidden, api_total, round(written), round(rate), round(index_s, 2), requests,
        burst, *p["page"], *p["api"], TARGET_ENTRIES_PER_S, TARGET_P99_MS, rate >= TARGET_ENTRIES_PER_S,
        p["page"][1] <= TARGET_P99_MS, p["api"][1] <= TARGET_P99_MS, settings.topic_prefix)


def _publish_bundle(world: BenchWorld, settings: Settings) -> PolicyBundle:
    """The bundle of the exchange's policies, published as the router publishes the bundle in force."""
    bundle = make_bundle(load_policies(settings.policies), world.registry.canonical())
    producer = Producer(settings=settings)
    producer.produce(BUNDLE_TOPIC, bundle.data, bundle.id.encode(),
                     headers=router_headers(BUNDLE_TYPE, datetime.now(UTC), "application/json"))
    producer.flush(60)
    return bundle


class _LogWriter:
    """Sequenced ``exchange.decision`` entries, each joined from its fields' encodings (an Avro record is their
    concatenation): what an entry shares with others (its agreement's decision, its stream) is encoded once."""

    def __init__(self, world: BenchWorld, settings: Settings, bundle: PolicyBundle, subject: str) -> None:
        self.settings, self.subject = settings, subject.encode()
        self.schema: RecordSchema = world.catalogue.current(DECISION)
        self.now = datetime.now(UTC)
        self.start = self.now - SPAN
        self.hidden = 0
        field = self.schema.encode_field
        agreements = [a for a in bundle.policy_set.agreements if a.delivery == "agency"
                      and not a.legal_basis.is_consent]
        self.hiding = next(a for a in agreements if a.id == HIDING)
        self.period = timedelta(seconds=period_seconds(self.hiding.notify_subject_after or "P0D"))
        self.open = [a for a in agreements if a.notify_subject_after is None]
        self.recipients = sorted({a.recipient for a in self.open})
        self.fixed = field("router_id", "exchange-router-bench")
        self.digest = field("event_digest", bytes(32))
        self._bundle = bundle.id
        self._tails: dict[tuple[str, str], bytes] = {}
        self._streams = {a.record_type: b"".join((
            field("event_type", a.record_type), field("event_source", world.registry.authoritative_agency(
                a.record_type)), field("ingress_topic", f"ingress.{a.record_type}"), field("ingress_partition", 0)))
            for a in agreements}
        spec, _, source, kind, _, schema, content = ce_headers(
            "", ROUTER_SOURCE, DECISION, "", content_type=CONTENT_TYPE,
            dataschema=dataschema_uri(DECISION, self.schema.revision, self.schema.fingerprint))
        self._headers = (spec, source, kind, schema, content)

    def _tail(self, agreement: Agreement | None, outcome: str) -> bytes:
        """The decision's fields, from recipient to fields_released, once per agreement and outcome."""
        key = (agreement.id if agreement else "", outcome)
        found = self._tails.get(key)
        if found is None:
            f = self.schema.encode_field
            a = agreement
            permit = outcome == "PERMIT"
            reasons = {"PERMIT": ["AGREEMENT_PERMITS"], "DENY": ["AGREEMENT_EXPIRED"], "REJECT": ["BAD_SIGNATURE"]}
            found = self._tails[key] = b"".join((
                f("recipient", a.recipient if a else None), f("agreement_id", a.id if a else None),
                f("agreement_version", a.version if a else None), f("bundle_id", self._bundle),
                f("purpose", a.purpose if a else None), f("legal_basis", a.legal_basis.describe() if a else None),
                f("consent_ref", None), f("outcome", outcome), f("reason_codes", reasons[outcome]),
                f("fields_released", list(a.fields) if a and permit else [])))
        return found

    def entry(self, index: int, at: datetime, subject: bytes | None, agreement: Agreement | None,
              outcome: str) -> tuple[bytes, list[tuple[str, bytes]]]:
        f = self.schema.encode_field
        decision_id = uuid7(int(at.timestamp() * 1000))
        event = self._streams[agreement.record_type] if agreement else self._streams[self.open[0].record_type]
        value = b"".join((
            self.schema.header, f("decision_id", decision_id), f("decided_at", at), self.fixed,
            f("event_id", uuid7(int(at.timestamp() * 1000) - 20)), event, f("ingress_offset", index),
            self.digest, f("subject_ref", subject), self._tail(agreement, outcome),
            f("event_time", None if outcome == "REJECT" else at - timedelta(milliseconds=20)),
            f("restrictions_held", []), f("consent_offset", None if outcome == "REJECT" else 0)))
        spec, source, kind, schema, content = self._headers
        number = str(index).encode()
        return value, [spec, (H_ID, decision_id.encode()), source, kind, (H_TIME, format_time(at).encode()), schema,
                       content, (H_INDEX, number)]

    def write(self, entries: int, subject_rows: int) -> float:
        """Write the log; entries/s written."""
        rng = random.Random(17)  # noqa: S311 - synthetic benchmark data
        subjects = [rng.randbytes(16).hex().encode() for _ in range(SUBJECTS)]
        producer = Producer(settings=self.settings, overrides={"linger.ms": 50, "batch.size": 1_000_000})
        progress = Progress("writing audit.log", total=entries)
        step = entries / subject_rows
        mine = 0
        started = time.perf_counter()
        for index in range(entries):
            at = self.start + SPAN * (index / entries)
            if mine < subject_rows and index >= int((mine + 0.5) * step):
                police = mine % 25 == 12
                if police:
                    self.hidden += at + self.period > self.now
                agreement = self.hiding if police else self.open[mine % len(self.open)]
                value, headers = self.entry(index, at, self.subject, agreement, "PERMIT")
                mine += 1
            elif index % 97 == 0:
                value, headers = self.entry(index, at, None, None, "REJECT")
            else:
                draw = rng.random()
                agreement = self.open[rng.randrange(len(self.open))]
                outcome = "PERMIT" if draw < 0.75 else "DENY"
                subject = self.subject if draw > 0.995 else subjects[rng.randrange(SUBJECTS)]
                value, headers = self.entry(index, at, subject, agreement, outcome if subject != self.subject
                                            else "DENY")
            producer.produce(LOG_TOPIC, value, str(index).encode(), headers=headers, partition=0)
            if index % 5000 == 0:
                progress.update(index)
        producer.flush(300)
        progress.update(entries)
        progress.close()
        return entries / (time.perf_counter() - started)


def _index(world: BenchWorld, settings: Settings, store: TrackerStore) -> tuple[int, float]:
    """Catch the whole log up into ``store``: how many entries, in how many seconds."""
    indexer = Indexer(store, settings, world.registry, world.catalogue)
    try:
        progress = Progress("indexing audit.log", total=indexer.remaining())
        started = time.perf_counter()
        indexed = indexer.catch_up(progress.update)
        elapsed = time.perf_counter() - started
        progress.close()
    finally:
        indexer.close()
    return indexed, elapsed


def _page_paths(shown: int, requests: int, log: _LogWriter) -> list[str]:
    """``GET /`` over the citizen's pages: most unfiltered, some for a period or an agency."""
    rng = random.Random(23)  # noqa: S311 - synthetic benchmark data
    pages = max(1, math.ceil(shown / PAGE_SIZE))
    paths = []
    for n in range(requests + WARM_UP):
        kind = n % 10
        if kind < 7:
            paths.append(f"/?page={rng.randint(1, pages)}")
        elif kind < 9:
            first = (log.start + SPAN * rng.random()).date()
            paths.append(f"/?from={first.isoformat()}&to={(first + timedelta(days=90)).isoformat()}"
                         f"&page={rng.randint(1, 3)}")
        else:
            paths.append(f"/?agency={rng.choice(log.recipients)}&page={rng.randint(1, 5)}")
    return paths


def _api_paths(shown: int, requests: int, log: _LogWriter) -> list[str]:
    """``GET /api/v1/usages`` at offsets spread over the citizen's rows; some for a period or an agency."""
    rng = random.Random(29)  # noqa: S311 - synthetic benchmark data
    paths = []
    for n in range(requests + WARM_UP):
        kind = n % 10
        if kind < 7:
            paths.append(f"/api/v1/usages?offset={rng.randrange(max(1, shown - PAGE_SIZE))}&limit={PAGE_SIZE}")
        elif kind < 9:
            first = log.start + SPAN * rng.random()
            paths.append(f"/api/v1/usages?period_start={first.date().isoformat()}"
                         f"&period_end={(first + timedelta(days=90)).date().isoformat()}&offset={rng.randrange(40)}")
        else:
            paths.append(f"/api/v1/usages?agency={rng.choice(log.recipients)}&offset={rng.randrange(100)}&limit=50")
    return paths


class _Server:
    """The tracker's app over the index, served by uvicorn in a child process (``python -m`` this module)."""

    def __init__(self, world: BenchWorld, settings: Settings, database: Path, burst: int) -> None:
        self._key = IssuerSigningKey.generate("EdDSA")
        config = {"database": str(database), "issuer": ISSUER, "audience": AUDIENCE,
                  "jwk": self._key.issuer_key.to_jwk(), "secret": "benchmark-pseudonym-secret-0001",
                  "origin": settings.audit_origin, "log_key": log_keys(Context(settings))[0],
                  "agencies": {a.id: a.legal_name for a in world.registry.agencies}, "burst": burst}
        env = {**os.environ, "EXCHANGE_LOG_LEVEL": "WARNING"}
        self._process = subprocess.Popen([sys.executable, "-m", "exchange.bench.tracker"], env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        stdin, stdout = self._process.stdin, self._process.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("the tracker server's pipes were not opened")
        stdin.write(json.dumps(config))
        stdin.close()
        line = stdout.readline()  # the port, once the socket listens
        if not line.strip().isdigit():
            self._process.wait(30)
            raise RuntimeError(f"the tracker server did not start (exit {self._process.returncode})")
        self._connection = http.client.HTTPConnection("127.0.0.1", int(line), timeout=60)

    def __enter__(self) -> _Server:
        return self

    def __exit__(self, *_: object) -> None:
        self._connection.close()
        self._process.terminate()
        self._process.wait(timeout=30)

    def token(self, person: str) -> str:
        return mint_token(self._key, ISSUER, person, AUDIENCE, 3600)

    def get(self, token: str, path: str) -> tuple[float, bytes]:
        """Seconds from sending the request to having read the whole answer, and the answer."""
        started = time.perf_counter()
        self._connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        answer = self._connection.getresponse()
        body = answer.read()
        elapsed = time.perf_counter() - started
        if answer.status != 200:
            raise RuntimeError(f"the tracker answered {answer.status} to {path}: {body[:300]!r}")
        return elapsed, body

    def total(self, token: str) -> int:
        return int(json.loads(self.get(token, "/api/v1/usages?limit=1")[1])["total"])

    def timed(self, token: str, paths: list[str]) -> list[float]:
        """Milliseconds of each request after the warm-up."""
        progress = Progress(f"requesting {paths[0].split('?')[0]}", total=len(paths), unit="requests")
        out = []
        for n, path in enumerate(paths):
            elapsed, _ = self.get(token, path)
            if n >= WARM_UP:
                out.append(elapsed * 1000)
            progress.update(n + 1)
        progress.close()
        return out


def _quantile(found: list[float], q: float) -> float:
    """The nearest-rank quantile, in ms to two decimals."""
    ordered = sorted(found)
    return round(ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))], 2)


def _serve(config: dict[str, Any], announce: Callable[[int], None]) -> None:
    """The child: the tracker's app over the index on a free port, until SIGTERM."""
    import uvicorn  # noqa: PLC0415 - only the server process needs it

    from exchange.envelope.pseudonym import Pseudonymiser  # noqa: PLC0415 - as above
    from exchange.log import configure_logging  # noqa: PLC0415 - as above
    from exchange.tracker.pages import KeysShown  # noqa: PLC0415 - as above
    from exchange.tracker.service import TrackerConfig, make_app  # noqa: PLC0415 - as above
    from exchange.tracker.tokens import IssuerKey, TokenVerifier  # noqa: PLC0415 - as above

    configure_logging(level="WARNING")  # no line per request: the figures are the app's, not its log's
    store = TrackerStore.open(path=Path(config["database"]))
    verifier = TokenVerifier(config["issuer"], [IssuerKey.from_jwk(config["jwk"])], config["audience"])
    keys = KeysShown(config["origin"], config["log_key"])
    app = make_app(store, verifier, Pseudonymiser(config["secret"].encode()), config["agencies"],
                   TrackerConfig(keys=keys, page_size=PAGE_SIZE, burst=config["burst"]))
    # IPPROTO_TCP named, as getaddrinfo's sockets have it: asyncio sets TCP_NODELAY only on such sockets, and
    # without it a keep-alive answer written in two parts waits for the client's delayed ACK (40 ms).
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listening.bind(("127.0.0.1", 0))
    listening.listen(128)
    announce(int(listening.getsockname()[1]))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, server_header=False))
    try:
        server.run(sockets=[listening])
    finally:
        store.close()


if __name__ == "__main__":
    def _announce(port: int) -> None:
        print(port, flush=True)
        # Nothing else goes down the pipe, which the parent no longer reads (a full pipe would stall the server).
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, sys.stdout.fileno())
        os.close(quiet)

    _serve(json.loads(sys.stdin.read()), _announce)
