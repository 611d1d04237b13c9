"""The witness's logic: it cosigns only checkpoints that extend what it cosigned, answers as tlog-witness says,
and keeps its state across restarts."""

from __future__ import annotations

import base64
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.audit.witness import (
    MAX_PROOF_LINES,
    MAX_REQUEST_BYTES,
    AddCheckpointRequest,
    ConflictError,
    InconsistentCheckpointError,
    LogSignatureError,
    MalformedRequestError,
    RequestTooLargeError,
    UnknownLogError,
    Witness,
    WitnessError,
    WitnessStateError,
    format_add_checkpoint,
    origin_hash,
    parse_add_checkpoint,
)
from exchange.crypto.checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint
from exchange.crypto.cosignature import Cosigner, verify_cosignature_line
from exchange.crypto.errors import MalformedCheckpointError
from exchange.crypto.keys import Signer
from exchange.crypto.merkle import EMPTY_ROOT, CompactTree, leaf_hash
from exchange.crypto.note import Verifier, open_note, sign_note

ORIGIN = "test.local/access-log"
LOG = Signer.generate("exchange-audit")
WITNESS_KEY = Signer.generate("witness.test/w1")
COSIGNER = Cosigner(WITNESS_KEY)
HASHES = [leaf_hash(b"entry %d" % i) for i in range(64)]
FORK = HASHES[:5] + [leaf_hash(b"forged %d" % i) for i in range(5, 64)]

# Published in transparency-dev/witness, witness/witness_test.go: a log key, its signed checkpoints of sizes 5
# and 8, and the consistency proof between them.
MONKEYS_KEY = "monkeys+db4d9f7e+AULaJMvTtDLHPUcUrjdDad9vDlh/PTfC2VV60JUtCfWT"
MONKEYS_5 = ("monkeys\n5\n41smjBUiAU70EtKlT6lIOIYtRTYxYXsDB+XHfcvu/BE=\n\n— monkeys 202fftzGl3LVoqjXfwCFZZXs8I+5G22+Ek2"
             "K0AOyBuSJ/8/CZawNF+6fNlTKOCd622pbzJNkkJFWuw9DbicZCkEx9AY=\n").encode()
MONKEYS_8 = ("monkeys\n8\nV8K9aklZ4EPB+RMOk1/8VsJUdFZR77GDtZUQq84vSbo=\n\n— monkeys 202ffoUEboiQYpHzICeaFmoy3RNviHTpAx"
             "Yrq/eO4QQVQMvu9UebKBMX2MJC76NLthZaKsnKbCA8GxrjePZhvDCH7Ag=\n").encode()
MONKEYS_PROOF = tuple(bytes.fromhex(h) for h in (
    "b9e1d62618f7fee8034e4c5010f727ab24d8e4705cb296c374bf2025a87a10d2",
    "aac66cd7a79ce4012d80762fe8eec3a77f22d1ca4145c3f4cee022e7efcd599d",
    "89d0f753f66a290c483b39cd5e9eafb12021293395fad3d4a2ad053cfbcfdc9e",
    "29e40bb79c966f4c6fe96aff6f30acfce5f3e8d84c02215175d6e018a5dee833",
))

# The example request body of c2sp.org/tlog-witness (add-checkpoint).
SPEC_BODY = b"""old 20852014
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=

example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

""" + (
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+"
    "xeMcTOAYQ8=\n"
    "— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv+"
    "+qbSzm9Q=\n").encode()


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def tree(size: int, hashes: list[bytes] = HASHES) -> CompactTree:
    t = CompactTree()
    t.extend(hashes[:size])
    return t


def note(size: int, *, hashes: list[bytes] = HASHES, signer: Signer = LOG, origin: str = ORIGIN) -> bytes:
    return sign_checkpoint(Checkpoint(origin, size, tree(size, hashes).root()), [signer]).encode()


