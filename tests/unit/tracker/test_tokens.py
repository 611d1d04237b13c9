"""Citizen bearer tokens: every refusal, both algorithms, key loading, mutation, and PyJWT as an independent check."""

from __future__ import annotations

import base64
import copy
import json
import os
import pickle
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.crypto.errors import KeyFormatError
from exchange.errors import ConfigError, ExchangeError
from exchange.registry.errors import KeystoreError
from exchange.settings import Settings
from exchange.tracker.tokens import (
    MAX_TOKEN_BYTES,
    Algorithm,
    AlgorithmError,
    BadSignatureError,
    Citizen,
    ExpiredTokenError,
    InvalidClaimError,
    IssuerKey,
    IssuerSigningKey,
    MalformedTokenError,
    MissingClaimError,
    MissingTokenError,
    NotYetValidError,
    TokenError,
    TokenVerifier,
    UnknownKeyIdError,
    WrongAudienceError,
    WrongIssuerError,
    bearer_token,
    ensure_demo_issuer_key,
    load_issuer_keys,
    load_issuer_signing_key,
    mint_token,
)

ISSUER = "https://id.example.test"
AUDIENCE = "exchange-tracker"
PERSON = "19790412-2387"
NOW = 1_800_000_000.0
ALGS: list[Algorithm] = ["EdDSA", "ES256"]

# Keys are generated once per module: hypothesis runs many examples with them.
KEYS = {alg: IssuerSigningKey.generate(alg) for alg in ALGS}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "person_id": PERSON, "iat": NOW - 10, "exp": NOW + 300, "jti": "t-1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def forge(
    key: IssuerSigningKey, payload: dict[str, Any] | bytes, header: dict[str, Any] | bytes | None = None
) -> str:
    """A token signed by ``key`` over exactly the header and payload given (raw bytes taken as they are)."""
    if header is None:
        header = {"alg": key.algorithm, "typ": "JWT", "kid": key.kid}
    header_bytes = header if isinstance(header, bytes) else json.dumps(header).encode()
    payload_bytes = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64(header_bytes)}.{b64(payload_bytes)}"
    return f"{signing_input}.{b64(key.sign(signing_input.encode()))}"


def verifier(*keys: IssuerSigningKey, audience: str | None = AUDIENCE, **kwargs: Any) -> TokenVerifier:
    return TokenVerifier(ISSUER, [k.issuer_key for k in keys], audience, **kwargs)


@pytest.fixture(params=ALGS)
def key(request: pytest.FixtureRequest) -> IssuerSigningKey:
    return KEYS[request.param]


# --- accepted ---------------------------------------------------------------------------------------------------


def test_a_minted_token_verifies_and_names_the_citizen(key: IssuerSigningKey) -> None:
    token = mint_token(key, ISSUER, PERSON, AUDIENCE, 600, now=NOW)
    citizen = verifier(key).verify(token, now=NOW + 1)
    assert citizen.person_id == PERSON
    assert citizen.expires_at == NOW + 600
    assert citizen.issuer == ISSUER
    assert citizen.key_id == key.kid
    assert len(citizen.token_id) == 32
    assert citizen.token_id == verifier(key).verify(token, now=NOW + 2).token_id  # stable
    other = mint_token(key, ISSUER, PERSON, AUDIENCE, 600, now=NOW)
    assert verifier(key).verify(other, now=NOW).token_id != citizen.token_id  # another jti, another id


def test_the_citizen_never_shows_the_person_id_or_the_token(key: IssuerSigningKey) -> None:
    token = mint_token(key, ISSUER, PERSON, AUDIENCE, 600, now=NOW)
    citizen = verifier(key).verify(token, now=NOW)
    for text in (repr(citizen), str(citizen), f"{citizen}"):
        assert PERSON not in text
        assert token not in text
        assert token.split(".")[2] not in text
    assert citizen.token_id not in token


def test_an_audience_list_containing_ours_is_accepted(key: IssuerSigningKey) -> None:
    token = forge(key, claims(aud=["other", AUDIENCE]))
    assert verifier(key).verify(token, now=NOW).person_id == PERSON


def test_without_a_configured_audience_a_token_without_aud_is_accepted(key: IssuerSigningKey) -> None:
    token = mint_token(key, ISSUER, PERSON, None, 600, now=NOW)
    assert verifier(key, audience=None).verify(token, now=NOW).person_id == PERSON


def test_the_person_claim_name_is_configurable(key: IssuerSigningKey) -> None:
    token = mint_token(key, ISSUER, PERSON, AUDIENCE, 600, now=NOW, person_claim="sub")
    assert verifier(key, person_claim="sub").verify(token, now=NOW).person_id == PERSON
    with pytest.raises(MissingClaimError, match="'person_id'"):
        verifier(key).verify(token, now=NOW)


