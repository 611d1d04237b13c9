"""The local three-node cluster as a fault test uses it: `exchange broker up --nodes 3`, status, logs, kill, topics
on a whole and on a degraded cluster, a node restarted, down; and pattern subscribers on it.

The module starts its own cluster (in a directory of its own, beside any single-node broker) and stops it at the
end, also when a test fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from exchange.kafka.admin import apply_topics, broker_count
from exchange.kafka.clients import Consumer, Producer
from exchange.kafka.cluster import registered_brokers
from exchange.kafka.local import _alive
from exchange.router.model import INGRESS_PATTERN
from exchange.router.service import METADATA_REFRESH_MS
from exchange.settings import Settings
from exchange.topics import TopicSpec

EXCHANGE = shutil.which("exchange") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "exchange")
SEEN_WITHIN_S = 10.0


@dataclass
class Cluster:
    env: dict[str, str]
    bootstrap: str
    schemas: Path

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return _run({**self.env, **env}, *args)

    def apply(self, prefix: str, action: str = "apply") -> subprocess.CompletedProcess[str]:
        """`exchange topics apply` of a small spec (one record type, no recipients) under ``prefix``."""
        return self.run("topics", action, "--schemas", str(self.schemas), "--registry", "/nonexistent",
                        "--policies", "/nonexistent", EXCHANGE_BOOTSTRAP=self.bootstrap, EXCHANGE_TOPIC_PREFIX=prefix)

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXCHANGE, *args], env=env, capture_output=True, text=True, timeout=240, check=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("cluster")
    env = {k: v for k, v in os.environ.items()
           if k not in {"EXCHANGE_BOOTSTRAP", "EXCHANGE_TOPIC_PREFIX", "EXCHANGE_REPLICATION_FACTOR"}}
    env["EXCHANGE_CLUSTER_DIR"] = str(home / "nodes")
    schemas = home / "schemas"
    (schemas / "test" / "thing").mkdir(parents=True)
    (schemas / "test" / "thing" / "0001.avsc").write_text("{}")
    try:
        up = _run(env, "broker", "up", "--nodes", "3")
        assert up.returncode == 0, up.stderr
        yield Cluster(env, up.stdout.strip(), schemas)
    finally:
        down = _run(env, "broker", "down", "--cluster", "--purge")
        assert down.returncode == 0, down.stderr


def _topics(cluster: Cluster, prefix: str) -> dict[str, list[int]]:
    """The topics under ``prefix`` with each one's replica count per partition."""
    listed = cluster.admin().list_topics(timeout=10).topics
    return {name: [len(p.replicas) for p in topic.partitions.values()]
            for name, topic in listed.items() if name.startswith(prefix)}


def _await_unlisted(cluster: Cluster, node: int, timeout: float = 30.0) -> None:
    """Wait until the cluster no longer lists ``node`` among its live brokers (the controller has fenced it)."""
    deadline = time.monotonic() + timeout
    while node in (registered_brokers(cluster.bootstrap) or {node}):
        assert time.monotonic() < deadline, f"node {node} is still listed {timeout:.0f}s after it was killed"
        time.sleep(0.2)  # polling the cluster's broker list; the condition is checked above


def test_up_prints_three_registered_bootstrap_addresses(cluster: Cluster) -> None:
    """up printed three addresses, all registered; a second up reuses the nodes; each node has its own log."""
    addresses = cluster.bootstrap.split(",")
    assert len(addresses) == 3
    assert all(re.fullmatch(r"127\.0\.0\.1:\d+", a) for a in addresses)
    admin = cluster.admin()
    described = admin.describe_cluster(request_timeout=10).result(timeout=15)
    assert sorted(f"{n.host}:{n.port}" for n in described.nodes) == sorted(addresses)
    assert {n.id for n in described.nodes} == {1, 2, 3}
    for address in addresses:  # every node answers on its own
        assert registered_brokers(address) == {1, 2, 3}

    again = cluster.run("broker", "up", "--nodes", "3")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == cluster.bootstrap
    assert "already running" in again.stderr

    status = cluster.run("broker", "status", "--cluster")
    assert status.returncode == 0, status.stdout
    assert "3 of 3 running and registered" in status.stdout
    assert "Kafka Server started" in cluster.run("broker", "logs", "--node", "2", "-n", "5000").stdout


def test_topics_apply_replicates_three_times_with_min_isr_two(cluster: Cluster) -> None:
    """On the whole cluster, topics get 3 replicas and min.insync.replicas 2; so do the offsets and transaction
    state topics, as the brokers are configured."""
    prefix = f"whole-{uuid.uuid4().hex[:6]}."
    applied = cluster.apply(prefix)
    assert applied.returncode == 0, applied.stderr
    created = _topics(cluster, prefix)
    assert len(created) == 9
    assert {n for counts in created.values() for n in counts} == {3}
    admin = cluster.admin()
    topic = ConfigResource(ResourceType.TOPIC, f"{prefix}ingress.test.thing")
    assert admin.describe_configs([topic])[topic].result(timeout=15)["min.insync.replicas"].value == "2"
    broker = ConfigResource(ResourceType.BROKER, "1")
    configs = admin.describe_configs([broker])[broker].result(timeout=15)
    internal = {"offsets.topic.replication.factor": "3", "transaction.state.log.replication.factor": "3",
                "transaction.state.log.min.isr": "2", "default.replication.factor": "3", "min.insync.replicas": "2"}
    assert {key: configs[key].value for key in internal} == internal


