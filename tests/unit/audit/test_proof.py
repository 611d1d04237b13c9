"""Proofs about the access log: the C2SP tlog-proof and consistency-proof formats (round trips, every malformed
form refused with its reason), their checks against keys and tampering, a cross-check with exchange.crypto.merkle
on trees of many sizes, and the prove / check-proof commands on a tiles directory."""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from exchange.audit import AuditError
from exchange.audit.proof import (
    CONSISTENCY_HEADER,
    PROOF_HEADER,
    CheckedConsistency,
    CheckedInclusion,
    ConsistencyProof,
    EntryMismatchError,
    InclusionProof,
    MalformedProofError,
    ProofError,
    ProofHashError,
    ProofSignatureError,
    ProofSizeError,
    ProofWitnessError,
    check_consistency_proof,
    check_proof,
    format_consistency_proof,
    format_proof,
    parse_consistency_proof,
    parse_proof,
)
from exchange.audit.tile_writer import TileWriter
from exchange.audit.tiles import TileReader
from exchange.cli import _proof as proof_cli
from exchange.crypto import merkle
from exchange.crypto.checkpoint import Checkpoint, format_checkpoint, sign_checkpoint
from exchange.crypto.cosignature import Cosigner
from exchange.crypto.errors import MerkleError
from exchange.crypto.keys import Signer
from exchange.crypto.note import Verifier
from exchange.errors import ConfigError
from exchange.settings import get_settings

ORIGIN = "test.local/access-log"
LOG = Signer.generate("exchange-audit")
LOG_KEY = Verifier(LOG.name, LOG.public_key)
IMPOSTOR = Signer.generate("exchange-audit")  # the same name, another key
IMPOSTOR_KEY = Verifier(IMPOSTOR.name, IMPOSTOR.public_key)
W1, W2 = Cosigner(Signer.generate("witness.test/w1")), Cosigner(Signer.generate("witness.test/w2"))
ENTRIES = [b"decision %d" % i for i in range(300)]
LEAVES = [merkle.leaf_hash(e) for e in ENTRIES]


def _note(size: int, *, signer: Signer = LOG, witnesses: Sequence[Cosigner] = (W1,), origin: str = ORIGIN,
          leaves: Sequence[bytes] = LEAVES) -> str:
    checkpoint = Checkpoint(origin, size, merkle.root(leaves[:size]))
    note = sign_checkpoint(checkpoint, [signer])
    return note + "".join(w.cosign_checkpoint(checkpoint, 1_700_000_000 + i).line() for i, w in enumerate(witnesses))


def _proof(index: int, size: int, *, signer: Signer = LOG, witnesses: Sequence[Cosigner] = (W1,),
           origin: str = ORIGIN) -> InclusionProof:
    hashes = tuple(merkle.inclusion_proof(index, LEAVES[:size]))
    return InclusionProof(index, hashes, _note(size, signer=signer, witnesses=witnesses, origin=origin), LEAVES[index])


def _consistency(old: int, new: int) -> ConsistencyProof:
    return ConsistencyProof(old, new, tuple(merkle.consistency_proof(old, LEAVES[:new])), _note(new), _note(old))


def _check(text: str | InclusionProof, entry: bytes | None = None, *,
           witnesses: Sequence[Verifier] = (W1.verifier(),)) -> CheckedInclusion:
    """Check against the log's key, requiring W1's cosignature (unless told otherwise)."""
    return check_proof(text, entry, LOG_KEY, witnesses, origin=ORIGIN)


def _check_consistency(proof: str | ConsistencyProof) -> CheckedConsistency:
    return check_consistency_proof(proof, LOG_KEY, [W1.verifier()], origin=ORIGIN)


# -- the tlog-proof format ---------------------------------------------------------------------------------------

