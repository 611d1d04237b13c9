"""The access-log sequencer: decisions in, a contiguous, signed, append-only log out.

It reads every partition of ``audit.decisions`` (read_committed; assigned, not a group member, so no second
instance can take half the partitions). Three stages, each with one job, state written last:

1. **Sequence**, one Kafka transaction per batch: each decision becomes the next leaf of an RFC 6962 tree and
   goes to ``audit.log`` (one partition; key and ``ce_exindex`` = its index from 0; value and headers = the
   router's entry, unchanged), the tree state to ``audit.sequencer``, the consumed offsets (KIP-447) with them.
   A crash anywhere leaves all of a batch or none of it: indices never skip or repeat, and no decision is lost
   or sequenced twice. An entry too large to be tiled (over 65,535 bytes) is quarantined instead, in the same
   transaction, so the log stays servable.
2. **Integrate** (with a tiles directory): the committed entries are written as C2SP tlog-tiles; after a crash
   the tiles catch up from ``audit.log``.
3. **Publish**, every ``checkpoint_every`` entries or ``checkpoint_interval`` seconds: sign a C2SP
   tlog-checkpoint of the committed tree with the ``exchange-audit`` key, have every configured witness cosign
   it (tlog-witness, with a consistency proof from the tiles), and write it with its cosignatures to
   ``audit.checkpoints`` and the new signed head to ``audit.sequencer``, in one transaction. Only committed
   entries are ever signed, so a signature can never cover a tree that a restart would build otherwise.

One instance per log: its transactional id fences any older one. It never signs a checkpoint that does not
extend the last one it signed (see :mod:`exchange.audit.state`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from exchange.audit.errors import SequencerStateError
from exchange.audit.log import read_checkpoints, read_log_entries
from exchange.audit.names import (
    AUDIT_IDENTITY,
    CHECKPOINT_TOPIC,
    DECISIONS_TOPIC,
    H_INDEX,
    LOG_TOPIC,
    QUARANTINE_TOPIC,
    STATE_TOPIC,
)
from exchange.audit.state import LogState, SignedHead, read_signed_head, write_signed_head
from exchange.audit.tile_writer import TileWriter
from exchange.audit.tiles import MAX_ENTRY_SIZE, TileReader, checkpoint_size
from exchange.audit.witness_client import WitnessClientError, WitnessConflictError, add_checkpoint
from exchange.context import Context
from exchange.crypto.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from exchange.crypto.keys import Signer
from exchange.crypto.merkle import CompactTree, leaf_hash
from exchange.crypto.note import Verifier
from exchange.envelope import OversizedRecordError, format_time, uuid7
from exchange.envelope.attributes import ce_headers
from exchange.errors import ConfigError
from exchange.kafka import ConsumedRecord, Consumer, KafkaError, TransactionalProducer, read_to_end
from exchange.log import get_logger
from exchange.metrics import CHECKPOINT_AGE
from exchange.router.entries import EntryWriter
from exchange.settings import Settings, get_settings

__all__ = ["AUDIT_IDENTITY", "CHECKPOINT_TOPIC", "LOG_TOPIC", "STATE_TOPIC", "Sequencer", "SequencerConfig",
           "SequencerStats"]

_STATE_KEY = b"state"

_log = get_logger("exchange.audit.sequencer")


@dataclass(frozen=True)
class SequencerConfig:
    checkpoint_every: int = 1000
    checkpoint_interval: float = 5.0
    max_batch: int = 1000
    poll_timeout: float = 0.2
    tiles_dir: Path | None = None
    """Write the log as C2SP tlog-tiles here (needed by witnesses, proofs and ``exchange audit serve``)."""
    witnesses: tuple[str, ...] = ()
    """Witness URLs; a checkpoint is published only once every one has cosigned it (needs ``tiles_dir``)."""
    unsafe_trust_log_state: bool = False
    """Adopt the log's own state as what was signed although this sequencer has no record of it (a lost state
    directory). Only for a state directory known to be lost, never for one that disagrees."""


@dataclass
class SequencerStats:
    entries: int = 0
    checkpoints: int = 0
    batches: int = 0
    aborted_batches: int = 0
    quarantined: int = 0
    unwitnessed: int = 0
    """Checkpoints signed but not published because a witness did not cosign them (tried again later)."""


class Sequencer:
    """One sequencer of one log. :meth:`run` loops until :meth:`stop`."""

    def __init__(self, config: SequencerConfig, signer: Signer, *, settings: Settings | None = None,
                 bootstrap: str | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.config = config
        self.settings = settings or get_settings()
        self.origin = self.settings.audit_origin
        self.stats = SequencerStats()
        self._signer = signer
        self._verifier = Verifier(signer.name, signer.public_key)
        self._bootstrap = bootstrap
        self._clock = clock
        self._stop = threading.Event()
        self._head_file = Path(self.settings.audit_state_dir) / f"{_file_name(self.origin)}.signed"
        self._producer = TransactionalProducer("exchange-audit-sequencer", settings=self.settings,
                                               bootstrap=bootstrap)
        self._consumer = Consumer("exchange-audit-sequencer", settings=self.settings, bootstrap=bootstrap)
        if config.witnesses and config.tiles_dir is None:
            raise ConfigError("witnesses need the log's tiles for their consistency proofs: give a tiles directory")
        self._state = self._resume()
        self._tiles = self._integrate_backlog() if config.tiles_dir is not None else None
        self._witnessed: dict[str, int] = {}
        self._quarantine = EntryWriter(AUDIT_IDENTITY, Context(self.settings).catalogue, frozenset(), frozenset())
        self._last_checkpoint = time.monotonic()
        self._published_at = time.time()
        """When this sequencer last published a checkpoint (or started): the checkpoint-age gauge counts from it."""
        CHECKPOINT_AGE.set_function(lambda: max(0.0, time.time() - self._published_at))
        self._assign()

    @property
    def size(self) -> int:
        """Entries sequenced (committed) so far."""
        return self._state.size

    @property
    def signed(self) -> SignedHead | None:
        """The last checkpoint signed and published."""
        return self._state.signed

    def stop(self) -> None:
        self._stop.set()

    # -- start ----------------------------------------------------------------------------------------------

    def _resume(self) -> LogState:
        """The committed log state, checked against the signed head recorded here (the Sigsum rule)."""
        records = read_to_end(STATE_TOPIC, settings=self.settings, bootstrap=self._bootstrap)
        state = LogState.decode(records[-1].value or b"") if records else None
        local = read_signed_head(self._head_file)
        if local is None:
            signed_before = (state is not None and state.signed is not None) or bool(
                read_to_end(CHECKPOINT_TOPIC, settings=self.settings, bootstrap=self._bootstrap))
            if signed_before and not self.config.unsafe_trust_log_state:
                raise SequencerStateError(
                    f"{self._head_file} is missing, but this log has signed checkpoints: the sequencer's state was "
                    "lost or copied. It will not sign until the state directory is restored (or, if it is known "
                    "to be lost, it is started with --unsafe-trust-log-state)")
            if state is None and signed_before:
                raise SequencerStateError(f"{STATE_TOPIC} is empty but {CHECKPOINT_TOPIC} holds checkpoints: the log's "
                                          "state was lost; it cannot be extended consistently")
            if state is not None and state.signed is not None:
                write_signed_head(self._head_file, state.signed)
            return state or LogState(0, (), None)
        if state is None or state.signed is None or state.signed.size < local.size:
            have = "no state" if state is None or state.signed is None else f"size {state.signed.size}"
            raise SequencerStateError(
                f"the log's state ({have}) is behind the checkpoint of size {local.size} this sequencer signed "
                f"({self._head_file}): a restored or truncated {STATE_TOPIC}. It will not sign a fork")
        if state.signed.size == local.size and state.signed.root != local.root:
            raise SequencerStateError(f"the log's state and {self._head_file} disagree on the root at size "
                                      f"{local.size}: it will not sign a fork")
        if state.signed.size > local.size:  # committed, but the local record was not written before a crash
            self._check_published(local)
            write_signed_head(self._head_file, state.signed)
        return state

    def _check_published(self, local: SignedHead) -> None:
        for record in read_to_end(CHECKPOINT_TOPIC, settings=self.settings, bootstrap=self._bootstrap):
            checkpoint = open_checkpoint(record.value or b"", [self._verifier], origin=self.origin)
            if checkpoint.size == local.size:
                if checkpoint.root_hash != local.root:
                    raise SequencerStateError(f"the published checkpoint of size {local.size} has another root "
                                              f"than {self._head_file}: it will not sign a fork")
                return
        raise SequencerStateError(f"no published checkpoint of size {local.size}, which {self._head_file} says "
                                  "was signed")

    def _assign(self) -> None:
        partitions = [(DECISIONS_TOPIC, p) for p in range(self._consumer.partition_count(DECISIONS_TOPIC))]
        committed = self._consumer.committed(partitions)
        self._consumer.assign([(t, p, max(0, committed.get((t, p), 0))) for t, p in partitions])

    # -- the loop -------------------------------------------------------------------------------------------

    def run(self, *, max_idle_s: float | None = None) -> SequencerStats:
        """Sequence until stopped (or, with ``max_idle_s``, until nothing arrived for that long)."""
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                records = self._consumer.poll_batch(self.config.max_batch, self.config.poll_timeout)
                if records:
                    self.sequence(records)
                    idle_since = time.monotonic()
                else:
                    if self._checkpoint_due():
                        self.publish_checkpoint()
                    if max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                        break
        finally:
            self._consumer.close()
            self._producer.flush()
        _log.info("sequencer stopped", entries=self.stats.entries, checkpoints=self.stats.checkpoints,
                  size=self.size)
        return self.stats

    def _checkpoint_due(self, size: int | None = None) -> bool:
        size = self._state.size if size is None else size
        signed = self._state.signed.size if self._state.signed is not None else 0
        if size <= signed:
            return False
        return (size - signed >= self.config.checkpoint_every
                or time.monotonic() - self._last_checkpoint >= self.config.checkpoint_interval)

    def sequence(self, records: list[ConsumedRecord]) -> None:
        """Sequence one batch in one transaction, tile it, then publish a checkpoint if one is due."""
        tree = CompactTree.from_state(self._state.size, self._state.nodes)
        offsets: dict[tuple[str, int], int] = {}
        first: dict[tuple[str, int], int] = {}
        values: list[bytes] = []
        try:
            self._producer.begin()
            for record in records:
                tp = (record.topic, record.partition)
                first.setdefault(tp, record.offset)
                offsets[tp] = record.offset + 1
                value = record.value or b""
                if len(value) > MAX_ENTRY_SIZE:
                    self._quarantine_entry(record)
                    continue
                index = tree.append(leaf_hash(value))
                headers = [*record.headers, (H_INDEX, str(index).encode())]
                self._producer.produce(LOG_TOPIC, value, str(index).encode(), headers=headers, partition=0)
                values.append(value)
            size, nodes = tree.state
            state = LogState(size, nodes, self._state.signed)
            self._producer.produce(STATE_TOPIC, state.encode(), _STATE_KEY, partition=0)
            if offsets:
                self._producer.send_offsets(self._consumer, offsets)
            self._producer.commit()
        except KafkaError as exc:
            self._aborted(exc, len(records))
            for (topic, partition), offset in first.items():
                self._consumer.seek(topic, partition, offset)
            return
        self._state = state
        self.stats.entries += len(values)
        self.stats.batches += 1
        if self._tiles is not None:
            self._tiles.append(values)
        if self._checkpoint_due():
            self.publish_checkpoint()

    def publish_checkpoint(self) -> bool:
        """Sign the committed tree, have the witnesses cosign it, publish it; False if it could not be."""
        head = SignedHead(self._state.size, CompactTree.from_state(self._state.size, self._state.nodes).root())
        note = sign_checkpoint(Checkpoint(self.origin, head.size, head.root), [self._signer])
        cosigned = self._cosign(note, head.size)
        self._last_checkpoint = time.monotonic()
        if cosigned is None:
            self.stats.unwitnessed += 1
            return False
        state = LogState(self._state.size, self._state.nodes, head)
        now = self._clock()
        try:
            self._producer.begin()
            self._producer.produce(CHECKPOINT_TOPIC, cosigned.encode(), self.origin.encode(), partition=0,
                                   headers=ce_headers(uuid7(int(now.timestamp() * 1000)), AUDIT_IDENTITY,
                                                      "exchange.checkpoint", format_time(now),
                                                      content_type="text/plain; charset=utf-8"))
            self._producer.produce(STATE_TOPIC, state.encode(), _STATE_KEY, partition=0)
            self._producer.commit()
        except KafkaError as exc:
            self._aborted(exc, 0)
            return False
        self._state = state
        write_signed_head(self._head_file, head)
        if self._tiles is not None:
            self._tiles.write_checkpoint(cosigned)
        self.stats.checkpoints += 1
        self._published_at = time.time()
        _log.info("checkpoint published", size=head.size, origin=self.origin, witnesses=len(self.config.witnesses))
        return True

    def _cosign(self, note: str, size: int) -> str | None:
        """``note`` with every witness's cosignature, or None if one of them would not cosign it now."""
        lines: list[str] = []
        for url in self.config.witnesses:
            old = self._witnessed.get(url, 0)
            for _ in range(2):  # a 409 tells the size the witness has: ask again from there, once
                try:
                    lines += add_checkpoint(url, old, self._proof(old, size), note)
                except WitnessConflictError as exc:
                    old = exc.size
                    continue
                except (WitnessClientError, ValueError) as exc:
                    _log.error("a witness did not cosign; the checkpoint waits", witness=url, size=size,
                               error=str(exc))
                    return None
                self._witnessed[url] = size
                break
            else:
                _log.error("a witness keeps answering 409; the checkpoint waits", witness=url, size=size)
                return None
        return note + "".join(lines)

    def _proof(self, old: int, size: int) -> list[bytes]:
        if self.config.tiles_dir is None or old in (0, size) or old > size:
            return []
        return TileReader(self.config.tiles_dir).consistency_proof(old, size)

    def _quarantine_entry(self, record: ConsumedRecord) -> None:
        error = OversizedRecordError(f"an access-log entry of {len(record.value or b'')} bytes cannot be tiled "
                                     f"(at most {MAX_ENTRY_SIZE})")
        value, headers = self._quarantine.quarantine(record.key, record.value, record.headers, error,
                                                     topic=record.topic, partition=record.partition,
                                                     offset=record.offset, now=self._clock())
        self._producer.produce(QUARANTINE_TOPIC, value, record.key, headers=headers)
        self.stats.quarantined += 1
        _log.error("access-log entry quarantined", reason=error.reason, topic=record.topic,
                   partition=record.partition, offset=record.offset)

    def _aborted(self, exc: KafkaError, records: int) -> None:
        if exc.fatal:
            raise exc
        _log.warning("sequencer transaction aborted; trying again", error=str(exc), records=records)
        self._producer.abort()
        self.stats.aborted_batches += 1
        self._stop.wait(0.5)

    def _integrate_backlog(self) -> TileWriter:
        """The tiles resumed from their directory and caught up with the committed log (after a crash between
        a commit and its tiles), with the last published checkpoint."""
        directory = self.config.tiles_dir
        if directory is None:
            raise ConfigError("no tiles directory to integrate into")
        tiles = TileWriter(directory).resume(min(checkpoint_size(directory), self._state.size))
        if tiles.size < self._state.size:
            missing = [v for i, v in read_log_entries(self.settings, self._bootstrap)
                       if tiles.size <= i < self._state.size]
            tiles.append(missing)
        if self._state.signed is not None and checkpoint_size(directory) < self._state.signed.size:
            notes = read_checkpoints(self.settings, self._bootstrap)
            if notes:
                tiles.write_checkpoint(notes[-1])
        return tiles

def _file_name(origin: str) -> str:
    """A file name for a log origin (which may hold slashes and dots)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in origin)