def request(old: int, new: int, hashes: list[bytes] = HASHES) -> AddCheckpointRequest:
    proof = tree(new, hashes).consistency_proof(old, hashes) if old else []
    return AddCheckpointRequest(old, tuple(proof), note(new, hashes=hashes))


def make_witness(state: Path, clock: Clock | None = None, **logs: list[Verifier]) -> Witness:
    return Witness(COSIGNER, logs or {ORIGIN: [LOG.verifier()]}, state, clock=clock or Clock())


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[Witness]:
    with make_witness(tmp_path / "state") as w:
        yield w


def cosigned(w: Witness, old: int, new: int, hashes: list[bytes] = HASHES) -> list[str]:
    req = request(old, new, hashes)
    lines = w.add_checkpoint(req)
    text = req.note.decode()[: req.note.decode().rfind("\n\n") + 1]
    assert len(lines) == 1
    verify_cosignature_line(text, lines[0], COSIGNER.verifier())
    return lines


def test_growing_checkpoints_are_cosigned_each_from_the_last(witness: Witness) -> None:
    sizes = [0, 1, 2, 3, 4, 7, 8, 13, 16, 17, 33, 64]
    old = 0
    for size in sizes:
        cosigned(witness, old, size)
        head = witness.latest(ORIGIN)
        assert head is not None
        assert (head.size, head.root_hash) == (size, tree(size).root())
        old = size


def test_the_published_transparency_dev_checkpoints_are_cosigned(tmp_path: Path) -> None:
    with Witness(COSIGNER, {"monkeys": [Verifier.from_key_string(MONKEYS_KEY)]}, tmp_path, clock=Clock()) as w:
        assert len(w.add_checkpoint(AddCheckpointRequest(0, (), MONKEYS_5))) == 1
        assert len(w.add_checkpoint(AddCheckpointRequest(5, MONKEYS_PROOF, MONKEYS_8))) == 1
        with pytest.raises(InconsistentCheckpointError):
            w.add_checkpoint(AddCheckpointRequest(8, MONKEYS_PROOF, MONKEYS_8))  # a proof where none belongs


def test_the_same_checkpoint_is_cosigned_again_and_time_never_goes_back(tmp_path: Path) -> None:
    clock = Clock()
    with make_witness(tmp_path, clock) as w:
        cosigned(w, 0, 8)
        first = w.latest(ORIGIN)
        clock.now -= 3600  # the clock steps back an hour
        cosigned(w, 8, 8)
        again = w.latest(ORIGIN)
        assert first is not None
        assert again is not None
        assert (again.size, again.root_hash) == (first.size, first.root_hash)
        assert again.timestamp == first.timestamp
        clock.now += 7200
        cosigned(w, 8, 8)
        later = w.latest(ORIGIN)
        assert later is not None
        assert later.timestamp == int(clock.now)


def test_a_stale_old_size_is_a_conflict_carrying_the_witness_size(witness: Witness) -> None:
    cosigned(witness, 0, 8)
    for old in (0, 3, 7):
        with pytest.raises(ConflictError) as caught:
            witness.add_checkpoint(request(old, 13))
        assert (caught.value.size, caught.value.status) == (8, 409)
    with pytest.raises(ConflictError) as ahead:
        witness.add_checkpoint(request(9, 13))
    assert ahead.value.size == 8


def test_a_first_request_from_a_nonzero_size_learns_size_zero(witness: Witness) -> None:
    with pytest.raises(ConflictError) as caught:
        witness.add_checkpoint(request(5, 8))
    assert caught.value.size == 0


def test_a_smaller_checkpoint_is_never_cosigned(witness: Witness) -> None:
    cosigned(witness, 0, 13)
    with pytest.raises(MalformedRequestError):  # old above the checkpoint's size: 400
        witness.add_checkpoint(AddCheckpointRequest(13, (), note(8)))
    with pytest.raises(ConflictError):
        witness.add_checkpoint(AddCheckpointRequest(8, (), note(8)))
    with pytest.raises(ConflictError):
        witness.add_checkpoint(AddCheckpointRequest(0, (), note(0)))
    head = witness.latest(ORIGIN)
    assert head is not None
    assert head.size == 13


