from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def write_profile(tmp_path: Path):
    """Write a profile TOML into tmp_path and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        return path

    return _write
