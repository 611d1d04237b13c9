"""The policy bundle: registry, agreements and restrictions as one canonical JSON document with a SHA-256 id.

The router publishes the bundle to ``policy.bundles`` and every decision names its id, so an auditor can rebuild
exactly the policies a decision was taken under (:func:`read_bundle`) and take it again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from exchange.policy.canonical import canonical_json
from exchange.policy.errors import PolicyError
from exchange.policy.models import PolicySet
from exchange.safeparse import SafeParseError, parse_json

BUNDLE_LIMIT = 16 * 1024 * 1024
"""The largest policy bundle read back (registry and agreements of a whole country fit many times over)."""

__all__ = ["PolicyBundle", "bundle_id", "make_bundle", "read_bundle"]


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    """A policy bundle: ``data`` is its canonical JSON, ``id`` is ``"sha256:" + hex(SHA-256(data))``."""

    id: str
    data: bytes
    registry: Mapping[str, Any]
    policy_set: PolicySet


def bundle_id(data: bytes) -> str:
    """The id of a bundle whose canonical bytes are ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _document(policy_set: PolicySet, registry: Mapping[str, Any]) -> dict[str, Any]:
    # Sorted so the id does not depend on the order files were read in.
    agreements = sorted(policy_set.agreements, key=lambda a: (a.id, a.version))
    restrictions = sorted(policy_set.restrictions, key=lambda r: r.id)
    return {
        "registry": dict(registry),
        "agreements": [a.model_dump(mode="json", exclude_none=True) for a in agreements],
        "restrictions": [r.model_dump(mode="json", exclude_none=True) for r in restrictions],
    }


def make_bundle(policy_set: PolicySet, registry: Mapping[str, Any]) -> PolicyBundle:
    """Build the bundle of ``policy_set`` and ``registry`` (the trust registry's canonical, JSON-ready form)."""
    data = canonical_json(_document(policy_set, registry))
    return PolicyBundle(bundle_id(data), data, registry, policy_set)


def read_bundle(data: bytes) -> PolicyBundle:
    """Parse published bundle bytes back into policies; raise :class:`PolicyError` unless they are exactly the
    canonical bundle of what they contain."""
    try:
        document = parse_json(data.decode("utf-8"), "policy bundle", limit=BUNDLE_LIMIT)
    except (UnicodeDecodeError, SafeParseError) as exc:
        raise PolicyError(f"policy bundle is not JSON: {exc}") from exc
    if not isinstance(document, dict) or set(document) != {"registry", "agreements", "restrictions"}:
        raise PolicyError("policy bundle must be an object with registry, agreements and restrictions")
    registry = document["registry"]
    if not isinstance(registry, dict):
        raise PolicyError("policy bundle: registry must be an object")
    try:
        policy_set = PolicySet.model_validate(
            {"agreements": document["agreements"], "restrictions": document["restrictions"]}
        )
    except ValidationError as exc:
        raise PolicyError(f"policy bundle: {exc}") from exc
    bundle = make_bundle(policy_set, registry)
    if bundle.data != data:
        raise PolicyError("policy bundle is not in canonical form; its id would not be reproducible")
    return bundle
