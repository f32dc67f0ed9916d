"""One Score per version: the structure lock, the goal's targets, reference closeness, critique.

The loop scores every candidate against the ORIGINAL (the structure lock: did the
edit keep the photo's content?) and against the goal (are the targets met?), and
keeps the version with the highest `Score.combined`.

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
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, Field

from agent.protocol import TargetState
from tools import colorspace
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

# combined = W_MET*met + W_DIST/(1+distance) + W_REF*ref + W_CRITIQUE*critique/10 + W_STRUCTURE*structure
W_MET, W_DIST, W_REF, W_CRITIQUE, W_STRUCTURE = 1.0, 0.5, 0.25, 0.1, 0.02
LOCK_PENALTY = 10.0  # larger than the sum of all the weights above
DE_SCALE = 3.0  # mean deltaE00 at which the colour half of reference closeness is 1/2
PSNR_CAP = 100.0  # dB reported for identical images (JSON has no infinity)
LOCK_TOLERANCE = 1e-6  # float rounding must not break a lock of exactly 1.0


class Score(BaseModel):
    """How good one version is: structure lock, targets, reference closeness, critique, combined.

    combined (higher is better; picks the best version):

        met       = sum(weight of met targets) / sum(weight), 1 when there are none
        ref       = (clip(ssim_ref, 0, 1) + 1 / (1 + delta_e_mean / 3)) / 2, 0 without a reference
        combined  = 1.0 * met + 0.5 / (1 + target_distance) + 0.25 * ref
                    + 0.1 * critique / 10 (when given) + 0.02 * structure
                    - 10 when the lock is broken

    Meeting more targets (by weight) dominates; among versions meeting the same
    ones, the smaller weighted distance wins; structure only breaks near-ties
    (prefer the gentler edit). Every term but the penalty is in [0, 1.87], so a
    lock-breaking version scores below every version that keeps the lock, the
    original included (structure 1).
    """

    structure: float = Field(description="structure similarity to the original, 0..1 (the lock)")
    ssim: float = Field(description="plain SSIM of the luma to the original, 0..1, for information")
    targets: list[TargetState] = Field(default_factory=list)
    targets_met: int = 0
    targets_total: int = 0
    target_distance: float = Field(0.0, description="sum of weighted target distances; 0 when all are met")
    reference: dict[str, float] | None = Field(
        None, description="psnr (dB, capped at 100), ssim, delta_e_mean, delta_e_max vs the reference"
    )
    critique: float | None = Field(None, description="a critic's 0-10 score, when one was given")
    lock_ok: bool = True
    combined: float = 0.0


# ------------------------------------------------------------------ structure


def _kernel_size(sigma: float, side: int) -> int:
    # Reflect padding needs a pad smaller than the image; only tiny images shrink it.
    return min(2 * math.ceil(3 * sigma) + 1, 2 * side - 1)


def _grid(height: int, width: int) -> tuple[int, int]:
    scale = min(1.0, LOCK_EDGE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _to_grid(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
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


def _blur(planes: torch.Tensor, sigma: float) -> torch.Tensor:
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


def _compare(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) structure and (B,) plain SSIM of two (B,1,h,w) lumas on the same grid."""
    fine = _blur(torch.cat([x, y, x * x, y * y, x * y], 1), SIGMA)
    mx, my, exx, eyy, exy = fine.unbind(1)
    vx = (exx - mx * mx).clamp_min(0)
    vy = (eyy - my * my).clamp_min(0)
    cxy = exy - mx * my
    coarse = _blur(torch.cat([x, y, x * x, x * y], 1), GAIN_SIGMA)
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


