"""An existing file is replaced only when asked: a "yes" in the chat, `--overwrite` for an export.
The photo a session started from is never replaced, whatever the answer (issue 18, item 6)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from agent.chat import Session
from tests.helpers import run_cli, sample
from tools.io import save_image


@pytest.fixture(autouse=True)
def _keywords(monkeypatch):
    monkeypatch.setenv("IMAGENT_NO_EMBEDDINGS", "1")


def _photo(tmp_path: Path) -> Path:
    photo = tmp_path / "photo.png"
    save_image(sample("astronaut", (64, 48)), photo)
    return photo


def test_chat_save_over_an_existing_file_asks_and_only_yes_replaces_it(tmp_path) -> None:
    photo, existing = _photo(tmp_path), tmp_path / "existing.jpg"
    existing.write_bytes(b"an earlier export the user wants to keep")
    asked: list[str] = []
    answers = iter([False, True, True])

    def ask(question: str) -> bool:
        asked.append(question)
        return next(answers)

    for i, ask_fn in enumerate((None, ask)):  # None: a chat with no terminal to ask (piped): no
        with Session.open(photo, session=tmp_path / f"s{i}", preview=64, ask=ask_fn) as s:
            r = s.say(f"/save {existing}")
            assert existing.read_bytes() == b"an earlier export the user wants to keep", "replaced without a yes"
            assert f"{existing} exists; overwrite? [y/N] no" in r.text and r.path is None, r.text
    assert asked == [f"{existing} exists; overwrite? [y/N]"]
    with Session.open(photo, session=tmp_path / "s9", preview=64, ask=ask) as s:
        r = s.say(f"/save {existing}")
        assert r.path == existing and existing.read_bytes()[:2] == b"\xff\xd8", "yes: replaced by the JPEG"
        before = photo.read_bytes()
        r = s.say(f"/save {photo}")
        assert r.kind == "error" and "refusing to overwrite the original" in r.text, r.text
        assert photo.read_bytes() == before, "the source photo is never replaced, even after a yes"
        assert len(asked) == 2, "the source is refused before any question"


def test_piped_chat_never_replaces_an_existing_file(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("IMAGENT_HOME", str(tmp_path / "home"))
    photo, existing = _photo(tmp_path), tmp_path / "existing.jpg"
    existing.write_bytes(b"keep me")
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"/save {existing}\n/quit\n"))
    code, out, _ = run_cli(["chat", str(photo), "--session", str(tmp_path / "s"), "--preview", "64"], capsys)
    assert code == 0 and existing.read_bytes() == b"keep me"
    assert "exists; overwrite? [y/N] no" in " ".join(out.split()), out


def test_sessions_export_keeps_an_earlier_export_unless_overwrite(tmp_path, capsys) -> None:
    photo, out = _photo(tmp_path), tmp_path / "exp"
    Session.open(photo, session=tmp_path / "s", preview=64).close()
    code, _, err = run_cli(["sessions", "export", str(tmp_path / "s"), "-o", str(out)], capsys)
    assert code == 0, err
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "contact-sheet.png").write_bytes(b"the user's own notes")
    code, _, err = run_cli(["sessions", "export", str(tmp_path / "s"), "-o", str(out)], capsys)
    assert code != 0 and "--overwrite" in err and "contact-sheet.png" in err, err
    assert (out / "contact-sheet.png").read_bytes() == b"the user's own notes", "replaced without --overwrite"
    code, _, err = run_cli(["sessions", "export", str(tmp_path / "s"), "-o", str(out), "--overwrite"], capsys)
    assert code == 0 and {p.name: p.read_bytes() for p in out.iterdir()} == first, err
