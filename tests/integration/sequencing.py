"""Running the access-log sequencer in a test until it has signed a given size, with a witness cosigning every
checkpoint when asked: what the audit tests share."""

from __future__ import annotations

from pathlib import Path

from exchange.audit import AUDIT_IDENTITY, Sequencer, SequencerConfig, Witness
from exchange.audit.witness_http import WitnessHTTPServer, serve_in_thread
from exchange.crypto.cosignature import Cosigner
from exchange.crypto.note import Verifier
from exchange.registry import Keystore
from exchange.runner import ServiceThread
from exchange.settings import Settings


def sequence(settings: Settings, keystore: Keystore, size: int, *, every: int, tiles: Path | None = None,
             cosigner: Cosigner | None = None, witness_dir: Path | None = None) -> Verifier:
    """Sequence until a checkpoint of ``size`` entries is signed (and, with ``cosigner``, cosigned by a witness
    keeping its state in ``witness_dir``); returns the log's verifier key."""
    signer = keystore.signer(AUDIT_IDENTITY)
    log_key = Verifier(signer.name, signer.public_key)
    witness = server = thread = None
    if cosigner is not None:
        witness = Witness(cosigner, {settings.audit_origin: [log_key]}, witness_dir or settings.audit_state_dir)
        server = WitnessHTTPServer(("127.0.0.1", 0), witness, request_timeout=5)
        thread = serve_in_thread(server, poll_interval=0.02)
    config = SequencerConfig(checkpoint_every=every, checkpoint_interval=0.5, max_batch=every, tiles_dir=tiles,
                             witnesses=() if server is None else (server.url,))
    try:
        running = ServiceThread(Sequencer(config, signer, settings=settings), "sequencer")
        try:
            running.wait_for(lambda s: s.signed is not None and s.signed.size == size)
        finally:
            running.stop()
    finally:
        if server is not None and thread is not None and witness is not None:
            server.shutdown()
            thread.join(5)
            server.server_close()
            witness.close()
    return log_key