def test_the_default_clock_is_used_when_no_time_is_given(key: IssuerSigningKey) -> None:
    token = mint_token(key, ISSUER, PERSON, AUDIENCE, 600, now=NOW)
    assert verifier(key, clock=lambda: NOW + 100).verify(token).person_id == PERSON
    with pytest.raises(ExpiredTokenError):
        verifier(key, clock=lambda: NOW + 1000).verify(token)


def test_kid_selects_among_several_keys() -> None:
    a, b = KEYS["EdDSA"], KEYS["ES256"]
    both = verifier(a, b)
    assert both.verify(mint_token(a, ISSUER, PERSON, AUDIENCE, 60, now=NOW), now=NOW).key_id == a.kid
    assert both.verify(mint_token(b, ISSUER, PERSON, AUDIENCE, 60, now=NOW), now=NOW).key_id == b.kid
    with pytest.raises(UnknownKeyIdError):
        both.verify(mint_token(a, ISSUER, PERSON, AUDIENCE, 60, now=NOW, kid="retired-2024"), now=NOW)


def test_without_kid_every_key_of_the_algorithm_is_tried() -> None:
    first, second = IssuerSigningKey.generate("EdDSA"), IssuerSigningKey.generate("EdDSA")
    token = forge(second, claims(), {"alg": "EdDSA"})
    assert verifier(first, second).verify(token, now=NOW).key_id == second.kid
    with pytest.raises(BadSignatureError):
        verifier(first).verify(token, now=NOW)


def test_a_key_without_kid_verifies_tokens_with_any_kid(key: IssuerSigningKey) -> None:
    unnamed = TokenVerifier(ISSUER, [IssuerKey(key.issuer_key.public_key)], AUDIENCE)
    assert unnamed.verify(mint_token(key, ISSUER, PERSON, AUDIENCE, 60, now=NOW, kid="k7"), now=NOW).key_id is None


# --- refused: the form ------------------------------------------------------------------------------------------


def valid(key: IssuerSigningKey) -> str:
    return forge(key, claims())


@pytest.mark.parametrize(
    ("mangle", "match"),
    [
        (lambda t: t + "=", "base64url"),
        (lambda t: t.replace(".", "=.", 1), "base64url"),
        (lambda t: t.rsplit(".", 1)[0] + "." + t.rsplit(".", 1)[1].replace("-", "+").replace("_", "/") + "+", "base64"),
        (lambda t: t + ".", "4 parts"),
        (lambda t: t.rsplit(".", 1)[0], "2 parts"),
        (lambda t: "a.b.c.d." + t, "parts"),
        (lambda t: t[:-1] + "é", "ASCII"),
        (lambda t: " " + t, "base64url"),
        (lambda t: t + "\n", "base64url"),
        (lambda t: "", "1 parts"),
        (lambda t: t.rsplit(".", 1)[0] + ".", "signature"),
        (lambda t: t.rsplit(".", 1)[0] + "." + "A" * 5, "base64url"),
    ],
    ids=["padded-signature", "padded-header", "base64-not-url", "four-parts", "two-parts", "jwe-like",
         "non-ascii", "leading-space", "trailing-newline", "empty", "empty-signature", "impossible-length"],
)
def test_malformed_encodings_are_refused(key: IssuerSigningKey, mangle: Callable[[str], str], match: str) -> None:
    with pytest.raises(TokenError, match=match) as caught:
        verifier(key).verify(mangle(valid(key)), now=NOW)
    assert isinstance(caught.value, MalformedTokenError | BadSignatureError)


def test_a_non_canonical_base64url_character_is_refused(key: IssuerSigningKey) -> None:
    # The last character of a 64-byte signature carries 2 unused bits; any of its 4 spellings decodes alike.
    token = valid(key)
    last = token[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) ^ 1]
    assert base64.urlsafe_b64decode(token.rsplit(".", 1)[1] + "==") == base64.urlsafe_b64decode(
        token.rsplit(".", 1)[1][:-1] + twin + "=="
    )
    with pytest.raises(MalformedTokenError, match="base64url"):
        verifier(key).verify(token[:-1] + twin, now=NOW)


