"""`make check-deploy` catches a broken artefact: a copy of the artefacts is mutated one way at a time and the
checker must fail, naming the check that caught it. The tools are the cached ones (`make deploy-tools`); when
they are missing this test installs them through that target, and fails saying why if it cannot."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKER = ROOT / "deploy" / "check" / "check.py"
TOOLS = ROOT / "deploy" / "check" / "tools.py"


def _missing_tools() -> str:
    result = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import tools; "
                             "print(','.join(tools.missing()))", str(TOOLS.parent)],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.fixture(scope="module")
def tools_installed() -> None:
    if not _missing_tools():
        return
    result = subprocess.run(["make", "-C", str(ROOT), "deploy-tools", f"VENV={Path(sys.prefix)}"],
                            capture_output=True, text=True, check=False)
    still = _missing_tools()
    if result.returncode != 0 or still:
        pytest.fail(f"the deployment checker's tools are not installed ({still or 'install failed'}) and "
                    f"`make deploy-tools` could not install them:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


@pytest.fixture
def artefacts(tmp_path: Path) -> Path:
    """A copy of everything the artefacts are made from and checked against."""
    for folder in ("deploy", "policies", "schemas"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "exchange", "connectors"):  # what the image's Dockerfile copies
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def _check(root: Path) -> tuple[int, set[str], str]:
    result = subprocess.run([sys.executable, str(CHECKER), "--root", str(root)], capture_output=True, text=True,
                            check=False, timeout=300)
    failed = set(re.findall(r"^FAIL (\w+)", result.stdout, flags=re.MULTILINE))
    return result.returncode, failed, result.stdout + result.stderr


def _replace(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def _rename_kafkauser_field(root: Path) -> None:
    # `operations` of the first ACL of the first KafkaUser becomes `operation`.
    _replace(root / "deploy" / "kubernetes" / "users.yaml", "      operations:\n", "      operation:\n")


def _rename_compose_service(root: Path) -> None:
    # The sequencer's service is renamed; the tracker's depends_on and Prometheus still name the old one.
    _replace(root / "deploy" / "compose" / "compose.yaml", "\n  sequencer:\n", "\n  audit-sequencer:\n")


def _rename_alert_metric(root: Path) -> None:
    _replace(root / "deploy" / "prometheus" / "rules" / "exchange.yaml", "max(exchange_checkpoint_age_seconds)",
             "max(exchange_checkpoint_age)")


@pytest.mark.parametrize(("mutate", "caught_by"), [
    (_rename_kafkauser_field, {"kubernetes", "generated"}),
    (_rename_compose_service, {"compose"}),
    (_rename_alert_metric, {"prometheus", "metrics"}),
], ids=["kafkauser-field", "compose-service", "alert-metric"])
def test_a_mutated_artefact_fails(tools_installed: None, artefacts: Path, mutate: Callable[[Path], None],
                                  caught_by: set[str]) -> None:
    mutate(artefacts)
    code, failed, output = _check(artefacts)
    assert code == 1, output
    # Exactly these checks fail: the rest of the copy is valid, so the failure is the mutation's.
    assert failed == caught_by, output


def _checker() -> ModuleType:
    sys.path.insert(0, str(CHECKER.parent))
    try:
        return importlib.import_module("check")
    finally:
        sys.path.remove(str(CHECKER.parent))


def test_series_names_are_the_selected_metrics_only() -> None:
    names = _checker().series_names
    assert names('histogram_quantile(0.95, sum by (le) (rate(exchange_routing_latency_seconds_bucket[5m])))') == {
        "exchange_routing_latency_seconds_bucket"}
    assert names('sum(exchange_consumer_lag{topic=~".*ingress\\\\..+"}) > 1e3 and '
                 'sum(delta(exchange_consumer_lag{topic="a"}[10m])) > 0') == {"exchange_consumer_lag"}
    assert names("sum by (stage) (rate(exchange_events[$__rate_interval])) / ignoring (x) up") == {
        "exchange_events", "up"}


def test_compose_cross_references(tmp_path: Path) -> None:
    problems = list(_checker().compose_problems({
        "services": {
            "kafka-1": {"image": "apache/kafka:4.3.1"},
            "kafka-2": {"image": "apache/kafka:4.3.1"},
            "kafka-3": {"image": "apache/kafka:4.0.0"},
            "app": {"depends_on": {"kafka-4": {"condition": "service_healthy"}}, "volumes": ["data:/d", "./x:/x"],
                    "secrets": ["key"], "networks": ["back"],
                    "environment": {"EXCHANGE_BOOTSTRAP": "kafka-1:9092,broker:9092"}},
        },
        "volumes": {"other": None},
    }, tmp_path, "4.3.1"))
    assert problems == [
        "services.kafka-3.image: apache/kafka:4.0.0 is not apache/kafka:4.3.1 (settings.kafka_version)",
        "services.app.depends_on: 'kafka-4' is not a service",
        "services.app.volumes: 'data' is not a volume defined under top-level volumes",
        f"services.app.volumes: ./x does not exist (relative to {tmp_path.name}/)",
        "services.app.secrets: 'key' is not defined under top-level secrets",
        "services.app.networks: 'back' is not defined under top-level networks",
        "services.app.environment.EXCHANGE_BOOTSTRAP: 'broker' is not a service",
    ]
