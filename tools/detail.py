"""Detail tools: sharpen, denoise, blur, clarity, dehaze, vignette.

Backend policy (see tools/colorspace.py): the neighbourhood filters below
(Gaussian, box, erode, bilateral, median, non-local means) run through OpenCV
when the image is on the CPU and no gradient is needed, and through torch
otherwise (GPU, autograd). Everything per-pixel is shared torch code, so the
two paths differ only inside these filters; tests/tools/test_detail.py checks
they agree. Radii and sigmas are in pixels of the image the op is given.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from tools import colorspace as cs
from tools import neural  # also registers low_light (its heavy imports are lazy)
from tools.registry import Params, register

# ------------------------------------------------------------------ shared filters


def _radius_fit(r: int, x: torch.Tensor) -> int:
    """Largest usable radius: reflect padding needs pad < side on both paths."""
    return max(0, min(r, x.shape[-2] - 1, x.shape[-1] - 1))


def gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of any (B,C,H,W) tensor, kernel cut at 3 sigma, mirrored borders."""
    k = 2 * _radius_fit(math.ceil(3 * sigma), x) + 1
    if sigma <= 0 or k == 1:
        return x.clone()
    if cs.use_cv(x):
        import cv2

        return cs.per_plane(
            x,
            lambda a: cv2.GaussianBlur(
                a, (k, k), sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101
            ),
        )
    import kornia.filters

    return kornia.filters.gaussian_blur2d(x, (k, k), (sigma, sigma), border_type="reflect")


def box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window with mirrored borders; O(1) per pixel on both paths."""
    r = _radius_fit(r, x)
    if r == 0:
        return x.clone()
    k = 2 * r + 1
    if cs.use_cv(x):
        import cv2

        return cs.per_plane(
            x, lambda a: cv2.boxFilter(a, -1, (k, k), borderType=cv2.BORDER_REFLECT_101)
        )
    # Running sums: a pooling/conv box is O(k) per pixel and the guided filter uses r ~ 60.
    p = F.pad(x, (r, r, r, r), mode="reflect")
    c = F.pad(p.cumsum(-1), (1, 0))
    p = c[..., k:] - c[..., :-k]
    c = F.pad(p.cumsum(-2), (0, 0, 1, 0))
    return (c[..., k:, :] - c[..., :-k, :]) / (k * k)


def min_filter(x: torch.Tensor, k: int) -> torch.Tensor:
    """Minimum over a k x k square (k odd); pixels beyond the border are ignored."""
    if cs.use_cv(x):
        import cv2

        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
        return cs.per_plane(x, lambda a: cv2.erode(a, kernel))
    return -F.max_pool2d(-x, k, stride=1, padding=k // 2)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """He et al.'s guided filter (grey guide): smooths `src` while following the guide's edges."""
    mean_i, mean_p = box(guide, r), box(src, r)
    a = (box(guide * src, r) - mean_i * mean_p) / (box(guide * guide, r) - mean_i.square() + eps)
    b = mean_p - a * mean_i
    return torch.addcmul(box(b, r), box(a, r), guide)


def bilateral(x: torch.Tensor, sigma_color: float, sigma_space: float) -> torch.Tensor:
    """OpenCV's bilateral filter: round window of radius round(1.5 sigma_space), L1 colour distance."""
    r = _radius_fit(max(1, round(1.5 * sigma_space)), x)
    if cs.use_cv(x):
        import cv2

        return cs.per_image(
            x, lambda a: cv2.bilateralFilter(a, 2 * r + 1, sigma_color, sigma_space)
        )
    h, w = x.shape[-2:]
    xp = F.pad(x, (r, r, r, r), mode="reflect")
    num = torch.zeros_like(x)
    den = torch.zeros_like(x[:, :1])
    cc, cs_ = -0.5 / sigma_color**2, -0.5 / sigma_space**2
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx > r * r:  # OpenCV's window is a disc
                continue
            nb = xp[..., r + dy : r + dy + h, r + dx : r + dx + w]
            dist = (nb - x).abs().sum(1, keepdim=True)
            wt = torch.exp(dist * dist * cc + (dy * dy + dx * dx) * cs_)
            num = num + wt * nb
            den = den + wt
    return num / den


