"""summary.csv is appended as photos finish, so a killed batch can be resumed; the batch exits
with its worst photo's status."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent.batch import CSV_FIELDS, HOOK_ENV, exit_status, run_batch
from tests.helpers import photo_folder, run_cli, sample
from tools.io import save_image

ROOT = Path(__file__).resolve().parents[2]
SEEN = "IMAGENT_TEST_SEEN"  # a file the hook appends to: which photos were edited, what summary.csv held


def record(path: Path) -> None:
    """Hook: note the photo and the rows summary.csv already holds; "kill*" SIGKILLs the batch
    (this runs in a worker process: its parent is the batch)."""
    if path.name.startswith("kill"):
        os.kill(os.getppid(), signal.SIGKILL)
        os._exit(1)
    if path.name.startswith("boom"):
        raise RuntimeError("injected failure")
    summary = path.parent.parent / "out" / "summary.csv"
    listed = [r["file"] for r in csv.DictReader(summary.open())] if summary.is_file() else []
    with open(os.environ[SEEN], "a") as f:
        f.write(f"{path.name}:{','.join(listed)}\n")


@pytest.fixture
def seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "seen.txt"
    monkeypatch.setenv(HOOK_ENV, f"{__name__}:record")
    monkeypatch.setenv(SEEN, str(log))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(ROOT)
    return log




def rows_of(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((out / "summary.csv").open()))


def edited(log: Path) -> dict[str, list[str]]:
    lines = log.read_text().splitlines() if log.is_file() else []
    return {name: [x for x in listed.split(",") if x] for name, listed in (ln.split(":") for ln in lines)}


def test_summary_gets_a_row_as_each_photo_finishes(tmp_path: Path, seen: Path) -> None:
    src = photo_folder(tmp_path, ["a.png", "b.png", "c.png"])
    # one worker process: its next photo is sent only after the last row is on disk
    run_batch(src, tmp_path / "out", "brighten it", workers=1, max_photo_seconds=600)
    assert edited(seen) == {"a.png": [], "b.png": ["a.png"], "c.png": ["a.png", "b.png"]}
    rows = rows_of(tmp_path / "out")
    assert [r["file"] for r in rows] == ["a.png", "b.png", "c.png"] and list(rows[0]) == CSV_FIELDS


def test_resume_skips_done_photos_and_ends_with_one_complete_summary(tmp_path: Path, seen: Path) -> None:
    src = photo_folder(tmp_path, ["a.png", "b.png", "c.png"])
    out = tmp_path / "out"
    run_batch(src, out, "brighten it", workers=1)
    (out / "c.png").unlink()  # listed as done, but its output is gone: edited again
    with open(out / "summary.csv", "a") as f:
        f.write("b.png,ok,met,0,/tor")  # a batch killed mid-write
    seen.unlink()
    rows = run_batch(src, out, "brighten it", workers=1, resume=True)
    assert set(edited(seen)) == {"c.png"}
    final = rows_of(out)
    assert [r["file"] for r in final] == [r["file"] for r in rows] == ["a.png", "b.png", "c.png"]
    assert all(r["status"] == "ok" and Path(r["output"]).is_file() for r in final)
    assert (out / "summary.csv").read_text().count("\n") == 4
    seen.unlink()
    run_batch(src, out, "brighten it", workers=1)  # without --resume everything is edited again
    assert set(edited(seen)) == {"a.png", "b.png", "c.png"}


def test_a_batch_killed_part_way_resumes_to_a_complete_summary(tmp_path: Path, seen: Path) -> None:
    src = photo_folder(tmp_path, ["a.png", "b.png", "kill.png", "z.png"])
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "import sys; from agent.cli import main; main()", "batch", str(src), "-g",
           "brighten it", "-o", str(out), "--workers", "1", "--max-photo-seconds", "600"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == -signal.SIGKILL
    assert [r["file"] for r in rows_of(out)] == ["a.png", "b.png"]  # what finished before the kill
    (src / "kill.png").rename(src / "k.png")  # the same photo, no longer killing
    seen.unlink()
    res = subprocess.run([*cmd, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert set(edited(seen)) == {"k.png", "z.png"}
    assert [(r["file"], r["status"]) for r in rows_of(out)] == [
        ("a.png", "ok"), ("b.png", "ok"), ("k.png", "ok"), ("z.png", "ok")]


def test_batch_exits_with_its_worst_photo(tmp_path: Path, seen: Path, capsys) -> None:
    src = photo_folder(tmp_path, ["a.png"])
    out = tmp_path / "out"
    args = ["batch", str(src), "-g", "brighten it", "-o", str(out), "--max-photo-seconds", "0",
            "--max-photo-memory", "0"]
    assert run_cli(args, capsys)[0] == 0
    assert [(r["outcome"], r["exit_status"]) for r in rows_of(out)] == [("met", "0")]
    code, _, _ = run_cli(["batch", str(src), "-g", "xyzzy plugh", "-o", str(tmp_path / "o2"), "--max-photo-seconds",
                          "0", "--max-photo-memory", "0"], capsys)
    assert code == 4 and rows_of(tmp_path / "o2")[0]["outcome"] == "nothing"
    (src / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    assert run_cli(args, capsys)[0] == 2  # unreadable beats met
    save_image(sample("coffee", (64, 48)), src / "boom.png")
    assert run_cli(args, capsys)[0] == 1  # a failure beats everything
    outcomes = {r["file"]: (r["status"], r["outcome"], r["exit_status"]) for r in rows_of(out)}
    assert outcomes == {"a.png": ("ok", "met", "0"), "bad.jpg": ("unreadable", "unreadable", "2"),
                        "boom.png": ("failed", "failed", "1")}
    assert exit_status([]) == 0


def test_batch_help_lists_the_exit_statuses(capsys) -> None:
    code, out, _ = run_cli(["batch", "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0 and "Exit status: the worst photo's." in text
    for says in ("0 every goal met", "1 a photo failed", "2 a photo unreadable", "3 edited but a goal not met",
                 "4 nothing understood", "--max-photo-memory", "--max-photo-seconds", "--resume"):
        assert says in text, says
