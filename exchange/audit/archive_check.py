"""Checking an archive of the access log offline (:mod:`exchange.audit.archive` reads it): no broker.

:func:`verify_archive` replays the entries I..J-1 with :func:`~exchange.audit.verify.verify_integrity`, the tree
starting from the archive's leaf hashes of entries 0..I-1 and all its leaf hashes as the reference that names
an entry at fault once their root is the checkpoint's; every decision is taken again from the archived bundles
and consent records (the facts the entries record: no ingress record is in an archive). Then the last
checkpoint must cover exactly the entries present, the leaf hashes must be the entries', every archived bundle
must be one a decision names, and each required witness must have cosigned the covering checkpoint.

What the archive holds beyond the entries and checkpoints is checked against them: a bundle by its id (a
SHA-256 the entries name), the consent records by their offsets (the consent log is written without
transactions and kept whole, so its offsets have no gaps: a decision that saw offset N needs records 0..N-1),
and the consent issuer's key by the bundles (a consent artefact counts only under a key that an archived bundle
lists). The catalogue and the registry are taken as given.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exchange.audit.archive import ArchiveContents, MalformedArchiveError
from exchange.audit.names import AUDIT_IDENTITY
from exchange.audit.reevaluate import ConsentReplay, Reevaluator
from exchange.audit.sources import decision_checker
from exchange.audit.verify import Discrepancy, IntegrityReport, verify_integrity
from exchange.consent.signing import ConsentVerifier
from exchange.crypto.checkpoint import Checkpoint, open_checkpoint
from exchange.crypto.errors import CryptoError, InvalidSizeError
from exchange.crypto.merkle import leaf_hash, root
from exchange.crypto.note import Verifier, Verifiers
from exchange.errors import ExchangeError
from exchange.policy import ConsentSignatureError, PolicyError, read_bundle
from exchange.policy.consent import CONSENT_ISSUER
from exchange.registry import Registry
from exchange.schemas import Catalogue

__all__ = ["ArchiveReport", "verify_archive"]


@dataclass(frozen=True, slots=True)
class ArchiveReport:
    """What :func:`verify_archive` found. ``checkpoint`` is the covering (last) checkpoint once its signature
    verified; ``log_key_source`` is ``"argument"`` (keys the auditor gave) or ``"archive"`` (its own registry)."""

    contents: ArchiveContents
    integrity: IntegrityReport
    checkpoint: Checkpoint | None
    log_key_source: str
    witnesses: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.integrity.ok

    @property
    def first_error(self) -> Discrepancy | None:
        return self.integrity.first_error


def verify_archive(contents: ArchiveContents, log_keys: Sequence[Verifier] = (), witness_keys: Sequence[Verifier] = (),
                   *, reevaluate: bool = True, progress: Callable[[int], None] | None = None,
                   now: datetime | None = None) -> ArchiveReport:
    """Replay the archive (see the module docstring). Without ``log_keys`` the checkpoints are checked with the
    ``exchange-audit`` keys of the archive's own registry. Each of ``witness_keys`` must have cosigned the
    covering checkpoint. A registry or catalogue that cannot be loaded raises :class:`MalformedArchiveError`."""
    catalogue, registry = _catalogue(contents.schemas), _registry(contents.registry)
    at = now or datetime.now(UTC)
    verifiers: Verifiers | list[Verifier] = list(log_keys) or registry.note_verifiers(at, identities=[AUDIT_IDENTITY])
    source = "argument" if log_keys else "archive"
    leaves, first = contents.leaf_hashes, contents.first
    if len(leaves) < first:
        short = Discrepancy(len(leaves), "missing index", f"the archive's leaf hashes end at index {len(leaves)}, "
                            f"before its first entry {first}")
        return ArchiveReport(contents, IntegrityReport(0, 0, short), None, source)
    checker = _ArchiveReevaluator(catalogue, registry, contents) if reevaluate else None
    integrity = verify_integrity(enumerate(contents.entries, start=first), contents.checkpoints, verifiers,
                                 contents.origin, check_entry=decision_checker(catalogue, checker),
                                 progress=progress, reference=_Leaves(leaves), prefix_leaves=leaves[:first])
    if checker is not None:
        integrity = replace(integrity, decisions_reevaluated=checker.reevaluated)
    covering = _covering(contents, verifiers) if integrity.ok else None
    error = integrity.first_error or _coverage_error(contents, covering, checker) or \
        _witness_error(contents, witness_keys)
    witnesses = tuple(f"{w.name}+{w.key_id}" for w in witness_keys)
    return ArchiveReport(contents, replace(integrity, first_error=error), covering, source, witnesses)


class _Leaves:
    """The archive's leaf hashes as the reference tree of :func:`verify_integrity`."""

    def __init__(self, hashes: Sequence[bytes]) -> None:
        self._hashes = hashes

    def root(self, size: int) -> bytes:
        if not 0 <= size <= len(self._hashes):
            raise InvalidSizeError(f"the archive holds {len(self._hashes)} leaf hashes, not {size}")
        return root(self._hashes[:size])

    def leaf_hashes(self, start: int, end: int, size: int) -> list[bytes]:
        if not 0 <= start <= end <= size <= len(self._hashes):
            raise InvalidSizeError(f"leaves {start}..{end} are outside the archive's {len(self._hashes)}")
        return list(self._hashes[start:end])


