"""A real single-node Apache Kafka (KRaft) on this machine, for development, the demo and the tests.

The release is fetched once from Maven Central with the pom in ``deploy/local/`` into a cache outside the repo
(``<cache>/kafka-<version>/libs``), formatted with ``kafka.tools.StorageTool format --standalone`` and started as
a background Java process. A JSON state file beside the data lets ``status``, ``logs`` and ``down`` find it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from exchange.kafka.errors import BrokerError

__all__ = ["BrokerState", "LocalBroker", "broker_answers", "deploy_dir"]

_MIN_JAVA = 17
_STATE = "broker.json"
# Brokers this process started: kept referenced (a collected Popen of a live child warns) and reaped on stop.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def deploy_dir() -> Path:
    """``deploy/local`` of the checkout this package runs from."""
    return Path(__file__).resolve().parents[2] / "deploy" / "local"


@dataclass(frozen=True)
class BrokerState:
    """What ``up`` recorded about the running broker."""

    pid: int
    bootstrap: str
    port: int
    controller_port: int
    version: str
    cluster_id: str
    started_at: float


def new_cluster_id() -> str:
    """A random cluster id as Kafka writes them: 22 URL-safe base64 characters, never starting with '-'.

    Kafka's own generator draws again when the text would start with '-', because a command line would
    read it as an option; one id in 64 would otherwise fail `kafka-storage format`.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def broker_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when a broker at ``bootstrap`` answers a metadata request within ``timeout`` seconds."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, "socket.connection.setup.timeout.ms": 2000})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure of the probe means "does not answer"
        return False
    return bool(metadata.brokers)


