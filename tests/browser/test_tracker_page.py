"""The citizen data tracker in a real headless Chromium: signing in with a token, the list of accesses (newest
first, filtered, paged), a row's proof page and its files checked offline, a phone-sized window and a browser with
JavaScript off. The screenshots of docs/images/ (tracker-accesses.png, tracker-proof.png, tracker-phone.png) are
taken here, from a realistic history that a fixed log key makes the same on every run."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait
from starlette.applications import Starlette

from exchange.audit.proof import check_proof
from exchange.audit.tile_writer import TileWriter
from exchange.crypto.checkpoint import Checkpoint, sign_checkpoint
from exchange.crypto.keys import Signer
from exchange.crypto.merkle import CompactTree, leaf_hash
from exchange.crypto.note import Verifier
from exchange.tracker.pages import KeysShown
from exchange.tracker.service import COOKIE, TrackerConfig, make_app
from tests.browser.conftest import LiveServer
from tests.unit.tracker.support import (
    AGENCIES,
    BUNDLE,
    NOW,
    ORIGIN,
    PSEUDONYMS,
    ROOT,
    START,
    VERIFIER,
    Log,
    decision,
    token,
)

IMAGES = ROOT / "docs" / "images"
ALICE, BOB = "38001085718", "49002124277"
PAGE_SIZE = 10
WAIT = 30.0
DESKTOP, PHONE = (1280, 900), (390, 844)
CONSENT_REF = "01959c3e-7a10-7c4e-9b1d-3f6a2c8e5d41@1"
AGREEMENTS = {a.id: a for a in BUNDLE.policy_set.agreements}

# A fixed log key, so that the proof page (which shows it) and its screenshot are the same on every run.
LOG_SIGNER = Signer("exchange-audit", Ed25519PrivateKey.from_private_bytes(
    hashlib.sha256(b"the tracker's browser test: the access log's key").digest()))


class FixedKeyLog(Log):
    """The unit tests' log world, its checkpoint signed with :data:`LOG_SIGNER`."""

    def checkpoint(self) -> int:
        writer = TileWriter(self.directory / "tiles", fsync=False)
        if writer.size < len(self.entries):
            writer.resume(writer.size).append(self.entries[writer.size:])
        tree = CompactTree()
        for value in self.entries:
            tree.append(leaf_hash(value))
        writer.write_checkpoint(sign_checkpoint(Checkpoint(ORIGIN, len(self.entries), tree.root()), [LOG_SIGNER]))
        return len(self.entries)

    @property
    def keys(self) -> KeysShown:
        return KeysShown(ORIGIN, self.log_key.key_string())

    @property
    def log_key(self) -> Verifier:
        return Verifier(LOG_SIGNER.name, LOG_SIGNER.public_key)


def delivery(person: str, at: datetime, agreement_id: str, *, consent_ref: str | None = None) -> dict[str, Any]:
    """A PERMIT under ``agreement_id``, with what the agreement releases, for what and on what basis."""
    agreement = AGREEMENTS[agreement_id]
    record = decision(person, at, recipient=agreement.recipient, agreement=agreement.id, purpose=agreement.purpose,
                      fields=agreement.fields, legal_basis=agreement.legal_basis.describe(),
                      record_type=agreement.record_type)
    record["consent_ref"] = consent_ref
    return record


@dataclass(frozen=True)
class Story:
    log: FixedKeyLog
    shown: list[int]
    """Alice's rows the tracker shows, newest first."""
    agency: dict[int, str]
    """Each shown row's recipient."""
    denied: int
    hidden: int
    others: list[int]
    """Bob's rows."""