def test_the_format_is_the_spec_s_and_round_trips() -> None:
    proof = _proof(5, 11)
    text = format_proof(proof)
    lines = text.split("\n")
    assert lines[0] == PROOF_HEADER == "c2sp.org/tlog-proof@v1"
    assert lines[1] == f"extra {base64.b64encode(LEAVES[5]).decode()}"
    assert lines[2] == "index 5"
    assert lines[3:3 + len(proof.hashes)] == [base64.b64encode(h).decode() for h in proof.hashes]
    assert text.endswith("\n\n" + proof.checkpoint)
    assert parse_proof(text) == parse_proof(text.encode()) == proof
    for variant in (InclusionProof(0, (), _note(1)), InclusionProof(7, proof.hashes, proof.checkpoint, b"")):
        assert parse_proof(format_proof(variant)) == variant  # no extra line; an empty extra ("extra ")
    assert format_proof(InclusionProof(0, (), _note(1))) == f"{PROOF_HEADER}\nindex 0\n\n{_note(1)}"


HASH = base64.b64encode(bytes(32)).decode()
NOTE = _note(3)
GOOD_HEAD = f"{PROOF_HEADER}\nindex 1\n{HASH}\n"


@pytest.mark.parametrize(("text", "reason"), [
    ("", "ends before the header"),
    (f"c2sp.org/tlog-proof@v2\nindex 0\n\n{NOTE}", "not 'c2sp.org/tlog-proof@v1'"),
    (f"{PROOF_HEADER} \nindex 0\n\n{NOTE}", "first line"),
    (f"{PROOF_HEADER}\r\nindex 0\r\n\r\n{NOTE}", "first line"),
    (PROOF_HEADER, "ends before the header"),
    (f"{PROOF_HEADER}\n", "ends before the index line"),
    (f"{PROOF_HEADER}\n\n\n{NOTE}", "line 2 is '', not 'index N'"),
    (f"{PROOF_HEADER}\nindex\n\n{NOTE}", "not 'index N'"),
    (f"{PROOF_HEADER}\nindex 05\n\n{NOTE}", "not 'index N'"),
    (f"{PROOF_HEADER}\nindex -1\n\n{NOTE}", "not 'index N'"),
    (f"{PROOF_HEADER}\nindex +1\n\n{NOTE}", "not 'index N'"),
    (f"{PROOF_HEADER}\nindex 1 \n\n{NOTE}", "not 'index N'"),
    (f"{PROOF_HEADER}\nindex  1\n\n{NOTE}", "not 'index N'"),
    (f"{PROOF_HEADER}\nIndex 1\n\n{NOTE}", "not 'index N'"),
    (f"{PROOF_HEADER}\nindex \u0661\n\n{NOTE}", "not 'index N'"),  # ARABIC-INDIC DIGIT ONE, a str.isdigit()
    (f"{PROOF_HEADER}\nindex 18446744073709551616\n\n{NOTE}", "exceeds 2^64-1"),
    (f"{PROOF_HEADER}\nindex 123456789012345678901\n\n{NOTE}", "not 'index N'"),
    (f"{PROOF_HEADER}\nextra !!\nindex 0\n\n{NOTE}", "extra data is not canonical base64"),
    (f"{PROOF_HEADER}\nextra QR==\nindex 0\n\n{NOTE}", "extra data is not canonical base64"),
    (f"{PROOF_HEADER}\nextra QQ==\nextra QQ==\nindex 0\n\n{NOTE}", "line 3 is 'extra QQ==', not 'index N'"),
    (f"{PROOF_HEADER}\nextraQQ==\nindex 0\n\n{NOTE}", "line 2 is 'extraQQ==', not 'index N'"),
    (f"{PROOF_HEADER}\nindex 0\nextra QQ==\n\n{NOTE}", "line 3 is not canonical base64"),
    (f"{GOOD_HEAD}{HASH[:-1]}\n\n{NOTE}", "line 4 is not canonical base64"),
    (f"{GOOD_HEAD}{HASH} \n\n{NOTE}", "line 4 is not canonical base64"),
    (f"{GOOD_HEAD}{HASH[:-2]}B=\n\n{NOTE}", "line 4 is not canonical base64"),
    (f"{GOOD_HEAD}{base64.b64encode(bytes(31)).decode()}\n\n{NOTE}", "31-byte value, not a 32-byte hash"),
    (f"{GOOD_HEAD}{base64.b64encode(bytes(33)).decode()}\n\n{NOTE}", "33-byte value"),
    (f"{PROOF_HEADER}\nindex 1\n" + f"{HASH}\n" * 65 + f"\n{NOTE}", "more than 64 inclusion proof hashes"),
    (GOOD_HEAD, "ends before the empty line before the checkpoint"),
    (f"{GOOD_HEAD}\n", "has no checkpoint after the empty line"),
    (f"{GOOD_HEAD}\n\n{NOTE}", "the checkpoint is not a checkpoint"),
    (f"{GOOD_HEAD}\n{format_checkpoint(Checkpoint(ORIGIN, 3, bytes(32)))}", "the checkpoint is not a signed note"),
    (f"{GOOD_HEAD}\n{NOTE[:-1]}", "the checkpoint is not a signed note"),
    (f"{GOOD_HEAD}\n{NOTE}\n", "the checkpoint is not a signed note"),
    (f"{GOOD_HEAD}\n{NOTE}garbage\n", "the checkpoint is not a signed note"),
    (f"{GOOD_HEAD}\n{NOTE.replace(chr(10) + chr(10), chr(10) + chr(10) + 'x', 1)}", "not a signed note"),
    (f"{GOOD_HEAD}\nan origin\n3\n\n— exchange-audit AAAAAAAA\n", "not a checkpoint"),
])
def test_a_malformed_proof_is_refused_with_its_reason(text: str, reason: str) -> None:
    with pytest.raises(MalformedProofError, match=re.escape(reason)) as caught:
        parse_proof(text)
    assert isinstance(caught.value, AuditError)


