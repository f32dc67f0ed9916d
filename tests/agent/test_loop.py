"""The loop driven by scripted models: good plans, bad calls, rollbacks, budgets."""

from __future__ import annotations

import socket

import pytest
from langchain_core.messages import AIMessage, ToolMessage

from agent.goals import Budget, parse_goal
from agent.loop import run_loop
from agent.options import EditOptions
from agent.state import EditSession
from tests.agent.fakes import ScriptedModel, call, say
from tests.helpers import sample
from tools.analysis import measure
from tools.degrade import underexpose


@pytest.fixture
def dark():
    return underexpose(sample("astronaut", (96, 72)), 1.5)


def _run(image, script, instruction="brighten it", max_steps=6, **kw):
    session = EditSession(image)
    goal = parse_goal(instruction, measure(session.original), budget=Budget(max_steps=max_steps))
    model = ScriptedModel(script=script)
    return session, model, run_loop(session, goal, model, **kw)


def _tool_messages(model):
    return [m for m in model.seen[-1] if isinstance(m, ToolMessage)]


def test_a_good_plan_meets_the_targets_and_stops(dark) -> None:
    session, model, res = _run(dark, [say(call("exposure", stops=1.5)), say(text="done")])
    assert res.stop_reason.startswith("all targets met")
    assert res.best.id != "v0" and res.best.score.targets_met == res.best.score.targets_total
    assert [e.outcome for e in res.trace] == ["kept"]
    assert "exposure" in model.bound_tools and "measure" in model.bound_tools
    assert res.model_calls == 1 and res.input_tokens == 100


def test_errors_come_back_as_observations_and_the_loop_goes_on(dark) -> None:
    malformed = AIMessage(content="", invalid_tool_calls=[
        {"name": "exposure", "args": "{stops: oops", "id": "bad1", "error": "not JSON", "type": "invalid_tool_call"}])
    script = [malformed, say(call("sharpenn", amount=1)), say(call("exposure", stops=0.7)),
              say(call("exposure", stops=9)), say(call("exposure", stops=0.8)), say()]
    session, model, res = _run(dark, script)
    errors = [e.reason for e in res.trace if e.outcome == "error"]
    assert any("malformed tool call" in r for r in errors)
    assert any("unknown tool 'sharpenn'" in r for r in errors)
    assert any("stops=9" in r and "between -4" in r for r in errors)
    texts = [m.content for m in _tool_messages(model)]
    assert any("out of range" in t for t in texts), "the model reads the field-level error"
    assert res.stop_reason.startswith("all targets met")


def test_a_destructive_edit_is_rolled_back_and_the_model_told_why(dark) -> None:
    session, model, res = _run(dark, [say(call("blur", sigma=8)), say(call("exposure", stops=1.5)), say()])
    first = res.trace[0]
    assert first.outcome == "rolled_back" and "below the lock" in first.reason
    told = [m.content for m in model.seen[1] if isinstance(m, ToolMessage)]
    assert any("rolled back" in t and "lock" in t for t in told)
    assert all(s.tool != "blur" for s in res.best.recipe.steps)


def test_a_step_that_lowers_the_score_is_rolled_back(dark) -> None:
    session, model, res = _run(dark, [say(call("exposure", stops=-1)), say()])
    assert res.trace[0].outcome == "rolled_back" and "score fell" in res.trace[0].reason
    assert res.best.id == "v0"


def test_a_model_that_never_stops_is_ended_by_the_step_budget(dark) -> None:
    session, model, res = _run(dark, [say(call("exposure", stops=0.05))], instruction="brighten it a lot",
                               max_steps=4)
    assert "step budget spent" in res.stop_reason
    assert len([e for e in res.trace if e.outcome != "error"]) == 4


def test_a_model_that_keeps_failing_stops_with_a_stated_reason(dark) -> None:
    session, model, res = _run(dark, [say(call("no_such_tool"))])
    assert "failed 3 turns in a row" in res.stop_reason and "no_such_tool" in res.stop_reason
    assert res.best.id == "v0"


def test_a_crashing_model_ends_the_run_with_the_best_so_far(dark) -> None:
    def boom(messages):
        raise ConnectionError("server went away")

    session, model, res = _run(dark, [say(call("exposure", stops=0.7)), boom])
    assert "planning model failed" in res.stop_reason and "server went away" in res.stop_reason
    assert res.best.id == "v1"


def test_the_result_is_the_best_version_not_the_last(dark) -> None:
    # the second step overshoots but stays within tolerance of the lock; best must still win
    session, model, res = _run(dark, [say(call("exposure", stops=1.5)), say(call("saturation", amount=-100)), say()],
                               instruction="brighten it")
    assert res.best.score.combined == max(v.score.combined for v in session.versions.values())


def test_vision_models_get_the_preview_attached_and_text_models_do_not(dark) -> None:
    _, model, _ = _run(dark, [say()], options=EditOptions(vision="on"))
    content = model.seen[0][-1].content
    assert isinstance(content, list) and content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    _, model, _ = _run(dark, [say()])
    assert isinstance(model.seen[0][-1].content, str) and "base64" not in model.seen[0][-1].content


def test_pixels_never_travel_in_tool_text(dark) -> None:
    _, model, _ = _run(dark, [say(call("exposure", stops=1.5)), say()])
    for m in _tool_messages(model):
        assert len(m.content) < 600 and "base64" not in m.content


def test_network_is_guarded_in_tests() -> None:
    with pytest.raises(Exception, match="(?i)tried to use socket"):
        socket.create_connection(("93.184.216.34", 80), timeout=1)


def test_a_run_is_met_only_when_every_target_is_and_the_critic_agrees(dark) -> None:
    from agent.critics import Review

    class Unhappy:  # a critic that always finds a fault: targets met is not enough
        name, model_key = "unhappy", None

        def __call__(self, session, version, *, goal, reference=None):
            return Review(critic="unhappy", goal_met=False, score=4.0, issues=["halos"])

    plan = [say(call("exposure", stops=1.5)), say(text="done")]
    _, _, res = _run(dark, plan, critic=Unhappy())
    assert res.best.score.targets_met == res.best.score.targets_total
    assert not res.goal_met and res.unmet == ["the critic is not satisfied (halos)"]
    _, _, res = _run(dark, plan, critic=None)
    assert res.goal_met and res.unmet == []
    _, _, res = _run(dark, [say(text="nothing to do")], critic=None)  # the targets stay unmet
    assert not res.goal_met and res.unmet and all("L*" in u for u in res.unmet[:1])