def test_an_oversize_token_is_refused_before_anything_else(key: IssuerSigningKey) -> None:
    big = forge(key, claims(padding="x" * MAX_TOKEN_BYTES))
    with pytest.raises(MalformedTokenError, match="longer than 8192"):
        verifier(key).verify(big, now=NOW)
    just_fits = forge(key, claims(padding=""))
    room = MAX_TOKEN_BYTES - len(just_fits)
    fitting = forge(key, claims(padding="x" * (room * 3 // 4 - 4)))
    assert len(fitting) <= MAX_TOKEN_BYTES
    assert verifier(key).verify(fitting, now=NOW).person_id == PERSON


@pytest.mark.parametrize(
    ("header", "error", "match"),
    [
        (b"not json", MalformedTokenError, "header is not a JSON object"),
        (b"[1, 2]", MalformedTokenError, "header is not a JSON object"),
        (b'"EdDSA"', MalformedTokenError, "header is not a JSON object"),
        (b'{"alg": "EdDSA", "alg": "none"}', MalformedTokenError, "header is not a JSON object"),
        (b'{"alg": "EdDSA", "x": NaN}', MalformedTokenError, "header is not a JSON object"),
        (b'{"alg": "EdDSA"}\xff', MalformedTokenError, "header is not a JSON object"),
        (b"{}", MalformedTokenError, "no 'alg'"),
        (b'{"alg": 1}', MalformedTokenError, "no 'alg'"),
        (b'{"alg": "none"}', AlgorithmError, "'none'"),
        (b'{"alg": "None"}', AlgorithmError, "'none'"),
        (b'{"alg": "HS256"}', AlgorithmError, "not EdDSA or ES256"),
        (b'{"alg": "RS256"}', AlgorithmError, "not EdDSA or ES256"),
        (b'{"alg": "Ed25519"}', AlgorithmError, "not EdDSA or ES256"),
        (b'{"alg": "eddsa"}', AlgorithmError, "not EdDSA or ES256"),
        (b'{"alg": "%(alg)s", "crit": ["exp"], "exp": 1}', AlgorithmError, "crit"),
        (b'{"alg": "%(alg)s", "crit": []}', AlgorithmError, "crit"),
        (b'{"alg": "%(alg)s", "typ": "JWE"}', MalformedTokenError, "typ"),
        (b'{"alg": "%(alg)s", "typ": 7}', MalformedTokenError, "typ"),
        (b'{"alg": "%(alg)s", "kid": 7}', MalformedTokenError, "kid"),
    ],
)
def test_bad_headers_are_refused(key: IssuerSigningKey, header: bytes, error: type[TokenError], match: str) -> None:
    token = forge(key, claims(), header.replace(b"%(alg)s", key.algorithm.encode()))
    with pytest.raises(error, match=match):
        verifier(key).verify(token, now=NOW)


def test_alg_none_with_an_empty_signature_is_refused(key: IssuerSigningKey) -> None:
    header = b64(b'{"alg":"none","typ":"JWT"}')
    token = f"{header}.{b64(json.dumps(claims()).encode())}."
    with pytest.raises(AlgorithmError, match="'none'"):
        verifier(key).verify(token, now=NOW)


def test_an_algorithm_that_does_not_fit_the_key_is_refused() -> None:
    ed, p256 = KEYS["EdDSA"], KEYS["ES256"]
    # An EdDSA signature labelled ES256 (and the reverse), checked against a key of the other type.
    for signer, claimed, trusted in ((ed, "ES256", ed), (p256, "EdDSA", p256)):
        token = forge(signer, claims(), {"alg": claimed, "kid": signer.kid})
        with pytest.raises(AlgorithmError, match="does not fit"):
            verifier(trusted).verify(token, now=NOW)


def test_header_keys_are_never_trusted(key: IssuerSigningKey) -> None:
    attacker = IssuerSigningKey.generate(key.algorithm)
    header = {"alg": key.algorithm, "kid": key.kid, "jwk": attacker.issuer_key.to_jwk(), "jku": "https://evil.test/"}
    with pytest.raises(BadSignatureError):
        verifier(key).verify(forge(attacker, claims(), header), now=NOW)


def test_a_token_signed_by_another_key_is_refused(key: IssuerSigningKey) -> None:
    other = IssuerSigningKey.generate(key.algorithm, kid=key.kid)
    with pytest.raises(BadSignatureError, match="does not verify"):
        verifier(key).verify(mint_token(other, ISSUER, PERSON, AUDIENCE, 60, now=NOW), now=NOW)


def test_a_changed_payload_breaks_the_signature(key: IssuerSigningKey) -> None:
    header, _, signature = valid(key).split(".")
    forged = f"{header}.{b64(json.dumps(claims(person_id='someone-else')).encode())}.{signature}"
    with pytest.raises(BadSignatureError):
        verifier(key).verify(forged, now=NOW)


def test_es256_refuses_a_der_signature_and_zero_scalars() -> None:
    key = KEYS["ES256"]
    signing_input, raw = valid(key).rsplit(".", 1)
    sig = base64.urlsafe_b64decode(raw + "==")
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    der = encode_dss_signature(r, s)
    for bad in (der, bytes(64), bytes(32) + sig[32:], sig[:32] + b"\xff" * 32):
        with pytest.raises(BadSignatureError):
            verifier(key).verify(f"{signing_input}.{b64(bad)}", now=NOW)


# --- refused: the claims ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "error", "match"),
    [
        (b"not json", MalformedTokenError, "payload is not a JSON object"),
        (b'["iss"]', MalformedTokenError, "payload is not a JSON object"),
        (b'{"exp": 1, "exp": 2}', MalformedTokenError, "payload is not a JSON object"),
        (b'{"exp": Infinity}', MalformedTokenError, "payload is not a JSON object"),
        (b"[" * 2000 + b"]" * 2000, MalformedTokenError, "payload is not a JSON object"),
        (b'{"exp": ' + b"9" * 5000 + b"}", MalformedTokenError, "payload is not a JSON object"),
    ],
    ids=["not-json", "array", "duplicate-key", "infinity", "deeply-nested", "huge-integer"],
)
def test_bad_payloads_are_refused(key: IssuerSigningKey, payload: bytes, error: type[TokenError], match: str) -> None:
    with pytest.raises(error, match=match):
        verifier(key).verify(forge(key, payload), now=NOW)


def test_a_duplicated_person_claim_is_refused(key: IssuerSigningKey) -> None:
    body = json.dumps(claims())[:-1] + ', "person_id": "someone-else"}'
    with pytest.raises(MalformedTokenError):
        verifier(key).verify(forge(key, body.encode()), now=NOW)


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"exp": None}, MissingClaimError, "'exp'"),
        ({"exp": "1900000000"}, InvalidClaimError, "'exp' claim is not a number"),
        ({"exp": True}, InvalidClaimError, "'exp' claim is not a number"),
        ({"exp": 1e308 * 10}, InvalidClaimError, "'exp'"),
        ({"exp": 10**400}, InvalidClaimError, "out of range"),
        ({"nbf": "soon"}, InvalidClaimError, "'nbf'"),
        ({"iat": [1]}, InvalidClaimError, "'iat'"),
        ({"exp": NOW - 31}, ExpiredTokenError, "expired"),
        ({"exp": NOW - 30}, ExpiredTokenError, "expired"),
        ({"nbf": NOW + 31}, NotYetValidError, "nbf"),
        ({"iat": NOW + 3600}, NotYetValidError, "iat"),
        ({"iss": None}, MissingClaimError, "'iss'"),
        ({"iss": "https://id.example.test/"}, WrongIssuerError, "issuer"),
        ({"iss": "https://evil.test"}, WrongIssuerError, "issuer"),
        ({"iss": 1}, WrongIssuerError, "issuer"),
        ({"aud": None}, MissingClaimError, "'aud'"),
        ({"aud": "someone-else"}, WrongAudienceError, "audience"),
        ({"aud": ["a", "b"]}, WrongAudienceError, "audience"),
        ({"aud": []}, WrongAudienceError, "audience"),
        ({"aud": 5}, InvalidClaimError, "'aud'"),
        ({"aud": [AUDIENCE, 5]}, InvalidClaimError, "'aud'"),
        ({"jti": 5}, InvalidClaimError, "'jti'"),
        ({"person_id": None}, MissingClaimError, "'person_id'"),
        ({"person_id": ""}, MissingClaimError, "'person_id'"),
        ({"person_id": 197904122387}, InvalidClaimError, "'person_id'"),
        ({"person_id": "x" * 257}, InvalidClaimError, "'person_id'"),
    ],
)
def test_bad_claims_are_refused(
    key: IssuerSigningKey, overrides: dict[str, Any], error: type[TokenError], match: str
) -> None:
    payload = claims(**{k: v for k, v in overrides.items() if v is not None})
    for name, value in overrides.items():
        if value is None:
            payload.pop(name)
    try:
        body = json.dumps(payload, allow_nan=True).replace("Infinity", "1e999").encode()
    except ValueError:
        pytest.fail("test payload cannot be encoded")
    with pytest.raises(error, match=match) as caught:
        verifier(key).verify(forge(key, body), now=NOW)
    assert PERSON not in str(caught.value)