def median(x: torch.Tensor, k: int) -> torch.Tensor:
    """k x k median (k = 3 or 5: OpenCV's float limit) with replicated borders, as cv2.medianBlur."""
    if cs.use_cv(x):
        import cv2

        return cs.per_plane(x, lambda a: cv2.medianBlur(a, k))
    r = k // 2
    h, w = x.shape[-2:]
    xp = F.pad(x, (r, r, r, r), mode="replicate")
    taps = [xp[..., i : i + h, j : j + w] for i in range(k) for j in range(k)]
    return torch.stack(taps).median(0).values


# Non-local means works on 8-bit-scaled Lab: L*2.55, a+128, b+128 (OpenCV's 8-bit Lab),
# so `h` means the same on both paths. OpenCV's NLM is uint8-only: the CPU path quantises,
# then adds the rounding residual back so smooth gradients keep their float precision.
_LAB8_SCALE = (2.55, 1.0, 1.0)
_LAB8_OFFSET = (0.0, 128.0, 128.0)
_NLM_TEMPLATE, _NLM_SEARCH = 7, 21
NEURAL_GUIDE_H = 14.4  # the NLM pass that guides the neural denoiser (strength 0.6)


def nlm(image: torch.Tensor, h: float) -> torch.Tensor:
    """Non-local means (Buades et al.; OpenCV's fastNlMeansDenoisingColored scheme) with strength h."""
    scale = torch.tensor(_LAB8_SCALE, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    offset = torch.tensor(_LAB8_OFFSET, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    lab8 = cs.rgb_to_lab(image) * scale + offset
    if cs.use_cv(image):
        import cv2
        import numpy as np

        q = lab8.round().clamp_(0, 255)
        out = lab8 - q  # rounding residual, added back below
        qu8 = q.to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for b in range(qu8.shape[0]):
            lum = cv2.fastNlMeansDenoising(
                np.ascontiguousarray(qu8[b, ..., 0]), None, h, _NLM_TEMPLATE, _NLM_SEARCH
            )
            ab = cv2.fastNlMeansDenoising(
                np.ascontiguousarray(qu8[b, ..., 1:]), None, h, _NLM_TEMPLATE, _NLM_SEARCH
            )
            out[b, 0] += torch.from_numpy(lum).to(out.dtype)
            out[b, 1:] += torch.from_numpy(ab).permute(2, 0, 1).to(out.dtype)
    else:
        out = torch.cat([_nlm_torch(lab8[:, :1], h), _nlm_torch(lab8[:, 1:], h)], 1)
    return cs.lab_to_rgb((out - offset) / scale)


def _nlm_torch(x: torch.Tensor, h: float) -> torch.Tensor:
    """Vectorised NLM over one channel group: one pass per search offset, box-filtered patch distances.

    Weight exp(-mean squared patch difference / h^2) (mean over the template and
    channels), weights under 0.001 dropped, mirrored borders: OpenCV's definition.
    """
    t, s = _NLM_TEMPLATE // 2, _NLM_SEARCH // 2
    hh, ww = x.shape[-2:]
    pad = s + t
    mode = "reflect" if min(hh, ww) > pad else "replicate"  # reflect needs pad < side
    xp = F.pad(x, (pad, pad, pad, pad), mode=mode)
    centre = xp[..., s : s + hh + 2 * t, s : s + ww + 2 * t]
    coeff = -1.0 / (h * h * x.shape[1])
    num = torch.zeros_like(x)
    den = torch.zeros_like(x[:, :1])
    offsets = [(dy, dx) for dy in range(-s, s + 1) for dx in range(-s, s + 1)]
    # Offsets go in chunks of ~2^25 values: few Python-level ops on small images,
    # bounded memory on large ones (a 12 MP image runs one offset at a time).
    per = max(1, 2**25 // centre.numel())
    for i in range(0, len(offsets), per):
        chunk = offsets[i : i + per]
        shifted = torch.stack(
            [
                xp[..., s + dy : s + dy + hh + 2 * t, s + dx : s + dx + ww + 2 * t]
                for dy, dx in chunk
            ]
        )
        sq = (shifted - centre).square().sum(2).flatten(0, 1)[:, None]
        dist = F.avg_pool2d(sq, _NLM_TEMPLATE, stride=1).view(len(chunk), x.shape[0], 1, hh, ww)
        wt = torch.exp(dist * coeff)
        wt = wt * (wt >= 1e-3)
        num = num + (wt * shifted[..., t : t + hh, t : t + ww]).sum(0)
        den = den + wt.sum(0)
    return num / den


# ------------------------------------------------------------------ tools


class Sharpen(Params):
    """Sharpen fine detail and edges (unsharp mask), e.g. to crisp up a soft photo or a downsized export."""

    PIXEL_FIELDS = ("radius",)

    amount: float = Field(
        0.0,
        ge=0,
        le=5,
        description="strength; 1 adds the edge detail once (Photoshop 100%), 0 = off",
    )
    radius: float = Field(
        1.0,
        ge=0.3,
        le=10,
        description="size in pixels of the detail to sharpen; 0.5-1.5 for fine detail",
    )
    threshold: float = Field(
        0.0,
        ge=0,
        le=0.25,
        description="leave differences smaller than this (0-1 scale) alone, protecting skin and noise; 0.02 ~ 5/255",
    )


@register(Sharpen, family="detail", cost=3.0)
def sharpen(image: torch.Tensor, p: Sharpen) -> torch.Tensor:
    """(B,3,H,W) sRGB in [0,1] -> same. Photoshop's Unsharp Mask in Luminosity mode.

    The detail layer is luma minus its Gaussian blur (sigma = radius); where its
    magnitude is below `threshold` it is dropped (hard gate, as Photoshop/GIMP);
    `amount` times it is added equally to R, G and B, so edges gain no colour fringes.
    """
    if p.amount == 0:
        return image.clone()
    y = cs.luminance(image)
    detail = y - gaussian(y, p.radius)
    if p.threshold > 0:
        detail = detail * (detail.abs() >= p.threshold)
    return torch.add(image, detail, alpha=p.amount).clamp_(0, 1)


class Blur(Params):
    """Soften the whole image with a Gaussian blur (use a mask to blur only a background)."""

    PIXEL_FIELDS = ("sigma",)

    sigma: float = Field(
        0.0, ge=0, le=50, description="blur radius (Gaussian sigma) in pixels; 0 = off"
    )


@register(Blur, family="detail", cost=3.0)
def blur(image: torch.Tensor, p: Blur) -> torch.Tensor:
    """(B,3,H,W) -> same. OpenCV's GaussianBlur: kernel cut at 3 sigma, mirrored (reflect-101) borders."""
    return gaussian(image, p.sigma).clamp_(0, 1)


class Denoise(Params):
    """Reduce grain and colour noise, e.g. from high ISO or a dark, brightened photo."""

    method: Literal["nlm", "bilateral", "median", "neural"] = Field(
        "nlm",
        description="nlm: non-local means; bilateral: fast edge-preserving smoothing; "
        "median: removes salt-and-pepper specks; neural: a trained denoiser (Open Image Denoise), "
        "best on real camera grain, keeps the most detail",
    )
    strength: float = Field(
        0.0, ge=0, le=1, description="0 = off, 0.3 light, 0.6 strong, 1 very strong (neural: 1 = all of it)"
    )
    detail: float = Field(
        0.0, ge=0, le=1, description="neural only: share of the removed fine luminance texture put back; 0 = none"
    )


@register(Denoise, family="detail", cost=20.0)
def denoise(image: torch.Tensor, p: Denoise) -> torch.Tensor:
    """(B,3,H,W) -> same. OpenCV's filters and parameters; strength s maps to:

    - nlm: h = 24 s on 8-bit-scaled Lab (same h for L and colour), 7 px patches,
      21 px search window. CPU: cv2.fastNlMeansDenoising on uint8 Lab (the
      rounding residual is added back); torch: the same weights, vectorised,
      differentiable but memory-hungry in backward (441 passes).
    - bilateral: sigma_color = 0.15 s (L1 distance over RGB), sigma_space = 1 + 4 s px.
    - median: blends toward the 3x3 median up to s = 0.5, then toward the 5x5 median.
    - neural: Intel Open Image Denoise on linear light, guided by an NLM pass (h = 14.4)
      as its albedo feature, blended in by s, with `detail` of the removed luminance
      added back (tools/neural.py); not differentiable.
    """
    s = p.strength
    if s == 0:
        return image.clone()
    if p.method == "neural":  # NLM at h = 24 * 0.6 guides the network (flat from 0.45 to 0.8 on train)
        return neural.oidn_denoise(image, s, p.detail, guide=nlm(image, NEURAL_GUIDE_H))
    if p.method == "nlm":
        return nlm(image, 24.0 * s)
    if p.method == "bilateral":
        return bilateral(image, 0.15 * s, 1.0 + 4.0 * s).clamp_(0, 1)
    lo, hi, weight = (
        (image, median(image, 3), 2 * s)
        if s <= 0.5
        else (median(image, 3), median(image, 5), 2 * s - 1)
    )
    if weight == 1:
        return hi
    if image.requires_grad and torch.is_grad_enabled():
        return torch.lerp(lo, hi, weight)
    return torch.lerp(
        lo, hi, weight, out=hi
    )  # hi is ours: reuse it, a fresh 12 MP buffer costs as much


class Clarity(Params):
    """Add punch to midtone texture and local contrast (Lightroom's Clarity); negative softens, e.g. skin."""

    amount: float = Field(
        0.0, ge=-100, le=100, description="-100 (soft, dreamy) .. 0 (off) .. 100 (gritty)"
    )


@register(Clarity, family="detail", cost=4.0)
def clarity(image: torch.Tensor, p: Clarity) -> torch.Tensor:
    """(B,3,H,W) -> same. Lightroom-like: a large-radius unsharp mask on luma, weighted to midtones.

    Luma detail = Y - Gaussian(Y, sigma = 1% of the long side, >= 2 px), so the
    look does not change when a recipe is replayed at another resolution. The
    detail times amount/100 times the midtone weight 1 - (2Y-1)^2 is added to
    R, G and B alike (hue kept): +100 doubles midtone local contrast, -100 removes it.
    """
    if p.amount == 0:
        return image.clone()
    y = cs.luminance(image)
    sigma = max(2.0, 0.01 * max(image.shape[-2:]))
    detail = y - gaussian(y, sigma)
    weight = 1 - (2 * y - 1).square()
    return torch.add(image, weight * detail, alpha=p.amount / 100).clamp_(0, 1)


class Dehaze(Params):
    """Cut through haze, fog or smog and restore contrast and colour to distant scenery; negative adds haze."""

    PIXEL_FIELDS = ("patch",)

    amount: float = Field(
        0.0, ge=-1, le=1, description="1 removes most haze, 0 = off, negative adds a veil of haze"
    )
    patch: int = Field(
        15,
        ge=3,
        le=61,
        description="dark-channel patch in pixels (odd; even is rounded up); ~15 per 600 px of image",
    )


@register(Dehaze, family="detail", cost=8.0)
def dehaze(image: torch.Tensor, p: Dehaze) -> torch.Tensor:
    """(B,3,H,W) -> same. He, Sun & Tang's dark channel prior (CVPR 2009).

    Atmospheric light A = mean colour of the 0.1% pixels with the brightest dark
    channel; transmission t = 1 - 0.95 * amount * dark(I / A), refined by a
    guided filter (grey guide, radius 4 * patch, eps 1e-3) and floored at 0.1;
    J = (I - A) / t + A. A negative amount blends toward A uniformly
    (t = 1 - 0.7 |amount|): a flat veil in the scene's own haze colour.
    """
    if p.amount == 0:
        return image.clone()
    k = p.patch | 1
    atmos = _atmospheric_light(image, min_filter(image.amin(1, keepdim=True), k))
    if p.amount < 0:
        t = 1 - 0.7 * abs(p.amount)
        return (image * t + atmos * (1 - t)).clamp_(0, 1)
    dark = min_filter((image / atmos).amin(1, keepdim=True), k)
    t = 1 - 0.95 * p.amount * dark
    t = guided_filter(cs.luminance(image), t, 4 * k, 1e-3).clamp(0.1, 1)
    return torch.addcmul(atmos, image - atmos, t.reciprocal()).clamp_(0, 1)


def _atmospheric_light(image: torch.Tensor, dark: torch.Tensor) -> torch.Tensor:
    """(B,3,1,1): mean colour of the brightest 0.1% of the dark channel (at least one pixel)."""
    b, c = image.shape[:2]
    n = max(1, dark[0].numel() // 1000)
    idx = dark.flatten(1).topk(n, dim=1).indices
    px = image.flatten(2).gather(2, idx[:, None].expand(b, c, n))
    return px.mean(-1).clamp_min(0.05).view(b, c, 1, 1)


class Vignette(Params):
    """Darken (negative) or lighten (positive) the corners to frame the subject, like Lightroom's post-crop vignette."""

    amount: float = Field(
        0.0, ge=-1, le=1, description="-1 black corners .. 0 off .. 1 white corners"
    )
    midpoint: float = Field(
        0.5,
        ge=0,
        le=1,
        description="where the effect begins, from the centre (0) to the corners (1)",
    )
    feather: float = Field(
        0.5, ge=0, le=1, description="softness: 0 a hard edge, 1 fades all the way to the corners"
    )


@register(Vignette, family="detail", cost=1.5)
def vignette(image: torch.Tensor, p: Vignette) -> torch.Tensor:
    """(B,3,H,W) -> same. Lightroom post-crop convention: negative darkens, the shape follows the frame.

    d = elliptical distance from the centre, 1 at the corners; weight w rises
    smoothly from 0 at d = midpoint to 1 at d = midpoint + feather * (1 - midpoint).
    Darkening multiplies by 1 + amount * w; lightening screens toward white,
    x + amount * w * (1 - x). Values are the sRGB-encoded ones (cheap, hue kept).
    """
    if p.amount == 0:
        return image.clone()
    h, w = image.shape[-2:]
    kw = {"dtype": image.dtype, "device": image.device}
    # The map is mirror-symmetric: compute the top-left quarter, then mirror it (4x less work).
    qh, qw = (h + 1) // 2, (w + 1) // 2
    y = ((torch.arange(qh, **kw) + 0.5) * (2 / h) - 1).square().view(qh, 1)
    x = ((torch.arange(qw, **kw) + 0.5) * (2 / w) - 1).square().view(1, qw)
    d = (x + y).mul_(0.5).sqrt_()
    width = max(p.feather * (1 - p.midpoint), 1e-3)
    t = d.sub_(p.midpoint).div_(width).clamp_(0, 1)
    aw = (3 - 2 * t).mul_(t).mul_(t).mul_(p.amount)  # amount * smoothstep: no ring at either end
    aw = torch.cat([aw, aw.flip(1)[:, w % 2 :]], 1)
    aw = torch.cat([aw, aw.flip(0)[h % 2 :]], 0)
    if p.amount < 0:
        return image * aw.add_(1)
    return torch.addcmul(aw, image, 1 - aw)  # screen toward white: x + aw (1 - x)
