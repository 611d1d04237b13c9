"""The local broker manager's checks that need no broker: Java, Maven, ports, state files."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path

import pytest

from exchange.kafka import TopicNames, local
from exchange.kafka.errors import BrokerError
from exchange.kafka.local import LocalBroker, _java_major, require_java


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
