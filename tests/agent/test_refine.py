"""agent.refine: the chosen steps' continuous params fitted jointly by autograd."""

from __future__ import annotations

import pytest
import torch

from agent.goals import Target
from agent.refine import STATS, Objective, continuous_fields, refine, soft_stats
from tests.helpers import sample
from tools.analysis import measure
from tools.color import white_balance_gains
from tools.metrics import psnr
from tools.recipe import Recipe, Step, apply_recipe
from tools.registry import get

LOOK = [{"tool": "exposure", "params": {"stops": -0.4}},
        {"tool": "white_balance", "params": {"temperature": 30.0, "tint": -12.0}},
        {"tool": "contrast", "params": {"amount": 15.0}},
        {"tool": "saturation", "params": {"amount": -30.0}}]


def render(image: torch.Tensor, steps: list[dict]) -> torch.Tensor:
    return apply_recipe(image, Recipe(steps=[Step(**s) for s in steps]), fuse=False)


def params(steps: list[dict], tool: str) -> dict:
    return next(s["params"] for s in steps if s["tool"] == tool)


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return sample("coffee", (64, 48))


def test_hue_is_fitted_too(photo: torch.Tensor) -> None:
    ref = get("hue")(photo, {"degrees": 25})
    r = refine(photo, [{"tool": "hue", "params": {"degrees": 5}}], Objective(reference=ref), iters=15)
    assert params(r.steps, "hue")["degrees"] == pytest.approx(25, abs=1)


def test_fits_the_params_of_the_chosen_steps_to_a_reference(photo: torch.Tensor) -> None:
    ref = render(photo, LOOK)
    rough = [{"tool": "exposure", "params": {"stops": 0.2}},
             {"tool": "white_balance", "params": {"temperature": 0.0, "tint": 0.0}},  # neutral: still fitted
             {"tool": "contrast", "params": {"amount": -20.0}},
             {"tool": "saturation", "params": {"amount": 10.0}}]
    r = refine(photo, rough, Objective(reference=ref))
    assert psnr(render(photo, rough), ref) < 30
    assert psnr(r.image, ref) > 45
    assert r.loss_after < r.loss_before / 100
    assert [s["tool"] for s in r.steps] == [s["tool"] for s in LOOK]
    assert params(r.steps, "exposure")["stops"] == pytest.approx(-0.4, abs=0.03)
    assert params(r.steps, "white_balance")["temperature"] == pytest.approx(30, abs=3)
    assert params(r.steps, "saturation")["amount"] == pytest.approx(-30, abs=3)
    assert set(r.fitted) >= {"exposure.stops", "white_balance.temperature", "white_balance.tint"}
    assert torch.equal(r.image, render(photo, r.steps)), "the image is the returned steps' ordinary rendering"


def test_fitted_params_stay_inside_the_registry_bounds(photo: torch.Tensor) -> None:
    ref = get("exposure")(get("exposure")(photo, {"stops": -4}), {"stops": -3})  # 7 EV darker: past -4
    r = refine(photo, [{"tool": "exposure", "params": {"stops": -2.0}}], Objective(reference=ref), iters=15)
    assert params(r.steps, "exposure")["stops"] == -4
    assert r.loss_after < r.loss_before
    for s in r.steps:
        get(s["tool"]).validate(s["params"])


def test_never_worse_than_the_input(photo: torch.Tensor) -> None:
    ref = render(photo, LOOK)
    r = refine(photo, LOOK, Objective(reference=ref), iters=10)  # the input is already the optimum
    assert r.loss_after == r.loss_before == 0
    assert r.steps == [Step(**s).model_dump() for s in LOOK]
    assert r.note


def test_a_step_autograd_cannot_reach_is_kept_as_is(photo: torch.Tensor) -> None:
    ref = get("hsl")(get("exposure")(photo, {"stops": 0.5}), {"blue_saturation": -20})
    steps = [{"tool": "exposure", "params": {"stops": 0.0}},
             {"tool": "flip", "params": {"horizontal": True}},  # no continuous params
             {"tool": "flip", "params": {"horizontal": True}},
             {"tool": "hsl", "params": {"blue_saturation": -20}}]  # its tables are numpy: no tensors
    r = refine(photo, steps, Objective(reference=ref), iters=15)
    assert params(r.steps, "exposure")["stops"] == pytest.approx(0.5, abs=0.02)
    assert r.steps[1:] == [Step(**s).model_dump() for s in steps[1:]]
    assert r.fitted == ["exposure.stops"]


def test_targets_on_measured_stats(photo: torch.Tensor) -> None:
    targets = [Target(metric="mean_L", op="between", low=60, high=62), Target(metric="cast_b", op="<=", high=20)]
    r = refine(photo, [{"tool": "exposure", "params": {"stops": 0.0}},
                       {"tool": "white_balance", "params": {"temperature": 0.0}}], Objective(targets=targets))
    stats = measure(r.image)
    assert 59.5 <= stats.mean_L <= 62.5
    assert measure(photo).mean_L < 50 and measure(photo).cast_b > 30
    assert stats.cast_b <= 20.5
    assert r.loss_after < r.loss_before


