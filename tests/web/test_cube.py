"""The .cube LUT: `/export FILE.cube` in the chat and the web app's download, from tools.lut3d."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agent.chat import Session
from agent.web import handlers as H
from agent.web.tabs import Config, Tabs
from tests.helpers import sample
from tools.lut3d import apply as apply_lut
from tools.lut3d import from_cube


@pytest.fixture
def chat(tmp_path: Path, dark_photo: Path):
    s = Session.open(dark_photo, session=tmp_path / "s", preview=160)
    yield s
    s.close()


def _colour_only(s: Session) -> None:
    s.say("warmer")
    assert all(step.mask is None for step in s.recipe().steps)


def test_export_cube_matches_the_recipe(chat: Session, tmp_path: Path) -> None:
    _colour_only(chat)
    try:
        text = chat.cube()
    except Exception as exc:  # the offline planner chose a step a LUT cannot hold: say which
        pytest.fail(f"'warmer' made a recipe a .cube cannot hold: {exc}")
    reply = chat.say(f"/export {tmp_path / 'look.cube'}")
    assert reply.kind == "command" and (tmp_path / "look.cube").read_text() == text
    lut = from_cube((tmp_path / "look.cube").read_text())
    img = sample("astronaut", (64, 48))
    from tools.recipe import apply_recipe

    assert torch.allclose(apply_lut(img, lut), apply_recipe(img, chat.recipe()), atol=0.02)
    again = chat.say(f"/export {tmp_path / 'look.cube'}")
    assert again.kind == "error" and "unchanged" in again.text, "no terminal to ask: never replaced"


def test_export_refusals(chat: Session, tmp_path: Path) -> None:
    assert "give a .cube path" in chat.say(f"/export {tmp_path / 'look.png'}").text
    assert "changes no colours" in chat.say(f"/export {tmp_path / 'a.cube'}").text
    chat.add_mask("top", torch.ones(1, 1, 12, 16))
    chat.say("darker, in the top")
    r = chat.say(f"/export {tmp_path / 'b.cube'}")
    assert r.kind == "error" and "mask" in r.text and not (tmp_path / "b.cube").exists()


def test_web_download_cube(tmp_path: Path, dark_photo: Path) -> None:
    tabs = Tabs(Config(root=tmp_path / "sessions", work=tmp_path / "work", preview=160, critic="none"))
    try:
        tab = tabs.get("t")
        H.upload(tab, str(dark_photo))
        H.download(tab, "cube")
        assert tab.failed and "changes no colours" in tab.notice
        list(H.say(tab, "warmer"))
        path = Path(H.download(tab, "cube").download)
        assert path.suffix == ".cube" and path.read_text().startswith("TITLE")
    finally:
        tabs.close_all()
