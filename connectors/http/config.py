"""The webhook source's config: where it listens, whose records it takes, and how long it waits for Kafka.

::

    name: prc-webhook
    kind: http-webhook
    agency: population-registry
    port: 8480
    token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    record_types: [population.address-changed]

The bearer token itself is never in the file: only its SHA-256 (``printf %s "$TOKEN" | sha256sum``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from connectors.sdk.config import ConnectorConfig, load_config

__all__ = ["KIND", "WebhookSourceConfig", "load_webhook_config", "token_digest"]

KIND = "http-webhook"

DEFAULT_STATE_DIR = Path("connector-state")
"""Where a connector keeps local state by default (relative to the working directory), one folder per name."""

_RECORD_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z][a-z0-9-]*\Z")


def _record_type(value: str) -> str:
    if not _RECORD_TYPE.match(value):
        raise ValueError(f"{value!r} is not a record type (<domain>.<event>)")
    return value


RecordType = Annotated[str, AfterValidator(_record_type)]


def token_digest(token: str) -> str:
    """The hex SHA-256 of a bearer token, as ``token_sha256`` holds it."""
    return hashlib.sha256(token.encode()).hexdigest()


class WebhookSourceConfig(ConnectorConfig):
    """An HTTP endpoint an agency's system POSTs its records to, one JSON object per request."""

    kind: Literal["http-webhook"] = Field(default="http-webhook", description="always `http-webhook`")
    agency: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$",
                        description="the agency whose records this endpoint publishes, as the trust registry names "
                                    "it; its signing key must be in the keystore")
    host: str = Field(default="127.0.0.1", min_length=1, description="the address to listen on")
    port: int = Field(ge=1, le=65535, description="the TCP port to listen on")
    token_sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$",
                              description="hex SHA-256 of the agency's bearer token (never the token itself)")
    record_types: tuple[RecordType, ...] = Field(min_length=1,
                                          description="the record types this endpoint accepts; the agency must be "
                                                      "authoritative for each")
    max_body_bytes: int = Field(default=512 * 1024, ge=2, le=16 * 1024 * 1024,
                                description="the largest request body; larger ones are answered 413")
    durable_timeout_s: float = Field(default=10.0, gt=0, le=60,
                                     description="how long a POST waits for the broker to acknowledge the record "
                                                 "(acks=all) before it is answered 503")
    retry_after_s: int = Field(default=5, ge=1, le=3600,
                               description="the Retry-After of a 503 or of a 409 for a request still in progress")
    idempotency_db: Path | None = Field(default=None,
                                        description="the SQLite file of Idempotency-Key answers; default "
                                                    "connector-state/<name>/idempotency.sqlite3")
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=60,
                                   description="how long an Idempotency-Key answer is kept and replayed")
    tls_certfile: Path | None = Field(default=None, description="serve HTTPS with this certificate chain (PEM)")
    tls_keyfile: Path | None = Field(default=None, description="... and this private key (PEM)")

    @field_validator("token_sha256")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("record_types")
    @classmethod
    def _once_each(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        for record_type in value:
            if record_type in seen:
                raise ValueError(f"{record_type!r} is listed twice")
            seen.add(record_type)
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> WebhookSourceConfig:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together: give both or neither")
        return self

    def idempotency_path(self) -> Path:
        """The SQLite file of this endpoint's Idempotency-Key answers."""
        return self.idempotency_db or DEFAULT_STATE_DIR / self.name / "idempotency.sqlite3"


def load_webhook_config(path: Path | str) -> WebhookSourceConfig:
    """Read a webhook source config; ConnectorConfigError with the file and line of the first problem."""
    return load_config(path, WebhookSourceConfig, kind=KIND)