class _ArchiveReevaluator(Reevaluator):
    """Re-evaluation from the archive's bundles and consent records. A decision that saw consent records the
    archive lacks is refused (the consent log's offsets are contiguous: it is written without transactions and
    kept whole), and consent artefacts count only under a key that one of the archived bundles lists."""

    def __init__(self, catalogue: Catalogue, registry: Registry, contents: ArchiveContents) -> None:
        allowed = set()
        for data in contents.bundles:
            try:
                allowed |= _consent_keys(read_bundle(data).registry)
            except PolicyError:
                continue  # unreadable: a decision naming it is reported as naming an unknown bundle
        verify = _BundledConsentKeys(registry, allowed)
        super().__init__(catalogue, contents.bundles, ConsentReplay(catalogue, verify, contents.consent))
        self._present = {p: _contiguous(offset for offset, _, _ in records)
                         for p, records in contents.consent.items()}
        self.named: set[str] = set()

    def check(self, index: int, entry: Mapping[str, Any]) -> Discrepancy | None:
        if entry["outcome"] != "REJECT":
            self.named.add(entry["bundle_id"])
            partition, seen = entry["ingress_partition"], entry.get("consent_offset") or 0
            if self._present.get(partition, 0) < seen:
                return Discrepancy(index, "missing consent record", f"the decision saw consent partition {partition}"
                                   f" up to offset {seen}; the archive lacks its record at offset "
                                   f"{self._present.get(partition, 0)}")
        found = super().check(index, entry)
        if found is not None and found.check == "unknown bundle":
            name = entry["bundle_id"].removeprefix("sha256:")
            return Discrepancy(index, found.check, f"the archive holds no policy bundle {entry['bundle_id']} "
                               f"(bundles/{name}.json is missing or altered)")
        return found


class _BundledConsentKeys:
    """The registry's check of a consent signature, for keys an archived policy bundle lists only."""

    def __init__(self, registry: Registry, allowed: set[tuple[str, str]]) -> None:
        self._verify = ConsentVerifier(registry)
        self._keys = {k for k in _consent_keys(registry.canonical()) if k in allowed}

    def __call__(self, message: bytes, signature: bytes) -> None:
        self._verify(message, signature)
        if not any(key_id == signature[:4].hex() for key_id, _ in self._keys):
            raise ConsentSignatureError(f"key {CONSENT_ISSUER}+{signature[:4].hex()} of the archive's registry is "
                                        "in none of its policy bundles")


