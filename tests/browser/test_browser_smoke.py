"""The browser test infrastructure works: a page served on localhost, a form filled and sent, a screenshot."""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import parse_qs

import httpx2
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.browser.conftest import LiveServer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Greeting form</title></head>
<body><main>
<h1>Who are you?</h1>
<form method="post" action="/greet">
  <label for="name">Name</label> <input id="name" name="name" required>
  <label for="agency">Agency</label>
  <select id="agency" name="agency"><option>tax-board</option><option>police-board</option></select>
  <button type="submit">Send</button>
</form>
</main></body></html>
"""


async def form(_request: Request) -> HTMLResponse:
    return HTMLResponse(FORM)


async def greet(request: Request) -> HTMLResponse:
    fields = parse_qs((await request.body()).decode("utf-8"), strict_parsing=True)
    name = html.escape(fields["name"][0])
    agency = html.escape(fields["agency"][0])
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Greeted</title></head>'
        f'<body><p id="result">Hello, {name} of {agency}</p></body></html>'
    )


APP = Starlette(routes=[Route("/", form), Route("/greet", greet, methods=["POST"])])


def test_a_form_is_filled_and_sent_in_a_real_browser(
    chromium: WebDriver, live_server: LiveServer, tmp_path: Path
) -> None:
    base = live_server(APP)
    chromium.get(base + "/")
    assert chromium.title == "Greeting form"
    assert chromium.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    label = chromium.find_element(By.CSS_SELECTOR, "label[for=name]")
    assert label.text == "Name"

    chromium.find_element(By.ID, "name").send_keys("Åsa <Lind>")
    chromium.find_element(By.CSS_SELECTOR, "#agency option:nth-child(2)").click()
    chromium.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    WebDriverWait(chromium, 30).until(expected_conditions.title_is("Greeted"))
    assert chromium.current_url == base + "/greet"
    assert chromium.find_element(By.ID, "result").text == "Hello, Åsa <Lind> of police-board"

    screenshot = tmp_path / "greeted.png"
    assert chromium.save_screenshot(str(screenshot))
    data = screenshot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000  # a rendered page, not an empty image
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # the IHDR chunk
    assert (width, height) > (0, 0)


def test_the_server_answers_plain_http_too(live_server: LiveServer) -> None:
    base = live_server(APP)
    assert "Who are you?" in httpx2.get(base + "/").text
