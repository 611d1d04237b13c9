"""Browser tests: pages in a real headless Chromium (Debian's ``chromium``), driven by Selenium.

Selenium is given Debian's ``chromedriver`` by path, so Selenium Manager never tries to download a driver or a
browser (nothing can be downloaded on a closed network). Where either binary is missing the tests are skipped
with the reason and the command that installs them (``.ci/run`` runs it). Two fixtures:

``chromium``
    a fresh headless browser (its own profile in a temporary directory), quit after the test.
``live_server``
    ``live_server(app)`` serves an ASGI app with uvicorn in a thread on a free localhost port and returns its
    base URL (``http://127.0.0.1:<port>``); the server stops after the test.

A test::

    def test_page(chromium: WebDriver, live_server: LiveServer) -> None:
        chromium.get(live_server(app) + "/")
        assert chromium.find_element(By.TAG_NAME, "h1").text == "..."
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

# Overridable for a machine whose packages put them elsewhere.
CHROMIUM = Path(os.environ.get("EXCHANGE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("EXCHANGE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
INSTALL_COMMAND = "apt-get install -y chromium chromium-driver"

# Without the background-networking flags Chromium reaches out to Google's services at start, and a closed
# network's refusals can stall it; a fresh profile keeps tests from sharing cookies or a cache.
CHROMIUM_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)

LiveServer = Callable[[Any], str]


def missing_browser_binaries() -> list[Path]:
    """The browser binaries that are not there (empty when the browser tests can run)."""
    return [path for path in (CHROMIUM, CHROMEDRIVER) if not (path.is_file() and os.access(path, os.X_OK))]


@pytest.fixture
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """A headless Chromium driven by Selenium through Debian's chromedriver; quit after the test."""
    missing = missing_browser_binaries()
    if missing:
        pytest.skip(
            f"no browser for the browser tests: {' and '.join(str(p) for p in missing)} not found "
            f"(install them as root: {INSTALL_COMMAND}; .ci/run does it)"
        )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in CHROMIUM_ARGUMENTS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(log))
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except (WebDriverException, OSError) as exc:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        pytest.fail(f"{CHROMIUM} did not start through {CHROMEDRIVER}: {exc}\nchromedriver log:\n{tail}")
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class _ThreadServer(uvicorn.Server):
    """A uvicorn server that says when it is serving (or has given up), for a test to wait on."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


@pytest.fixture
def live_server() -> Iterator[LiveServer]:
    """``live_server(app)``: serve an ASGI app on a free localhost port in a thread; its base URL."""
    running: list[tuple[_ThreadServer, threading.Thread, socket.socket]] = []

    def serve(app: Any) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))  # the port is the kernel's choice, held from here on: no race for it
        server = _ThreadServer(uvicorn.Config(app, log_config=None, log_level="warning", lifespan="auto"))

        def run() -> None:
            try:
                server.run(sockets=[sock])  # off the main thread uvicorn leaves signal handling alone
            finally:
                server.ready.set()

        thread = threading.Thread(target=run, name="live-server", daemon=True)
        thread.start()
        running.append((server, thread, sock))
        if not server.ready.wait(timeout=30) or not server.started:
            raise RuntimeError("the test server did not start")
        host, port = sock.getsockname()
        return f"http://{host}:{port}"

    try:
        yield serve
    finally:
        for server, thread, sock in running:
            server.should_exit = True
            thread.join(timeout=30)
            sock.close()
            assert not thread.is_alive(), "the test server did not stop"
