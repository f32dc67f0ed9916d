"""The planners: LangChain's standard chat-model unit suite, the offline policy, make_planner."""

from __future__ import annotations

import importlib.util
import math
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_tests.unit_tests import ChatModelUnitTests
from pydantic import BaseModel, Field

from agent.goals import luminance_of as lum
from agent.offline import BoundTool, decide
from agent.planners import OfflinePlanner, PlannerError, make_planner
from agent.protocol import Attempt, PlanState, TargetState, render_state

# Planners must never reach the network in tests: any socket fails loudly (pytest-socket).
pytestmark = pytest.mark.disable_socket


class TestOfflinePlannerStandard(ChatModelUnitTests):
    """LangChain's conformance suite (unit part: no network)."""

    @property
    def chat_model_class(self) -> type[OfflinePlanner]:
        return OfflinePlanner

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "imagent-offline-1"}

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return False  # it plans image edits; it does not fill arbitrary schemas

    @property
    def returns_usage_metadata(self) -> bool:
        return True


# ----------------------------------------------------------------------------- fixtures


class ExposureArgs(BaseModel):
    """Brighten or darken the whole image like a camera's EV dial."""

    stops: float = Field(0.0, ge=-4, le=4, description="EV change")


class WhiteBalanceArgs(BaseModel):
    """Warm or cool the light and correct green/magenta tints."""

    temperature: float = Field(0.0, ge=-100, le=100, description="+ warmer (yellow), - cooler (blue)")
    tint: float = Field(0.0, ge=-100, le=100, description="+ magenta, - green")


class AutoWhiteBalanceArgs(BaseModel):
    """Neutralise a colour cast automatically (grey world)."""


class GammaArgs(BaseModel):
    """Brighten or darken the midtones."""

    gamma: float = Field(1.0, ge=0.1, le=10, description="out = in ** (1/gamma); above 1 brightens")


def fake_tools() -> list[type[BaseModel]]:
    """Stand-ins with the argument names the registry uses; the real ones are tested end to end."""
    exposure = type("exposure", (ExposureArgs,), {"__doc__": ExposureArgs.__doc__})
    wb = type("white_balance", (WhiteBalanceArgs,), {"__doc__": WhiteBalanceArgs.__doc__})
    awb = type("auto_white_balance", (AutoWhiteBalanceArgs,), {"__doc__": AutoWhiteBalanceArgs.__doc__})
    gamma = type("gamma", (GammaArgs,), {"__doc__": GammaArgs.__doc__})
    return [exposure, wb, awb, gamma]


STATS = {"mean_L": 30.0, "median_L": 28.0, "p05_L": 5.0, "p95_L": 70.0, "rms_contrast": 0.2,
         "cast_a": 0.0, "cast_b": 0.0, "cast": 0.0, "mean_saturation": 0.3,
         "noise_sigma": 0.005, "sharpness": 0.003}


def state_msg(targets: list[TargetState], stats: dict[str, float] | None = None,
              history: list[Attempt] | None = None, **kw: Any) -> HumanMessage:
    st = {**STATS, **(stats or {})}
    ps = PlanState(instruction="test", targets=targets, stats=st, original_stats=STATS,
                   history=history or [], steps_left=8, **kw)
    return HumanMessage(content="Goal: test\n" + render_state(ps))


def brighten_target(value: float = 30.0) -> TargetState:
    return TargetState(label="brighter", metric="mean_L", op="between", low=45, high=62, value=value,
                       met=45 <= value <= 62)


def plan(*msgs: Any) -> AIMessage:
    model = OfflinePlanner().bind_tools(fake_tools())
    return model.invoke([SystemMessage(content="sys"), *msgs])


def analytic_stops(L: float, aim: float) -> float:
    return math.log2(lum(aim) / lum(L))


# ----------------------------------------------------------------------------- policy