def test_a_forked_checkpoint_is_never_cosigned(witness: Witness) -> None:
    cosigned(witness, 0, 8)
    with pytest.raises(InconsistentCheckpointError) as same_size:
        witness.add_checkpoint(AddCheckpointRequest(8, (), note(8, hashes=FORK)))
    assert same_size.value.status == 422
    assert same_size.value.note == note(8, hashes=FORK)
    for size in (9, 13, 16, 64):
        with pytest.raises(InconsistentCheckpointError):  # the fork's own proof from its own size 8
            witness.add_checkpoint(request(8, size, FORK))
        with pytest.raises(InconsistentCheckpointError):  # the honest proof does not lead to the fork's root
            witness.add_checkpoint(AddCheckpointRequest(8, request(8, size).proof, note(size, hashes=FORK)))
    cosigned(witness, 8, 13)  # the honest log goes on


def test_every_corrupted_proof_byte_is_refused(witness: Witness) -> None:
    cosigned(witness, 0, 5)
    good = request(5, 13)
    assert len(good.proof) >= 3
    for i, h in enumerate(good.proof):
        for j in range(len(h)):
            bad = bytearray(h)
            bad[j] ^= 0x01
            proof = (*good.proof[:i], bytes(bad), *good.proof[i + 1 :])
            with pytest.raises(InconsistentCheckpointError):
                witness.add_checkpoint(AddCheckpointRequest(5, proof, good.note))
    for proof in (good.proof[:-1], (*good.proof, good.proof[0]), good.proof[::-1], ()):
        with pytest.raises(InconsistentCheckpointError):
            witness.add_checkpoint(AddCheckpointRequest(5, proof, good.note))
    witness.add_checkpoint(good)


def test_a_proof_from_size_zero_must_be_empty(witness: Witness) -> None:
    with pytest.raises(InconsistentCheckpointError):
        witness.add_checkpoint(AddCheckpointRequest(0, (HASHES[0],), note(8)))


def test_a_size_zero_checkpoint_must_have_the_empty_root(witness: Witness) -> None:
    bad = sign_checkpoint(Checkpoint(ORIGIN, 0, HASHES[0]), [LOG]).encode()
    with pytest.raises(InconsistentCheckpointError):
        witness.add_checkpoint(AddCheckpointRequest(0, (), bad))
    empty = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), [LOG]).encode()
    witness.add_checkpoint(AddCheckpointRequest(0, (), empty))
    cosigned(witness, 0, 3)


def _resign(data: bytes, *signers: Signer) -> bytes:
    text = data.decode()[: data.decode().rfind("\n\n") + 1]
    return sign_note(text, list(signers)).encode()


def test_a_bad_or_missing_log_signature_is_forbidden(witness: Witness) -> None:
    good = note(8)
    sig_start = good.rfind(b" ") + 1
    tampered_sig = good[:sig_start + 10] + (b"A" if good[sig_start + 10:sig_start + 11] != b"A" else b"B") + \
        good[sig_start + 11:]
    other_key_same_name = Signer.generate(LOG.name)
    cases = [
        tampered_sig,
        good.replace(b"\n8\n", b"\n9\n"),  # the text altered under the log's signature
        _resign(good, other_key_same_name),
        _resign(good, Signer.generate("someone-else")),
        _resign(good, WITNESS_KEY),  # the witness's own key is not the log's
    ]
    for data in cases:
        with pytest.raises(LogSignatureError) as caught:
            witness.add_checkpoint(AddCheckpointRequest(0, (), data))
        assert caught.value.status == 403
    assert witness.latest(ORIGIN) is None


