"""Blur and JPEG blocking read blind (Stats.blur_sigma, Stats.blockiness): degraded photos fire, clean ones do not."""

from __future__ import annotations

import pytest
import torch

from agent.goals import BLOCK_MIN, BLUR_MIN
from tests.helpers import sample
from tools.analysis import measure
from tools.degrade import add_noise, blur, jpeg, low_contrast

CLEAN = ["astronaut", "coffee", "chelsea", "rocket"]


@pytest.mark.parametrize("name", CLEAN)
def test_clean_photos_read_sharp_and_unblocked(name):
    s = measure(sample(name, (128, 96)))
    assert 0.3 < s.blur_sigma < BLUR_MIN
    assert s.blockiness < BLOCK_MIN


@pytest.mark.parametrize("name", CLEAN)
def test_blur_reads_as_blur_and_grows_with_it(name):
    clean = sample(name, (128, 96))
    readings = [measure(blur(clean, sigma)).blur_sigma for sigma in (0.8, 1.2, 1.6)]
    assert readings[0] > BLUR_MIN
    assert readings[0] < readings[1] < readings[2]


def test_blur_reading_ignores_contrast_and_survives_noise():
    clean = sample("astronaut", (128, 96))
    soft = blur(clean, 1.2)
    base = measure(soft).blur_sigma
    assert measure(low_contrast(soft, 0.5)).blur_sigma == pytest.approx(base, abs=0.05)
    assert measure(add_noise(soft, 0.03, seed=1)).blur_sigma > BLUR_MIN


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_heavy_jpeg_reads_blocky(name):
    clean = sample(name, (128, 96))
    assert measure(jpeg(clean, 20)).blockiness > BLOCK_MIN
    assert measure(jpeg(clean, 20)).blockiness > measure(jpeg(clean, 60)).blockiness


def test_blockiness_needs_the_grid_where_the_jpeg_put_it():
    blocky = jpeg(sample("rocket", (128, 96)), 20)
    shifted = torch.roll(blocky, shifts=(3, 3), dims=(-2, -1))  # the grid no longer at 8k
    assert measure(shifted).blockiness < measure(blocky).blockiness - 0.3


def test_tiny_images_read_neutral_values():
    s = measure(torch.rand(1, 3, 5, 5))
    assert s.blockiness == 1.0 and s.blur_sigma >= 0.0
