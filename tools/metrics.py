"""Full-reference image metrics: PSNR, SSIM, MS-SSIM and CIEDE2000 colour difference.

Every metric takes two (B,3,H,W) float tensors in [0,1] of the same shape, on any
device, and returns a Python float: the mean over the batch (the `*_per_image`
variants return one value per image). No-reference measurements (exposure,
cast, noise...) live in `tools.analysis.measure`.

Conventions:
- PSNR uses a data range of 1.0 and is +inf for identical images (not capped:
  callers that need a finite number, such as JSON reports, cap it themselves).
- SSIM is Wang et al. (2004) as kornia computes it: Gaussian window sigma 1.5,
  `window` taps, reflect padding, averaged over the channels and pixels.
- MS-SSIM is the dyadic pyramid of Wang, Simoncelli & Bovik (2003) with their five
  weights, as pytorch-msssim and torchmetrics compute it ('valid' Gaussian windows,
  2x2 average pooling between scales; an odd side is padded by repeating its last
  row or column, where those pad with zeros). kornia's `MS_SSIMLoss` is a different thing
  (several Gaussian widths at full resolution, mixed with an L1 term), so it is not
  used. An image too small for five scales (short side < 16 * window) gets fewer,
  with the weights of the scales kept renormalised to sum to 1; a warning says so.
- deltaE is CIEDE2000 (Sharma, Wu & Dalal 2005) on CIE L*a*b* (D65) from
  `tools.colorspace.rgb_to_lab`; `within_darktable_tolerance` applies darktable's
  acceptance bound for rendered images (max < 2.3, mean < 0.77).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from tools.colorspace import rgb_to_lab
from tools.registry import ToolError, check_image

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
DARKTABLE_MAX_DE = 2.3
DARKTABLE_MEAN_DE = 0.77
_C1, _C2 = 0.01**2, 0.03**2  # SSIM's stabilisers for a data range of 1


def _pair(a: torch.Tensor, b: torch.Tensor, where: str) -> None:
    check_image(a, where)
    check_image(b, where)
    if a.shape != b.shape:
        raise ToolError(
            f"{where}: images differ in shape, {tuple(a.shape)} vs {tuple(b.shape)}; "
            "resize one to the other's size first"
        )


# ------------------------------------------------------------------ PSNR


def psnr_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) PSNR in dB for a data range of 1; +inf where the images are identical."""
    _pair(a, b, "psnr")
    mse = (a.detach().double() - b.detach().double()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse)  # 1/0 = inf, log10(inf) = inf


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean PSNR (dB) over the batch; +inf when any pair is identical."""
    return float(psnr_per_image(a, b).mean())


# ------------------------------------------------------------------ SSIM


def ssim_per_image(a: torch.Tensor, b: torch.Tensor, window: int = 11) -> torch.Tensor:
    """(B,) mean SSIM of each pair (kornia, Gaussian sigma 1.5, reflect padding)."""
    import kornia.metrics

    _pair(a, b, "ssim")
    if window < 3 or window % 2 == 0:
        raise ToolError(f"ssim: window={window} must be an odd number of taps >= 3 (11 is usual)")
    side = min(a.shape[-2:])
    if window // 2 >= side:  # reflect padding needs a pad smaller than the image
        window = max(1, 2 * side - 1)
    return kornia.metrics.ssim(a.detach().float(), b.detach().float(), window).flatten(1).mean(1)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11) -> float:
    """Mean SSIM over the batch: 1 for identical images."""
    return float(ssim_per_image(a, b, window).mean())


# ------------------------------------------------------------------ MS-SSIM


def ms_ssim_scales(height: int, width: int, window: int = 11) -> int:
    """How many dyadic scales (at most 5) an image of this size affords."""
    side = min(height, width)
    if side < window:
        return 0
    return min(len(MS_SSIM_WEIGHTS), 1 + int(math.floor(math.log2(side / window))))


def _gauss_valid(x: torch.Tensor, window: int) -> torch.Tensor:
    import kornia.filters

    k = kornia.filters.get_gaussian_kernel1d(window, 1.5, device=x.device, dtype=x.dtype)
    c = x.shape[1]
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ms_ssim_per_image(a: torch.Tensor, b: torch.Tensor, window: int = 11) -> torch.Tensor:
    """(B,) MS-SSIM of each pair (Wang et al. 2003); see the module doc for small images."""
    _pair(a, b, "ms_ssim")
    h, w = a.shape[-2:]
    n = ms_ssim_scales(h, w, window)
    if n == 0:
        raise ToolError(f"ms_ssim: a {w}x{h} image is smaller than the {window}-tap window; "
                        "use psnr or a smaller window")
    if n < len(MS_SSIM_WEIGHTS):
        warnings.warn(f"ms_ssim: a {w}x{h} image affords {n} of 5 scales; using those, "
                      "weights renormalised (values are not comparable with 5-scale MS-SSIM)",
                      stacklevel=2)
    weights = torch.tensor(MS_SSIM_WEIGHTS[:n], dtype=torch.float32, device=a.device)
    weights = weights / weights.sum()
    x, y = a.detach().float(), b.detach().float()
    levels = []
    for i in range(n):
        mx, my = _gauss_valid(x, window), _gauss_valid(y, window)
        vx = _gauss_valid(x * x, window) - mx * mx
        vy = _gauss_valid(y * y, window) - my * my
        cxy = _gauss_valid(x * y, window) - mx * my
        cs = ((2 * cxy + _C2) / (vx + vy + _C2)).flatten(2).mean(2)  # (B,C)
        if i == n - 1:
            lum = ((2 * mx * my + _C1) / (mx * mx + my * my + _C1)).flatten(2).mean(2)
            levels.append((lum * cs).clamp_min(0))
        else:
            levels.append(cs.clamp_min(0))
            pad = (0, x.shape[-1] % 2, 0, x.shape[-2] % 2)
            x = F.avg_pool2d(F.pad(x, pad, mode="replicate"), 2)
            y = F.avg_pool2d(F.pad(y, pad, mode="replicate"), 2)
    stacked = torch.stack(levels)  # (n,B,C)
    per_channel = (stacked ** weights.view(-1, 1, 1)).prod(0)
    return per_channel.mean(1)


def ms_ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11) -> float:
    """Mean MS-SSIM over the batch: 1 for identical images."""
    return float(ms_ssim_per_image(a, b, window).mean())


# ------------------------------------------------------------------ CIEDE2000


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """CIEDE2000 colour difference of two L*a*b* tensors, channels along `dim` (kL=kC=kH=1).

    Follows Sharma, Wu & Dalal (2005) step by step, including their conventions for
    the hue of achromatic colours (h' = 0) and the mean hue across the 0/360 seam.
    Computes in the inputs' dtype: pass float64 for reference-grade accuracy.
    """
    L1, a1, b1 = lab1.unbind(dim)
    L2, a2, b2 = lab2.unbind(dim)
    # C^7 / (C^7 + 25^7) written as 1 / (1 + (25/C)^7): a C^7 of near-grey pixels is a
    # float32 denormal, and arithmetic on denormals runs ~100x slower on the CPU.
    c_mean = (torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2
    g = 0.5 * (1 - torch.rsqrt(1 + (25.0 / c_mean) ** 7))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p = torch.where(c1p == 0, 0.0, torch.rad2deg(torch.atan2(b1, a1p)) % 360)
    h2p = torch.where(c2p == 0, 0.0, torch.rad2deg(torch.atan2(b2, a2p)) % 360)
    chroma0 = (c1p * c2p) == 0

    dLp = L2 - L1
    dCp = c2p - c1p
    dh = h2p - h1p
    dh = torch.where(dh > 180, dh - 360, torch.where(dh < -180, dh + 360, dh))
    dh = torch.where(chroma0, 0.0, dh)
    dHp = 2 * torch.sqrt(c1p * c2p) * torch.sin(torch.deg2rad(dh) / 2)

    Lm = (L1 + L2) / 2
    Cm = (c1p + c2p) / 2
    hsum = h1p + h2p
    hm = torch.where((h1p - h2p).abs() <= 180, hsum / 2, torch.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2))
    hm = torch.where(chroma0, hsum, hm)

    rad = torch.deg2rad
    t = (1 - 0.17 * torch.cos(rad(hm - 30)) + 0.24 * torch.cos(rad(2 * hm))
         + 0.32 * torch.cos(rad(3 * hm + 6)) - 0.20 * torch.cos(rad(4 * hm - 63)))
    d_theta = 30 * torch.exp(-(((hm - 275) / 25) ** 2).clamp_max(80))  # no denormals either
    rc = 2 * torch.rsqrt(1 + (25.0 / Cm) ** 7)
    lm50 = (Lm - 50) ** 2
    sl = 1 + 0.015 * lm50 / torch.sqrt(20 + lm50)
    sc = 1 + 0.045 * Cm
    sh = 1 + 0.015 * Cm * t
    rt = -torch.sin(rad(2 * d_theta)) * rc
    tl, tc, th = dLp / sl, dCp / sc, dHp / sh
    return torch.sqrt((tl * tl + tc * tc + th * th + rt * tc * th).clamp_min(0))


def delta_e2000_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,H,W) CIEDE2000 between two sRGB images, per pixel."""
    _pair(a, b, "delta_e2000")
    return ciede2000(rgb_to_lab(a.detach().float()), rgb_to_lab(b.detach().float()))


def delta_e2000(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(mean, max) CIEDE2000 over every pixel of the batch; 0 for identical images."""
    de = delta_e2000_map(a, b)
    return float(de.mean()), float(de.max())


def within_darktable_tolerance(
    a: torch.Tensor,
    b: torch.Tensor,
    max_de: float = DARKTABLE_MAX_DE,
    mean_de: float = DARKTABLE_MEAN_DE,
) -> bool:
    """darktable's test bound for two renderings: max deltaE2000 < 2.3 and mean < 0.77."""
    mean, peak = delta_e2000(a, b)
    return peak < max_de and mean < mean_de


# ------------------------------------------------------------------ masked (inside a hole)


def _hole(mask: torch.Tensor, a: torch.Tensor, where: str) -> torch.Tensor:
    """The mask as (B,1,H,W) booleans matching `a`; raises ToolError when it is empty or the wrong size."""
    m = mask if mask.dim() == 4 else mask.view(1, 1, *mask.shape[-2:])
    if m.shape[-2:] != a.shape[-2:]:
        raise ToolError(f"{where}: mask is {tuple(m.shape[-2:])}, image is {tuple(a.shape[-2:])}")
    m = (m[:, :1] > 0.5).expand(a.shape[0], 1, *a.shape[-2:])
    if not bool(m.any()):
        raise ToolError(f"{where}: the mask is empty; there is no hole to score")
    return m


def psnr_masked(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (dB, data range 1) over the pixels inside `mask` only (all channels); +inf if they match."""
    _pair(a, b, "psnr_masked")
    m = _hole(mask, a, "psnr_masked").expand_as(a)
    mse = (a.detach().double() - b.detach().double())[m].pow(2).mean()
    return float(10.0 * torch.log10(1.0 / mse))


def ssim_masked(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, window: int = 11) -> float:
    """The SSIM map (as `ssim`) averaged over the pixels inside `mask` only."""
    import kornia.metrics

    _pair(a, b, "ssim_masked")
    m = _hole(mask, a, "ssim_masked").expand_as(a)
    side = min(a.shape[-2:])
    if window // 2 >= side:
        window = max(1, 2 * side - 1)
    smap = kornia.metrics.ssim(a.detach().float(), b.detach().float(), window)
    return float(smap[m].mean())


def delta_e2000_masked(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean CIEDE2000 over the pixels inside `mask` only."""
    m = _hole(mask, a, "delta_e2000_masked")[:, 0]
    return float(delta_e2000_map(a, b)[m].mean())
