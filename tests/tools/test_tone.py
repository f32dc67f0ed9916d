"""Tone tools: the op template, known directions, path agreement and the LUT-fusion contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import check_op, sample
from tools import colorspace as cs
from tools import tone
from tools.registry import ToolError, get

S_CURVE = [[0, 0], [0.25, 0.18], [0.75, 0.84], [1, 1]]

CASES = {  # name: (neutral, active, bad)
    "exposure": ({}, {"stops": 1}, {"stops": 9}),
    "brightness": ({}, {"amount": 0.5}, {"amount": 2}),
    "contrast": ({}, {"amount": 50}, {"amount": 101}),
    "gamma": ({}, {"gamma": 2.2}, {"gamma": 0}),
    "curves": ({}, {"points": S_CURVE}, {"points": [[0.5, 0.5]]}),
    "luma_curve": ({}, {"points": S_CURVE}, {"points": [[0, 0], [0, 1]]}),
    "levels": ({}, {"black": 0.1, "white": 0.9, "midtone": 1.3}, {"black": 0.6, "white": 0.4}),
    "whites_blacks": ({}, {"whites": 50, "blacks": -40}, {"whites": 200}),
    "shadows_highlights": ({}, {"shadows": 60, "highlights": -60}, {"shadows": -101}),
    "clahe": ({"strength": 0}, {"clip_limit": 3.0}, {"tiles": 1}),
    "equalize": ({}, {"strength": 1}, {"strength": 2}),
}
PER_CHANNEL = {  # active params of every per-channel tool, strong enough to matter
    "exposure": {"stops": 1.5},
    "brightness": {"amount": -0.6},
    "contrast": {"amount": 80},
    "gamma": {"gamma": 2.2},
    "curves": {"points": [[0.05, 0], [0.4, 0.5], [0.9, 1]]},
    "levels": {"black": 0.1, "white": 0.85, "midtone": 0.7, "out_black": 0.05},
    "whites_blacks": {"whites": 100, "blacks": 60},
}


def _torch_path(name: str, image: torch.Tensor, params: dict) -> torch.Tensor:
    """Force the torch (GPU/autograd) path on the CPU by asking for a gradient."""
    return get(name)(image.clone().requires_grad_(True), params).detach()


def _lab(image: torch.Tensor) -> torch.Tensor:
    return cs.rgb_to_lab(image)


# ----------------------------------------------------------------- the template


@pytest.mark.parametrize("name", list(CASES))
def test_op_template(name: str) -> None:
    neutral, active, bad = CASES[name]
    check_op(name, neutral, active, bad=bad)


def test_flags() -> None:
    for name in PER_CHANNEL:
        assert get(name).per_channel and get(name).pointwise, name
    assert get("luma_curve").pointwise and not get("luma_curve").per_channel
    for name in ("shadows_highlights", "clahe", "equalize"):
        assert not get(name).pointwise and not get(name).per_channel, name
    assert {get(n).family for n in CASES} == {"tone"}


# ----------------------------------------------------------------- known directions


def test_exposure_scales_linear_light() -> None:
    img = sample("coffee") * 0.8  # mid-tones, little clipping
    lin = cs.srgb_to_linear(img)
    for stops, ratio in ((1, 2.0), (-1, 0.5)):
        out = cs.srgb_to_linear(get("exposure")(img, {"stops": stops}))
        keep = (out < 0.999).all(1, keepdim=True).expand_as(out)
        got = float(out[keep].mean() / lin[keep].mean())
        assert abs(got / ratio - 1) < 0.1, (stops, got)


def test_brightness_keeps_black_and_white_and_lifts_mid() -> None:
    x = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3).expand(1, 3, 1, 3).contiguous()
    up = get("brightness")(x, {"amount": 1})[0, 0, 0]
    down = get("brightness")(x, {"amount": -1})[0, 0, 0]
    assert torch.allclose(up, torch.tensor([0.0, 0.75, 1.0]), atol=1e-4)
    assert torch.allclose(down, torch.tensor([0.0, 0.25, 1.0]), atol=1e-4)


def test_brightness_minus_inverts_plus() -> None:
    img = sample()
    there = _torch_path("brightness", img, {"amount": 0.7})
    back = _torch_path("brightness", there, {"amount": -0.7})
    assert torch.allclose(back, img, atol=1e-5)


def _rms(image: torch.Tensor) -> float:
    return float(cs.luminance(image).std())


def test_contrast_changes_rms_and_keeps_ends() -> None:
    img = sample()
    assert _rms(get("contrast")(img, {"amount": 50})) > _rms(img) * 1.1
    assert _rms(get("contrast")(img, {"amount": -50})) < _rms(img) * 0.95
    ends = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3).expand(1, 3, 1, 3).contiguous()
    assert torch.allclose(get("contrast")(ends, {"amount": 100}), ends, atol=1e-4)  # 0.5 is off the 16-bit grid


def test_gamma_convention() -> None:
    x = torch.full((1, 3, 2, 2), 0.25)
    assert torch.allclose(get("gamma")(x, {"gamma": 2.0}), torch.full_like(x, 0.5), atol=1e-4)
    assert torch.allclose(get("gamma")(x, {"gamma": 0.5}), torch.full_like(x, 0.0625), atol=1e-4)


def test_levels_maps_points_and_rejects_crossed_points() -> None:
    x = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5).contiguous()
    out = get("levels")(x, {"black": 0.1, "white": 0.9, "out_black": 0.2, "out_white": 0.8})[0, 0, 0]
    assert torch.allclose(out, torch.tensor([0.2, 0.2, 0.5, 0.8, 0.8]), atol=1e-4)
    with pytest.raises(ToolError, match="black point 0.5 must be below white point 0.5"):
        get("levels").validate({"black": 0.5, "white": 0.5})


def test_whites_blacks_moves_the_clipping_points() -> None:
    x = torch.linspace(0, 1, 1001).view(1, 1, 1, -1).expand(1, 3, 1, -1).contiguous()
    f = get("whites_blacks")
    up = f(x, {"whites": 100})[0, 0, 0]
    assert up[750:].min() > 0.999 and up[740] < 0.99, "white point moved to 0.75"
    assert torch.allclose(up[:501], x[0, 0, 0, :501], atol=1e-5), "whites leave the lower half alone"
    soft = f(x, {"whites": -100})[0, 0, 0]
    assert abs(float(soft[-1]) - 0.75) < 1e-3
    deep = f(x, {"blacks": -100})[0, 0, 0]
    assert deep[:250].max() < 1e-6 and deep[260] > 0, "black point moved to 0.25"
    lifted = f(x, {"blacks": 100, "whites": 40})[0, 0, 0]
    assert abs(float(lifted[0]) - 0.25) < 1e-3 and abs(float(lifted[500]) - 0.5) < 1e-5
    for curve in (up, soft, deep, lifted):
        assert (curve[1:] >= curve[:-1]).all(), "monotone"


def _percentiles(image: torch.Tensor, qs: list[float]) -> np.ndarray:
    return np.percentile(_lab(image)[:, 0].numpy(), qs)


def test_shadows_lift_dark_tones_more_than_bright() -> None:
    img = sample()
    before = _percentiles(img, [10, 90])
    after = _percentiles(get("shadows_highlights")(img, {"shadows": 80}), [10, 90])
    gain = after - before
    assert gain[0] > 2 and gain[0] > 2 * max(gain[1], 0), gain


def test_highlight_recovery_darkens_bright_tones_more_than_midtones() -> None:
    img = sample("coffee")
    before = _percentiles(img, [50, 95])
    after = _percentiles(get("shadows_highlights")(img, {"highlights": -80}), [50, 95])
    drop = before - after
    assert drop[1] > 2 and drop[1] > 2 * max(drop[0], 0), drop


def _local_contrast(image: torch.Tensor) -> float:
    lum = _lab(image)[:, :1]
    mean = torch.nn.functional.avg_pool2d(lum, 5, 1, 2, count_include_pad=False)
    return float((lum - mean).abs().mean())


def test_clahe_raises_local_contrast_and_keeps_colour() -> None:
    flat = 0.35 + 0.3 * sample()  # a low-contrast photo
    out = get("clahe")(flat, {"clip_limit": 3.0, "tiles": 4})
    assert _local_contrast(out) > 1.3 * _local_contrast(flat)
    ab_shift = (_lab(out)[:, 1:] - _lab(flat)[:, 1:]).abs()
    assert float(ab_shift.mean()) < 1.5 and float(ab_shift.max()) < 10, "a* b* kept (L* only)"


def test_clahe_rejects_a_grid_larger_than_the_image() -> None:
    with pytest.raises(ToolError, match="too small for a 16x16 tile grid; use tiles <= 11"):
        get("clahe")(sample(size=(20, 12)), {"tiles": 16})


def _chroma_cross(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest |(a - luma a) x (b - luma b)|: 0 when every pixel kept its chroma direction (hue)."""
    ca, cb = a - cs.luminance(a), b - cs.luminance(b)
    return float(torch.linalg.cross(ca, cb, dim=1).abs().max())