def test_a_proof_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(MalformedProofError, match="not UTF-8"):
        parse_proof(format_proof(_proof(1, 3)).encode() + b"\xff\n")


# -- checking an inclusion proof ---------------------------------------------------------------------------------

def test_a_good_proof_checks_with_and_without_the_entry() -> None:
    text = format_proof(_proof(41, 300, witnesses=(W1, W2)))
    got = check_proof(text, ENTRIES[41], [IMPOSTOR_KEY, LOG_KEY], [W2.verifier(), W1.verifier()], origin=ORIGIN)
    assert (got.index, got.checkpoint.size, got.leaf_hash, got.entry_checked) == (41, 300, LEAVES[41], True)
    assert got.checkpoint.root_hash == merkle.root(LEAVES)
    assert got.log_key == f"{LOG.name}+{LOG.key_id}"
    assert got.witnesses == (f"{W2.name}+{W2.key_id}", f"{W1.name}+{W1.key_id}")
    alone = check_proof(text, None, LOG_KEY, origin=ORIGIN)  # no witness required; the leaf hash from extra
    assert (alone.entry_checked, alone.leaf_hash, alone.witnesses) == (False, LEAVES[41], ())
    bare = InclusionProof(41, _proof(41, 300).hashes, _proof(41, 300).checkpoint)  # a proof without extra
    assert check_proof(format_proof(bare), ENTRIES[41], LOG_KEY, origin=ORIGIN).entry_checked
    with pytest.raises(MalformedProofError, match="no leaf hash"):
        check_proof(format_proof(bare), None, LOG_KEY, origin=ORIGIN)


def test_a_proof_for_one_index_fails_for_every_other() -> None:
    size = 37
    for i in range(size):
        proof = _proof(i, size)
        for j in range(size + 3):
            if j == i:
                continue
            moved = InclusionProof(j, proof.hashes, proof.checkpoint, proof.extra)
            with pytest.raises(ProofSizeError if j >= size else ProofHashError):
                _check(format_proof(moved))
            with pytest.raises(ProofSizeError if j >= size else ProofHashError):  # with that index's own entry
                _check(format_proof(InclusionProof(j, proof.hashes, proof.checkpoint)),
                       ENTRIES[j] if j < size else b"x")


def test_every_altered_hash_fails() -> None:
    proof = _proof(77, 300)
    text = format_proof(proof)
    for k in range(len(proof.hashes)):
        for bit in (0, 7, 255):
            hashes = list(proof.hashes)
            hashes[k] = (int.from_bytes(hashes[k], "big") ^ (1 << bit)).to_bytes(32, "big")
            with pytest.raises(ProofHashError, match="leads to root"):
                _check(format_proof(InclusionProof(77, tuple(hashes), proof.checkpoint, proof.extra)))
    forged_leaf = bytes(32)
    with pytest.raises(ProofHashError, match="leads to root"):
        _check(format_proof(InclusionProof(77, proof.hashes, proof.checkpoint, forged_leaf)))
    with pytest.raises(EntryMismatchError, match=LEAVES[77].hex()):
        _check(format_proof(InclusionProof(77, proof.hashes, proof.checkpoint, forged_leaf)), ENTRIES[77])
    assert _check(text, ENTRIES[77])


