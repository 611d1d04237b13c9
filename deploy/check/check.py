"""Validate every deployment artefact: ``python deploy/check/check.py [--root DIR]`` (``make check-deploy``).

Runs every check, prints one line per check and the problems it found, and exits 1 if any failed:

- ``generated``: deploy/kubernetes/*.yaml and the dashboard are what ``make deploy-generate`` makes;
- ``compose``: deploy/compose/compose.yaml against the Compose Spec schema, then its cross-references
  (depends_on, volumes, secrets, networks name what is defined; bind-mounted files exist; the Dockerfile and
  what it copies are in the build context; the hosts in
  EXCHANGE_BOOTSTRAP and Prometheus' scrape targets are services; the Kafka image is settings.kafka_version);
- ``kubernetes``: every manifest with kubeconform (strict) against the Kubernetes and Strimzi schemas, then the
  references between them (each KafkaUser's literal topics are KafkaTopics, Strimzi resources name the Kafka,
  workloads log in as a KafkaUser with that user's Secret, mount defined volumes and existing claims, Services
  and PodDisruptionBudgets select some workload's pods);
- ``prometheus``: ``promtool check config``, ``check rules`` and ``test rules``;
- ``dashboard``: the dashboard loaded back with grafana-foundation-sdk (a key its model does not know is an
  error), every panel id unique, every query with an expression, each PromQL expression checked by promtool
  as a recording rule;
- ``metrics``: every series the rules and the dashboard use is a metric of exchange/metrics.py.

The tools come from ``deploy/check/tools.py install`` (``make deploy-tools``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tools  # the sibling module, importable once its folder is on the path

REPO = Path(__file__).resolve().parents[2]
RATE_INTERVAL = "5m"  # what Grafana's $__rate_interval stands for when promtool parses a panel's query


def _run(command: list[str | Path]) -> tuple[int, str]:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, check=False)  # noqa: S603 -- the checker's own tools
    return result.returncode, (result.stdout + result.stderr).strip()


def check_generated(root: Path) -> list[str]:
    from exchange.deploy import stale_files  # noqa: PLC0415 -- the project's package; imported when used

    return [f"{path}: not up to date with its sources; run `make deploy-generate`" for path in stale_files(root)]


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _service_problems(name: str, service: dict[str, Any], compose: dict[str, Any], base: Path) -> Iterator[str]:
    services: dict[str, Any] = compose.get("services") or {}
    depends = service.get("depends_on") or []
    for dependency in depends if isinstance(depends, list) else depends.keys():
        if dependency not in services:
            yield f"services.{name}.depends_on: {dependency!r} is not a service"
        elif dependency == name:
            yield f"services.{name}.depends_on: a service cannot depend on itself"
    volumes = set((compose.get("volumes") or {}).keys())
    for mount in service.get("volumes") or []:
        source = mount.get("source") if isinstance(mount, dict) else (mount.split(":")[0] if ":" in mount else None)
        if not source:
            continue
        if not source.startswith((".", "/", "~")):
            if source not in volumes:
                yield f"services.{name}.volumes: {source!r} is not a volume defined under top-level volumes"
        elif source.startswith(".") and not (base / source).exists():
            yield f"services.{name}.volumes: {source} does not exist (relative to {base.name}/)"


def _named_problems(name: str, service: dict[str, Any], compose: dict[str, Any], kafka_version: str) -> Iterator[str]:
    services: dict[str, Any] = compose.get("services") or {}
    secrets = set((compose.get("secrets") or {}).keys())
    for secret in service.get("secrets") or []:
        secret_name = secret.get("source") if isinstance(secret, dict) else secret
        if secret_name not in secrets:
            yield f"services.{name}.secrets: {secret_name!r} is not defined under top-level secrets"
    networks = set((compose.get("networks") or {}).keys()) | {"default"}
    service_networks = service.get("networks") or []
    for network in service_networks if isinstance(service_networks, list) else service_networks.keys():
        if network not in networks:
            yield f"services.{name}.networks: {network!r} is not defined under top-level networks"
    image = str(service.get("image", ""))
    if image.startswith("apache/kafka:") and image != f"apache/kafka:{kafka_version}":
        yield f"services.{name}.image: {image} is not apache/kafka:{kafka_version} (settings.kafka_version)"
    environment = service.get("environment") or {}
    if isinstance(environment, dict):
        for host in re.findall(r"([A-Za-z0-9_.-]+):\d+", str(environment.get("EXCHANGE_BOOTSTRAP", ""))):
            if host not in services:
                yield f"services.{name}.environment.EXCHANGE_BOOTSTRAP: {host!r} is not a service"


def build_problems(name: str, build: Any, base: Path) -> Iterator[str]:
    """A service's build context and Dockerfile exist, and so does everything the Dockerfile COPYs."""
    if not isinstance(build, dict):
        build = {"context": build}
    context = (base / str(build.get("context", "."))).resolve()
    dockerfile = context / str(build.get("dockerfile", "Dockerfile"))
    if not dockerfile.is_file():
        yield f"services.{name}.build: {dockerfile} does not exist"
        return
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if len(words) >= 3 and words[0].upper() in {"COPY", "ADD"} and not any(w.startswith("--from") for w in words):
            for source in (word for word in words[1:-1] if not word.startswith("--")):
                if not (context / source).exists():
                    yield f"{dockerfile.name}: {words[0]} {source}: not in the build context {context.name}/"


