"""Citizen bearer tokens: signed JWTs (RFC 7519, compact JWS of RFC 7515) from an identity provider.

A citizen reaches the tracker with a token the identity provider signed; :class:`TokenVerifier` checks it with
the issuer's public key and yields the :class:`Citizen` it names. Two algorithms, nothing else:

- ``EdDSA`` with an Ed25519 key (RFC 8037), and
- ``ES256`` with a P-256 key (RFC 7518 §3.4: the signature is ``r || s``, 32 bytes each, not DER).

Verification fails closed, with a typed :class:`TokenError` whose message never repeats the token, a claim
value or the person id. Refused: a token over :data:`MAX_TOKEN_BYTES`; anything but three strict base64url parts
(no padding, only the canonical encoding); a header or payload that is not a UTF-8 JSON object, or has a key
twice; ``alg: none``, any other algorithm and an algorithm that does not fit the key; a ``crit`` header (no
extension is understood); an unexpected ``typ``; a bad signature; a missing or non-numeric ``exp``, an expired
token, ``nbf`` or ``iat`` in the future (beyond the leeway); a wrong ``iss``; a wrong or missing ``aud`` when an
audience is configured (and any ``aud`` when none is, RFC 7519 §4.1.3); a missing or empty person id. Header
parameters that point at keys (``jwk``, ``jku``, ``x5u``, ``x5c``) are ignored: only configured keys are trusted.

:func:`bearer_token` takes the token out of an ``Authorization: Bearer`` header value.

Issuer keys are loaded from a PEM public key, a JWK or a JWK Set (text or a file path) by
:func:`load_issuer_keys`. For the demo and the tests, :func:`mint_token` signs tokens with an
:class:`IssuerSigningKey`, and :func:`ensure_demo_issuer_key` keeps a demo issuer's private key in the keystore
(``<keystore>/<name>.jwt-issuer.key``, PKCS#8 PEM, mode 0600, never overwritten) beside its public JWK
(``<name>.jwt-issuer.jwk.json``, mode 0644).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NoReturn

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from exchange.crypto.errors import KeyFormatError
from exchange.errors import ConfigError, ExchangeError
from exchange.registry.errors import KeystoreError
from exchange.registry.keystore import read_private_key_file, write_new_key_file

if TYPE_CHECKING:
    from exchange.settings import Settings

__all__ = [
    "ALGORITHMS",
    "MAX_TOKEN_BYTES",
    "AlgorithmError",
    "BadSignatureError",
    "Citizen",
    "ExpiredTokenError",
    "InvalidClaimError",
    "IssuerKey",
    "IssuerSigningKey",
    "MalformedTokenError",
    "MissingClaimError",
    "MissingTokenError",
    "NotYetValidError",
    "TokenError",
    "TokenVerifier",
    "UnknownKeyIdError",
    "WrongAudienceError",
    "WrongIssuerError",
    "bearer_token",
    "ensure_demo_issuer_key",
    "load_issuer_keys",
    "load_issuer_signing_key",
    "mint_token",
]

Algorithm = Literal["EdDSA", "ES256"]
ALGORITHMS: tuple[Algorithm, ...] = ("EdDSA", "ES256")
MAX_TOKEN_BYTES = 8192
"""Longest token accepted, in bytes (an identity provider's tokens are well under 2 KiB)."""

_MAX_PERSON_ID = 256
_MAX_LEEWAY = 300.0
_P256_SIZE = 32
_ED25519_SIZE = 32
_SIGNATURE_SIZE = 64
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_BEARER = re.compile(r"Bearer +([A-Za-z0-9._~+/-]+=*)", re.IGNORECASE)  # RFC 6750 §2.1: b64token
_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
_TOKEN_ID_DOMAIN = b"exchange/tracker-token/v1\n"
_KEY_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_PRIVATE_MODE = 0o600
_PUBLIC_MODE = 0o644


# --- errors ----------------------------------------------------------------------------------------------------


class TokenError(ExchangeError):
    """A bearer token was refused (answer 401). The message names the failed check, never the token or a claim.

    :attr:`reason` is a short stable code for logs and metrics.
    """

    reason: ClassVar[str] = "invalid_token"


class MissingTokenError(TokenError):
    """The request carries no bearer token (no ``Authorization`` header, or an empty one)."""

    reason = "missing_token"


class MalformedTokenError(TokenError):
    """Not a compact JWS of strict base64url JSON objects, too large, or a header this verifier cannot accept."""

    reason = "malformed"


class AlgorithmError(TokenError):
    """``alg`` is ``none``, not EdDSA or ES256, does not fit the issuer's key, or a ``crit`` header is present."""

    reason = "algorithm"


class UnknownKeyIdError(TokenError):
    """The token's ``kid`` names no configured issuer key."""

    reason = "unknown_key"


class BadSignatureError(TokenError):
    """The signature does not verify with the issuer's key: the token was altered or forged."""

    reason = "bad_signature"


class InvalidClaimError(TokenError):
    """A claim has the wrong type (a non-numeric ``exp``, an ``aud`` that is not a string or list of strings, ...)."""

    reason = "invalid_claim"


class MissingClaimError(InvalidClaimError):
    """A required claim (``exp``, ``iss``, ``aud`` when configured, the person id) is absent or empty."""

    reason = "missing_claim"


class ExpiredTokenError(TokenError):
    """``exp`` has passed (beyond the leeway)."""

    reason = "expired"


class NotYetValidError(TokenError):
    """``nbf`` or ``iat`` lies in the future (beyond the leeway)."""

    reason = "not_yet_valid"


class WrongIssuerError(TokenError):
    """``iss`` is not the configured issuer."""

    reason = "wrong_issuer"


class WrongAudienceError(TokenError):
    """``aud`` does not name the configured audience (or names one when none is configured)."""

    reason = "wrong_audience"


# --- strict encodings ------------------------------------------------------------------------------------------


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    """Strict base64url without padding (RFC 7515 §2): only the alphabet, and only the canonical encoding."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64url_encode(raw) != text:  # unused low bits of the last character must be zero
        raise ValueError("not the canonical base64url encoding")
    return raw


class _StrictJSONError(ValueError):
    """The text is not a strict JSON object (see :func:`_json_object`)."""


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _StrictJSONError("duplicate key")
        result[key] = value
    return result


def _reject_constant(_name: str) -> NoReturn:
    raise _StrictJSONError("NaN and Infinity are not JSON")


def _json_object(data: bytes) -> dict[str, Any]:
    """A JSON object, strictly: UTF-8, no duplicate keys, no NaN/Infinity; raises ValueError."""
    try:
        value = json.loads(
            data.decode("utf-8"), object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except RecursionError:  # deeply nested arrays
        raise _StrictJSONError("too deeply nested") from None
    if not isinstance(value, dict):
        raise _StrictJSONError("not a JSON object")
    return value


def _canonical_json(value: Mapping[str, object]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


# --- keys ------------------------------------------------------------------------------------------------------

PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def _algorithm_of(key: PublicKey) -> Algorithm:
    if isinstance(key, Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise KeyFormatError("issuer keys must be Ed25519 or P-256 (EdDSA or ES256)")


def _public_jwk(key: PublicKey) -> dict[str, str]:
    if isinstance(key, Ed25519PublicKey):
        return {"crv": "Ed25519", "kty": "OKP", "x": _b64url_encode(key.public_bytes_raw())}
    numbers = key.public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64url_encode(numbers.x.to_bytes(_P256_SIZE, "big")),
        "y": _b64url_encode(numbers.y.to_bytes(_P256_SIZE, "big")),
    }


def _thumbprint(key: PublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url): the default key id."""
    return _b64url_encode(hashlib.sha256(_canonical_json(_public_jwk(key))).digest())


@dataclass(frozen=True, slots=True)
class IssuerKey:
    """One public key of the identity provider, with its key id (``kid``) if it has one.

    A key without a kid verifies tokens with any kid or none; a key with a kid only tokens that carry that kid
    or no kid at all.
    """

    public_key: PublicKey
    kid: str | None = None
    algorithm: Algorithm = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithm", _algorithm_of(self.public_key))

    @classmethod
    def from_pem(cls, pem: str | bytes, *, kid: str | None = None) -> IssuerKey:
        """An Ed25519 or P-256 public key in PEM (SubjectPublicKeyInfo); raises :class:`KeyFormatError`."""
        data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
        if b"PRIVATE KEY" in data:
            # No detail from the parser: it could quote the private key.
            raise KeyFormatError("expected the issuer's public key, but this PEM holds a private key")
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise KeyFormatError(f"not a PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey | ec.EllipticCurvePublicKey):
            raise KeyFormatError(f"issuer keys must be Ed25519 or P-256, not {type(key).__name__}")
        return cls(key, kid)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, object] | str) -> IssuerKey:
        """An ``OKP``/``Ed25519`` or ``EC``/``P-256`` public JWK (RFC 7517/8037); raises :class:`KeyFormatError`."""
        if isinstance(jwk, str):
            try:
                jwk = _json_object(jwk.encode("utf-8"))
            except ValueError as exc:
                raise KeyFormatError(f"not a JWK: {exc}") from None
        if "d" in jwk:
            raise KeyFormatError("expected the issuer's public key, but this JWK holds a private key")
        kid = jwk.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise KeyFormatError("JWK kid must be a string")
        if jwk.get("use", "sig") != "sig":
            raise KeyFormatError("JWK is not a signing key (use is not 'sig')")
        key_ops = jwk.get("key_ops")
        if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
            raise KeyFormatError("JWK key_ops does not allow 'verify'")
        kty, crv = jwk.get("kty"), jwk.get("crv")
        key: PublicKey
        try:
            if kty == "OKP" and crv == "Ed25519":
                key = Ed25519PublicKey.from_public_bytes(_jwk_coordinate(jwk, "x", _ED25519_SIZE))
            elif kty == "EC" and crv == "P-256":
                x = int.from_bytes(_jwk_coordinate(jwk, "x", _P256_SIZE), "big")
                y = int.from_bytes(_jwk_coordinate(jwk, "y", _P256_SIZE), "big")
                key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
            else:
                raise KeyFormatError(
                    f"unsupported JWK kty={kty!r} crv={crv!r} (expected OKP/Ed25519 or EC/P-256)"
                )
        except ValueError as exc:  # a point not on the curve
            raise KeyFormatError(f"JWK is not a valid {crv} key: {exc}") from None
        issuer_key = cls(key, kid)
        alg = jwk.get("alg")
        if alg is not None and alg != issuer_key.algorithm:
            raise KeyFormatError(f"JWK alg {alg!r} does not fit its key type ({issuer_key.algorithm})")
        return issuer_key

    def to_jwk(self) -> dict[str, str]:
        """The public JWK, with ``alg``, ``use`` and ``kid`` when it has one."""
        jwk = {**_public_jwk(self.public_key), "alg": self.algorithm, "use": "sig"}
        if self.kid is not None:
            jwk["kid"] = self.kid
        return jwk

    def to_pem(self) -> str:
        """The public key as PEM (SubjectPublicKeyInfo)."""
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    def thumbprint(self) -> str:
        """The RFC 7638 JWK thumbprint (SHA-256, base64url)."""
        return _thumbprint(self.public_key)

    def verify(self, signature: bytes, signing_input: bytes) -> bool:
        """Whether ``signature`` (the JWS form: 64 bytes, ``r || s`` for ES256) signs ``signing_input``."""
        if len(signature) != _SIGNATURE_SIZE:
            return False
        try:
            if isinstance(self.public_key, Ed25519PublicKey):
                self.public_key.verify(signature, signing_input)
            else:
                r = int.from_bytes(signature[:_P256_SIZE], "big")
                s = int.from_bytes(signature[_P256_SIZE:], "big")
                if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
                    return False
                self.public_key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def _jwk_coordinate(jwk: Mapping[str, object], name: str, size: int) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise KeyFormatError(f"JWK has no {name!r} string")
    try:
        raw = _b64url_decode(value)
    except (ValueError, binascii.Error):
        raise KeyFormatError(f"JWK {name!r} is not strict base64url") from None
    if len(raw) != size:
        raise KeyFormatError(f"JWK {name!r} has {len(raw)} bytes, expected {size}")
    return raw


