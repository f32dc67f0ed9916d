"""Detail tools: the op template, OpenCV-vs-torch agreement, and known-direction checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import check_op, sample
from tools import colorspace as cs
from tools import detail
from tools.registry import get

CASES = {
    "sharpen": ({"amount": 0}, {"amount": 1.5, "radius": 1.0}, {"radius": 0}),
    "blur": ({"sigma": 0}, {"sigma": 2.0}, {"sigma": 100}),
    "denoise-nlm": ({"strength": 0}, {"strength": 0.6}, {"method": "wavelet"}),
    "denoise-bilateral": (
        {"strength": 0, "method": "bilateral"},
        {"strength": 0.6, "method": "bilateral"},
        {"strength": 2, "method": "bilateral"},
    ),
    "denoise-median": (
        {"strength": 0, "method": "median"},
        {"strength": 0.8, "method": "median"},
        {"strength": -0.1, "method": "median"},
    ),
    "clarity": ({"amount": 0}, {"amount": 80}, {"amount": 150}),
    "dehaze": ({"amount": 0}, {"amount": 0.9, "patch": 7}, {"patch": 1}),
    "vignette": ({"amount": 0}, {"amount": -0.7}, {"feather": 2}),
}

# Tolerance of the torch path against the OpenCV path (max abs difference on [0,1] values).
# Gaussian, box, erode, bilateral and median are the same arithmetic up to float rounding.
# NLM differs more: OpenCV runs on uint8 Lab with fixed-point weights, torch on float Lab.
AGREE = {
    "sharpen": 1e-5,
    "blur": 1e-5,
    "denoise-bilateral": 1e-4,
    "denoise-median": 1e-6,
    "clarity": 1e-5,
    "dehaze": 1e-4,
    "vignette": 1e-6,
    "denoise-nlm": 0.03,
}


def _tool(case: str) -> str:
    return case.split("-")[0]


def _torch_path(name: str, image: torch.Tensor, params: dict) -> torch.Tensor:
    """Run a tool on its torch path: an input that needs grad turns the OpenCV path off."""
    return get(name)(image.clone().requires_grad_(True), params).detach()


def laplacian_var(image: torch.Tensor) -> float:
    k = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3)
    return float(F.conv2d(cs.luminance(image), k).var())


def local_rms(image: torch.Tensor, k: int = 9) -> float:
    """Mean local standard deviation of luma in k x k windows."""
    y = cs.luminance(image)
    m = F.avg_pool2d(y, k, stride=1)
    m2 = F.avg_pool2d(y * y, k, stride=1)
    return float((m2 - m * m).clamp_min(0).sqrt().mean())


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


@pytest.mark.parametrize("case", CASES)
def test_op_template(case: str) -> None:
    neutral, active, bad = CASES[case]
    check_op(_tool(case), neutral, active, bad=bad)


@pytest.mark.parametrize("case", CASES)
def test_opencv_and_torch_paths_agree(case: str) -> None:
    img = torch.cat([sample("astronaut"), sample("coffee")])
    if case == "denoise-nlm":
        img = img[:1]  # the torch NLM is 441 passes: slow on a CPU, one image is enough
    params = CASES[case][1]
    cv = get(_tool(case))(img, params)
    th = _torch_path(_tool(case), img, params)
    diff = (cv - th).abs()
    assert float(diff.max()) < AGREE[case], f"{case}: max |cv - torch| = {float(diff.max()):.2e}"
    if case == "denoise-nlm":
        assert float(diff.mean()) < 4e-3


def test_flags_and_descriptions() -> None:
    for name in ("sharpen", "blur", "denoise", "clarity", "dehaze", "vignette"):
        tool = get(name)
        assert tool.family == "detail" and tool.supports_mask and not tool.pointwise
        assert tool.description and len(tool.description) < 120


def test_sharpen_raises_laplacian_variance() -> None:
    img = sample("astronaut")
    out = get("sharpen")(img, {"amount": 1.0, "radius": 1.0})
    assert laplacian_var(out) > 1.5 * laplacian_var(img)


def test_sharpen_threshold_spares_small_detail() -> None:
    img = sample("astronaut")
    full = get("sharpen")(img, {"amount": 1.0})
    gated = get("sharpen")(img, {"amount": 1.0, "threshold": 0.05})
    assert laplacian_var(img) < laplacian_var(gated) < laplacian_var(full)


def test_blur_lowers_laplacian_variance() -> None:
    img = sample("astronaut")
    assert laplacian_var(get("blur")(img, {"sigma": 1.5})) < 0.3 * laplacian_var(img)


@pytest.mark.parametrize("method", ["nlm", "bilateral", "median"])
def test_denoise_cleans_a_noisy_flat_patch(method: str) -> None:
    g = torch.Generator().manual_seed(0)
    clean = torch.full((1, 3, 40, 40), 0.5)
    noisy = (clean + 0.05 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    out = get("denoise")(noisy, {"method": method, "strength": 0.7})
    inner = (..., slice(4, -4), slice(4, -4))
    assert float(out[inner].std()) < 0.6 * float(noisy[inner].std())
    assert psnr(out, clean) > psnr(noisy, clean) + 3


@pytest.mark.parametrize("method", ["nlm", "bilateral"])
def test_denoise_beats_noisy_psnr_on_a_photo(method: str) -> None:
    g = torch.Generator().manual_seed(1)
    clean = sample("coffee")
    noisy = (clean + 0.06 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    out = get("denoise")(noisy, {"method": method, "strength": 0.5})
    assert psnr(out, clean) > psnr(noisy, clean) + 1


def test_clarity_raises_local_contrast_and_negative_lowers_it() -> None:
    img = sample("astronaut")
    assert local_rms(get("clarity")(img, {"amount": 80})) > 1.1 * local_rms(img)
    assert local_rms(get("clarity")(img, {"amount": -80})) < 0.95 * local_rms(img)


def _hazy(clean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """I = J t + A (1 - t): transmission falling toward the top, like distant sky and hills."""
    h, w = clean.shape[-2:]
    t = torch.linspace(0.35, 0.8, h).view(1, 1, h, 1).expand(1, 1, h, w)
    atmos = torch.tensor([0.85, 0.87, 0.9]).view(1, 3, 1, 1)
    return clean * t + atmos * (1 - t), atmos


def test_dehaze_restores_contrast_and_moves_toward_clean() -> None:
    clean = sample("coffee")
    hazy, _ = _hazy(clean)
    out = get("dehaze")(hazy, {"amount": 1.0, "patch": 7})
    assert float(out.std()) > 1.3 * float(hazy.std())
    assert psnr(out, clean) > psnr(hazy, clean) + 2


def test_dehaze_negative_adds_haze() -> None:
    clean = sample("coffee")
    out = get("dehaze")(clean, {"amount": -0.6})
    assert local_rms(out) < 0.65 * local_rms(clean)  # veil: contrast scaled by t = 0.58


def test_atmospheric_light_finds_the_haze_colour() -> None:
    hazy, atmos = _hazy(sample("coffee"))
    hazy[..., :3, :] = atmos  # a band of pure haze, as a sky would be
    found = detail._atmospheric_light(hazy, detail.min_filter(hazy.amin(1, keepdim=True), 7))
    assert torch.allclose(found, atmos, atol=0.03)


def test_vignette_darkens_corners_not_centre() -> None:
    grey = torch.full((1, 3, 48, 64), 0.6)
    out = get("vignette")(grey, {"amount": -0.8})
    corners = out[..., [0, 0, -1, -1], [0, -1, 0, -1]]
    assert float(corners.max()) < 0.6 * 0.3
    assert torch.allclose(out[..., 20:28, 28:36], grey[..., 20:28, 28:36])
    assert float(out.max()) <= 0.6 + 1e-6  # never brightens


def test_vignette_positive_lightens_corners() -> None:
    grey = torch.full((1, 3, 48, 64), 0.4)
    out = get("vignette")(grey, {"amount": 0.8, "midpoint": 0.3})
    assert float(out[..., 0, 0].min()) > 0.8
    assert torch.allclose(out[..., 24, 32], grey[..., 24, 32])


def test_box_filter_paths_agree_with_a_large_radius() -> None:
    x = torch.rand(2, 2, 30, 41, generator=torch.Generator().manual_seed(2))
    cv = detail.box(x, 12)
    th = detail.box(x.clone().requires_grad_(True), 12).detach()
    assert torch.allclose(cv, th, atol=1e-5)
    assert torch.allclose(detail.box(x, 100), detail.box(x, 29))  # radius clipped to the image


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("case", CASES)
def test_cuda_matches_cpu(case: str) -> None:
    img = torch.cat([sample("astronaut"), sample("coffee")])
    params = CASES[case][1]
    cpu = get(_tool(case))(img, params)
    gpu = get(_tool(case))(img.cuda(), params).cpu()
    assert float((cpu - gpu).abs().max()) < max(AGREE[case], 1e-4)
