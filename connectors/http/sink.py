"""The HTTP sink: each delivery POSTed to a department's endpoint, with an Idempotency-Key.

One request per delivery, ``POST <url>`` with the headers ``Idempotency-Key: <event_id>:<agreement_id>``,
``Authorization: Bearer <token>`` and ``Content-Type: application/json``, and the body (:func:`delivery_json`)::

    {"event_id": …, "agreement_id": …, "record_type": …, "event_time": "2026-11-02T08:30:00Z",
     "source": …, "subject": …, "fields": {…}}

The fields have the JSON forms the webhook source reads (docs/connectors.md): dates ``"YYYY-MM-DD"``, times
RFC 3339 in UTC, bytes standard base64. What the answer does:

=============================  ===================================================================================
2xx, 409                       written (409: the endpoint already has that Idempotency-Key; a 409 *with* a
                               Retry-After says a request with the key is still in progress: Backpressure)
408, 425, 429, 5xx; no answer  :class:`Retryable` (429 and 503 with a Retry-After: :class:`Backpressure`), sent
within ``timeout_s``; the      again with the same key and body; after ``max_attempts`` of them for one record,
connection lost                :class:`BadRecord` (dead-lettered, the rest goes on)
no connection at all           :class:`Retryable`, not counted against the record: the endpoint being down is not
                               the record's fault (the runtime gives the batch up after its own retries, and the
                               connector stops with nothing dead-lettered)
401, 403, 3xx; a certificate   :class:`EndpointRefusedError`: the connector stops. It is the sink's config that is
that does not verify           wrong, not a record, and dead-lettering would drain the stream into the dead letters
other 4xx                      :class:`BadRecord` at once, with the status (never the answer's body)
=============================  ===================================================================================

Records are POSTed one at a time, in the order of the batch, and a record to be sent again holds back the ones
after it: the deliveries of one subject reach the endpoint in the order the exchange routed them (a later address
change after an earlier one). Only a dead-lettered record lets the ones after it pass.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, NoReturn

from connectors.http.sink_config import WebhookSinkConfig
from connectors.sdk.api import Backpressure, BadRecord, Retryable, Sink, SinkRecord, SourceContext
from exchange.errors import ConfigError
from exchange.log import get_logger

__all__ = ["ANSWER_LIMIT", "EndpointRefusedError", "WebhookSink", "build_sink", "delivery_json",
           "idempotency_key", "retry_after_seconds"]

ANSWER_LIMIT = 64 * 1024
"""Bytes of an answer's body read (and discarded); a longer answer closes the connection."""

_RETRY = frozenset({408, 425, 429})
_RETRY_AFTER = frozenset({429, 503})
_KEY = re.compile(r"[\x21-\x7e]{1,512}\Z")
_SECONDS = re.compile(r"[0-9]{1,10}\Z")


class EndpointRefusedError(ConfigError):
    """The endpoint refuses the sink itself, not one record: its token (401, 403), its url (a redirect) or its
    trust in the endpoint's certificate. The connector stops; nothing of the batch is committed or dead-lettered,
    so once the config is fixed the batch is written again."""


class _UnwritableError(ValueError):
    """A value with no JSON form (a NaN, an unknown type)."""


class _Unreachable(Exception):  # noqa: N818 - internal signal: no connection, nothing was sent
    pass


class _Lost(Exception):  # noqa: N818 - internal signal: sent, and no answer came
    pass


class _Stale(Exception):  # noqa: N818 - internal signal: a kept-alive connection the endpoint had closed
    pass


@dataclass(slots=True)
class _Failures:
    """A record's answers that said "try again", and when it may be sent next."""

    attempts: int = 0
    not_before: float = 0.0


def idempotency_key(record: SinkRecord) -> str:
    """The ``Idempotency-Key`` header of ``record``: ``<event_id>:<agreement_id>``."""
    return f"{record.event_id}:{record.agreement_id}"


def delivery_json(record: SinkRecord) -> bytes:
    """The body POSTed for ``record`` (UTF-8 JSON; the same bytes every time, so a retry is the same request).
    ValueError, naming the field and not its value, for a value JSON cannot carry."""
    document = {"event_id": record.event_id, "agreement_id": record.agreement_id,
                "record_type": record.record_type, "event_time": _time(record.event_time),
                "source": record.source, "subject": record.subject,
                "fields": {str(name): _jsonable(value, str(name)) for name, value in record.fields.items()}}
    text = json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise _UnwritableError("a string is not valid Unicode (a lone surrogate)") from None