def load_issuer_keys(source: str | Path) -> tuple[IssuerKey, ...]:
    """The issuer keys in ``source``: PEM or JWK or JWK Set text, or the path of a file holding one.

    A JWK Set may hold keys of other kinds (an identity provider's RSA keys, encryption keys): those are skipped,
    but at least one usable key must remain. Raises :class:`KeyFormatError` (or :class:`ConfigError` for a file
    that cannot be read).
    """
    stripped = _source_text(source).strip()
    if stripped.startswith("-----BEGIN"):
        return (IssuerKey.from_pem(stripped),)
    if not stripped.startswith("{"):
        raise KeyFormatError("issuer key is neither a PEM public key nor a JWK")
    try:
        document = _json_object(stripped.encode("utf-8"))
    except ValueError as exc:
        raise KeyFormatError(f"issuer key is not a JWK: {exc}") from None
    if "keys" not in document:
        return (IssuerKey.from_jwk(document),)
    entries = document["keys"]
    if not isinstance(entries, list):
        raise KeyFormatError("JWK Set 'keys' is not a list")
    keys: list[IssuerKey] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise KeyFormatError("JWK Set holds an entry that is not an object")
        supported = (entry.get("kty"), entry.get("crv")) in {("OKP", "Ed25519"), ("EC", "P-256")}
        if supported and entry.get("use", "sig") == "sig":
            keys.append(IssuerKey.from_jwk(entry))
    if not keys:
        raise KeyFormatError("JWK Set holds no Ed25519 or P-256 signing key")
    return tuple(keys)