def test_plain_chat_answers_in_text() -> None:
    ai = OfflinePlanner().invoke("hello, can you edit photos?")
    assert not ai.tool_calls
    assert "offline planner" in ai.content and "goal" in ai.content
    assert ai.usage_metadata["input_tokens"] > 0 and ai.usage_metadata["output_tokens"] > 0


def test_dark_image_gets_analytic_exposure() -> None:
    ai = plan(state_msg([brighten_target(30.0)]))
    assert [c["name"] for c in ai.tool_calls] == ["exposure"]
    call = ai.tool_calls[0]
    assert call["id"] and call["type"] == "tool_call"
    expected = analytic_stops(30.0, 53.5)  # the middle of 45..62
    assert call["args"]["stops"] > 0
    assert abs(call["args"]["stops"] - expected) < 0.05, (call["args"], expected)


def test_blue_cast_is_warmed() -> None:
    t = TargetState(label="neutral colour", metric="cast_b", op="between", low=-2, high=2, value=-8.0)
    ai = plan(state_msg([t], {"cast_b": -8.0, "cast": 8.0}))
    names = [c["name"] for c in ai.tool_calls]
    assert names == ["white_balance"]
    assert ai.tool_calls[0]["args"]["temperature"] > 0


def test_strong_cast_tries_grey_world_first() -> None:
    t = TargetState(label="neutral colour", metric="cast_b", op="between", low=-2, high=2, value=-20.0)
    ai = plan(state_msg([t], {"cast_b": -20.0, "cast": 20.0}))
    assert [c["name"] for c in ai.tool_calls] == ["auto_white_balance"]


def test_white_balance_and_exposure_in_one_turn() -> None:
    cast = TargetState(label="neutral colour", metric="cast_b", op="between", low=-2, high=2, value=-8.0)
    ai = plan(state_msg([brighten_target(30.0), cast], {"cast_b": -8.0, "cast": 8.0}))
    assert sorted(c["name"] for c in ai.tool_calls) == ["exposure", "white_balance"]
    assert len({c["id"] for c in ai.tool_calls}) == 2


def test_secant_corrects_an_undershoot() -> None:
    first = analytic_stops(30.0, 53.5)
    # The step moved L* 30 -> 42 only: the real gain is about half the prior.
    undershoot = Attempt(tool="exposure", params={"stops": round(first, 3)}, kept=True, reason="L* 30->42",
                         before={"mean_L": 30.0}, after={"mean_L": 42.0})
    ai = plan(state_msg([brighten_target(42.0)], {"mean_L": 42.0}, [undershoot]))
    stops = ai.tool_calls[0]["args"]["stops"]
    naive = analytic_stops(42.0, 53.5)  # what the prior gain alone would ask for
    gain = (math.log2(lum(42.0)) - math.log2(lum(30.0))) / round(first, 3)
    assert stops > naive * 1.3
    assert abs(stops - naive / gain) < 0.05


def test_rolled_back_call_is_not_repeated() -> None:
    stops = round(analytic_stops(30.0, 53.5), 3)
    locked = Attempt(tool="exposure", params={"stops": stops}, kept=False, kind="lock",
                     reason="structure similarity to the original fell to 0.712, below the lock 0.80",
                     before={"mean_L": 30.0}, after={"mean_L": 55.0})
    ai = plan(state_msg([brighten_target(30.0)], history=[locked]))
    call = ai.tool_calls[0]
    assert call["name"] == "exposure"
    assert call["args"]["stops"] != stops
    assert 0.3 * stops < call["args"]["stops"] < 0.7 * stops  # about half strength


def test_two_failures_switch_tool_then_give_up() -> None:
    def fail(tool: str, params: dict[str, float]) -> Attempt:
        return Attempt(tool=tool, params=params, kept=False, reason="the overall score fell from 0.5 to 0.4",
                       before={"mean_L": 30.0}, after={"mean_L": 31.0})

    history = [fail("exposure", {"stops": 1.8}), fail("exposure", {"stops": 0.9})]
    ai = plan(state_msg([brighten_target(30.0)], history=history))
    assert [c["name"] for c in ai.tool_calls] == ["gamma"]
    history += [fail("gamma", {"gamma": 1.8}), fail("gamma", {"gamma": 1.4})]
    ai = plan(state_msg([brighten_target(30.0)], history=history))
    assert not ai.tool_calls
    assert "brighter" in ai.content


