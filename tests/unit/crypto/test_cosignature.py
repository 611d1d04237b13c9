"""C2SP tlog cosignatures (cosignature/v1, type 0x04): reference vectors, round trips and every-byte tampering."""

from __future__ import annotations

import base64
import pickle

import pytest

from exchange.crypto.checkpoint import Checkpoint, format_checkpoint, open_checkpoint, sign_checkpoint
from exchange.crypto.cosignature import (
    COSIGNATURE_TYPE,
    MAX_TIMESTAMP,
    Cosignature,
    CosignatureVerifier,
    Cosigner,
    cosignature_message,
    verify_cosignature_line,
)
from exchange.crypto.errors import (
    InvalidSignatureError,
    KeyFormatError,
    MalformedCheckpointError,
    MalformedNoteError,
    NoteError,
    UnverifiedNoteError,
)
from exchange.crypto.keys import Signer
from exchange.crypto.merkle import leaf_hash
from exchange.crypto.note import NoteSignature, Verifier, compute_key_id, open_note

# A reference vector. The private key is the witness key of transparency-dev/witness, witness/witness_test.go
# (wSK, a sumdb/note Ed25519 signer key). The cosignature lines and the type-0x04 verifier key were produced
# with transparency-dev/formats at commit 0b850f1a7b4a5b70deeacac6535e4b8023809d21: note.NewSignerForCosignatureV1
# (wSK) signing the two checkpoint texts below with golang.org/x/mod/sumdb/note.Sign, and
# note.VKeyToCosignatureV1 of the matching verifier key wPK. The first text is the checkpoint of the
# c2sp.org/tlog-cosignature example, the second mNext of witness_test.go.
REF_SKEY = "PRIVATE+KEY+witness+f13a86db+AaLa/dfyBhyo/m0Z7WCi98ENVZWtrP8pxgRNrx7tIWiA"
REF_NOTE_VKEY = "witness+f13a86db+AdYV1Ztajd9BvyjP2HgpwrqYL6TjOwIjGMOq8Bu42xbN"
REF_VKEY = "witness+24b37851+BNYV1Ztajd9BvyjP2HgpwrqYL6TjOwIjGMOq8Bu42xbN"
REF_TIME = 1796166916
REF_VECTORS = [
    (
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        "— witness JLN4UQAAAABrD1UEIAFPgsw5CFY4J1mvY749uu65WqZqt59WEkdM2WI3Sejnzyepx108pOsRXOeWUPWjSGAddQmdYrD9HV"
        "/OJ3bACA==\n",
    ),
    (
        "monkeys\n8\nV8K9aklZ4EPB+RMOk1/8VsJUdFZR77GDtZUQq84vSbo=\n",
        "— witness JLN4UQAAAABrD1UE/YQsWsgUqHe2IbxAqMoI42NHPCJXQraxddxkL3KFY2MC3iybKcbt198BMpm5K1LQm3D8G79fdANrxt"
        "kp5LZBBA==\n",
    ),
]

# Published in transparency-dev/formats note/note_cosigv1_test.go (TestCoSigV1NewVerifier, TestCoSigV1Timestamp).
REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
TIMESTAMP_SIG = ("ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnF"
                 "BOBA==")

# The example of c2sp.org/tlog-cosignature: its witness line and the signed message it shows (no key published).
SPEC_TEXT = REF_VECTORS[0][0]
SPEC_LINE = ("— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZ"
             "qhf5nNo0xUe+mbIUBkBIfZ+qnA==\n")
SPEC_MESSAGE = ("cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
                "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")

WITNESS = Cosigner(Signer.generate("witness.example/w1"))
LOG = Signer.generate("exchange-audit")
TEXT = format_checkpoint(Checkpoint("test.local/access-log", 42, leaf_hash(b"root"), ("ext line",)))
T = 1_700_000_000


def test_the_reference_cosignatures_are_reproduced_byte_for_byte() -> None:
    """Ed25519 is deterministic: our cosigner with the reference key and time makes the reference lines."""
    cosigner = Cosigner(Signer.from_private_key_string(REF_SKEY))
    assert (cosigner.key_id, cosigner.verifier_key()) == ("24b37851", REF_VKEY)
    for text, line in REF_VECTORS:
        assert cosigner.cosign(text, REF_TIME).line() == line


def test_the_reference_cosignatures_verify_with_the_reference_key() -> None:
    verifier = CosignatureVerifier.from_key_string(REF_VKEY)
    assert verifier.key_string() == REF_VKEY
    for text, line in REF_VECTORS:
        cosig = verify_cosignature_line(text, line, verifier)
        assert (cosig.name, cosig.key_id, cosig.timestamp) == ("witness", "24b37851", REF_TIME)


