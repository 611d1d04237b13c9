"""The tracker's web service over a real SQLite index and real tiles: what a citizen sees, what they may not, and
that every row's proof checks offline."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from exchange.audit.proof import check_proof
from exchange.tracker.service import COOKIE, TrackerConfig, make_app

from .support import AGENCIES, ISSUER_KEY, NOW, PSEUDONYMS, START, VERIFIER, Log, decision, token

ALICE, BOB = "19800101-1234", "19900202-5678"


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    made = Log.create(tmp_path)
    yield made
    made.store.close()


def _client(log: Log, clock: Clock | None = None, **config: object) -> TestClient:
    settings = TrackerConfig(keys=log.keys, tiles_dir=log.directory / "tiles", **config)  # type: ignore[arg-type]
    app = make_app(log.store, VERIFIER, PSEUDONYMS, AGENCIES, settings, clock=clock or Clock(NOW))
    return TestClient(app, base_url="http://tracker.test")


def _bearer(person: str, at: float = NOW) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(person, now=at)}"}


def _story(log: Log) -> dict[str, list[int]]:
    """Alice: three deliveries, a denial, and an investigation hidden for 180 days; Bob: one delivery."""
    at = [START + timedelta(days=d) for d in range(6)]
    alice = log.add([decision(ALICE, at[0]), decision(ALICE, at[1], recipient="statistics-office",
                                                      agreement="sto-person-registered-statistics",
                                                      purpose="official-statistics"),
                     decision(ALICE, at[2], outcome="DENY", agreement=None)])
    bob = log.add([decision(BOB, at[3])])
    hidden = log.add([decision(ALICE, at[4], recipient="police-board", agreement="pbb-address-changed-law-enforcement",
                               purpose="law-enforcement", record_type="population.address-changed")])
    last = log.add([decision(ALICE, at[5])])
    log.checkpoint()
    return {"alice": [alice[0], alice[1], last[0]], "denied": [alice[2]], "bob": bob, "hidden": hidden}


def test_the_api_lists_exactly_the_subjects_permits_newest_first(log: Log) -> None:
    story = _story(log)
    with _client(log) as client:
        answer = client.get("/api/v1/usages", headers=_bearer(ALICE))
    assert answer.status_code == 200
    body = answer.json()
    assert body["total"] == 3
    assert [item["log_index"] for item in body["items"]] == sorted(story["alice"], reverse=True)
    first = body["items"][-1]
    assert first["receiver_code"] == "tax-board"
    assert first["receiver_name"] == AGENCIES["tax-board"]
    assert first["fields"] == ["person_id", "surname"]
    assert first["legal_basis"] == "statute:Tax Act §1"
    assert first["proof"] == f"/api/v1/usages/{first['log_index']}/proof"
    assert ALICE not in answer.text


def test_a_hidden_row_appears_exactly_at_its_time_and_nothing_shows_it_before(log: Log) -> None:
    """Before the day, the count, the pages, the items and the proof link are those of a log without it."""
    story = _story(log)
    hidden_at = START + timedelta(days=4)
    due = (hidden_at + timedelta(days=180)).timestamp()
    clock = Clock(due - 0.000_001 * 2)
    alice = _bearer(ALICE, clock.at)
    with _client(log, clock) as client:
        before = client.get("/api/v1/usages", headers=alice, params={"limit": 2, "offset": 1}).json()
        page = client.get("/", headers=alice)
        proof = client.get(f"/api/v1/usages/{story['hidden'][0]}/proof", headers=alice)
        missing = client.get("/api/v1/usages/999/proof", headers=alice)
        clock.at = due
        after = client.get("/api/v1/usages", headers=_bearer(ALICE, due), params={"limit": 2, "offset": 1}).json()
    assert before["total"] == 3
    assert [i["log_index"] for i in before["items"]] == sorted(story["alice"], reverse=True)[1:3]
    assert "law-enforcement" not in page.text
    assert page.text.count("<tr><td") == 3
    assert (proof.status_code, missing.status_code) == (404, 404)
    assert proof.json()["error"] == missing.json()["error"]
    assert after["total"] == 4
    assert [i["log_index"] for i in after["items"]] == [story["hidden"][0], story["alice"][1]]


def test_another_persons_rows_are_refused(log: Log) -> None:
    story = _story(log)
    mine = PSEUDONYMS.subject(ALICE)
    theirs = PSEUDONYMS.subject(BOB)
    with _client(log) as client:
        own = client.get(f"/api/v1/subjects/{mine}/usages", headers=_bearer(ALICE))
        other = client.get(f"/api/v1/subjects/{theirs}/usages", headers=_bearer(ALICE))
        proof = client.get(f"/api/v1/usages/{story['bob'][0]}/proof", headers=_bearer(ALICE))
        page = client.get(f"/proofs/{story['bob'][0]}", headers=_bearer(ALICE))
    assert own.status_code == 200
    assert own.json()["total"] == 3
    assert other.status_code == 403
    assert other.json()["error"] == "forbidden"
    assert proof.status_code == 403
    assert page.status_code == 403


@pytest.mark.parametrize("forge", ["signature", "expired", "issuer", "audience", "none", "garbage"])
def test_a_forged_token_gets_401(log: Log, forge: str) -> None:
    _story(log)
    good = token(ALICE)
    forged = {
        "signature": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "expired": token(ALICE, exp=int(NOW) - 3600),
        "issuer": token(ALICE, iss="https://evil.test"),
        "audience": token(ALICE, aud="someone-else"),
        "none": "eyJhbGciOiJub25lIn0.eyJwZXJzb25faWQiOiIxIn0.",
        "garbage": "not a token",
    }[forge]
    with _client(log) as client:
        api = client.get("/api/v1/usages", headers={"Authorization": f"Bearer {forged}"})
        page = client.get("/", headers={"Authorization": f"Bearer {forged}"})
    assert api.status_code == 401
    assert api.headers["www-authenticate"].startswith("Bearer")
    assert api.json()["error"] == "unauthorized"
    assert page.status_code == 401
    assert 'name="token"' in page.text
    assert ALICE not in api.text + page.text


@pytest.mark.parametrize(("params", "word"), [
    ({"colour": "red"}, "unknown parameter"), ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"),
    ({"offset": "-1"}, "offset"), ({"limit": "1e3"}, "limit"), ({"period_start": "yesterday"}, "period_start"),
    ({"period_start": "2026-02-30"}, "period_start"), ({"period_start": "2026-03-02T00:00:00"}, "zone"),
    ({"period_start": "2026-03-05", "period_end": "2026-03-01"}, "ends before"), ({"agency": "nobody"}, "agency"),
    ({"agency": "../etc"}, "agency"),
])
def test_bad_input_is_a_clear_400(log: Log, params: dict[str, str], word: str) -> None:
    _story(log)
    with _client(log) as client:
        answer = client.get("/api/v1/usages", headers=_bearer(ALICE), params=params)
    assert answer.status_code == 400
    assert word in answer.json()["message"]


def test_period_and_agency_filters(log: Log) -> None:
    story = _story(log)
    with _client(log) as client:
        period = client.get("/api/v1/usages", headers=_bearer(ALICE),
                            params={"period_start": "2026-03-02", "period_end": "2026-03-03T00:00:00Z"}).json()
        agency = client.get("/api/v1/usages", headers=_bearer(ALICE), params={"agency": "statistics-office"}).json()
        page = client.get("/", headers=_bearer(ALICE), params={"from": "2026-03-01", "to": "2026-03-01"})
    assert [i["log_index"] for i in period["items"]] == [story["alice"][1]]
    assert [i["log_index"] for i in agency["items"]] == [story["alice"][1]]
    assert page.status_code == 200
    assert page.text.count("<tr><td") == 1


def test_every_rows_proof_checks_offline_against_the_log_key(log: Log) -> None:
    story = _story(log)
    with _client(log) as client:
        for index in story["alice"]:
            proof = client.get(f"/api/v1/usages/{index}/proof", headers=_bearer(ALICE))
            entry = client.get(f"/api/v1/usages/{index}/entry", headers=_bearer(ALICE))
            assert proof.status_code == entry.status_code == 200
            checked = check_proof(proof.text, entry.content, [log.log_key], [], origin=log.keys.origin)
            assert checked.index == index
            assert checked.entry_checked
            assert entry.content == log.entries[index]


def test_a_row_not_yet_in_a_checkpoint_says_so(log: Log) -> None:
    _story(log)
    late = log.add([decision(ALICE, START + timedelta(days=7))])[0]
    with _client(log) as client:
        items = client.get("/api/v1/usages", headers=_bearer(ALICE)).json()["items"]
        proof = client.get(f"/api/v1/usages/{late}/proof", headers=_bearer(ALICE))
        page = client.get("/", headers=_bearer(ALICE))
    assert items[0]["log_index"] == late
    assert items[0]["proof"] is None
    assert proof.status_code == 404
    assert proof.json()["error"] == "not_yet_proved"
    assert "proof after the next checkpoint" in page.text


def test_signing_in_with_the_form_keeps_the_token_in_a_strict_cookie(log: Log) -> None:
    story = _story(log)
    with _client(log) as client:
        start = client.get("/")
        signed = client.post("/session", data={"token": token(ALICE)}, follow_redirects=False)
        cookie = signed.headers["set-cookie"]
        page = client.get("/")
        proof_page = client.get(f"/proofs/{story['alice'][0]}")
        proof_file = client.get(f"/proofs/{story['alice'][0]}/proof.txt")
        out = client.post("/session/end", follow_redirects=False)
        after = client.get("/")
    assert start.status_code == 200
    assert '<html lang="en">' in start.text
    assert '<label for="token">' in start.text
    assert signed.status_code == 303
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie.replace("samesite", "SameSite")
    assert page.status_code == 200
    assert '<th scope="col">Agency</th>' in page.text
    assert page.text.count("<tr><td") == 3
    assert "exchange audit check-proof" in proof_page.text
    assert proof_file.text.startswith("c2sp.org/tlog-proof@v1\n")
    assert out.status_code == 303
    assert 'name="token"' in after.text


def test_a_bad_form_token_is_refused_on_the_form(log: Log) -> None:
    with _client(log) as client:
        answer = client.post("/session", data={"token": "nonsense"})
        wrong_type = client.post("/session", content=b'{"token": "x"}', headers={"Content-Type": "application/json"})
        huge = client.post("/session", content=b"token=" + b"a" * 20000,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 401
    assert "cannot be used" in answer.text
    assert wrong_type.status_code == 415
    assert huge.status_code == 413


def test_security_headers_on_every_response(log: Log) -> None:
    _story(log)
    with _client(log) as client:
        answers = [client.get("/"), client.get("/api/v1/usages", headers=_bearer(ALICE)), client.get("/nowhere"),
                   client.get("/static/tracker.css"), client.delete("/")]
    for answer in answers:
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
    assert [a.status_code for a in answers] == [200, 200, 404, 200, 405]


def test_requests_are_limited_per_token(log: Log) -> None:
    _story(log)
    alice, bob = _bearer(ALICE), _bearer(BOB)
    with _client(log, rate=0.001, burst=3) as client:
        codes = [client.get("/api/v1/usages", headers=alice).status_code for _ in range(4)]
        other = client.get("/api/v1/usages", headers=bob)
        limited = client.get("/api/v1/usages", headers=alice)
    assert codes == [200, 200, 200, 429]
    assert other.status_code == 200
    assert int(limited.headers["retry-after"]) >= 1


def test_no_person_id_in_urls_logs_or_answers(log: Log) -> None:
    story = _story(log)
    with structlog.testing.capture_logs() as logs, _client(log) as client:
        texts = [client.get("/", headers=_bearer(ALICE)).text,
                 client.post("/session", data={"token": token(ALICE)}, follow_redirects=False).text,
                 client.get(f"/proofs/{story['alice'][0]}", headers=_bearer(ALICE)).text,
                 client.get("/api/v1/usages", headers=_bearer(ALICE)).text]
    hrefs = [h for t in texts for h in re.findall(r'href="([^"]*)"', t)]
    assert hrefs
    for text in [*texts, *hrefs, repr(logs)]:
        assert ALICE not in text


def test_a_failing_store_is_a_500_and_the_service_goes_on(log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    _story(log)
    with _client(log) as client:
        broken = {"on": True}
        real = log.store.page

        def page(*args: object, **kwargs: object) -> object:
            if broken["on"]:
                raise RuntimeError("disk on fire")
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(log.store, "page", page)
        failed = client.get("/api/v1/usages", headers=_bearer(ALICE))
        broken["on"] = False
        recovered = client.get("/api/v1/usages", headers=_bearer(ALICE))
    assert failed.status_code == 500
    assert "disk on fire" not in failed.text
    assert recovered.status_code == 200


def test_token_key_of_the_issuer_is_the_one_configured(log: Log) -> None:
    """A token signed by another key of the same algorithm is refused even with the right claims."""
    _story(log)
    other = type(ISSUER_KEY).generate("EdDSA")
    from exchange.tracker.tokens import mint_token  # noqa: PLC0415 - only this test mints with another key

    forged = mint_token(other, "https://id.test", ALICE, "exchange-tracker", 3600, now=NOW)
    with _client(log) as client:
        assert client.get("/api/v1/usages", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_requests_are_counted_by_route_template(log: Log) -> None:
    """Metrics name routes with their numbers replaced, so no entry index or reference becomes a label."""
    from exchange.metrics import TRACKER_REQUESTS  # noqa: PLC0415 - only this test reads the metrics

    story = _story(log)

    def count(route: str, status: str) -> float:
        return float(TRACKER_REQUESTS.labels(route, status)._value.get())  # the client keeps no public getter

    before = (count("/api/v1/usages", "200"), count("/api/v1/usages/{index}/proof", "403"))
    with _client(log) as client:
        client.get("/api/v1/usages", headers=_bearer(ALICE))
        client.get(f"/api/v1/usages/{story['bob'][0]}/proof", headers=_bearer(ALICE))
    after = (count("/api/v1/usages", "200"), count("/api/v1/usages/{index}/proof", "403"))
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(["period_start", "period_end", "offset", "limit", "agency", "x"]),
                              st.text(max_size=40), max_size=4),
       path=st.text(alphabet="abc/0123456789.%-_", max_size=30))
def test_no_query_or_path_makes_a_500(log: Log, params: dict[str, str], path: str) -> None:
    """Whatever a caller sends, the answer is a clear 2xx or 4xx, never a server error."""
    with _client(log) as client:
        listed = client.get("/api/v1/usages", headers=_bearer(ALICE), params=params)
        other = client.get(f"/api/v1/usages/{path}", headers=_bearer(ALICE))
        page = client.get("/", headers=_bearer(ALICE), params={"from" if k == "period_start" else k: v
                                                                 for k, v in params.items()})
    assert listed.status_code in {200, 400}
    assert other.status_code in {200, 400, 403, 404, 503}
    assert page.status_code in {200, 400}


def test_a_signed_out_link_leads_to_the_sign_in_form(log: Log) -> None:
    """After the session cookie expires, the list's own links (a page, a filter) show the sign-in form."""
    with _client(log) as client:
        answer = client.get("/", params={"page": "2", "agency": "tax-board"})
    assert answer.status_code == 200
    assert 'name="token"' in answer.text
