"""The HTTP sink's config: the department's endpoint, its bearer token, and how long to keep trying.

::

    name: tcb-http
    kind: http-sink
    recipient: tax-board
    url: https://intake.tcb.example/exchange/deliveries
    token_file: /run/secrets/tcb-intake-token
    timeout_s: 10
    max_attempts: 5
    backoff_s: 0.5

The token is a secret: give it as ``token_file`` (read when the sink is built) rather than in the file itself;
either way it is never logged and never shown in a repr.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.sdk.config import ConnectorConfig, load_config
from exchange.errors import ConfigError

__all__ = ["LOOPBACK_HOSTS", "SINK_KIND", "WebhookSinkConfig", "load_sink_config"]

SINK_KIND = "http-sink"

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""The only hosts a plain ``http://`` url may name: the token must not cross a network in clear."""

_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}\Z")
_RUNTIME_ATTEMPTS = 8
"""The sink runtime gives a batch up after this many failed writes in a row (connectors/sdk/sink_runtime.py)."""


def _split(url: str) -> SplitResult:
    if any(c <= " " or c == "\x7f" for c in url):
        raise ValueError("the url has spaces or control characters")
    if not url.isascii():
        raise ValueError("the url must be ASCII: percent-encode the path, give the host in IDNA (xn--…)")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise ValueError("the url must start with https:// (http:// only for 127.0.0.1 or localhost)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the url must not carry credentials: give the token as token or token_file")
    if not parts.hostname:
        raise ValueError("the url has no host")
    if parts.fragment:
        raise ValueError("the url must not have a #fragment")
    _ = parts.port  # reading it validates the port (ValueError when it is not a number in range)
    return parts


class WebhookSinkConfig(ConnectorConfig):
    """A department's HTTPS endpoint that each delivery is POSTed to, one JSON object per request."""

    # A validation error must not repeat its input: the input holds the token.
    model_config = ConfigDict(hide_input_in_errors=True)

    kind: Literal["http-sink"] = Field(default="http-sink", description="always `http-sink`")
    recipient: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$",
                           description="the department receiving, as the trust registry names it; its encryption "
                                       "key must be in the keystore")
    url: str = Field(description="where each delivery is POSTed: https://…, or http:// to 127.0.0.1 or localhost")
    token: SecretStr | None = Field(default=None, description="the bearer token (prefer token_file)")
    token_file: Path | None = Field(default=None, description="a file holding the bearer token, read when the "
                                                              "sink is built")
    timeout_s: float = Field(default=10.0, gt=0, le=300,
                             description="how long connecting, sending and each wait for the answer may take")
    max_attempts: int = Field(default=5, ge=1, le=_RUNTIME_ATTEMPTS,
                              description="answers that say 'try again' one record may get before it is "
                                          "dead-lettered (at most 8: the runtime gives a batch up after 8)")
    backoff_s: float = Field(default=0.5, gt=0, le=60, description="the least wait before a record's second "
                                                                   "attempt; doubled for each further one")
    backoff_max_s: float = Field(default=30.0, gt=0, le=3600, description="the longest wait between attempts")
    retry_after_max_s: float = Field(default=300.0, gt=0, le=3600,
                                     description="the longest Retry-After of a 429 or 503 that is honoured")
    ca_file: Path | None = Field(default=None, description="PEM certificates to verify the endpoint with, "
                                                           "instead of the system's")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = _split(value)
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            raise ValueError("plain http:// is allowed only for 127.0.0.1 or localhost: use https://")
        return value

    @model_validator(mode="after")
    def _one_token(self) -> WebhookSinkConfig:
        if (self.token is None) == (self.token_file is None):
            raise ValueError("give exactly one of token and token_file")
        if self.token is not None:
            _check_token(self.token.get_secret_value(), "token")
        if self.backoff_max_s < self.backoff_s:
            raise ValueError("backoff_max_s is shorter than backoff_s")
        if self.ca_file is not None and self.plain_http:
            raise ValueError("ca_file is for https:// urls")
        return self

    @property
    def parts(self) -> SplitResult:
        return _split(self.url)

    @property
    def plain_http(self) -> bool:
        """True for an ``http://`` url (loopback only): the token is sent unencrypted."""
        return self.parts.scheme == "http"

    @property
    def endpoint(self) -> str:
        """The url's scheme, host and port, for logs (the path and query are left out)."""
        parts = self.parts
        return f"{parts.scheme}://{parts.netloc}"

    def bearer_token(self) -> SecretStr:
        """The token: ``token``, or the contents of ``token_file`` (surrounding whitespace removed).

        ConfigError naming the file, never its contents, if it cannot be read or is not a token."""
        if self.token is not None:
            return self.token
        if self.token_file is None:  # the model validator makes this impossible
            raise ConfigError(f"{self.name}: give exactly one of token and token_file")
        try:
            text = self.token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ConfigError(f"{self.name}: token_file {self.token_file} cannot be read: {reason}") from None
        try:
            _check_token(text, f"token_file {self.token_file}")
        except ValueError as exc:
            raise ConfigError(f"{self.name}: {exc}") from None
        return SecretStr(text)


def _check_token(token: str, where: str) -> None:
    if not _TOKEN.match(token):
        raise ValueError(f"{where}: a bearer token is 1 to 4096 visible ASCII characters (no spaces)")


def load_sink_config(path: Path | str) -> WebhookSinkConfig:
    """Read an HTTP sink config; ConnectorConfigError with the file and line of the first problem."""
    return load_config(path, WebhookSinkConfig, kind=SINK_KIND)