def test_the_same_key_has_another_key_id_as_a_note_signer() -> None:
    """Type 0x01 and type 0x04 key ids of one key differ, so a cosignature never passes as a log signature."""
    note_verifier = Verifier.from_key_string(REF_NOTE_VKEY)
    cosig_verifier = CosignatureVerifier.from_key_string(REF_VKEY)
    assert note_verifier.public_key.public_bytes_raw() == cosig_verifier.public_key.public_bytes_raw()
    assert (note_verifier.key_id, cosig_verifier.key_id) == ("f13a86db", "24b37851")
    text, line = REF_VECTORS[0]
    with pytest.raises(UnverifiedNoteError):
        open_note(text + "\n" + line, [note_verifier])
    assert note_verifier != cosig_verifier
    assert cosig_verifier != note_verifier


def test_published_verifier_key_and_timestamp_vectors() -> None:
    remora = CosignatureVerifier.from_key_string(REMORA_VKEY)
    assert (remora.name, remora.key_id) == ("remora.n621.de", "da77ade7")
    assert compute_key_id(remora.name, remora.public_key.public_bytes_raw(), COSIGNATURE_TYPE) == "da77ade7"
    raw = base64.b64decode(TIMESTAMP_SIG)
    cosig = Cosignature.from_note_signature(NoteSignature("w", raw[:4].hex(), raw[4:]))
    assert cosig.timestamp == 1727964367


def test_the_spec_example_frames_a_timestamped_signature_and_its_message() -> None:
    raw = base64.b64decode(SPEC_LINE.split(" ")[2])
    cosig = Cosignature.from_note_signature(NoteSignature("witness.example.com/w1", raw[:4].hex(), raw[4:]))
    assert (cosig.key_id, cosig.timestamp, len(cosig.signature)) == ("8d66cf3f", 1679315147, 64)
    assert cosig.line() == SPEC_LINE
    assert cosignature_message(SPEC_TEXT, 1679315147) == SPEC_MESSAGE.encode()


def test_a_cosignature_round_trips_through_its_line_and_a_note() -> None:
    cosig = WITNESS.cosign(TEXT, T)
    verifier = WITNESS.verifier()
    assert verify_cosignature_line(TEXT, cosig.line(), verifier) == cosig
    assert verify_cosignature_line(TEXT, cosig.line().rstrip("\n"), verifier) == cosig
    assert CosignatureVerifier.from_key_string(WITNESS.verifier_key()) == verifier
    # Log signature and cosignature on one note, verified together.
    note = sign_checkpoint(Checkpoint("test.local/access-log", 42, leaf_hash(b"root"), ("ext line",)), [LOG])
    cosigned = note + cosig.line()
    opened = open_note(cosigned, [LOG.verifier(), verifier])
    assert opened.signers == {(LOG.name, LOG.key_id), (WITNESS.name, WITNESS.key_id)}
    checkpoint = open_checkpoint(cosigned, [verifier], log_key=LOG.verifier())
    assert checkpoint.size == 42


def test_cosign_checkpoint_is_cosign_of_its_text() -> None:
    checkpoint = Checkpoint("o", 3, leaf_hash(b"x"))
    assert WITNESS.cosign_checkpoint(checkpoint, T) == WITNESS.cosign(format_checkpoint(checkpoint), T)


def test_every_byte_of_the_signature_line_is_covered() -> None:
    """Flipping any bit of key id, timestamp or signature makes the line fail; never a silent pass."""
    line = WITNESS.cosign(TEXT, T).line()
    raw = base64.b64decode(line.split(" ")[2])
    assert len(raw) == 4 + 8 + 64
    for i in range(len(raw)):
        for bit in (0x01, 0x80):
            bad = bytearray(raw)
            bad[i] ^= bit
            forged = f"— {WITNESS.name} {base64.b64encode(bytes(bad)).decode()}\n"
            with pytest.raises((InvalidSignatureError, UnverifiedNoteError)):
                verify_cosignature_line(TEXT, forged, WITNESS.verifier())


def test_every_byte_of_the_checkpoint_text_is_covered() -> None:
    line = WITNESS.cosign(TEXT, T).line()
    data = TEXT.encode()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] = ord("A") if bad[i] != ord("A") else ord("B")  # never a newline: the note stays one note
        with pytest.raises(NoteError):
            verify_cosignature_line(bytes(bad).decode(), line, WITNESS.verifier())


def test_a_cosignature_at_another_time_or_by_another_witness_fails() -> None:
    cosig = WITNESS.cosign(TEXT, T)
    moved = Cosignature(cosig.name, cosig.key_id, T + 1, cosig.signature)
    with pytest.raises(InvalidSignatureError):
        verify_cosignature_line(TEXT, moved.line(), WITNESS.verifier())
    other = Cosigner(Signer.generate(WITNESS.name))
    with pytest.raises(UnverifiedNoteError):  # another key id: not this witness's signature at all
        verify_cosignature_line(TEXT, other.cosign(TEXT, T).line(), WITNESS.verifier())
    impostor = Cosignature(WITNESS.name, WITNESS.key_id, T, other.cosign(TEXT, T).signature)
    with pytest.raises(InvalidSignatureError):
        verify_cosignature_line(TEXT, impostor.line(), WITNESS.verifier())


