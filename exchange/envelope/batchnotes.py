"""Checking an event against its publisher's batch signature: the note, the inclusion proof, the key's validity.

The router (:class:`~exchange.envelope.EnvelopeVerifier`) and recipients (``exchange.delivery``) both check, for
each event, that its digest is a leaf of the Merkle tree whose root a key of the event's source signed, and that
the key was valid at the event's time. A :class:`BatchNoteVerifier` does it for both and does it as rarely as it
can: a note's signature is checked once and remembered (by the note's exact text), and the full proof of one
event vouches for its sibling leaf, so that sibling is checked by comparing bytes instead of hashing its path.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from exchange.crypto.errors import (
    CryptoError,
    InvalidSignatureError,
    MerkleError,
    UnknownVerifierError,
    UnverifiedNoteError,
)
from exchange.crypto.merkle import leaf_hash, root_from_inclusion_proof
from exchange.crypto.note import Verifier, open_note
from exchange.envelope import errors as e
from exchange.envelope.batch import BatchNote, decode_proof, encode_proof, parse_batch_text
from exchange.registry import Registry
from exchange.registry import errors as r

__all__ = ["BatchNoteVerifier", "SignedBatch"]

_KEY_ERRORS: dict[type[r.KeyRejectedError], type[e.KeyRejectedError]] = {
    r.UnknownKeyError: e.UnknownKeyError,
    r.KeyNotYetValidError: e.KeyNotYetValidError,
    r.KeyExpiredError: e.KeyExpiredError,
    r.KeyRevokedError: e.KeyRevokedError,
}
_SIBLING_LIMIT = 16_384


class SignedBatch:
    """A batch note whose signature verified: what it says and the key that signed it.

    Compared by identity: one object per opened note, which the sibling proofs it vouches for refer to.
    """

    __slots__ = ("batch", "key_id")

    def __init__(self, batch: BatchNote, key_id: str) -> None:
        self.batch = batch
        self.key_id = key_id
        """The key of the batch's source that signed the note."""

    def __repr__(self) -> str:
        return f"SignedBatch(source={self.batch.source!r}, size={self.batch.size}, key_id={self.key_id!r})"


