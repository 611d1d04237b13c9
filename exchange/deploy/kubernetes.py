"""The Kubernetes manifests: Strimzi ``kafka.strimzi.io/v1`` resources and the exchange's own workloads.

Each function returns the documents of one file as plain dictionaries; :mod:`exchange.deploy.generate` writes
them as YAML. The cluster runs in KRaft mode on one node pool of three combined controller+broker nodes, with
SCRAM-SHA-512 authentication on both listeners (internal for the exchange's services, TLS on a load balancer for
the agencies) and the simple authorizer: nothing is allowed that a KafkaUser does not grant.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from exchange.deploy.acls import (
    ROUTER_PRINCIPAL,
    SEQUENCER_PRINCIPAL,
    TRACKER_PRINCIPAL,
    KafkaPrincipal,
)
from exchange.topics import TopicSpec

__all__ = ["CLUSTER", "NAMESPACE", "kafka_cluster", "kafka_topics", "kafka_users", "services"]

Document = dict[str, Any]

CLUSTER = "exchange"
NAMESPACE = "exchange"
BROKERS = 3
BOOTSTRAP = f"{CLUSTER}-kafka-bootstrap:9092"
METRICS_PORT = 9100
_PART_OF = {"app.kubernetes.io/part-of": "exchange"}


def _metadata(name: str, **labels: str) -> Document:
    return {"name": name, "namespace": NAMESPACE, "labels": {**_PART_OF, **labels}}


def kafka_cluster(kafka_version: str) -> list[Document]:
    """The Kafka cluster and its node pool."""
    pool = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaNodePool",
        "metadata": _metadata("combined", **{"strimzi.io/cluster": CLUSTER}),
        "spec": {
            "replicas": BROKERS,
            "roles": ["controller", "broker"],
            "storage": {"type": "jbod", "volumes": [
                {"id": 0, "type": "persistent-claim", "size": "100Gi", "deleteClaim": False,
                 "kraftMetadata": "shared"},
            ]},
            "resources": {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "4Gi"}},
        },
    }
    kafka = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "Kafka",
        "metadata": _metadata(CLUSTER),
        "spec": {
            "kafka": {
                "version": kafka_version,
                "listeners": [
                    # The exchange's own services, inside the cluster.
                    {"name": "scram", "port": 9092, "type": "internal", "tls": False,
                     "authentication": {"type": "scram-sha-512"}},
                    # Agencies, from outside: TLS (the cluster CA is in the Secret exchange-cluster-ca-cert) and
                    # the same SCRAM users.
                    {"name": "external", "port": 9094, "type": "loadbalancer", "tls": True,
                     "authentication": {"type": "scram-sha-512"}},
                ],
                "authorization": {"type": "simple"},
                "config": {
                    "auto.create.topics.enable": False,
                    "default.replication.factor": BROKERS,
                    "min.insync.replicas": 2,
                    "offsets.topic.replication.factor": BROKERS,
                    "transaction.state.log.replication.factor": BROKERS,
                    "transaction.state.log.min.isr": 2,
                },
            },
            "entityOperator": {"topicOperator": {}, "userOperator": {}},
        },
    }
    return [kafka, pool]


def _resource_name(topic: str) -> str:
    """A Kubernetes object name for a topic: lower case, ``_`` as ``-``."""
    name = re.sub(r"[^a-z0-9.-]", "-", topic.lower()).strip(".-")
    return name[:253]


def _config_value(value: str) -> int | str:
    return int(value) if re.fullmatch(r"-?\d+", value) else value


def kafka_topics(specs: Sequence[TopicSpec]) -> list[Document]:
    """One KafkaTopic per concrete topic of ``deploy/topics.yaml``."""
    documents = []
    for spec in specs:
        name = _resource_name(spec.name)
        body: Document = {"partitions": spec.partitions, "replicas": spec.replication_factor,
                          "config": {key: _config_value(value) for key, value in sorted(spec.config.items())}}
        if name != spec.name:
            body = {"topicName": spec.name, **body}
        documents.append({"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic",
                          "metadata": _metadata(name, **{"strimzi.io/cluster": CLUSTER}), "spec": body})
    return documents


def kafka_users(principals: Sequence[KafkaPrincipal]) -> list[Document]:
    """One KafkaUser per principal; the User Operator puts its SCRAM password in a Secret of the same name."""
    documents = []
    for principal in principals:
        acls = []
        for rule in principal.rules:
            resource: Document = {"type": rule.resource_type, "name": rule.name, "patternType": rule.pattern}
            acls.append({"type": "allow", "resource": resource, "operations": list(rule.operations)})
        documents.append({
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "KafkaUser",
            "metadata": {**_metadata(principal.name, **{"strimzi.io/cluster": CLUSTER,
                                                        "exchange/principal-kind": principal.kind}),
                         "annotations": {"exchange/description": principal.description}},
            "spec": {"authentication": {"type": "scram-sha-512"},
                     "authorization": {"type": "simple", "acls": acls}},
        })
    return documents


def _kafka_env(principal: str) -> list[Document]:
    return [
        {"name": "EXCHANGE_BOOTSTRAP", "value": BOOTSTRAP},
        {"name": "EXCHANGE_SECURITY_PROTOCOL", "value": "SASL_PLAINTEXT"},
        {"name": "EXCHANGE_SASL_MECHANISM", "value": "SCRAM-SHA-512"},
        {"name": "EXCHANGE_SASL_USERNAME", "value": principal},
        {"name": "EXCHANGE_SASL_PASSWORD",
         "valueFrom": {"secretKeyRef": {"name": principal, "key": "password"}}},
        {"name": "EXCHANGE_LOG_FORMAT", "value": "json"},
        {"name": "EXCHANGE_METRICS_ADDR", "value": "0.0.0.0"},  # noqa: S104 - Prometheus scrapes the pod
    ]


_SECURITY = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
             "capabilities": {"drop": ["ALL"]}}


def _container(name: str, image: str, args: list[str], env: list[Document], ports: list[Document],  # noqa: PLR0917 -- the six parts of every container, in manifest order
               mounts: list[Document], *, cpu: str = "250m", memory: str = "512Mi") -> Document:
    container: Document = {
        "name": name, "image": image, "args": args, "env": env,
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}},
        "securityContext": _SECURITY,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *mounts],  # noqa: S108 -- the container's own /tmp
    }
    if ports:
        container["ports"] = ports
    # Probed on a served port only: /metrics listens on the loopback (exchange.metrics.serve_metrics), which a
    # kubelet cannot reach.
    served = [port["name"] for port in ports if port["name"] != "metrics"]
    if served:
        container["readinessProbe"] = {"tcpSocket": {"port": served[0]}, "periodSeconds": 10}
        container["livenessProbe"] = {"tcpSocket": {"port": served[0]}, "periodSeconds": 30, "failureThreshold": 4}
    return container


def _deployment(name: str, replicas: int, containers: list[Document], volumes: list[Document], *,
                singleton: bool, metrics: bool) -> Document:
    labels = {"app.kubernetes.io/name": name}
    annotations = ({"prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS_PORT)} if metrics else {})
    template: Document = {"metadata": {"labels": {**_PART_OF, **labels}}, "spec": {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 60,
        "containers": containers,
        "volumes": [{"name": "tmp", "emptyDir": {}}, *volumes],
    }}
    if annotations:
        template["metadata"]["annotations"] = annotations
    spec: Document = {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template}
    if singleton:
        # One instance at a time: its transactional id fences an older one, but two must never overlap on one volume.
        spec["strategy"] = {"type": "Recreate"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(name, **labels), "spec": spec}


def _stateful_set(name: str, replicas: int, containers: list[Document], volumes: list[Document]) -> Document:
    """Replicas with stable names (``<name>-0``, ``<name>-1``, ...): a router restarted under the same id fences
    its predecessor's open transaction at once instead of leaving it to time out."""
    deployment = _deployment(name, replicas, containers, volumes, singleton=False, metrics=True)
    spec = {**deployment["spec"], "serviceName": name, "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"}}
    return {**deployment, "kind": "StatefulSet", "spec": spec}


