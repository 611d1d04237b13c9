"""The HTTP sink against a real local HTTP server that answers scripted statuses: the request it sends, what each
answer does, retries with one Idempotency-Key, dead letters, timeouts, TLS, and the token kept out of sight."""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import socket
import ssl
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr, ValidationError
from structlog.testing import capture_logs

from connectors.http import EndpointRefusedError, WebhookSink, WebhookSinkConfig, build_sink, load_sink_config
from connectors.kinds import kind
from connectors.sdk import Backpressure, BadRecord, ConnectorConfigError, Retryable, SinkRecord, SourceContext
from connectors.sdk.jsonrecord import record_from_json
from connectors.sdk.testing import SinkConformance
from exchange.errors import ConfigError
from exchange.schemas import Catalogue
from exchange.schemas.samples import sample_record
from tests.integration.test_http_sink import Answer, Endpoint

TOKEN = "tcb-intake-token-6f1c0e9a2b7d4c3e"  # noqa: S105 - a test token; the tests check it never leaks
TYPE = "population.address-changed"


_MADE: list[WebhookSink] = []


@pytest.fixture(autouse=True)
def _close_sinks() -> Iterator[None]:
    yield
    while _MADE:
        _MADE.pop().close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    served = Endpoint()
    yield served
    served.close()


def make_config(url: str, **settings: Any) -> WebhookSinkConfig:
    values = {"name": "tcb-http", "recipient": "tax-board", "url": url, "token": TOKEN, "backoff_s": 0.01,
              "timeout_s": 5.0, **settings}
    return WebhookSinkConfig.model_validate(values)


def opened(config: WebhookSinkConfig) -> WebhookSink:
    sink = build_sink(config)
    _MADE.append(sink)
    sink.open(SourceContext(config.name, config.recipient))
    return sink


def deliveries(n: int, subjects: int = 2) -> list[SinkRecord]:
    rng = random.Random(n)
    start = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    return [SinkRecord(f"0190b000-0000-7000-8000-{i:012d}", "agr-007", TYPE, sample_record(TYPE, rng),
                       f"{i % subjects:032x}", start + timedelta(minutes=i), "population-registry")
            for i in range(n)]


def key(record: SinkRecord) -> str:
    return f"{record.event_id}:{record.agreement_id}"


def drive(sink: WebhookSink, batch: Sequence[SinkRecord]) -> tuple[list[tuple[SinkRecord, str]], int]:
    """What the sink runtime does with a batch, without Kafka or its waits: BadRecord drops the record it names,
    Retryable and Backpressure call again with the same rest. The dead letters, and how many retries."""
    dead, retries, pending = [], 0, list(batch)
    for _ in range(40):
        try:
            sink.write(pending)
        except BadRecord as bad:
            if bad.record not in pending:
                raise AssertionError(f"BadRecord names no record of the batch: {bad.reason}") from bad
            dead.append((bad.record, bad.reason))
            pending.remove(bad.record)
        except (Backpressure, Retryable):
            retries += 1
        else:
            return dead, retries
    raise AssertionError("not written after 40 calls")


# -- the request --------------------------------------------------------------------------------------------


def test_each_delivery_is_posted_in_order_as_json_with_its_headers(endpoint: Endpoint) -> None:
    records = deliveries(3)
    opened(make_config(endpoint.url)).write(records)
    assert [r.key for r in endpoint.received] == [key(r) for r in records]
    assert len({r.peer for r in endpoint.received}) == 1  # one kept-alive connection
    first = endpoint.received[0]
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert first.headers["Content-Type"] == "application/json"
    body = json.loads(first.body)
    assert body == {"event_id": records[0].event_id, "agreement_id": "agr-007", "record_type": TYPE,
                    "event_time": "2026-03-02T08:30:00Z", "source": "population-registry",
                    "subject": records[0].subject, "fields": {**records[0].fields,
                                                              "moved_on": records[0].fields["moved_on"].isoformat()}}