def test_signatures_by_unknown_keys_are_ignored(witness: Witness) -> None:
    data = _resign(note(8), Signer.generate("someone-else"), LOG)
    witness.add_checkpoint(AddCheckpointRequest(0, (), data))
    head = witness.latest(ORIGIN)
    assert head is not None
    opened = open_note(head.note, [LOG.verifier(), COSIGNER.verifier()])
    assert len(opened.signatures) == 2  # the stored checkpoint keeps only what was verified
    assert not opened.ignored


def test_an_unknown_origin_is_not_found(witness: Witness) -> None:
    with pytest.raises(UnknownLogError) as caught:
        witness.add_checkpoint(AddCheckpointRequest(0, (), note(8, origin="other.example/log")))
    assert caught.value.status == 404
    with pytest.raises(UnknownLogError):
        witness.latest("other.example/log")


def _body(old: str, proof: list[bytes], data: bytes) -> bytes:
    return f"{old}\n".encode() + b"".join(base64.b64encode(h) + b"\n" for h in proof) + b"\n" + data


NOTE_8 = note(8)
MALFORMED = [
    b"",
    b"old 1",
    b"old 1\n",
    b"old 01\n\n" + NOTE_8,
    b"old -1\n\n" + NOTE_8,
    b"old +1\n\n" + NOTE_8,
    b"old  1\n\n" + NOTE_8,
    b"old 1 \n\n" + NOTE_8,
    b"OLD 1\n\n" + NOTE_8,
    b"old 1\r\n\n" + NOTE_8,
    b"old 18446744073709551616\n\n" + NOTE_8,  # 2^64
    b"old \xff\n\n" + NOTE_8,
    b"old 0\nnot base64!\n\n" + NOTE_8,
    b"old 0\n" + base64.b64encode(bytes(31)) + b"\n\n" + NOTE_8,
    b"old 0\nAAAA\n\n" + NOTE_8,
    b"old 0\n" + base64.b64encode(bytes(32))[:-1] + b"B\n\n" + NOTE_8,  # not the canonical encoding
    _body("old 0", [bytes(32)] * (MAX_PROOF_LINES + 1), NOTE_8),
    b"old 0\n" + base64.b64encode(bytes(32)) + b"\n" + NOTE_8,  # no blank line
    b"old 0\n\n",  # no checkpoint
    b"old 0\n\n" + NOTE_8.replace(ORIGIN.encode(), b"\xff"),
    b"old 0\n\n" + ORIGIN.encode(),
    b"old 0\n\n" + NOTE_8[: NOTE_8.index(b"\n\n") + 2],  # no signature lines
    b"old 0\n\n" + NOTE_8.rstrip(b"\n"),
    b"old 0\n\n" + sign_note(f"{ORIGIN}\nnot a size\nAAAA\n", [LOG]).encode(),
    b"old 9\n\n" + NOTE_8,  # old above the checkpoint's size
]


@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_requests_are_bad_requests(witness: Witness, body: bytes) -> None:
    with pytest.raises(MalformedRequestError) as caught:
        witness.handle(body)
    assert caught.value.status == 400
    assert witness.latest(ORIGIN) is None


def test_an_oversized_request_is_refused_unread() -> None:
    with pytest.raises(RequestTooLargeError) as caught:
        parse_add_checkpoint(b"old 0\n\n" + b"x" * MAX_REQUEST_BYTES)
    assert caught.value.status == 413
    assert parse_add_checkpoint(b"old 0\n\nx", max_bytes=8).old_size == 0


def test_the_spec_example_request_parses() -> None:
    parsed = parse_add_checkpoint(SPEC_BODY)
    assert parsed.old_size == 20852014
    assert [base64.b64encode(h).decode() for h in parsed.proof] == SPEC_BODY.decode().split("\n")[1:5]
    assert parsed.note.startswith(b"example.com/behind-the-sofa\n20852163\n")
    assert format_add_checkpoint(parsed.old_size, parsed.proof, parsed.note) == SPEC_BODY


@given(old=st.integers(0, 2**64 - 1), proof=st.lists(st.binary(min_size=32, max_size=32), max_size=MAX_PROOF_LINES),
       data=st.binary(min_size=1).map(lambda b: b + b"\n"))
