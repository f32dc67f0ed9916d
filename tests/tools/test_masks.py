"""Mask makers against known answers (IoU), mask algebra identities, validation, the agent's mask tools."""

from __future__ import annotations

import math

import pytest
import torch

from tests.helpers import run_cli, sample
from tools import masks as M
from tools.registry import ToolError, get


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a > 0.5, b > 0.5
    return float((a & b).sum()) / max(1, int((a | b).sum()))


def canvas(h: int = 80, w: int = 100) -> torch.Tensor:
    return torch.full((1, 3, h, w), 0.5)


def box(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    m = torch.zeros(1, 1, h, w)
    m[..., y0:y1, x0:x1] = 1
    return m


def test_rect_covers_exactly_its_pixels_and_fractions_of_partial_ones() -> None:
    m = M.rect(canvas(), 10, 20, 30, 15)
    assert torch.equal(m, box(80, 100, 20, 35, 10, 40))
    half = M.rect(canvas(), 10.5, 20, 30, 15)
    assert float(half[0, 0, 25, 10]) == pytest.approx(0.5) and float(half.sum()) == pytest.approx(450)


def test_ellipse_and_polygon_match_their_geometry() -> None:
    img = canvas(120, 160)
    e = M.ellipse(img, 80, 60, 40, 20)
    yy, xx = torch.meshgrid(torch.arange(120) + 0.5, torch.arange(160) + 0.5, indexing="ij")
    truth = (((xx - 80) / 40) ** 2 + ((yy - 60) / 20) ** 2 <= 1).float()[None, None]
    assert iou(e, truth) > 0.95
    assert float(e.sum()) == pytest.approx(math.pi * 40 * 20, rel=0.04)
    tri = M.polygon(img, [(10, 10), (110, 10), (10, 110)])
    truth = ((xx >= 10) & (yy >= 10) & (xx + yy <= 120)).float()[None, None]
    assert iou(tri, truth) > 0.95
    with pytest.raises(ToolError, match="at least 3 points"):
        M.polygon(img, [(0, 0), (5, 5)])


def test_brush_is_a_thick_line_with_round_ends() -> None:
    m = M.brush(canvas(100, 100), [(20, 50), (80, 50)], 5)
    yy, xx = torch.meshgrid(torch.arange(100) + 0.5, torch.arange(100) + 0.5, indexing="ij")
    dist = torch.hypot(xx - xx.clamp(20, 80), yy - 50)  # distance to the segment: a capsule
    assert iou(m, (dist <= 5).float()[None, None]) > 0.9
    assert float(m[0, 0, 50, 17]) > 0.5, "round cap reaches past the end point"
    assert float(m[0, 0, 30, 50]) == 0


def test_luminance_and_colour_ranges_select_the_right_pixels() -> None:
    ramp = torch.linspace(0, 1, 100).view(1, 1, 1, 100).expand(1, 3, 10, 100)
    m = M.luminance_range(ramp, 0.2, 0.4, softness=0.0)
    assert float(m[0, 0, 0, 30]) == 1 and float(m[0, 0, 0, 10]) == 0 and float(m[0, 0, 0, 60]) == 0
    img = torch.zeros(1, 3, 20, 40)
    img[..., :20] = torch.tensor([0.1, 0.3, 0.9]).view(1, 3, 1, 1)  # blue, hue ~225
    img[..., 20:] = torch.tensor([0.9, 0.2, 0.1]).view(1, 3, 1, 1)  # red
    blue = M.color_range(img, 225, 20)
    assert iou(blue, box(20, 40, 0, 20, 0, 20)) == 1.0


def test_faces_found_on_the_astronaut_and_refused_on_a_flat_image() -> None:
    img = sample("astronaut", (256, 256))
    m = M.faces(img)
    ys, xs = torch.nonzero(m[0, 0] > 0.5, as_tuple=True)
    # her face sits at about x 0.35-0.55, y 0.1-0.35 of the frame
    assert 0.35 * 256 < float(xs.float().mean()) < 0.55 * 256
    assert 0.1 * 256 < float(ys.float().mean()) < 0.35 * 256
    assert 0.02 < float(m.mean()) < 0.12
    with pytest.raises(ToolError, match="no face found"):
        M.faces(canvas())


def test_subject_cuts_the_object_out_of_its_box() -> None:
    g = torch.Generator().manual_seed(0)
    img = 0.75 + 0.05 * torch.rand(1, 3, 90, 120, generator=g)
    truth = M.ellipse(img, 60, 45, 22, 16)
    img = img * (1 - truth) + truth * torch.tensor([0.1, 0.2, 0.7]).view(1, 3, 1, 1)
    m = M.subject(img, 30, 20, 60, 50)
    assert iou(m, truth) > 0.9
    assert float(m[..., :, :30].sum()) == 0, "nothing outside the box"


def test_sky_on_a_synthetic_landscape() -> None:
    g = torch.Generator().manual_seed(0)
    h, w = 96, 128
    img = torch.empty(1, 3, h, w)
    rows = torch.linspace(0, 1, 40).view(1, 1, 40, 1)
    img[..., :40, :] = torch.tensor([0.35, 0.6, 0.95]).view(1, 3, 1, 1) + 0.1 * rows  # blue sky
    img[..., 40:, :] = 0.25 + 0.3 * torch.rand(1, 3, h - 40, w, generator=g)  # busy ground
    img = img.clamp(0, 1)
    assert iou(M.sky(img), box(h, w, 0, 40, 0, w)) > 0.85


def test_algebra_identities() -> None:
    a = M.ellipse(canvas(), 40, 40, 20, 15)
    b = M.rect(canvas(), 30, 30, 50, 30)
    assert torch.allclose(M.union(a, M.invert(a)), torch.maximum(a, 1 - a))
    assert torch.allclose(M.invert(M.union(a, b)), M.intersect(M.invert(a), M.invert(b)))  # De Morgan
    assert torch.equal(M.subtract(b, b), torch.zeros_like(b))
    assert torch.equal(M.union(a, a), a) and torch.equal(M.intersect(a, a), a)
    hard = (a > 0.5).float()
    assert float(M.intersect(hard, M.invert(hard)).sum()) == 0
    grown = M.grow(hard, 3)
    assert bool((grown >= hard).all()) and float(grown.sum()) > float(hard.sum())
    assert bool((M.shrink(hard, 3) <= hard).all())
    assert iou(M.shrink(M.grow(hard, 3), 3), hard) > 0.95
    f = M.feather(hard, 6)
    assert float(f.sum()) == pytest.approx(float(hard.sum()), rel=0.05)
    assert 0 < float(f[0, 0, 40, 61]) < 1, "the edge is soft after feathering"


def test_describe_mask_reports_coverage_box_and_inside_vs_outside() -> None:
    img = canvas(80, 100)
    img[..., 20:40, 10:60] = 0.9
    info = M.describe_mask(img, M.rect(img, 10, 20, 50, 20))
    assert info.coverage_pct == pytest.approx(12.5)
    assert info.bbox == (10, 20, 50, 20)
    assert info.mean_L_inside > info.mean_L_outside + 20
    assert "12.5%" in info.summary()
    assert M.describe_mask(img, torch.zeros(1, 1, 80, 100)).bbox is None


def test_bad_masks_give_clear_errors() -> None:
    img = canvas(80, 100)
    with pytest.raises(ToolError, match=r"30x30 but the image is 100x80"):
        M.fit_mask(torch.ones(1, 1, 30, 30), img)
    with pytest.raises(ToolError, match="empty"):
        M.fit_mask(torch.zeros(1, 1, 80, 100), img)
    with pytest.raises(ToolError, match="white everywhere"):
        M.fit_mask(torch.ones(1, 1, 80, 100), img, allow_full=False)
    half = M.fit_mask(box(40, 50, 0, 20, 0, 25), img)  # same aspect ratio: resampled
    assert half.shape[-2:] == (80, 100)


def test_mask_tools_take_fractions_and_post_process() -> None:
    img = canvas(80, 100)
    m = get("mask_rect")(img, {"name": "box", "x": 0.1, "y": 0.25, "w": 0.3, "h": 0.5})
    assert iou(m, box(80, 100, 20, 60, 10, 40)) == 1.0
    inv = get("mask_rect")(img, {"x": 0.1, "y": 0.25, "w": 0.3, "h": 0.5, "invert": True})
    assert torch.allclose(inv, 1 - m)
    soft = get("mask_rect")(img, {"x": 0.1, "y": 0.25, "w": 0.3, "h": 0.5, "feather": 5})
    assert 0 < float(soft[0, 0, 40, 40]) < 1
    with pytest.raises(ToolError, match="name"):
        get("mask_rect").validate({"name": "bad name!"})
    assert get("mask_rect").read_only and get("mask_rect").family == "mask"


# ------------------------------------------------------------------ the agent side: named masks, region goals


def test_the_loop_stores_a_mask_made_by_a_tool_and_confines_the_edit_to_it() -> None:
    from agent.goals import parse_goal
    from agent.loop import run_loop
    from agent.state import EditSession
    from tests.agent.fakes import ScriptedModel, call, say

    img = sample("astronaut", (64, 48))
    session = EditSession(img)
    model = ScriptedModel(script=[
        say({"name": "mask_rect", "args": {"name": "left", "x": 0.0, "y": 0.0, "w": 0.5, "h": 1.0},
             "id": "m1", "type": "tool_call"}),
        say(call("exposure", stops=0.5, mask="left")),  # +1 EV blows 5.5 %: the naturalness guard's veto
        say(text="done"),
    ])
    goal = parse_goal("brighten it", None)
    result = run_loop(session, goal, model, critic=None)
    assert "left" in session.masks_full and "mask_rect" in model.bound_tools
    assert [e.outcome for e in result.trace][:1] == ["mask"]
    assert result.trace[-1].outcome == "kept"
    edited = session.render(result.trace[-1].version)
    assert torch.equal(edited[..., 32:], img[..., 32:]), "right half untouched"
    assert float(edited[..., :32].mean()) > float(img[..., :32].mean()) + 0.03


def test_region_intents_are_parsed_into_region_targets() -> None:
    from agent.goals import parse_goal

    g = parse_goal("brighten only the face and darken the sky", None)
    assert {(i.name, i.region) for i in g.intents} == {("brighten", "face"), ("darken", "sky")}
    assert {t.metric for t in g.targets} == {"dL@face", "dL@sky"}
    g = parse_goal("remove the object at 100,50,40,20", None, image_size=(400, 200))
    assert g.intents[0].box == pytest.approx((0.25, 0.25, 0.1, 0.1))
    assert g.targets[0].metric.startswith("changed@0.25")
    g = parse_goal("remove the dust spots and scratches", None)
    assert [i.name for i in g.intents] == ["remove_defects"] and g.targets[0].metric == "defects_left"
    assert [i.name for i in parse_goal("the sky is blown out", None).intents] == ["recover_highlights"]


def test_offline_agent_brightens_only_the_face() -> None:
    from agent.api import edit

    img = sample("astronaut", (256, 256))
    result = edit(img, "brighten only the face", critic="none", max_steps=4)
    assert result.score.targets_met == result.score.targets_total == 1
    face = M.faces(img) > 0.05
    assert float(result.image[face.expand_as(img)].mean()) > float(img[face.expand_as(img)].mean()) + 0.03
    corner = (slice(None), slice(None), slice(200, 256), slice(0, 40))
    assert torch.equal(result.image[corner], img[corner]), "far from the face nothing changes"


def test_selection_modes_combine_masks() -> None:
    a = M.rect(torch.zeros(1, 3, 40, 60), 0, 0, 30, 40)
    b = M.rect(torch.zeros(1, 3, 20, 30), 0, 0, 30, 10)  # another size: resampled to the new mask's grid
    new = M.rect(torch.zeros(1, 3, 40, 60), 20, 0, 40, 40)
    assert torch.equal(M.combine(a, new, "new"), new)
    assert float(M.combine(a, new, "add").mean()) == pytest.approx(1.0, abs=0.02)
    assert float(M.combine(a, new, "intersect").mean()) == pytest.approx(10 / 60, abs=0.02)
    assert float(M.combine(b, new, "subtract").mean()) == pytest.approx(0.5 * 20 / 60, abs=0.03)
    with pytest.raises(ToolError, match="needs an existing mask 'sel'"):
        M.combine(None, new, "add", "sel")
    with pytest.raises(ToolError, match="not a selection mode"):
        M.combine(a, new, "xor")


def test_mask_cli_builds_a_selection_in_steps(tmp_path, capsys) -> None:
    from tools.io import load_image, save_image

    photo = tmp_path / "p.png"
    save_image(sample("astronaut", (80, 60)), photo)
    left, both = tmp_path / "left.png", tmp_path / "both.png"
    assert run_cli(["mask", "rect", str(photo), "--box", "0,0,40,60", "-o", str(left)], capsys)[0] == 0
    code, out, _ = run_cli(["mask", "rect", str(photo), "--box", "0,0,80,15", "--combine", "subtract",
                            "--base", str(left), "-o", str(both)], capsys)
    assert code == 0 and "covers 37.5%" in out
    m = load_image(both).image[0, 0]
    assert m[:15].max() == 0 and m[20:, :35].min() == 1 and m[:, 45:].max() == 0
    code, _, err = run_cli(["mask", "rect", str(photo), "--box", "0,0,8,8", "--combine", "add", "-o",
                            str(tmp_path / "x.png")], capsys)
    assert code != 0 and "--base" in err and not (tmp_path / "x.png").exists()