def compose_problems(compose: dict[str, Any], base: Path, kafka_version: str) -> Iterator[str]:
    """Cross-references the Compose Spec schema cannot express."""
    services: dict[str, Any] = compose.get("services") or {}
    for name, service in services.items():
        yield from _service_problems(name, service, compose, base)
        yield from _named_problems(name, service, compose, kafka_version)
    checked: set[str] = set()
    for name, service in services.items():
        if "build" in service and str(service["build"]) not in checked:   # one report per distinct build
            checked.add(str(service["build"]))
            yield from build_problems(name, service["build"], base)
    for secret_name, secret in (compose.get("secrets") or {}).items():
        file = (secret or {}).get("file")
        if file and not (base / file).exists() and not (base / f"{file}.example").exists():
            yield f"secrets.{secret_name}.file: neither {file} nor {file}.example exists"
    brokers = [name for name, service in services.items() if str(service.get("image", "")).startswith("apache/kafka:")]
    if len(brokers) != 3:
        yield f"the cluster has {len(brokers)} Kafka services, not 3"


def check_compose(root: Path) -> list[str]:
    from exchange.settings import Settings  # noqa: PLC0415 -- the project's package; imported when used

    path = root / "deploy" / "compose" / "compose.yaml"
    code, output = _run([tools.paths()["check-jsonschema"], "--builtin-schema", "vendor.compose-spec", path])
    problems = [] if code == 0 else [f"Compose Spec schema: {output}"]
    compose = _load_yaml(path)
    if not isinstance(compose, dict):
        return [*problems, f"{path}: not a mapping"]
    kafka_version = str(Settings.model_fields["kafka_version"].default)
    problems += [f"compose.yaml: {problem}" for problem in compose_problems(compose, path.parent, kafka_version)]
    prometheus = _load_yaml(root / "deploy" / "prometheus" / "prometheus.yml")
    services = compose.get("services") or {}
    for job in prometheus.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            for target in static.get("targets", []):
                if target.rsplit(":", 1)[0] not in services:
                    problems.append(f"prometheus.yml: job {job.get('job_name')}: target {target} is not a Compose "
                                    "service")
    return problems


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def kubernetes_problems(documents: list[dict[str, Any]]) -> Iterator[str]:  # noqa: PLR0912 -- one loop per kind of reference
    """Cross-references between the manifests that no schema can see."""
    def named(kind: str) -> dict[str, dict[str, Any]]:
        return {d["metadata"]["name"]: d for d in documents if d.get("kind") == kind}

    clusters, users, claims = named("Kafka"), named("KafkaUser"), named("PersistentVolumeClaim")
    topics = {d["spec"].get("topicName", d["metadata"]["name"]) for d in named("KafkaTopic").values()}
    workloads = [d for d in documents if d.get("kind") in {"Deployment", "StatefulSet"}]
    pod_labels = [d["spec"]["template"]["metadata"].get("labels", {}) for d in workloads]
    for document in documents:
        kind, name = document.get("kind"), document["metadata"]["name"]
        cluster = document["metadata"].get("labels", {}).get("strimzi.io/cluster")
        if kind in {"KafkaTopic", "KafkaUser", "KafkaNodePool"} and cluster not in clusters:
            yield f"{kind} {name}: strimzi.io/cluster {cluster!r} is not a Kafka resource"
        acls = (document.get("spec", {}).get("authorization", {}) or {}).get("acls", []) if kind == "KafkaUser" else []
        for resource in (acl["resource"] for acl in acls):
            if resource["type"] == "topic" and resource.get("patternType") == "literal" and \
                    resource["name"] not in topics:
                yield f"KafkaUser {name}: an ACL names topic {resource['name']!r}, which no KafkaTopic makes"
        if kind in {"Service", "PodDisruptionBudget"}:
            selector = document["spec"].get("selector", {})
            selector = selector.get("matchLabels", {}) if kind == "PodDisruptionBudget" else selector
            if not any(all(labels.get(k) == v for k, v in selector.items()) for labels in pod_labels):
                yield f"{kind} {name}: its selector {selector} matches no workload's pods"
    for workload in workloads:
        name, pod = workload["metadata"]["name"], workload["spec"]["template"]["spec"]
        volumes = {volume["name"] for volume in pod.get("volumes", [])}
        for container in pod.get("containers", []):
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    yield (f"{workload['kind']} {name}: container {container['name']} mounts undefined volume "
                           f"{mount['name']!r}")
            env = {item["name"]: item for item in container.get("env", [])}
            username = env.get("EXCHANGE_SASL_USERNAME", {}).get("value")
            if username is not None and username not in users:
                yield f"{workload['kind']} {name}: EXCHANGE_SASL_USERNAME {username!r} is not a KafkaUser"
            secret = env.get("EXCHANGE_SASL_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {})
            if username is not None and secret.get("name") != username:
                yield (f"{workload['kind']} {name}: EXCHANGE_SASL_PASSWORD must come from the Secret {username!r} "
                       "that the User Operator makes for that user")
        for claim in (node["claimName"] for node in _walk(pod) if "claimName" in node):
            if claim not in claims:
                yield f"{workload['kind']} {name}: claim {claim!r} is not a PersistentVolumeClaim"


def check_kubernetes(root: Path) -> list[str]:
    found = tools.paths()
    manifests = sorted((root / "deploy" / "kubernetes").glob("*.yaml"))
    if not manifests:
        return ["deploy/kubernetes/: no manifests"]
    code, output = _run([
        found["kubeconform"], "-strict", "-summary", "-output", "text",
        "-kubernetes-version", tools.KUBERNETES_VERSION,
        "-schema-location",
        f"{found['kubernetes-schemas']}/{{{{ .NormalizedKubernetesVersion }}}}-local{{{{ .StrictSuffix }}}}/"
        "{{ .ResourceKind }}{{ .KindSuffix }}.json",
        "-schema-location", f"{found['strimzi-schemas']}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_"
                            "{{ .ResourceAPIVersion }}.json",
        *manifests])
    problems = []
    if code != 0:
        problems += [line for line in output.splitlines() if line.strip()] or [f"kubeconform exited {code}"]
    summary = output.splitlines()[-1] if output else ""
    if code == 0 and ("Valid: 0" in summary or "Skipped: 0" not in summary):
        problems.append(f"kubeconform: {summary}")
    try:
        documents = [document for path in manifests for document in yaml.safe_load_all(path.read_text())
                     if isinstance(document, dict)]
        problems += list(kubernetes_problems(documents))
    except (KeyError, TypeError, AttributeError) as exc:
        problems.append(f"cross-references: a manifest lacks {exc}")
    return problems


def check_prometheus(root: Path) -> list[str]:
    promtool = tools.paths()["promtool"]
    base = root / "deploy" / "prometheus"
    problems = []
    for command in (["check", "config", "--syntax-only", base / "prometheus.yml"],
                    ["check", "rules", *sorted((base / "rules").glob("*.yaml"))],
                    ["test", "rules", *sorted((base / "tests").glob("*.yaml"))]):
        code, output = _run([promtool, *command])
        if code != 0:
            problems.append(f"promtool {command[0]} {command[1]}: {output}")
    return problems


def _dashboard(root: Path) -> dict[str, Any]:
    data = json.loads((root / "deploy" / "grafana" / "dashboards" / "exchange.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise TypeError("the dashboard is not a JSON object")
    return data


def dashboard_expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """``(where, expr)`` for every query of every panel (rows' nested panels included)."""
    found = []
    panels = list(dashboard.get("panels", []))
    while panels:
        panel = panels.pop(0)
        panels.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            if "expr" in target:
                found.append((f"panel {panel.get('id')} ({panel.get('title')}) {target.get('refId')}",
                              str(target["expr"])))
    return found


def _lost(original: Any, loaded: Any, where: str) -> Iterator[str]:
    if isinstance(original, dict):
        for key, value in original.items():
            if not isinstance(loaded, dict) or key not in loaded:
                yield f"{where}.{key}"
            else:
                yield from _lost(value, loaded[key], f"{where}.{key}")
    elif isinstance(original, list) and isinstance(loaded, list):
        for number, (item, loaded_item) in enumerate(zip(original, loaded, strict=False)):
            yield from _lost(item, loaded_item, f"{where}[{number}]")


def check_dashboard(root: Path) -> list[str]:
    from grafana_foundation_sdk.models.dashboard import Dashboard  # noqa: PLC0415 -- installed by tools.py

    dashboard = _dashboard(root)
    problems = []
    try:
        loaded = Dashboard.from_json(dashboard)
    except Exception as exc:  # noqa: BLE001 -- whatever the SDK raises, the dashboard does not load
        return [f"grafana-foundation-sdk cannot load the dashboard: {exc!r}"]
    from grafana_foundation_sdk.cog.encoder import JSONEncoder  # noqa: PLC0415 -- installed by tools.py

    # What the SDK's model does not know (a misspelt key) is dropped by the round trip: report it.
    problems += [f"not in Grafana's dashboard model: {where}"
                 for where in _lost(dashboard, json.loads(json.dumps(loaded, cls=JSONEncoder)), "dashboard")]
    if not loaded.panels:
        problems.append("the dashboard has no panels")
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            if not str(target.get("expr", "")).strip():
                problems.append(f"panel {panel.get('id')} ({panel.get('title')}): target "
                                f"{target.get('refId')} has no PromQL expr")
    ids = [panel.get("id") for panel in dashboard.get("panels", [])]
    if None in ids or len(set(ids)) != len(ids):
        problems.append(f"panel ids must be present and unique: {ids}")
    expressions = dashboard_expressions(dashboard)
    if not expressions:
        return [*problems, "no PromQL expressions in the dashboard"]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{number}", "expr": expr.replace("$__rate_interval", RATE_INTERVAL)}
        for number, (_, expr) in enumerate(expressions)]}]}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "dashboard-rules.yaml"
        path.write_text(yaml.safe_dump(rules))
        code, output = _run([tools.paths()["promtool"], "check", "rules", path])
    if code != 0:
        problems.append(f"promtool on the dashboard's queries: {output}")
    return problems


