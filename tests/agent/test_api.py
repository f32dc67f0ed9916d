"""The Python API: edit() iterates on a preview and renders the chosen version at full size."""

from __future__ import annotations

import pytest
import torch

from agent.api import edit
from tests.helpers import sample
from tools.analysis import measure
from tools.degrade import color_cast, low_contrast, underexpose
from tools.metrics import psnr


@pytest.mark.parametrize(
    "name, degrade, goal",
    [
        ("astronaut", lambda x: underexpose(x, 1.5), "it's too dark"),
        ("astronaut", lambda x: underexpose(x, 1.0), "+1 stop"),
        ("astronaut", lambda x: color_cast(x, r=0.85, b=1.3), "the photo has a blue tint"),
        ("chelsea", lambda x: low_contrast(x, 0.6), "it looks washed out"),
        ("coffee", lambda x: color_cast(underexpose(x, 1.2), r=1.2, b=0.8), "fix the exposure"),
    ],
)
def test_offline_agent_improves_degraded_photos(name, degrade, goal) -> None:
    clean = sample(name, (128, 96))
    bad = degrade(clean)
    res = edit(bad, goal, preview=64)
    assert res.image.shape == bad.shape, "rendered at full size, not the preview"
    assert res.score.targets_met == res.score.targets_total, res.summary()
    assert res.score.structure >= 0.8
    assert psnr(res.image, clean) > psnr(bad, clean) + 1.0, res.summary()
    assert res.loop.trace and res.recipe.steps


def test_full_size_render_matches_the_preview_it_was_scored_on() -> None:
    bad = underexpose(sample("astronaut", (256, 192)), 1.5)
    res = edit(bad, "brighten it", preview=96)
    full, prev = measure(res.image), res.stats_after
    assert abs(full.mean_L - prev.mean_L) < 2.0


def test_unmapped_instruction_is_reported_and_nothing_is_done() -> None:
    img = sample("astronaut", (96, 72))
    res = edit(img, "add a unicorn")
    assert res.goal.unmapped and not res.recipe.steps
    assert torch.allclose(res.image, img)


def test_bad_image_argument_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"\(1,3,H,W\)"):
        edit(torch.rand(3, 8, 8), "brighten")


def test_a_recipe_with_a_mask_the_agent_made_replays_exactly_from_disk(tmp_path) -> None:
    from agent.cli import main
    from tests.agent.fakes import ScriptedModel, call, say
    from tools.io import load_image, save_image

    src = tmp_path / "in.png"
    save_image(underexpose(sample("astronaut", (128, 96)), 1.0), src)
    model = ScriptedModel(script=[say(call("mask_rect", name="box", x=0.0, y=0.0, w=0.5, h=1.0),
                                      call("exposure", stops=1.0, mask="box")), say()])
    res = edit(src, "brighten it", model=model, critic="none", preview=64)
    assert [s.mask for s in res.recipe.steps] == ["box"]
    res.save_recipe(tmp_path / "r.json")
    assert (tmp_path / "r.mask-box.png").exists()
    try:
        main(["apply", str(tmp_path / "r.json"), str(src), "-o", str(tmp_path / "out.png")])
    except SystemExit as exc:
        assert not exc.code
    replayed = load_image(tmp_path / "out.png").image
    assert (replayed - res.image).abs().max() < 2 / 255
    assert torch.equal(replayed[..., 70:], load_image(src).image[..., 70:]), "right half untouched"


def test_the_agent_combines_named_masks_like_selection_modes() -> None:
    """Left half, plus the top-right quarter, minus a band at the very top: only that region brightens."""
    from tests.agent.fakes import ScriptedModel, call, say

    img = underexpose(sample("astronaut", (128, 96)), 1.0)
    model = ScriptedModel(script=[say(call("mask_rect", name="sel", x=0.0, y=0.0, w=0.5, h=1.0),
                                      call("mask_rect", name="sel", x=0.5, y=0.0, w=0.5, h=0.5, combine="add"),
                                      call("mask_rect", name="sel", x=0.0, y=0.0, w=1.0, h=0.25, combine="subtract"),
                                      call("mask_rect", name="other", x=0.2, y=0.2, w=0.1, h=0.1,
                                           combine="intersect"),
                                      call("exposure", stops=1.0, mask="sel")), say()])
    res = edit(img, "brighten it", model=model, critic="none", preview=64)
    changed = (res.image != img).any(1)[0]
    assert not changed[:20].any(), "the subtracted top band is untouched"
    assert changed[30:40, 10:30].all() and changed[30:40, 70:90].all(), "left half and top-right quarter"
    assert not changed[56:, 72:].any(), "the bottom-right quarter was never selected"
    errors = [e for e in res.trace if e.outcome == "error"]
    assert len(errors) == 1 and "needs an existing mask 'other'" in errors[0].reason


def test_an_unknown_keyword_names_the_options_and_settings_edit_takes() -> None:
    with pytest.raises(TypeError, match=r"unknown option\(s\) lok; options: .*\block\b.*; settings: .*\bbase_url\b"):
        edit(torch.full((1, 3, 8, 8), 0.3), "brighten", lok=0.7)
