"""Fixtures for the web app's tests: a small dark photo to upload."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import sample
from tools.degrade import underexpose
from tools.io import save_image


@pytest.fixture
def dark_photo(tmp_path: Path) -> Path:
    """A 160x120 underexposed JPEG: 'make it brighter' has something to do."""
    return save_image(underexpose(sample("astronaut", (160, 120)), 1.0), tmp_path / "photo.jpg")


@pytest.fixture(autouse=True)
def _keywords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGENT_NO_EMBEDDINGS", "1")