def test_hold_keeps_the_smallest_change_that_meets_a_target(photo: torch.Tensor) -> None:
    start = measure(photo).mean_L
    target = [Target(metric="mean_L", op=">=", low=start + 8)]
    steps = [{"tool": "exposure", "params": {"stops": 1.5}}]  # overshoots the target
    free = refine(photo, steps, Objective(targets=target))
    held = refine(photo, steps, Objective(targets=target, hold=1.0))
    assert params(free.steps, "exposure")["stops"] == 1.5  # already met: nothing to gain
    assert start + 8 <= measure(held.image).mean_L <= start + 9.5  # met, not overshot
    assert params(held.steps, "exposure")["stops"] < 1.0


def test_extra_tools_are_added_only_where_they_help(photo: torch.Tensor) -> None:
    ref = get("saturation")(get("exposure")(photo, {"stops": 0.3}), {"amount": -40})
    r = refine(photo, [{"tool": "exposure", "params": {"stops": 0.0}}], Objective(reference=ref),
               extra=("saturation", "contrast"))
    assert [s["tool"] for s in r.steps] == ["exposure", "saturation"]
    assert params(r.steps, "saturation")["amount"] == pytest.approx(-40, abs=3)


def test_the_lock_and_the_guard_are_kept(photo: torch.Tensor) -> None:
    ref = get("exposure")(photo, {"stops": 0.5})
    steps = [{"tool": "exposure", "params": {"stops": 0.0}}]
    # a tone change keeps the structure near, not exactly, 1: a lock of 1 refuses every change
    locked = refine(photo, steps, Objective(reference=ref), lock=1.0, iters=10)
    assert params(locked.steps, "exposure")["stops"] == 0 and locked.loss_after == locked.loss_before
    refused = refine(photo, steps, Objective(reference=ref), iters=10, guard=lambda original, image: "clipped")
    assert params(refused.steps, "exposure")["stops"] == 0 and "guard" in refused.note
    kept = refine(photo, steps, Objective(reference=ref), lock=0.8, iters=10)
    assert params(kept.steps, "exposure")["stops"] == pytest.approx(0.5, abs=0.02)


def test_a_masked_step_is_fitted_inside_its_mask(photo: torch.Tensor) -> None:
    mask = torch.zeros(1, 1, 48, 64)
    mask[..., :, :32] = 1
    ref = get("exposure")(photo, {"stops": -0.7}, mask=mask)
    r = refine(photo, [{"tool": "exposure", "params": {"stops": 0.0}, "mask": "left"}], Objective(reference=ref),
               masks={"left": mask}, iters=15)
    assert params(r.steps, "exposure")["stops"] == pytest.approx(-0.7, abs=0.03)
    assert r.steps[0]["mask"] == "left"


def test_soft_stats_agree_with_measure(photo: torch.Tensor) -> None:
    warm = get("white_balance")(photo, {"temperature": 40})
    for image in (photo, warm):
        stats = measure(image)
        soft = soft_stats(image.clone().requires_grad_(True))
        for name in STATS:
            assert float(soft[name].detach()) == pytest.approx(getattr(stats, name), rel=0.02, abs=0.3), name
        assert soft["mean_L"].requires_grad


def test_white_balance_gains_under_autograd_equal_the_float_ones() -> None:
    t = torch.tensor(35.0, dtype=torch.float64, requires_grad=True)
    k = torch.tensor(-20.0, dtype=torch.float64, requires_grad=True)
    g = white_balance_gains(t, k)
    assert torch.allclose(g.detach(), torch.from_numpy(white_balance_gains(35.0, -20.0)), atol=1e-12)
    g[2].backward()
    assert float(t.grad) < 0  # warmer: less blue


def test_continuous_fields_are_read_off_the_params_model() -> None:
    assert continuous_fields(get("white_balance")) == {"temperature": (-100.0, 100.0), "tint": (-100.0, 100.0)}
    assert continuous_fields(get("levels"))["midtone"] == (0.1, 10.0)
    assert continuous_fields(get("flip")) == {}
    assert "points" not in continuous_fields(get("curves"))


def test_bad_calls_are_named(photo: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="objective is empty"):
        Objective()
    with pytest.raises(ValueError, match=r"\(1,3,H,W\)"):
        refine(photo[0], [], Objective(hold=1.0))
    with pytest.raises(Exception, match="mask 'sky'"):
        refine(photo, [{"tool": "exposure", "params": {"stops": 0.1}, "mask": "sky"}], Objective(hold=1.0))
