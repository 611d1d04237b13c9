"""A real multi-node Apache Kafka (KRaft) on this machine, for fault tests: ``exchange broker up --nodes 3``.

Each node is both broker and controller, a background Java process of its own on free ports, run from the jars
the single-node broker fetched (:class:`~exchange.kafka.local.LocalBroker`). The cluster lives apart from the
single-node broker (``<cache>/kafka-<version>/cluster`` or ``EXCHANGE_CLUSTER_DIR``), so both can run at once:

- ``cluster.json`` is the layout, written once when the nodes are formatted (the controllers' endpoints are
  in the formatted metadata, so the ports are kept for the life of the data);
- ``node-N/`` holds a node's ``server.properties``, data, ``node.log`` and ``pid`` (while it runs).

Nothing here waits on the clock alone: every wait polls a condition (a process gone, the brokers the cluster
lists) against a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from confluent_kafka import KafkaException as _CKafkaException
from confluent_kafka.admin import AdminClient

from exchange.kafka.errors import BrokerError
from exchange.kafka.local import (
    _CHILDREN,
    LocalBroker,
    _alive,
    _port_free,
    _tail_lines,
    free_port,
    new_cluster_id,
    require_java,
)

__all__ = ["ClusterLayout", "LocalCluster", "NodeLayout", "NodeStatus", "registered_brokers"]

_LAYOUT = "cluster.json"
SIGNALS = {"KILL": signal.SIGKILL, "STOP": signal.SIGSTOP, "CONT": signal.SIGCONT, "TERM": signal.SIGTERM}


@dataclass(frozen=True)
class NodeLayout:
    """One node as formatted: its id, ports and the directory id of its metadata log."""

    node_id: int
    port: int
    controller_port: int
    directory_id: str

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def voter(self) -> str:
        """The node in ``--initial-controllers``: ``id@host:port:directory-id``."""
        return f"{self.node_id}@127.0.0.1:{self.controller_port}:{self.directory_id}"


@dataclass(frozen=True)
class ClusterLayout:
    """The cluster as formatted: kept in ``cluster.json`` for as long as its data."""

    version: str
    cluster_id: str
    nodes: tuple[NodeLayout, ...]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.nodes)

    @property
    def replication_factor(self) -> int:
        return min(3, len(self.nodes))

    @property
    def min_isr(self) -> int:
        return max(1, min(2, self.replication_factor - 1))

    def node(self, node_id: int) -> NodeLayout:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise BrokerError(f"the local cluster has nodes {', '.join(str(n.node_id) for n in self.nodes)}; "
                          f"there is no node {node_id}")

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "cluster_id": self.cluster_id,
                           "nodes": [asdict(node) for node in self.nodes]}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ClusterLayout:
        raw = json.loads(text)
        return cls(str(raw["version"]), str(raw["cluster_id"]), tuple(NodeLayout(**node) for node in raw["nodes"]))


@dataclass(frozen=True)
class NodeStatus:
    """A node as ``status`` sees it: its process (``running``, ``stopped`` by SIGSTOP, or ``down``) and whether
    the cluster lists it among its live brokers."""

    node: NodeLayout
    pid: int | None
    process: str
    registered: bool

    def __str__(self) -> str:
        pid = f"pid {self.pid}" if self.pid is not None else "no process"
        listed = "registered" if self.registered else "not registered"
        return f"node {self.node.node_id}  {self.node.address}  {pid:<12} {self.process}, {listed}"


def registered_brokers(bootstrap: str, timeout: float = 5.0) -> set[int] | None:
    """The ids of the brokers the cluster at ``bootstrap`` lists as live, or None when none answers."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, "socket.connection.setup.timeout.ms": 2000})
    try:
        described = admin.describe_cluster(request_timeout=timeout).result(timeout=timeout + 1)
    except (_CKafkaException, TimeoutError):
        return None
    return {int(node.id) for node in described.nodes}


