"""A router running in a thread of the calling process, for the demo, benchmarks and tests."""

from __future__ import annotations

from exchange.router.service import Router
from exchange.runner import ServiceThread

__all__ = ["RouterThread"]


class RouterThread(ServiceThread[Router]):
    """Runs ``router.run()`` in a daemon thread; waits on its committed progress."""

    def __init__(self, router: Router) -> None:
        super().__init__(router, f"router-{router.config.router_id}")

    @property
    def router(self) -> Router:
        return self.service

    def describe(self) -> str:
        return f"the router: {self.router.stats}"

    def wait_events(self, count: int, timeout: float = 60.0) -> None:
        """Return once the router has committed ``count`` records since it started."""
        self.wait_for(lambda r: r.stats.events >= count, timeout)
