"""A service (router, sequencer) running in a thread of the calling process, for the demo, benchmarks and tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from exchange.errors import ExchangeError

__all__ = ["Service", "ServiceThread"]


class Service(Protocol):
    def run(self) -> object: ...
    def stop(self) -> None: ...


_S = TypeVar("_S", bound=Service)


class ServiceThread(Generic[_S]):
    """Runs ``service.run()`` in a daemon thread; waits on conditions of its committed progress."""

    def __init__(self, service: _S, name: str) -> None:
        self.service = service
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.service.run()
        except BaseException as exc:  # noqa: BLE001 - kept and re-raised in the waiting thread
            self.error = exc

    def wait_for(self, condition: Callable[[_S], bool], timeout: float = 60.0) -> None:
        """Return once ``condition(service)`` holds; raise if the service died or the time ran out."""
        deadline = time.monotonic() + timeout
        while not condition(self.service):
            if not self._thread.is_alive():
                raise ExchangeError(f"{self._thread.name} stopped: {self.error!r}") from self.error
            if time.monotonic() > deadline:
                raise ExchangeError(f"{self._thread.name} did not get there within {timeout:.0f}s "
                                    f"({self.describe()})")
            time.sleep(0.02)  # sampling the service's committed counters; the condition is checked above

    def describe(self) -> str:
        return repr(getattr(self.service, "stats", self.service))

    def stop(self, timeout: float = 60.0) -> None:
        self.service.stop()
        self._thread.join(timeout)
