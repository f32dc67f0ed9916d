"""Blind "restore this photo" by the rules (`prior=False`; with the learned prior see test_natural.py): unasked fixes only where the measurements give evidence, as far as it goes."""

from __future__ import annotations

import pytest
import torch

from agent import goals
from agent import recipes as goals_recipes
from agent.goals import luminance_of, parse_goal
from agent.offline import BoundTool, decide
from agent.protocol import PlanState, TargetState
from tests.helpers import sample
from tools.analysis import Stats, measure
from tools.degrade import color_cast, haze

pytestmark = pytest.mark.disable_socket

CLEAN = dict(width=64, height=48, mean_L=48.0, median_L=50.0, p01_L=3.0, p05_L=8.0, p95_L=86.0,
             p99_L=94.0, clipped_shadows_pct=0.5, clipped_highlights_pct=0.5, rms_contrast=0.24,
             colorfulness=35.0, cast_a=0.5, cast_b=1.0, cast=1.1, mean_saturation=0.3,
             noise_sigma=0.008, sharpness=0.02, dynamic_range=7.0)


def restore(**changes: float):
    return parse_goal("restore this photo", Stats(**{**CLEAN, **changes}))


def kinds(goal) -> set[str]:
    return {i.name for i in goal.intents}


def target(goal, metric: str):
    return next(t for t in goal.targets if t.metric == metric)


def test_a_clean_photo_is_left_alone():
    assert restore().targets == []


def test_a_warm_scene_under_white_light_keeps_its_colour():
    # coffee-like: the near-neutral cast reads +30 b*, the light's cast 0: no colour fix
    goal = restore(cast_a=26.0, cast_b=32.0, cast=41.0)
    assert "neutralize_cast" not in kinds(goal)


def test_a_light_cast_is_removed_by_its_measured_share():
    goal = restore(illuminant_a=1.0, illuminant_b=10.0)
    t = target(goal, "illuminant_b")
    assert t.low <= 10.0 * (1 - goals.LIGHT_SHARE) <= t.high and t.high < 10.0
    assert not any(t.metric == "illuminant_a" for t in goal.targets)  # 1 unit on a*: nothing to fix


def test_a_sunsets_strong_light_is_eased_by_at_most_the_move_cap():
    # a sunset reads b* +31, +25 of it its own light (dev blind-45): removing half took white_balance to -80
    t = target(restore(illuminant_b=31.0), "illuminant_b")
    assert t.low <= 31.0 - goals_recipes.LIGHT_MOVE_MAX <= t.high and t.low > 31.0 * (1 - goals.LIGHT_SHARE)


def test_a_veil_sets_levels_not_a_gentle_contrast_nudge():
    # both tone ends short of black and white (a fade toward grey): one levels call off both ends
    goal = restore(p01_L=35.0, p99_L=72.0, rms_contrast=0.08, mean_saturation=0.1, black_lift=0.2, white_drop=0.2)
    assert "set_levels" in kinds(goal) and not kinds(goal) & {"more_contrast", "more_saturation"}
    step = next(i for i in goal.intents if i.name == "set_levels").steps[0]
    v = 0.2 - goals_recipes.VEIL_CLEAN
    assert step == {"tool": "levels", "params": {"black": pytest.approx(v), "white": pytest.approx(1 - v)}}
    assert target(goal, "p01_L").high < 35.0 < 72.0 < target(goal, "p99_L").low


def test_lifted_blacks_alone_are_a_high_key_photos_own_and_haze_lifts_black_more():
    assert "set_levels" not in kinds(restore(p01_L=35.0, mean_L=75.0, black_lift=0.3, white_drop=0.0))
    # a high-key photo with a veil: the black end no further than the white's (its blacks are its light)
    bright = goals_recipes.veil_levels(Stats(**{**CLEAN, "mean_L": 75.0, "black_lift": 0.3, "white_drop": 0.1}))
    assert bright["black"] == pytest.approx(1 - bright["white"]) == pytest.approx(0.08)
    # the same ends on a mid-key photo read as haze: the black end further, up to VEIL_HAZE times
    hazy = goals_recipes.veil_levels(Stats(**{**CLEAN, "mean_L": 55.0, "black_lift": 0.3, "white_drop": 0.1}))
    assert hazy["black"] == pytest.approx(0.28) and hazy["white"] == pytest.approx(0.92)


