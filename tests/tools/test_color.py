"""Colour tools: the op contract, known directions, CPU-band vs torch-path agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import check_op, sample
from tools import color
from tools.colorspace import LUMA, linear_to_srgb, luminance, rgb_to_hsv, rgb_to_lab, srgb_to_linear
from tools.registry import ToolError, get

ACTIVE = {
    "saturation": {"amount": 50},
    "vibrance": {"amount": 60},
    "hue": {"degrees": 40},
    "white_balance": {"temperature": 40, "tint": 20},
    "auto_white_balance": {"strength": 1.0},
    "hsl": {"blue_saturation": -80, "orange_hue": 40, "red_luminance": 50, "green_luminance": -60},
    "split_toning": {"shadow_saturation": 60, "highlight_saturation": 60, "balance": 20},
    "black_and_white": {"strength": 1.0, "red": 60, "green": 30, "blue": 10},
}
BAD = {
    "saturation": {"amount": 101},
    "vibrance": {"amount": -150},
    "hue": {"degrees": 200},
    "white_balance": {"temperature": 0, "tint": 120},
    "auto_white_balance": {"method": "retinex"},
    "hsl": {"aqua_hue": 101},
    "split_toning": {"highlight_hue": 400},
    "black_and_white": {"red": -50, "green": 0, "blue": 0},
}


def patch(rgb: tuple[float, float, float], size: int = 8) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, size, size).contiguous()


def mean_hsv_sat(x: torch.Tensor) -> float:
    return float(rgb_to_hsv(x)[:, 1].mean())


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


@pytest.mark.parametrize("name", sorted(ACTIVE))
def test_contract(name: str) -> None:
    check_op(name, {}, ACTIVE[name], bad=BAD[name])


def test_flags() -> None:
    assert get("white_balance").per_channel and get("white_balance").pointwise
    for name in ACTIVE:
        assert get(name).family == "color" and get(name).pointwise
        assert get(name).per_channel == (name == "white_balance"), "only fixed per-channel gains fuse into a LUT"


@pytest.mark.parametrize("name", sorted(ACTIVE))
def test_cpu_bands_match_the_torch_path(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # requires_grad forces the whole-image torch path; a tiny band size forces many CPU bands.
    # Same code except white balance, whose CPU path is a 16-bit table of the exact curve.
    monkeypatch.setattr(color, "_BAND_PIXELS", 2 * 64 * 5)
    img = torch.cat([sample("astronaut"), sample("coffee")])
    cpu = get(name)(img, ACTIVE[name])
    ref = get(name)(img.clone().requires_grad_(True), ACTIVE[name]).detach()
    tol = 1e-4 if "white_balance" in name else 1e-5
    assert (cpu - ref).abs().max() < tol


def test_gain_table_tracks_the_exact_linear_light_gain() -> None:
    gains = torch.tensor([[0.25, 1.0, 4.0], [0.9, 1.1, 2.0]])
    ramp = torch.rand(2, 3, 1, 20001)
    fast = color._apply_gains(ramp, gains)
    exact = linear_to_srgb(srgb_to_linear(ramp.double()) * gains.double().view(2, 3, 1, 1)).float()
    assert (fast - exact).abs().max() < 1e-4


def test_saturation_minus_100_is_grey_with_luma_kept() -> None:
    img = sample()
    out = get("saturation")(img, {"amount": -100})
    assert (out.amax(1) - out.amin(1)).max() < 1e-6
    assert torch.allclose(out[:, :1], luminance(img), atol=1e-6)


def test_saturation_boost_raises_saturation_and_keeps_luma() -> None:
    img = sample()
    out = get("saturation")(img, {"amount": 50})
    assert mean_hsv_sat(out) > mean_hsv_sat(img) + 0.03
    assert torch.allclose(luminance(out), luminance(img), atol=1e-5), "gamut fit keeps luma, no clipping"


def test_vibrance_boosts_dull_colours_more_than_vivid_ones() -> None:
    dull, vivid = patch((0.45, 0.5, 0.6)), patch((0.1, 0.3, 0.9))
    v = get("vibrance")
    gain_dull = mean_hsv_sat(v(dull, {"amount": 80})) / mean_hsv_sat(dull)
    gain_vivid = mean_hsv_sat(v(vivid, {"amount": 80})) / mean_hsv_sat(vivid)
    assert gain_dull > 1.3 and gain_vivid < 1.1


def test_vibrance_spares_skin_tones() -> None:
    skin, sky = patch((0.8, 0.6, 0.5)), patch((0.5, 0.6, 0.8))  # same chroma, opposite hues
    v = get("vibrance")
    gain_skin = mean_hsv_sat(v(skin, {"amount": 100})) / mean_hsv_sat(skin)
    gain_sky = mean_hsv_sat(v(sky, {"amount": 100})) / mean_hsv_sat(sky)
    assert 1 < gain_skin < gain_sky - 0.2


def test_hue_rotation_goes_red_to_yellow_and_back() -> None:
    h = get("hue")
    out = h(patch((0.8, 0.3, 0.3)), {"degrees": 60})
    hue_deg = float(rgb_to_hsv(out)[0, 0].mean())
    assert 45 < hue_deg < 75
    img = sample()
    for deg in (45, 180):
        back = h(h(img, {"degrees": deg}), {"degrees": -deg})
        exact = ((back - img).abs().amax(1) < 1e-4).float().mean()
        assert exact > 0.75, "colours that stay inside the gamut come back exactly"
        assert psnr(back, img) > 28, "the rest only lost some saturation at the gamut edge"


def test_hue_keeps_luma() -> None:
    img = sample()
    out = get("hue")(img, {"degrees": 120})
    assert torch.allclose(luminance(out), luminance(img), atol=1e-5)


def test_white_balance_directions() -> None:
    img, wb = sample(), get("white_balance")
    b0, a0 = (float(rgb_to_lab(img)[:, k].mean()) for k in (2, 1))
    assert float(rgb_to_lab(wb(img, {"temperature": 50}))[:, 2].mean()) > b0 + 3, "warmer = more yellow"
    assert float(rgb_to_lab(wb(img, {"temperature": -50}))[:, 2].mean()) < b0 - 3, "cooler = more blue"
    assert float(rgb_to_lab(wb(img, {"tint": 50}))[:, 1].mean()) > a0 + 2, "tint + = magenta"
    assert float(rgb_to_lab(wb(img, {"tint": -50}))[:, 1].mean()) < a0 - 2, "tint - = green"


@pytest.mark.parametrize("t,tint", [(0, 0), (100, 0), (-100, 0), (30, -70), (-60, 100)])
def test_white_balance_gains_keep_grey_luminance(t: float, tint: float) -> None:
    g = color.white_balance_gains(t, tint)
    assert np.dot(LUMA, g) == pytest.approx(1.0)
    assert (g[0] > g[2]) == (t > 0) or t == 0
    grey = patch((0.5, 0.5, 0.5))
    out = get("white_balance")(grey, {"temperature": t, "tint": tint})
    assert float(luminance(out, linear=True).mean()) == pytest.approx(float(srgb_to_linear(grey[0, 0, 0, 0])), abs=2e-4)


def _blue_cast(img: torch.Tensor) -> torch.Tensor:
    lin = srgb_to_linear(img)
    lin[:, 2] *= 1.3
    return linear_to_srgb(lin)


@pytest.mark.parametrize("method", ["grey_world", "white_patch"])
def test_auto_white_balance_removes_a_blue_cast(method: str) -> None:
    clean = sample("astronaut")
    if method == "grey_world":  # a scene that meets grey world's assumption: its average is grey
        clean = get("auto_white_balance")(clean, {"method": "grey_world", "strength": 1.0})
    cast = _blue_cast(clean)
    fixed = get("auto_white_balance")(cast, {"method": method, "strength": 1.0})

    def neutral_b(x: torch.Tensor) -> float:
        lab = rgb_to_lab(x)
        near = (lab[:, 1:].abs() < 12).all(1) & (rgb_to_lab(clean)[:, 1:].abs() < 6).all(1)
        return float(lab[:, 2][near].mean().abs())

    assert neutral_b(fixed) < 0.6 * neutral_b(cast)
    assert psnr(fixed, clean) > psnr(cast, clean) + 6


def test_auto_white_balance_strength_interpolates() -> None:
    cast = _blue_cast(sample("astronaut"))
    awb = get("auto_white_balance")
    half, full = awb(cast, {"strength": 0.5}), awb(cast, {"strength": 1.0})
    assert 0.2 < float((half - cast).abs().mean() / (full - cast).abs().mean()) < 0.8


def test_hsl_blue_saturation_leaves_red_alone() -> None:
    blue, red = patch((0.2, 0.2, 0.8)), patch((0.8, 0.2, 0.2))
    h = get("hsl")
    assert mean_hsv_sat(h(blue, {"blue_saturation": -100})) < 0.05
    assert torch.allclose(h(red, {"blue_saturation": -100}), red, atol=1e-6)


def test_hsl_luminance_and_hue_move_their_band() -> None:
    h, orange = get("hsl"), patch((0.9, 0.5, 0.1))
    assert float(luminance(h(orange, {"orange_luminance": 100})).mean()) > float(luminance(orange).mean()) + 0.05
    assert float(luminance(h(orange, {"orange_luminance": -100})).mean()) < float(luminance(orange).mean()) - 0.05
    shifted = float(rgb_to_hsv(h(orange, {"orange_hue": 100}))[0, 0].mean())
    assert shifted > float(rgb_to_hsv(orange)[0, 0].mean()) + 15, "+ moves orange toward yellow"
    grey = patch((0.5, 0.5, 0.5))
    assert torch.allclose(h(grey, {"red_luminance": 100, "blue_luminance": -100}), grey, atol=1e-6)


def test_hsl_band_weights_have_no_seams() -> None:
    deg = np.linspace(0, 360, 36001)
    w = color._band_weights(deg)
    assert np.allclose(w.sum(1), 1.0)
    assert np.abs(np.diff(w, axis=0)).max() < 2e-3, "smooth in hue"
    assert np.allclose(w[0], w[-1]), "wraps around at 360"


def test_split_toning_warms_highlights_and_cools_shadows() -> None:
    img = sample()
    out = get("split_toning")(
        img, {"shadow_hue": 220, "shadow_saturation": 60, "highlight_hue": 40, "highlight_saturation": 60}
    )
    y = luminance(img)[:, 0]
    lab0, lab1 = rgb_to_lab(img)[:, 2], rgb_to_lab(out)[:, 2]
    bright, dark = y > 0.6, (y < 0.3) & (y > 0.05)
    assert float(lab1[bright].mean()) > float(lab0[bright].mean()) + 3
    assert float(lab1[dark].mean()) < float(lab0[dark].mean()) - 3
    assert torch.allclose(luminance(out), luminance(img), atol=1e-5)


def test_black_and_white() -> None:
    img = sample()
    bw = get("black_and_white")
    out = bw(img, {"strength": 1.0})
    assert (out.amax(1) - out.amin(1)).max() < 1e-6
    assert torch.allclose(out, get("saturation")(img, {"amount": -100}), atol=1e-5)
    red_filter = bw(patch((0.2, 0.4, 0.9)), {"strength": 1.0, "red": 100, "green": 0, "blue": 0})
    assert float(red_filter.mean()) == pytest.approx(0.2, abs=1e-6), "a red filter darkens a blue sky"
    with pytest.raises(ToolError, match="make it positive"):
        bw(img, {"red": 0, "green": 0, "blue": 0, "strength": 1})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(ACTIVE))
def test_cpu_and_cuda_agree(name: str) -> None:
    img = torch.cat([sample("astronaut"), sample("coffee")])
    cpu = get(name)(img, ACTIVE[name])
    gpu = get(name)(img.cuda(), ACTIVE[name]).cpu()
    assert (cpu - gpu).abs().max() < 1e-3


def test_auto_white_balance_gains_are_per_image() -> None:
    a, b = _blue_cast(sample("astronaut")), sample("coffee")
    awb = get("auto_white_balance")
    both = awb(torch.cat([a, b]), {"strength": 0.8})
    assert torch.allclose(both[:1], awb(a, {"strength": 0.8}), atol=1e-6)
    assert torch.allclose(both[1:], awb(b, {"strength": 0.8}), atol=1e-6)


def test_white_balance_fuses_into_the_recipe_lut() -> None:
    from tools.recipe import fused_lut

    img, tool, p = sample(), get("white_balance"), {"temperature": -35, "tint": 15}
    assert (fused_lut([(tool, tool.validate(p))], img) - tool(img, p)).abs().max() < 1e-4