def test_score_rollback_moves_on_to_the_next_target() -> None:
    cast = TargetState(label="neutral colour", metric="cast_b", op="between", low=-2, high=2, value=-8.0)
    fell = Attempt(tool="exposure", params={"stops": 1.8}, kept=False, reason="the overall score fell",
                   before={"mean_L": 30.0}, after={"mean_L": 50.0})
    ai = plan(state_msg([brighten_target(30.0), cast], {"cast_b": -8.0, "cast": 8.0}, [fell]))
    assert [c["name"] for c in ai.tool_calls] == ["white_balance"]


def test_all_met_means_no_calls() -> None:
    ai = plan(state_msg([brighten_target(50.0)], {"mean_L": 50.0}))
    assert not ai.tool_calls
    assert "met" in ai.content


def test_only_bound_tools_are_called() -> None:
    model = OfflinePlanner().bind_tools(fake_tools()[1:])  # no exposure
    ai = model.invoke([state_msg([brighten_target(30.0)])])
    assert [c["name"] for c in ai.tool_calls] == ["gamma"]


def test_dehaze_intent_uses_dehaze_and_mono_intent_converts() -> None:
    haze_t = TargetState(label="more contrast", metric="rms_contrast", op=">=", low=0.15, value=0.1)
    ps = PlanState(instruction="remove the haze", intents=[{"name": "dehaze"}], targets=[haze_t],
                   stats={**STATS, "rms_contrast": 0.1})
    tools = {n: BoundTool(n, {"amount": {"type": "number", "minimum": -1, "maximum": 1}})
             for n in ("dehaze", "contrast")}
    assert [c.name for c in decide(ps, tools).calls] == ["dehaze"]
    mono = [TargetState(label="grey", metric="mean_saturation", op="<=", high=0.02, value=0.3),
            TargetState(label="grey", metric="colorfulness", op="<=", high=3, value=40)]
    ps = PlanState(instruction="black and white", intents=[{"name": "black_and_white"}], targets=mono,
                   stats=STATS)
    tools = {n: BoundTool(n, {"strength": {"type": "number", "minimum": 0, "maximum": 1},
                              "amount": {"type": "number", "minimum": -100, "maximum": 100}})
             for n in ("black_and_white", "saturation")}
    calls = decide(ps, tools).calls
    assert [(c.name, c.args) for c in calls] == [("black_and_white", {"strength": 1.0})]


def test_wanted_cast_is_not_undone_by_auto_white_balance() -> None:
    warm = TargetState(label="warmer", metric="cast_b", op="between", low=20, high=26, value=14.0)
    fell = Attempt(tool="white_balance", params={"temperature": 40.0, "tint": 0.0}, kept=False,
                   reason="the overall score fell", before={"cast_b": 14.0}, after={"cast_b": 40.0})
    ai = plan(state_msg([warm], {"cast_b": 14.0, "cast": 20.0}, [fell]))
    names = [c["name"] for c in ai.tool_calls]
    assert "auto_white_balance" not in names
    if names:  # a gentler warming, below the step that overshot
        assert 0 < ai.tool_calls[0]["args"]["temperature"] < 40.0


def test_vision_messages_are_read_and_counted() -> None:
    text = state_msg([brighten_target(30.0)]).content
    msg = HumanMessage(content=[{"type": "text", "text": text},
                                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}])
    ai = plan(msg)
    assert [c["name"] for c in ai.tool_calls] == ["exposure"]
    assert ai.usage_metadata["input_tokens"] > len(text) // 4 + 80  # the image is billed too