@pytest.fixture
def story(tmp_path: Path) -> Iterator[Story]:
    """A month of Alice's data: she registers, applies for a housing allowance (refused until she consents), moves
    twice; among it Bob's rows, a refusal and a police lookup hidden from her for 180 days."""
    log = FixedKeyLog.create(tmp_path)

    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return START.replace(hour=0) + timedelta(days=day, hours=hour, minutes=minute)

    plan: list[tuple[str, dict[str, Any]]] = [
        ("shown", delivery(ALICE, at(0, 9, 12), "tcb-person-registered-tax")),
        ("shown", delivery(ALICE, at(0, 9, 13), "sto-person-registered-statistics")),
        ("shown", delivery(ALICE, at(0, 9, 14), "sib-person-registered-benefits")),
        ("other", delivery(BOB, at(1, 10, 5), "tcb-person-registered-tax")),
        ("denied", {**decision(ALICE, at(3, 14, 2), recipient="municipal-services", outcome="DENY",
                               agreement="aom-income-assessed-housing-allowance", purpose="housing-allowance",
                               legal_basis="consent", record_type="tax.income-assessed"),
                    "reason_codes": ["NO_CONSENT"]}),
        ("shown", delivery(ALICE, at(4, 11, 40), "aom-income-assessed-housing-allowance", consent_ref=CONSENT_REF)),
        ("shown", delivery(ALICE, at(4, 11, 41), "sib-income-assessed-benefits")),
        ("shown", delivery(ALICE, at(4, 11, 42), "sto-income-assessed-statistics")),
        ("shown", delivery(ALICE, at(8, 8, 30), "tcb-address-changed-tax")),
        ("shown", delivery(ALICE, at(8, 8, 31), "aom-address-changed-local-services")),
        ("shown", delivery(ALICE, at(8, 8, 32), "sto-address-changed-statistics")),
        ("hidden", delivery(ALICE, at(11, 16, 5), "pbb-address-changed-law-enforcement")),
        ("other", delivery(BOB, at(12, 9, 0), "aom-address-changed-local-services")),
        ("shown", delivery(ALICE, at(15, 13, 20), "sib-coverage-changed-benefits")),
        ("shown", delivery(ALICE, at(21, 7, 55), "tcb-address-changed-tax")),
        ("shown", delivery(ALICE, at(21, 7, 56), "aom-address-changed-local-services")),
        ("shown", delivery(ALICE, at(21, 7, 57), "sto-address-changed-statistics")),
        ("other", delivery(BOB, at(24, 15, 30), "sib-person-registered-benefits")),
        ("shown", delivery(ALICE, at(27, 10, 15), "aom-income-assessed-housing-allowance", consent_ref=CONSENT_REF)),
    ]
    indices = log.add([record for _, record in plan])
    log.checkpoint()
    kinds: dict[str, list[int]] = {}
    for index, (kind, _) in zip(indices, plan, strict=True):
        kinds.setdefault(kind, []).append(index)
    hidden_until = at(11, 16, 5) + timedelta(days=180)
    assert hidden_until.timestamp() > NOW, "the police lookup must still be hidden when the tests look"
    try:
        yield Story(log, shown=sorted(kinds["shown"], reverse=True),
                    agency={i: str(r["recipient"]) for i, (_, r) in zip(indices, plan, strict=True)},
                    denied=kinds["denied"][0], hidden=kinds["hidden"][0], others=kinds["other"])
    finally:
        log.store.close()


def _app(story: Story) -> Starlette:
    """The tracker at :data:`NOW`: a month after the first row, long before the hidden one is due."""
    config = TrackerConfig(keys=story.log.keys, tiles_dir=story.log.directory / "tiles", page_size=PAGE_SIZE)
    return make_app(story.log.store, VERIFIER, PSEUDONYMS, AGENCIES, config, clock=lambda: NOW)


# -- reading the page ---------------------------------------------------------------------------------------------


def _wait(driver: WebDriver, title: str) -> None:
    WebDriverWait(driver, WAIT).until(expected_conditions.title_contains(title))


def _rows(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, "main table tbody tr")


def _indices(driver: WebDriver) -> list[int]:
    """The log index of each row, from its proof link."""
    links = driver.find_elements(By.CSS_SELECTOR, "main table tbody tr td[data-label=Proof] a")
    return [int(str(link.get_attribute("href")).rsplit("/", 1)[1]) for link in links]


