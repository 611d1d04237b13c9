"""What needs no broker: the local broker and cluster managers' checks (Java, Maven, ports, state files, the
cluster's layout) and the client config of pattern subscribers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from exchange.kafka import TopicNames, local
from exchange.kafka import cluster as cluster_module
from exchange.kafka.clients import PATTERN_REFRESH_MS, Consumer
from exchange.kafka.cluster import ClusterLayout, LocalCluster, NodeLayout
from exchange.kafka.errors import BrokerError
from exchange.kafka.local import LocalBroker, _java_major, require_java
from exchange.settings import Settings


@pytest.mark.parametrize(("output", "major"), [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('java version "1.8.0_392"', 8),
    ('openjdk version "21" 2023-09-19', 21),
    ("garbage", None),
])
def test_java_major_parses_version_banners(output: str, major: int | None) -> None:
    """The Java major version is read from `java -version`, including the old 1.x scheme."""
    assert _java_major(output) == major


def test_missing_java_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without java on PATH or JAVA_HOME, the error names Java 17 and how to install it."""
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(BrokerError, match=r"Java 17\+ is required.*apt-get install"):
        require_java()


def test_old_java_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A Java older than 17 is refused with the version it found."""
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho \'java version "1.8.0_392"\' >&2\n')
    fake.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(BrokerError, match=r"is Java 8; the local broker needs Java 17\+"):
        require_java()


def test_missing_maven_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fetching without mvn on PATH fails with the install command."""
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BrokerError, match=r"Maven \('mvn'\) is not on PATH.*apt-get install maven"):
        LocalBroker(tmp_path, "4.3.1").fetch()


def test_taken_port_is_reported(tmp_path: Path) -> None:
    """Asking for a port another process listens on fails before anything starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        broker = LocalBroker(tmp_path, "4.3.1")
        with pytest.raises(BrokerError, match=f"port {port} on 127.0.0.1 is taken"):
            broker._choose_ports(port, None)


def test_stale_state_file_is_ignored_and_removed(tmp_path: Path) -> None:
    """A state file whose process is gone does not count as a running broker."""
    broker = LocalBroker(tmp_path, "4.3.1")
    broker.home.mkdir(parents=True)
    broker.state_file.write_text(json.dumps({"pid": 2**22 + 12345, "bootstrap": "127.0.0.1:1", "port": 1,
                                             "controller_port": 2, "version": "4.3.1", "cluster_id": "x",
                                             "started_at": 0.0}))
    assert broker.state() is None
    assert not broker.state_file.exists()
    assert broker.down() == "no local broker is running"


def test_ports_of_formatted_data_are_kept(tmp_path: Path) -> None:
    """Data formatted for some ports is restarted on those ports; asking for others explains the fix."""
    broker = LocalBroker(tmp_path, "4.3.1")
    broker.data_dir.mkdir(parents=True)
    (broker.data_dir / "meta.properties").write_text("cluster.id=abc\n")
    broker.config_dir.mkdir(parents=True)
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        pa, pb = a.getsockname()[1], b.getsockname()[1]
    (broker.config_dir / "server.properties").write_text(
        f"listeners=PLAINTEXT://127.0.0.1:{pa},CONTROLLER://127.0.0.1:{pb}\n")
    assert broker._choose_ports(None, None) == (pa, pb)
    with pytest.raises(BrokerError, match="down --purge"):
        broker._choose_ports(pa + 1 if pa + 1 != pb else pa + 2, None)


def test_topic_prefix_maps_names_and_patterns_both_ways() -> None:
    """A prefix namespaces plain names and subscription patterns, and is stripped from what is read back."""
    names = TopicNames("run.1+")
    assert names.physical("audit.decisions") == "run.1+audit.decisions"
    assert names.physical(r"^ingress\..*") == r"^run\.1\+ingress\..*"
    assert names.logical("run.1+delivery.tax-board") == "delivery.tax-board"
    assert names.logical("other.topic") == "other.topic"
    plain = TopicNames()
    assert plain.physical("x") == "x"
    assert plain.logical("x") == "x"


def test_cluster_ids_never_read_as_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """A drawn id that would start with '-' (one in 64) is drawn again, as Kafka's own generator does."""
    draws = iter([uuid.UUID(bytes=b"\xfb" + bytes(15)), uuid.UUID(bytes=b"\x10" + bytes(15))])
    monkeypatch.setattr(local.uuid, "uuid4", lambda: next(draws))
    found = local.new_cluster_id()
    assert found == "EAAAAAAAAAAAAAAAAAAAAA"
    assert len(found) == 22


