"""``exchange bench connectors``: the files source against the bare Publisher, and the webhook source's requests/s
and latency.

All runs happen under a fresh topic prefix:

1. **publisher** baseline: the same records published with a bare ``Publisher`` (batches of 64, one flush);
2. **files**: the records as a JSON-lines file in a drop folder, read by the files source through the source
   runtime (one Kafka transaction per batch, with the offset) until idle;
3. **webhook**: ``exchange connector run http-webhook`` in a process of its own; ``clients`` threads POST records
   (each answered 202 only once durable) as fast as it answers: requests/s;
4. **webhook latency**: at half that rate, paced, one request after another: p50 and p99 from sending a POST to
   its 202.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from exchange.bench._world import BenchWorld, apply_bench_topics, bench_settings
from exchange.kafka import Producer
from exchange.kafka.local import free_port
from exchange.publisher import Publisher
from exchange.schemas.samples import sample_record
from exchange.settings import Settings

__all__ = ["ConnectorFigures", "bench_connectors"]

RECORD_TYPE = "population.address-changed"
AGENCY = "population-registry"


@dataclass(frozen=True)
class ConnectorFigures:
    records: int
    files_per_s: float
    publisher_per_s: float
    ratio: float
    webhook_requests: int
    webhook_per_s: float
    webhook_latency_rate: float
    webhook_latency_ms_p50: float
    webhook_latency_ms_p99: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench_connectors(world: BenchWorld, records: int, requests: int, clients: int = 16) -> ConnectorFigures:
    rng = random.Random(5)  # noqa: S311 - synthetic benchmark data
    values = [sample_record(RECORD_TYPE, rng) for _ in range(records)]
    settings = bench_settings(world)
    apply_bench_topics(settings, [])
    publisher = _publisher_rate(world, settings, values)
    files = _files_rate(world, settings, values)
    rate, latencies = _webhook(world, settings, [sample_record(RECORD_TYPE, rng) for _ in range(requests)], clients)
    ordered = sorted(latencies)
    return ConnectorFigures(records, round(files), round(publisher), round(files / publisher, 3), requests,
                            round(rate), round(rate / 2), round(_quantile(ordered, 0.5), 2),
                            round(_quantile(ordered, 0.99), 2))


def _publisher_rate(world: BenchWorld, settings: Settings, values: list[dict[str, Any]]) -> float:
    producer = Producer(settings=settings)
    publisher = Publisher.from_keystore(AGENCY, world.keystore, registry=world.registry, catalogue=world.catalogue,
                                        pseudonymiser=world.pseudonymiser, producer=producer, batch_size=64)
    publisher.publish(RECORD_TYPE, values[0])  # connected and warm before the clock starts
    publisher.flush(60)
    started = time.perf_counter()
    for record in values:
        publisher.publish(RECORD_TYPE, record)
    publisher.flush(120)
    return len(values) / (time.perf_counter() - started)


def _files_rate(world: BenchWorld, settings: Settings, values: list[dict[str, Any]]) -> float:
    from connectors.files import FilesSourceConfig, build  # noqa: PLC0415 - connectors are optional here
    from connectors.sdk.source_runtime import SourceRunner  # noqa: PLC0415 - as above

    folder = Path(tempfile.mkdtemp(prefix="exchange-bench-files-"))
    with (folder / "register.jsonl").open("w", encoding="utf-8") as out:
        for record in values:
            out.write(json.dumps(record, default=str) + "\n")
    config = FilesSourceConfig(name="bench-files", kind="files", agency=AGENCY, record_type=RECORD_TYPE,
                               directory=folder, format="jsonl", max_batch=5000)
    runner = SourceRunner(build(config), config, agency=AGENCY, settings=settings)
    started = time.perf_counter()
    stats = runner.run(max_idle_s=0.5)
    elapsed = time.perf_counter() - started - 0.5  # less the idle wait that ends the run
    if stats.records != len(values):
        raise AssertionError(f"the files source published {stats.records} of {len(values)} records "
                             f"({stats.dead_letters} dead letters)")
    return len(values) / max(elapsed, 1e-9)


def _webhook(world: BenchWorld, settings: Settings, values: list[dict[str, Any]],
             clients: int) -> tuple[float, list[float]]:
    token = secrets.token_urlsafe(24)
    server, port = _start_webhook(world, settings, token)
    try:
        post = _poster(port, token)
        post(values[0])  # warm: metadata fetched, publisher thread running
        half = len(values) // 2
        rate = _throughput(post, values[1:half], clients)
        latencies = _paced(post, values[half:], rate / 2)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return rate, latencies


def _start_webhook(world: BenchWorld, settings: Settings, token: str) -> tuple[subprocess.Popen[bytes], int]:
    directory = Path(tempfile.mkdtemp(prefix="exchange-bench-webhook-"))
    port = free_port()
    config = directory / "webhook.yaml"
    config.write_text(json.dumps({
        "name": "bench-webhook", "kind": "http-webhook", "agency": AGENCY, "port": port,
        "token_sha256": hashlib.sha256(token.encode()).hexdigest(), "record_types": [RECORD_TYPE],
        "idempotency_db": str(directory / "idempotency.sqlite3")}), encoding="utf-8")
    env = {**os.environ, "EXCHANGE_BOOTSTRAP": settings.bootstrap or "", "EXCHANGE_TOPIC_PREFIX": settings.topic_prefix,
           "EXCHANGE_REGISTRY": str(settings.registry), "EXCHANGE_KEYSTORE": str(settings.keystore),
           "EXCHANGE_PSEUDONYM_SECRET": "benchmark-pseudonym-secret-0001", "EXCHANGE_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(  # noqa: S603 - this interpreter running the project's own command
        [sys.executable, "-m", "exchange", "connector", "run", "http-webhook", "--config", str(config)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return server, port
        except OSError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"the webhook source exited with {server.returncode}")
        time.sleep(0.1)  # the server is starting: asked again until it answers
    server.terminate()
    raise TimeoutError("the webhook source did not answer /health within 60 s")


def _poster(port: int, token: str) -> Callable[[dict[str, Any]], float]:
    """A function POSTing one record on this thread's keep-alive connection; returns seconds to its 202."""
    local = threading.local()

    def post(record: dict[str, Any]) -> float:
        body = json.dumps(record, default=str).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                   "Idempotency-Key": secrets.token_hex(16)}
        for attempt in range(2):
            connection = getattr(local, "connection", None)
            if connection is None:
                connection = local.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            started = time.perf_counter()
            try:
                connection.request("POST", f"/records/{RECORD_TYPE}", body=body, headers=headers)
                answer = connection.getresponse()
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                # The server closed a connection left idle past its keep-alive timeout (the warm-up's, while
                # the other threads measured): a new one, the same request and Idempotency-Key.
                connection.close()
                local.connection = None
                if attempt:
                    raise
                continue
            answer.read()
            if answer.status != 202:
                raise RuntimeError(f"the webhook answered {answer.status}")
            return time.perf_counter() - started
        raise AssertionError("unreachable: the second attempt returns or raises")

    return post


def _throughput(post: Callable[[dict[str, Any]], float], values: list[dict[str, Any]], clients: int) -> float:
    chunks = [values[i::clients] for i in range(clients)]
    threads = [threading.Thread(target=lambda chunk=chunk: [post(v) for v in chunk]) for chunk in chunks]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(values) / (time.perf_counter() - started)


def _paced(post: Callable[[dict[str, Any]], float], values: list[dict[str, Any]], rate: float) -> list[float]:
    """Latencies (ms) of requests sent at ``rate``/s, each on schedule (a late one is sent at once)."""
    interval = 1 / max(rate, 1.0)
    started = time.perf_counter()
    latencies = []
    for n, record in enumerate(values):
        delay = started + n * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the load generator, not waiting for a condition
        latencies.append(post(record) * 1000)
    return latencies


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