def test_pattern_subscribers_see_a_new_ingress_topic_within_seconds(cluster: Cluster) -> None:
    """A consumer subscribed to ``^ingress\\..*`` (built with the pattern, or built first and subscribed later
    the way the router is) reads a record of an ingress topic created after it subscribed within seconds, not
    after librdkafka's default five-minute metadata refresh."""
    prefix = f"pattern-{uuid.uuid4().hex[:6]}."
    settings = Settings(bootstrap=cluster.bootstrap, topic_prefix=prefix)
    admin = cluster.admin()

    def create(record_type: str) -> None:
        spec = TopicSpec(f"ingress.{record_type}", 6, 3, {"min.insync.replicas": "2"})
        assert [c.action for c in apply_topics(admin, [spec], prefix=prefix)] == ["create"]

    built_with = Consumer("with-pattern", [INGRESS_PATTERN], settings=settings)
    like_router = Consumer("like-router", settings=settings,
                           overrides={"topic.metadata.refresh.interval.ms": METADATA_REFRESH_MS})
    like_router.subscribe([INGRESS_PATTERN])
    producer = Producer(settings=settings)
    try:
        # A first topic proves both subscriptions are in force: each consumer is assigned its partitions.
        create("test.first")
        deadline = time.monotonic() + 60
        for consumer in (built_with, like_router):
            while not consumer.assignment():
                assert time.monotonic() < deadline, "the pattern consumers were never assigned the first topic"
                consumer.poll_batch(100, timeout=0.2)
        create("test.later")
        created = time.monotonic()
        producer.produce("ingress.test.later", b"hello", key=b"k")
        producer.flush(10)
        for consumer in (built_with, like_router):
            got: list[str] = []
            while "ingress.test.later" not in got:
                assert time.monotonic() - created < SEEN_WITHIN_S, \
                    f"no record of a new ingress topic within {SEEN_WITHIN_S:.0f}s"
                got.extend(r.topic for r in consumer.poll_batch(100, timeout=0.2))
    finally:
        built_with.close()
        like_router.close()


def test_a_killed_node_is_down_and_topics_are_not_weakened(cluster: Cluster) -> None:
    """After kill --node 2, status reports the node down; topics apply still plans 3 replicas and refuses to
    create topics the two live brokers cannot hold (nothing is created), plan warns, and topics that exist are
    aligned with a warning."""
    existing = f"before-{uuid.uuid4().hex[:6]}."
    assert cluster.apply(existing).returncode == 0
    killed = cluster.run("broker", "kill", "--node", "2")
    assert killed.returncode == 0, killed.stderr
    assert killed.stdout.startswith("sent SIGKILL to node 2")

    status = cluster.run("broker", "status", "--cluster")
    assert status.returncode == 1
    assert re.search(r"^node 2 .* no process +down", status.stdout, re.M), status.stdout
    assert re.search(r"^node 1 .* running, registered", status.stdout, re.M), status.stdout

    _await_unlisted(cluster, 2)
    assert broker_count(cluster.admin(), replication_factor=None) == 3
    fresh = f"degraded-{uuid.uuid4().hex[:6]}."
    refused = cluster.apply(fresh)
    assert refused.returncode != 0
    assert "the cluster is degraded: 2 of 3 brokers alive (down: 2)" in refused.stderr
    assert "need 3 replicas; they are not created with fewer" in refused.stderr
    assert _topics(cluster, fresh) == {}

    planned = cluster.apply(fresh, "plan")
    assert planned.returncode == 0, planned.stderr
    assert "apply would refuse" in planned.stderr
    assert "would create" in planned.stdout

    aligned = cluster.apply(existing)
    assert aligned.returncode == 0, aligned.stderr
    assert "all up to date" in aligned.stdout
    assert "the cluster is degraded" in aligned.stderr


def test_up_again_restarts_the_missing_node(cluster: Cluster) -> None:
    """A second `up --nodes 3` starts the node that is down and waits until it is registered again; then
    topics are created with 3 replicas again."""
    if "no process" not in cluster.run("broker", "status", "--cluster").stdout:
        assert cluster.run("broker", "kill", "--node", "2").returncode == 0
    restarted = cluster.run("broker", "up", "--nodes", "3")
    assert restarted.returncode == 0, restarted.stderr
    assert "restarted node(s) 2" in restarted.stderr
    assert restarted.stdout.strip() == cluster.bootstrap
    assert registered_brokers(cluster.bootstrap.split(",")[1]) == {1, 2, 3}
    status = cluster.run("broker", "status", "--cluster")
    assert status.returncode == 0, status.stdout
    prefix = f"after-{uuid.uuid4().hex[:6]}."
    applied = cluster.apply(prefix)
    assert applied.returncode == 0, applied.stderr
    assert {n for counts in _topics(cluster, prefix).values() for n in counts} == {3}


def test_down_stops_every_node_even_a_stopped_one(cluster: Cluster) -> None:
    """A SIGSTOPped node shows as stopped; down stops all three (the stopped one too) and nothing is left."""
    stopped = cluster.run("broker", "kill", "--node", "3", "--signal", "STOP")
    assert stopped.returncode == 0, stopped.stderr
    status = cluster.run("broker", "status", "--cluster")
    assert re.search(r"^node 3 .* stopped \(SIGSTOP\)", status.stdout, re.M), status.stdout
    pids = [int(p) for p in re.findall(r"pid (\d+)", status.stdout)]
    assert len(pids) == 3

    down = cluster.run("broker", "down", "--cluster")
    assert down.returncode == 0, down.stderr
    assert down.stdout.startswith("stopped 3 node(s) of the local cluster"), down.stdout
    assert not [pid for pid in pids if _alive(pid)]
    after = cluster.run("broker", "status", "--cluster")
    assert after.returncode == 1
    assert after.stdout.count("no process") == 3
