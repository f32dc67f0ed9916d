"""The session store: content-addressed images, exclusive open, damage reported, crashes survived."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from agent.chat import Session
from agent.sessions import SessionDamaged, SessionError, SessionInUse, SessionStore, file_hash
from tests.helpers import sample
from tools.analysis import measure
from tools.degrade import underexpose
from tools.io import load_image, save_image

RECIPE = '{"imagent_recipe": 1, "steps": [], "masks": {}, "size": [64, 48]}'


@pytest.fixture(autouse=True)
def _keywords(monkeypatch):
    monkeypatch.setenv("IMAGENT_NO_EMBEDDINGS", "1")  # rules and keywords: fast, no model load


def _store(tmp_path: Path, **kw) -> SessionStore:
    return SessionStore.create(tmp_path / "s", sample("astronaut"), preview=64, **kw)


def test_versions_are_stored_by_content_hash_and_survive_reopening(tmp_path) -> None:
    img = sample("astronaut")
    with _store(tmp_path) as st:
        brighter = (img * 1.2).clamp(0, 1)
        v1 = st.commit_version(0, brighter, RECIPE, note="brighter")
        again = st.commit_version(0, brighter.clone(), RECIPE)
        v2 = st.commit_version(v1.id, img * 0.5, RECIPE)
        assert again.id == v1.id, "the same edit of the same parent is stored once (a replay adds no twin)"
        assert [v.parent for v in st.versions()] == [None, 0, v1.id]
    with SessionStore.open(tmp_path / "s") as st:
        assert st.verify() == []
        for v in st.versions():
            path = st.image_path(v.hash)
            assert file_hash(path) == v.hash and not os.access(path, os.W_OK) or os.geteuid() == 0
        back = st.version_image(v2.id)
        assert torch.allclose(back, img * 0.5, atol=1 / 65535 + 1e-6), "previews are kept at 16 bits"
        assert st.lineage(v2.id) == [0, v1.id, v2.id]


def test_original_keeps_its_bit_depth_and_is_read_only(tmp_path) -> None:
    deep = torch.linspace(0, 1, 64 * 48 * 3).reshape(1, 3, 48, 64)
    src = tmp_path / "deep.png"
    save_image(deep, src, bit_depth=16)
    with Session.open(src, session=tmp_path / "s", preview=64) as s:
        stored = s.store.image_path(s.store.meta("original"))
        assert load_image(stored).bit_depth == 16
        assert torch.equal(s.original_full, load_image(src).image), "lossless copy of the source"
        assert stat_mode(stored) & 0o222 == 0, "the stored original is read-only"
        out = s.save(tmp_path / "copy.png")
        assert load_image(out).bit_depth == 16
        with pytest.raises(Exception, match="refusing to overwrite the original"):
            s.save(src)


def stat_mode(p: Path) -> int:
    return p.stat().st_mode


def test_second_open_is_refused_cleanly_in_this_and_another_process(tmp_path) -> None:
    st = _store(tmp_path)
    try:
        with pytest.raises(SessionInUse, match=r"in use by another imagent process \(pid \d+\)"):
            SessionStore.open(tmp_path / "s")
        code = ("import sys\nfrom agent.sessions import SessionStore, SessionInUse\n"
                f"try:\n    SessionStore.open({str(tmp_path / 's')!r})\nexcept SessionInUse as e:\n"
                "    print(e); sys.exit(3)\n")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                           cwd=Path(__file__).parents[2])
        assert r.returncode == 3 and "in use" in r.stdout, r.stderr
        assert st.verify() == [], "the refused open changed nothing"
    finally:
        st.close()
    SessionStore.open(tmp_path / "s").close()  # free again once closed


def test_damaged_database_is_a_clear_error_and_images_are_left_intact(tmp_path) -> None:
    with _store(tmp_path) as st:
        st.commit_version(0, sample("astronaut") * 0.7, RECIPE)
    folder = tmp_path / "s"
    before = {p.name: p.read_bytes() for p in (folder / "images").iterdir()}
    for p in folder.glob("session.db*"):
        p.unlink()
    (folder / "session.db").write_bytes(b"this is not sqlite" * 400)
    with pytest.raises(SessionDamaged, match=r"database session\.db is damaged .* 2 image\(s\) .* untouched"):
        SessionStore.open(folder)
    assert {p.name: p.read_bytes() for p in (folder / "images").iterdir()} == before
    with pytest.raises(SessionError, match="not an imagent session"):
        SessionStore.open(tmp_path)


def test_truncated_database_is_reported_not_silently_reset(tmp_path) -> None:
    with _store(tmp_path):
        pass
    db = tmp_path / "s" / "session.db"
    data = db.read_bytes()
    db.write_bytes(data[:100] + b"\x00" * 50 + data[150:1500])
    with pytest.raises(SessionDamaged, match="damaged"):
        SessionStore.open(tmp_path / "s")


def test_open_removes_what_a_crash_left_and_keeps_every_committed_image(tmp_path) -> None:
    with _store(tmp_path) as st:
        v = st.commit_version(0, sample("astronaut") * 0.8, RECIPE)
        (st.images / f".{'a' * 64}.png.deadbeef.tmp").write_bytes(b"half")
        (st.images / f"{'b' * 64}.png").write_bytes(b"orphan written before its row")
        st.begin_turn("brighter", "edit", base=0)
    with SessionStore.open(tmp_path / "s") as st:
        assert st.recovered == {"temporary": 1, "unreferenced": 1, "interrupted": 1}
        assert not list(st.images.glob(".*")) and st.verify() == []
        assert st.version_row(v.id).hash == v.hash
        assert st.turns()[-1].status == "interrupted"


def test_create_refuses_a_used_folder(tmp_path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("mine")
    with pytest.raises(SessionError, match="not an empty folder"):
        _store(tmp_path)
    assert (tmp_path / "s" / "notes.txt").read_text() == "mine"


# -- durability: SIGKILL at chosen points in the middle of turns ------------------------------

MESSAGES = ["brighter", "a bit more", "less than that", "more contrast", "warmer", "undo", "a bit more",
            "/checkout 0", "darker"]

# Each round a fresh chat process is killed by the store itself (IMAGENT_TEST_KILL_AT) at a chosen
# point of its Nth commit: `write` (half an image in its temporary file), `image` (image stored,
# row not committed), `commit` (version committed). The same interruptions on any machine.
ROUNDS = ["commit:1", "write:1", "image:1", "commit:2", "write:2", "image:2", "commit:3", "write:3", "image:3",
          "commit:1", "image:1", "write:1"]
# `make soak` runs the same test with IMAGENT_SOAK_KILLS=50 (the rounds above, cycled).
KILLS = int(os.environ.get("IMAGENT_SOAK_KILLS") or len(ROUNDS))

# One interpreter pays the import cost once and forks a fresh chat process per round. (No
# multiprocessing: its forkserver talks over a socket, which the test's network guard refuses.)
ZYGOTE = r"""
import os, signal, sys
os.environ["IMAGENT_NO_EMBEDDINGS"] = "1"
from agent.chat import Session
from agent.sessions import KILL_ENV
import langgraph.checkpoint.sqlite, agent.loop, agent.offline, agent.planners, tools.color, tools.tone, tools.detail, tools.geometry
folder, log, messages = sys.argv[1], sys.argv[2], sys.argv[3].split("|")
print("ready", flush=True)
for line in sys.stdin:
    cmd, arg, point = line.split()
    if cmd == "reap":
        _, status = os.waitpid(int(arg), 0)
        print(os.WTERMSIG(status) if os.WIFSIGNALED(status) else -os.WEXITSTATUS(status), flush=True)
        continue
    pid = os.fork()
    if pid:
        print(pid, flush=True)
        continue
    signal.alarm(120)  # a kill point never reached ends the round as SIGALRM, never as a hang
    os.environ[KILL_ENV] = point
    import torch
    torch.set_num_threads(1)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    s = Session.resume(folder, resume_interrupted=False)
    s.store.on_commit.append(lambda v: os.write(fd, f"{v.id} {v.hash}\n".encode()))
    r = s.resume_interrupted()  # finishes the turn the last kill cut off before anything new
    if r is not None:
        os.write(fd, f"resumed {r.kind}\n".encode())
    i = int(arg)
    while True:
        # past the scripted conversation (long soaks), fresh amounts: a revisited edit stores nothing
        # new, so later kill points would never be reached
        s.say(messages[i] if i < len(messages) else f"{('darken', 'brighten')[i % 2]} by 0.{i % 90 + 10} stops")
        i += 1