def test_format_and_parse_round_trip(old: int, proof: list[bytes], data: bytes) -> None:
    parsed = parse_add_checkpoint(format_add_checkpoint(old, proof, data), max_bytes=2**20)
    assert (parsed.old_size, parsed.proof, parsed.note) == (old, tuple(proof), data)


@pytest.mark.parametrize(("old", "proof", "data"), [
    (-1, [], b"x\n"), (2**64, [], b"x\n"), (0, [bytes(31)], b"x\n"), (0, [bytes(32)] * 64, b"x\n"), (0, [], b"x"),
])
def test_format_refuses_what_no_witness_accepts(old: int, proof: list[bytes], data: bytes) -> None:
    with pytest.raises(ValueError, match=r"old size|proof|newline"):
        format_add_checkpoint(old, proof, data)


def test_a_restarted_witness_keeps_its_state(tmp_path: Path) -> None:
    with make_witness(tmp_path) as w:
        cosigned(w, 0, 8)
        cosigned(w, 8, 13)
        before = w.latest(ORIGIN)
    with make_witness(tmp_path) as w:
        assert w.latest(ORIGIN) == before
        with pytest.raises(ConflictError) as caught:
            w.add_checkpoint(request(8, 16))
        assert caught.value.size == 13
        with pytest.raises(InconsistentCheckpointError):
            w.add_checkpoint(AddCheckpointRequest(13, (), note(13, hashes=FORK)))
        cosigned(w, 13, 16)
    assert before is not None
    opened = open_note(before.note, [LOG.verifier(), COSIGNER.verifier()])
    assert parse_checkpoint(opened.text).size == 13
    assert len(opened.signatures) == 2


def test_the_state_is_written_before_the_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with make_witness(tmp_path) as w:
        cosigned(w, 0, 8)
        state_file = tmp_path / f"{origin_hash(ORIGIN)}.checkpoint"
        recorded = state_file.read_bytes()

        def fail(*_args: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", fail)
        with pytest.raises(WitnessStateError) as caught:
            w.add_checkpoint(request(8, 13))
        assert caught.value.status == 500
        monkeypatch.undo()
        assert state_file.read_bytes() == recorded
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
        head = w.latest(ORIGIN)
        assert head is not None
        assert head.size == 8
        cosigned(w, 8, 13)


def test_a_damaged_or_foreign_state_file_stops_the_witness(tmp_path: Path) -> None:
    with make_witness(tmp_path) as w:
        cosigned(w, 0, 8)
    state_file = tmp_path / f"{origin_hash(ORIGIN)}.checkpoint"
    good = state_file.read_bytes()
    for damaged in (b"", b"garbage", good.replace(ORIGIN.encode(), b"other.example/log"),
                    good[:-10] + (b"A" if good[-10:-9] != b"A" else b"B") + good[-9:], b"\xff" + good):
        state_file.write_bytes(damaged)
        with pytest.raises(WitnessStateError):
            make_witness(tmp_path)
    state_file.write_bytes(good)
    make_witness(tmp_path).close()


def test_a_state_cosigned_by_an_earlier_witness_key_is_still_the_state(tmp_path: Path) -> None:
    with make_witness(tmp_path) as w:
        cosigned(w, 0, 8)
    rotated = Cosigner(Signer.generate("witness.test/w1"))
    with Witness(rotated, {ORIGIN: [LOG.verifier()]}, tmp_path, clock=Clock()) as w:
        with pytest.raises(ConflictError) as caught:
            w.add_checkpoint(request(0, 13))
        assert caught.value.size == 8


def test_two_witnesses_cannot_share_a_state_directory(tmp_path: Path) -> None:
    with make_witness(tmp_path), pytest.raises(WitnessStateError, match="another witness"):
        make_witness(tmp_path)
    make_witness(tmp_path).close()


def test_concurrent_requests_for_one_log_cannot_roll_it_back(witness: Witness) -> None:
    """Sixteen clients race from size 8 to sizes 9..24: exactly one wins, the others learn its size."""
    cosigned(witness, 0, 8)
    requests = [request(8, size) for size in range(9, 25)]
    results: list[int | ConflictError] = []
    barrier = threading.Barrier(len(requests))
    lock = threading.Lock()

    def submit(req: AddCheckpointRequest) -> None:
        barrier.wait()
        try:
            witness.add_checkpoint(req)
            outcome: int | ConflictError = parse_checkpoint(req.note.decode()[: req.note.rfind(b"\n\n") + 1]).size
        except ConflictError as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=submit, args=(r,)) for r in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if isinstance(r, int)]
    assert len(winners) == 1
    assert all(isinstance(r, ConflictError) and r.size == winners[0] for r in results if not isinstance(r, int))
    head = witness.latest(ORIGIN)
    assert head is not None
    assert head.size == winners[0]