def test_fields_have_the_json_forms_the_webhook_source_reads(endpoint: Endpoint, repo_root: Path) -> None:
    (plain,) = deliveries(1)
    moment = datetime(2026, 11, 2, 14, 30, 0, 250, tzinfo=timezone(timedelta(hours=2)))
    odd = SinkRecord("e-2", "agr-1", "test.kinds", {"when": moment, "on": date(2026, 1, 31), "raw": b"\x00\xff",
                                                    "list": [date(2025, 5, 1), None, 1.5, True],
                                                    "map": {"a": b"z"}}, "s", moment, "src")
    opened(make_config(endpoint.url)).write([plain, odd])
    schema = Catalogue.load(repo_root / "schemas").current(TYPE)
    values, problems = record_from_json(schema, json.loads(endpoint.stored[key(plain)])["fields"])
    assert (values, problems) == (plain.fields, [])  # the webhook source reads back exactly what was sent
    assert json.loads(endpoint.stored[key(odd)])["fields"] == {
        "when": "2026-11-02T12:30:00.000250Z", "on": "2026-01-31", "raw": base64.b64encode(b"\x00\xff").decode(),
        "list": ["2025-05-01", None, 1.5, True], "map": {"a": "eg=="}}
    bad = SinkRecord("e-3", "agr-1", TYPE, {"amount": float("nan")}, "s", moment, "src")
    with pytest.raises(BadRecord, match="no JSON form: field amount: not a finite number") as info:
        opened(make_config(endpoint.url)).write([bad])
    assert (info.value.record, len(endpoint.received)) == (bad, 2)  # refused before anything is sent


# -- answers --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 409])
def test_2xx_and_409_are_written(endpoint: Endpoint, status: int) -> None:
    records = deliveries(2)
    endpoint.script[key(records[0])] = [Answer(status, body=b"" if status == 204 else b"{}")]
    opened(make_config(endpoint.url)).write(records)
    assert [r.key for r in endpoint.received] == [key(r) for r in records]


@pytest.mark.parametrize(("status", "headers"), [(500, {}), (502, {}), (503, {}), (504, {}), (408, {}), (425, {}),
                                                 (429, {}), (503, {"Retry-After": "soon"})])
def test_a_passing_failure_is_retried_with_the_same_key_and_body(endpoint: Endpoint, status: int,
                                                                 headers: dict[str, str]) -> None:
    records = deliveries(3)
    endpoint.script[key(records[1])] = [Answer(status, headers)]
    sink = opened(make_config(endpoint.url))
    with pytest.raises(Retryable, match=f"answered {status}"):
        sink.write(records)
    sink.write(records)  # the runtime calls again with the same batch
    assert [r.key for r in endpoint.received] == [key(records[0]), key(records[1]), key(records[1]),
                                                  key(records[2])]  # the written one is not sent again
    first, second = endpoint.requests(key(records[1]))
    assert (first.body, first.headers["Idempotency-Key"]) == (second.body, second.headers["Idempotency-Key"])
    assert list(endpoint.stored) == [key(r) for r in records]


def test_the_sink_keeps_its_own_doubling_backoff(endpoint: Endpoint) -> None:
    (record,) = deliveries(1)
    endpoint.script[key(record)] = [Answer(503), Answer(503)]
    sink = opened(make_config(endpoint.url, backoff_s=0.2))
    for _ in range(2):
        with pytest.raises(Retryable):
            sink.write([record])
    sink.write([record])  # called back at once: the sink waits its backoff itself
    times = [r.at for r in endpoint.requests(key(record))]
    assert times[1] - times[0] >= 0.2
    assert times[2] - times[1] >= 0.4


@pytest.mark.parametrize(("status", "retry_after", "seconds"), [  # 409 with a Retry-After: a key in progress
    (429, "7", 7.0), (503, "120", 120.0), (409, "2", 2.0), (429, "100000", 300.0), (503, None, 90.0)])
def test_retry_after_on_429_and_503_is_backpressure(endpoint: Endpoint, status: int, retry_after: str | None,
                                                    seconds: float) -> None:
    (record,) = deliveries(1)
    # None: an HTTP-date
    when = retry_after or format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)
    endpoint.script[key(record)] = [Answer(status, {"Retry-After": when})]
    with pytest.raises(Backpressure) as info:
        opened(make_config(endpoint.url)).write([record])
    assert seconds - 5 <= info.value.retry_after <= seconds


