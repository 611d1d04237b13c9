"""Least privilege on the broker, derived from the trust registry and the agreements.

Every identity that talks to Kafka gets its own principal with exactly the topics, groups and transactional ids it
uses:

- an **agency** may write the ingress topic of each record type it is authoritative for, and read its own
  delivery topic (as consumer groups ``<agency>.*``, the Subscriber's default being ``<agency>.subscriber``);
  its connectors use transactional ids ``connector.<agency>*``;
- the **router** reads ingress and consent, keeps its replay guard on ``router.seen``, writes the delivery
  topics of the recipients of agreements, open data, decisions, quarantine and policy bundles, in transactions
  ``exchange-router.*``;
- the **sequencer** reads the decisions and writes the access log, its state and its checkpoints;
- the **tracker** reads the access log, checkpoints and policy bundles, and writes its lookups' decisions;
- the **consent manager** reads and writes the consent topic;
- the **public** principal reads the open-data topics.

Topic names carry ``prefix`` (``EXCHANGE_TOPIC_PREFIX``), as the clients do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from exchange.policy.models import PolicySet
from exchange.registry import Registry
from exchange.topics import TopicInputs

__all__ = [
    "CONSENT_PRINCIPAL",
    "PUBLIC_PRINCIPAL",
    "ROUTER_PRINCIPAL",
    "SEQUENCER_PRINCIPAL",
    "TRACKER_PRINCIPAL",
    "AclRule",
    "KafkaPrincipal",
    "derive_principals",
]

ROUTER_PRINCIPAL = "exchange-router"
SEQUENCER_PRINCIPAL = "exchange-audit-sequencer"
TRACKER_PRINCIPAL = "exchange-tracker"
CONSENT_PRINCIPAL = "exchange-consent"
PUBLIC_PRINCIPAL = "exchange-public"

ResourceType = Literal["topic", "group", "cluster", "transactionalId"]
Pattern = Literal["literal", "prefix"]
Operation = Literal["Read", "Write", "Describe", "Create", "Delete", "Alter", "DescribeConfigs", "AlterConfigs",
                    "IdempotentWrite", "ClusterAction", "All"]

_READ: tuple[Operation, ...] = ("Read", "Describe")
_WRITE: tuple[Operation, ...] = ("Write", "Describe")
_READ_WRITE: tuple[Operation, ...] = ("Read", "Write", "Describe")


@dataclass(frozen=True)
class AclRule:
    """``operations`` allowed on one resource (a name, or every name starting with it)."""

    resource_type: ResourceType
    name: str
    operations: tuple[Operation, ...]
    pattern: Pattern = "literal"


@dataclass(frozen=True)
class KafkaPrincipal:
    """One identity on the broker and what it may do."""

    name: str
    description: str
    kind: Literal["agency", "service", "public"]
    rules: tuple[AclRule, ...]


def _topics(prefix: str, names: Iterable[str], operations: tuple[Operation, ...]) -> list[AclRule]:
    return [AclRule("topic", prefix + name, operations) for name in names]


def _group(name: str, pattern: Pattern = "literal") -> AclRule:
    return AclRule("group", name, ("Read",), pattern)


def _transactional(name: str, pattern: Pattern = "literal") -> AclRule:
    return AclRule("transactionalId", name, ("Write", "Describe"), pattern)


def derive_principals(registry: Registry, policies: PolicySet, inputs: TopicInputs, *,
                      prefix: str = "") -> list[KafkaPrincipal]:
    """The principals and their ACLs: the agencies in registry order, then the exchange's services."""
    recipients = sorted({agreement.recipient for agreement in policies.agreements if agreement.delivery == "agency"})
    opendata = sorted({agreement.record_type for agreement in policies.agreements
                       if agreement.delivery == "opendata"})
    principals: list[KafkaPrincipal] = []
    for agency in registry.agencies:
        owned = sorted(agency.authoritative_for)
        rules = [*_topics(prefix, (f"ingress.{record_type}" for record_type in owned), _WRITE),
                 *_topics(prefix, [f"delivery.{agency.id}"], _READ),
                 _group(f"{prefix}{agency.id}.", "prefix")]
        if owned:
            rules.append(_transactional(f"{prefix}connector.{agency.id}", "prefix"))
        role = ("publishes " + ", ".join(owned) if owned else "publishes nothing")
        role += "; receives under " + (f"{sum(a.recipient == agency.id for a in policies.agreements)} agreement(s)"
                                       if agency.id in recipients else "no agreement")
        principals.append(KafkaPrincipal(agency.id, f"{agency.legal_name}: {role}", "agency", tuple(rules)))

    ingress = [f"ingress.{record_type}" for record_type in inputs.record_types]
    # The router writes only to the recipients some agreement delivers to: a new agreement means new ACLs.
    deliveries = [f"delivery.{recipient}" for recipient in inputs.recipients if recipient in recipients]
    opendata_topics = [f"opendata.{record_type}" for record_type in inputs.opendata_types]
    principals.extend([
        KafkaPrincipal(ROUTER_PRINCIPAL, "the policy router", "service", (
            *_topics(prefix, ingress, _READ),
            *_topics(prefix, ["consent.events"], _READ),
            *_topics(prefix, ["router.seen", "policy.bundles"], _READ_WRITE),
            *_topics(prefix, [*deliveries, *opendata_topics, "audit.decisions", "exchange.quarantine"], _WRITE),
            _group(f"{prefix}exchange-router"),
            _group(f"{prefix}exchange-consent-view"),
            _transactional(f"{prefix}exchange-router.", "prefix"),
        )),
        KafkaPrincipal(SEQUENCER_PRINCIPAL, "the access-log sequencer", "service", (
            *_topics(prefix, ["audit.decisions"], _READ),
            *_topics(prefix, ["audit.log", "audit.sequencer", "audit.checkpoints"], _READ_WRITE),
            _group(f"{prefix}exchange-audit-sequencer"),
            _transactional(f"{prefix}exchange-audit-sequencer"),
        )),
        KafkaPrincipal(TRACKER_PRINCIPAL, "the citizen data tracker", "service", (
            *_topics(prefix, ["audit.log", "audit.checkpoints", "policy.bundles"], _READ),
            *_topics(prefix, ["audit.decisions"], _WRITE),
            _group(f"{prefix}tracker-indexer"),
        )),
        KafkaPrincipal(CONSENT_PRINCIPAL, "the consent manager", "service", (
            *_topics(prefix, ["consent.events"], _READ_WRITE),
            _group(f"{prefix}exchange-consent-view"),
        )),
        KafkaPrincipal(PUBLIC_PRINCIPAL, "anyone reading open data", "public", (
            *_topics(prefix, opendata_topics or [f"opendata.{t}" for t in opendata], _READ),
            _group(f"{prefix}public.", "prefix"),
        )),
    ])
    return principals


def principal_names(principals: Sequence[KafkaPrincipal]) -> list[str]:
    """The principals' names, in order (for messages and tests)."""
    return [principal.name for principal in principals]
