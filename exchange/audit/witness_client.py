"""Ask a witness to cosign a checkpoint (C2SP tlog-witness ``add-checkpoint``), with urllib.

:func:`add_checkpoint` returns the witness's signature lines; it does not verify them (the caller does, with the
witness's :class:`~exchange.crypto.cosignature.CosignatureVerifier`). Every refusal is typed::

    AuditError
    └── WitnessClientError                 the witness did not cosign; ``status`` is its HTTP status, if any
        ├── WitnessConflictError           409: ``size`` is the size the witness last cosigned; retry from it
        ├── WitnessInconsistentError       422: the proof does not verify / another root at that size
        ├── WitnessForbiddenError          403: the witness does not accept the log's signature
        ├── WitnessUnknownLogError         404: the witness does not know the log's origin
        ├── WitnessResponseError           any other status, or an answer that is not what the spec says
        └── WitnessUnavailableError        no answer: connection refused or reset, timeout

Redirects are not followed (a redirected POST would lose its body).
"""

from __future__ import annotations

import http.client
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from email.message import Message
from urllib.parse import urlsplit

from exchange.audit.errors import AuditError
from exchange.audit.witness import format_add_checkpoint

__all__ = [
    "WitnessClientError",
    "WitnessConflictError",
    "WitnessForbiddenError",
    "WitnessInconsistentError",
    "WitnessResponseError",
    "WitnessUnavailableError",
    "WitnessUnknownLogError",
    "add_checkpoint",
]

MAX_RESPONSE_BYTES = 64 * 1024
_SIZE_BODY = re.compile(rb"(0|[1-9][0-9]{0,19})\n", re.ASCII)
_PATH = "/add-checkpoint"


class WitnessClientError(AuditError):
    """The witness did not cosign the checkpoint; ``status`` is the HTTP status (None without an answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class WitnessConflictError(WitnessClientError):
    """409: the old size is not the size the witness last cosigned, which is ``size``."""

    def __init__(self, message: str, size: int) -> None:
        self.size = size
        super().__init__(message, 409)


class WitnessInconsistentError(WitnessClientError):
    """422 (or a 409 without a size, as older witnesses answer a root mismatch): not shown consistent."""


class WitnessForbiddenError(WitnessClientError):
    """403: no signature the witness trusts for the log verifies."""


class WitnessUnknownLogError(WitnessClientError):
    """404: the witness does not witness this log."""


class WitnessResponseError(WitnessClientError):
    """Another status, or a response body that is not what tlog-witness specifies."""


class WitnessUnavailableError(WitnessClientError):
    """The witness did not answer: connection refused or reset, a timeout."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None  # the 3xx reaches add_checkpoint as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirect())


def add_checkpoint(url: str, old_size: int, proof: Sequence[bytes], note: str | bytes,
                   timeout: float = 10.0) -> list[str]:
    """POST a checkpoint to a witness; the cosignature lines it answers, each ending in a newline.

    ``url`` is the witness's submission prefix (``http://witness.example:8080``); ``/add-checkpoint`` is
    appended unless it is already there. ``old_size`` is the size the witness is believed to have cosigned last
    (0 if unknown: a :class:`WitnessConflictError` then tells the real one), ``proof`` the consistency proof from
    it to the checkpoint, ``note`` the signed checkpoint. Raises :class:`ValueError` for arguments no witness
    would accept, or a :class:`WitnessClientError`.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"a witness URL is http:// or https://, not {url!r}")
    target = url if parts.path.endswith(_PATH) else url.rstrip("/") + _PATH
    body = format_add_checkpoint(old_size, proof, note)
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above: http or https only
        target, data=body, method="POST", headers={"Content-Type": "text/plain; charset=utf-8"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status = int(response.status)
            data = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        try:
            with exc:
                data = exc.read(MAX_RESPONSE_BYTES + 1)
        except (OSError, http.client.HTTPException):
            data = b""
        raise _refusal(target, exc.code, exc.headers, data) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise WitnessUnavailableError(f"witness {target} did not answer: {reason}") from exc
    if status != 200:
        raise WitnessResponseError(f"witness {target} answered {status}", status)
    return _cosignature_lines(target, data)


def _cosignature_lines(target: str, data: bytes) -> list[str]:
    if len(data) > MAX_RESPONSE_BYTES:
        raise WitnessResponseError(f"witness {target} answered more than {MAX_RESPONSE_BYTES} bytes", 200)
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise WitnessResponseError(f"witness {target} answered a body that is not UTF-8", 200) from None
    if not text.endswith("\n"):
        raise WitnessResponseError(f"witness {target} answered no signature lines", 200)
    lines = [line + "\n" for line in text[:-1].split("\n")]
    if not all(line.startswith("— ") and len(line) > 3 for line in lines):
        raise WitnessResponseError(f"witness {target} answered something other than signature lines", 200)
    return lines


def _refusal(target: str, status: int, headers: Message, data: bytes) -> WitnessClientError:
    reason = data[:200].decode(errors="replace").strip()
    message = f"witness {target} answered {status}" + (f": {reason}" if reason else "")
    if status == 409:
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type != "text/x.tlog.size":
            return WitnessInconsistentError(message, status)
        match = _SIZE_BODY.fullmatch(data)
        if match is None:
            return WitnessResponseError(f"witness {target} answered 409 without a tree size", status)
        return WitnessConflictError(f"witness {target} has cosigned size {int(match.group(1))}", int(match.group(1)))
    if status == 422:
        return WitnessInconsistentError(message, status)
    if status == 403:
        return WitnessForbiddenError(message, status)
    if status == 404:
        return WitnessUnknownLogError(message, status)
    return WitnessResponseError(message, status)