def _fits(driver: WebDriver) -> bool:
    """Whether the page is no wider than the window: nothing to scroll sideways to."""
    return bool(driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"))


def _sign_in(driver: WebDriver, base: str, person: str) -> None:
    driver.get(base + "/")
    _wait(driver, "Sign in")
    field = driver.find_element(By.ID, "token")
    assert field.tag_name == "textarea"
    field.send_keys(token(person))
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    _wait(driver, "Your data")


def _save(driver: WebDriver, name: str, *, height: int | None = None) -> Path:
    """A screenshot into docs/images: the whole page at the window's width, or its top ``height`` pixels (what a
    phone's screen shows), without scroll bars."""
    driver.execute_cdp_cmd("Emulation.setScrollbarsHidden", {"hidden": True})
    width, full = driver.execute_script("return [window.innerWidth, document.documentElement.scrollHeight]")
    clip = {"x": 0, "y": 0, "width": width, "height": height or full, "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                             "clip": clip})
    data = base64.b64decode(shot["data"])
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / name
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
    return path


# -- the tests ----------------------------------------------------------------------------------------------------


def test_a_citizen_signs_in_sees_their_accesses_and_checks_a_proof(
    chromium: WebDriver, live_server: LiveServer, story: Story
) -> None:
    base = live_server(_app(story))
    chromium.set_window_size(*DESKTOP)

    chromium.get(base + "/")
    _wait(chromium, "Sign in")
    assert chromium.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert chromium.find_element(By.CSS_SELECTOR, "label[for=token]").text == "Your sign-in token"
    _sign_in(chromium, base, ALICE)
    assert chromium.current_url == base + "/"
    cookie = chromium.get_cookie(COOKIE)
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"

    headers = [th.text for th in chromium.find_elements(By.CSS_SELECTOR, "main table thead th[scope=col]")]
    assert headers == ["When", "Agency", "What", "Details received", "Purpose", "Legal basis", "Proof"]
    caption = chromium.find_element(By.CSS_SELECTOR, "main table caption").text
    assert caption == f"{len(story.shown)} accesses, newest first (page 1 of 2)"
    assert len(_rows(chromium)) == PAGE_SIZE
    first_page = _indices(chromium)
    assert first_page == story.shown[:PAGE_SIZE]
    times = [t.get_attribute("datetime") for t in chromium.find_elements(By.CSS_SELECTOR, "tbody td time")]
    assert len(times) == PAGE_SIZE
    assert times == sorted(times, reverse=True)
    assert times[0] == "2026-03-28T10:15:00Z"
    assert chromium.find_element(By.CSS_SELECTOR, "tbody tr td[data-label=When]").text == "2026-03-28 10:15 UTC"
    listed = " ".join(row.text for row in _rows(chromium))
    assert "Police and Border Guard Board" not in listed
    assert "law-enforcement" not in listed
    consented = [row for row in _rows(chromium) if "housing-allowance" in row.text]
    assert consented
    assert consented[0].find_element(By.CSS_SELECTOR, "td[data-label='Legal basis']").text == (
        f"Your consent ({CONSENT_REF})")
    assert _fits(chromium)
    table_right, main_right = chromium.execute_script(
        "return [document.querySelector('main table'), document.querySelector('main')]"
        ".map(e => e.getBoundingClientRect().right)")
    assert table_right <= main_right  # the table fits the page's column
    _save(chromium, "tracker-accesses.png")

    chromium.find_element(By.CSS_SELECTOR, "nav.pages a[rel=next]").click()
    WebDriverWait(chromium, WAIT).until(expected_conditions.url_to_be(base + "/?page=2"))
    assert chromium.find_element(By.CSS_SELECTOR, "main table caption").text.endswith("(page 2 of 2)")
    assert len(_rows(chromium)) == len(story.shown) - PAGE_SIZE
    second_page = _indices(chromium)
    assert second_page == story.shown[PAGE_SIZE:]
    assert chromium.find_element(By.CSS_SELECTOR, "nav.pages a[rel=prev]").text == "Newer"
    assert not chromium.find_elements(By.CSS_SELECTOR, "nav.pages a[rel=next]")
    seen = set(first_page + second_page)
    assert story.hidden not in seen
    assert story.denied not in seen
    assert not seen & set(story.others)

    Select(chromium.find_element(By.ID, "agency")).select_by_value("social-insurance")
    chromium.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    WebDriverWait(chromium, WAIT).until(expected_conditions.url_contains("agency=social-insurance"))
    insurance = [i for i in story.shown if story.agency[i] == "social-insurance"]
    assert _indices(chromium) == insurance
    assert all("(social-insurance)" in row.text for row in _rows(chromium))
    assert Select(chromium.find_element(By.ID, "agency")).first_selected_option.text == AGENCIES["social-insurance"]

    Select(chromium.find_element(By.ID, "agency")).select_by_value("police-board")
    chromium.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    WebDriverWait(chromium, WAIT).until(expected_conditions.url_contains("agency=police-board"))
    assert not _rows(chromium)
    assert chromium.find_element(By.CSS_SELECTOR, "main p.empty").text == "No accesses to show for this choice."

    chromium.get(base + "/")
    _wait(chromium, "Your data")
    newest = story.shown[0]
    chromium.find_element(By.LINK_TEXT, f"Proof of entry {newest}").click()
    _wait(chromium, f"Proof of entry {newest}")
    assert chromium.current_url == f"{base}/proofs/{newest}"
    command = chromium.find_element(By.CSS_SELECTOR, "main pre code").text
    assert command.startswith(f"exchange audit check-proof proof-{newest}.txt --entry entry-{newest}.bin "
                              f"--origin '{ORIGIN}'")
    assert story.log.keys.log_key in command
    proof_href = chromium.find_element(By.CSS_SELECTOR, "a[href$='/proof.txt']").get_attribute("href")
    entry_href = chromium.find_element(By.CSS_SELECTOR, "a[href$='/entry.bin']").get_attribute("href")
    assert (proof_href, entry_href) == (f"{base}/proofs/{newest}/proof.txt", f"{base}/proofs/{newest}/entry.bin")
    _save(chromium, "tracker-proof.png")

    session = {COOKIE: cookie["value"]}
    proof = httpx2.get(str(proof_href), cookies=session)
    entry = httpx2.get(str(entry_href), cookies=session)
    assert (proof.status_code, entry.status_code) == (200, 200)
    assert proof.text.startswith("c2sp.org/tlog-proof@v1\n")
    checked = check_proof(proof.text, entry.content, [story.log.log_key], [], origin=ORIGIN)
    assert checked.index == newest
    assert checked.entry_checked
    assert entry.content == story.log.entries[newest]
    assert httpx2.get(str(proof_href)).status_code == 401  # not without the session


def test_the_page_fits_a_phone(chromium: WebDriver, live_server: LiveServer, story: Story) -> None:
    base = live_server(_app(story))
    chromium.set_window_size(*PHONE)
    _sign_in(chromium, base, ALICE)
    assert int(chromium.execute_script("return window.innerWidth")) <= PHONE[0]
    assert _fits(chromium)
    assert _indices(chromium) == story.shown[:PAGE_SIZE]
    first = _rows(chromium)[0]
    assert first.find_element(By.CSS_SELECTOR, "td[data-label=Agency]").is_displayed()
    _save(chromium, "tracker-phone.png", height=PHONE[1])

    chromium.find_element(By.LINK_TEXT, f"Proof of entry {story.shown[0]}").click()
    _wait(chromium, "Proof of entry")
    assert _fits(chromium)  # the long command scrolls in its own box, not the page


def test_the_page_works_without_javascript(chromium: WebDriver, live_server: LiveServer, story: Story) -> None:
    base = live_server(_app(story))
    chromium.set_window_size(*DESKTOP)
    chromium.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    chromium.get("data:text/html,<title>off</title><script>document.title='on'</script>")
    assert chromium.title == "off"  # scripts do not run

    _sign_in(chromium, base, ALICE)
    assert _indices(chromium) == story.shown[:PAGE_SIZE]
    chromium.find_element(By.CSS_SELECTOR, "nav.pages a[rel=next]").click()
    WebDriverWait(chromium, WAIT).until(expected_conditions.url_to_be(base + "/?page=2"))
    assert _indices(chromium) == story.shown[PAGE_SIZE:]
    Select(chromium.find_element(By.ID, "agency")).select_by_value("tax-board")
    chromium.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    WebDriverWait(chromium, WAIT).until(expected_conditions.url_contains("agency=tax-board"))
    assert _indices(chromium) == [i for i in story.shown if story.agency[i] == "tax-board"]
    chromium.find_element(By.CSS_SELECTOR, "main table tbody tr td[data-label=Proof] a").click()
    _wait(chromium, "Proof of entry")
    assert "exchange audit check-proof" in chromium.find_element(By.CSS_SELECTOR, "main pre code").text
    chromium.find_element(By.CSS_SELECTOR, "form.signout button").click()
    _wait(chromium, "Sign in")
    assert chromium.get_cookie(COOKIE) is None
