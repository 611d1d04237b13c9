"""C2SP tlog checkpoints: format, parse, sign and open."""

from __future__ import annotations

import base64

import pytest

from exchange.crypto.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from exchange.crypto.errors import InvalidSignatureError, MalformedCheckpointError, UnverifiedNoteError
from exchange.crypto.keys import Signer
from exchange.crypto.merkle import EMPTY_ROOT

# The example checkpoint text of https://c2sp.org/tlog-checkpoint.
SPEC_EXAMPLE = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def test_spec_example_parses_and_formats_back() -> None:
    """The specification's example checkpoint parses and formats back to the same text."""
    cp = parse_checkpoint(SPEC_EXAMPLE)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert format_checkpoint(cp) == SPEC_EXAMPLE


def test_extension_lines_round_trip() -> None:
    """Extension lines follow the root hash and survive a round trip."""
    cp = Checkpoint("exchange.example/access-log", 0, EMPTY_ROOT, ("bundle abc", "time 2025-01-01T00:00:00Z"))
    assert parse_checkpoint(format_checkpoint(cp)) == cp


def test_signed_checkpoint_opens_with_the_log_key() -> None:
    """A checkpoint signed by the audit key opens with its verifier and the expected origin."""
    audit = Signer.generate("exchange-audit")
    cp = Checkpoint("exchange-audit", 42, EMPTY_ROOT)
    note = sign_checkpoint(cp, [audit])
    assert open_checkpoint(note, [audit.verifier()], origin="exchange-audit") == cp


def test_checkpoint_of_another_log_is_refused() -> None:
    """A validly signed checkpoint with another origin is refused when an origin is expected."""
    audit = Signer.generate("exchange-audit")
    note = sign_checkpoint(Checkpoint("other-log", 1, EMPTY_ROOT), [audit])
    with pytest.raises(MalformedCheckpointError, match="other-log"):
        open_checkpoint(note, [audit.verifier()], origin="exchange-audit")


def test_checkpoint_signed_by_an_unknown_key_is_refused() -> None:
    """A checkpoint signed by a key the reader does not trust is refused."""
    note = sign_checkpoint(Checkpoint("exchange-audit", 1, EMPTY_ROOT), [Signer.generate("exchange-audit")])
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(note, [Signer.generate("exchange-audit").verifier()])


ROOT_B64 = base64.b64encode(EMPTY_ROOT).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"log\n12\n{ROOT_B64}",  # no final newline
        "log\n12\n",  # two lines
        f"log\n012\n{ROOT_B64}\n",  # leading zero
        f"log\n-1\n{ROOT_B64}\n",
        f"log\n1_000\n{ROOT_B64}\n",
        f"log\n\u0661\u0662\n{ROOT_B64}\n",  # non-ASCII digits
        f"\n12\n{ROOT_B64}\n",  # empty origin
        "log\n12\nnot base64!\n",
        f"log\n12\n{base64.b64encode(b'short').decode()}\n",  # not 32 bytes
        f"log\n12\n{ROOT_B64}\n\n",  # empty extension line
        f"log\n+1\n{ROOT_B64}\n",
        f"log\n 1\n{ROOT_B64}\n",
        f"log\n1 \n{ROOT_B64}\n",
        f"log\n\n{ROOT_B64}\n",
        f"log\n0x10\n{ROOT_B64}\n",
        f"log\n18446744073709551616\n{ROOT_B64}\n",  # 2^64
        f"log\n99999999999999999999\n{ROOT_B64}\n",  # 20 digits, above 2^64 - 1
        f"log\n{'1' * 5000}\n{ROOT_B64}\n",  # longer than int() converts
    ],
)
def test_malformed_checkpoints_are_rejected(text: str) -> None:
    """Missing lines, bad sizes, bad origins, bad hashes and empty extension lines are malformed.

    transparency-dev/formats/log refuses the same sizes (strconv.ParseUint(s, 10, 64)) except leading zeros, which
    it accepts and the C2SP spec forbids; it also takes roots of any length and empty extension lines, which the
    spec (RFC 6962 root, "extension lines MUST be non-empty") does not allow either.
    """
    with pytest.raises(MalformedCheckpointError):
        parse_checkpoint(text)


def test_tree_sizes_are_uint64() -> None:
    """The largest uint64 is a tree size and round-trips; 2^64 is refused when parsed and when constructed."""
    text = f"log\n18446744073709551615\n{ROOT_B64}\n"
    cp = parse_checkpoint(text)
    assert cp.size == MAX_TREE_SIZE == 2**64 - 1
    assert format_checkpoint(cp) == text
    with pytest.raises(MalformedCheckpointError):
        Checkpoint("log", MAX_TREE_SIZE + 1, EMPTY_ROOT)


def test_log_key_requires_the_logs_own_signature() -> None:
    """With log_key, as in ParseCheckpoint, a checkpoint signed only by a trusted witness is refused."""
    log, witness = Signer.generate("exchange-audit"), Signer.generate("witness.example")
    cp = Checkpoint("exchange-audit", 7, EMPTY_ROOT)
    witnessed = sign_checkpoint(cp, [witness])
    assert open_checkpoint(witnessed, [log.verifier(), witness.verifier()]) == cp  # any trusted key, by default
    with pytest.raises(MalformedCheckpointError, match="log key"):
        open_checkpoint(witnessed, [witness.verifier()], log_key=log.verifier())
    both = sign_checkpoint(cp, [witness, log])
    assert open_checkpoint(both, [witness.verifier()], log_key=log.verifier(), origin="exchange-audit") == cp
    assert open_checkpoint(both, [], log_key=log.verifier()) == cp
    forged = sign_checkpoint(cp, [Signer.generate("exchange-audit")])
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(forged, [witness.verifier()], log_key=log.verifier())
    tampered = both.replace("\n7\n", "\n8\n")
    with pytest.raises(InvalidSignatureError):
        open_checkpoint(tampered, [], log_key=log.verifier())


def test_checkpoint_fields_are_checked_on_construction() -> None:
    """A checkpoint cannot be built with a negative size, a short hash or a multi-line origin."""
    with pytest.raises(MalformedCheckpointError):
        Checkpoint("log", -1, EMPTY_ROOT)
    with pytest.raises(MalformedCheckpointError):
        Checkpoint("log", 2**64, EMPTY_ROOT)
    with pytest.raises(MalformedCheckpointError):
        Checkpoint("log", 1, b"short")
    with pytest.raises(MalformedCheckpointError):
        Checkpoint("log\nforged", 1, EMPTY_ROOT)