def test_the_leeway_bounds_each_time_check(key: IssuerSigningKey) -> None:
    edge = forge(key, claims(exp=NOW - 29, nbf=NOW + 29, iat=NOW + 29))
    assert verifier(key).verify(edge, now=NOW).person_id == PERSON
    with pytest.raises(ExpiredTokenError):
        verifier(key, leeway=0).verify(edge, now=NOW)
    strict = forge(key, claims(nbf=NOW + 1))
    with pytest.raises(NotYetValidError):
        verifier(key, leeway=0).verify(strict, now=NOW)
    assert verifier(key, leeway=5).verify(strict, now=NOW).person_id == PERSON


def test_an_audience_in_the_token_is_refused_when_none_is_configured(key: IssuerSigningKey) -> None:
    with pytest.raises(WrongAudienceError, match="none is configured"):
        verifier(key, audience=None).verify(valid(key), now=NOW)


def test_every_token_error_is_an_exchange_error_with_a_reason() -> None:
    for cls in (MissingTokenError, MalformedTokenError, AlgorithmError, UnknownKeyIdError, BadSignatureError,
                InvalidClaimError, MissingClaimError, ExpiredTokenError, NotYetValidError, WrongIssuerError,
                WrongAudienceError):
        assert issubclass(cls, TokenError)
        assert issubclass(cls, ExchangeError)
        assert cls.reason.isidentifier()
    assert len({c.reason for c in TokenError.__subclasses__()}) == len(TokenError.__subclasses__())