class LocalCluster:
    """The local cluster of ``nodes`` nodes of one Kafka version, under ``directory``."""

    def __init__(self, cache_dir: Path, version: str, *, nodes: int = 3, heap: str = "320m",
                 directory: Path | None = None, deploy: Path | None = None) -> None:
        if nodes < 2:
            raise BrokerError("a local cluster has 2 nodes or more; one node is `exchange broker up`")
        self.jars = LocalBroker(cache_dir, version, deploy=deploy)
        self.version = version
        self.size = nodes
        self.heap = heap
        self.home = (directory.expanduser() if directory is not None else self.jars.home / "cluster")
        self.layout_file = self.home / _LAYOUT
        self.deploy = self.jars.deploy

    # -- layout and processes -------------------------------------------------------------------------------

    def layout(self) -> ClusterLayout | None:
        """The formatted cluster, or None when there is none (or its record is unreadable)."""
        try:
            return ClusterLayout.from_json(self.layout_file.read_text())
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def node_dir(self, node_id: int) -> Path:
        return self.home / f"node-{node_id}"

    def log_file(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "node.log"

    def pid(self, node_id: int) -> int | None:
        """The pid of node ``node_id``'s process while it lives (running or stopped), else None."""
        pid_file = self.node_dir(node_id) / "pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if _alive(pid) and _runs_config(pid, self.node_dir(node_id) / "server.properties"):
            return pid
        pid_file.unlink(missing_ok=True)
        return None

    def status(self) -> list[NodeStatus]:
        layout = self._require_layout()
        live = registered_brokers(layout.bootstrap) or set()
        found = []
        for node in layout.nodes:
            pid = self.pid(node.node_id)
            process = "down" if pid is None else ("stopped (SIGSTOP)" if _stopped(pid) else "running")
            found.append(NodeStatus(node, pid, process, node.node_id in live))
        return found

    # -- lifecycle ------------------------------------------------------------------------------------------

    def up(self, timeout: float = 120.0) -> tuple[ClusterLayout, list[int]]:
        """Start every node that is not running (fetching and formatting first if needed) and wait until the
        cluster lists all of them as live brokers. Returns the layout and the ids of the nodes it started."""
        layout = self.layout()
        if layout is not None and (len(layout.nodes) != self.size or layout.version != self.version):
            raise BrokerError(f"the local cluster under {self.home} was formatted for {len(layout.nodes)} nodes "
                              f"of Kafka {layout.version}; use that, or `exchange broker down --cluster --purge` "
                              "to start afresh")
        java = require_java()
        self.jars.fetch()
        if layout is None:
            layout = self._format(java)
        started: list[int] = []
        for node in layout.nodes:
            pid = self.pid(node.node_id)
            if pid is not None:
                if _stopped(pid):
                    raise BrokerError(f"node {node.node_id} (pid {pid}) is stopped by SIGSTOP; "
                                      f"`exchange broker kill --node {node.node_id} --signal CONT` resumes it")
                continue
            if not _port_free(node.port) or not _port_free(node.controller_port):
                raise BrokerError(f"a port of node {node.node_id} ({node.port} or {node.controller_port}) is taken "
                                  "by another process; free it, or `exchange broker down --cluster --purge`")
            self._start(java, node)
            started.append(node.node_id)
        self._await_registered(layout, started, timeout)
        return layout, started

    def kill(self, node_id: int, signame: str = "KILL") -> str:
        """Send ``signame`` (KILL, STOP, CONT or TERM) to node ``node_id``'s process."""
        layout = self._require_layout()
        layout.node(node_id)
        if signame not in SIGNALS:
            raise BrokerError(f"signal {signame}: one of {', '.join(SIGNALS)}")
        pid = self.pid(node_id)
        if pid is None:
            return f"node {node_id} is not running"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, SIGNALS[signame])
        if signame == "KILL":
            _await_gone([pid], time.monotonic() + 10.0)
            (self.node_dir(node_id) / "pid").unlink(missing_ok=True)
        return f"sent SIG{signame} to node {node_id} (pid {pid})"

    def down(self, purge: bool = False, grace: float = 20.0) -> str:
        """Stop every node: SIGTERM (after SIGCONT, so a stopped node can act on it), then SIGKILL whatever has
        not exited after ``grace`` seconds; a node that lost the quorum never finishes a SIGTERM."""
        layout = self.layout()
        pids = {} if layout is None else {n.node_id: p for n in layout.nodes if (p := self.pid(n.node_id)) is not None}
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGCONT)
                os.killpg(pid, signal.SIGTERM)
        left = _await_gone(list(pids.values()), time.monotonic() + grace)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        _await_gone(left, time.monotonic() + 10.0)
        for node_id in pids:
            (self.node_dir(node_id) / "pid").unlink(missing_ok=True)
        if not pids:
            message = "no node of the local cluster is running"
        else:
            killed = sorted(n for n, p in pids.items() if p in left)
            message = f"stopped {len(pids)} node(s) of the local cluster"
            if killed:
                message += (f"; node(s) {', '.join(map(str, killed))} ignored SIGTERM for {grace:g}s "
                            "and were killed")
        if purge:
            self._purge(layout)
            message += f"; removed its data under {self.home}"
        return message

    def _purge(self, layout: ClusterLayout | None) -> None:
        """Remove the nodes' directories and the layout, nothing else (the directory may be one the user named)."""
        for node_id in [n.node_id for n in layout.nodes] if layout is not None else []:
            shutil.rmtree(self.node_dir(node_id), ignore_errors=True)
        self.layout_file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.home.rmdir()  # only when nothing else is in it

    def tail(self, node_id: int, lines: int = 50) -> str:
        self._require_layout().node(node_id)
        try:
            text = self.log_file(node_id).read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_file(node_id)})"
        return _tail_lines(text, lines)

    # -- internals ------------------------------------------------------------------------------------------

    def _require_layout(self) -> ClusterLayout:
        layout = self.layout()
        if layout is None:
            raise BrokerError(f"no local cluster under {self.home}; start one with `exchange broker up --nodes 3`")
        return layout

    def _format(self, java: str) -> ClusterLayout:
        taken: set[int] = set()
        nodes = []
        for node_id in range(1, self.size + 1):
            port = free_port(avoid=taken)
            taken.add(port)
            controller_port = free_port(avoid=taken)
            taken.add(controller_port)
            nodes.append(NodeLayout(node_id, port, controller_port, new_cluster_id()))
        layout = ClusterLayout(self.version, new_cluster_id(), tuple(nodes))
        for node in layout.nodes:  # what a formatting that failed half-way left
            shutil.rmtree(self.node_dir(node.node_id), ignore_errors=True)
        template = (self.deploy / "cluster-node.properties.in").read_text()
        voters = ",".join(n.voter for n in layout.nodes)
        formats = []
        for node in layout.nodes:  # formatted side by side: each is a JVM start of a few seconds
            config = self._write_config(template, layout, node)
            cmd = [java, f"-Dlog4j2.configurationFile={self.deploy / 'log4j2.properties'}",
                   "-cp", f"{self.jars.libs}/*", "kafka.tools.StorageTool", "format",
                   f"--cluster-id={layout.cluster_id}", f"--initial-controllers={voters}", "-c", str(config)]
            formats.append((node, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,  # noqa: S603 - fixed argv
                                                   stdin=subprocess.DEVNULL)))
        failures = []
        for node, proc in formats:
            output, _ = proc.communicate()
            if proc.returncode != 0:
                failures.append(f"node {node.node_id}:\n{_tail_lines(output.decode(errors='replace'), 15)}")
        if failures:
            self._purge(layout)
            raise BrokerError("formatting the cluster's storage failed: " + "\n".join(failures))
        self.layout_file.write_text(layout.to_json())
        return layout

    def _write_config(self, template: str, layout: ClusterLayout, node: NodeLayout) -> Path:
        directory = self.node_dir(node.node_id)
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "server.properties"
        controllers = ",".join(f"127.0.0.1:{n.controller_port}" for n in layout.nodes)
        config.write_text(template.format(node_id=node.node_id, port=node.port, controller_port=node.controller_port,
                                          controllers=controllers, data_dir=directory / "data",
                                          replication_factor=layout.replication_factor, min_isr=layout.min_isr))
        return config

    def _start(self, java: str, node: NodeLayout) -> None:
        directory = self.node_dir(node.node_id)
        # Small and quick to start on a shared machine: the serial collector (one thread, no regions) and the
        # client compiler only (C2's warm-up doubles a node's start time; a test cluster never runs long enough
        # to gain from it). About 200 MiB RSS a node.
        cmd = [java, "-Xms128m", f"-Xmx{self.heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               "-Djava.awt.headless=true",
               f"-Dlog4j2.configurationFile={self.deploy / 'log4j2.properties'}",
               "-cp", f"{self.jars.libs}/*", "kafka.Kafka", str(directory / "server.properties")]
        with self.log_file(node.node_id).open("ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,  # noqa: S603 - fixed argv
                                    start_new_session=True)
        _CHILDREN[proc.pid] = proc
        (directory / "pid").write_text(f"{proc.pid}\n")

    def _await_registered(self, layout: ClusterLayout, started: list[int], timeout: float) -> None:
        want = {n.node_id for n in layout.nodes}
        deadline = time.monotonic() + timeout
        live: set[int] = set()
        while time.monotonic() < deadline:
            for node_id in started:
                if self.pid(node_id) is None:
                    raise BrokerError(f"node {node_id} exited while starting; last lines of "
                                      f"{self.log_file(node_id)}:\n{self.tail(node_id, 20)}")
            live = registered_brokers(layout.bootstrap, timeout=3.0) or set()
            # A node killed a moment ago is still listed until the controller fences it: each node started here
            # must also answer on its own port, and list every node.
            if live >= want and all((registered_brokers(layout.node(n).address, timeout=3.0) or set()) >= want
                                    for n in started):
                return
            time.sleep(0.25)  # polling the cluster's broker list; the condition is checked above
        missing = sorted(want - live)
        raise BrokerError(f"the cluster did not list node(s) {', '.join(map(str, missing))} within {timeout:.0f}s; "
                          f"see `exchange broker logs --node {missing[0]}`, then `exchange broker down --cluster`")


def _runs_config(pid: int, config: Path) -> bool:
    """True when ``pid`` is a process started with ``config`` (not another process that got a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc to ask: trust the pid file
    # Empty while the process is still being exec'ed (a node just launched): trust the pid file then too.
    return not cmdline or str(config).encode() in cmdline.split(b"\0")


def _stopped(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
    except OSError:
        return False
    return status in {"T", "t"}


def _await_gone(pids: list[int], deadline: float) -> list[int]:
    """Wait until every process in ``pids`` has exited, or ``deadline``; returns those still alive."""
    left = [pid for pid in pids if _alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)  # waiting for processes to exit: no event to block on for a non-child
        left = [pid for pid in left if _alive(pid)]
    return left