_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_PROMQL_WORDS = frozenset({
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool", "le",
    "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "absent", "absent_over_time",
    "max_over_time", "min_over_time", "avg_over_time", "sum_over_time", "count_over_time", "changes", "resets",
    "time", "vector", "scalar", "clamp_min", "clamp_max", "abs", "ceil", "floor", "round", "label_replace",
    "predict_linear", "humanize", "humanizeDuration", "value",
})


def series_names(expr: str) -> set[str]:
    """The metric names an expression selects (identifiers outside label matchers, strings and keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)          # label matchers
    text = re.sub(r"\[[^\]]*\]", "[]", text)          # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+", "", text)                 # Grafana variables
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        start = match.start()
        if start and (text[start - 1].isdigit() or text[start - 1] == "."):
            continue                                   # a number's suffix (1e3, 5m) is not a name
        if word not in _PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]?", word):
            names.add(word)
    return names


def known_series() -> set[str]:
    from exchange.metrics import REGISTRY  # noqa: PLC0415 -- the project's package; imported when used

    names = set()
    for metric in REGISTRY.collect():
        kind = metric.type
        names.add(metric.name)
        if kind == "counter":
            names.add(f"{metric.name}_total")
            names.add(f"{metric.name}_created")
        if kind == "histogram":
            names.update(f"{metric.name}_{suffix}" for suffix in ("bucket", "sum", "count", "created"))
    return names


def check_metrics(root: Path) -> list[str]:
    known = known_series()
    used: list[tuple[str, str]] = []
    for path in sorted((root / "deploy" / "prometheus" / "rules").glob("*.yaml")):
        for group in (_load_yaml(path) or {}).get("groups", []):
            for rule in group.get("rules", []):
                used.append((f"{path.name}: {rule.get('alert') or rule.get('record')}", str(rule.get("expr", ""))))
    used += [(f"dashboard {where}", expr) for where, expr in dashboard_expressions(_dashboard(root))]
    problems = []
    for where, expr in used:
        problems += [f"{where}: {name} is not a metric of exchange/metrics.py"
                     for name in sorted(series_names(expr) - known)]
    return problems


CHECKS: dict[str, Callable[[Path], list[str]]] = {
    "generated": check_generated,
    "compose": check_compose,
    "kubernetes": check_kubernetes,
    "prometheus": check_prometheus,
    "dashboard": check_dashboard,
    "metrics": check_metrics,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO, help="the repository to check (default: this one)")
    parser.add_argument("--only", action="append", choices=sorted(CHECKS), help="run only these checks")
    args = parser.parse_args(argv)
    absent = tools.missing()
    if absent:
        sys.stderr.write(f"check-deploy: not installed: {', '.join(absent)}; run `make deploy-tools` "
                         "(python deploy/check/tools.py install)\n")
        return 2
    failed = []
    for name in args.only or CHECKS:
        started = time.monotonic()
        try:
            problems = CHECKS[name](args.root.resolve())
        except Exception as exc:  # noqa: BLE001 -- a check that crashes on a broken artefact is a failed check
            problems = [f"{type(exc).__name__}: {exc}"]
        took = time.monotonic() - started
        sys.stdout.write(f"{'ok  ' if not problems else 'FAIL'} {name:<11} {took:5.1f}s\n")
        for problem in problems:
            sys.stdout.write("     " + problem.replace("\n", "\n     ") + "\n")
        if problems:
            failed.append(name)
    if failed:
        sys.stdout.write(f"check-deploy: failed: {', '.join(failed)}\n")
        return 1
    sys.stdout.write("check-deploy: every artefact is valid\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