def _service(name: str, ports: list[tuple[str, int]], *, headless: bool = False) -> Document:
    spec: Document = {"selector": {"app.kubernetes.io/name": name},
                      "ports": [{"name": port_name, "port": port, "targetPort": port_name}
                                for port_name, port in ports]}
    if headless:
        spec = {"clusterIP": "None", **spec}
    return {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(name, **{"app.kubernetes.io/name": name}),
            "spec": spec}


def _budget(name: str, replicas: int) -> Document:
    limit = {"minAvailable": replicas - 1} if replicas > 1 else {"maxUnavailable": 1}
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _metadata(name, **{"app.kubernetes.io/name": name}),
            "spec": {**limit, "selector": {"matchLabels": {"app.kubernetes.io/name": name}}}}


def _claim(name: str, size: str) -> Document:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _metadata(name),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}


def _secret_volume(name: str, secret: str) -> Document:
    return {"name": name, "secret": {"secretName": secret, "defaultMode": 0o400}}


def services(image: str, *, routers: int = 2, trackers: int = 2) -> list[Document]:
    """Workloads, Services, PodDisruptionBudgets and volumes of the router (a StatefulSet, for stable router ids),
    the sequencer, the witness and the tracker (Deployments).

    Keys come from Secrets made by the operator (``exchange-keystore``: the router's, consent manager's and
    sequencer's private keys; ``exchange-witness-key``; ``exchange-tracker`` with the database URL and the token
    issuer's key), never from the image.
    """
    metrics_port = {"name": "metrics", "containerPort": METRICS_PORT}
    keystore = {"name": "keystore", "mountPath": "/keystore", "readOnly": True}
    documents: list[Document] = []

    router_env = [*_kafka_env(ROUTER_PRINCIPAL), {"name": "EXCHANGE_KEYSTORE", "value": "/keystore"},
                  {"name": "EXCHANGE_METRICS_PORT", "value": str(METRICS_PORT)},
                  {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    router = _container("router", image, ["router", "run", "--id", "$(POD_NAME)"], router_env, [metrics_port],
                        [keystore], cpu="1", memory="1Gi")
    documents += [
        _stateful_set("exchange-router", routers, [router], [_secret_volume("keystore", "exchange-keystore")]),
        _service("exchange-router", [("metrics", METRICS_PORT)], headless=True),
        _budget("exchange-router", routers),
    ]

    state = {"name": "audit", "mountPath": "/var/lib/exchange"}
    sequencer_env = [*_kafka_env(SEQUENCER_PRINCIPAL), {"name": "EXCHANGE_KEYSTORE", "value": "/keystore"},
                     {"name": "EXCHANGE_AUDIT_STATE_DIR", "value": "/var/lib/exchange/state"},
                     {"name": "EXCHANGE_AUDIT_TILES_DIR", "value": "/var/lib/exchange/tiles"},
                     {"name": "EXCHANGE_METRICS_PORT", "value": str(METRICS_PORT)}]
    sequencer = _container("sequencer", image, ["audit", "sequencer", "run", "--witness",
                                                "http://exchange-witness:8080"],
                           sequencer_env, [], [keystore, state])
    tiles = _container("tiles", image, ["audit", "serve", "--tiles", "/var/lib/exchange/tiles",
                                        "--host", "0.0.0.0", "--port", "8080"],  # noqa: S104 -- a pod's own address
                       [{"name": "EXCHANGE_LOG_FORMAT", "value": "json"}],
                       [{"name": "http", "containerPort": 8080}], [{**state, "readOnly": True}],
                       cpu="100m", memory="256Mi")
    documents += [
        _claim("exchange-audit", "20Gi"),
        _deployment("exchange-sequencer", 1, [sequencer, tiles],
                    [_secret_volume("keystore", "exchange-keystore"),
                     {"name": "audit", "persistentVolumeClaim": {"claimName": "exchange-audit"}}],
                    singleton=True, metrics=False),
        _service("exchange-sequencer", [("http", 8080)]),
        _budget("exchange-sequencer", 1),
    ]

    witness = _container("witness", image, ["audit", "witness", "run", "--log-key", "$(EXCHANGE_AUDIT_LOG_KEY)",
                                            "--key", "/witness/key", "--state", "/var/lib/witness",
                                            "--host", "0.0.0.0", "--port", "8080"],  # noqa: S104 -- a pod's address
                         [{"name": "EXCHANGE_LOG_FORMAT", "value": "json"},
                          {"name": "EXCHANGE_AUDIT_LOG_KEY",
                           "valueFrom": {"secretKeyRef": {"name": "exchange-witness-key", "key": "log-key"}}}],
                         [{"name": "http", "containerPort": 8080}],
                         [{"name": "witness-key", "mountPath": "/witness", "readOnly": True},
                          {"name": "witness-state", "mountPath": "/var/lib/witness"}], cpu="100m", memory="256Mi")
    documents += [
        _claim("exchange-witness", "1Gi"),
        _deployment("exchange-witness", 1, [witness],
                    [_secret_volume("witness-key", "exchange-witness-key"),
                     {"name": "witness-state", "persistentVolumeClaim": {"claimName": "exchange-witness"}}],
                    singleton=True, metrics=False),
        _service("exchange-witness", [("http", 8080)]),
        _budget("exchange-witness", 1),
    ]

    tracker_env = [*_kafka_env(TRACKER_PRINCIPAL), {"name": "EXCHANGE_METRICS_PORT", "value": str(METRICS_PORT)},
                   {"name": "EXCHANGE_TRACKER_DATABASE_URL",
                    "valueFrom": {"secretKeyRef": {"name": "exchange-tracker", "key": "database-url"}}},
                   {"name": "EXCHANGE_TRACKER_ISSUER_KEY",
                    "valueFrom": {"secretKeyRef": {"name": "exchange-tracker", "key": "issuer-key"}}}]
    tracker = _container("tracker", image, ["tracker", "serve", "--host", "0.0.0.0",  # noqa: S104 -- pod address
                                            "--port", "8470", "--secure-cookie", "--no-index"],
                         tracker_env, [{"name": "http", "containerPort": 8470}, metrics_port], [])
    # The web instances share the index database; one indexer follows audit.log into it.
    indexer = _container("indexer", image, ["tracker", "index", "--follow"], tracker_env[:-1], [], [])
    documents += [
        _deployment("exchange-tracker", trackers, [tracker], [], singleton=False, metrics=True),
        _service("exchange-tracker", [("http", 8470), ("metrics", METRICS_PORT)]),
        _budget("exchange-tracker", trackers),
        _deployment("exchange-tracker-indexer", 1, [indexer], [], singleton=True, metrics=False),
        _budget("exchange-tracker-indexer", 1),
    ]
    # The consent manager is a command (`exchange consent ...`) run by operators or a case system with the
    # exchange-consent KafkaUser's credentials; it has no long-running workload here.
    return documents