def _layout(nodes: int = 3) -> ClusterLayout:
    members = tuple(NodeLayout(n, 9000 + n, 9100 + n, f"dir{n}AAAAAAAAAAAAAAAAAA") for n in range(1, nodes + 1))
    return ClusterLayout("4.3.1", "EAAAAAAAAAAAAAAAAAAAAA", members)


def test_cluster_layout_names_voters_bootstrap_and_replication() -> None:
    """The layout gives the --initial-controllers entries, the bootstrap list, RF 3 / min ISR 2 for three nodes
    (RF 2 / min ISR 1 for two), and survives its JSON record."""
    layout = _layout()
    assert layout.nodes[1].voter == "2@127.0.0.1:9102:dir2AAAAAAAAAAAAAAAAAA"
    assert layout.bootstrap == "127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003"
    assert (layout.replication_factor, layout.min_isr) == (3, 2)
    assert (_layout(2).replication_factor, _layout(2).min_isr) == (2, 1)
    assert ClusterLayout.from_json(layout.to_json()) == layout
    with pytest.raises(BrokerError, match="there is no node 4"):
        layout.node(4)


def test_cluster_node_config_from_the_template(tmp_path: Path) -> None:
    """Each node's server.properties has its id and ports, every controller, and the replicated internal topics."""
    cluster = LocalCluster(tmp_path, "4.3.1", directory=tmp_path / "cluster")
    template = (local.deploy_dir() / "cluster-node.properties.in").read_text()
    config = cluster._write_config(template, _layout(), _layout().nodes[1]).read_text()
    assert "node.id=2\n" in config
    assert "listeners=PLAINTEXT://127.0.0.1:9002,CONTROLLER://127.0.0.1:9102\n" in config
    assert "controller.quorum.bootstrap.servers=127.0.0.1:9101,127.0.0.1:9102,127.0.0.1:9103\n" in config
    assert f"log.dirs={tmp_path / 'cluster' / 'node-2' / 'data'}\n" in config
    for line in ("offsets.topic.replication.factor=3", "transaction.state.log.replication.factor=3",
                 "transaction.state.log.min.isr=2", "default.replication.factor=3", "min.insync.replicas=2"):
        assert line + "\n" in config
    assert "{" not in config


def test_cluster_lives_apart_from_the_single_broker(tmp_path: Path) -> None:
    """The cluster's files are under their own directory, never the single-node broker's data or state."""
    broker = LocalBroker(tmp_path, "4.3.1")
    cluster = LocalCluster(tmp_path, "4.3.1")
    assert cluster.home == broker.home / "cluster"
    assert cluster.jars.libs == broker.libs
    mine = {cluster.layout_file, cluster.node_dir(1), cluster.log_file(1)}
    assert not any(p in (broker.state_file, broker.data_dir, broker.config_dir, broker.log_file) for p in mine)
    elsewhere = LocalCluster(tmp_path, "4.3.1", directory=tmp_path / "mine")
    assert elsewhere.layout_file == tmp_path / "mine" / "cluster.json"


def test_cluster_of_another_size_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """Data formatted for three nodes is not started as five; the message says how to start afresh."""
    cluster = LocalCluster(tmp_path, "4.3.1", nodes=5)
    cluster.home.mkdir(parents=True)
    cluster.layout_file.write_text(_layout().to_json())
    with pytest.raises(BrokerError, match=r"formatted for 3 nodes.*down --cluster --purge"):
        cluster.up()
    with pytest.raises(BrokerError, match="one node is `exchange broker up`"):
        LocalCluster(tmp_path, "4.3.1", nodes=1)


def test_cluster_commands_without_a_cluster(tmp_path: Path) -> None:
    """Without a formatted cluster, status and kill say how to start one, and down has nothing to stop."""
    cluster = LocalCluster(tmp_path, "4.3.1")
    with pytest.raises(BrokerError, match="up --nodes 3"):
        cluster.status()
    with pytest.raises(BrokerError, match="up --nodes 3"):
        cluster.kill(2)
    assert cluster.down() == "no node of the local cluster is running"


