"""The tracker's web service (Starlette): the citizen's page and the JSON API, each row with its inclusion proof.

Routes::

    GET  /                              the citizen's accesses (sign-in form without a token)
    POST /session                       sign in: the token from the form, kept in an HttpOnly, SameSite cookie
    POST /session/end                   sign out
    GET  /proofs/{index}                one access, its proof files and how to check them offline
    GET  /proofs/{index}/proof.txt      its C2SP tlog-proof against the newest witnessed checkpoint
    GET  /proofs/{index}/entry.bin      the access-log entry the proof is for
    GET  /about                         how to check the list, with the log's and witnesses' keys
    GET  /api/v1/usages                 JSON, on the model of Estonia's findUsage (period, offset, limit; total, items)
    GET  /api/v1/usages/{index}/proof   the proof (also .../entry)
    GET  /api/v1/subjects/{ref}/usages  the same for a subject reference: 403 unless it is the caller's own
    GET  /healthz                       liveness and how far the index has read

The citizen is whom their bearer token names (``Authorization: Bearer``, or the cookie the sign-in form sets);
the subject reference is derived from the token's person id with the pseudonym secret, and no person id is ever
in a URL, a log line or the index. A row someone else's is refused with 403; a row that is the caller's but not
shown yet (hidden) is answered exactly as a row that does not exist (404). Every response carries a strict
Content-Security-Policy and ``Cache-Control: no-store``; requests are rate limited per token.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from exchange.audit.prover import NotYetProvableError, ProvedEntry, TilesError, prove_entry
from exchange.audit.tiles import TileReader, checkpoint_size
from exchange.envelope.pseudonym import Pseudonymiser
from exchange.log import get_logger
from exchange.metrics import TRACKER_REQUEST_SECONDS, TRACKER_REQUESTS
from exchange.tracker import pages
from exchange.tracker.ratelimit import TokenBucketLimiter
from exchange.tracker.store import MAX_LIMIT, AccessRow, TrackerStore
from exchange.tracker.tokens import Citizen, TokenError, TokenVerifier, bearer_token

__all__ = ["COOKIE", "TrackerConfig", "make_app"]

COOKIE = "tracker_session"
_MAX_FORM = 16 * 1024
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*", re.ASCII)
_REF = re.compile(r"[0-9a-f]{32}", re.ASCII)
_INDEX = re.compile(r"0|[1-9][0-9]{0,18}", re.ASCII)
_log = get_logger("exchange.tracker.service")

_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@dataclass(frozen=True)
class TrackerConfig:
    keys: pages.KeysShown
    """The log's origin and key, and the witnesses' keys, shown for checking proofs offline."""
    tiles_dir: Path | None = None
    page_size: int = 20
    rate: float = 5.0
    """Requests per second per token, after a burst of ``burst``."""
    burst: int = 40
    secure_cookie: bool = False
    """Mark the session cookie Secure (always, behind TLS)."""


class _Refused(Exception):  # noqa: N818 - an answer, not a failure
    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, dict(headers or {})


class _Tracker:
    def __init__(self, store: TrackerStore, verifier: TokenVerifier, pseudonymiser: Pseudonymiser, *,
                 agencies: Mapping[str, str], config: TrackerConfig, clock: Callable[[], float]) -> None:
        self.store, self.verifier, self.pseudonymiser = store, verifier, pseudonymiser
        self.agencies, self.config, self.clock = dict(agencies), config, clock
        self.limiter = TokenBucketLimiter(config.rate, config.burst)
        self.anonymous = TokenBucketLimiter(config.rate, config.burst)
        self.reader = TileReader(config.tiles_dir) if config.tiles_dir is not None else None

    # -- who is asking ------------------------------------------------------------------------------------------

    def citizen(self, request: Request, *, cookie: bool) -> tuple[Citizen, str]:
        """The verified citizen and their subject reference; :class:`_Refused` (401, 429) otherwise."""
        header = request.headers.get("authorization")
        try:
            if cookie and header is None and COOKIE in request.cookies:
                token = request.cookies[COOKIE]
            else:
                token = bearer_token(header)
            citizen = self.verifier.verify(token, now=self.clock())
        except TokenError as exc:
            self._limit("ip:" + (request.client.host if request.client else "?"), self.anonymous)
            raise _Refused(401, "unauthorized", f"sign in again: {exc}",
                           {"WWW-Authenticate": 'Bearer realm="tracker"'}) from None
        self._limit(citizen.token_id, self.limiter)
        return citizen, self.pseudonymiser.subject(citizen.person_id)

    @staticmethod
    def _limit(key: str, limiter: TokenBucketLimiter) -> None:
        decision = limiter.check(key)
        if not decision.allowed:
            raise _Refused(429, "too_many_requests", "too many requests: wait a moment and try again",
                           {"Retry-After": str(decision.retry_after_header)})

    # -- what they ask for --------------------------------------------------------------------------------------

    def page(self, subject: str, *, start: int | None, end: int | None, agency: str | None, offset: int,
             limit: int) -> tuple[int, tuple[AccessRow, ...]]:
        self.store.release(_micros(self.clock()))
        found = self.store.page(subject, start=start, end=end, recipient=agency, offset=offset, limit=limit)
        return found.total, found.rows

    def row(self, subject: str, index_text: str) -> AccessRow:
        """The caller's shown row at ``index_text``; 403 for someone else's entry, 404 for anything else."""
        if not _INDEX.fullmatch(index_text):
            raise _Refused(400, "bad_request", "the entry index must be a whole number")
        index = int(index_text)
        self.store.release(_micros(self.clock()))
        row = self.store.shown(index, subject)
        if row is not None:
            return row
        owner = self.store.owner(index)
        if owner is not None and owner != subject:
            raise _Refused(403, "forbidden", "this entry is about someone else")
        raise _Refused(404, "not_found", f"you have no access-log entry {index}")

    def proved(self, row: AccessRow) -> ProvedEntry:
        if self.reader is None:
            raise _Refused(503, "unavailable", "this tracker has no copy of the log's tiles to prove entries from")
        try:
            return prove_entry(self.reader, row.log_index)
        except NotYetProvableError:
            raise _Refused(404, "not_yet_proved", f"entry {row.log_index} is not in a published checkpoint yet: "
                                                  "its proof is ready after the next checkpoint") from None
        except TilesError as exc:
            _log.error("cannot prove an entry", index=row.log_index, error=str(exc))
            raise _Refused(503, "unavailable", "the proof cannot be made just now") from None

    def proved_size(self) -> int:
        if self.config.tiles_dir is None:
            return 0
        try:
            return checkpoint_size(self.config.tiles_dir)
        except Exception:  # noqa: BLE001 - no checkpoint (yet) or an unreadable one: no proof links, not a failure
            return 0

    # -- the routes -------------------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        if "authorization" not in request.headers and COOKIE not in request.cookies:
            return _html(pages.signin_page())  # whatever the query: an expired session's links lead here
        _, subject = self.citizen(request, cookie=True)
        params = _only(request, {"from", "to", "agency", "page"})
        first, last = _day(params, "from"), _day(params, "to")
        start = None if first is None else _micros(datetime(first.year, first.month, first.day, tzinfo=UTC)
                                                   .timestamp())
        end = None if last is None else _micros((datetime(last.year, last.month, last.day, tzinfo=UTC)
                                                 + timedelta(days=1)).timestamp())
        _period(start, end)
        page = _number(params, "page", 1, 1, 10_000_000)
        agency = _agency(params, "agency", self.agencies)
        size = self.config.page_size
        total, rows = self.page(subject, start=start, end=end, agency=agency, offset=(page - 1) * size, limit=size)
        filters = pages.Filters(params.get("from", ""), params.get("to", ""), agency or "", page)
        return _html(pages.accesses_page(rows, total, filters, page_size=self.config.page_size,
                                         agencies=self.agencies, proved_size=self.proved_size()))

    async def sign_in(self, request: Request) -> Response:
        body = await _form(request)
        token = (body.get("token") or [""])[0].strip()
        try:
            citizen = self.verifier.verify(token, now=self.clock())
        except TokenError as exc:
            self._limit("ip:" + (request.client.host if request.client else "?"), self.anonymous)
            return _html(pages.signin_page(f"That token cannot be used: {exc}"), 401)
        response = RedirectResponse("/", status_code=303)
        max_age = max(1, int(citizen.expires_at - self.clock()))
        response.set_cookie(COOKIE, token, max_age=max_age, httponly=True, samesite="strict",
                            secure=self.config.secure_cookie or request.url.scheme == "https", path="/")
        _log.info("signed in", token_id=citizen.token_id)
        return response

    async def sign_out(self, request: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def proof_page(self, request: Request) -> Response:
        _, subject = self.citizen(request, cookie=True)
        _only(request, set())
        row = self.row(subject, request.path_params["index"])
        proved = self.proved(row)
        return _html(pages.proof_page(row, self.config.keys, proved.checkpoint.size))

    async def proof_file(self, request: Request) -> Response:
        _, subject = self.citizen(request, cookie=request.url.path.startswith("/proofs/"))
        _only(request, set())
        row = self.row(subject, request.path_params["index"])
        proved = self.proved(row)
        if request.path_params["what"] in ("entry", "entry.bin"):
            return Response(proved.entry, media_type="application/octet-stream", headers={
                "Content-Disposition": f'attachment; filename="entry-{row.log_index}.bin"'})
        return PlainTextResponse(proved.proof, headers={
            "Content-Disposition": f'attachment; filename="proof-{row.log_index}.txt"'})

    async def usages(self, request: Request) -> Response:
        _, subject = self.citizen(request, cookie=False)
        asked = request.path_params.get("ref")
        if asked is not None and (not _REF.fullmatch(asked) or asked != subject):
            raise _Refused(403, "forbidden", "you may only ask about yourself")
        params = _only(request, {"period_start", "period_end", "offset", "limit", "agency"})
        start, end = _instant(params, "period_start"), _instant(params, "period_end")
        _period(start, end)
        offset = _number(params, "offset", 0, 0, 2**31)
        limit = _number(params, "limit", self.config.page_size, 1, MAX_LIMIT)
        agency = _agency(params, "agency", self.agencies)
        total, rows = self.page(subject, start=start, end=end, agency=agency, offset=offset, limit=limit)
        proved = self.proved_size()
        return JSONResponse({"total": total, "offset": offset, "limit": limit,
                             "items": [_item(r, proved) for r in rows]})

    async def about(self, request: Request) -> Response:
        _only(request, set())
        return _html(pages.about_page(self.config.keys))

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "next_index": self.store.position().next_index})


# -- parameters ---------------------------------------------------------------------------------------------------


def _only(request: Request, allowed: set[str]) -> dict[str, str]:
    params = request.query_params
    unknown = sorted(set(params.keys()) - allowed)
    if unknown:
        raise _Refused(400, "bad_request", f"unknown parameter {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    out = {}
    for key in params:
        values = params.getlist(key)
        if len(values) > 1:
            raise _Refused(400, "bad_request", f"parameter {key!r} is given twice")
        out[key] = values[0]
    return out


def _number(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name, "")
    if not text:
        return default
    if not _INDEX.fullmatch(text) or not low <= int(text) <= high:
        raise _Refused(400, "bad_request", f"{name} must be a whole number from {low} to {high}")
    return int(text)


def _day(params: Mapping[str, str], name: str) -> date | None:
    text = params.get(name, "")
    if not text:
        return None
    try:
        found = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        found = None
    if found is None:
        raise _Refused(400, "bad_request", f"{name} must be a date like 2026-01-31")
    return found


def _instant(params: Mapping[str, str], name: str) -> int | None:
    """A date (its midnight UTC) or an RFC 3339 time with a zone, in microseconds."""
    text = params.get(name, "")
    if not text:
        return None
    if len(text) == 10:
        found = _day(params, name)
        return None if found is None else _micros(datetime(found.year, found.month, found.day, tzinfo=UTC).timestamp())
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None or len(text) > 40:
        raise _Refused(400, "bad_request", f"{name} must be a date (2026-01-31) or a time with a zone "
                                           "(2026-01-31T12:00:00Z)")
    return _micros(when.timestamp())


def _agency(params: Mapping[str, str], name: str, known: Mapping[str, str]) -> str | None:
    text = params.get(name, "")
    if not text:
        return None
    if not _SLUG.fullmatch(text) or text not in known:
        raise _Refused(400, "bad_request", f"{name} must be the id of a known agency")
    return text


def _micros(seconds: float) -> int:
    return int(seconds * 1_000_000)


def _period(start: int | None, end: int | None) -> None:
    if start is not None and end is not None and end <= start:
        raise _Refused(400, "bad_request", "the period ends before it starts")


# -- the app ------------------------------------------------------------------------------------------------------


def make_app(store: TrackerStore, verifier: TokenVerifier, pseudonymiser: Pseudonymiser,
             agencies: Mapping[str, str], config: TrackerConfig, *,
             clock: Callable[[], float] = time.time) -> Starlette:
    """The tracker's ASGI app over ``store``; ``agencies`` maps agency ids to legal names (for the filter)."""
    t = _Tracker(store, verifier, pseudonymiser, agencies=agencies, config=config, clock=clock)
    routes = [
        Route("/", t.home, methods=["GET"]),
        Route("/session", t.sign_in, methods=["POST"]),
        Route("/session/end", t.sign_out, methods=["POST"]),
        Route("/about", t.about, methods=["GET"]),
        Route("/proofs/{index}", t.proof_page, methods=["GET"]),
        Route("/proofs/{index}/{what:str}", _guard_what(t.proof_file, {"proof.txt", "entry.bin"}), methods=["GET"]),
        Route("/api/v1/usages", t.usages, methods=["GET"]),
        Route("/api/v1/usages/{index}/{what:str}", _guard_what(t.proof_file, {"proof", "entry"}), methods=["GET"]),
        Route("/api/v1/subjects/{ref}/usages", t.usages, methods=["GET"]),
        Route("/static/tracker.css", _stylesheet, methods=["GET"]),
        Route("/healthz", t.health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_allowed, _Refused: _refused})
    app.add_middleware(_Guard)
    return app