def _lumas(original: torch.Tensor, candidate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both lumas on the original's lock grid; a candidate of another size is resampled onto it."""
    check_image(original, "structure_similarity")
    check_image(candidate, "structure_similarity")
    if original.shape[0] not in (1, candidate.shape[0]):
        raise ToolError(
            f"structure_similarity: original batch of {original.shape[0]} does not match "
            f"candidate batch of {candidate.shape[0]}; pass one original or one per candidate"
        )
    grid = _grid(*original.shape[-2:])
    x = _to_grid(colorspace.luminance(original.clamp(0, 1)), grid)
    y = _to_grid(colorspace.luminance(candidate.clamp(0, 1)), grid)
    return x.expand(y.shape[0], -1, -1, -1), y


def structure_per_image(original: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
    """(B,) structure similarity of each candidate to the original (see the module doc)."""
    x, y = _lumas(original, candidate)
    return _compare(x, y)[0]


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


# ------------------------------------------------------------------ targets


def _value(metric: str, stats: Any, extra: Mapping[str, float]) -> float | None:
    if metric in extra:
        return float(extra[metric])
    v = stats.get(metric) if isinstance(stats, Mapping) else getattr(stats, metric, None)
    return None if v is None else float(v)


def _states(goal: Any, stats: Any, extra: Mapping[str, float]) -> tuple[list[TargetState], float, float]:
    """The target states, the weighted distance and the weighted fraction met."""
    states, distance, met_w, total_w = [], 0.0, 0.0, 0.0
    for t in goal.targets:
        v = _value(t.metric, stats, extra)
        ok = v is not None and math.isfinite(v) and t.met(v)
        # A metric that could not be measured (ssim_ref without a reference) is one clear miss.
        distance += t.weight * (t.distance(v) if v is not None and math.isfinite(v) else 1.0)
        total_w += t.weight
        met_w += t.weight * ok
        states.append(TargetState(label=t.label, metric=t.metric, op=t.op, low=t.low, high=t.high,
                                  value=v, met=ok))
    return states, distance, (met_w / total_w if total_w else 1.0)


def target_states(goal: Any, stats: Any, extra: Mapping[str, float] | None = None) -> list[TargetState]:
    """Where each of the goal's targets stands for a version with these stats.

    `extra` supplies metrics that are not Stats fields (ssim_ref, delta_e_ref) and
    overrides Stats fields of the same name. A target whose metric has no value is
    reported unmet with value None.
    """
    return _states(goal, stats, extra or {})[0]


# ------------------------------------------------------------------ the score


def _reference_metrics(candidate: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """psnr, ssim (luma), delta_e_mean/max of the candidate vs the reference, on the lock grid."""
    from tools.metrics import delta_e2000, psnr

    check_image(reference, "score_version reference")
    grid = _grid(*candidate.shape[-2:])
    c = _to_grid(candidate.detach().float().clamp(0, 1), grid)
    r = _to_grid(reference.detach().to(c.device, torch.float32).clamp(0, 1), grid)
    _, ssim_ref = _compare(colorspace.luminance(c), colorspace.luminance(r))
    de_mean, de_max = delta_e2000(c, r)
    return {"psnr": min(psnr(c, r), PSNR_CAP), "ssim": float(ssim_ref[0]),
            "delta_e_mean": de_mean, "delta_e_max": de_max}


def score_version(
    original: torch.Tensor,
    candidate: torch.Tensor,
    goal: Any,
    *,
    stats: Any = None,
    reference: torch.Tensor | None = None,
    critique: float | None = None,
) -> Score:
    """Score one (1,3,H,W) candidate against the original and the goal (formula: `Score`).

    `stats`: the candidate's `tools.analysis.Stats` if already measured (else measured
    here). `reference`: a (1,3,H,W) target image of any size, compared after both are
    area-resampled to the candidate's lock grid (at most 512 px long side).
    `critique`: a critic's 0-10 score.
    """
    if candidate.ndim != 4 or candidate.shape[0] != 1:
        raise ToolError(f"score_version scores one candidate of shape (1,3,H,W), got {tuple(candidate.shape)}; "
                        "call it once per version")
    if critique is not None and not 0 <= critique <= 10:
        raise ToolError(f"critique={critique} is out of range: a critic's score must be between 0 and 10")
    if stats is None:
        from tools.analysis import measure

        stats = measure(candidate)
    if original.shape == candidate.shape and torch.equal(original, candidate):
        structure, plain = 1.0, 1.0
    else:
        x, y = _lumas(original, candidate)
        st, ss = _compare(x, y)
        structure, plain = float(st.mean()), float(ss.mean())

    ref = _reference_metrics(candidate, reference) if reference is not None else None
    extra = {"ssim_ref": ref["ssim"], "delta_e_ref": ref["delta_e_mean"]} if ref else {}
    states, distance, met_frac = _states(goal, stats, extra)

    lock_ok = structure >= goal.lock - LOCK_TOLERANCE
    combined = W_MET * met_frac + W_DIST / (1 + distance) + W_STRUCTURE * structure
    if ref is not None:
        closeness = (min(max(ref["ssim"], 0.0), 1.0) + 1 / (1 + ref["delta_e_mean"] / DE_SCALE)) / 2
        combined += W_REF * closeness
    if critique is not None:
        combined += W_CRITIQUE * critique / 10
    if not lock_ok:
        combined -= LOCK_PENALTY
    return Score(structure=structure, ssim=plain, targets=states, targets_met=sum(s.met for s in states),
                 targets_total=len(states), target_distance=distance, reference=ref, critique=critique,
                 lock_ok=lock_ok, combined=combined)