def test_pid_file_of_a_recycled_pid_is_not_a_node(tmp_path: Path) -> None:
    """A live process that is not the node (its pid reused) does not count as the node, and its file goes."""
    cluster = LocalCluster(tmp_path, "4.3.1")
    cluster.home.mkdir(parents=True)
    cluster.layout_file.write_text(_layout().to_json())
    cluster.node_dir(2).mkdir()
    (cluster.node_dir(2) / "pid").write_text(f"{os.getpid()}\n")
    assert cluster.pid(2) is None
    assert not (cluster.node_dir(2) / "pid").exists()
    assert cluster.kill(2, "STOP") == "node 2 is not running"
    with pytest.raises(BrokerError, match="there is no node 7"):
        cluster.kill(7)


def test_a_stopped_process_is_told_from_a_running_one() -> None:
    """SIGSTOP shows as stopped in /proc, SIGCONT as running again."""
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert not cluster_module._stopped(proc.pid)
        os.kill(proc.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while not cluster_module._stopped(proc.pid):
            assert time.monotonic() < deadline
            time.sleep(0.01)  # the kernel stops the process asynchronously; polled with a deadline
        os.kill(proc.pid, signal.SIGCONT)
    finally:
        proc.kill()
        proc.wait()


def test_pattern_consumers_refresh_metadata_every_few_seconds() -> None:
    """A consumer built with a subscription pattern looks for new matching topics every few seconds; one on plain
    topics keeps librdkafka's default, and a caller's override wins."""
    settings = Settings(bootstrap="127.0.0.1:1", topic_prefix="")
    quiet = {"log_level": 0}
    with Consumer("g", [r"^ingress\..*"], settings=settings, overrides=quiet) as pattern:
        assert pattern._config["topic.metadata.refresh.interval.ms"] == PATTERN_REFRESH_MS <= 5000
    with Consumer("g", ["audit.log"], settings=settings, overrides=quiet) as plain:
        assert "topic.metadata.refresh.interval.ms" not in plain._config
    mine = {**quiet, "topic.metadata.refresh.interval.ms": 1000}
    with Consumer("g", [r"^ingress\..*"], settings=settings, overrides=mine) as tuned:
        assert tuned._config["topic.metadata.refresh.interval.ms"] == 1000


def test_down_kills_a_node_that_ignores_sigterm(tmp_path: Path) -> None:
    """A node that never finishes a SIGTERM (as one that lost the quorum) is killed after the grace period."""
    cluster = LocalCluster(tmp_path, "4.3.1")
    cluster.home.mkdir(parents=True)
    cluster.layout_file.write_text(_layout().to_json())
    cluster.node_dir(1).mkdir()
    config = cluster.node_dir(1) / "server.properties"
    # A stand-in for the node's JVM: its command line names the node's config, and it ignores SIGTERM.
    ready = tmp_path / "trapping"
    script = 'trap "" TERM; touch "$1"; while :; do sleep 0.05; done'
    stubborn = subprocess.Popen(["sh", "-c", script, "node", str(ready), str(config)], start_new_session=True)
    try:
        (cluster.node_dir(1) / "pid").write_text(f"{stubborn.pid}\n")
        deadline = time.monotonic() + 5
        while not ready.exists():  # until the shell ignores SIGTERM
            assert time.monotonic() < deadline
            time.sleep(0.01)  # polling for the file the shell writes once trapping; bounded by the deadline
        assert cluster.pid(1) == stubborn.pid
        message = cluster.down(grace=0.5)
        assert message == ("stopped 1 node(s) of the local cluster; node(s) 1 ignored SIGTERM for 0.5s and "
                           "were killed")
        assert stubborn.wait(timeout=5) == -signal.SIGKILL
    finally:
        stubborn.kill()
        stubborn.wait()


def test_purge_removes_the_nodes_and_nothing_else(tmp_path: Path) -> None:
    """down --purge removes the nodes' directories and the layout; other files in a named directory stay."""
    cluster = LocalCluster(tmp_path, "4.3.1", directory=tmp_path / "mine")
    cluster.home.mkdir()
    cluster.layout_file.write_text(_layout().to_json())
    for node_id in (1, 2, 3):
        (cluster.node_dir(node_id) / "data").mkdir(parents=True)
    (cluster.home / "notes.txt").write_text("mine\n")
    assert cluster.down(purge=True).endswith(f"removed its data under {cluster.home}")
    assert sorted(p.name for p in cluster.home.iterdir()) == ["notes.txt"]
    (cluster.home / "notes.txt").unlink()
    cluster.layout_file.write_text(_layout().to_json())
    cluster.down(purge=True)
    assert not cluster.home.exists()