async def _stylesheet(request: Request) -> Response:
    return Response(pages.STYLESHEET, media_type="text/css")


def _guard_what(handler: Callable[[Request], Awaitable[Response]], allowed: set[str]
                ) -> Callable[[Request], Awaitable[Response]]:
    async def guarded(request: Request) -> Response:
        if request.path_params["what"] not in allowed:
            raise _Refused(404, "not_found", "no such page")
        return await handler(request)

    return guarded


def _item(row: AccessRow, proved: int) -> dict[str, Any]:
    proof = f"/api/v1/usages/{row.log_index}/proof" if row.log_index < proved else None
    return {"log_index": row.log_index, "time": pages.iso_time(row.decided_at), "time_micros": row.decided_at,
            "action": "delivered", "event_id": row.event_id, "receiver_code": row.recipient,
            "receiver_name": row.recipient_name, "record_type": row.record_type, "fields": list(row.fields),
            "purpose": row.purpose, "legal_basis": row.legal_basis, "consent_ref": row.consent_ref,
            "proof": proof, "entry": None if proof is None else f"/api/v1/usages/{row.log_index}/entry"}


async def _form(request: Request) -> dict[str, list[str]]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise _Refused(415, "unsupported_media_type", "send the form as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            raise _Refused(413, "too_large", f"the form is larger than {_MAX_FORM} bytes")
    try:
        return parse_qs(body.decode("utf-8"), strict_parsing=False, max_num_fields=4)
    except (UnicodeDecodeError, ValueError):
        raise _Refused(400, "bad_request", "the form is not UTF-8 form data") from None


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _refusal(request: Request, refused: _Refused) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": refused.code, "message": refused.message}, status_code=refused.status,
                            headers=refused.headers)
    if refused.status == 401:
        response: Response = _html(pages.signin_page(refused.message), 401)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        for name, value in refused.headers.items():
            response.headers[name] = value
        return response
    return HTMLResponse(pages.error_page(refused.status, refused.message, signed_in=COOKIE in request.cookies),
                        status_code=refused.status, headers=refused.headers)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _Refused)  # noqa: S101 - registered for _Refused only
    return _refusal(request, exc)