"""


def test_sigkill_mid_turn_at_chosen_points_loses_no_committed_version(tmp_path) -> None:
    folder, log = tmp_path / "s", tmp_path / "commits.log"
    Session.open(underexpose(sample("astronaut", (64, 48)), 1.0), session=folder, preview=64).close()
    zygote = subprocess.Popen([sys.executable, "-c", ZYGOTE, str(folder), str(log), "|".join(MESSAGES)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parents[2])
    t0 = time.perf_counter()
    try:
        assert zygote.stdout.readline().strip() == "ready"
        for k, point in enumerate(ROUNDS[i % len(ROUNDS)] for i in range(KILLS)):
            zygote.stdin.write(f"go {k} {point}\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            zygote.stdin.write(f"reap {pid} -\n")
            zygote.stdin.flush()
            assert int(zygote.stdout.readline()) == signal.SIGKILL, f"round {k}: {point} was not reached"
            with SessionStore.open(folder) as st:
                assert not [q for q in folder.rglob("*") if q.name.endswith(".tmp")], "no temporary file remains"
                rec = st.recovered
                assert rec["interrupted"] == 1, (point, rec)  # every kill point is inside an edit turn
                if point.startswith("write"):
                    assert rec["temporary"] == 1, (point, rec)
                if point.startswith("image"):
                    assert rec["unreferenced"] == 1, (point, rec)
                assert st.verify() == []
                rows = {v.id: v.hash for v in st.versions()}
                for line in log.read_text().splitlines() if log.exists() else []:
                    parts = line.split()
                    if len(parts) == 2 and len(parts[1]) == 64:
                        assert rows.get(int(parts[0])) == parts[1], f"committed version v{parts[0]} lost or changed"
                st.require(st.head)
    finally:
        zygote.kill()
        zygote.wait()
    lines = [ln.split() for ln in log.read_text().splitlines()]
    committed = {p[0] for p in lines if len(p) == 2 and len(p[1]) == 64}
    resumed = sum(p == ["resumed", "edit"] for p in lines)
    with Session.resume(folder) as s:
        assert s.resumed is not None and s.resumed.kind == "edit", "the last round's cut-off turn resumes"
        turns = s.store.turns()
        assert [t.id for t in turns if t.kind == "edit" and t.status in ("running", "interrupted")] == [], \
            ("every edit turn a kill cut off was resumed to completion",
             [(t.id, t.kind, t.text, t.status) for t in turns if t.status != "done"])
        rows = s.versions
        assert len({(r.parent, r.recipe) for r in rows}) == len(rows), "no edit stored twice"
        s.checkout(0)
        reply = s.say("brighter")
        assert reply.kind == "edit" and s.head != "v0", "the chat continues after the crashes"
        assert measure(s.image()).mean_L > measure(s.image(0)).mean_L + 3
        assert s.store.verify() == []
    print(f"SIGKILL x{KILLS} at chosen points: {len(committed)} committed, {KILLS} turns cut off, "
          f"{resumed} resumed to completion, {time.perf_counter() - t0:.1f} s")
    assert len(committed) >= 3 and resumed >= 1, (len(committed), resumed)


def test_sqlite_is_in_wal_mode_with_full_sync(tmp_path) -> None:
    with _store(tmp_path) as st:
        assert st.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert st.db.execute("PRAGMA synchronous").fetchone()[0] == 2
    db = sqlite3.connect(tmp_path / "s" / "session.db")
    assert db.execute("SELECT COUNT(*) FROM versions").fetchone()[0] == 1
    db.close()


def test_a_turn_cut_off_mid_act_resumes_from_its_checkpoint_without_redoing_a_committed_call(tmp_path) -> None:
    from tests.agent.fakes import ScriptedModel, call, say

    class Crash(BaseException):  # like SIGKILL: nothing catches it, nothing is tidied
        pass

    model = ScriptedModel(script=[say(call("exposure", stops=0.4), call("contrast", amount=0.2)),
                                  say(text="done")])
    folder = tmp_path / "s"
    s = Session.open(underexpose(sample("astronaut", (64, 48)), 1.0), session=folder, preview=64, model=model)
    made: list[int] = []

    def crash_after_first(v) -> None:
        made.append(v.id)
        raise Crash

    s.store.on_commit.append(crash_after_first)
    with pytest.raises(Crash):
        s.say("brighter")
    s.close()  # the process dies here: the turn is 'running', its first call committed
    assert len(made) == 1
    with SessionStore.open(folder) as st:
        before = {v.id: v.hash for v in st.versions()}
        assert st.turns()[-1].status == "interrupted" and set(before) == {0, made[0]}
    calls_before = len(model.seen)
    with Session.resume(folder, model=model, on_event=None) as s:
        assert s.resumed is not None and s.resumed.kind == "edit", s.resumed
        assert "resumed the interrupted request 'brighter'" in s.resumed.text
        # the act node resumed: the planner's first question after the crash already holds both calls' results
        # (it is asked more than once after them: an answer without tool calls while a target is unmet is
        # told what is unmet)
        first = model.seen[calls_before]
        assert len(model.seen) > calls_before and sum(m.type == "tool" for m in first) == 2
        turn = s.store.turns()[-1]
        assert turn.status == "done" and turn.result == s.store.head
        rows = s.versions
        assert len(rows) == 3 and {r.id: r.hash for r in rows}.items() >= before.items()
        tools = [json.loads(r.recipe)["steps"][-1]["tool"] for r in rows[1:]]
        assert tools == ["exposure", "contrast"], "the committed call was skipped, the next one ran"
        assert json.loads(rows[2].recipe)["steps"][0]["tool"] == "exposure" and rows[2].parent == made[0]
        assert [e.reason for e in s.resumed.trace if e.tool == "exposure"] == ["committed before the interruption"]
        assert s.say("/resume").text == "no interrupted request to resume"
    assert not (folder / "checkpoints.sqlite").exists() or _threads(folder / "checkpoints.sqlite") == 0


def _threads(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT COUNT(DISTINCT thread_id) FROM checkpoints").fetchone()[0]
    finally:
        db.close()
