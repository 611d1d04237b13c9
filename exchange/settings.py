"""Settings read from ``EXCHANGE_*`` environment variables (and a ``.env`` file, if present).

Secrets are :class:`pydantic.SecretStr`: masked in ``repr``, in logs and in error messages.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]

_DEFAULT_CACHE = Path.home() / ".cache" / "exchange"


class Settings(BaseSettings):
    """Everything an ``exchange`` process can be configured with."""

    model_config = SettingsConfigDict(env_prefix="EXCHANGE_", env_file=".env", extra="ignore", frozen=True)

    bootstrap: str | None = Field(
        default=None,
        description="bootstrap servers of an existing cluster; when unset, the local broker's address is used",
    )
    cache_dir: Path = Field(default=_DEFAULT_CACHE, description="where Kafka jars and local broker data live")
    kafka_version: str = Field(default="4.3.1", description="Apache Kafka release the local broker runs")
    broker_heap: str = Field(default="1g", description="maximum Java heap of the local broker")
    cluster_heap: str = Field(default="320m",
                              description="maximum Java heap of each node of the local multi-node cluster")
    cluster_dir: Path | None = Field(
        default=None,
        description="where the local multi-node cluster keeps its nodes (default: <cache>/kafka-<version>/cluster)",
    )
    keystore: Path = Field(default=Path("keystore"), description="directory of private keys (files mode 0600)")
    schemas: Path = Field(default=Path("schemas"), description="the schema catalogue")
    policies: Path = Field(default=Path("policies"), description="agreements/ and restrictions.yaml")
    registry: Path = Field(default=Path("policies/registry.yaml"), description="the trust registry")
    pseudonym_secret: SecretStr | None = Field(
        default=None, description="the exchange-wide secret subject pseudonyms are keyed with (16+ bytes)"
    )
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: str = "INFO"
    metrics_port: int | None = Field(default=None, description="serve Prometheus /metrics on this port")
    metrics_addr: str = Field(default="127.0.0.1", description="the address /metrics listens on (0.0.0.0 in a "
                                                               "container, for a Prometheus elsewhere)")
    client_id: str = "exchange"
    topic_prefix: str = Field(default="", description="prepended to every topic name (a namespace on a shared cluster)")
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    audit_origin: str = Field(default="exchange.local/access-log",
                              description="the access log's origin line in its checkpoints (a name for this log)")
    audit_state_dir: Path = Field(default=Path("audit-state"),
                                  description="where the sequencer records the last checkpoint it signed")
    audit_tiles_dir: Path | None = Field(default=None,
                                         description="where the sequencer writes the log as C2SP tlog-tiles")
    replication_factor: int | None = Field(
        default=None, description="replication factor for `topics apply`; default: min(3, brokers)"
    )
    # The citizen data tracker's bearer tokens (exchange/tracker/tokens.py): JWTs signed by an identity provider.
    tracker_issuer: str = Field(default="https://id.exchange.local", description="the tokens' required 'iss'")
    tracker_issuer_key: str | None = Field(
        default=None, description="the issuer's public key (Ed25519 or P-256): PEM, JWK or JWK Set text, or a path"
    )
    tracker_audience: str = Field(default="exchange-tracker", description="the tokens' required 'aud'")
    tracker_person_claim: str = Field(default="person_id", description="the claim that holds the person id")
    tracker_database: Path = Field(default=Path("tracker.sqlite"),
                                   description="the tracker's index as a SQLite file (unless a database URL is set)")
    tracker_database_url: SecretStr | None = Field(
        default=None, description="a postgresql:// URL for the tracker's index (it may hold a password)"
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
