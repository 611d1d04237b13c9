"""Fixtures of the policy tests; builders and reference data live in ``support``."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import Writer


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    """Write ``text`` to ``tmp_path / relative`` (parents created) and return the path."""

    def _write(relative: str, text: str) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write
