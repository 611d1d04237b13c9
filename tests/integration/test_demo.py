"""`exchange demo`, the README's main command, as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

EXCHANGE = shutil.which("exchange") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "exchange")


def test_demo_summary_shows_every_part_of_the_exchange(bootstrap: str, tmp_path: Path) -> None:
    """The demo publishes, delivers per department, denies by reason (consent revoked among them), quarantines
    every bad kind, logs every decision, and every delivery verifies end to end."""
    env = {**os.environ, "EXCHANGE_BOOTSTRAP": bootstrap}
    done = subprocess.run([EXCHANGE, "demo", "--events", "120", "--json", "--workdir", str(tmp_path / "demo")],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert {"published", "delivered", "denied", "quarantined", "audit_entries", "all_deliveries_verified"} <= set(
        summary)
    assert summary["published"] >= 120
    assert summary["all_deliveries_verified"] is True
    assert {"tax-board", "statistics-office", "social-insurance", "public"} <= set(summary["delivered"])
    assert {"NO_CONSENT", "CONSENT_REVOKED"} <= set(summary["denied"])
    assert set(summary["quarantined"]) == {"BAD_SIGNATURE", "UNKNOWN_KEY", "NOT_AUTHORITATIVE", "REPLAYED",
                                           "BAD_DATUM", "UNKNOWN_SCHEMA", "MALFORMED_ENVELOPE", "BAD_KEY",
                                           "WRONG_PARTITION", "TIME_SKEW"}
    assert summary["consent"] == ["income assessed without consent: denied (NO_CONSENT)",
                                  "income assessed with consent: delivered",
                                  "income assessed after revocation: denied (CONSENT_REVOKED)"]
    # The access log holds exactly one entry per decision and per rejected record, as the router committed them.
    assert summary["audit_entries"] == summary["decisions"] + sum(summary["quarantined"].values())
    assert summary["decisions"] >= sum(summary["delivered"].values())
    # The sequencer ordered every entry into the signed log, and the log verifies from index 0.
    assert summary["audit"]["entries"] == summary["audit_entries"]
    assert summary["audit"]["checkpoints"] >= 1
    assert summary["audit"]["verified"] is True
    assert summary["audit"]["witnessed"] is True  # a witness cosigned every published checkpoint
    # The statistics office never sees a person id: its field sets hold the recipient pseudonym instead.
    for fields in summary["fields"]["statistics-office"].values():
        assert "person_id" not in fields
        assert "(recipient pseudonym)" in fields
    # Keys stay in the keystore, readable by their owner only.
    keys = list((tmp_path / "demo" / "keystore").glob("*.key"))
    assert keys
    assert all(k.stat().st_mode & 0o077 == 0 for k in keys)
    tracker = summary["tracker"]
    assert tracker["url"].startswith("http://127.0.0.1:")
    assert tracker["rows"] >= 1
    assert tracker["shows_the_grant"] is True
    assert tracker["hides_the_denials"] is True
    assert tracker["token"].count(".") == 2