def test_a_solved_levels_call_that_broke_the_lock_is_retried_at_half():
    from agent.protocol import Attempt

    ts = [TargetState(label="black", metric="p01_L", op="<=", high=8.0, value=40.0),
          TargetState(label="white", metric="p99_L", op=">=", low=80.0, value=70.0)]
    props = {k: {"type": "number", "minimum": 0, "maximum": 1} for k in ("black", "white")}
    tools = {"levels": BoundTool("levels", props)}
    stats = {"p01_L": 40.0, "p99_L": 70.0, "mean_L": 55.0}
    first = decide(PlanState(instruction="restore", intents=[{"name": "set_levels"}], targets=ts, stats=stats),
                   tools).calls[0].args
    broke = Attempt(tool="levels", params={**first, "black": first["black"] + 0.01}, kept=False, kind="lock",
                    reason="structure lock")
    again = decide(PlanState(instruction="restore", intents=[{"name": "set_levels"}], targets=ts, stats=stats,
                             history=[broke]), tools).calls[0].args
    assert again["black"] == pytest.approx(first["black"] / 2, abs=0.01)


def test_exposure_needs_the_white_point_and_the_mean_to_agree():
    dim = restore(mean_L=22.0, median_L=20.0, p99_L=50.0)
    brighten = next(i for i in dim.intents if i.name == "brighten")
    expected = goals._stops_to(50.0, goals.EXPOSE_WHITE)  # the smaller of the two changes
    assert brighten.stops == pytest.approx(expected, abs=0.01)
    t = target(dim, "mean_L")
    assert t.low < goals.lstar(luminance_of(22.0) * 2**expected) < t.high
    # a low-key photo with bright highlights: the mean says brighten, the white point does not
    assert not kinds(restore(mean_L=26.0, p99_L=95.0)) & {"brighten", "darken"}


def test_noise_is_denoised_at_full_degree():
    goal = restore(noise_sigma=0.04)
    assert target(goal, "noise_sigma").high == pytest.approx(0.04 * 0.6)


def test_levels_are_solved_from_both_percentiles():
    stats = {"p01_L": 40.0, "p99_L": 70.0, "mean_L": 55.0}
    ts = [TargetState(label="black", metric="p01_L", op="<=", high=8.0, value=40.0),
          TargetState(label="white", metric="p99_L", op=">=", low=80.0, value=70.0)]
    ps = PlanState(instruction="restore", intents=[{"name": "set_levels"}], targets=ts, stats=stats)
    props = {k: {"type": "number", "minimum": 0, "maximum": 1} for k in ("black", "white")}
    calls = decide(ps, {"levels": BoundTool("levels", props), "whites_blacks": BoundTool("whites_blacks")}).calls
    assert [c.name for c in calls] == ["levels"]
    black, white = calls[0].args["black"], calls[0].args["white"]
    # the measured black (L* 40 ~ sRGB 0.39) and white (L* 70 ~ 0.68) land on the aims (L* 6 and 82)
    from tools.colorspace import linear_to_srgb

    srgb = {L: float(linear_to_srgb(torch.tensor(luminance_of(L)))) for L in (40.0, 70.0, 6.0, 82.0)}
    assert (srgb[40.0] - black) / (white - black) == pytest.approx(srgb[6.0], abs=0.01)
    assert (srgb[70.0] - black) / (white - black) == pytest.approx(srgb[82.0], abs=0.01)