# --- mutation: any changed byte fails with a typed error ---------------------------------------------------------

TOKENS = {alg: mint_token(KEYS[alg], ISSUER, PERSON, AUDIENCE, 600, now=NOW) for alg in ALGS}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alg=st.sampled_from(ALGS), data=st.data())
def test_changing_any_byte_of_a_token_makes_it_fail_with_a_token_error(alg: Algorithm, data: st.DataObject) -> None:
    token = TOKENS[alg]
    raw = bytearray(token.encode())
    position = data.draw(st.integers(0, len(raw) - 1), label="position")
    replacement = data.draw(st.integers(0, 255).filter(lambda b: b != raw[position]), label="byte")
    raw[position] = replacement
    mutated = raw.decode("latin-1")
    with pytest.raises(TokenError) as caught:
        verifier(KEYS[alg]).verify(mutated, now=NOW)
    assert PERSON not in str(caught.value)
    assert mutated not in str(caught.value)


@settings(max_examples=150, deadline=None)
@given(alg=st.sampled_from(ALGS), junk=st.text(max_size=300) | st.from_regex(r"[A-Za-z0-9_.=-]{0,300}", fullmatch=True))
def test_arbitrary_text_fails_with_a_token_error(alg: Algorithm, junk: str) -> None:
    with pytest.raises(TokenError):
        verifier(KEYS[alg]).verify(junk, now=NOW)


@settings(max_examples=150, deadline=None)
@given(alg=st.sampled_from(ALGS), payload=st.binary(max_size=200), header=st.binary(max_size=60))
def test_any_signed_bytes_fail_with_a_token_error(alg: Algorithm, payload: bytes, header: bytes) -> None:
    key = KEYS[alg]
    for hdr in (header, json.dumps({"alg": alg}).encode()):
        with pytest.raises(TokenError):
            verifier(key).verify(forge(key, payload, hdr), now=NOW)


# --- an independent implementation: PyJWT -------------------------------------------------------------------------


def _private_for_pyjwt(key: IssuerSigningKey) -> Any:
    return serialization.load_pem_private_key(key.export_private_pem().encode(), password=None)


def test_pyjwt_verifies_our_tokens(key: IssuerSigningKey) -> None:
    token = mint_token(key, ISSUER, PERSON, [AUDIENCE, "x"], 600)
    decoded = jwt.decode(
        token, key.issuer_key.to_pem(), algorithms=[key.algorithm], audience=AUDIENCE, issuer=ISSUER,
        options={"require": ["exp", "iss", "aud"]},
    )
    assert decoded["person_id"] == PERSON
    assert jwt.get_unverified_header(token)["kid"] == key.kid
    # ... with the JWK too, and it refuses our tokens altered.
    pyjwk = jwt.PyJWK(key.issuer_key.to_jwk())
    assert jwt.decode(token, pyjwk, algorithms=[key.algorithm], audience=AUDIENCE)["iss"] == ISSUER
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token[:-2] + ("AA" if token[-2:] != "AA" else "BA"), pyjwk, algorithms=[key.algorithm],
                   audience=AUDIENCE)


def test_we_verify_pyjwt_tokens(key: IssuerSigningKey) -> None:
    payload = claims(exp=int(NOW) + 60, iat=int(NOW), nbf=int(NOW))
    token = jwt.encode(payload, _private_for_pyjwt(key), algorithm=key.algorithm, headers={"kid": key.kid})
    assert verifier(key).verify(token, now=NOW).person_id == PERSON
    # PyJWT's own JWK export of the public key loads as an issuer key.
    algorithm = jwt.get_algorithm_by_name(key.algorithm)
    exported = json.loads(algorithm.to_jwk(_private_for_pyjwt(key).public_key()))
    assert TokenVerifier(ISSUER, load_issuer_keys(json.dumps(exported)), AUDIENCE).verify(token, now=NOW).key_id is None
    # PyJWT tokens with a wrong issuer or a past exp are refused the same way.
    with pytest.raises(WrongIssuerError):
        verifier(key).verify(jwt.encode(claims(iss="https://evil.test"), _private_for_pyjwt(key),
                                        algorithm=key.algorithm), now=NOW)
    with pytest.raises(ExpiredTokenError):
        verifier(key).verify(jwt.encode(claims(exp=int(NOW) - 100), _private_for_pyjwt(key),
                                        algorithm=key.algorithm), now=NOW)


def test_our_jwk_thumbprint_is_pyjwts() -> None:
    # RFC 7638 §3.1's example key is RSA; for our key types PyJWT's JWK export is compared instead.
    for key in KEYS.values():
        exported = json.loads(jwt.get_algorithm_by_name(key.algorithm).to_jwk(key.issuer_key.public_key))
        assert {k: exported[k] for k in ("kty", "crv", "x", "y") if k in exported} == {
            k: v for k, v in key.issuer_key.to_jwk().items() if k in ("kty", "crv", "x", "y")
        }