async def _not_found(request: Request, exc: Exception) -> Response:
    return _refusal(request, _Refused(404, "not_found", "no such page"))


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return _refusal(request, _Refused(405, "method_not_allowed", f"{request.method} is not allowed here"))


class _Guard:
    """Security headers on every response; refusals rendered; nothing personal in the request log."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.decode("latin-1").lower() not in _LOWER]
                headers += [(k.encode(), v.encode()) for k, v in _HEADERS.items()]
                if scope.get("scheme") == "https":
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:  # noqa: BLE001 - whatever a request makes a handler raise is a 500, never a crash
            _log.exception("tracker request failed", path=_route_name(scope))
            response = _refusal(Request(scope), _Refused(500, "internal_error", "something went wrong on our side"))
            await response(scope, receive, sending)
        route, took = _route_name(scope), time.perf_counter() - started
        TRACKER_REQUESTS.labels(route if status[0] != 404 else "(not found)", str(status[0])).inc()
        TRACKER_REQUEST_SECONDS.labels(route if status[0] != 404 else "(not found)").observe(took)
        _log.debug("request", method=scope.get("method"), path=route, status=status[0], ms=round(took * 1000, 1))


_LOWER = frozenset(k.lower() for k in _HEADERS)


def _route_name(scope: Mapping[str, Any]) -> str:
    """The path with any number in it replaced (entry indices are not personal, but logs need no detail)."""
    return re.sub(r"/[0-9a-f]{32}(?=/|$)", "/{ref}", re.sub(r"/\d+(?=/|$)", "/{index}", str(scope.get("path", ""))))
