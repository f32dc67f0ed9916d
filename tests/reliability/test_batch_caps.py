"""Per-photo caps in `imagent batch`: a photo over its memory or time cap fails alone, with its
reason and peak memory in its row; the rest of the batch edits. Faults are injected through
IMAGENT_BATCH_HOOK (this module's `fault`, run in the worker), never by machine speed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from agent.batch import HOOK_ENV, exit_status, run_batch
from tests.helpers import photo_folder, png_bytes

ROOT = Path(__file__).resolve().parents[2]


def fault(path: Path) -> None:
    """Runs in the worker before each photo: "slow*" hangs, "greedy*" asks for 2 GB."""
    if path.name.startswith("slow"):
        time.sleep(3600)
    if path.name.startswith("greedy"):
        np.ones(2 << 30, np.uint8)




@pytest.fixture
def hooked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HOOK_ENV, f"{__name__}:fault")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(ROOT)




def rows_of(out: Path) -> dict[str, dict[str, str]]:
    import csv

    return {r["file"]: r for r in csv.DictReader((out / "summary.csv").open())}


def test_a_photo_over_the_memory_cap_fails_alone_with_its_reason(tmp_path: Path, hooked: None) -> None:
    src = photo_folder(tmp_path, ["a.png", "greedy.png", "z.png"])
    (src / "huge.png").write_bytes(png_bytes(5000, 5000))  # 25 MP, a few KB: refused from its header
    out = tmp_path / "out"
    rows = run_batch(src, out, "brighten it", max_photo_memory=256 << 20)
    csv_rows = rows_of(out)
    assert [r["file"] for r in rows] == sorted(csv_rows) == ["a.png", "greedy.png", "huge.png", "z.png"]
    for name in ("a.png", "z.png"):
        assert csv_rows[name]["status"] == "ok" and (out / name).is_file()
        assert float(csv_rows[name]["peak_mb"]) > 0  # the worker's peak resident memory during this photo
    greedy = csv_rows["greedy.png"]
    assert greedy["status"] == "over_cap" and greedy["exit_status"] == "2"
    assert "needed more than the 256 MB per-photo memory cap" in greedy["error"]
    assert "--max-photo-memory" in greedy["error"]
    huge = csv_rows["huge.png"]
    assert huge["status"] == "over_cap" and "5,000 x 5,000 px: loading it alone needs about 381 MB" in huge["error"]
    assert not (out / "greedy.png").exists() and not (out / "huge.png").exists()
    assert exit_status(rows) == 2


def test_a_photo_over_the_time_cap_is_stopped_and_the_batch_carries_on(tmp_path: Path, hooked: None) -> None:
    src = photo_folder(tmp_path, ["a.png", "slow.png", "z.png"])
    out = tmp_path / "out"
    t = time.monotonic()
    rows = run_batch(src, out, "brighten it", max_photo_seconds=8, workers=1)
    assert time.monotonic() - t < 600  # the hanging photo (1 h) was stopped, not waited for
    csv_rows = rows_of(out)
    slow = csv_rows["slow.png"]
    assert slow["status"] == "over_cap" and slow["exit_status"] == "2"
    assert "still running after the 8 s per-photo time cap; stopped" in slow["error"]
    assert float(slow["seconds"]) >= 8
    # z.png came after the killed worker: a fresh worker edited it
    assert csv_rows["a.png"]["status"] == csv_rows["z.png"]["status"] == "ok"
    assert exit_status(rows) == 2
