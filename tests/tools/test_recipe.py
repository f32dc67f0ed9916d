"""Recipes: JSON round trip, deterministic replay, LUT fusion, clear errors."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import sample
from tools.recipe import Recipe, RecipeError, Step, apply_recipe
from tools.registry import ToolError


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