def test_a_truncated_or_padded_proof_fails() -> None:
    proof = _proof(100, 300)
    short, long_ = proof.hashes[:-1], (*proof.hashes, proof.hashes[0])
    for hashes in (short, proof.hashes[1:], long_, (proof.hashes[0], *proof.hashes), ()):
        with pytest.raises(ProofHashError, match=f"has {len(hashes)} hashes, expected {len(proof.hashes)}"):
            _check(format_proof(InclusionProof(100, hashes, proof.checkpoint, proof.extra)))
    text = format_proof(proof)
    for cut in range(len(text)):  # every prefix of the file: never accepted (the witness's line is required)
        with pytest.raises(ProofError):
            _check(text[:cut])
    for pad in ("x", "\n", "\n\n", " "):
        with pytest.raises(MalformedProofError):
            _check(text + pad)


def test_the_checkpoint_must_be_the_log_s_and_cosigned() -> None:
    with pytest.raises(ProofSignatureError, match=r"not signed by the log key: .*unknown key exchange-audit"):
        _check(format_proof(_proof(3, 10, signer=IMPOSTOR, witnesses=())), witnesses=())
    with pytest.raises(ProofSignatureError, match=r"no signature by the log key .*, only by witnesses"):
        _check(format_proof(_proof(3, 10, signer=IMPOSTOR)))  # the witness cosigned what the impostor signed
    with pytest.raises(ProofSignatureError, match=re.escape("for the log 'other.local/log'")):
        _check(format_proof(_proof(3, 10, origin="other.local/log")))
    good = _proof(3, 10, witnesses=(W1,))
    lines = good.checkpoint.split("\n")
    only_witness = "\n".join([*lines[:4], lines[5], ""])  # the log's signature line removed
    with pytest.raises(ProofSignatureError, match="only by witnesses"):
        _check(format_proof(InclusionProof(3, good.hashes, only_witness, good.extra)))
    resized = good.checkpoint.replace("\n10\n", "\n11\n", 1)  # the signed text altered
    with pytest.raises(ProofSignatureError, match="invalid signature for key exchange-audit"):
        _check(format_proof(InclusionProof(3, good.hashes, resized, good.extra)))
    with pytest.raises(ProofWitnessError, match=f"no cosignature by the witness {W2.name}"):
        _check(format_proof(good), witnesses=[W1.verifier(), W2.verifier()])
    with pytest.raises(ProofWitnessError, match="no cosignature"):
        _check(format_proof(_proof(3, 10, witnesses=())))
    cosig = lines[5].split(" ")
    raw = bytearray(base64.b64decode(cosig[-1]))
    raw[-1] ^= 1
    forged = "\n".join([*lines[:5], " ".join([*cosig[:-1], base64.b64encode(raw).decode()]), ""])
    with pytest.raises(ProofWitnessError, match=f"invalid signature for key {W1.name}"):
        _check(format_proof(InclusionProof(3, good.hashes, forged, good.extra)))
    assert isinstance(ProofWitnessError("x"), ProofSignatureError)


def test_a_wrong_entry_fails() -> None:
    proof = _proof(9, 20)
    for entry in (ENTRIES[10], ENTRIES[9] + b" ", b"", ENTRIES[9][:-1]):
        with pytest.raises(EntryMismatchError, match="the entry's leaf hash is"):
            _check(format_proof(proof), entry)
        with pytest.raises(ProofHashError, match="another entry"):
            _check(format_proof(InclusionProof(9, proof.hashes, proof.checkpoint)), entry)
    with pytest.raises(MalformedProofError, match="extra data has 4 bytes"):
        _check(format_proof(InclusionProof(9, proof.hashes, proof.checkpoint, b"abcd")), ENTRIES[9])


def _mutations(rng: random.Random, index: int, size: int, hashes: list[bytes]) -> list[tuple[int, list[bytes]]]:
    cases = [(index, hashes), (index, hashes[:-1]), (index, [*hashes, rng.randbytes(32)]),
             (rng.randrange(size), hashes)]
    if hashes:
        k = rng.randrange(len(hashes))
        cases.append((index, [*hashes[:k], rng.randbytes(32), *hashes[k + 1:]]))
    return cases


