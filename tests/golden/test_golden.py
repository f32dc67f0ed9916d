"""Golden replay: every stored recipe renders as its blessed image (CIEDE2000, darktable's bounds)."""

from __future__ import annotations

import pytest

from tests.golden.cases import EXPECTED, MAX_DE, MEAN_DE, RECIPES, names, render
from tools.io import load_image


def test_there_is_a_golden_image_for_every_recipe() -> None:
    assert len(names()) >= 5
    stems = sorted(p.stem for p in EXPECTED.glob("*.png"))
    assert stems == names(), "run `python -m tests.golden.regen` (see tests/golden/README.md)"


@pytest.mark.parametrize("name", names())
def test_recipe_replays_as_its_golden_image(name: str) -> None:
    from skimage.color import deltaE_ciede2000, rgb2lab

    out = render(name)
    expected = load_image(EXPECTED / f"{name}.png").image
    assert out.shape == expected.shape, f"{name}: size {tuple(out.shape)} vs golden {tuple(expected.shape)}"
    lab = [rgb2lab(x[0].permute(1, 2, 0).double().numpy()) for x in (out, expected)]
    de = deltaE_ciede2000(*lab)
    assert de.max() < MAX_DE and de.mean() < MEAN_DE, (
        f"{name}: dE2000 max {de.max():.2f} (< {MAX_DE}), mean {de.mean():.3f} (< {MEAN_DE}) against "
        f"{EXPECTED.name}/{name}.png; if the change is intended, run `python -m tests.golden.regen {name}`"
    )
    assert (RECIPES / f"{name}.json").exists()