def test_unmeasurable_goal_is_explained() -> None:
    ps = PlanState(instruction="add a rainbow", unmapped=["add a rainbow"], stats=STATS)
    ai = plan(HumanMessage(content=render_state(ps)))
    assert not ai.tool_calls and "add a rainbow" in ai.content


# ----------------------------------------------------------------------------- make_planner


def test_make_planner_offline() -> None:
    assert isinstance(make_planner("offline"), OfflinePlanner)
    assert isinstance(make_planner(), OfflinePlanner)


@pytest.mark.parametrize("spec", ["nonsense", "", "openai:", ":gpt-4o", "offline:x"])
def test_make_planner_rejects_malformed(spec: str) -> None:
    with pytest.raises(PlannerError, match="offline"):
        make_planner(spec)


def test_make_planner_never_downloads_hub_models() -> None:
    with pytest.raises(PlannerError, match="hf:/path"):
        make_planner("huggingface:Qwen/Qwen2.5-0.5B-Instruct")


def test_make_planner_unknown_provider() -> None:
    with pytest.raises(PlannerError, match="unknown model provider"):
        make_planner("acme:brain-1")


def test_make_planner_provider_needs_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("langchain_openai") is None:
        with pytest.raises(PlannerError, match="install langchain-openai to use openai: models"):
            make_planner("openai:gpt-4o-mini")
    else:  # constructing makes no request; a dummy key is enough
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        model = make_planner("openai:gpt-4o-mini", base_url="http://127.0.0.1:9/v1")
        assert model.bind_tools(fake_tools()) is not None


def test_make_planner_hf_paths(tmp_path: Any) -> None:
    with pytest.raises(PlannerError, match="does not exist"):
        make_planner(f"hf:{tmp_path / 'missing'}")
    if importlib.util.find_spec("langchain_huggingface") is None:
        with pytest.raises(PlannerError, match="install langchain-huggingface to use hf: models"):
            make_planner(f"hf:{tmp_path}")


# ----------------------------------------------------------------------------- end to end


def test_loop_brightens_an_underexposed_photo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGENT_NO_EMBEDDINGS", "1")  # the keyword parser is enough for "brighten"
    from agent.goals import parse_goal
    from agent.loop import Budget, run_loop
    from agent.options import EditOptions
    from agent.state import EditSession
    from tests.helpers import sample
    from tools.analysis import measure
    from tools.degrade import underexpose

    session = EditSession(underexpose(sample("astronaut", (96, 72)), 1.5))
    goal = parse_goal("brighten", measure(session.original))
    assert any(t.metric == "mean_L" for t in goal.targets)
    result = run_loop(session, goal, make_planner("offline"), EditOptions(budget=Budget(max_steps=8)))
    score = result.best.score
    assert score.targets_met == score.targets_total, (result.stop_reason, result.trace)
    assert len(result.best.recipe.steps) <= 8
    assert result.trace[0].tool == "exposure" and result.trace[0].params["stops"] > 0.5
    assert result.input_tokens > 0 and result.output_tokens > 0


def test_loop_fixes_exposure_cast_and_contrast_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGENT_NO_EMBEDDINGS", "1")
    from agent.goals import parse_goal
    from agent.loop import Budget, run_loop
    from agent.options import EditOptions
    from agent.state import EditSession
    from tests.helpers import sample
    from tools.analysis import measure
    from tools.degrade import color_cast, low_contrast, underexpose

    bad = color_cast(underexpose(low_contrast(sample("chelsea", (96, 72)), 0.8), 1.3), r=0.85, b=1.25)
    session = EditSession(bad)
    goal = parse_goal("fix the exposure and the blue colour cast, and add a little contrast",
                      measure(session.original))
    result = run_loop(session, goal, make_planner("offline"), EditOptions(budget=Budget(max_steps=8)))
    score = result.best.score
    assert score.targets_met == score.targets_total, (result.stop_reason, result.trace)
    first_turn = [e.tool for e in result.trace if e.turn == 1]
    assert "exposure" in first_turn  # light and colour balance come first