def test_proofs_from_the_tiles_agree_with_merkle_on_trees_of_many_sizes(tmp_path: Path) -> None:
    """For each size: the tiles give merkle's proofs, check_proof accepts exactly what merkle.verify_* accepts,
    and every consistency proof between two sizes checks."""
    rng = random.Random(5)
    writer, reader = TileWriter(tmp_path, fsync=False), TileReader(tmp_path)
    sizes = [*range(1, 70), 255, 256, 257, 300]
    notes: dict[int, str] = {}
    for size in sizes:
        writer.append(ENTRIES[writer.size:size])
        notes[size] = _note(size)
        root = merkle.root(LEAVES[:size])
        for index in sorted({0, size - 1, rng.randrange(size), rng.randrange(size)}):
            hashes = reader.inclusion_proof(index, size)
            assert hashes == merkle.inclusion_proof(index, LEAVES[:size])
            for at, path in _mutations(rng, index, size, hashes):
                proof = format_proof(InclusionProof(at, tuple(path), notes[size]))
                try:
                    merkle.verify_inclusion(LEAVES[at], at, size, path, root)
                except MerkleError:
                    with pytest.raises(ProofHashError):
                        _check(proof, ENTRIES[at])
                else:
                    assert _check(proof, ENTRIES[at])
    for new in sizes:
        for old in [s for s in sizes if s < new][-12:]:
            hashes = reader.consistency_proof(old, new)
            assert hashes == merkle.consistency_proof(old, LEAVES[:new])
            checked = _check_consistency(format_consistency_proof(
                ConsistencyProof(old, new, tuple(hashes), notes[new], notes[old])))
            assert (checked.old.size, checked.new.size) == (old, new)


# -- consistency proofs ------------------------------------------------------------------------------------------

def test_a_consistency_proof_round_trips_and_checks() -> None:
    proof = _consistency(37, 300)
    text = format_consistency_proof(proof)
    assert text.startswith(f"{CONSISTENCY_HEADER}\nold 37\nnew 300\n")
    assert text.endswith(f"\n\n{proof.new_checkpoint}\n{proof.old_checkpoint}")
    assert parse_consistency_proof(text) == parse_consistency_proof(text.encode()) == proof
    assert format_consistency_proof(parse_consistency_proof(text)) == text
    got = check_consistency_proof(text, [LOG_KEY], [W1.verifier()], origin=ORIGIN)
    assert (got.old.root_hash, got.new.root_hash) == (merkle.root(LEAVES[:37]), merkle.root(LEAVES))
    assert got.witnesses == (f"{W1.name}+{W1.key_id}",)


C_HEAD = f"{CONSISTENCY_HEADER}\nold 1\nnew 2\n{base64.b64encode(LEAVES[1]).decode()}\n"


@pytest.mark.parametrize(("text", "reason"), [
    (f"{PROOF_HEADER}\nold 1\nnew 2\n\n{_note(2)}\n{_note(1)}", "first line"),
    (f"{CONSISTENCY_HEADER}\nnew 2\nold 1\n\n{_note(2)}\n{_note(1)}", "line 2 is 'new 2', not 'old N'"),
    (f"{CONSISTENCY_HEADER}\nold 01\nnew 2\n\n{_note(2)}\n{_note(1)}", "not 'old N'"),
    (f"{CONSISTENCY_HEADER}\nold 1\n", "ends before the new line"),
    (f"{CONSISTENCY_HEADER}\nold 2\nnew 2\n\n{_note(2)}\n{_note(2)}", "old size 2 is not smaller than new size 2"),
    (f"{CONSISTENCY_HEADER}\nold 3\nnew 2\n\n{_note(2)}\n{_note(3)}", "not smaller"),
    (f"{CONSISTENCY_HEADER}\nold 1\nnew 2\n" + f"{HASH}\n" * 66 + f"\n{_note(2)}\n{_note(1)}", "more than 65"),
    (f"{C_HEAD}\n{_note(2)}", "no old checkpoint"),
    (f"{C_HEAD}\n{_note(2)}\n", "no old checkpoint"),
    (f"{C_HEAD}\n{_note(2)}{_note(1)}", "the new checkpoint is not a signed note"),
    (f"{C_HEAD}\n{_note(2)}\n{_note(1)}\n", "the old checkpoint is not a signed note"),
    (f"{C_HEAD}", "ends before the empty line"),
])
def test_a_malformed_consistency_proof_is_refused(text: str, reason: str) -> None:
    with pytest.raises(MalformedProofError, match=re.escape(reason)):
        parse_consistency_proof(text)