def test_equalize_spreads_luma_and_keeps_hue() -> None:
    flat = 0.35 + 0.3 * torch.cat([sample(), sample("coffee")])
    out = get("equalize")(flat, {"strength": 1})
    y_in, y_out = cs.luminance(flat), cs.luminance(out)
    assert float(y_out.std()) > 1.5 * float(y_in.std())
    assert float(y_out.min()) < 0.05 and float(y_out.max()) > 0.95, "full range used"
    cdf = torch.sort(y_out[1].flatten()).values  # equalised: the sorted lumas are a ramp
    assert float((cdf - torch.linspace(0, 1, cdf.numel())).abs().max()) < 0.05
    assert _chroma_cross(flat, out) < 1e-4
    half = get("equalize")(flat, {"strength": 0.5})
    assert torch.allclose(cs.luminance(half), (y_in + y_out) / 2, atol=1e-3), "strength blends luma"


# ----------------------------------------------------------------- curves


def test_curves_identity_points_are_identity() -> None:
    img = sample()
    for ch in ("rgb", "r", "g", "b"):
        out = get("curves")(img, {"points": [[0, 0], [0.3, 0.3], [0.8, 0.8], [1, 1]], "channel": ch})
        assert torch.allclose(out, img, atol=1e-6), ch


def test_curves_one_channel_changes_only_that_channel() -> None:
    img = sample()
    out = get("curves")(img, {"points": [[0, 0.2], [1, 1]], "channel": "g"})
    assert torch.equal(out[:, [0, 2]], img[:, [0, 2]])
    assert float((out[:, 1] - img[:, 1]).mean()) > 0.05