def test_restore_end_to_end_eases_haze_and_a_warm_light_and_named_haze_is_dehazed():
    from agent.api import edit
    from tools.metrics import psnr

    clean = sample("astronaut", (96, 96))
    bad = haze(color_cast(clean, 1.2, 1.0, 0.8), 0.65, 0.9)
    # haze that leaves the whites whole reads like a high-key photo's light (issue 12): a blind goal sets no
    # levels, it removes the light's cast and lowers the exposure; a goal that names the haze dehazes
    res = edit(bad, "restore this photo", model="offline", lock=0.7, preview=96, prior=False)
    assert "neutralize_cast" in kinds(res.goal) and "set_levels" not in kinds(res.goal)
    assert psnr(res.image, clean) > psnr(bad, clean) + 1
    assert res.score.structure >= 0.7
    assert abs(measure(res.image).illuminant_b) < abs(measure(bad).illuminant_b)
    # a named cast moves each axis only as far as the light's cast on it (a*: 0.6, left): +3.9 dB, was +4.6
    named = edit(bad, "remove the haze and the warm cast", model="offline", lock=0.7, preview=96, prior=False)
    assert psnr(named.image, clean) > psnr(bad, clean) + 3.5
    assert torch.equal(bad, haze(color_cast(clean, 1.2, 1.0, 0.8), 0.65, 0.9))  # the input is untouched


# --- blur and JPEG (Stats.blur_sigma, Stats.blockiness) -------------------------------------


def test_a_sharp_unblocked_photo_is_not_sharpened_or_deblocked():
    goal = restore(blur_sigma=0.8, blockiness=1.1)
    assert not kinds(goal) & {"deblur", "deblock"}


def test_a_blurred_photo_gets_a_blur_target_a_blocky_one_a_deblock():
    goal = restore(blur_sigma=1.5, blockiness=1.8)
    assert {"deblur", "deblock"} <= kinds(goal)
    t = target(goal, "blur_sigma")
    assert goals.BLUR_CLEAN < t.high < 1.5
    assert target(goal, "blockiness").high < 1.8


def test_noise_is_denoised_instead_of_deblocked():
    assert "deblock" not in kinds(restore(noise_sigma=0.04, blockiness=1.8))


def _deblur_call(noise: float, intents: list[str] = (), history=()) -> dict | None:
    ts = [TargetState(label="blur", metric="blur_sigma", op="<=", high=1.1, value=1.45)]
    ps = PlanState(instruction="restore", intents=[{"name": "deblur"}] + [{"name": n} for n in intents],
                   targets=ts, stats={"blur_sigma": 1.45, "noise_sigma": noise}, history=list(history))
    props = {"amount": {"type": "number", "minimum": 0, "maximum": 5},
             "radius": {"type": "number", "minimum": 0.3, "maximum": 10},
             "threshold": {"type": "number", "minimum": 0, "maximum": 0.25}}
    calls = decide(ps, {"sharpen": BoundTool("sharpen", props)}).calls
    return calls[0].args if calls else None


def test_deblur_sharpens_once_less_with_noise_and_not_at_all_when_noisy():
    sharp = _deblur_call(0.001)
    assert sharp["amount"] > 4 and sharp["radius"] == pytest.approx(0.6 * (1.45**2 - 0.8**2) ** 0.5, abs=0.01)
    assert _deblur_call(0.008)["amount"] < sharp["amount"]
    assert _deblur_call(0.008, ["denoise"])["amount"] <= 3
    assert _deblur_call(0.02) is None  # noise would be sharpened more than the detail
    from agent.protocol import Attempt

    done = Attempt(tool="sharpen", params=sharp, kept=True, reason="kept", before={}, after={})
    assert _deblur_call(0.001, history=[done]) is None  # once only


def test_restore_end_to_end_sharpens_a_blurred_photo():
    from agent.api import edit
    from tools.degrade import blur
    from tools.metrics import psnr

    clean = sample("astronaut", (96, 96))
    bad = blur(clean, 1.0)
    res = edit(bad, "restore this photo", model="offline", lock=0.7, preview=96, prior=False)
    assert "deblur" in kinds(res.goal)
    assert psnr(res.image, clean) > psnr(bad, clean) + 2
    assert res.score.structure >= 0.7
