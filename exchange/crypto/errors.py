"""Errors raised by the cryptographic primitives.

Every check that fails raises one of these; none of them ever carries private key material::

    ExchangeError
    └── CryptoError                      a cryptographic check or encoding failed
        ├── KeyFormatError               a key string or encoded key cannot be decoded
        ├── MerkleError                  a Merkle tree proof does not verify
        │   ├── MalformedHashError       a leaf hash, proof hash or root has the wrong length
        │   ├── InvalidIndexError        the leaf index is outside the tree
        │   ├── InvalidSizeError         the tree sizes are not 0 <= m <= n
        │   ├── ProofLengthError         the proof has the wrong number of hashes for its index and size
        │   └── RootMismatchError        the proof leads to a different root
        └── NoteError                    a signed note cannot be opened
            ├── MalformedNoteError       not a well-formed C2SP signed note
            ├── MalformedCheckpointError the note text is not a C2SP tlog checkpoint
            ├── UnknownVerifierError     no trusted key has this name and key id (the signature is ignored)
            ├── UnverifiedNoteError      no signature by a trusted key verifies: the note is refused
            └── InvalidSignatureError    a signature by a trusted key does not verify
"""

from __future__ import annotations

from exchange.errors import ExchangeError

__all__ = [
    "CryptoError",
    "InvalidIndexError",
    "InvalidSignatureError",
    "InvalidSizeError",
    "KeyFormatError",
    "MalformedCheckpointError",
    "MalformedHashError",
    "MalformedNoteError",
    "MerkleError",
    "NoteError",
    "ProofLengthError",
    "RootMismatchError",
    "UnknownVerifierError",
    "UnverifiedNoteError",
]


class CryptoError(ExchangeError):
    """A cryptographic check or encoding failed."""


class KeyFormatError(CryptoError):
    """A key string or an encoded key cannot be decoded; the message never repeats private material."""


class MerkleError(CryptoError):
    """A Merkle tree proof does not verify."""


class MalformedHashError(MerkleError):
    """A leaf hash, a hash in a proof or a root does not have :data:`~exchange.crypto.merkle.HASH_SIZE` bytes."""


class InvalidIndexError(MerkleError):
    """The leaf index is not inside the tree (``0 <= index < size``)."""


class InvalidSizeError(MerkleError):
    """The tree sizes of a consistency proof are not ``0 <= m <= n``."""


class ProofLengthError(MerkleError):
    """The proof has the wrong number of hashes for its index and tree size(s)."""


class RootMismatchError(MerkleError):
    """The proof leads to a root other than the expected one."""


class NoteError(CryptoError):
    """A signed note cannot be opened."""


class MalformedNoteError(NoteError):
    """The input is not a well-formed C2SP signed note (or the text cannot be signed as one)."""


class MalformedCheckpointError(NoteError):
    """The note text is not a well-formed C2SP tlog checkpoint, or not the one expected."""


class UnknownVerifierError(NoteError):
    """No trusted key has this name and key id; the signature it belongs to is ignored.

    A :class:`~exchange.crypto.note.Verifiers` implementation raises it from ``verifier()``; when a trust store
    knows the key but refuses it (revoked, expired), it chains the reason as ``__cause__``.
    """

    def __init__(self, name: str, key_id: str, reason: str | None = None) -> None:
        self.name = name
        self.key_id = key_id
        self.reason = reason
        detail = f": {reason}" if reason else ""
        super().__init__(f"unknown key {name}+{key_id}{detail}")


class UnverifiedNoteError(NoteError):
    """No signature by a trusted key verifies, so the note is refused (fail closed).

    ``ignored`` holds one :class:`UnknownVerifierError` per signature that was skipped, with the reason a trust
    store gave for each, so a caller can tell "unknown signer" from "revoked key".
    """

    def __init__(self, ignored: tuple[UnknownVerifierError, ...]) -> None:
        self.ignored = ignored
        detail = "; ".join(str(e) for e in ignored) if ignored else "no signatures"
        super().__init__(f"note has no signature by a trusted key ({detail})")


class InvalidSignatureError(NoteError):
    """A signature by a trusted key does not verify: the note was altered or forged."""

    def __init__(self, name: str, key_id: str) -> None:
        self.name = name
        self.key_id = key_id
        super().__init__(f"invalid signature for key {name}+{key_id}")
