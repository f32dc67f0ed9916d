"""EditOptions assembled in one place: keywords or flags > settings > defaults, carried by the
API, batch and chat alike."""

from __future__ import annotations

import pytest
import torch

from agent.batch import Job
from agent.configure import edit_options
from agent.errors import UserError
from agent.options import Budget, EditOptions
from agent.settings import Settings
from tests.helpers import sample
from tools.degrade import underexpose


def test_flat_keywords_set_options_and_settings_fill_the_rest() -> None:
    cfg = Settings(max_seconds=33.0, op_timeout=7.0, max_invalid_calls=2)
    o = edit_options(settings=cfg, lock=0.7, max_steps=3, prior=False)
    assert (o.lock, o.budget.max_steps, o.prior) == (0.7, 3, False)
    assert (o.budget.max_seconds, o.op_timeout, o.max_invalid_calls) == (33.0, 7.0, 2)
    assert o.preview == EditOptions().preview and o.vision == "auto"


def test_what_options_set_wins_over_settings_and_keywords_win_over_options() -> None:
    cfg = Settings(max_seconds=33.0, max_invalid_calls=2)
    o = edit_options(EditOptions(budget=Budget(max_seconds=5.0), max_invalid_calls=4), cfg)
    assert o.budget.max_seconds == 5.0 and o.max_invalid_calls == 4
    o2 = edit_options(o, Settings(max_seconds=99.0), max_seconds=9.0, critique_every=2)
    assert o2.budget.max_seconds == 9.0 and o2.max_invalid_calls == 4 and o2.critique_every == 2


def test_vision_takes_the_api_booleans_too() -> None:
    cfg = Settings()
    assert edit_options(settings=cfg, vision=True).vision == "on"
    assert edit_options(settings=cfg, vision=False).vision == "off"
    assert edit_options(settings=cfg, vision="auto").vision == "auto"


def test_an_unknown_or_bad_option_is_one_line_naming_it() -> None:
    with pytest.raises(TypeError, match=r"unknown edit option\(s\) lok; known: .*\block\b"):
        edit_options(settings=Settings(), lok=0.7)
    for bad in ({"critique_every": 0}, {"vision": "sometimes"}, {"max_steps": 0}, {"lock": 1.5}):
        with pytest.raises(UserError, match=f"edit option '{next(iter(bad))}'") as err:
            edit_options(settings=Settings(), **bad)
        assert "\n" not in str(err.value)


def test_a_batch_job_reaches_its_worker_process_unchanged() -> None:
    job = Job("offline", "none", None, edit_options(settings=Settings(), lock=0.9, max_steps=2, vision="off"))
    again = Job.from_json(job.to_json())
    assert again == job and again.portable
    assert not Job(object(), None, None, job.options).portable


def test_vision_on_shows_the_planner_the_preview_and_off_does_not() -> None:
    from agent.api import edit
    from tests.agent.fakes import ScriptedModel, say

    def images_seen(vision: str) -> int:
        model = ScriptedModel(script=[say()])
        edit(underexpose(sample("astronaut", (64, 48)), 1.0), "brighten it", model=model, critic="none",
             vision=vision, max_steps=1)
        parts = [p for msgs in model.seen for m in msgs if isinstance(m.content, list) for p in m.content]
        return sum(p.get("type") == "image_url" for p in parts if isinstance(p, dict))

    assert images_seen("on") >= 1
    assert images_seen("off") == 0


def test_a_chat_session_carries_its_options(tmp_path) -> None:
    from agent.chat import Session

    img = torch.full((1, 3, 80, 96), 0.3)
    with Session.open(img, session=tmp_path / "a", lock=0.9, max_steps=2, preview=64) as s:
        assert s.options.lock == 0.9 and s.options.budget.max_steps == 2 and s.preview == 64
    opts = EditOptions(lock=0.95, preview=72)
    with Session.open(img, session=tmp_path / "b", options=opts) as s:
        assert s.options.lock == 0.95 and s.preview == 72
    with Session.resume(tmp_path / "b", max_steps=5) as s:
        assert s.options.budget.max_steps == 5 and s.preview == 72  # the folder keeps its preview
