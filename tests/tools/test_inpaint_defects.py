"""find_defects on real photos: painted white and black marks found alike, clean photos left alone."""

from __future__ import annotations

import torch

from evals.suites import Generator, build_case, case_mask, generate
from tests.helpers import sample
from tools.inpaint import find_defects
from tools.registry import get


def _cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(white-marked photo, clean photo, mark mask) for the inpaint suite's spots and scratches at 128 px."""
    out = []
    for seed in (1, 2):
        gen = Generator(kind="inpaint", seed=seed, count=2, size=128, sources=["skimage:chelsea", "skimage:coffee"])
        for case in generate(gen):
            image, clean = build_case(case)
            out.append((image, clean, case_mask(case, *image.shape[-2:]) > 0))
    return out


def test_white_and_black_marks_are_found_alike_on_photos() -> None:
    white = black = 0.0
    cases = _cases()
    for image, _, m in cases:
        white += float((find_defects(image)[m] > 0).float().mean())
        dark = torch.where(m, torch.zeros_like(image), image)
        black += float((find_defects(dark)[m] > 0).float().mean())
    assert white / len(cases) >= 0.75, white / len(cases)
    assert black / len(cases) >= 0.6, black / len(cases)


def test_clean_photos_are_left_alone() -> None:
    # texture that looks like a mark to a plain top-hat: fur, whiskers, wood grain, a tripod, text
    for name in ("chelsea", "coffee", "camera", "text"):
        flagged = float(find_defects(sample(name, (128, 96))).mean())
        assert flagged < 0.01, (name, flagged)


def test_remove_defects_takes_painted_marks_out_of_a_photo() -> None:
    for image, clean, m in _cases()[:2]:
        out = get("remove_defects")(image, {})
        sel = m.expand_as(image)
        before = float((image[sel] - clean[sel]).abs().mean())
        after = float((out[sel] - clean[sel]).abs().mean())
        assert after < 0.5 * before, (before, after)
        assert float((out[~sel] - image[~sel]).abs().mean()) < 0.01, "little changes away from the marks"
