"""A router running in a thread of the calling process, for the demo, benchmarks and tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from exchange.errors import ExchangeError
from exchange.router.service import Router

__all__ = ["RouterThread"]


class RouterThread:
    """Runs ``router.run()`` in a daemon thread; waits on its committed progress."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"router-{router.config.router_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.router.run()
        except BaseException as exc:  # noqa: BLE001 - kept and re-raised in the waiting thread
            self.error = exc

    def wait_for(self, condition: Callable[[Router], bool], timeout: float = 60.0) -> None:
        """Return once ``condition(router)`` holds; raise if the router died or the time ran out."""
        deadline = time.monotonic() + timeout
        while not condition(self.router):
            if not self._thread.is_alive():
                raise ExchangeError(f"the router stopped: {self.error!r}") from self.error
            if time.monotonic() > deadline:
                raise ExchangeError(f"the router did not get there within {timeout:.0f}s ({self.router.stats})")
            time.sleep(0.02)  # sampling the router's committed counters; the condition is checked above

    def wait_events(self, count: int, timeout: float = 60.0) -> None:
        """Return once the router has committed ``count`` records since it started."""
        self.wait_for(lambda r: r.stats.events >= count, timeout)

    def stop(self, timeout: float = 60.0) -> None:
        self.router.stop()
        self._thread.join(timeout)
