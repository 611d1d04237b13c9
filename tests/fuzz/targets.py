"""The harnesses by name, imported only when asked for (so a worker can instrument them first)."""

from __future__ import annotations

import importlib

from tests.fuzz.engine import Harness

TARGETS = {
    "envelope": ("tests.fuzz.envelope", "EnvelopeHarness"),
    "opener": ("tests.fuzz.delivery", "OpenerHarness"),
    "plaintext": ("tests.fuzz.delivery", "PlaintextHarness"),
    "policy": ("tests.fuzz.config", "PolicyHarness"),
    "registry": ("tests.fuzz.config", "RegistryHarness"),
    "topics": ("tests.fuzz.config", "TopicsHarness"),
    "connector": ("tests.fuzz.config", "ConnectorHarness"),
    "safeparse": ("tests.fuzz.config", "SafeparseHarness"),
}
"""Every harness, in the order they run."""


def build(name: str) -> Harness:
    module, cls = TARGETS[name]
    harness: Harness = getattr(importlib.import_module(module), cls)()
    return harness