class LocalBroker:
    """The local broker of one Kafka version, living under ``cache_dir/kafka-<version>``."""

    def __init__(self, cache_dir: Path, version: str, heap: str = "1g", deploy: Path | None = None) -> None:
        self.version = version
        self.heap = heap
        self.home = cache_dir.expanduser() / f"kafka-{version}"
        self.libs = self.home / "libs"
        self.data_dir = self.home / "data"
        self.config_dir = self.home / "config"
        self.log_file = self.home / "broker.log"
        self.state_file = self.home / _STATE
        self.deploy = deploy or deploy_dir()

    # -- fetching -------------------------------------------------------------------------------------------

    def is_fetched(self) -> bool:
        return (self.libs / ".complete").exists()

    def fetch(self) -> bool:
        """Download the release and its runtime dependencies unless cached. True when it downloaded."""
        if self.is_fetched():
            return False
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven ('mvn') is not on PATH; it fetches Kafka from Maven Central. "
                              "Install it (Debian/Ubuntu: apt-get install maven) and run again.")
        pom = self.deploy / "pom.xml"
        if not pom.exists():
            raise BrokerError(f"{pom} is missing: run the exchange from its source checkout")
        staging = self.home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        cmd = [mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies", "-DincludeScope=runtime",
               f"-Dkafka.version={self.version}", f"-DoutputDirectory={staging}"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv
        if done.returncode != 0:
            tail = _tail_lines(done.stdout + done.stderr, 15)
            raise BrokerError(f"Maven could not fetch Apache Kafka {self.version}:\n{tail}\n"
                              "Check that Maven Central is reachable and the version exists.")
        (staging / ".complete").write_text(self.version + "\n")
        shutil.rmtree(self.libs, ignore_errors=True)
        staging.rename(self.libs)
        return True

    # -- lifecycle ------------------------------------------------------------------------------------------

    def state(self) -> BrokerState | None:
        """The recorded state of a broker whose process is still alive, else None (a stale file is removed)."""
        try:
            raw = json.loads(self.state_file.read_text())
            state = BrokerState(**raw)
        except (OSError, ValueError, TypeError):
            return None
        if not _alive(state.pid):
            self.state_file.unlink(missing_ok=True)
            return None
        return state

    def up(self, port: int | None = None, controller_port: int | None = None, timeout: float = 90.0) -> BrokerState:
        """Start the broker (fetching and formatting first if needed) and wait until it answers."""
        running = self.state()
        if running is not None:
            if port not in (None, running.port):
                raise BrokerError(f"the local broker already runs on port {running.port}; "
                                  "`exchange broker down` first to change ports")
            if broker_answers(running.bootstrap):
                return running
            raise BrokerError(f"a local broker process (pid {running.pid}) exists but does not answer on "
                              f"{running.bootstrap}; see `exchange broker logs`, then `exchange broker down`")
        java = require_java()
        self.fetch()
        port, controller_port = self._choose_ports(port, controller_port)
        cluster_id = self._format(java, port, controller_port)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = [java, "-Xms256m", f"-Xmx{self.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
               f"-Dlog4j2.configurationFile={self.deploy / 'log4j2.properties'}",
               "-cp", f"{self.libs}/*", "kafka.Kafka", str(self.config_dir / "server.properties")]
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,  # noqa: S603 - fixed argv
                                    start_new_session=True)
        _CHILDREN[proc.pid] = proc
        state = BrokerState(pid=proc.pid, bootstrap=f"127.0.0.1:{port}", port=port, controller_port=controller_port,
                            version=self.version, cluster_id=cluster_id, started_at=time.time())
        self.state_file.write_text(json.dumps(asdict(state), indent=2) + "\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.state_file.unlink(missing_ok=True)
                raise BrokerError(f"the broker exited with code {proc.returncode} while starting; "
                                  f"last lines of {self.log_file}:\n{self.tail(20)}")
            if _port_open(port) and broker_answers(state.bootstrap, timeout=3.0):
                return state
            time.sleep(0.25)  # polling a process we just started; the condition is checked above
        self._stop(proc.pid, grace=10.0)
        self.state_file.unlink(missing_ok=True)
        raise BrokerError(f"the broker did not answer within {timeout:.0f}s; last lines of {self.log_file}:\n"
                          f"{self.tail(20)}")

    def down(self, purge: bool = False, grace: float = 30.0) -> str:
        """Stop the broker (SIGTERM, wait, SIGKILL after ``grace`` seconds) and say what happened."""
        state = self.state()
        if state is None:
            message = "no local broker is running"
        else:
            clean = self._stop(state.pid, grace)
            message = (f"stopped the local broker (pid {state.pid})" if clean else
                       f"the local broker (pid {state.pid}) ignored SIGTERM for {grace:.0f}s and was killed")
        self.state_file.unlink(missing_ok=True)
        if purge:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            shutil.rmtree(self.config_dir, ignore_errors=True)
            self.log_file.unlink(missing_ok=True)
            message += f"; removed its data under {self.home}"
        return message

    def tail(self, lines: int = 50) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_file})"
        return _tail_lines(text, lines)

    # -- internals ------------------------------------------------------------------------------------------

    def _choose_ports(self, port: int | None, controller_port: int | None) -> tuple[int, int]:
        remembered = self._remembered_ports()
        if remembered is not None and port in (None, remembered[0]) and controller_port in (None, remembered[1]):
            # The controller's own endpoint is written into the formatted metadata: keep the ports of the data.
            port, controller_port = remembered
        elif remembered is not None:
            raise BrokerError(f"the broker's data was formatted for ports {remembered[0]}/{remembered[1]}; "
                              "use them, or `exchange broker down --purge` to start afresh")
        port = port if port is not None else free_port()
        controller_port = controller_port if controller_port is not None else free_port(avoid=port)
        for p in (port, controller_port):
            if not _port_free(p):
                raise BrokerError(f"port {p} on 127.0.0.1 is taken by another process; free it, or pass other "
                                  "ports (`exchange broker up --port N --controller-port M`)")
        return port, controller_port

    def _remembered_ports(self) -> tuple[int, int] | None:
        config = self.config_dir / "server.properties"
        if not (self.data_dir / "meta.properties").exists() or not config.exists():
            return None
        text = config.read_text()
        broker = re.search(r"^listeners=PLAINTEXT://[^:]+:(\d+),CONTROLLER://[^:]+:(\d+)", text, re.M)
        return (int(broker.group(1)), int(broker.group(2))) if broker else None

    def _format(self, java: str, port: int, controller_port: int) -> str:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        template = (self.deploy / "broker.properties.in").read_text()
        config = self.config_dir / "server.properties"
        config.write_text(template.format(port=port, controller_port=controller_port, data_dir=self.data_dir))
        meta = self.data_dir / "meta.properties"
        if meta.exists():
            found = re.search(r"^cluster\.id=(\S+)", meta.read_text(), re.M)
            return found.group(1) if found else "unknown"
        cluster_id = new_cluster_id()
        cmd = [java, f"-Dlog4j2.configurationFile={self.deploy / 'log4j2.properties'}", "-cp", f"{self.libs}/*",
               "kafka.tools.StorageTool", "format", "--standalone", f"--cluster-id={cluster_id}", "-c", str(config)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv
        if done.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise BrokerError("formatting the broker's storage failed:\n" + _tail_lines(done.stdout + done.stderr, 15))
        return cluster_id

    @staticmethod
    def _stop(pid: int, grace: float) -> bool:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _alive(pid):
                return True
            time.sleep(0.2)  # waiting for a process to exit: no event to block on for a non-child
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        return False


def require_java() -> str:
    """The path of a Java 17+ ``java``, or a BrokerError that says how to get one."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home and Path(java_home, "bin", "java").exists() else None
    java = java or shutil.which("java")
    if java is None:
        raise BrokerError(f"Java {_MIN_JAVA}+ is required to run the local broker and none was found. "
                          "Install it (Debian/Ubuntu: apt-get install openjdk-17-jre-headless) or set JAVA_HOME.")
    done = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv
    major = _java_major(done.stderr + done.stdout)
    if major is None or major < _MIN_JAVA:
        raise BrokerError(f"{java} is Java {major or 'of unknown version'}; the local broker needs Java "
                          f"{_MIN_JAVA}+. Install a newer JDK or point JAVA_HOME at one.")
    return java


def _java_major(version_output: str) -> int | None:
    found = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
    except OSError:
        return True
    return status != "Z"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port(avoid: int | Collection[int] | None = None) -> int:
    """A port free on 127.0.0.1 now, other than ``avoid`` (a port, or ports, already chosen)."""
    avoided = {avoid} if isinstance(avoid, int) else set(avoid or ())
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in avoided:
            return port


def _tail_lines(text: str, lines: int) -> str:
    parts: Sequence[str] = text.rstrip("\n").splitlines()[-lines:]
    return "\n".join(parts)
