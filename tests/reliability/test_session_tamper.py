"""A session folder is untrusted input: tampering with it runs nothing and touches nothing outside it.

Each test is one finding of issue 18; each failed on the code before the fix (a shell command ran
on resume, a user file was overwritten with a pid, PNGs outside the folder were deleted, an
outside image was exported).
"""

from __future__ import annotations

import io
import sqlite3
import sys
from pathlib import Path

import ormsgpack
import pytest

from agent.chat import Session
from agent.sessions import SessionStore
from tests.agent.fakes import ScriptedModel, call, say
from tests.helpers import run_cli, sample
from tools.degrade import underexpose
from tools.io import save_image


@pytest.fixture(autouse=True)
def _keywords(monkeypatch):
    monkeypatch.setenv("IMAGENT_NO_EMBEDDINGS", "1")


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every image and the version rows: what 'intact' means."""
    snap = {p.name: p.read_bytes() for p in sorted((folder / "images").iterdir())}
    db = sqlite3.connect(f"file:{folder / 'session.db'}?mode=ro", uri=True)
    snap["versions"] = repr(db.execute("SELECT id, parent, hash, recipe FROM versions ORDER BY id").fetchall()).encode()
    db.close()
    return snap


def _interrupted(folder: Path) -> None:
    """A session whose last turn a crash cut off after its first committed call (a checkpoint holds it)."""

    class Crash(BaseException):
        pass

    model = ScriptedModel(script=[say(call("exposure", stops=0.4), call("contrast", amount=0.2)),
                                  say(text="done")])
    s = Session.open(underexpose(sample("astronaut", (64, 48)), 1.0), session=folder, preview=64, model=model)

    def crash(_v) -> None:
        raise Crash

    s.store.on_commit.append(crash)
    with pytest.raises(Crash):
        s.say("brighter")
    s.close()


class _Evil:
    """Stands for the object an attacker writes: LangGraph's 'call module.name(*args)' extension."""

    def __init__(self, command: str) -> None:
        self.command = command


def _evil_default(obj):
    from langgraph.checkpoint.serde.jsonplus import EXT_CONSTRUCTOR_POS_ARGS, _msgpack_default

    if isinstance(obj, _Evil):
        return ormsgpack.Ext(EXT_CONSTRUCTOR_POS_ARGS, ormsgpack.packb(("os", "system", [obj.command])))
    return _msgpack_default(obj)


def test_tampered_checkpoint_runs_nothing_and_the_resume_fails_with_one_line(tmp_path, monkeypatch, capsys) -> None:
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    folder, marker = tmp_path / "s", tmp_path / "pwned"
    _interrupted(folder)
    db = sqlite3.connect(folder / "checkpoints.sqlite")
    rows = db.execute("SELECT rowid, type, checkpoint FROM checkpoints").fetchall()
    assert rows, "the cut-off turn left a checkpoint to resume from"
    trusted = JsonPlusSerializer()  # reading our own, untampered rows
    for rowid, kind, blob in rows:
        cp = trusted.loads_typed((kind, blob))
        cp["channel_values"]["stop"] = _Evil(f"touch {marker}")
        evil = ormsgpack.packb(cp, default=_evil_default, option=ormsgpack.OPT_NON_STR_KEYS)
        db.execute("UPDATE checkpoints SET type = 'msgpack', checkpoint = ? WHERE rowid = ?", (evil, rowid))
    db.commit()
    db.close()
    before = _snapshot(folder)

    monkeypatch.setattr(sys, "stdin", io.StringIO("brighter\n"))
    code, out, err = run_cli(["chat", "--resume", str(folder)], capsys)
    assert not marker.exists(), "the command stored in the checkpoint was run"
    assert code == 2, (code, out, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "checkpoint holds an object of type os.system that imagent does not load" in lines[0] \
        and "tampered" in lines[0], err
    assert "imagent>" not in out, "the chat did not open"
    assert _snapshot(folder) == before, "images and versions intact"
    with SessionStore.open(folder) as st:
        assert st.turns()[-1].status == "interrupted", "the refused turn is left as the crash left it"
    code, out, _ = run_cli(["sessions", "show", str(folder)], capsys)  # looking still works
    assert code == 0 and "brighter" in out and not marker.exists()


def test_lock_file_linked_to_a_user_file_is_refused_and_the_file_kept(tmp_path, capsys) -> None:
    folder = tmp_path / "s"
    SessionStore.create(folder, sample("astronaut"), preview=64).close()
    notes = tmp_path / "notes.txt"
    notes.write_text("my precious notes\n")
    (folder / "session.lock").unlink()
    (folder / "session.lock").symlink_to(notes)
    code, _, err = run_cli(["sessions", "show", str(folder)], capsys)
    assert notes.read_text() == "my precious notes\n", "the user's file was overwritten with a pid"
    assert code != 0 and "session.lock" in err and "link" in err, err


def test_images_folder_linked_elsewhere_is_refused_and_nothing_there_deleted(tmp_path, capsys) -> None:
    folder = tmp_path / "s"
    SessionStore.create(folder, sample("astronaut"), preview=64).close()
    photos = tmp_path / "photos"
    (folder / "images").rename(photos)
    save_image(sample("coffee"), photos / "holiday.png")  # not referenced by the session
    (folder / "images").symlink_to(photos, target_is_directory=True)
    code, _, err = run_cli(["sessions", "show", str(folder)], capsys)
    assert (photos / "holiday.png").is_file(), "an unreferenced PNG outside the session folder was deleted"
    assert code != 0 and "images is a symbolic link" in err, err


def test_an_image_hash_that_is_a_path_is_refused_and_nothing_outside_is_exported(tmp_path, capsys) -> None:
    folder = tmp_path / "s"
    with SessionStore.create(folder, sample("astronaut"), preview=64) as st:
        st.commit_version(0, sample("astronaut") * 0.5, '{"imagent_recipe": 1, "steps": [], "masks": {}, '
                          '"size": [64, 48]}')
    save_image(sample("coffee", (64, 48)), tmp_path / "secret.png")  # images/../../secret.png
    db = sqlite3.connect(folder / "session.db")
    db.execute("UPDATE versions SET hash = '../../secret' WHERE id = 1")
    db.commit()
    db.close()
    out = tmp_path / "export"
    code, _, err = run_cli(["sessions", "export", str(folder), "-o", str(out)], capsys)
    assert code != 0 and "not a SHA-256 hash" in err and "tampered" in err, err
    assert not out.exists(), "nothing exported"
