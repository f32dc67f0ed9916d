"""Measures that compare a version with its original: the structure lock, halos, chroma noise,
detail kept by a denoise.

agent/scoring.py reads them (the structure lock and the naturalness guard); agent/critics.py
reads the detail kept.

The structure lock measures structure, not tone. Plain SSIM falls to 0.90 when a
dark photo is correctly brightened by one stop and to 0.77 for a grayscale
conversion (its luminance and contrast terms), so the lock uses SSIM's structure
term, made robust for photographs:

    s = (sigma_xy + C3) / (sigma_x * sigma_y + C3)                 local correlation
    g = clip((Sigma_xy+ + C3) / (Sigma_x^2 + C3), 1/4, 4)          local tone gain
    c = (2 g sigma_x sigma_y + C3) / (g^2 sigma_x^2 + sigma_y^2 + C3)
    q = clip(s, 0, 1) * c
    w = ln(1 + sigma_x^2 / Cw) + ln(1 + sigma_y^2 / Cw)
    structure = 1 - (sum w (1 - q)^1.5 / (sum w + 0.001 * pixels))^(1 / 1.5)

on the luma of both images (Rec.709 weights on the sRGB values), area-downscaled
to at most 512 px on the long side (fast, and the same number for a preview and
the full image). Lower-case moments use a Gaussian window sigma 1.5; `g` is the
regression slope of the candidate on the original in a wider window (sigma 4), so
a tone curve (whose local slope is g) keeps c = 1 while blur, noise or new content
change the fine contrast against that prediction. Why each piece:

- s alone is blind to gain: blur keeps local correlation ~0.85, and s = 1 wherever
  either image is flat (pure s is undefined there). c catches both: detail lost
  (blur, blocking, a flat patch) or detail added (noise, pasted content).
- g is clipped to [1/4, 4] so flattening a textured region (g -> 0) is not excused
  as a "tone curve"; clipping highlights costs a little, as it should.
- w is information-content weighting (Wang & Li 2011): flat regions of both images
  carry almost no weight, textured regions of either image carry a lot; the small
  floor makes two flat images score 1 instead of rounding noise.
- Pooling with exponent 1.5 makes a local catastrophe (a pasted rectangle over 20%
  of the frame) count for more than its area while uniform small deviations
  (0.99 everywhere) stay small.

Constants C3 = 1e-4, Cw = 1e-3 (data range 1). Measured on skimage samples at
96x72 (astronaut, coffee, chelsea, camera, rocket; the worst of the five), keep:
dark photo +1 stop 0.999, white-balance fix 1.000, contrast x1.2 / x0.75
0.977 / 1.000, saturation x1.4 / x0.6 1.000, grayscale (luma / channel mean)
1.000 / 0.993, gamma 0.6 / 1.5 0.979 / 0.985; break: Gaussian blur sigma 2 0.714,
JPEG quality 5 0.727, 8x8 blocking 0.305, salt-and-pepper 5% 0.621, another photo
pasted over 20% 0.700, mirrored 0.272. In between: blur sigma 1 0.84-0.90,
+2 stops on a normal photo 0.86-0.95, denoising sigma-0.03 noise 0.80-0.96.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tools import colorspace
from tools.analysis import percentiles
from tools.registry import ToolError, check_image

LOCK_EDGE = 512  # long side, px, at which structure (and reference closeness) is measured
SIGMA = 1.5  # Gaussian window of the local moments (SSIM's)
GAIN_SIGMA = 4.0  # wider window of the local tone-gain estimate
C3 = 1e-4  # local std below ~0.01 (2.5/255) counts as flat
CW = 1e-3  # information weighting: local std ~0.03 weighs ln 2
GAIN_RANGE = (0.25, 4.0)
POOL_P = 1.5
W_FLOOR = 1e-3  # weight of a pixel with no information (local std ~0.001, 1/4 of an 8-bit level)
_C1, _C2 = 0.01**2, 0.03**2  # plain SSIM's constants, data range 1
HALO_RADIUS = 3  # px on the lock grid: the envelope window and the edge band are 2r + 1 wide
EDGE_SHARE = 0.10  # share of strongest-gradient pixels that are "edges" for the halo measure


# ------------------------------------------------------------------ structure


def _kernel_size(sigma: float, side: int) -> int:
    # Reflect padding needs a pad smaller than the image; only tiny images shrink it.
    return min(2 * math.ceil(3 * sigma) + 1, 2 * side - 1)


def lock_grid(height: int, width: int) -> tuple[int, int]:
    scale = min(1.0, LOCK_EDGE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def to_grid(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B,C,H,W) area-resampled to `size`: OpenCV's INTER_AREA, or the same in torch.

    The two paths agree when downscaling (the lock's case); an upscale (a candidate
    cropped smaller than the lock grid) is only approximately the same.
    """
    if tuple(image.shape[-2:]) == size:
        return image
    if colorspace.use_cv(image):
        import cv2

        planes = image.detach().float().contiguous().numpy()
        out = [[cv2.resize(p, size[::-1], interpolation=cv2.INTER_AREA) for p in img] for img in planes]
        return torch.from_numpy(np.asarray(out)).to(image.dtype)
    # torch's mode="area" is adaptive pooling, which differs from INTER_AREA at
    # non-integer ratios; separable overlap matrices reproduce INTER_AREA when downscaling.
    rows = _area_matrix(image.shape[-2], size[0], image)
    cols = _area_matrix(image.shape[-1], size[1], image)
    return rows @ image @ cols.T


