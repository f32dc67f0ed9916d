"""The web app's handlers without a browser: each control's Session call and the View it returns."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from agent.chat import Session
from agent.web import handlers as H
from agent.web.masks import free_name, hue_of, make_mask, painted
from agent.web.tabs import Busy, Config, Tab, Tabs, session_names
from agent.web.views import view_of
from tests.helpers import sample
from tools.io import save_image


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(root=tmp_path / "sessions", work=tmp_path / "work", preview=160, critic="none")


@pytest.fixture
def tabs(config: Config) -> Tabs:
    t = Tabs(config)
    yield t
    t.close_all()


@pytest.fixture
def tab(tabs: Tabs, dark_photo: Path) -> Tab:
    t = tabs.get("a")
    view = H.upload(t, str(dark_photo))
    assert "now at v0" in view.status and not t.failed
    return t


def _run(gen) -> list:
    return list(gen)


def test_upload_starts_a_session_in_the_shared_store(tab: Tab, config: Config) -> None:
    assert tab.session.folder.parent == config.root
    view = view_of(tab)
    assert view.compare[1].shape == (120, 160, 3) and len(view.versions) == 1
    assert view.sessions == [tab.session.folder.name]


def test_upload_refusals_are_one_clear_line(tabs: Tabs, config: Config, tmp_path: Path, dark_photo: Path) -> None:
    t = tabs.get("b")
    H.upload(t, None)
    assert t.failed and "no file received" in t.notice
    H.upload(t, str(dark_photo), uploads=tmp_path / "elsewhere")
    assert t.failed and "did not come through the upload box" in t.notice
    (tmp_path / "notes.jpg").write_text("not a photo")
    H.upload(t, str(tmp_path / "notes.jpg"))
    assert t.failed and "\n" not in t.notice and t.session is None
    config.max_upload_bytes = 100
    H.upload(t, str(dark_photo))
    assert t.failed and "upload limit" in t.notice
    config.max_upload_bytes, config.max_pixels = 1 << 30, 1000
    H.upload(t, str(dark_photo))
    assert t.failed and "limit" in t.notice and t.session is None


def test_say_streams_steps_then_shows_the_result(tab: Tab) -> None:
    views = _run(H.say(tab, "make it brighter"))
    assert views[0].partial and "working" in views[0].status
    final = views[-1]
    assert not final.partial and tab.session.head != "v0"
    assert final.steps and any("kept" in str(r[3]) for r in final.steps)
    assert final.targets and all(len(r) == 4 for r in final.targets)
    assert final.compare[1].mean() > final.compare[0].mean() + 5, "before | after shows the change"
    assert "s, $" in final.cost
    assert [m["role"] for m in final.chat] == ["user", "assistant"]


def test_undo_redo_and_branch_from_the_strip(tab: Tab) -> None:
    _run(H.say(tab, "make it brighter"))
    head = tab.session.head
    assert "now at v0" in H.undo(tab).status
    assert f"now at {head}" in H.redo(tab).status
    H.checkout(tab, 0)
    assert tab.session.head == "v0"
    _run(H.say(tab, "warmer"))
    rows = tab.session.versions
    assert rows[-1].parent == 0, "the next request branches from the picked version"
    H.checkout(tab, 99)
    assert tab.failed and "pick a version" in tab.notice


def test_a_painted_mask_confines_the_next_request(tab: Tab) -> None:
    layer = np.zeros((120, 160, 4), np.uint8)
    layer[:60, :80, 3] = 140  # the brush paints translucent
    H.add_mask(tab, "brush", {"background": None, "layers": [layer], "composite": None})
    assert tab.mask == "brush" and "mask 'brush' added (25%" in tab.notice
    final = _run(H.say(tab, "darken only this", tab.mask))[-1]
    assert final.steps and all("@brush" in r[1] for r in final.steps if "kept" in str(r[3]))
    H.add_mask(tab, "brush", {"background": None, "layers": [layer], "composite": None})
    assert tab.mask == "brush-2", "a new mask never replaces one a stored recipe refers to"
    H.add_mask(tab, "brush", None)
    assert tab.failed and "draw over the photo" in tab.notice


def test_detector_masks(tab: Tab) -> None:
    img = tab.session.image()
    assert make_mask("colour", img, colour="#d04020").max() > 0
    assert make_mask("subject", img).shape == (1, 1, 120, 160)
    assert abs(hue_of("#0000ff") - 240) < 1e-6 and abs(hue_of("rgb(0, 255, 0)") - 120) < 1e-6
    assert painted({"layers": [np.zeros((4, 4, 4), np.uint8)]}) is None
    assert free_name("sky", {"sky": 1, "sky-2": 1}) == "sky-3"
    H.add_mask(tab, "face", None)  # a landscape-sized toy photo: maybe no face; either way one line
    assert "\n" not in tab.notice


def test_downloads_come_from_the_tab_folder_and_replay(tab: Tab, dark_photo: Path, tmp_path: Path) -> None:
    from tools.io import load_image
    from tools.recipe import Recipe, apply_recipe

    _run(H.say(tab, "make it brighter"))
    view = H.download(tab, "image")
    path = Path(view.download)
    assert path.parent == tab.outbox and path.suffix == ".png"
    recipe = Path(H.download(tab, "recipe").download)
    assert recipe.name.endswith(".recipe.json") and not path.exists(), "one download at a time per tab"
    out = apply_recipe(load_image(dark_photo).image, Recipe.load(recipe))
    assert torch.allclose(out, tab.session.render(), atol=1e-6)
    layer = np.zeros((120, 160, 4), np.uint8)
    layer[:, :40, 3] = 255
    H.add_mask(tab, "brush", {"layers": [layer]})
    _run(H.say(tab, "darker", "brush"))
    bundle = Path(H.download(tab, "recipe").download)
    assert bundle.suffix == ".zip"
    assert sorted(zipfile.ZipFile(bundle).namelist())[0] == "mask-brush.png"
    H.download(tab, "../../etc/passwd")
    assert tab.failed and "nothing to download" in tab.notice


def test_reopen_by_name_only(tab: Tab, tabs: Tabs, config: Config) -> None:
    name = tab.session.folder.name
    other = tabs.get("other")
    for bad in ("../sessions", "/etc", "", None):
        H.reopen(other, bad, tabs)
        assert other.failed and "no session named" in other.notice
    H.reopen(other, name, tabs)
    assert other.failed and "open in another browser tab" in other.notice
    tabs.drop("a")  # the first tab closes: its session is free
    view = H.reopen(other, name, tabs)
    assert not other.failed and "reopened" in view.status


def test_a_session_held_by_another_process_gets_a_clear_message(tab: Tab, tabs: Tabs) -> None:
    folder = tab.session.folder
    tabs.drop("a")
    held = Session.resume(folder)  # as `imagent chat --resume` would hold it
    try:
        t = tabs.get("c")
        H.reopen(t, folder.name, tabs)
        assert t.failed and "in use by another imagent process" in t.notice
    finally:
        held.close()


def test_chat_and_web_share_sessions(config: Config, tabs: Tabs, dark_photo: Path) -> None:
    with Session.open(dark_photo, root=config.root, preview=160) as s:  # started in `imagent chat`
        s.say("brighter")
        name, head = s.folder.name, s.head
    t = tabs.get("d")
    view = H.reopen(t, name, tabs)
    assert f"now at {head}" in view.status and view.chat[0]["content"] == "brighter"
    _run(H.say(t, "warmer"))
    web_head = t.session.head
    tabs.drop("d")
    with Session.resume(config.root / name) as s:  # and back in the terminal
        assert s.head == web_head


def test_two_tabs_work_side_by_side(tabs: Tabs, dark_photo: Path, tmp_path: Path) -> None:
    bright = save_image(sample("astronaut", (160, 120)), tmp_path / "bright.png")
    a, b = tabs.get("x"), tabs.get("y")
    H.upload(a, str(dark_photo))
    H.upload(b, str(bright))
    results: dict[str, list] = {}
    threads = [threading.Thread(target=lambda t=t, k=k, g=g: results.setdefault(k, _run(H.say(t, g))))
               for t, k, g in ((a, "a", "make it brighter"), (b, "b", "darker"))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert a.session.folder != b.session.folder
    assert results["a"][-1].compare[1].mean() > results["a"][-1].compare[0].mean()
    assert results["b"][-1].compare[1].mean() < results["b"][-1].compare[0].mean()
    assert len(session_names(tabs.config.root)) == 2


def test_a_busy_tab_refuses_a_second_action(tab: Tab) -> None:
    with tab.busy():
        view = H.undo(tab)
        assert tab.failed and "still working" in view.status
        final = _run(H.say(tab, "brighter"))[-1]
        assert "still working" in final.status
    with pytest.raises(Busy), tab.busy(), tab.busy():
        pass


def test_planner_key_is_kept_in_memory_only(tab: Tab) -> None:
    secret = "sk-test-never-stored-0123456789"
    view = H.set_planner(tab, "openai:gpt-4o-mini", "none", "", secret)
    assert secret not in view.status and secret not in tab.notice
    for f in tab.session.folder.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f"{f} holds the key"
    H.set_planner(tab, "nonsense", "offline", "", "")
    assert tab.failed and "not understood" in tab.notice
    H.set_planner(tab, "offline", "offline", "", "")
    assert not tab.failed and tab.session.model_name == "offline" and tab.api_key is None


def test_budget(tab: Tab) -> None:
    H.set_budget(tab, 3, 30)
    assert tab.session.options.budget.max_steps == 3 and "at most 3 edits" in tab.notice
    H.set_budget(tab, 0, 30)
    assert tab.failed


def test_no_session_yet(tabs: Tabs) -> None:
    t = tabs.get("z")
    view = H.undo(t)
    assert t.failed and "upload one" in view.status and view.compare is None


def test_commands_that_name_server_paths_are_refused(tab: Tab, tmp_path: Path) -> None:
    for line in (f"/save {tmp_path / 'x.png'}", f"/export {tmp_path / 'x.cube'}", f"/mask sky {tmp_path / 'm.png'}"):
        final = _run(H.say(tab, line))[-1]
        assert tab.failed and "may not name" in final.status
    assert not list(tmp_path.glob("x.*"))
    assert "now at v0" in _run(H.say(tab, "/versions"))[-1].status, "other commands work"


def test_local_model_paths_come_from_the_server_only(tab: Tab) -> None:
    H.set_planner(tab, "hf:/etc", "offline", "", "")
    assert tab.failed and "may not choose" in tab.notice and tab.session.model_name == "offline"
    H.set_planner(tab, "offline", "hf:/etc", "", "")
    assert tab.failed and "may not choose" in tab.notice
    assert "may not choose" in _run(H.say(tab, "/model hf:/etc"))[-1].status
    H.set_planner(tab, "gguf:/etc/passwd", "offline", "", "")
    assert tab.failed and "may not choose" in tab.notice


def test_fetched_local_models_are_offered(config: Config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from agent.local_llm import DEFAULT_MODEL, MODELS

    monkeypatch.setenv("IMAGENT_MODELS", str(tmp_path / "models"))
    assert config.planner_choices() == ["offline"]
    config._local = None
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / MODELS[DEFAULT_MODEL].file).write_bytes(b"")
    assert config.planner_choices() == ["offline", f"local:{DEFAULT_MODEL}"]


def test_closing_a_tab_waits_for_its_request(tab: Tab, tabs: Tabs) -> None:
    steps = H.say(tab, "make it brighter")
    next(steps)  # the request is running and holds the tab
    closer = threading.Thread(target=tabs.drop, args=("a",))
    closer.start()
    closer.join(timeout=0.5)
    assert closer.is_alive() and tab.session is not None, "the session stays open while the request runs"
    list(steps)
    closer.join()
    assert tab.session is None