def test_after_max_attempts_a_record_is_dead_lettered_and_the_rest_goes_on(endpoint: Endpoint) -> None:
    records = deliveries(4)
    endpoint.script[key(records[1])] = [Answer(503)] * 10
    dead, retries = drive(opened(make_config(endpoint.url, max_attempts=3)), records)
    assert dead == [(records[1], "the endpoint answered 503 Service Unavailable; given up after 3 attempt(s)")]
    assert retries == 2
    assert len(endpoint.requests(key(records[1]))) == 3
    assert list(endpoint.stored) == [key(records[i]) for i in (0, 2, 3)]


@pytest.mark.parametrize(("status", "phrase"), [(400, "Bad Request"), (404, "Not Found"), (410, "Gone"),
                                                (413, "Request Entity Too Large"), (422, "Unprocessable Entity")])
def test_a_permanent_4xx_is_a_bad_record_at_once(endpoint: Endpoint, status: int, phrase: str) -> None:
    records = deliveries(3)
    street = records[1].fields["street_address"]
    endpoint.script[key(records[1])] = [Answer(status, body=json.dumps({"bad": street}).encode())]
    dead, _ = drive(opened(make_config(endpoint.url)), records)
    assert dead == [(records[1], f"the endpoint answered {status} {phrase}")]  # nothing of the answer's body
    assert len(endpoint.requests(key(records[1]))) == 1
    assert list(endpoint.stored) == [key(records[0]), key(records[2])]


@pytest.mark.parametrize(("status", "message"), [(401, "refuses this sink's credentials"), (403, "credentials"),
                                                 (308, "redirects are not followed")])
def test_a_refused_token_or_a_redirect_stops_the_connector_with_a_clear_error(endpoint: Endpoint, status: int,
                                                                              message: str) -> None:
    records = deliveries(2)
    endpoint.script[key(records[0])] = [Answer(status, {"Location": "https://elsewhere.example/"})]
    with capture_logs() as logs, pytest.raises(EndpointRefusedError, match=message):
        opened(make_config(endpoint.url)).write(records)  # not a BadRecord: every record would be one
    assert [line["log_level"] for line in logs if line.get("status") == status] == ["error"]
    assert len(endpoint.received) == 1  # neither the next record nor the redirect's target is tried


def test_no_answer_within_the_timeout_is_retryable(endpoint: Endpoint) -> None:
    (record,) = deliveries(1)
    endpoint.script[key(record)] = [Answer(hold=True)]
    sink = opened(make_config(endpoint.url, timeout_s=0.3))
    with pytest.raises(Retryable, match=r"no answer within 0.3 s"):
        sink.write([record])
    sink.write([record])
    assert [r.headers["Idempotency-Key"] for r in endpoint.requests(key(record))] == [key(record)] * 2


def test_an_endpoint_that_cannot_be_reached_is_retryable_and_not_held_against_the_record() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    sink = opened(make_config(f"http://127.0.0.1:{port}/", max_attempts=2))
    for _ in range(4):
        with pytest.raises(Retryable, match="cannot be reached"):
            sink.write(deliveries(1))


def test_a_kept_alive_connection_the_endpoint_closed_is_replaced(endpoint: Endpoint) -> None:
    records = deliveries(2)
    endpoint.script[key(records[0])] = [Answer(drop=True)]
    sink = opened(make_config(endpoint.url))
    sink.write(records[:1])
    sink.write(records[1:])
    assert [r.key for r in endpoint.received] == [key(r) for r in records]
    assert list(endpoint.stored) == [key(r) for r in records]


# -- the token ------------------------------------------------------------------------------------------------


def test_the_token_never_appears_in_logs_errors_or_reprs(endpoint: Endpoint, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    records = deliveries(4)
    endpoint.script.update({key(records[0]): [Answer(503)], key(records[1]): [Answer(hold=True)],
                            key(records[2]): [Answer(422)], key(records[3]): [Answer(401)]})
    shown: list[str] = []
    with capture_logs() as logs:
        for config in (make_config(endpoint.url, timeout_s=0.3),
                       make_config(endpoint.url, token=None, token_file=token_file)):
            sink = opened(config)
            shown += [repr(config), str(config), config.model_dump_json(), repr(sink), repr(config.model_dump())]
            try:
                drive(sink, records)
            except EndpointRefusedError as exc:
                shown.append(str(exc))
            endpoint.script[key(records[3])] = [Answer(401)]
    shown += [repr(line) for line in logs]
    for broken in ({"token_file": token_file}, {"max_attempts": 0}):  # a config error does not repeat its input
        with pytest.raises(ValidationError) as info:
            make_config(endpoint.url, **broken)
        shown.append(str(info.value))
    assert endpoint.received[0].headers["Authorization"] == f"Bearer {TOKEN}"  # it is sent, and only there
    assert any("401" in text for text in shown)
    assert not [text for text in shown if TOKEN in text]


# -- TLS ------------------------------------------------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, and its key, as PEM files."""
    key, now = ec.generate_private_key(ec.SECP256R1()), datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    paths = directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_https_verifies_the_endpoint_with_ca_file(tmp_path: Path) -> None:
    cert, private = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, private)
    served = Endpoint(tls=context)
    try:
        records = deliveries(2)
        opened(make_config(served.url, ca_file=cert)).write(records)
        assert list(served.stored) == [key(r) for r in records]
        with pytest.raises(EndpointRefusedError, match="does not verify"):
            opened(make_config(served.url)).write(records)  # the system's CAs do not know this one
    finally:
        served.close()