def _time(value: datetime) -> str:
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.isoformat().removesuffix("+00:00") + "Z"


def _jsonable(value: Any, path: str) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _UnwritableError(f"field {path}: not a finite number")
        return value
    if isinstance(value, datetime):
        return _time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise _UnwritableError(f"field {path}: a {type(value).__name__} has no JSON form")


def _status(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _describe(exc: BaseException) -> str:
    """What failed, without anything the other side sent (a status line, a header)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


def retry_after_seconds(value: str | None, cap: float) -> float | None:
    """The seconds a ``Retry-After`` header asks for (delay-seconds or an HTTP-date), at most ``cap``; None if
    there is none or it cannot be read."""
    if value is None:
        return None
    text = value.strip()
    if _SECONDS.match(text):
        return min(float(text), cap)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - datetime.now(UTC)).total_seconds()), cap)


def _tls_context(config: WebhookSinkConfig) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{config.name}: ca_file {config.ca_file} cannot be used: {_describe(exc)}") from None


class WebhookSink(Sink):
    """POSTs each delivery to ``config.url``, one at a time, in order (see the module doc).

    The token is read when the sink is built (``token_file``) and kept only for the Authorization header: it is in
    no log line, no exception and no repr."""

    def __init__(self, config: WebhookSinkConfig) -> None:
        self.config = config
        self._token = config.bearer_token()
        parts = config.parts
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._connection: http.client.HTTPConnection
        if config.plain_http:
            self._connection = http.client.HTTPConnection(parts.hostname or "", parts.port,
                                                          timeout=config.timeout_s)
        else:
            self._connection = http.client.HTTPSConnection(parts.hostname or "", parts.port,
                                                           timeout=config.timeout_s, context=_tls_context(config))
        self._written: set[tuple[str, str]] = set()
        self._failures: dict[tuple[str, str], _Failures] = {}
        self._log = get_logger("connectors.http.sink", connector=config.name, endpoint=config.endpoint)
        if config.plain_http:
            self._log.warning("posting deliveries over plain HTTP: the bearer token and the records are not "
                              "encrypted; use https:// for anything but a local proxy or test")

    def __repr__(self) -> str:
        return f"WebhookSink(name={self.config.name!r}, endpoint={self.config.endpoint!r})"

    def open(self, context: SourceContext) -> None:
        if context.agency != self.config.recipient:
            raise ConfigError(f"{self.config.name}: this sink writes the deliveries of {self.config.recipient}, "
                              f"not of {context.agency}")
        self._written.clear()
        self._failures.clear()

    def close(self) -> None:
        self._connection.close()

    def write(self, batch: Sequence[SinkRecord]) -> None:
        """POST each record of ``batch`` in order. A record already answered 2xx/409 in an earlier call that
        raised (the runtime calls again with the rest of the batch) is not POSTed again."""
        for record in batch:
            if record.idempotency_key not in self._written:
                self._write_one(record)
                self._written.add(record.idempotency_key)
        self._written.clear()  # written: the runtime commits, and these are not given again

    # -- one record -----------------------------------------------------------------------------------------

    def _write_one(self, record: SinkRecord) -> None:
        header = idempotency_key(record)
        if not _KEY.match(header):
            raise BadRecord("the event and agreement ids make no valid Idempotency-Key header", record=record)
        try:
            body = delivery_json(record)
        except _UnwritableError as exc:
            raise BadRecord(f"the delivery has no JSON form: {exc}", record=record) from None
        self._wait_turn(record)
        headers = {"Idempotency-Key": header, "Content-Type": "application/json", "Accept": "application/json",
                   "Authorization": f"Bearer {self._token.get_secret_value()}"}
        try:
            try:
                status, retry_after = self._post(body, headers)
            except _Stale:
                status, retry_after = self._post(body, headers)  # on a new connection
        except _Unreachable as exc:
            self._log.warning("the endpoint cannot be reached; retrying", event_id=record.event_id,
                              error=str(exc))
            raise Retryable(str(exc)) from None
        except (_Lost, _Stale) as exc:
            self._again(record, str(exc) or "the connection was lost", None)
        self._judge(record, status, retry_after)

    def _judge(self, record: SinkRecord, status: int, retry_after: str | None) -> None:
        if status == 409 and retry_after is not None:  # "in progress", as the IETF Idempotency-Key draft has it
            wait = retry_after_seconds(retry_after, self.config.retry_after_max_s)
            self._again(record, "the endpoint answered 409 Conflict: a request with this key is in progress", wait)
        if 200 <= status < 300 or status == 409:
            self._failures.pop(record.idempotency_key, None)
            if status == 409:
                self._log.info("the endpoint already has the delivery", event_id=record.event_id)
            return
        reason = f"the endpoint answered {_status(status)}"
        if status in (401, 403):
            self._log.error("the endpoint refuses the sink's bearer token: check token or token_file and the "
                            "endpoint's grant; the connector stops and nothing is dead-lettered", status=status)
            raise EndpointRefusedError(f"{self.config.name}: {reason}: it refuses this sink's credentials (token or "
                                       "token_file); fix them and start the connector again")
        if 300 <= status < 400:
            self._log.error("the endpoint redirects; redirects are not followed (the bearer token would go "
                            "along): set url to the final address", status=status)
            raise EndpointRefusedError(f"{self.config.name}: {reason}: redirects are not followed; set url to the "
                                       "final address")
        if status in _RETRY or status >= 500 or status < 200:
            wait = retry_after_seconds(retry_after, self.config.retry_after_max_s) if status in _RETRY_AFTER \
                else None
            self._again(record, reason, wait)
        self._log.warning("the endpoint refuses the delivery; it is dead-lettered", event_id=record.event_id,
                          status=status)
        raise BadRecord(reason, record=record)

    def _again(self, record: SinkRecord, reason: str, retry_after: float | None) -> NoReturn:
        """One more attempt of ``record`` failed: Retryable (Backpressure with a Retry-After), or BadRecord after
        ``max_attempts``."""
        failures = self._failures.setdefault(record.idempotency_key, _Failures())
        failures.attempts += 1
        if failures.attempts >= self.config.max_attempts:
            del self._failures[record.idempotency_key]
            self._log.warning("the delivery is given up and dead-lettered", event_id=record.event_id,
                              attempts=failures.attempts, reason=reason)
            raise BadRecord(f"{reason}; given up after {failures.attempts} attempt(s)", record=record)
        backoff = min(self.config.backoff_max_s, self.config.backoff_s * 2 ** (failures.attempts - 1))
        delay = backoff if retry_after is None else retry_after
        failures.not_before = time.monotonic() + delay
        self._log.warning("the delivery is not written yet; retrying", event_id=record.event_id,
                          attempt=failures.attempts, max_attempts=self.config.max_attempts, reason=reason,
                          retry_in_s=delay)
        if retry_after is not None:
            raise Backpressure(retry_after, reason)
        raise Retryable(reason)

    def _wait_turn(self, record: SinkRecord) -> None:
        """Keep the sink's own backoff for a record sent again, however soon the runtime calls back."""
        failures = self._failures.get(record.idempotency_key)
        if failures is not None:
            wait = failures.not_before - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    # -- HTTP -----------------------------------------------------------------------------------------------

    def _post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, str | None]:
        """Status and Retry-After of one POST; _Stale if a kept-alive connection turned out closed."""
        connection = self._connection
        reused = connection.sock is not None
        if not reused:
            self._connect()
        try:
            connection.request("POST", self._path, body=body, headers=dict(headers))
            response = connection.getresponse()
            status, retry_after = response.status, response.getheader("Retry-After")
            response.read(ANSWER_LIMIT)
            if not response.isclosed():
                connection.close()  # a long answer: not read to its end, so the connection cannot be reused
        except TimeoutError:
            connection.close()
            raise _Lost(f"no answer within {self.config.timeout_s:g} s") from None
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            connection.close()
            if reused:
                raise _Stale(f"the connection was lost ({_describe(exc)})") from None
            raise _Lost(f"the connection was lost ({_describe(exc)})") from None
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise _Lost(f"the request failed ({_describe(exc)})") from None
        return status, retry_after

    def _connect(self) -> None:
        try:
            self._connection.connect()
        except ssl.SSLCertVerificationError as exc:
            self._connection.close()
            self._log.error("the endpoint's certificate does not verify: set ca_file to the certificate of the "
                            "CA that issued it; the connector stops", error=exc.verify_message)
            raise EndpointRefusedError(f"{self.config.name}: the certificate of {self.config.endpoint} does not "
                                       f"verify ({exc.verify_message}); set ca_file") from None
        except (OSError, http.client.HTTPException) as exc:
            self._connection.close()
            raise _Unreachable(f"{self.config.endpoint} cannot be reached ({_describe(exc)})") from None


def build_sink(config: WebhookSinkConfig) -> WebhookSink:
    """The HTTP sink of ``config`` (``token_file`` is read now: a missing or empty one is a ConfigError)."""
    return WebhookSink(config)
