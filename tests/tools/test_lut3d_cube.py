"""Recipes as .cube text (`recipe_to_cube`) and a user's .cube as a step (the `lut3d` tool)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import check_op, sample
from tools import lut3d
from tools.metrics import delta_e2000
from tools.recipe import Recipe, RecipeError, apply_recipe
from tools.registry import ToolError, get

WARM = Recipe().then("white_balance", {"temperature": 25}).then("contrast", {"amount": 20}).then(
    "saturation", {"amount": 20})


def _cube(text: str) -> str:
    """Remember a .cube's text, as the agent layer does with a file's bytes; its sha256."""
    return lut3d.remember_cube(text.encode())


@pytest.mark.parametrize(("recipe", "reason"), [
    (WARM.then("sharpen", {"amount": 1}), r"step 4 `sharpen` is not colour-only \(it looks at neighbouring pixels\)"),
    (Recipe().then("clarity", {"amount": 30}), r"step 1 `clarity` is not colour-only"),
    (Recipe().then("saturation", {"amount": 20}, mask="sky"), r"step 1 `saturation` .*restricted to the mask 'sky'"),
    (Recipe().then("auto_white_balance"), r"step 1 `auto_white_balance` .*whole photo's statistics"),
    (Recipe(), r"changes no colours"),
])
def test_export_refuses_what_a_lut_cannot_hold_and_says_why(recipe: Recipe, reason: str) -> None:
    with pytest.raises(RecipeError, match=reason):
        lut3d.recipe_to_cube(recipe)


def test_cube_text_is_the_uniform_form_ffmpeg_reads() -> None:
    lines = lut3d.recipe_to_cube(WARM, 17, title='my "warm"\nlook').splitlines()
    # ffmpeg's parse_cube reads LUT_3D_SIZE, then rows (DOMAIN_*, TITLE, blanks and # skipped); a
    # LUT_1D shaper's rows would be taken as 3-D rows, so there must be none
    assert lines[:4] == ['TITLE "my \'warm\' look"', "LUT_3D_SIZE 17", "DOMAIN_MIN 0.0 0.0 0.0", "DOMAIN_MAX 1.0 1.0 1.0"]
    rows = [[float(v) for v in line.split()] for line in lines[4:]]
    assert len(rows) == 17**3 and all(len(r) == 3 and all(0 <= v <= 1 for v in r) for r in rows)
    assert not any(line.startswith("LUT_1D") for line in lines)
    with pytest.raises(RecipeError, match="size 20 is not offered"):
        lut3d.recipe_to_cube(WARM, 20)


@pytest.mark.parametrize("interpolation", ["tetrahedral", "trilinear"])
def test_exported_cube_renders_the_recipe(interpolation: str) -> None:
    sha = _cube(lut3d.recipe_to_cube(WARM, 33))
    tool = get("lut3d")
    for name in ("astronaut", "coffee", "chelsea"):
        img = sample(name, (96, 72))
        via_cube = tool(img, {"sha256": sha, "interpolation": interpolation})
        mean, peak = delta_e2000(via_cube, apply_recipe(img, WARM))
        assert mean < 0.5 and peak < 3, (name, mean, peak)


@pytest.mark.parametrize("interpolation", ["tetrahedral", "trilinear"])
def test_identity_cube_is_the_identity(interpolation: str) -> None:
    sha = _cube(lut3d.to_cube(lut3d.identity(17, gamma=1.0)))
    img = torch.cat([sample("astronaut"), sample("coffee")])
    out = get("lut3d")(img, {"cube": "id.cube", "sha256": sha, "interpolation": interpolation})
    # trilinear runs on OpenCV's remap on the CPU, whose weights are fixed point (1/32 of a cell)
    assert (out - img).abs().max() < (1e-5 if interpolation == "tetrahedral" else 2e-3)


def test_lut3d_passes_the_op_template() -> None:
    sha = _cube(lut3d.recipe_to_cube(WARM, 17))
    check_op("lut3d", {}, {"sha256": sha, "strength": 0.7}, bad={"strength": 2})


def test_tetrahedral_keeps_greys_on_the_grey_axis() -> None:
    # a cell's tetrahedra share its grey diagonal: a neutral input reads neutral lattice points only
    lut = lut3d.bake([(get("saturation"), get("saturation").validate({"amount": 80}))], 9, gamma=1.0)
    grey = torch.linspace(0, 1, 101).view(1, 1, 1, -1).expand(1, 3, 1, 101).contiguous()
    out = lut3d.apply_tetrahedral(grey, lut)
    assert (out - out.mean(1, keepdim=True)).abs().max() < 1e-5


def test_an_unloaded_cube_is_refused_and_a_bad_one_named() -> None:
    with pytest.raises(ToolError, match=r"'gone.cube' .* is not loaded"):
        get("lut3d")(sample(), {"cube": "gone.cube", "sha256": "0" * 64})
    with pytest.raises(ToolError, match="sha256"):
        get("lut3d").validate({"sha256": "not-a-hash"})
    with pytest.raises(ValueError, match="look.cube: line 1: unknown keyword"):
        lut3d.remember_cube(b"LUT_3D_SIZX 2\n", "look.cube")


def test_a_cube_step_fuses_and_exports_again() -> None:
    sha = _cube(lut3d.recipe_to_cube(WARM, 33))
    rec = Recipe().then("exposure", {"stops": 0.3}).then("lut3d", {"cube": "warm.cube", "sha256": sha})
    img = sample("chelsea", (96, 72))
    mean, peak = delta_e2000(apply_recipe(img, rec), apply_recipe(img, rec, fuse=False))
    assert mean < 0.5 and peak < 3
    again = lut3d.from_cube(lut3d.recipe_to_cube(rec, 33))
    mean, peak = delta_e2000(lut3d.apply_tetrahedral(img, again), apply_recipe(img, rec, fuse=False))
    assert mean < 0.5 and peak < 3
