"""Conversational editing: relative requests, undo/redo/branch, masks across turns, the CLI chat."""

from __future__ import annotations

import io
import sys

import pytest
import torch

from agent.chat import CONTEXT_LIMIT, Session
from tests.agent.fakes import ScriptedModel, call, say
from tests.helpers import run_cli, sample
from tools.analysis import measure
from tools.degrade import underexpose
from tools.io import load_image, save_image

H, W = 48, 64


@pytest.fixture(autouse=True)
def _keywords(monkeypatch):
    monkeypatch.setenv("IMAGENT_NO_EMBEDDINGS", "1")


def _sky() -> torch.Tensor:
    m = torch.zeros(1, 1, H, W)
    m[..., : H // 3, :] = 1
    return m


@pytest.fixture
def chat(tmp_path):
    s = Session.open(underexpose(sample("astronaut", (W, H)), 1.0), session=tmp_path / "s", preview=W,
                     masks={"sky": _sky()})
    yield s
    s.close()


def L(s: Session, v=None) -> float:
    return measure(s.image(v)).mean_L


def test_relative_requests_resolve_against_the_history(chat) -> None:
    r1 = chat.say("brighter")
    v1 = chat.store.head
    assert r1.kind == "edit" and L(chat) > L(chat, 0) + 5

    r2 = chat.say("a bit more")
    v2 = chat.store.head
    assert "brighten x0.5" in r2.text
    assert v2 != v1 and v1 in chat.store.lineage(v2), "'more' continues from the current version"
    assert L(chat, v2) > L(chat, v1) + 2

    chat.say("less than that")
    v3 = chat.store.head
    assert chat.store.require(v3).parent is not None and v1 in chat.store.lineage(v3)
    assert v2 not in chat.store.lineage(v3), "'less than that' branches from where the last request started"
    assert L(chat, v1) < L(chat, v3) < L(chat, v2)

    r4 = chat.say("like before but warmer")
    v4 = chat.store.head
    assert chat.store.lineage(v4)[:-1][-1] == v1 or v1 in chat.store.lineage(v4)
    assert v3 not in chat.store.lineage(v4)
    assert measure(chat.image(v4)).cast_b > measure(chat.image(v1)).cast_b + 2, r4.text


def test_now_only_the_sky_repeats_the_request_inside_the_mask(chat) -> None:
    chat.say("brighter")
    v1 = chat.store.head
    r = chat.say("now only the sky")
    assert r.kind == "edit", r.text
    v2 = chat.store.head
    assert v1 not in chat.store.lineage(v2), "starts again from before the global edit"
    base, out = chat.image(0), chat.image(v2)
    rows = H // 3
    assert torch.allclose(out[..., rows + 1:, :], base[..., rows + 1:, :], atol=1e-4), "outside the mask untouched"
    assert measure(out[..., :rows, :]).mean_L > measure(base[..., :rows, :]).mean_L + 3
    assert all(s.mask == "sky" for s in chat.recipe().steps)


def test_masks_and_history_persist_across_reopening(tmp_path) -> None:
    s = Session.open(underexpose(sample("astronaut", (W, H)), 1.0), session=tmp_path / "s", preview=W)
    s.add_mask("sky", _sky())
    s.say("brighter")
    head = s.head
    s.close()
    with Session.resume(tmp_path / "s") as s:
        assert s.head == head and "sky" in s.store.mask_hashes()
        r = s.say("a bit more in the sky")
        assert r.kind == "edit" and s.recipe().steps[-1].mask == "sky", r.text
        assert [t.text for t in s.store.turns("edit")] == ["brighter", "a bit more in the sky"]


def test_undo_redo_checkout_and_branch(chat) -> None:
    chat.say("brighter")
    v1 = chat.store.head
    chat.say("more contrast")
    v2 = chat.store.head
    assert chat.say("undo that").text.startswith("undone") and chat.store.head == v1
    chat.say("/redo")
    assert chat.store.head == v2
    assert "nothing to redo" in chat.say("/redo").text
    chat.say("/checkout 0")
    chat.say("warmer")
    branch = chat.store.head
    assert chat.store.lineage(branch)[0] == 0 and v1 not in chat.store.lineage(branch)
    assert {v.id for v in chat.versions} >= {0, v1, v2, branch}, "the old branch is kept"
    assert "*" in chat.say("/versions").text
    assert "no version v99" in chat.say("/checkout 99").text


def test_commands_compare_save_recipe_and_errors(chat, tmp_path) -> None:
    assert "there is no earlier request" in chat.say("a bit more").text
    chat.say("brighter")
    r = chat.say("/compare")
    assert r.path.is_file() and load_image(r.path).size == (2 * W + 2, H)
    out = chat.say(f"/save {tmp_path / 'out.png'}")
    assert out.path.is_file() and load_image(out.path).size == (W, H)
    assert '"imagent_recipe"' in chat.say("/recipe").text
    assert "no mask named 'trees'" in chat.say("now only the trees").text
    assert "unknown command" in chat.say("/frobnicate").text
    assert "/checkout" in chat.say("/help").text and chat.say("/quit").kind == "quit"


def test_scripted_model_sees_a_bounded_digest_and_mask_scoped_calls(tmp_path) -> None:
    def turn(messages):
        seen = sum(1 for m in messages if getattr(m, "tool_calls", None))
        return say(call("exposure", stops=0.1)) if seen == 0 else say(text="done")

    model = ScriptedModel(script=[turn])
    with Session.open(sample("astronaut", (W, H)), session=tmp_path / "s", preview=W, model=model,
                      masks={"sky": _sky()}, max_steps=2) as s:
        sizes = []
        for i in range(12):
            s.say("brighter" if i % 2 == 0 else "a bit darker")
            first = next(m for m in model.seen[-2] if m.type == "human")
            sizes.append(len(first.content))
        assert max(sizes) < sizes[1] + CONTEXT_LIMIT, "older turns are summarised, not replayed"
        assert "Earlier (" in first.content and "a bit darker" in first.content
        edits = [e for e in s.say("now only the sky").trace if e.tool == "exposure"]
        assert edits and all(e.mask == "sky" for e in edits), "every call confined to the mask"


def test_cli_chat_with_piped_messages_and_sessions_commands(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("IMAGENT_HOME", str(tmp_path / "home"))
    photo = tmp_path / "dark.png"
    save_image(underexpose(sample("astronaut", (W, H)), 1.0), photo)
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"brighter\n/save {tmp_path / 'out.jpg'}\n/quit\n"))
    code = run_cli(["chat", str(photo), "--session", str(tmp_path / "s"), "--preview", str(W)], capsys)
    assert code[0] == 0 and "wrote" in code[1] and (tmp_path / "out.jpg").is_file()
    monkeypatch.setattr(sys, "stdin", io.StringIO("a bit more\n"))
    code, out, _ = run_cli(["chat", "--resume", str(tmp_path / "s")], capsys)
    assert code == 0 and "more of 'brighter'" in out
    code, out, _ = run_cli(["sessions", "show", str(tmp_path / "s")], capsys)
    assert "brighter" in out and "a bit more" in out
    code, out, _ = run_cli(["sessions", "export", str(tmp_path / "s"), "-o", str(tmp_path / "exp")], capsys)
    names = sorted(p.name for p in (tmp_path / "exp").iterdir())
    assert "contact-sheet.png" in names and any(n.endswith(".recipe.json") for n in names)
    code, out, err = run_cli(["chat", str(photo), "--resume", "x"], capsys)
    assert code == 2 and "not both" in err
    code, _, _ = run_cli(["sessions", "delete", str(tmp_path / "s"), "--yes"], capsys)
    assert code == 0 and not (tmp_path / "s").exists()



def test_a_masked_request_states_the_bounds_it_checks():
    from agent.chat_requests import _scope
    from agent.goals import parse_goal
    from tests.agent.test_goals import stats

    s = stats(mean_L=35.0)
    goal = _scope(parse_goal("darken it", s), s, coverage=0.1)
    t = goal.targets[0]
    assert f"{t.high:.3g}"[:3] in t.label and "inside a mask of 10%" in t.label
    assert t.low <= 35.0 <= t.high + 1.5  # a tenth of the change asked: close to the original
