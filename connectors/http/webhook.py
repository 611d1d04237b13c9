"""The webhook source: an agency's system POSTs a record; the answer comes once the broker has it.

``POST /records/{record_type}`` with a JSON object (docs/connectors.md, "HTTP webhook source"):

=====  =====================================================================================================
202    ``{"event_id": …}``: the record is signed and written with acks=all (its delivery report came)
400    the body is not a JSON object, or the Idempotency-Key header is malformed
401    no bearer token, or not the agency's (``WWW-Authenticate: Bearer``)
404    this endpoint does not take that record type
409    a request with the same Idempotency-Key is still in progress (``Retry-After``)
413    the body is larger than ``max_body_bytes``, or the record than the router takes (512 KiB encoded)
415    the body is declared as something other than JSON
422    the record does not match its schema (every bad field named, no value repeated), or the
       Idempotency-Key was used before for a different request
503    the broker did not acknowledge the record in ``durable_timeout_s``, or too much is in flight
       (``Retry-After``)
=====  =====================================================================================================

``GET /health`` answers 200 while the publishing thread runs. Nothing is logged of a body, a token or a key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.http.body import parse_object, read_body
from connectors.http.config import WebhookSourceConfig
from connectors.http.durable import DurablePublisher, InFlightLimitError, Job
from connectors.http.idempotency import Claimed, Conflict, IdempotencyStore, InProgress, Replay
from connectors.http.metrics import IN_FLIGHT, PUBLISH_LATENCY, REQUESTS
from connectors.sdk.jsonrecord import FieldProblem, record_from_json
from exchange.context import Context
from exchange.envelope.verify import KEY_LIMIT, VALUE_LIMIT
from exchange.errors import ExchangeError
from exchange.kafka import Producer
from exchange.log import get_logger
from exchange.metrics import serve_metrics
from exchange.publisher import Delivery
from exchange.schemas.errors import RecordValidationError
from exchange.settings import Settings, get_settings

__all__ = ["WebhookSource", "build_app", "make_server", "producer_overrides", "serve", "webhook_source"]

_log = get_logger("connectors.http")

_KEY = re.compile(r"[\x21-\x7e]{1,200}\Z")
_PROBLEM = re.compile(r"field '([^']*)': (.*)\Z")
MAX_PROBLEMS = 50
"""A 422 lists at most this many problems (and says how many there were)."""


def producer_overrides(config: WebhookSourceConfig) -> dict[str, Any]:
    """The producer of a webhook: every record acknowledged by all in-sync replicas, written once, and given up
    when its request stops waiting for it."""
    return {"acks": "all", "enable.idempotence": True, "linger.ms": 1,
            "message.timeout.ms": int(config.durable_timeout_s * 1000)}


def pending_lease_s(config: WebhookSourceConfig) -> float:
    """How long an Idempotency-Key stays claimed by a request whose process may have died: long after librdkafka
    must have reported its record."""
    return 2 * config.durable_timeout_s + 60


class _Endpoint:
    def __init__(self, config: WebhookSourceConfig, publisher: DurablePublisher, store: IdempotencyStore) -> None:
        if publisher.agency != config.agency:
            raise ExchangeError(f"the publisher signs as {publisher.agency}, the config is {config.agency}'s")
        self.config = config
        self.publisher = publisher
        self.store = store
        self.schemas = publisher.schemas(config.record_types)
        self._token = bytes.fromhex(config.token_sha256)
        self._late: set[asyncio.Task[None]] = set()

    # -- answers --------------------------------------------------------------------------------------------

    def _answer(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
        REQUESTS.labels(self.config.name, str(status)).inc()
        return JSONResponse(dict(body), status_code=status, headers=dict(headers or {}))

    def _error(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None,
               **extra: Any) -> Response:
        return self._answer(status, {"error": code, "message": message, **extra}, headers)

    def _unavailable(self, message: str) -> Response:
        return self._error(503, "unavailable", message, {"Retry-After": str(self.config.retry_after_s)})

    def _invalid(self, record_type: str, problems: list[FieldProblem]) -> Response:
        return self._error(422, "invalid_record", f"{record_type}: {len(problems)} bad field(s)",
                           record_type=record_type, field=problems[0].field, count=len(problems),
                           problems=[p.as_json() for p in problems[:MAX_PROBLEMS]])

    # -- routes ---------------------------------------------------------------------------------------------

    async def health(self, _request: Request) -> Response:
        if self.publisher.alive:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable"}, status_code=503)

    async def post(self, request: Request) -> Response:
        record_type = request.path_params["record_type"]
        refused = self._refuse_by_headers(request, record_type)
        if refused is not None:
            return refused
        body = await read_body(request, self.config.max_body_bytes)
        if body is None:
            return self._error(413, "too_large", f"the body must be at most {self.config.max_body_bytes} bytes",
                               {"Connection": "close"})
        document = parse_object(body)
        if isinstance(document, str):
            return self._error(400, "bad_json", document)
        claim: tuple[str, str] | None = None
        key = request.headers.get("idempotency-key")
        if key is not None:
            outcome = await run_in_threadpool(self.store.claim, self.config.agency, key, record_type,
                                              hashlib.sha256(body).hexdigest())
            if not isinstance(outcome, Claimed):
                return self._answer_from(outcome)
            claim = (key, outcome.token)
        settled = True  # if _publish is cancelled, it has handed the claim to _settle_late
        try:
            answer, settled = await self._publish(record_type, document, len(body), claim)
        except Exception:
            settled = False
            raise
        finally:
            if claim is not None and not settled:
                await self._release(claim)
        return answer

    def _refuse_by_headers(self, request: Request, record_type: str) -> Response | None:
        """The answer to a request refused before its body is read, or None."""
        if not self._authorised(request.headers.get("authorization")):
            return self._error(401, "unauthorized", "a valid bearer token of the agency is required",
                               {"WWW-Authenticate": 'Bearer realm="exchange"'})
        if record_type not in self.schemas:
            return self._error(404, "unknown_record_type", "this endpoint does not take that record type",
                               accepts=list(self.schemas))
        keys = request.headers.getlist("idempotency-key")
        if len(keys) > 1 or (keys and not _KEY.match(keys[0])):
            return self._error(400, "bad_idempotency_key", "Idempotency-Key must be one header of 1 to 200 visible "
                               "ASCII characters")
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            return self._error(415, "unsupported_media_type", "the body must be application/json")
        return None

    def _answer_from(self, outcome: Replay | Conflict | InProgress) -> Response:
        """The answer for a key that is not this request's to publish with."""
        if isinstance(outcome, Replay):
            REQUESTS.labels(self.config.name, str(outcome.status)).inc()
            return Response(outcome.answer, status_code=outcome.status, media_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
        if isinstance(outcome, Conflict):
            return self._error(422, "idempotency_key_reused", outcome.reason)
        return self._error(409, "in_progress", "a request with this Idempotency-Key is still in progress",
                           {"Retry-After": str(self.config.retry_after_s)})

    # -- publishing -----------------------------------------------------------------------------------------

    async def _publish(self, record_type: str, document: dict[str, Any], size: int,
                       claim: tuple[str, str] | None) -> tuple[Response, bool]:
        """The answer, and whether the claim (if any) is settled already (else the caller releases it)."""
        schema = self.schemas[record_type]
        values, problems = record_from_json(schema, document)
        if problems:
            return self._invalid(record_type, problems), False
        refused = self._refuse_by_size(record_type, values)
        if refused is not None:
            return refused, False
        try:
            job = self.publisher.submit(record_type, values, size)
        except InFlightLimitError:
            return self._unavailable("too many records are waiting for the broker; try again later"), False
        except ExchangeError:
            return self._unavailable("the connector is not running"), False
        started = time.monotonic()
        IN_FLIGHT.labels(self.config.name).inc()
        delivered = asyncio.wrap_future(job.delivered)
        try:
            done, _ = await asyncio.wait({delivered}, timeout=self.config.durable_timeout_s)
        except asyncio.CancelledError:
            self._watch(delivered, claim, started)
            raise
        if not done:
            self._watch(delivered, claim, started)
            _log.warning("no acknowledgement in time", record_type=record_type, ce_id=_event_id(job),
                         timeout_s=self.config.durable_timeout_s)
            return self._unavailable("the broker did not acknowledge the record in time; try again later"), True
        IN_FLIGHT.labels(self.config.name).dec()
        error = delivered.exception()
        if isinstance(error, RecordValidationError):  # record_from_json missed it: the schema is the judge
            return self._invalid(record_type, _problems(error)), False
        if error is not None:
            _log.error("publishing failed", record_type=record_type, error=str(error))
            return self._unavailable("the record could not be published; try again later"), False
        delivery = delivered.result()
        if not delivery.ok:
            _log.warning("delivery failed", record_type=record_type, ce_id=delivery.event_id,
                         error=str(delivery.error))
            return self._unavailable("the broker did not take the record; try again later"), False
        PUBLISH_LATENCY.labels(self.config.name).observe(time.monotonic() - started)
        answer = json.dumps({"event_id": delivery.event_id})
        if claim is not None:
            await self._complete(claim, answer, delivery)
        _log.info("record accepted", record_type=record_type, ce_id=delivery.event_id, topic=delivery.topic,
                  partition=delivery.partition, offset=delivery.offset)
        REQUESTS.labels(self.config.name, "202").inc()
        return Response(answer, status_code=202, media_type="application/json"), True

    def _refuse_by_size(self, record_type: str, values: dict[str, Any]) -> Response | None:
        """413 or 422 for a record the router would quarantine as OVERSIZED or BAD_KEY: better refused here, where
        the sender learns of it, than answered 202."""
        schema = self.schemas[record_type]
        try:
            size = len(schema.encode(values))
        except RecordValidationError as exc:  # record_from_json missed it: the schema is the judge
            return self._invalid(record_type, _problems(exc))
        if size > VALUE_LIMIT:
            return self._error(413, "too_large", f"the record encodes to {size} bytes; the exchange takes at most "
                               f"{VALUE_LIMIT}")
        key = values.get(schema.key_field)
        if schema.key_kind == "record" and isinstance(key, str) and len(key.encode()) > KEY_LIMIT:
            return self._invalid(record_type, [FieldProblem(schema.key_field,
                                                            f"the key must be at most {KEY_LIMIT} bytes")])
        return None

    async def _release(self, claim: tuple[str, str]) -> None:
        await run_in_threadpool(self.store.release, self.config.agency, *claim)

    async def _complete(self, claim: tuple[str, str], answer: str, delivery: Delivery) -> None:
        key, token = claim
        try:
            kept = await run_in_threadpool(self.store.complete, self.config.agency, key, token, 202, answer)
        except Exception as exc:  # noqa: BLE001 - the record is durable; the answer stands, the loss is logged
            kept = False
            _log.error("cannot record the Idempotency-Key answer", ce_id=delivery.event_id, error=str(exc))
        if not kept:
            _log.warning("the Idempotency-Key claim was lost before its answer; a retry may publish again",
                         ce_id=delivery.event_id)

    def _watch(self, delivered: asyncio.Future[Delivery], claim: tuple[str, str] | None, started: float) -> None:
        """After a 503 for time, settle the key when the report comes: a record delivered late keeps its answer
        (a retry gets the event id), one that failed frees the key (a retry publishes)."""
        task = asyncio.get_running_loop().create_task(self._settle_late(delivered, claim, started))
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def _settle_late(self, delivered: asyncio.Future[Delivery], claim: tuple[str, str] | None,
                           started: float) -> None:
        try:
            delivery: Delivery | None = await delivered
        except Exception:  # noqa: BLE001 - any failure means nothing was written: free the key
            delivery = None
        finally:
            IN_FLIGHT.labels(self.config.name).dec()
        if delivery is not None and delivery.ok:
            PUBLISH_LATENCY.labels(self.config.name).observe(time.monotonic() - started)
            _log.warning("record delivered after its request was answered 503", ce_id=delivery.event_id,
                         idempotent=claim is not None)
            if claim is not None:
                await self._complete(claim, json.dumps({"event_id": delivery.event_id}), delivery)
        elif claim is not None:
            await self._release(claim)

    def _authorised(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        digest = hashlib.sha256(token.strip().encode("latin-1")).digest()
        # The digest is compared whatever the scheme, so a bad scheme takes as long as a bad token.
        return hmac.compare_digest(digest, self._token) and scheme.lower() == "bearer"

    # -- lifecycle ------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.publisher.start()
        _log.info("webhook source ready", connector=self.config.name, agency=self.config.agency,
                  record_types=list(self.schemas))
        try:
            yield
        finally:
            await run_in_threadpool(self.publisher.close, self.config.durable_timeout_s)
            if self._late:
                await asyncio.wait(set(self._late), timeout=self.config.durable_timeout_s)

    async def http_error(self, _request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return self._error(exc.status_code, "http_error", str(exc.detail), exc.headers)
        _log.error("unexpected failure", error=repr(exc))
        return self._error(500, "internal", "the request failed inside the connector")


def _event_id(job: Job) -> str | None:
    return job.accepted.result() if job.accepted.done() and job.accepted.exception() is None else None


def _problems(error: RecordValidationError) -> list[FieldProblem]:
    found = [_PROBLEM.match(p) for p in error.problems]
    return [FieldProblem(m.group(1), m.group(2)) if m else FieldProblem("", p)
            for m, p in zip(found, error.problems, strict=True)] or [FieldProblem("", str(error))]


def build_app(config: WebhookSourceConfig, publisher: DurablePublisher, store: IdempotencyStore) -> Starlette:
    """The webhook's ASGI app; its lifespan starts ``publisher`` and closes it. ConfigError if the config lists a
    record type the agency may not publish."""
    endpoint = _Endpoint(config, publisher, store)
    routes = [Route("/records/{record_type}", endpoint.post, methods=["POST"]),
              Route("/health", endpoint.health, methods=["GET"])]
    return Starlette(routes=routes, lifespan=endpoint.lifespan,
                     exception_handlers={HTTPException: endpoint.http_error, Exception: endpoint.http_error})


def make_server(config: WebhookSourceConfig, app: Starlette) -> uvicorn.Server:
    """A uvicorn server for ``app`` on the config's address (logging left to the exchange's structlog)."""
    certfile, keyfile = config.tls_certfile, config.tls_keyfile
    return uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_config=None,
                                         access_log=False, server_header=False, lifespan="on",
                                         timeout_graceful_shutdown=int(config.durable_timeout_s) + 5,
                                         ssl_certfile=str(certfile) if certfile else None,
                                         ssl_keyfile=str(keyfile) if keyfile else None))


@dataclass
class WebhookSource:
    """A webhook source ready to serve: its app (with the publisher it starts), its store and its server."""

    config: WebhookSourceConfig
    app: Starlette
    publisher: DurablePublisher
    store: IdempotencyStore
    server: uvicorn.Server

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve until the server is told to exit (SIGINT or SIGTERM in the main thread, or ``should_exit``);
        then close the store."""
        try:
            self.server.run(sockets=sockets)
        finally:
            self.store.close()


def webhook_source(config: WebhookSourceConfig, settings: Settings | None = None) -> WebhookSource:
    """Everything :func:`serve` runs: a producer with acks=all and idempotence, the agency's publisher, the
    idempotency store, the app and its server. ConfigError for a record type the agency is not authoritative
    for, a key the keystore or the registry lacks, or a store that cannot be opened."""
    settings = settings or get_settings()
    context = Context(settings)
    producer = Producer(settings=settings, overrides=producer_overrides(config))
    publisher = DurablePublisher.from_context(config.agency, context, producer,
                                              max_in_flight_bytes=config.max_in_flight_bytes)
    store = IdempotencyStore(config.idempotency_path(), ttl_s=config.idempotency_ttl_s,
                             pending_lease_s=pending_lease_s(config))
    try:
        app = build_app(config, publisher, store)
    except BaseException:
        store.close()
        raise
    return WebhookSource(config, app, publisher, store, make_server(config, app))


def serve(config: WebhookSourceConfig, settings: Settings | None = None) -> None:
    """Run the webhook source until SIGINT or SIGTERM (``exchange connector run http-webhook``); ConfigError
    before listening if it cannot be set up (see :func:`webhook_source`)."""
    settings = settings or get_settings()
    source = webhook_source(config, settings)
    if config.tls_certfile is None and config.host not in ("127.0.0.1", "::1", "localhost"):
        _log.warning("serving plain HTTP beyond this host: bearer tokens cross the network unencrypted; set "
                     "tls_certfile and tls_keyfile, or put a TLS proxy in front", host=config.host)
    if settings.metrics_port is not None:
        serve_metrics(settings.metrics_port)
    source.run()