def test_a_consistency_proof_fails_when_tampered() -> None:
    good = _consistency(37, 300)
    for k in range(len(good.hashes)):
        altered = (*good.hashes[:k], bytes(32), *good.hashes[k + 1:])
        with pytest.raises(ProofHashError, match="leads to"):
            _check_consistency(ConsistencyProof(37, 300, altered, good.new_checkpoint, good.old_checkpoint))
    for wrong in (good.hashes[:-1], (*good.hashes, bytes(32))):
        with pytest.raises(ProofHashError, match="hashes, expected"):
            _check_consistency(ConsistencyProof(37, 300, wrong, good.new_checkpoint, good.old_checkpoint))
    forked = [*LEAVES[:20], *(merkle.leaf_hash(b"forged %d" % i) for i in range(20, 300))]
    fork = ConsistencyProof(37, 300, good.hashes, good.new_checkpoint, _note(37, leaves=forked))
    with pytest.raises(ProofHashError, match="first root"):
        _check_consistency(fork)
    swapped = ConsistencyProof(37, 300, good.hashes, good.old_checkpoint, good.new_checkpoint)
    with pytest.raises(ProofSizeError, match="names old size 37, its old checkpoint has size 300"):
        _check_consistency(swapped)
    impostor = ConsistencyProof(37, 300, good.hashes, good.new_checkpoint, _note(37, signer=IMPOSTOR, witnesses=()))
    with pytest.raises(ProofSignatureError, match="the old checkpoint is not signed by the log key"):
        _check_consistency(impostor)
    unwitnessed = ConsistencyProof(37, 300, good.hashes, good.new_checkpoint, _note(37, witnesses=()))
    with pytest.raises(ProofWitnessError, match="the old checkpoint has no cosignature"):
        _check_consistency(unwitnessed)
    text = format_consistency_proof(good)
    for cut in range(0, len(text), 7):
        with pytest.raises(ProofError):
            _check_consistency(text[:cut])


# -- the commands ------------------------------------------------------------------------------------------------

def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    register = parser.add_subparsers(dest="action", required=True)
    proof_cli.register_proof(register)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