def _area_matrix(n_in: int, n_out: int, like: torch.Tensor) -> torch.Tensor:
    """(n_out, n_in) weights: output pixel i is the overlap-weighted mean of the input
    pixels under its footprint [i, i + 1) * n_in / n_out."""
    scale = n_in / n_out
    lo = torch.arange(n_out, dtype=torch.float64) * scale
    edges = torch.arange(n_in + 1, dtype=torch.float64)
    overlap = (torch.minimum(edges[1:][None], (lo + scale)[:, None])
               - torch.maximum(edges[:-1][None], lo[:, None])).clamp_min(0)
    return (overlap / overlap.sum(1, keepdim=True)).to(device=like.device, dtype=like.dtype)


def gaussian_blur(planes: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of every (H,W) plane, reflect borders (OpenCV's BORDER_REFLECT_101)."""
    k = _kernel_size(sigma, min(planes.shape[-2:]))
    if colorspace.use_cv(planes):
        import cv2

        return colorspace.per_plane(
            planes, lambda a: cv2.GaussianBlur(a, (k, k), sigma, borderType=cv2.BORDER_REFLECT_101)
        )
    import kornia.filters

    g = kornia.filters.get_gaussian_kernel1d(k, sigma, device=planes.device, dtype=planes.dtype)
    return kornia.filters.filter2d_separable(planes, g, g, border_type="reflect")


def compare_lumas(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) structure and (B,) plain SSIM of two (B,1,h,w) lumas on the same grid."""
    fine = gaussian_blur(torch.cat([x, y, x * x, y * y, x * y], 1), SIGMA)
    mx, my, exx, eyy, exy = fine.unbind(1)
    vx = (exx - mx * mx).clamp_min(0)
    vy = (eyy - my * my).clamp_min(0)
    cxy = exy - mx * my
    coarse = gaussian_blur(torch.cat([x, y, x * x, x * y], 1), GAIN_SIGMA)
    gx, gy, gxx, gxy = coarse.unbind(1)
    gain = ((gxy - gx * gy).clamp_min(0) + C3) / ((gxx - gx * gx).clamp_min(0) + C3)
    gain = gain.clamp(*GAIN_RANGE)

    sx, sy = vx.clamp_min(1e-12).sqrt(), vy.clamp_min(1e-12).sqrt()  # finite gradient when flat
    s = ((cxy + C3) / (sx * sy + C3)).clamp(0, 1)
    px = gain * sx  # the fine contrast a tone curve of local slope `gain` would give
    c = ((2 * px * sy + C3) / (px * px + vy + C3)).clamp(0, 1)
    w = torch.log1p(vx / CW) + torch.log1p(vy / CW)
    # The floor per pixel makes a pair of flat images (no information) score 1, not noise.
    total = w.flatten(1).sum(1) + W_FLOOR * w[0].numel()
    loss = ((1 - s * c) ** POOL_P * w).flatten(1).sum(1) / total
    structure = 1 - loss.clamp_min(1e-12) ** (1 / POOL_P)

    ssim_map = (2 * mx * my + _C1) * (2 * cxy + _C2) / ((mx * mx + my * my + _C1) * (vx + vy + _C2))
    return structure.clamp(0, 1), ssim_map.flatten(1).mean(1)


def lock_lumas(original: torch.Tensor, candidate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both lumas on the original's lock grid; a candidate of another size is resampled onto it."""
    check_image(original, "structure_similarity")
    check_image(candidate, "structure_similarity")
    if original.shape[0] not in (1, candidate.shape[0]):
        raise ToolError(
            f"structure_similarity: original batch of {original.shape[0]} does not match "
            f"candidate batch of {candidate.shape[0]}; pass one original or one per candidate"
        )
    grid = lock_grid(*original.shape[-2:])
    x = to_grid(colorspace.luminance(original.clamp(0, 1)), grid)
    y = to_grid(colorspace.luminance(candidate.clamp(0, 1)), grid)
    return x.expand(y.shape[0], -1, -1, -1), y


def structure_per_image(original: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
    """(B,) structure similarity of each candidate to the original (see the module doc)."""
    x, y = lock_lumas(original, candidate)
    return compare_lumas(x, y)[0]


def structure_similarity(original: torch.Tensor, candidate: torch.Tensor) -> float:
    """Did the edit keep the photo's structure? 1 = same content, below ~0.8 = damaged or different.

    Tone and colour edits (exposure, white balance, contrast, saturation, grayscale)
    keep it near 1; blur, heavy compression, noise, pasted content and geometric
    changes lower it. A candidate of another size (crop, rotate) is resampled onto
    the original's grid, so framing changes read as structure changes. Mean over
    the batch; differentiable through the torch path (GPU, or with requires_grad).
    """
    if original.shape == candidate.shape and torch.equal(original, candidate):
        return 1.0
    return float(structure_per_image(original, candidate).mean())



# ------------------------------------------------------------------ halos and chroma noise


def _max_filter(padded: torch.Tensor, k: int) -> torch.Tensor:
    """k x k running maximum of a (1,1,h+k-1,w+k-1) plane, separably (rows, then columns)."""
    return F.max_pool2d(F.max_pool2d(padded, (1, k), 1), (k, 1), 1)


def envelope_overshoot(x: torch.Tensor, y: torch.Tensor) -> float:
    """Halos: how far y leaves the local [min, max] of the original near its strong edges.

    x, y: (1,1,h,w) lumas on one grid. The global tone change is taken out first: x is
    mapped onto y's histogram (quantile matching), so a brighter or contrastier y whose
    pixels keep their order reads 0. Local tone edits (shadows, dehaze) stay inside the
    envelope of an edge's two sides; unsharp masking and clarity overshoot it (the
    bright rim and dark moat of a halo). Mean overshoot over the edge band, divided by
    the mean envelope height there.
    """
    flat_x, flat_y = x.flatten(), y.flatten()
    mapped = torch.empty_like(flat_x)
    mapped[flat_x.argsort()] = flat_y.sort().values
    xm = mapped.view_as(x)
    k = 2 * HALO_RADIUS + 1
    pad = (HALO_RADIUS,) * 4
    hi = _max_filter(F.pad(xm, pad, mode="replicate"), k)
    lo = -_max_filter(F.pad(-xm, pad, mode="replicate"), k)
    gx = xm[..., :, 1:] - xm[..., :, :-1]
    gy = xm[..., 1:, :] - xm[..., :-1, :]
    grad = F.pad(gx.abs(), (0, 1, 0, 0)) + F.pad(gy.abs(), (0, 0, 0, 1))
    if grad.numel() < 16 or float(grad.max()) <= 1e-6:
        return 0.0
    (limit,) = percentiles(grad.flatten().float(), (1 - EDGE_SHARE,))
    band = _max_filter(F.pad((grad >= limit).float(), pad), k) > 0
    over = (y - hi).clamp_min(0) + (lo - y).clamp_min(0)
    height = float((hi - lo)[band].mean())
    return float(over[band].mean()) / height if height > 1e-4 else 0.0


def chroma_noise(lab: torch.Tensor, luma: torch.Tensor) -> float:
    """Immerkaer's noise sigma (as tools.analysis reads the luma's) of the a* and b* planes, in a*/b* units,
    on the pixels away from the strongest luma gradients (edges are not noise)."""
    if min(lab.shape[-2:]) < 3:
        return 0.0
    kernel = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]], dtype=lab.dtype)
    r = F.conv2d(lab[0, 1:].unsqueeze(1), kernel.view(1, 1, 3, 3)).abs().mean(0)[0]  # (h-2, w-2)
    gl = F.conv2d(luma, kernel.view(1, 1, 3, 3).abs())[0, 0]  # local activity of the luma
    keep = gl <= percentiles(gl.flatten().float(), (1 - EDGE_SHARE,))[0]
    return math.sqrt(math.pi / 2.0) * float(r[keep].mean()) / 6.0


NOISE_LAPLACIAN = 20.0  # Stats.sharpness of pure noise per noise_sigma^2 (measured: 20.0-20.1)
SOFT_RATIO = 0.15  # detail left under which a denoise has smeared the photo


def detail_kept(stats: Any, original: Any) -> float | None:
    """Share of the original's detail (its sharpness above what its noise explains) left after a denoise.

    None unless the version is less noisy and its contrast within 30 % of the original's (a
    darkening also lowers both). On 8 train photos with camera noise the clean photo kept
    0.35-256 of the noisy one's estimate, the neural denoiser 0.20-16, NLM at strength 0.6
    0.50-24 and NLM at 1 (the "sharpness / 3, scored 10/10" smear) 0.03-1.2: 4 of 8 under 0.15.
    """
    if stats.noise_sigma >= 0.8 * original.noise_sigma:
        return None
    if abs(math.log(max(stats.rms_contrast, 1e-6) / max(original.rms_contrast, 1e-6))) > 0.3:
        return None
    base = original.sharpness - NOISE_LAPLACIAN * original.noise_sigma**2
    if base <= 1e-6:
        return None
    return max(stats.sharpness - NOISE_LAPLACIAN * stats.noise_sigma**2, 0.0) / base
