"""The light's cast (Stats.illuminant_a/b): a warm scene is no cast, a cast on any scene is."""

from __future__ import annotations

import math

import pytest
import torch

from tests.helpers import sample
from tools.analysis import measure
from tools.degrade import color_cast

WARM = (1.2, 1.0, 0.8)  # linear gains: a yellow light (tools.degrade.color_cast)
COOL = (0.8, 1.0, 1.2)


def light(image: torch.Tensor) -> tuple[float, float]:
    s = measure(image)
    return s.illuminant_a, s.illuminant_b


@pytest.mark.parametrize("name", ["coffee", "astronaut", "rocket"])
def test_clean_photos_read_almost_no_light_cast(name):
    a, b = light(sample(name, (128, 96)))
    assert math.hypot(a, b) < 3.0


def test_a_warm_scene_is_not_a_cast_but_a_warm_light_is():
    coffee = sample("coffee", (128, 96))
    s = measure(coffee)
    assert s.cast > 20  # the near-neutral estimate reads the brown scene as a strong cast
    assert abs(s.illuminant_b) < 3.0
    assert measure(color_cast(coffee, *WARM)).illuminant_b > 5.0


@pytest.mark.parametrize("name", ["astronaut", "rocket"])
def test_a_warm_light_is_recovered_on_neutral_scenes(name):
    clean = sample(name, (128, 96))
    a0, b0 = light(clean)
    a, b = light(color_cast(clean, *WARM))
    assert 5.0 < b - b0 < 14.0  # the light adds about +9 b* on a grey of L* 60


def test_a_cool_light_reads_blue():
    a, b = light(color_cast(sample("astronaut", (128, 96)), *COOL))
    assert b < -3.0


def test_flat_grey_has_no_light_cast_and_a_tinted_frame_has_one():
    grey = torch.full((1, 3, 32, 32), 0.5)
    assert max(abs(v) for v in light(grey)) < 0.1
    blue = color_cast(grey + 0.2 * torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0)), *COOL)
    assert light(blue)[1] < -3.0


def test_preview_reads_the_same_light():
    full = color_cast(sample("astronaut", (256, 192)), *WARM)
    half = torch.nn.functional.interpolate(full, scale_factor=0.5, mode="area")
    (a1, b1), (a2, b2) = light(full), light(half)
    assert abs(a1 - a2) < 1.5 and abs(b1 - b2) < 1.5