def test_several_logs_and_a_log_key_rotation(tmp_path: Path) -> None:
    new_key = Signer.generate(LOG.name)
    logs = {ORIGIN: [LOG.verifier()], "other.example/log": [LOG.verifier(), new_key.verifier()]}
    with Witness(COSIGNER, logs, tmp_path, clock=Clock()) as w:
        assert set(w.origins) == set(logs)
        w.add_checkpoint(AddCheckpointRequest(0, (), note(3, origin="other.example/log")))
        w.add_checkpoint(AddCheckpointRequest(3, tuple(tree(8).consistency_proof(3, HASHES)),
                                              note(8, origin="other.example/log", signer=new_key)))
        with pytest.raises(LogSignatureError):  # the new key is trusted for the other log only
            w.add_checkpoint(AddCheckpointRequest(0, (), note(3, signer=new_key)))
        head = w.latest_by_hash(origin_hash("other.example/log"))
        assert head is not None
        assert head.size == 8
        assert w.latest(ORIGIN) is None
        assert w.latest_by_hash("00" * 32) is None


def test_a_witness_needs_logs_with_keys_and_valid_origins(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one log"):
        Witness(COSIGNER, {}, tmp_path)
    with pytest.raises(ValueError, match="no verifier key"):
        Witness(COSIGNER, {ORIGIN: []}, tmp_path)
    with pytest.raises(MalformedCheckpointError):
        Witness(COSIGNER, {"bad\norigin": [LOG.verifier()]}, tmp_path)
    with make_witness(tmp_path / "w") as w:
        assert repr(w).startswith("Witness(witness.test/w1+")


# Fuzzing: random bodies, and bodies built from plausible pieces, only ever raise a 4xx WitnessError.
_PIECES = st.sampled_from([
    b"old ", b"0", b"1", b"8", b"13", b"\n", b"\n\n", b"\xe2\x80\x94 ", base64.b64encode(HASHES[0]), b"=", b"+",
    ORIGIN.encode(), NOTE_8, NOTE_8[:40], note(13), b"\xff", b" ", b"\r", b"exchange-audit ",
])
_BODIES = st.one_of(st.binary(max_size=600), st.lists(_PIECES, max_size=12).map(b"".join))


@given(body=_BODIES)
def test_the_parser_raises_only_its_own_errors(body: bytes) -> None:
    try:
        parsed = parse_add_checkpoint(body)
    except (MalformedRequestError, RequestTooLargeError):
        return
    assert parsed.note
    assert format_add_checkpoint(parsed.old_size, parsed.proof, parsed.note + b"\n")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(bodies=st.lists(_BODIES, min_size=1, max_size=4))
def test_random_requests_get_only_client_errors(bodies: list[bytes]) -> None:
    statuses = []
    with tempfile.TemporaryDirectory() as state, make_witness(Path(state)) as w:
        for body in bodies:
            try:
                w.handle(body)
            except WitnessError as exc:
                statuses.append(exc.status)
    assert all(400 <= s < 500 for s in statuses), statuses