def _source_text(source: str | Path) -> str:
    if isinstance(source, str) and source.strip().startswith(("-----BEGIN", "{")):
        return source
    return _read_text(Path(source.strip() if isinstance(source, str) else source))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"issuer key file {path} does not exist (give a PEM or JWK, or its path)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read issuer key file {path}: {exc}") from None


class IssuerSigningKey:
    """An identity provider's private key (Ed25519 or P-256), for the demo and tests. Never shows its private key."""

    __slots__ = ("_private", "issuer_key")

    def __init__(self, private_key: PrivateKey, *, kid: str | None = None) -> None:
        public = private_key.public_key()
        _algorithm_of(public)  # refuses other curves before the thumbprint is taken
        self._private = private_key
        self.issuer_key = IssuerKey(public, kid if kid is not None else _thumbprint(public))

    @classmethod
    def generate(cls, algorithm: Algorithm = "EdDSA", *, kid: str | None = None) -> IssuerSigningKey:
        """A new random key; ``kid`` defaults to the RFC 7638 thumbprint of its public key."""
        if algorithm == "EdDSA":
            return cls(Ed25519PrivateKey.generate(), kid=kid)
        if algorithm == "ES256":
            return cls(ec.generate_private_key(ec.SECP256R1()), kid=kid)
        raise ValueError(f"unsupported algorithm {algorithm!r} (expected EdDSA or ES256)")

    @classmethod
    def from_private_pem(cls, pem: str | bytes, *, kid: str | None = None) -> IssuerSigningKey:
        """Parse an unencrypted PKCS#8 PEM private key; raises :class:`KeyFormatError` without quoting it."""
        data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise KeyFormatError("not an unencrypted PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise KeyFormatError(f"issuer keys must be Ed25519 or P-256, not {type(key).__name__}")
        return cls(key, kid=kid)

    @property
    def algorithm(self) -> Algorithm:
        return self.issuer_key.algorithm

    @property
    def kid(self) -> str | None:
        return self.issuer_key.kid

    def export_private_pem(self) -> str:
        """The private key as unencrypted PKCS#8 PEM, for a mode-0600 file. Never log it."""
        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")

    def sign(self, signing_input: bytes) -> bytes:
        """The JWS signature of ``signing_input`` (64 bytes; ``r || s`` for ES256)."""
        if isinstance(self._private, Ed25519PrivateKey):
            return self._private.sign(signing_input)
        r, s = decode_dss_signature(self._private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(_P256_SIZE, "big") + s.to_bytes(_P256_SIZE, "big")

    def __repr__(self) -> str:
        return f"IssuerSigningKey(algorithm={self.algorithm!r}, kid={self.kid!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("an IssuerSigningKey holds a private key and cannot be pickled or copied")


def mint_token(
    signing_key: IssuerSigningKey,
    issuer: str,
    person_id: str,
    audience: str | Sequence[str] | None,
    lifetime: float,
    *,
    kid: str | None = None,
    now: float | None = None,
    not_before: float | None = None,
    jti: str | None = None,
    person_claim: str = "person_id",
    extra_claims: Mapping[str, object] | None = None,
) -> str:
    """A signed compact JWT for ``person_id``, valid for ``lifetime`` seconds from ``now`` (for the demo and tests).

    ``kid`` defaults to the signing key's; ``jti`` to a random UUID. ``extra_claims`` are added
    last and may override any claim (the tests forge tokens with it).
    """
    if lifetime <= 0:
        raise ValueError("lifetime must be positive")
    issued = time.time() if now is None else now
    claims: dict[str, object] = {"iss": issuer, person_claim: person_id, "iat": int(issued)}
    if audience is not None:
        claims["aud"] = audience if isinstance(audience, str) else list(audience)
    claims["exp"] = int(issued + lifetime)
    if not_before is not None:
        claims["nbf"] = int(not_before)
    claims["jti"] = jti if jti is not None else str(uuid.uuid4())
    claims.update(extra_claims or {})
    header: dict[str, object] = {"alg": signing_key.algorithm, "typ": "JWT"}
    key_id = kid if kid is not None else signing_key.kid
    if key_id is not None:
        header["kid"] = key_id
    signing_input = f"{_b64url_encode(_canonical_json(header))}.{_b64url_encode(_canonical_json(claims))}"
    signature = signing_key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{_b64url_encode(signature)}"


# --- verification ----------------------------------------------------------------------------------------------


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value (RFC 6750 §2.1).

    :class:`MissingTokenError` when there is none, :class:`MalformedTokenError` for another scheme or a malformed
    value; neither message repeats the header.
    """
    if authorization is None or not authorization.strip():
        raise MissingTokenError("no bearer token (send Authorization: Bearer <token>)")
    if len(authorization) > MAX_TOKEN_BYTES + 64:
        raise MalformedTokenError(f"token is longer than {MAX_TOKEN_BYTES} bytes")
    match = _BEARER.fullmatch(authorization.strip())
    if match is None:
        raise MalformedTokenError("the Authorization header is not 'Bearer <token>'")
    return match.group(1)


@dataclass(frozen=True, slots=True)
class Citizen:
    """Whom a verified token names. ``repr`` never shows the person id.

    ``token_id`` is a stable hash of the token's signed part (header and claims), for rate limiting and logs; it
    reveals neither the token nor the person id, and an ES256 token whose signature was re-encoded keeps it.
    ``expires_at`` is the token's ``exp`` (POSIX seconds).
    """

    person_id: str = field(repr=False)
    token_id: str
    expires_at: float
    issuer: str
    key_id: str | None = None

    def __str__(self) -> str:
        return repr(self)


class TokenVerifier:
    """Verifies citizens' bearer tokens from one issuer, with its keys, for one audience."""

    __slots__ = ("_audience", "_clock", "_issuer", "_keys", "_leeway", "_person_claim")

    def __init__(
        self,
        issuer: str,
        keys: Sequence[IssuerKey],
        audience: str | None,
        leeway: float = 30.0,
        person_claim: str = "person_id",
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not issuer:
            raise ConfigError("the token issuer must not be empty")
        if not keys:
            raise ConfigError("at least one issuer key is needed to verify tokens")
        if not (0 <= leeway <= _MAX_LEEWAY) or math.isnan(leeway):
            raise ConfigError(f"token clock leeway must be between 0 and {_MAX_LEEWAY:g} seconds")
        if not person_claim:
            raise ConfigError("the person id claim name must not be empty")
        if audience == "":
            raise ConfigError("the token audience must not be empty (None accepts tokens without one)")
        self._issuer = issuer
        self._keys = tuple(keys)
        self._audience = audience
        self._leeway = float(leeway)
        self._person_claim = person_claim
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, *, leeway: float = 30.0) -> TokenVerifier:
        """The verifier the ``tracker_*`` settings describe; :class:`ConfigError` without an issuer key."""
        if settings.tracker_issuer_key is None:
            raise ConfigError(
                "EXCHANGE_TRACKER_ISSUER_KEY is not set: give the identity provider's public key "
                "(PEM or JWK text, or a file path)"
            )
        return cls(
            settings.tracker_issuer,
            load_issuer_keys(settings.tracker_issuer_key),
            settings.tracker_audience,
            leeway,
            settings.tracker_person_claim,
        )

    @property
    def issuer(self) -> str:
        return self._issuer

    @property
    def audience(self) -> str | None:
        return self._audience

    @property
    def keys(self) -> tuple[IssuerKey, ...]:
        return self._keys

    def verify(self, token: str, now: float | None = None) -> Citizen:
        """The citizen ``token`` names, if it is valid at ``now`` (default: the clock); raises :class:`TokenError`."""
        at = self._clock() if now is None else now
        header, signing_input, payload, signature = _split(token)
        key = self._verify_signature(header, signing_input, signature)
        try:
            claims = _json_object(payload)
        except ValueError:
            raise MalformedTokenError("token payload is not a JSON object") from None
        expires_at = self._check_claims(claims, at)
        person_id = claims.get(self._person_claim)
        if person_id is None or person_id == "":
            raise MissingClaimError(f"token has no {self._person_claim!r} claim")
        if not isinstance(person_id, str) or len(person_id) > _MAX_PERSON_ID:
            raise InvalidClaimError(f"token's {self._person_claim!r} claim is not a string of up to 256 characters")
        token_id = hashlib.sha256(_TOKEN_ID_DOMAIN + signing_input).hexdigest()[:32]
        return Citizen(person_id, token_id, expires_at, self._issuer, key.kid)

    def _verify_signature(self, header: dict[str, Any], signing_input: bytes, signature: bytes) -> IssuerKey:
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise MalformedTokenError("token header has no 'alg' string")
        if alg.lower() == "none":
            raise AlgorithmError("unsigned tokens (alg 'none') are refused")
        if alg not in ALGORITHMS:
            raise AlgorithmError("token algorithm is not EdDSA or ES256")
        if "crit" in header:
            raise AlgorithmError("token header has 'crit' extensions, which are not understood")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _TYPES):
            raise MalformedTokenError("token header 'typ' is not JWT")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise MalformedTokenError("token header 'kid' is not a string")
        if kid is None:
            candidates = self._keys
        else:
            candidates = tuple(k for k in self._keys if k.kid == kid) or tuple(k for k in self._keys if k.kid is None)
            if not candidates:
                raise UnknownKeyIdError("token's key id names no key of the issuer")
        fitting = [k for k in candidates if k.algorithm == alg]
        if not fitting:
            raise AlgorithmError(f"token algorithm {alg} does not fit the issuer's key")
        for key in fitting:
            if key.verify(signature, signing_input):
                return key
        raise BadSignatureError("token signature does not verify with the issuer's key")

    def _check_claims(self, claims: Mapping[str, Any], at: float) -> float:
        exp = _numeric(claims, "exp")
        if exp is None:
            raise MissingClaimError("token has no 'exp' claim")
        nbf = _numeric(claims, "nbf")
        iat = _numeric(claims, "iat")
        if at >= exp + self._leeway:
            raise ExpiredTokenError("token has expired")
        if nbf is not None and at + self._leeway < nbf:
            raise NotYetValidError("token is not valid yet (nbf is in the future)")
        if iat is not None and at + self._leeway < iat:
            raise NotYetValidError("token was issued in the future (iat)")
        iss = claims.get("iss")
        if iss is None:
            raise MissingClaimError("token has no 'iss' claim")
        if iss != self._issuer:
            raise WrongIssuerError("token was not issued by the configured issuer")
        self._check_audience(claims)
        jti = claims.get("jti")
        if jti is not None and not isinstance(jti, str):
            raise InvalidClaimError("token's 'jti' claim is not a string")
        return exp

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        if "aud" not in claims:
            if self._audience is not None:
                raise MissingClaimError("token has no 'aud' claim")
            return
        aud = claims["aud"]
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise InvalidClaimError("token's 'aud' claim is not a string or a list of strings")
        if self._audience is None:
            raise WrongAudienceError("token names an audience, but none is configured")
        if self._audience not in audiences:
            raise WrongAudienceError("token is not meant for this audience")

    def __repr__(self) -> str:
        return (
            f"TokenVerifier(issuer={self._issuer!r}, audience={self._audience!r}, keys={len(self._keys)}, "
            f"leeway={self._leeway:g})"
        )


def _split(token: object) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    """Header, signing input, payload bytes and signature of a compact JWS; raises MalformedTokenError."""
    if not isinstance(token, str):
        raise MalformedTokenError("token is not a string")
    if len(token) > MAX_TOKEN_BYTES:
        raise MalformedTokenError(f"token is longer than {MAX_TOKEN_BYTES} bytes")
    if not token.isascii():
        raise MalformedTokenError("token is not ASCII")
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedTokenError(f"token has {len(parts)} parts, not the 3 of a signed JWT")
    header_b64, payload_b64, signature_b64 = parts
    try:
        header_raw = _b64url_decode(header_b64)
        payload = _b64url_decode(payload_b64)
        signature = _b64url_decode(signature_b64)
    except (ValueError, binascii.Error):
        raise MalformedTokenError("token is not three parts of strict base64url (no padding)") from None
    try:
        header = _json_object(header_raw)
    except ValueError:
        raise MalformedTokenError("token header is not a JSON object") from None
    return header, f"{header_b64}.{payload_b64}".encode("ascii"), payload, signature


def _numeric(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidClaimError(f"token's {name!r} claim is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidClaimError(f"token's {name!r} claim is out of range") from None
    if not math.isfinite(number):
        raise InvalidClaimError(f"token's {name!r} claim is out of range")
    return number


# --- the demo issuer's key in the keystore ---------------------------------------------------------------------


def ensure_demo_issuer_key(
    keystore: Path | str, name: str = "tracker-issuer", algorithm: Algorithm = "EdDSA"
) -> IssuerSigningKey:
    """The demo identity provider's key in ``keystore``, created on first use (a second call reuses it).

    Writes ``<keystore>/<name>.jwt-issuer.key`` (PKCS#8 PEM, mode 0600, created exclusively, never overwritten)
    and ``<name>.jwt-issuer.jwk.json`` (the public JWK, mode 0644: the value for ``EXCHANGE_TRACKER_ISSUER_KEY``).
    """
    private_path, public_path = _demo_paths(keystore, name)
    if private_path.exists():
        existing = load_issuer_signing_key(keystore, name)
        if not public_path.exists():
            write_new_key_file(public_path, json.dumps(existing.issuer_key.to_jwk(), indent=2) + "\n", _PUBLIC_MODE)
        return existing
    key = IssuerSigningKey.generate(algorithm)
    directory = private_path.parent
    try:
        if not directory.is_dir():
            directory.mkdir(mode=0o700, parents=True)
            os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise KeystoreError(f"cannot create keystore directory {directory}: {exc.strerror}") from None
    write_new_key_file(private_path, key.export_private_pem(), _PRIVATE_MODE)
    try:
        write_new_key_file(public_path, json.dumps(key.issuer_key.to_jwk(), indent=2) + "\n", _PUBLIC_MODE)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return key


def load_issuer_signing_key(keystore: Path | str, name: str = "tracker-issuer") -> IssuerSigningKey:
    """The demo issuer's private key from ``keystore``; :class:`KeystoreError` if missing, too open or not a key."""
    private_path, _ = _demo_paths(keystore, name)
    text = read_private_key_file(private_path, f"no issuer key file {private_path}")
    try:
        return IssuerSigningKey.from_private_pem(text)
    except KeyFormatError as exc:
        raise KeystoreError(f"{private_path} is not an issuer key: {exc}") from None


def _demo_paths(keystore: Path | str, name: str) -> tuple[Path, Path]:
    # The name becomes a file name: only slugs, so no path can escape the keystore.
    if not _KEY_NAME.fullmatch(name):
        raise KeystoreError(f"issuer key name {name!r} is not a slug (lowercase letters, digits, '-')")
    directory = Path(keystore)
    return directory / f"{name}.jwt-issuer.key", directory / f"{name}.jwt-issuer.jwk.json"