class BatchNoteVerifier:
    """Verifies events' batch signatures against one registry; remembers opened notes and proven siblings.

    Every failure raises the :class:`~exchange.envelope.VerificationError` subclass that names the check. The
    registry is immutable, so what was verified against it stays verified.
    """

    def __init__(self, registry: Registry, *, cache_size: int = 4096) -> None:
        self.registry = registry
        self._cache_size = cache_size
        self._notes: OrderedDict[str, SignedBatch] = OrderedDict()
        # (batch, the sibling's encoded proof) → the sibling's leaf hash, both taken from a proof that led to the
        # signed root: the sibling's own proof with that leaf leads to the same root by the same hashes.
        self._siblings: dict[tuple[SignedBatch, bytes], bytes] = {}

    def verify(self, note: str, source: str, moment: datetime, digest: bytes, proof: bytes) -> str:
        """Check that the event with ``digest`` and inclusion ``proof`` is in the batch that ``note`` signs for
        ``source``, by a key valid at ``moment``; returns that key's id.

        Checks, in order: :meth:`open`, :meth:`check_inclusion`, :meth:`check_key`.
        """
        signed = self.open(note, source, moment)
        self.check_inclusion(digest, proof, signed)
        self.check_key(source, signed.key_id, moment)
        return signed.key_id

    def open(self, note: str, source: str, moment: datetime) -> SignedBatch:
        """The batch ``note`` signs, if a key of ``source`` valid at ``moment`` signed it (checked once per note).

        Raises :class:`~exchange.envelope.BadSignatureError` (a signature does not verify, or the note is for
        another source), a :class:`~exchange.envelope.KeyRejectedError` subclass (no signature by a usable key of
        ``source``; chained to the :class:`~exchange.crypto.errors.UnverifiedNoteError` that lists why each was
        ignored) or :class:`~exchange.envelope.MalformedEnvelopeError`.
        """
        cached = self._notes.get(note)
        if cached is not None:
            self._notes.move_to_end(note)
            return cached
        trust = _SourceKeys(self.registry, source, moment)
        try:
            opened = open_note(note, trust)
        except InvalidSignatureError as exc:
            raise e.BadSignatureError(f"the batch note's signature by {source} does not verify") from exc
        except UnverifiedNoteError as exc:
            raise trust.rejection() from exc
        except CryptoError as exc:
            if trust.rejected is not None:
                raise trust.rejection() from exc
            raise e.MalformedEnvelopeError(f"the batch note cannot be opened: {exc}") from exc
        batch = parse_batch_text(opened.text)
        if batch.source != source:
            raise e.BadSignatureError(f"the batch note is for {batch.source!r}, the event's source is {source!r}")
        signed = SignedBatch(batch, opened.signatures[0].key_id)
        self._notes[note] = signed
        if len(self._notes) > self._cache_size:
            self._notes.popitem(last=False)
        return signed

    def check_inclusion(self, digest: bytes, proof: bytes, signed: SignedBatch) -> None:
        """Check that ``proof`` leads from ``digest``'s leaf to the signed root.

        Raises :class:`~exchange.envelope.BadProofError` (a proof that is not one, or for another batch size)
        or :class:`~exchange.envelope.CommitmentMismatchError` (a valid proof to another root).
        """
        leaf = leaf_hash(digest)
        if self._siblings.pop((signed, proof), None) == leaf:
            return
        batch = signed.batch
        index, size, hashes = decode_proof(proof)
        if size != batch.size:
            raise e.BadProofError(f"the proof is for a batch of {size}, the note signs a batch of {batch.size}")
        try:
            computed = root_from_inclusion_proof(leaf, index, size, hashes)
        except MerkleError as exc:
            raise e.BadProofError(f"the inclusion proof is invalid: {exc}") from exc
        if computed != batch.root:
            raise e.CommitmentMismatchError("the event is not what the publisher signed: its fields, key, "
                                            "attributes or proof were altered")
        # Leaves 2k and 2k+1 hash together first and share the rest of their paths (RFC 9162 §2.1.3.1).
        sibling = index ^ 1
        if sibling < size:
            if len(self._siblings) >= _SIBLING_LIMIT:
                self._siblings.clear()
            self._siblings[(signed, encode_proof(sibling, size, [leaf, *hashes[1:]]))] = hashes[0]

    def check_key(self, source: str, key_id: str, moment: datetime) -> None:
        """Check that ``source``'s key ``key_id`` is valid at ``moment``; a KeyRejectedError subclass if not."""
        try:
            self.registry.verifier(source, key_id, moment)
        except r.KeyRejectedError as exc:
            raise _KEY_ERRORS.get(type(exc), e.KeyRejectedError)(str(exc)) from exc
        except r.RegistryError as exc:  # a source the registry does not know has no keys at all
            raise e.UnknownKeyError(str(exc)) from exc

    def __repr__(self) -> str:
        return f"BatchNoteVerifier(notes={len(self._notes)}, siblings={len(self._siblings)})"


class _SourceKeys:
    """The trust store for one batch note: the source's keys valid at the event's time; remembers why not."""

    def __init__(self, registry: Registry, source: str, moment: datetime) -> None:
        self._registry, self._source, self._moment = registry, source, moment
        self.rejected: r.RegistryError | None = None

    def verifier(self, name: str, key_id: str) -> Verifier:
        if name != self._source:
            raise UnknownVerifierError(name, key_id, "not the event's source")
        try:
            return self._registry.verifier(name, key_id, self._moment)
        except r.RegistryError as exc:
            self.rejected = exc
            raise UnknownVerifierError(name, key_id, str(exc)) from exc

    def rejection(self) -> e.VerificationError:
        if isinstance(self.rejected, r.KeyRejectedError):
            return _KEY_ERRORS.get(type(self.rejected), e.KeyRejectedError)(str(self.rejected))
        return e.UnknownKeyError(f"the batch note carries no signature by a registered key of {self._source}")
