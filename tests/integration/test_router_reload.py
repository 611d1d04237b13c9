"""Reloading policies on a running router (what SIGHUP asks for): a broken file keeps the bundle in force."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from exchange.router import RouterConfig, RouterThread, build_router
from tests.integration.router_world import ROOT, World


def test_reload_keeps_the_bundle_on_a_broken_file_and_publishes_a_new_one(bootstrap: str, tmp_path: Path) -> None:
    """A broken agreement file keeps the bundle in force and says which file; a valid change takes effect and the
    new bundle is published to policy.bundles."""
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    world = World.create(bootstrap, tmp_path / "world")
    settings = world.settings.model_copy(update={"policies": policies})
    runner = RouterThread(build_router(RouterConfig(router_id="reload", group_id="reloaders"), settings))
    try:
        first = runner.router.bundle_id
        agreement = policies / "agreements" / "tcb-person-registered-tax.yaml"
        good = agreement.read_text()

        agreement.write_text(good.replace("recipient: tax-board", "recipient: [not, a, slug"))
        runner.router.request_reload()
        _wait(lambda: runner.router.reloads == 1)
        assert runner.router.bundle_id == first
        assert "tcb-person-registered-tax.yaml" in (runner.router.reload_error or "")

        agreement.write_text(good.replace("version: 1", "version: 2"))
        runner.router.request_reload()
        _wait(lambda: runner.router.bundle_id != first)
        bundles = [r.key for r in world.read("policy.bundles")]
        assert bundles == [first.encode(), runner.router.bundle_id.encode()]
    finally:
        runner.stop()


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the router did not reload in time"
        time.sleep(0.05)  # the router reloads between batches; the condition is checked above
