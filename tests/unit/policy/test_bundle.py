"""The policy bundle: canonical bytes, a stable id, and a faithful round trip."""

from __future__ import annotations

import json

import pytest

from exchange.policy import PolicyError, PolicySet, bundle_id, canonical_json, make_bundle, read_bundle

from .support import REGISTRY, agreement, restriction


def _set(*, reverse: bool = False) -> PolicySet:
    agreements = (agreement(), agreement(id="pbb-address", recipient="police-board", purpose="law-enforcement"))
    return PolicySet(agreements=agreements[::-1] if reverse else agreements, restrictions=(restriction(),))


def test_bundle_is_canonical_json_with_a_sha256_id() -> None:
    """Sorted keys, no whitespace, UTF-8; id is sha256: + hex of exactly those bytes."""
    bundle = make_bundle(_set(), REGISTRY)
    document = json.loads(bundle.data)
    assert list(document) == ["agreements", "registry", "restrictions"]
    assert bundle.data == json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert "§24".encode() in bundle.data
    assert bundle.id == bundle_id(bundle.data)
    assert bundle.id.startswith("sha256:")
    assert len(bundle.id) == len("sha256:") + 64


def test_bundle_id_is_stable_across_orderings() -> None:
    """Neither the order of agreements nor the key order of the registry changes the id."""
    shuffled_registry = {"agencies": REGISTRY["agencies"][::-1]} | {"zeta": 1, "alpha": {"b": 2, "a": 1}}
    reordered = {"alpha": {"a": 1, "b": 2}, "zeta": 1} | {"agencies": REGISTRY["agencies"][::-1]}
    assert make_bundle(_set(), shuffled_registry).id == make_bundle(_set(reverse=True), reordered).id


def test_bundle_id_changes_when_an_agreement_changes() -> None:
    """Any change to an agreement, the registry or a restriction gives a new id."""
    base = make_bundle(_set(), REGISTRY).id
    changed = PolicySet(agreements=(agreement(fields=["person_id"]),), restrictions=(restriction(),))
    assert make_bundle(changed, REGISTRY).id != base
    assert make_bundle(_set(), {"agencies": []}).id != base
    assert make_bundle(PolicySet(agreements=_set().agreements), REGISTRY).id != base


def test_bundle_round_trips() -> None:
    """read_bundle gives back the same policies and id, so decisions can be re-evaluated later."""
    bundle = make_bundle(_set(), REGISTRY)
    again = read_bundle(bundle.data)
    assert again.id == bundle.id
    assert sorted(again.policy_set.agreements, key=lambda a: a.id) == sorted(bundle.policy_set.agreements,
                                                                             key=lambda a: a.id)
    assert again.policy_set.restrictions == bundle.policy_set.restrictions


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[]", b'{"agreements":[],"registry":{}}', b'{"agreements":[], "registry":{},"restrictions":[]}'],
)
def test_read_bundle_refuses_what_is_not_a_canonical_bundle(data: bytes) -> None:
    """Garbage, a missing part, or non-canonical spacing is refused."""
    with pytest.raises(PolicyError):
        read_bundle(data)


def test_canonical_json_refuses_what_json_cannot_say_exactly() -> None:
    """NaN and objects without a JSON form are refused rather than guessed at."""
    with pytest.raises(PolicyError):
        canonical_json({"x": float("nan")})
    with pytest.raises(PolicyError):
        canonical_json({"x": object()})
