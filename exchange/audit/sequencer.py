"""The access-log sequencer: decisions in, a contiguous, signed, append-only log out.

It reads every partition of ``audit.decisions`` (read_committed; assigned, not a group member, so no second
instance can take half the partitions) and, per batch, in **one Kafka transaction**:

1. appends each decision as the next leaf of an RFC 6962 tree and writes it to ``audit.log`` (one partition,
   key and ``ce_exindex`` = its index from 0, value and headers = the router's entry unchanged);
2. when ``checkpoint_every`` entries or ``checkpoint_interval`` seconds have passed since the last one, signs a
   C2SP tlog-checkpoint of the tree with the ``exchange-audit`` key and writes it to ``audit.checkpoints``;
3. writes the tree state (size, right edge, last signed head) to ``audit.sequencer``;
4. adds the consumed offsets (KIP-447) and commits.

A crash anywhere leaves all of a batch or none of it, so indices never skip or repeat and no decision is lost
or sequenced twice. One instance per log: its transactional id fences any older one. It never signs a
checkpoint that does not extend the last one it signed (see :mod:`exchange.audit.state`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from exchange.audit.errors import SequencerStateError
from exchange.audit.state import LogState, SignedHead, read_signed_head, write_signed_head
from exchange.crypto.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from exchange.crypto.keys import Signer
from exchange.crypto.merkle import CompactTree, leaf_hash
from exchange.crypto.note import Verifier
from exchange.envelope import format_time, uuid7
from exchange.envelope.attributes import ce_headers
from exchange.kafka import ConsumedRecord, Consumer, KafkaError, TransactionalProducer, read_to_end
from exchange.log import get_logger
from exchange.settings import Settings, get_settings

__all__ = ["AUDIT_IDENTITY", "CHECKPOINT_TOPIC", "LOG_TOPIC", "STATE_TOPIC", "Sequencer", "SequencerConfig",
           "SequencerStats"]

AUDIT_IDENTITY = "exchange-audit"
DECISIONS_TOPIC = "audit.decisions"
LOG_TOPIC = "audit.log"
STATE_TOPIC = "audit.sequencer"
CHECKPOINT_TOPIC = "audit.checkpoints"
H_INDEX = "ce_exindex"
_STATE_KEY = b"state"

_log = get_logger("exchange.audit.sequencer")


@dataclass(frozen=True)
class SequencerConfig:
    checkpoint_every: int = 1000
    checkpoint_interval: float = 5.0
    max_batch: int = 1000
    poll_timeout: float = 0.2
    unsafe_trust_log_state: bool = False
    """Adopt the log's own state as what was signed although this sequencer has no record of it (a lost state
    directory). Only for a state directory known to be lost, never for one that disagrees."""


@dataclass
class SequencerStats:
    entries: int = 0
    checkpoints: int = 0
    batches: int = 0
    aborted_batches: int = 0


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
        self._state = self._resume()
        self._last_checkpoint = time.monotonic()
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
                        self.sequence([])
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
        """Sequence one batch (and sign a checkpoint if one is due) in one transaction."""
        tree = CompactTree.from_state(self._state.size, self._state.nodes)
        offsets: dict[tuple[str, int], int] = {}
        first: dict[tuple[str, int], int] = {}
        signed = self._state.signed
        try:
            self._producer.begin()
            for record in records:
                value = record.value or b""
                index = tree.append(leaf_hash(value))
                headers = [*record.headers, (H_INDEX, str(index).encode())]
                self._producer.produce(LOG_TOPIC, value, str(index).encode(), headers=headers, partition=0)
                tp = (record.topic, record.partition)
                first.setdefault(tp, record.offset)
                offsets[tp] = record.offset + 1
            if self._checkpoint_due(tree.size):
                signed = SignedHead(tree.size, tree.root())
                note = sign_checkpoint(Checkpoint(self.origin, signed.size, signed.root), [self._signer])
                now = self._clock()
                self._producer.produce(CHECKPOINT_TOPIC, note.encode(), self.origin.encode(), partition=0,
                                       headers=ce_headers(uuid7(int(now.timestamp() * 1000)), AUDIT_IDENTITY,
                                                          "exchange.checkpoint", format_time(now),
                                                          content_type="text/plain; charset=utf-8"))
            size, nodes = tree.state
            state = LogState(size, nodes, signed)
            self._producer.produce(STATE_TOPIC, state.encode(), _STATE_KEY, partition=0)
            if offsets:
                self._producer.send_offsets(self._consumer, offsets)
            self._producer.commit()
        except KafkaError as exc:
            if exc.fatal:
                raise
            _log.warning("sequencer batch aborted; consuming it again", error=str(exc), records=len(records))
            self._producer.abort()
            self.stats.aborted_batches += 1
            for (topic, partition), offset in first.items():
                self._consumer.seek(topic, partition, offset)
            self._stop.wait(0.5)
            return
        published = signed is not None and signed != self._state.signed
        self._state = state
        if published and signed is not None:
            write_signed_head(self._head_file, signed)
            self._last_checkpoint = time.monotonic()
            self.stats.checkpoints += 1
            _log.info("checkpoint published", size=signed.size, origin=self.origin)
        self.stats.entries += len(records)
        self.stats.batches += 1


def _file_name(origin: str) -> str:
    """A file name for a log origin (which may hold slashes and dots)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in origin)