def test_pchip_matches_scipy() -> None:
    from scipy.interpolate import PchipInterpolator

    pts = [[0, 0.1], [0.2, 0.15], [0.5, 0.7], [0.6, 0.65], [1, 0.9]]
    x = torch.linspace(0, 1, 501, dtype=torch.float64)
    ref = PchipInterpolator([p[0] for p in pts], [p[1] for p in pts])(x.numpy())
    np.testing.assert_allclose(tone.pchip(x, pts).numpy(), ref, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=2, max_size=16))
def test_curves_are_monotone_for_monotone_points(raw: list[tuple[float, float]]) -> None:
    xs = sorted({round(x, 4) for x, _ in raw})
    if len(xs) < 2:
        return
    ys = sorted(y for _, y in raw)[: len(xs)]
    ys += [ys[-1]] * (len(xs) - len(ys))
    pts = [[x, y] for x, y in zip(xs, ys, strict=True)]
    ramp = torch.linspace(0, 1, 2001).view(1, 1, 1, -1).expand(1, 3, 1, -1).contiguous()
    for out in (get("curves")(ramp, {"points": pts}), _torch_path("curves", ramp, {"points": pts})):
        row = out[0, 0, 0]
        assert (row[1:] >= row[:-1] - 1e-6).all()
        assert float(row.min()) >= min(ys) - 1e-6 and float(row.max()) <= max(ys) + 1e-6