def test_a_plain_ed25519_signature_is_not_a_cosignature_and_back() -> None:
    """Domain separation: the same key's signature over the bare text does not verify as a cosignature."""
    signer = Signer.generate("w")
    cosigner = Cosigner(signer)
    plain = signer.sign(TEXT.encode())
    forged = Cosignature(cosigner.name, cosigner.key_id, T, plain)
    with pytest.raises(InvalidSignatureError):
        verify_cosignature_line(TEXT, forged.line(), cosigner.verifier())
    cosig = cosigner.cosign(TEXT, T)
    with pytest.raises(InvalidSignatureError):
        signer.verifier().verify(TEXT.encode(), cosig.signature)


@pytest.mark.parametrize("signature", [b"", bytes(71), bytes(73), bytes(64)])
def test_signature_bytes_of_the_wrong_length_are_refused(signature: bytes) -> None:
    with pytest.raises(InvalidSignatureError):
        WITNESS.verifier().verify(TEXT.encode(), signature)
    with pytest.raises(MalformedNoteError):
        Cosignature.from_note_signature(NoteSignature("w", "00000000", signature))


def test_timestamps_are_bounded() -> None:
    with pytest.raises(ValueError, match=r"1\.\.2"):
        WITNESS.cosign(TEXT, 0)  # a witness never omits the time
    with pytest.raises(ValueError, match=r"1\.\.2"):
        WITNESS.cosign(TEXT, MAX_TIMESTAMP + 1)
    top = WITNESS.cosign(TEXT, MAX_TIMESTAMP)
    assert verify_cosignature_line(TEXT, top.line(), WITNESS.verifier()).timestamp == MAX_TIMESTAMP
    too_late = (MAX_TIMESTAMP + 1).to_bytes(8, "big") + top.signature
    with pytest.raises(InvalidSignatureError):
        WITNESS.verifier().verify(TEXT.encode(), too_late)
    with pytest.raises(MalformedNoteError):
        Cosignature.from_note_signature(NoteSignature("w", "00000000", too_late))
    with pytest.raises(ValueError, match="outside"):
        cosignature_message(TEXT, -1)


@pytest.mark.parametrize("text", ["", "one line\n", "o\n1\n", "o\n01\nAAAA\n", "o\n1\nnot base64\n",
                                  "o\n1\n" + "A" * 43])
def test_only_checkpoint_texts_are_cosigned_or_verified(text: str) -> None:
    with pytest.raises(MalformedCheckpointError):
        WITNESS.cosign(text, T)
    with pytest.raises(InvalidSignatureError):
        WITNESS.verifier().verify(text.encode(), bytes(72))


@pytest.mark.parametrize(
    "bad",
    [
        REF_VKEY[:-1],
        REF_VKEY.replace("24b37851", "24b37852"),  # wrong key id
        REF_VKEY.replace("witness+", "witnesz+"),  # name changed
        REF_NOTE_VKEY,  # type 0x01: a note verifier key, not a cosignature key
        "witness+24b37851+" + base64.b64encode(b"\x04" + bytes(31)).decode(),  # short key
        "witness+24b37851+BNYV1Ztajd9BvyjP2HgpwrqYL6TjOwIjGMOq8Bu42xbN=",  # not canonical base64
        "witness+24b37851",
        "wit ness+24b37851+BNYV1Ztajd9BvyjP2HgpwrqYL6TjOwIjGMOq8Bu42xbN",
    ],
)
def test_mangled_witness_keys_are_refused(bad: str) -> None:
    with pytest.raises(KeyFormatError):
        CosignatureVerifier.from_key_string(bad)


def test_a_key_string_read_from_a_file_keeps_its_newline_out() -> None:
    assert CosignatureVerifier.from_key_string(REF_VKEY + "\n").key_string() == REF_VKEY


def test_a_cosignature_line_must_be_one_line() -> None:
    line = WITNESS.cosign(TEXT, T).line()
    with pytest.raises(MalformedNoteError):
        verify_cosignature_line(TEXT, line + line, WITNESS.verifier())
    with pytest.raises(MalformedNoteError):
        verify_cosignature_line(TEXT, "- not a signature line\n", WITNESS.verifier())


def test_the_cosigner_never_shows_or_gives_up_its_key() -> None:
    assert repr(WITNESS) == f"Cosigner(name={WITNESS.name!r}, key_id={WITNESS.key_id!r})"
    assert "PRIVATE" not in str(WITNESS)
    with pytest.raises(TypeError):
        pickle.dumps(WITNESS)
    assert repr(WITNESS.verifier()).startswith("CosignatureVerifier('witness.example/w1+")
    assert len({WITNESS.verifier(), WITNESS.verifier()}) == 1
