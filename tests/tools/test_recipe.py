"""Recipes: JSON round trip, deterministic replay, LUT fusion, clear errors."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from pydantic import Field

from tests.helpers import sample
from tools.recipe import Recipe, RecipeError, Step, apply_recipe
from tools.registry import Params, ToolError, get


def _tone_chain() -> Recipe:
    return (Recipe().then("exposure", {"stops": 0.7}).then("gamma", {"gamma": 1.2})
            .then("white_balance", {"temperature": 20}).then("saturation", {"amount": 15})
            .then("levels", {"black": 0.03, "white": 0.95}))


def test_json_round_trip_keeps_every_step() -> None:
    r = _tone_chain()
    again = Recipe.from_json(r.to_json())
    assert again == r
    assert [s.tool for s in again.steps] == ["exposure", "gamma", "white_balance", "saturation", "levels"]


def test_replay_twice_gives_identical_pixels() -> None:
    img = sample("coffee", (96, 64))
    r = _tone_chain()
    assert torch.equal(apply_recipe(img, r), apply_recipe(img, r))


def test_fused_lut_matches_step_by_step_within_quantisation() -> None:
    img = sample("astronaut", (96, 64))
    r = Recipe().then("exposure", {"stops": -0.6}).then("gamma", {"gamma": 1.3}).then("levels", {"black": 0.05})
    fused = apply_recipe(img, r, fuse=True)
    plain = apply_recipe(img, r, fuse=False)
    assert (fused - plain).abs().max() < 1 / 255


def test_masked_step_only_changes_inside_the_mask_and_scales_to_any_size() -> None:
    img = sample("chelsea", (96, 64))
    small = torch.zeros(1, 1, 16, 24)
    small[..., :, :12] = 1  # left half, given at a quarter of the size
    r = Recipe(masks={"left": {"path": "left.png"}}).then("exposure", {"stops": 1}, mask="left")
    out = apply_recipe(img, r, {"left": small})
    assert torch.allclose(out[..., 50:], img[..., 50:])
    assert out[..., :40].mean() > img[..., :40].mean() + 0.05


def test_bad_recipes_name_the_problem() -> None:
    with pytest.raises(RecipeError, match="not valid JSON"):
        Recipe.from_json("{nope")
    with pytest.raises(RecipeError, match='expected an object with "steps"'):
        Recipe.from_json("[1, 2]")
    with pytest.raises(RecipeError, match="step 1: unknown tool 'sharpenn'"):
        Recipe.from_json('{"steps": [{"tool": "sharpenn"}]}')
    with pytest.raises(RecipeError, match=r"step 2: exposure: stops=99"):
        Recipe.from_json('{"steps": [{"tool": "gamma"}, {"tool": "exposure", "params": {"stops": 99}}]}')
    with pytest.raises(RecipeError, match="newer imagent"):
        Recipe.from_json('{"steps": [{"tool": "gamma", "version": 99}]}')
    with pytest.raises(RecipeError, match="mask 'sky', which was not given"):
        apply_recipe(sample(), Recipe(steps=[Step(tool="exposure", params={"stops": 1}, mask="sky")]))
    with pytest.raises(ToolError):
        Recipe().then("exposure", {"stops": "lots"})


def test_pixel_sized_params_scale_when_a_preview_recipe_is_replayed_larger() -> None:
    big = sample("astronaut", (192, 128))
    small = sample("astronaut", (96, 64))
    r = Recipe(size=(96, 64)).then("blur", {"sigma": 1.0})
    out_big = apply_recipe(big, r)
    expected = apply_recipe(big, Recipe().then("blur", {"sigma": 2.0}))
    assert torch.allclose(out_big, expected, atol=1e-6)
    assert torch.allclose(apply_recipe(small, r), apply_recipe(small, Recipe().then("blur", {"sigma": 1.0})))


# ----------------------------------------------------------------- step versions and migration


@pytest.mark.parametrize(("version", "message"), [
    (0, r"step 2: gamma: version 0 is invalid: versions start at 1; set the step's \"version\""),
    (-3, r"step 2: gamma: version -3 is invalid"),
    (2, r"step 2: gamma: recipe step was written by a newer imagent \(version 2, this one knows up to 1\); upgrade"),
])
def test_invalid_step_versions_are_refused_on_load_in_one_line(version: int, message: str) -> None:
    text = ('{"steps": [{"tool": "exposure", "params": {"stops": 1}}, '
            f'{{"tool": "gamma", "version": {version}, "params": {{"gamma": 1.2}}}}]}}')
    with pytest.raises(RecipeError, match=message) as err:
        Recipe.from_json(text)
    assert "\n" not in str(err.value)


class _Grain(Params):
    """A test-local params model at version 3: v1 said `strength` in percent, v2 renamed it `amount`."""

    VERSION: ClassVar[int] = 3
    MIGRATIONS: ClassVar[dict] = {
        1: lambda d: {"amount": d.pop("strength") / 100, **d},
        2: lambda d: {**d, "size": d.get("size", 1.0)},
    }
    amount: float = Field(0.0, ge=0, le=1)
    size: float = Field(1.0, ge=0.5, le=4)


def test_migrations_run_one_version_at_a_time_and_gaps_are_named() -> None:
    assert _Grain.migrate({"strength": 40}, 1) == {"amount": 0.4, "size": 1.0}
    assert _Grain.migrate({"amount": 0.4}, 2) == {"amount": 0.4, "size": 1.0}
    assert _Grain.migrate({"amount": 0.4, "size": 2.0}, 3) == {"amount": 0.4, "size": 2.0}
    gap = type("_Gap", (_Grain,), {"__doc__": "gap", "MIGRATIONS": {2: _Grain.MIGRATIONS[2]}})
    with pytest.raises(ToolError, match="version 1 cannot be upgraded to 2 .*make this step again"):
        gap.migrate({"strength": 40}, 1)


def test_an_old_step_migrates_on_load_and_replays_as_the_new_version(monkeypatch: pytest.MonkeyPatch) -> None:
    params = get("vignette").params  # pretend vignette's v1 called `amount` `darken`, with the sign flipped
    monkeypatch.setattr(params, "VERSION", 2)
    monkeypatch.setattr(params, "MIGRATIONS", {1: lambda d: {"amount": -d.pop("darken"), **d}})
    old = Recipe.from_json('{"steps": [{"tool": "vignette", "version": 1, "params": {"darken": 0.5}}]}')
    assert old.steps[0].version == 2 and old.steps[0].params["amount"] == -0.5
    assert '"version": 2' in old.to_json()
    img = sample("coffee", (48, 32))
    now = Recipe().then("vignette", {"amount": -0.5})
    assert torch.equal(apply_recipe(img, old), apply_recipe(img, now))
    # a Recipe built in code with the old step migrates at replay too
    built = Recipe(steps=[Step(tool="vignette", version=1, params={"darken": 0.5})])
    assert torch.equal(apply_recipe(img, built), apply_recipe(img, now))


def test_a_lone_masked_step_leaves_the_pixels_outside_its_mask_bit_identical() -> None:
    img = sample("astronaut", (48, 32))
    m = torch.zeros(1, 1, 32, 48)
    m[..., 16:, :] = 1
    r = Recipe(masks={"low": {}}).then("exposure", {"stops": 1}, mask="low")
    assert torch.equal(apply_recipe(img, r, {"low": m})[..., :16, :], img[..., :16, :])
    assert torch.equal(apply_recipe(img, Recipe()), img), "an empty recipe is the identity"
