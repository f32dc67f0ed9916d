"""tools/analysis.py: known answers on synthetic images, scale consistency, text, the tool."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import sample
from tools import colorspace
from tools.analysis import Measure, Stats, describe_delta, measure, measure_batch
from tools.registry import ToolError


def flat(rgb: tuple[float, float, float], h: int = 48, w: int = 64) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, h, w).contiguous()


def smooth(h: int = 96, w: int = 128) -> torch.Tensor:
    """A clean mid-grey image with gentle ramps and a slow wave, no edges, nothing clipped."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    grey = 0.3 + 0.3 * x + 0.1 * y + 0.05 * torch.sin(3 * x) * torch.cos(2 * y)
    return grey.expand(1, 3, h, w).contiguous()


def to_tensor(hwc: np.ndarray) -> torch.Tensor:
    return (
        torch.from_numpy(np.ascontiguousarray(hwc, dtype=np.float32))
        .permute(2, 0, 1)[None]
        .contiguous()
    )


def area_half(image: torch.Tensor) -> torch.Tensor:
    """The 2x smaller preview a photo app would make (cv2.INTER_AREA)."""
    h, w = image.shape[-2:]
    hwc = image[0].permute(1, 2, 0).numpy()
    return to_tensor(cv2.resize(hwc, (w // 2, h // 2), interpolation=cv2.INTER_AREA))


# ----------------------------------------------------------------- known answers


def test_flat_grey_known_answers():
    s = measure(flat((0.5, 0.5, 0.5)))
    assert (s.width, s.height) == (64, 48)
    for v in (s.mean_L, s.median_L, s.p01_L, s.p05_L, s.p95_L, s.p99_L):
        assert v == pytest.approx(53.39, abs=0.2)  # CIE L* of sRGB 0.5
    assert s.cast < 0.5 and s.mean_saturation < 1e-3 and s.colorfulness < 0.1
    assert s.rms_contrast < 1e-4 and s.dynamic_range == pytest.approx(0.0, abs=1e-3)
    assert s.noise_sigma < 1e-5 and s.sharpness < 1e-8
    assert s.clipped_shadows_pct == 0.0 and s.clipped_highlights_pct == 0.0


def test_tints_read_as_casts_on_b():
    blue = measure(flat((0.45, 0.5, 0.6)))
    yellow = measure(flat((0.6, 0.55, 0.4)))
    assert blue.cast_b < -10 and abs(blue.cast_a) < 3
    assert yellow.cast_b > 10
    assert blue.cast == pytest.approx(math.hypot(blue.cast_a, blue.cast_b))


def test_cast_ignores_saturated_colour_and_falls_back_when_nothing_is_neutral():
    # Half strong red (chroma far above 25), half neutral grey: the red is no cast.
    img = flat((0.5, 0.5, 0.5))
    img[..., :32] = torch.tensor([0.8, 0.1, 0.1]).view(1, 3, 1, 1)
    s = measure(img)
    assert s.cast < 0.5
    # A frame of strong blue has no neutral pixel: the mean of all pixels is the cast.
    strong = measure(flat((0.4, 0.5, 0.8)))
    lab = colorspace.rgb_to_lab(flat((0.4, 0.5, 0.8)))
    assert strong.cast_b == pytest.approx(float(lab[:, 2].mean()), abs=0.01)
    assert strong.cast_b < -30


def test_noise_sigma_of_added_gaussian_noise():
    clean = smooth()
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(1, 1, *clean.shape[-2:], generator=g)
    assert measure(clean).noise_sigma < 1e-3
    # The same noise in all channels is luma noise of the same sigma.
    assert measure(clean + 0.02 * noise).noise_sigma == pytest.approx(0.02, rel=0.25)
    # Independent per-channel noise reads ~0.75x (the luma averages the channels), as documented.
    rgb_noise = torch.randn(1, 3, *clean.shape[-2:], generator=g)
    assert measure(clean + 0.02 * rgb_noise).noise_sigma == pytest.approx(0.75 * 0.02, rel=0.25)


def test_noise_ignores_strong_edges():
    step = flat((0.3, 0.3, 0.3))
    step[..., 32:] = 0.7
    assert measure(step).noise_sigma < 1e-4


def test_blur_lowers_sharpness():
    img = sample("astronaut", (128, 96))
    blurred = to_tensor(cv2.GaussianBlur(img[0].permute(1, 2, 0).numpy(), (0, 0), 1.5))
    assert measure(blurred).sharpness < 0.5 * measure(img).sharpness


def test_clipping_percentages():
    img = flat((0.5, 0.5, 0.5))
    # One blown channel is enough to count as clipped white.
    img[..., 0:5, :] = torch.tensor([1.0, 0.5, 0.5]).view(1, 3, 1, 1)
    img[..., 5:8, :] = 0.0
    # One channel lit is not crushed black.
    img[..., 8:9, :] = torch.tensor([0.0, 0.0, 0.5]).view(1, 3, 1, 1)
    img[..., 9:10, :] = 252 / 255  # just under the highlight limit
    img[..., 10:11, :] = 2 / 255  # exactly on the shadow limit: crushed
    s = measure(img)
    assert s.clipped_highlights_pct == pytest.approx(100 * 5 / 48)
    assert s.clipped_shadows_pct == pytest.approx(100 * 4 / 48)


def test_darker_image_has_lower_lightness():
    img = sample("astronaut")
    bright, dark = measure(img), measure(img * 0.5)
    assert dark.mean_L < bright.mean_L - 5
    assert dark.median_L < bright.median_L and dark.p99_L < bright.p99_L


def test_percentiles_are_ordered():
    s = measure(sample("coffee"))
    assert 0 <= s.p01_L <= s.p05_L <= s.median_L <= s.p95_L <= s.p99_L <= 100


def test_dynamic_range_of_two_levels():
    img = flat((0.2, 0.2, 0.2))
    img[..., 32:] = 0.8
    y = colorspace.srgb_to_linear(torch.tensor([0.2, 0.8]))
    assert measure(img).dynamic_range == pytest.approx(math.log2(float(y[1] / y[0])), abs=0.05)
    img[..., :32] = 0.0  # black has no finite range: the floor caps it at 10 stops
    assert measure(img).dynamic_range == pytest.approx(10 + math.log2(float(y[1])), abs=0.05)


# ----------------------------------------------------------------- scale, sampling, backends

POINT_TOLERANCES = {
    "mean_L": 0.5,
    "median_L": 1.5,
    "p95_L": 2.0,
    "rms_contrast": 0.01,
    "colorfulness": 2.0,
    "cast_a": 1.0,
    "cast_b": 1.0,
    "mean_saturation": 0.02,
    "clipped_shadows_pct": 1.0,
    "clipped_highlights_pct": 1.0,
}


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_preview_matches_full_size_point_statistics(name):
    full = sample(name, (256, 192))
    a, b = measure(full), measure(area_half(full))
    for field, tol in POINT_TOLERANCES.items():
        assert getattr(a, field) == pytest.approx(getattr(b, field), abs=tol), field


def test_large_photo_matches_its_preview_including_noise_and_sharpness():
    # 2048 px: point statistics on a strided subsample, noise and sharpness at 1024 px.
    photo = cv2.resize(
        sample("coffee", (600, 400))[0].permute(1, 2, 0).numpy(),
        (2048, 1366),
        interpolation=cv2.INTER_CUBIC,
    )
    full = to_tensor(photo)
    g = torch.Generator().manual_seed(0)
    full = (full + 0.02 * torch.randn(1, 1, *full.shape[-2:], generator=g)).clamp(0, 1)
    a, b = measure(full), measure(area_half(full))
    for field, tol in POINT_TOLERANCES.items():
        assert getattr(a, field) == pytest.approx(getattr(b, field), abs=tol), field
    assert a.noise_sigma == pytest.approx(b.noise_sigma, rel=0.05)
    assert a.noise_sigma == pytest.approx(0.01, rel=0.25)  # 0.02 halved by the 2x area average
    assert a.sharpness == pytest.approx(b.sharpness, rel=0.05)
    assert a.dynamic_range == pytest.approx(
        b.dynamic_range, abs=0.75
    )  # log of deep shadows: touchy


def test_subsample_does_not_alias_with_pixel_patterns():
    # 2.1 MP: above the sampling limit, and every pattern has a 2-pixel period.
    h, w = 1400, 1500
    rows = torch.arange(h).view(h, 1) % 2
    cols = torch.arange(w).view(1, w) % 2
    for pattern in (rows ^ cols, rows.expand(h, w), cols.expand(h, w)):
        img = pattern.float().expand(1, 3, h, w)
        s = measure(img)
        assert s.clipped_shadows_pct == pytest.approx(50, abs=0.5)
        assert s.clipped_highlights_pct == pytest.approx(50, abs=0.5)


def test_opencv_and_kornia_paths_agree(monkeypatch):
    img = sample("coffee")
    fast = measure(img)
    monkeypatch.setattr(colorspace, "use_cv", lambda image: False)
    slow = measure(img)
    for field, tol in {
        "mean_L": 0.3,
        "p95_L": 0.3,
        "cast_a": 0.3,
        "cast_b": 0.3,
        "mean_saturation": 1e-3,
        "dynamic_range": 0.05,
    }.items():
        assert getattr(fast, field) == pytest.approx(getattr(slow, field), abs=tol), field
    assert fast.noise_sigma == slow.noise_sigma and fast.sharpness == slow.sharpness


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_agrees_with_cpu():
    img = sample("astronaut", (256, 192))
    cpu, gpu = measure(img), measure(img.cuda())
    # L*, a*, b* differ by up to ~0.3 between OpenCV and Kornia; the spatial path is torch on both.
    for field in Stats.model_fields:
        tol = {"rel": 0.01} if field in ("noise_sigma", "sharpness") else {"rel": 0.02, "abs": 0.3}
        assert getattr(gpu, field) == pytest.approx(getattr(cpu, field), **tol), field


# ----------------------------------------------------------------- contract


def test_batches_go_through_measure_batch():
    batch = torch.cat([sample("astronaut"), sample("coffee")])
    with pytest.raises(ToolError, match="measure_batch"):
        measure(batch)
    stats = measure_batch(batch)
    assert len(stats) == 2
    assert stats[1] == measure(batch[1:2])


def test_bad_images_are_refused_and_input_is_kept():
    with pytest.raises(ToolError):
        measure(np.zeros((48, 64, 3), np.float32))
    with pytest.raises(ToolError):
        measure(torch.zeros(1, 4, 8, 8))
    img = sample("astronaut")
    before = img.clone()
    measure(img)
    assert torch.equal(img, before)


def test_every_field_is_described():
    for name, field in Stats.model_fields.items():
        assert field.description, name


def test_summary_names_the_quantities():
    text = measure(flat((0.6, 0.55, 0.4))).summary()
    for word in ("L* ", "median", "contrast", "cast b*+", "(yellow)", "noise", "clipped"):
        assert word in text, word
    assert "no cast" in measure(flat((0.5, 0.5, 0.5))).summary()
    assert "\n" not in text


def test_describe_delta_reports_notable_changes_only():
    img = sample("astronaut")
    before = measure(img)
    assert describe_delta(before, before) == "no notable change in the measurements"
    warmer = img * torch.tensor([1.0, 0.95, 0.75]).view(1, 3, 1, 1)
    text = describe_delta(before, measure((warmer * 1.3).clamp(0, 1)))
    assert "L* " in text and "->" in text and "cast" in text and "b*" in text
    flatter = measure(0.5 + 0.5 * (img - 0.5))
    assert "contrast" in describe_delta(before, flatter)


def test_measure_tool_is_registered_read_only():
    # registry.get() imports every tool family; this test needs only this one.
    from tools.registry import _REGISTRY

    tool = _REGISTRY["measure"]
    assert tool.params is Measure and tool.family == "analysis"
    assert tool.read_only and not tool.supports_mask and not tool.differentiable
    assert tool.description == (
        "Measure exposure, contrast, colour cast, saturation, noise and sharpness of the current image."
    )
    assert Measure.model_json_schema()["properties"] == {}
    batch = torch.cat([sample("coffee"), sample("astronaut")])
    assert tool(batch) == measure(batch[0:1])
    with pytest.raises(ToolError):
        tool(batch, {"strength": 1})


def test_tiny_images_do_not_crash():
    s = measure(torch.rand(1, 3, 2, 1))
    assert s.noise_sigma == 0.0 and s.sharpness == 0.0 and 0 <= s.mean_L <= 100


def test_tone_ends_read_a_fade_at_both_ends_a_high_key_photo_at_its_blacks_and_ignore_noise() -> None:
    from tools.degrade import add_noise, low_contrast

    ramp = torch.linspace(0, 1, 128).view(1, -1).expand(96, -1)  # tones from black to white, left to right
    full = torch.stack([ramp, ramp.flip(1) * 0.3 + 0.7 * ramp, ramp])[None].contiguous()
    s = measure(full)
    assert s.black_lift < 0.02 and s.white_drop < 0.02 and s.veil < 0.02
    faded = measure(low_contrast(full, 0.7))  # 0.15 off each end
    assert faded.black_lift == pytest.approx(0.15, abs=0.03) and faded.white_drop == pytest.approx(0.15, abs=0.03)
    bright = measure(0.3 + 0.7 * full)  # a high-key photo: lifted blacks, whole whites
    assert bright.black_lift > 0.25 and bright.white_drop < 0.02 and bright.veil < 0.02
    noisy = measure(add_noise(low_contrast(full, 0.7), 0.04))  # noise does not read as tones reaching the ends
    assert noisy.veil > 0.1