def test_rfc8037_ed25519_thumbprint_vector() -> None:
    # RFC 8037 appendix A.3: the JWK thumbprint of the example Ed25519 key.
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert IssuerKey.from_jwk(jwk).thumbprint() == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_rfc8037_ed25519_signature_vector() -> None:
    # RFC 8037 appendix A.4: the example JWS ("Example of Ed25519 signing", no exp) must pass the signature check.
    seed = base64.urlsafe_b64decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
    key = IssuerSigningKey(Ed25519PrivateKey.from_private_bytes(seed))
    signing_input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    expected = "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    assert b64(key.sign(signing_input.encode())) == expected
    # The payload is not JSON: the signature verifies, so the refusal comes from the payload check.
    with pytest.raises(MalformedTokenError, match="payload"):
        TokenVerifier(ISSUER, [key.issuer_key], None).verify(f"{signing_input}.{expected}", now=NOW)
    altered = ("A" if expected[0] != "A" else "B") + expected[1:]
    with pytest.raises(BadSignatureError):
        TokenVerifier(ISSUER, [key.issuer_key], None).verify(f"{signing_input}.{altered}", now=NOW)


# --- issuer keys ---------------------------------------------------------------------------------------------------


def test_pem_and_jwk_loading_round_trip(key: IssuerSigningKey, tmp_path: Path) -> None:
    token = mint_token(key, ISSUER, PERSON, AUDIENCE, 60, now=NOW)
    pem = key.issuer_key.to_pem()
    jwk = json.dumps(key.issuer_key.to_jwk())
    jwks = json.dumps({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}, key.issuer_key.to_jwk()]})
    (tmp_path / "issuer.pem").write_text(pem)
    (tmp_path / "issuer.jwk").write_text(jwk)
    sources: list[str | Path] = [pem, jwk, jwks, "  " + pem + "\n", str(tmp_path / "issuer.pem"),
                                 tmp_path / "issuer.jwk"]
    for source in sources:
        keys = load_issuer_keys(source)
        assert len(keys) == 1
        assert keys[0].algorithm == key.algorithm
        assert TokenVerifier(ISSUER, keys, AUDIENCE).verify(token, now=NOW).person_id == PERSON
    assert load_issuer_keys(pem)[0].kid is None
    assert load_issuer_keys(jwk)[0].kid == key.kid
    assert IssuerKey.from_pem(pem, kid="k1").kid == "k1"


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "not a PEM public key"),
        ('{"kty": "OKP", "crv": "Ed25519"}', "no 'x'"),
        ('{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}', "3 bytes"),
        ('{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="}', "base64url"),
        ('{"kty": "OKP", "crv": "X25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}', "unsupported"),
        ('{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}', "unsupported"),
        ('{"kty": "EC", "crv": "P-256", "x": "' + "A" * 43 + '", "y": "' + "A" * 43 + '"}', "not a valid P-256"),
        ('{"kty": "RSA", "n": "AQAB", "e": "AQAB"}', "unsupported"),
        ('{"kty": "OKP", "crv": "Ed25519", "x": 1}', "no 'x'"),
        ('{"kty": "OKP", "kty": "OKP", "crv": "Ed25519", "x": "AA"}', "duplicate"),
        ('{"keys": []}', "no Ed25519 or P-256"),
        ('{"keys": {}}', "not a list"),
        ('{"keys": [1]}', "not an object"),
        ("{not json", "not a JWK"),
    ],
)
def test_bad_issuer_keys_are_refused(source: str, match: str) -> None:
    with pytest.raises(KeyFormatError, match=match):
        load_issuer_keys(source)


