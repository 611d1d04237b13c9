"""Merkle proof verification gives the reference verdict on every probe: valid proofs, corruptions, edge cases.

The probes and their verdicts are in ``vectors/merkle-probes.json`` (see ``vectors/README.md``). A probe marked
``stricter`` is one the reference accepts and this project refuses on purpose: a "hash" that is not 32 bytes, or a
claimed root of the empty tree that is not SHA-256 of the empty string.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from exchange.crypto.errors import MalformedHashError, MerkleError, RootMismatchError
from exchange.crypto.merkle import HASH_SIZE, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion

Probe = dict[str, Any]

_VECTORS = json.loads((Path(__file__).parent / "vectors" / "merkle-probes.json").read_text(encoding="utf-8"))
_PROBES: list[Probe] = [*_VECTORS["inclusion"], *_VECTORS["consistency"]]
_UPSTREAM = os.environ.get("EXCHANGE_MERKLE_TESTDATA")


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _hashes(probe: Probe) -> list[bytes]:
    named = [_b64(probe[k]) for k in ("leafHash", "root", "root1", "root2") if k in probe]
    return named + [_b64(p) for p in probe.get("proof") or []]


def _verdict(probe: Probe) -> MerkleError | None:
    proof = [_b64(p) for p in probe.get("proof") or []]
    try:
        if "leafIdx" in probe:
            verify_inclusion(
                _b64(probe["leafHash"]), probe["leafIdx"], probe["treeSize"], proof, _b64(probe["root"])
            )
        else:
            verify_consistency(probe["size1"], probe["size2"], _b64(probe["root1"]), _b64(probe["root2"]), proof)
    except MerkleError as exc:
        return exc
    return None


def _probe_id(probe: Probe) -> str:
    return ("inclusion " if "leafIdx" in probe else "consistency ") + probe["desc"]


@pytest.mark.parametrize("probe", _PROBES, ids=_probe_id)
def test_probe_gets_the_reference_verdict(probe: Probe) -> None:
    """Every probe the reference accepts verifies, every probe it refuses raises; stricter ones raise by design."""
    err = _verdict(probe)
    if "stricter" not in probe:
        assert (err is not None) == probe["wantErr"], f"reference wantErr={probe['wantErr']}, got {err!r}"
        return
    assert not probe["wantErr"]
    if any(len(h) != HASH_SIZE for h in _hashes(probe)):
        assert isinstance(err, MalformedHashError)
    else:
        assert probe["size1"] == 0
        assert isinstance(err, RootMismatchError)


def test_probes_cover_both_verdicts_and_the_reference_tree() -> None:
    """The file holds accepted and refused probes of both kinds, over the published reference tree."""
    for kind in ("inclusion", "consistency"):
        verdicts = {p["wantErr"] for p in _VECTORS[kind]}
        assert verdicts == {True, False}, kind
    hashes = [leaf_hash(bytes.fromhex(leaf)) for leaf in _VECTORS["leaves"]]
    valid = [p for p in _VECTORS["inclusion"] if p["desc"].startswith("valid ")]
    assert valid
    for p in valid:
        i, n = p["leafIdx"], p["treeSize"]
        assert _b64(p["leafHash"]) == hashes[i]
        assert _b64(p["root"]) == root(hashes[:n])
        assert [_b64(h) for h in p["proof"]] == inclusion_proof(i, hashes[:n])


def test_the_three_fixed_edges_are_probed() -> None:
    """0 -> 0 with another second root is refused; the probes for it and its neighbours carry 32-byte roots."""
    by_desc = {p["desc"]: p for p in _VECTORS["consistency"]}
    differs = by_desc["0->0, second root differs"]
    assert differs["wantErr"]
    assert all(len(h) == HASH_SIZE for h in _hashes(differs))
    assert isinstance(_verdict(differs), RootMismatchError)
    assert _verdict(by_desc["0->0, empty roots"]) is None
    assert _verdict(by_desc["0->5, empty proof"]) is None


@pytest.mark.skipif(not _UPSTREAM, reason="EXCHANGE_MERKLE_TESTDATA is not set")
def test_upstream_testdata_gets_the_reference_verdict() -> None:
    """transparency-dev/merkle's own testdata files, when pointed at, get their verdicts (malformed hashes aside)."""
    base = Path(_UPSTREAM or ".")
    files = sorted(f for kind in ("inclusion", "consistency") for f in (base / kind).rglob("*.json"))
    assert files, f"no inclusion/ or consistency/ JSON files under {base}"
    wrong = []
    for f in files:
        probe = json.loads(f.read_text(encoding="utf-8"))
        expected = probe["wantErr"] or any(len(h) != HASH_SIZE for h in _hashes(probe))
        err = _verdict(probe)
        if (err is not None) != expected:
            wrong.append(f"{f.relative_to(base)}: wantErr={probe['wantErr']}, got {err!r}")
    assert not wrong, "\n".join(wrong)