def _consent_keys(canonical: Mapping[str, Any]) -> set[tuple[str, str]]:
    """``(key id, base64 public key)`` of the consent issuer's keys in a registry's canonical form."""
    found: set[tuple[str, str]] = set()
    for section in ("agencies", "services"):
        for identity in canonical.get(section) or ():
            if isinstance(identity, dict) and identity.get("id") == CONSENT_ISSUER:
                found |= {(str(k.get("key_id")), str(k.get("public_key"))) for k in identity.get("signing_keys") or ()
                          if isinstance(k, dict)}
    return found


def _covering(contents: ArchiveContents, verifiers: Verifiers | list[Verifier]) -> Checkpoint | None:
    if not contents.checkpoints:
        return None
    return open_checkpoint(contents.checkpoints[-1], verifiers, origin=contents.origin)  # verified already


def _coverage_error(contents: ArchiveContents, covering: Checkpoint | None,
                    checker: _ArchiveReevaluator | None) -> Discrepancy | None:
    """The last checkpoint covers exactly the entries; the leaf hashes are theirs; every bundle is named."""
    if covering is None:
        return Discrepancy(contents.first, "missing checkpoint", "the archive holds no checkpoint: nothing signed "
                           "covers its entries")
    covered = covering.size
    if covered < contents.end:
        start = max(covered, contents.first)
        return Discrepancy(start, "missing checkpoint", f"entries {start} to {contents.end - 1} are in the archive "
                           "but no checkpoint in it covers them (the covering checkpoint was removed, or entries "
                           "were added)")
    leaves = [*contents.leaf_hashes[:contents.first], *map(leaf_hash, contents.entries)]
    for at, (found, expected) in enumerate(zip(contents.leaf_hashes, leaves, strict=False)):
        if found != expected:
            return Discrepancy(at, "leaf hash", f"the archive's leaf hash of entry {at} is not the entry's")
    if len(contents.leaf_hashes) != len(leaves):
        return Discrepancy(min(len(leaves), len(contents.leaf_hashes)), "leaf hash", f"the archive holds "
                           f"{len(contents.leaf_hashes)} leaf hashes for {len(leaves)} entries")
    extra = sorted({f"sha256:{hashlib.sha256(b).hexdigest()}" for b in contents.bundles} - checker.named) \
        if checker is not None else []
    if extra:
        return Discrepancy(None, "extra member", f"policy bundle {extra[0]} is in the archive, but no decision in "
                           "it names that bundle")
    return None


def _witness_error(contents: ArchiveContents, witness_keys: Sequence[Verifier]) -> Discrepancy | None:
    for witness in witness_keys if contents.checkpoints else ():
        try:
            open_checkpoint(contents.checkpoints[-1], [witness])
        except CryptoError as exc:
            return Discrepancy(None, "missing cosignature", f"the covering checkpoint has no valid cosignature by "
                               f"the witness {witness.name}+{witness.key_id}: {exc}")
    return None


def _catalogue(schemas: Mapping[str, bytes]) -> Catalogue:
    with tempfile.TemporaryDirectory(prefix="exchange-archive-") as tmp:
        for name, data in schemas.items():
            target = Path(tmp, "schemas", *name.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        try:
            return Catalogue.load(Path(tmp, "schemas"))
        except ExchangeError as exc:
            raise MalformedArchiveError(f"the archive's schemas do not load: {exc}") from None


def _registry(data: bytes) -> Registry:
    try:
        return Registry.from_yaml(data.decode(), source="registry.yaml")
    except (UnicodeDecodeError, ExchangeError) as exc:
        raise MalformedArchiveError(f"the archive's registry does not load: {exc}") from None


def _contiguous(offsets: Iterable[int]) -> int:
    """How many offsets from 0 there are without a gap."""
    count = 0
    for offset in offsets:
        if offset != count:
            break
        count += 1
    return count
