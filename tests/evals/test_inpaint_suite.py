"""The inpaint suite: holes drawn from seeds, filled by tools.inpaint, scored inside the hole."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evals.runner import run_eval
from evals.suites import (
    INPAINT_SHAPES,
    Generator,
    Suite,
    build_case,
    case_mask,
    generate,
    read_suite,
)
from tests.helpers import sample
from tools.metrics import delta_e2000_masked, psnr, psnr_masked, ssim_masked
from tools.registry import ToolError


def test_masked_metrics_only_see_the_hole() -> None:
    a = sample("coffee", (64, 64))
    hole = torch.zeros(1, 1, 64, 64)
    hole[..., 10:20, 10:30] = 1
    b = a.clone()
    b[..., 30:, 40:] = 1 - b[..., 30:, 40:]  # damage outside the hole
    assert psnr_masked(a, b, hole) == float("inf") and psnr(a, b) < 20
    assert ssim_masked(a, b, hole) > 0.99 and delta_e2000_masked(a, b, hole) == 0
    c = b.clone()
    c[..., 10:20, 10:30] += 0.1
    c = c.clamp(0, 1)
    assert 15 < psnr_masked(a, c, hole) < 25 and delta_e2000_masked(a, c, hole) > 1
    with pytest.raises(ToolError, match="empty"):
        psnr_masked(a, b, torch.zeros(1, 1, 64, 64))


def test_every_mask_kind_is_drawn_reproducibly_and_painted_white() -> None:
    suite = read_suite("inpaint")
    assert [c.model_dump() for c in generate(suite.generator)] == [c.model_dump() for c in suite.cases]
    assert {c.mask["shape"] for c in suite.cases} == set(INPAINT_SHAPES)
    areas = {}
    for case in generate(Generator(kind="inpaint", seed=3, count=4, size=128)):
        image, clean = build_case(case)
        m = case_mask(case, *image.shape[-2:])
        assert torch.equal(m, case_mask(case, *image.shape[-2:]))
        areas[case.mask["shape"]] = float(m.mean())
        assert torch.all(image[m.expand_as(image) > 0] == 1.0)
        assert torch.equal(image[m.expand_as(image) == 0], clean[m.expand_as(image) == 0])
    assert areas["spots"] < 0.02 and areas["scratches"] < 0.08 and areas["square"] > 0.1
    assert 0.02 < areas["strokes"] < 0.5


def test_fill_methods_beat_doing_nothing_inside_the_hole(tmp_path: Path) -> None:
    cases = generate(Generator(kind="inpaint", seed=5, count=4, size=64, sources=["skimage:coffee"]))
    suite = Suite(name="tiny-inpaint", generator=Generator(kind="inpaint", count=4, size=64), cases=cases)
    rows = {r["system"]: r for r in run_eval(suite, ["identity", "fill-ns", "offline"], tmp_path, report=False)}
    assert rows["fill-ns"]["hole_psnr"] > rows["identity"]["hole_psnr"] + 10
    assert rows["fill-ns"]["hole_delta_e"] < rows["identity"]["hole_delta_e"] / 3
    assert rows["offline"]["cases"] == 2, "the agent runs on spots and scratches only"
    assert (tmp_path / "images" / "inpaint-002" / "mask.png").is_file()


def test_filling_the_hole_is_not_a_lock_violation(tmp_path: Path) -> None:
    # a 32 px square and brush strokes: the fill changes the hole completely, which is the task;
    # the lock judges the structure outside it
    cases = [c for c in generate(Generator(kind="inpaint", seed=5, count=4, size=64, sources=["skimage:chelsea"]))
             if c.mask["shape"] in ("square", "strokes")]
    suite = Suite(name="tiny-holes", generator=Generator(kind="inpaint", count=4, size=64), cases=cases)
    rows = {r["system"]: r for r in run_eval(suite, ["identity", "fill-ns"], tmp_path, report=False)}
    assert rows["fill-ns"]["cases"] == 2 and rows["fill-ns"]["lock_violations"] == 0
    assert rows["fill-ns"]["hole_psnr"] > rows["identity"]["hole_psnr"] + 5