@pytest.mark.parametrize(
    "points, message",
    [
        ([[0, 0], [0.5, 0.4], [0.5, 0.6], [1, 1]], "must increase strictly: point 3 has x=0.5 after x=0.5"),
        ([[0, 0], [0.7, 0.4], [0.3, 0.6]], "sort the points by x"),
        ([[0.5, 0.5]], "at least 2 items"),
        ([[i / 20, i / 20] for i in range(17)], "at most 16 items"),
        ([[0, 0], [1.5, 1]], "less than or equal to 1"),
        ([[0, 0, 0], [1, 1, 1]], "at most 2 items"),
    ],
)
def test_bad_curves_are_rejected_clearly(points: list, message: str) -> None:
    for name in ("curves", "luma_curve"):
        with pytest.raises(ToolError, match=message) as err:
            get(name).validate({"points": points})
        assert str(err.value).startswith(f"{name}: points")


def test_luma_curve_changes_brightness_not_hue() -> None:
    img = sample()
    out = get("luma_curve")(img, {"points": [[0, 0], [0.5, 0.7], [1, 1]]})
    assert float((cs.luminance(out) - cs.luminance(img)).mean()) > 0.05
    assert _chroma_cross(img, out) < 1e-4, "chroma keeps its direction: hue unchanged"


# ----------------------------------------------------------------- paths and LUT fusion


@pytest.mark.parametrize("name", list(PER_CHANNEL) + ["luma_curve"])
def test_cpu_table_and_torch_closed_form_agree(name: str) -> None:
    params = PER_CHANNEL.get(name, {"points": S_CURVE})
    photo = sample()  # 8-bit values sit on the 16-bit table grid: agreement to float rounding
    tol = 1e-4 if name == "luma_curve" else 1e-5  # luma itself falls between grid points
    assert torch.allclose(get(name)(photo, params), _torch_path(name, photo, params), atol=tol)
    off_grid = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(get(name)(off_grid, params), _torch_path(name, off_grid, params), atol=2e-4)


@pytest.mark.parametrize("name", list(PER_CHANNEL))
def test_ramp_reproduces_the_op(name: str) -> None:
    """What the recipe's LUT fusion relies on: the op is one 1-D curve per channel."""
    params = PER_CHANNEL[name]
    n = 4096
    ramp = torch.linspace(0, 1, n).view(1, 1, 1, n).expand(1, 3, 1, n).contiguous()
    curve = get(name)(ramp, params)[0, :, 0].numpy()
    photo = torch.cat([sample(), sample("coffee")])
    want = get(name)(photo, params).numpy()
    grid = np.linspace(0, 1, n)
    for c in range(3):
        got = np.interp(photo[:, c].numpy(), grid, curve[c])
        assert np.abs(got - want[:, c]).max() < 1 / 255, (name, c)


def test_clahe_paths_agree() -> None:
    """OpenCV (8-bit L, floor) vs kornia's fast path; tiles of 16x12 px, stated in L*."""
    photo = torch.cat([sample(), sample("coffee")])
    lum = _lab(photo)[:, :1]
    for clip in (2.0, 40.0):
        cv = cs.per_plane(lum, lambda a, clip=clip: tone._clahe_plane(a, clip, 4))
        kn = tone._clahe_torch(lum, clip, 4)
        assert float((cv - kn).abs().mean()) < 1.0 and float((cv - kn).abs().max()) < 5.0, clip
    # End to end the paths also differ in Lab conversion (OpenCV vs kornia, ~0.2 L*), which
    # equalisation amplifies where a tile's map is steep: mean ~1 L*, a few pixels ~13 L*.
    l_cv = _lab(get("clahe")(photo, {"tiles": 4}))[:, 0]
    l_torch = _lab(_torch_path("clahe", photo, {"tiles": 4}))[:, 0]
    assert float((l_cv - l_torch).abs().mean()) < 2.0


def test_clahe_gradient_reaches_the_input() -> None:
    x = sample().requires_grad_(True)
    get("clahe")(x, {"tiles": 4}).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "name, params, size, tol",
    [
        ("shadows_highlights", {"shadows": 70, "highlights": -70}, (64, 48), 1e-4),
        ("shadows_highlights", {"shadows": 70, "highlights": -70}, (320, 240), 1e-4),  # thumbnail path
        ("equalize", {"strength": 1}, (64, 48), 1e-3),
    ],
)
def test_local_ops_paths_agree(name: str, params: dict, size: tuple[int, int], tol: float) -> None:
    photo = sample(size=size)
    d = (get(name)(photo, params) - _torch_path(name, photo, params)).abs()
    assert float(d.max()) < tol, float(d.max())