# -- config ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "message"), [
    ({"url": "http://intake.tcb.example/x"}, "only for 127.0.0.1 or localhost"), ({"url": "ftp://h/"}, "https://"),
    ({"url": "https://user:pw@intake.tcb.example/"}, "must not carry credentials"), ({"url": "https:///x"}, "no host"),
    ({"url": "https://intake.tcb.example:99999/"}, "Port out of range"), ({"url": "https://h/a b"}, "spaces"),
    ({"url": "https://h/straße"}, "must be ASCII"),
    ({"token": None}, "exactly one of token"), ({"token_file": "/run/t"}, "exactly one of token"),
    ({"token": "two words"}, "visible ASCII"), ({"max_attempts": 9}, "max_attempts")])
def test_a_config_that_is_not_https_or_loopback_or_has_no_one_token_is_refused(settings: dict[str, Any],
                                                                               message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_config(**{"url": "https://intake.tcb.example/", **settings})


def test_plain_http_to_loopback_is_allowed_with_a_warning_and_opens_for_its_recipient_only() -> None:
    with capture_logs() as logs:
        sink = build_sink(make_config("http://localhost:8080/intake"))
    assert [line["log_level"] for line in logs if "plain HTTP" in line["event"]] == ["warning"]
    with pytest.raises(ConfigError, match="deliveries of tax-board, not of health-insurance"):
        sink.open(SourceContext("tcb-http", "health-insurance"))


def test_a_token_file_is_read_when_the_sink_is_built(tmp_path: Path) -> None:
    path = tmp_path / "token"
    config = make_config("https://intake.tcb.example/", token=None, token_file=path)
    with pytest.raises(ConfigError, match="cannot be read"):
        build_sink(config)
    path.write_text("not a token\n")
    with pytest.raises(ConfigError, match="visible ASCII") as info:
        build_sink(config)
    assert "not a token" not in str(info.value)


def test_a_config_file_reads_with_its_defaults_and_its_kind(tmp_path: Path) -> None:
    path = tmp_path / "sink.yaml"
    path.write_text("name: tcb-http\nkind: http-sink\nrecipient: tax-board\nurl: https://intake.tcb.example/d\n"
                    "token_file: /run/secrets/tcb\n")
    config = load_sink_config(path)
    assert (config.max_attempts, config.backoff_s, config.timeout_s, config.ca_file) == (5, 0.5, 10.0, None)
    assert (kind("http-sink").model(), kind("http-sink").build()) == (WebhookSinkConfig, build_sink)
    path.write_text(path.read_text() + "max_attempts: 0\n")
    with pytest.raises(ConnectorConfigError, match=r"sink.yaml:6: max_attempts"):
        load_sink_config(path)


# -- the conformance kit --------------------------------------------------------------------------------------


class TestHttpSinkConformance(SinkConformance):
    """The kit's promises, kept by the endpoint's Idempotency-Key: what the endpoint stored, in its order."""

    @pytest.fixture(autouse=True)
    def _endpoint(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def make(self) -> WebhookSink:
        sink = build_sink(make_config(self.endpoint.url, token=SecretStr(TOKEN)))
        _MADE.append(sink)
        return sink

    def read(self) -> Sequence[tuple[str, str]]:
        return [(str(body["event_id"]), str(body["agreement_id"]))
                for body in map(json.loads, self.endpoint.stored.values())]