@pytest.fixture(autouse=True)
def _default_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The commands' defaults (no tiles directory, the default origin), whatever the environment says."""
    monkeypatch.chdir(tmp_path)  # no .env file here
    for name in ("EXCHANGE_AUDIT_TILES_DIR", "EXCHANGE_AUDIT_ORIGIN"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def tiles(tmp_path: Path) -> Path:
    directory = tmp_path / "tiles"
    writer = TileWriter(directory, fsync=False)
    writer.append(ENTRIES[:200])
    writer.write_checkpoint(_note(200, witnesses=(W1, W2)))
    return directory


def test_prove_and_check_proof(tiles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, entry = tmp_path / "41.tlog-proof", tmp_path / "41.entry"
    assert _cli("prove", "--index", "41", "--tiles", str(tiles), "--out", str(out), "--entry-out", str(entry)) == 0
    assert entry.read_bytes() == ENTRIES[41]
    assert parse_proof(out.read_bytes()).checkpoint == (tiles / "checkpoint").read_text()
    key_file = tmp_path / "log.vkey"
    key_file.write_text(LOG_KEY.key_string() + "\n")
    capsys.readouterr()
    witness = ["--witness-key", W1.verifier_key(), "--witness-key", W2.verifier_key()]
    assert _cli("check-proof", str(out), "--log-key", str(key_file), *witness, "--entry", str(entry),
                "--origin", ORIGIN) == 0
    line = capsys.readouterr().out
    assert line.startswith("ok: entry 41 (leaf hash ")
    assert line.endswith("; the entry matches\n")
    assert line.count("\n") == 1
    assert _cli("check-proof", str(out), "--log-key", LOG_KEY.key_string(), "--origin", ORIGIN, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["ok"], result["index"], result["size"], result["entry_checked"]) == (True, 41, 200, False)
    assert result["leaf_hash"] == LEAVES[41].hex()

    tampered = tmp_path / "tampered.tlog-proof"
    lines = out.read_text().split("\n")
    lines[3] = HASH
    tampered.write_text("\n".join(lines))
    assert _cli("check-proof", str(tampered), "--log-key", str(key_file), "--origin", ORIGIN) == 1
    assert capsys.readouterr().out.startswith("FAILED: inclusion proof for leaf 41 of 200 leads to root")
    wrong = tmp_path / "wrong.entry"
    wrong.write_bytes(ENTRIES[42])
    assert _cli("check-proof", str(out), "--log-key", str(key_file), "--entry", str(wrong), "--origin", ORIGIN,
                "--json") == 1
    assert json.loads(capsys.readouterr().out)["error"] == "EntryMismatchError"
    assert _cli("check-proof", str(out), "--log-key", IMPOSTOR_KEY.key_string(), "--origin", ORIGIN) == 1
    assert "not signed by the log key" in capsys.readouterr().out
    assert _cli("check-proof", str(out), "--log-key", LOG_KEY.key_string()) == 1  # the default origin differs
    assert "is for the log 'test.local/access-log'" in capsys.readouterr().out


def test_prove_and_check_proof_refuse_what_they_cannot_do(tiles: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not in the newest checkpoint"):
        _cli("prove", "--index", "200", "--tiles", str(tiles))
    with pytest.raises(ConfigError, match="no tiles directory"):
        _cli("prove", "--index", "0")
    proof = tmp_path / "p"
    _cli("prove", "--index", "0", "--tiles", str(tiles), "--out", str(proof))
    with pytest.raises(ConfigError, match="--log-key is neither a verifier key nor a file"):
        _cli("check-proof", str(proof), "--log-key", "exchange-audit+00000000+AAAA")
    with pytest.raises(ConfigError, match="--witness-key is neither"):  # a type 0x01 key is not a witness's
        _cli("check-proof", str(proof), "--log-key", LOG_KEY.key_string(), "--witness-key", LOG_KEY.key_string())
    with pytest.raises(ConfigError, match="cannot read the proof"):
        _cli("check-proof", str(tmp_path / "missing"), "--log-key", LOG_KEY.key_string())
    (tiles / "tile" / "0" / "000.p" / "200").write_bytes(bytes(200 * 32))  # the tiles no longer match
    with pytest.raises(ConfigError, match="do not match their checkpoint"):
        _cli("prove", "--index", "5", "--tiles", str(tiles))


def test_prove_consistency_from_the_published_checkpoints(tiles: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    published = [_note(50).encode(), b"not a checkpoint", _note(120).encode(), _note(200, witnesses=(W1, W2))
                 .encode()]
    monkeypatch.setattr(proof_cli, "read_checkpoints", lambda _settings: published)
    out = tmp_path / "c"
    assert _cli("prove", "--consistency", "50", "200", "--tiles", str(tiles), "--out", str(out)) == 0
    written = parse_consistency_proof(out.read_bytes())
    assert (written.old_checkpoint, written.new_checkpoint) == (_note(50), _note(200, witnesses=(W1, W2)))
    capsys.readouterr()
    assert _cli("check-proof", str(out), "--log-key", LOG_KEY.key_string(), "--witness-key", W1.verifier_key(),
                "--origin", ORIGIN) == 0
    assert capsys.readouterr().out.startswith(f"ok: {ORIGIN} of size 50 (root ")
    with pytest.raises(ConfigError, match="no published checkpoint has size 51; published sizes: 50 120 200"):
        _cli("prove", "--consistency", "51", "200", "--tiles", str(tiles))
    with pytest.raises(ConfigError, match="0 <= A < B"):
        _cli("prove", "--consistency", "200", "50", "--tiles", str(tiles))
    with pytest.raises(ConfigError, match="--entry goes with an inclusion proof"):
        _cli("check-proof", str(out), "--log-key", LOG_KEY.key_string(), "--entry", str(out))
