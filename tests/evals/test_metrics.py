"""Full-reference metrics: identities, known values, and CIEDE2000 against Sharma et al. (2005)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from tests.helpers import sample
from tools import metrics
from tools.degrade import add_noise, color_cast
from tools.registry import ToolError

# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation
# notes, supplementary test data, and mathematical observations", Table 1: all 34 pairs
# (L1, a1, b1, L2, a2, b2, dE00). Pairs 7-16 probe the hue-mean and achromatic edge cases.
SHARMA = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


@pytest.fixture(scope="module")
def img() -> torch.Tensor:
    return sample("astronaut")


def test_sharma_pairs_to_1e4() -> None:
    t = torch.tensor(SHARMA, dtype=torch.float64)
    lab1, lab2, want = t[:, 0:3], t[:, 3:6], t[:, 6]
    got = metrics.ciede2000(lab1, lab2, dim=1)
    # The published values are rounded to 4 decimals.
    assert torch.allclose(got, want, atol=1e-4, rtol=0), (got - want).abs().max()
    # CIEDE2000 is symmetric in its two colours.
    assert torch.allclose(metrics.ciede2000(lab2, lab1, dim=1), got, atol=1e-10)


def test_ciede2000_float32_image_layout() -> None:
    t = torch.tensor(SHARMA, dtype=torch.float32)
    lab1 = t[:, 0:3].T.reshape(1, 3, 2, 17)  # channels on dim 1, like an image
    lab2 = t[:, 3:6].T.reshape(1, 3, 2, 17)
    got = metrics.ciede2000(lab1, lab2).reshape(-1)
    assert torch.allclose(got, t[:, 6], atol=2e-4)


def test_identical_images(img: torch.Tensor) -> None:
    batch = torch.cat([img, sample("coffee")])
    assert metrics.psnr(batch, batch) == math.inf
    assert metrics.ssim(batch, batch) == pytest.approx(1.0, abs=1e-5)
    assert metrics.delta_e2000(batch, batch) == (0.0, 0.0)
    assert metrics.within_darktable_tolerance(batch, batch)
    big = sample("astronaut", (192, 176))
    assert metrics.ms_ssim(big, big) == pytest.approx(1.0, abs=1e-6)


def test_psnr_known_value(img: torch.Tensor) -> None:
    other = (img + 0.1).clamp(0, 1)
    mse = float(((other - img) ** 2).mean())
    assert metrics.psnr(img, other) == pytest.approx(10 * math.log10(1 / mse), rel=1e-6)
    assert metrics.psnr_per_image(torch.cat([img, img]), torch.cat([img, other])).shape == (2,)


def test_worse_degradation_scores_worse(img: torch.Tensor) -> None:
    mild, strong = add_noise(img, 0.02, seed=1), add_noise(img, 0.08, seed=1)
    assert metrics.psnr(img, mild) > metrics.psnr(img, strong)
    assert 0 < metrics.ssim(img, strong) < metrics.ssim(img, mild) < 1
    big = sample("astronaut", (192, 176))
    assert metrics.ms_ssim(big, add_noise(big, 0.08)) < metrics.ms_ssim(big, add_noise(big, 0.02)) < 1
    assert metrics.delta_e2000(img, strong)[0] > metrics.delta_e2000(img, mild)[0] > 0


def test_darktable_tolerance(img: torch.Tensor) -> None:
    nearly = (img + 1 / 255).clamp(0, 1)  # one 8-bit level: well inside darktable's bound
    assert metrics.within_darktable_tolerance(img, nearly)
    assert not metrics.within_darktable_tolerance(img, color_cast(img, r=1.1, b=0.9))
    mean, peak = metrics.delta_e2000(img, nearly)
    assert 0 < mean <= peak < 2.3


def test_delta_e_grey_step() -> None:
    # Two flat greys a known L* apart: dE00 = dL / SL exactly.
    a, b = torch.full((1, 3, 4, 4), 0.5), torch.full((1, 3, 4, 4), 0.6)
    from tools.colorspace import rgb_to_lab

    la, lb = float(rgb_to_lab(a)[0, 0, 0, 0]), float(rgb_to_lab(b)[0, 0, 0, 0])
    lm = ((la + lb) / 2 - 50) ** 2
    want = abs(lb - la) / (1 + 0.015 * lm / math.sqrt(20 + lm))
    mean, peak = metrics.delta_e2000(a, b)
    assert mean == pytest.approx(want, abs=1e-3) and peak == pytest.approx(want, abs=1e-3)


def test_ms_ssim_small_image_falls_back(img: torch.Tensor) -> None:
    assert metrics.ms_ssim_scales(48, 64) == 3
    assert metrics.ms_ssim_scales(176, 192) == 5
    noisy = add_noise(img, 0.05)
    with pytest.warns(UserWarning, match="3 of 5 scales"):
        value = metrics.ms_ssim(img, noisy)
    assert 0 < value < 1
    with pytest.raises(ToolError, match="smaller than"):
        metrics.ms_ssim(img[..., :8, :8], noisy[..., :8, :8])


def test_ms_ssim_five_scales_no_warning() -> None:
    big = sample("coffee", (192, 176))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert 0 < metrics.ms_ssim(big, add_noise(big, 0.05)) < 1


def test_shape_mismatch_named(img: torch.Tensor) -> None:
    with pytest.raises(ToolError, match="differ in shape"):
        metrics.psnr(img, img[..., :-1])
    with pytest.raises(ToolError, match="window"):
        metrics.ssim(img, img, window=4)


def test_tiny_image_ssim_shrinks_window() -> None:
    a = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-4)


def test_batch_mean_of_per_image(img: torch.Tensor) -> None:
    other = sample("coffee")
    a, b = torch.cat([img, other]), torch.cat([add_noise(img, 0.03), other])
    per = metrics.ssim_per_image(a, b)
    assert per[1] == pytest.approx(1.0, abs=1e-5) and per[0] < 1
    assert metrics.ssim(a, b) == pytest.approx(float(per.mean()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(img: torch.Tensor) -> None:
    big = sample("astronaut", (192, 176))
    noisy = add_noise(big, 0.05)
    g, n = big.cuda(), noisy.cuda()
    assert metrics.psnr(g, n) == pytest.approx(metrics.psnr(big, noisy), rel=1e-5)
    assert metrics.ssim(g, n) == pytest.approx(metrics.ssim(big, noisy), abs=1e-4)
    assert metrics.ms_ssim(g, n) == pytest.approx(metrics.ms_ssim(big, noisy), abs=1e-4)
    # Lab comes from OpenCV on the CPU and from kornia on CUDA.
    assert metrics.delta_e2000(g, n)[0] == pytest.approx(metrics.delta_e2000(big, noisy)[0], abs=0.02)