def test_issuer_keys_refuse_private_material_wrong_types_and_uses(tmp_path: Path) -> None:
    signing = KEYS["EdDSA"]
    with pytest.raises(KeyFormatError, match="private key") as caught:
        load_issuer_keys(signing.export_private_pem())
    assert signing.export_private_pem().splitlines()[1] not in str(caught.value)
    private_jwk = {**signing.issuer_key.to_jwk(), "d": "secret-scalar"}
    with pytest.raises(KeyFormatError, match="private key") as caught:
        IssuerKey.from_jwk(private_jwk)
    assert "secret-scalar" not in str(caught.value)
    with pytest.raises(KeyFormatError, match="use"):
        IssuerKey.from_jwk({**signing.issuer_key.to_jwk(), "use": "enc"})
    with pytest.raises(KeyFormatError, match="key_ops"):
        IssuerKey.from_jwk({**signing.issuer_key.to_jwk(), "key_ops": ["sign"]})
    with pytest.raises(KeyFormatError, match="alg"):
        IssuerKey.from_jwk({**signing.issuer_key.to_jwk(), "alg": "ES256"})
    with pytest.raises(KeyFormatError, match="kid"):
        IssuerKey.from_jwk({**signing.issuer_key.to_jwk(), "kid": 3})
    rsa_pem = rsa.generate_private_key(65537, 2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    with pytest.raises(KeyFormatError, match="Ed25519 or P-256"):
        load_issuer_keys(rsa_pem)
    p384_pem = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    with pytest.raises(KeyFormatError, match="Ed25519 or P-256"):
        load_issuer_keys(p384_pem)
    with pytest.raises(ConfigError, match="does not exist"):
        load_issuer_keys(str(tmp_path / "missing.pem"))
    with pytest.raises(KeyFormatError, match="Ed25519 or P-256"):
        IssuerSigningKey(ec.generate_private_key(ec.SECP384R1()))


def test_a_jwk_set_from_pyjwt_style_exports_loads_several_keys() -> None:
    jwks = json.dumps({"keys": [k.issuer_key.to_jwk() for k in KEYS.values()]})
    keys = load_issuer_keys(jwks)
    assert {k.algorithm for k in keys} == {"EdDSA", "ES256"}
    both = TokenVerifier(ISSUER, keys, AUDIENCE)
    for signer in KEYS.values():
        assert both.verify(mint_token(signer, ISSUER, PERSON, AUDIENCE, 60, now=NOW), now=NOW).key_id == signer.kid


# --- the verifier's configuration -----------------------------------------------------------------------------------


def test_verifier_configuration_is_checked() -> None:
    keys = [KEYS["EdDSA"].issuer_key]
    with pytest.raises(ConfigError):
        TokenVerifier("", keys, AUDIENCE)
    with pytest.raises(ConfigError):
        TokenVerifier(ISSUER, [], AUDIENCE)
    with pytest.raises(ConfigError):
        TokenVerifier(ISSUER, keys, AUDIENCE, leeway=-1)
    with pytest.raises(ConfigError):
        TokenVerifier(ISSUER, keys, AUDIENCE, leeway=float("nan"))
    with pytest.raises(ConfigError):
        TokenVerifier(ISSUER, keys, "")
    with pytest.raises(ConfigError):
        TokenVerifier(ISSUER, keys, AUDIENCE, person_claim="")
    assert "keys=1" in repr(TokenVerifier(ISSUER, keys, AUDIENCE))


def test_the_verifier_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    signing = KEYS["ES256"]
    (tmp_path / "idp.jwk").write_text(json.dumps(signing.issuer_key.to_jwk()))
    monkeypatch.setenv("EXCHANGE_TRACKER_ISSUER", ISSUER)
    monkeypatch.setenv("EXCHANGE_TRACKER_ISSUER_KEY", str(tmp_path / "idp.jwk"))
    monkeypatch.setenv("EXCHANGE_TRACKER_PERSON_CLAIM", "sub")
    settings_ = Settings()
    assert settings_.tracker_audience == "exchange-tracker"
    token = mint_token(signing, ISSUER, PERSON, "exchange-tracker", 60, now=NOW, person_claim="sub")
    assert TokenVerifier.from_settings(settings_).verify(token, now=NOW).person_id == PERSON
    monkeypatch.delenv("EXCHANGE_TRACKER_ISSUER_KEY")
    with pytest.raises(ConfigError, match="EXCHANGE_TRACKER_ISSUER_KEY"):
        TokenVerifier.from_settings(Settings())


def test_tracker_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ISSUER", "ISSUER_KEY", "AUDIENCE", "PERSON_CLAIM"):
        monkeypatch.delenv(f"EXCHANGE_TRACKER_{name}", raising=False)
    defaults = Settings()
    assert defaults.tracker_issuer == "https://id.exchange.local"
    assert defaults.tracker_issuer_key is None
    assert defaults.tracker_audience == "exchange-tracker"
    assert defaults.tracker_person_claim == "person_id"


# --- minting and the demo issuer key ---------------------------------------------------------------------------------


def test_mint_token_claims_and_header(key: IssuerSigningKey) -> None:
    token = mint_token(key, ISSUER, PERSON, AUDIENCE, 90, now=NOW, not_before=NOW + 5, jti="jti-1",
                       kid="override", extra_claims={"acr": "high"})
    header_b64, payload_b64, _ = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=="))
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=="))
    assert header == {"alg": key.algorithm, "typ": "JWT", "kid": "override"}
    assert payload == {"iss": ISSUER, "person_id": PERSON, "iat": int(NOW), "aud": AUDIENCE, "exp": int(NOW) + 90,
                       "nbf": int(NOW) + 5, "jti": "jti-1", "acr": "high"}
    with pytest.raises(ValueError, match="lifetime"):
        mint_token(key, ISSUER, PERSON, AUDIENCE, 0)


def test_a_signing_key_never_shows_or_pickles_its_private_key(key: IssuerSigningKey) -> None:
    pem_body = "".join(key.export_private_pem().splitlines()[1:-1])
    assert pem_body not in repr(key)
    assert pem_body not in str(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(TypeError):
        copy.deepcopy(key)
    reloaded = IssuerSigningKey.from_private_pem(key.export_private_pem())
    assert reloaded.kid == key.kid
    with pytest.raises(KeyFormatError, match="unencrypted PEM private key") as caught:
        IssuerSigningKey.from_private_pem(key.export_private_pem().replace("A", "B", 5))
    assert pem_body[:20] not in str(caught.value)


@pytest.mark.parametrize("alg", ALGS)
def test_the_demo_issuer_key_lives_in_the_keystore_mode_0600(tmp_path: Path, alg: Algorithm) -> None:
    keystore = tmp_path / "keystore"
    created = ensure_demo_issuer_key(keystore, algorithm=alg)
    private = keystore / "tracker-issuer.jwt-issuer.key"
    public = keystore / "tracker-issuer.jwt-issuer.jwk.json"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o700
    assert "PRIVATE" not in public.read_text()
    # A second call reuses the key; the public file is what EXCHANGE_TRACKER_ISSUER_KEY takes.
    again = ensure_demo_issuer_key(keystore, algorithm=alg)
    assert again.kid == created.kid
    assert load_issuer_signing_key(keystore).kid == created.kid
    token = mint_token(again, ISSUER, PERSON, AUDIENCE, 60, now=NOW)
    assert TokenVerifier(ISSUER, load_issuer_keys(str(public)), AUDIENCE).verify(token, now=NOW).person_id == PERSON


def test_the_demo_issuer_key_file_is_refused_when_others_can_read_it(tmp_path: Path) -> None:
    ensure_demo_issuer_key(tmp_path)
    private = tmp_path / "tracker-issuer.jwt-issuer.key"
    os.chmod(private, 0o644)
    with pytest.raises(KeystoreError, match="chmod 600"):
        load_issuer_signing_key(tmp_path)
    with pytest.raises(KeystoreError, match="no issuer key file"):
        load_issuer_signing_key(tmp_path, "other-issuer")
    with pytest.raises(KeystoreError, match="not a slug"):
        ensure_demo_issuer_key(tmp_path, "../escape")
    os.chmod(private, 0o600)
    private.write_text("not a key\n")
    with pytest.raises(KeystoreError, match="not an issuer key"):
        load_issuer_signing_key(tmp_path)


def test_citizen_is_a_plain_value() -> None:
    citizen = Citizen("p", "t" * 32, NOW, ISSUER)
    assert citizen.key_id is None
    assert "'p'" not in repr(citizen)


def test_an_es256_signature_negated_to_its_twin_keeps_the_token_id() -> None:
    # ECDSA's (r, n - s) verifies too; the token id hashes the signed part only, so the twin is the same token.
    key = KEYS["ES256"]
    token = valid(key)
    signing_input, raw = token.rsplit(".", 1)
    sig = base64.urlsafe_b64decode(raw + "==")
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    twin_s = order - int.from_bytes(sig[32:], "big")
    twin = f"{signing_input}.{b64(sig[:32] + twin_s.to_bytes(32, 'big'))}"
    assert twin != token
    assert verifier(key).verify(twin, now=NOW).token_id == verifier(key).verify(token, now=NOW).token_id


# --- the Authorization header ----------------------------------------------------------------------------------------


def test_bearer_token_takes_the_token_out_of_the_header(key: IssuerSigningKey) -> None:
    token = valid(key)
    for header in (f"Bearer {token}", f"bearer {token}", f"BEARER  {token}", f"  Bearer {token}\t"):
        assert bearer_token(header) == token
    assert bearer_token("Bearer abc+/~==") == "abc+/~=="


@pytest.mark.parametrize("header", [None, "", "   "])
def test_no_bearer_token_is_a_missing_token(header: str | None) -> None:
    with pytest.raises(MissingTokenError):
        bearer_token(header)


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearertoken", "Bearer a b", "Bearer a=b", "Bearer é",
     "Token abc", "Bearer " + "a" * (MAX_TOKEN_BYTES + 100)],
)
def test_a_malformed_authorization_header_is_refused_without_repeating_it(header: str) -> None:
    with pytest.raises(MalformedTokenError) as caught:
        bearer_token(header)
    assert str(caught.value) in {"the Authorization header is not 'Bearer <token>'", "token is longer than 8192 bytes"}


def test_a_missing_public_jwk_beside_the_demo_key_is_written_again(tmp_path: Path) -> None:
    created = ensure_demo_issuer_key(tmp_path)
    public = tmp_path / "tracker-issuer.jwt-issuer.jwk.json"
    public.unlink()
    assert ensure_demo_issuer_key(tmp_path).kid == created.kid
    assert load_issuer_keys(public)[0].kid == created.kid
