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

from agent.protocol import Check, TargetState, Veto
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
    naturalness: Naturalness | None = Field(
        None, description="what the version did against the original that the naturalness guard reads "
        "(new clipping, noise, detail, halos, tint); None when not measured")


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
    original_stats: Any = None,
    natural: Naturalness | None = None,
) -> Score:
    """Score one (1,3,H,W) candidate against the original and the goal (formula: `Score`).

    `stats`: the candidate's `tools.analysis.Stats` if already measured (else measured
    here). `reference`: a (1,3,H,W) target image of any size, compared after both are
    area-resampled to the candidate's lock grid (at most 512 px long side).
    `critique`: a critic's 0-10 score. `original_stats` (the original's Stats): also measure
    what the naturalness guard reads (`naturalness`), unless `natural` gives it already.
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
    if natural is None and original_stats is not None:
        natural = naturalness(original, candidate, original_stats=original_stats, stats=stats)
    return Score(structure=structure, ssim=plain, targets=states, targets_met=sum(s.met for s in states),
                 targets_total=len(states), target_distance=distance, reference=ref, critique=critique,
                 lock_ok=lock_ok, combined=combined, naturalness=natural)


# ------------------------------------------------------------------ naturalness (do no harm)

# Tolerances of the naturalness guard, chosen on TRAIN corpus photos with plausible edits
# (see `naturalness_vetoes`; the false-veto rates are in the README).
CLIP_NEW = 2.0  # % of pixels newly blown white (luma >= 250/255) or crushed black a step may add ...
CLIP_NEW_ASKED = 4.0  # ... when the goal asked for that end to move (brighter: highlights; more contrast: both)
COLOUR_CLIP_NEW = 15.0  # % of pixels newly clipped in some channel (Stats.clipped_highlights_pct) ...
COLOUR_CLIP_NEW_ASKED = 20.0  # ... a saturated colour reaching 253 in one channel keeps its detail in the others
BLOWN = 250 / 255  # luma at or above which a pixel reads as blown white
NOISE_RATIO = 1.8  # luma noise sigma may grow by this factor (brightening scales noise with the signal) ...
NOISE_FLOOR = 0.004  # ... or by this much, whichever is larger
CHROMA_RATIO = 1.8  # chroma noise (a*, b* units) may grow by this factor ...
CHROMA_FLOOR = 0.6  # ... or by this much, whichever is larger
NOISY = 0.02  # noise_sigma from which a photo is noisy (agent/goals.py NOISE_MIN: a blind goal denoises)
DETAIL_MIN = 0.45  # share of the original's detail above its noise a step must keep, times (1 - noise_removed)
HALO_MAX = 0.03  # mean overshoot beyond the original's local envelope near edges, over the edge contrast
TINT_TOL = 3.5  # a*, b* units the original's near-neutral pixels may move beyond what the goal asked
HALO_RADIUS = 3  # px on the lock grid: the envelope window and the edge band are 2r + 1 wide
EDGE_SHARE = 0.10  # share of strongest-gradient pixels that are "edges" for the halo measure
NEUTRAL_MIN = 0.01  # fewer near-neutral pixels than this share: no tint check (nothing neutral to turn)
# intents whose goal moves an end of the histogram: they may clip a little more at that end
_ASKS_HIGHLIGHTS = {"brighten", "fix_exposure", "more_contrast", "low_light", "set_levels", "enhance", "dehaze"}
_ASKS_SHADOWS = {"darken", "fix_exposure", "more_contrast", "set_levels", "enhance", "dehaze"}
_ASKS_NOISE = {"brighten", "low_light", "sharpen", "deblur", "more_contrast", "dehaze", "fix_exposure", "enhance"}
_ASKS_CHROMA = {"more_saturation", "brighten", "low_light", "dehaze", "fix_exposure", "enhance", "fix_color",
                "neutralize_cast", "warmer", "cooler", "match_reference"}
_ASKS_SATURATION = {"more_saturation": 1.0, "less_saturation": -1.0, "black_and_white": -1.0}
# intents that change content (retouch, generative, resampling): per-pixel halo, detail and tint checks
# would read the change asked for as damage; the structure lock judges those
_CHANGES_CONTENT = {"remove_defects", "remove_object", "smile", "add_glasses", "remove_glasses", "face_lighting",
                    "upscale", "soften"}
VETO_MARGIN = 0.1  # a step is vetoed only when it worsens a figure beyond the limit by this share of the
#                    limit over its parent: damage already there (a look asked for) is not the step's
_CAST_AXES = {"cast_a": 0, "illuminant_a": 0, "cast_b": 1, "illuminant_b": 1}
# a night shot is exposed by up to 4 stops first (noise x2-3), then denoised: its noise target judges
_AMPLIFIES_NOISE_FIRST = {"low_light"}


class Naturalness(BaseModel):
    """The figures the guard reads for one version against the original (all 0 for the original)."""

    blown_highlights: float = Field(0.0, description="percentage points of pixels newly blown white (luma)")
    clipped_highlights: float = Field(0.0, description="percentage points of pixels newly clipped in a channel")
    clipped_shadows: float = Field(0.0, description="percentage points of pixels newly clipped black")
    noise: float = Field(1.0, description="luma noise sigma over the original's")
    noise_added: float = Field(0.0, description="luma noise sigma added, [0,1] units")
    chroma_noise: float = Field(1.0, description="chroma noise over the original's")
    chroma_before: float = Field(0.0, description="the original's chroma noise, a*/b* units")
    detail: float = Field(1.0, description="share of the original's detail above its noise left (1 when "
                          "the step removed no noise: a blur is the structure lock's business)")
    noise_removed: float = Field(0.0, description="share of the original's sharpness (Laplacian variance) "
                                 "that the noise the step removed explains, 0..1")
    halos: float = Field(0.0, description="mean overshoot beyond the original's local envelope near edges, "
                         "over the edge contrast")
    tint_a: float = Field(0.0, description="mean a* shift of the original's near-neutral pixels")
    tint_b: float = Field(0.0, description="mean b* shift of the original's near-neutral pixels")


def _percentiles(x: torch.Tensor, qs: tuple[float, ...]) -> list[float]:
    from tools.analysis import _percentiles as percentiles  # one definition of a percentile

    return percentiles(x.float(), qs)


def _max_filter(padded: torch.Tensor, k: int) -> torch.Tensor:
    """k x k running maximum of a (1,1,h+k-1,w+k-1) plane, separably (rows, then columns)."""
    import torch.nn.functional as F

    return F.max_pool2d(F.max_pool2d(padded, (1, k), 1), (k, 1), 1)


def _envelope_overshoot(x: torch.Tensor, y: torch.Tensor) -> float:
    """Halos: how far y leaves the local [min, max] of the original near its strong edges.

    x, y: (1,1,h,w) lumas on one grid. The global tone change is taken out first: x is
    mapped onto y's histogram (quantile matching), so a brighter or contrastier y whose
    pixels keep their order reads 0. Local tone edits (shadows, dehaze) stay inside the
    envelope of an edge's two sides; unsharp masking and clarity overshoot it (the
    bright rim and dark moat of a halo). Mean overshoot over the edge band, divided by
    the mean envelope height there.
    """
    import torch.nn.functional as F

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
    (limit,) = _percentiles(grad.flatten(), (1 - EDGE_SHARE,))
    band = _max_filter(F.pad((grad >= limit).float(), pad), k) > 0
    over = (y - hi).clamp_min(0) + (lo - y).clamp_min(0)
    height = float((hi - lo)[band].mean())
    return float(over[band].mean()) / height if height > 1e-4 else 0.0


def _chroma_noise(lab: torch.Tensor, luma: torch.Tensor) -> float:
    """Immerkaer's noise sigma (as tools.analysis reads the luma's) of the a* and b* planes, in a*/b* units,
    on the pixels away from the strongest luma gradients (edges are not noise)."""
    import torch.nn.functional as F

    if min(lab.shape[-2:]) < 3:
        return 0.0
    kernel = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]], dtype=lab.dtype)
    r = F.conv2d(lab[0, 1:].unsqueeze(1), kernel.view(1, 1, 3, 3)).abs().mean(0)[0]  # (h-2, w-2)
    gl = F.conv2d(luma, kernel.view(1, 1, 3, 3).abs())[0, 0]  # local activity of the luma
    keep = gl <= _percentiles(gl.flatten(), (1 - EDGE_SHARE,))[0]
    return math.sqrt(math.pi / 2.0) * float(r[keep].mean()) / 6.0


def naturalness(original: torch.Tensor, candidate: torch.Tensor, *, original_stats: Any = None,
                stats: Any = None) -> Naturalness:
    """What a version did to the photo that a good edit does not: new clipping, noise, lost detail, halos, tint.

    (1,3,H,W) original and candidate of the same size, in [0,1]; Stats as `tools.analysis.measure`
    gives them (measured here when not given). Halos, chroma noise and tint are read on the lock
    grid (at most 512 px long side); clipping, luma noise and detail from the Stats.

    Example:
        >>> n = naturalness(photo, brighter)        # (1,3,96,128) each
        >>> n.clipped_highlights, n.halos            # (30.2, 0.01): a third of the frame blown, no halos
    """
    from agent.critics import NOISE_LAPLACIAN, detail_kept
    from tools.analysis import HIGHLIGHT_CLIP, NEUTRAL_CHROMA, NEUTRAL_L, measure

    if original.shape == candidate.shape and torch.equal(original, candidate):
        return Naturalness()
    if original.shape[-2:] != candidate.shape[-2:]:
        return Naturalness()  # framing changed: the structure lock reads that, per-pixel checks cannot
    o_st = original_stats if original_stats is not None else measure(original)
    c_st = stats if stats is not None else measure(candidate)
    grid = _grid(*original.shape[-2:])
    x = _to_grid(original.detach().float().clamp(0, 1), grid)
    y = _to_grid(candidate.detach().float().clamp(0, 1), grid)
    lab_x, lab_y = colorspace.rgb_to_lab(x), colorspace.rgb_to_lab(y)
    luma_x, luma_y = colorspace.luminance(x), colorspace.luminance(y)
    L = lab_x[0, 0]
    low, high = NEUTRAL_L
    # Colour read from locally averaged RGB (Gaussian sigma 2 px): picked on noisy pixels, the selection keeps
    # the ones noise made grey, and a* b* of noisy pixels are biased (Lab is not linear), so any denoise
    # would read as a tint.
    smooth_x, smooth_y = colorspace.rgb_to_lab(_blur(x, 2.0)), colorspace.rgb_to_lab(_blur(y, 2.0))
    _, sa, sb = smooth_x[0]
    neutral = (sa.square() + sb.square() < NEUTRAL_CHROMA**2) & (L >= low) & (L <= high)
    neutral &= y[0].amax(0) < HIGHLIGHT_CLIP  # blown pixels lose their colour: the clipping checks' business
    tint_a = tint_b = 0.0
    if float(neutral.float().mean()) >= NEUTRAL_MIN:
        tint_a = float((smooth_y[0, 1] - sa)[neutral].mean())
        tint_b = float((smooth_y[0, 2] - sb)[neutral].mean())
    cn_x, cn_y = _chroma_noise(lab_x, luma_x), _chroma_noise(lab_y, luma_y)
    kept = detail_kept(c_st, o_st)
    blown = 100.0 * float((luma_y >= BLOWN).float().mean() - (luma_x >= BLOWN).float().mean())
    return Naturalness(
        blown_highlights=blown,
        clipped_highlights=c_st.clipped_highlights_pct - o_st.clipped_highlights_pct,
        clipped_shadows=c_st.clipped_shadows_pct - o_st.clipped_shadows_pct,
        noise=c_st.noise_sigma / max(o_st.noise_sigma, 1e-6),
        noise_added=c_st.noise_sigma - o_st.noise_sigma,
        chroma_noise=cn_y / max(cn_x, 1e-6),
        chroma_before=cn_x,
        detail=1.0 if kept is None else min(kept, 1.0),
        noise_removed=min(1.0, max(0.0, NOISE_LAPLACIAN * (o_st.noise_sigma**2 - c_st.noise_sigma**2))
                          / max(o_st.sharpness, 1e-12)),
        halos=_envelope_overshoot(luma_x, luma_y),
        tint_a=tint_a,
        tint_b=tint_b,
    )


def _intents(goal: Any) -> set[str]:
    return {str(getattr(i, "name", i)) for i in getattr(goal, "intents", [])}


def _bound(goal: Any, metric: str, op: str) -> float | None:
    """The loosest bound the goal's targets set on `metric` on the side of `op` ('<=': high, '>=': low)."""
    found = [t.high if op == "<=" else t.low for t in getattr(goal, "targets", [])
             if t.metric == metric and t.op in (op, "between")]
    found = [v for v in found if v is not None]
    return (max(found) if op == "<=" else min(found)) if found else None


def tint_allowed(goal: Any, original_stats: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    """(a*, b*) intervals the original's near-neutral pixels may shift by, from what the goal asked.

    Nothing asked: (0, 0). A target on cast_a/b or illuminant_a/b (warmer, cooler, match a reference,
    enhance): from no shift to the target's far bound. A target on the cast's strength (cast <= r:
    neutralize, fix the colours): from no shift to bringing each axis within +-r of neutral. More or less
    saturation: the neutrals' own colour scaled as asked (up to doubled, down to grey).
    """
    box = [[0.0, 0.0], [0.0, 0.0]]
    start = (float(original_stats.cast_a), float(original_stats.cast_b))

    def widen(axis: int, *shifts: float) -> None:
        box[axis] = [min(box[axis][0], *shifts), max(box[axis][1], *shifts)]

    for t in getattr(goal, "targets", []):
        if t.metric in _CAST_AXES:
            axis = _CAST_AXES[t.metric]
            begin = float(getattr(original_stats, t.metric, start[axis]))
            widen(axis, *[v - begin for v in (t.low, t.high) if v is not None])
        elif t.metric == "cast" and t.high is not None:
            for axis in (0, 1):
                widen(axis, -t.high - start[axis], t.high - start[axis])
    for name, k in _ASKS_SATURATION.items():
        if name in _intents(goal):
            for axis in (0, 1):
                widen(axis, k * start[axis])
    return (box[0][0], box[0][1]), (box[1][0], box[1][1])


def _figures(n: Naturalness, goal: Any, original_stats: Any) -> list[tuple[Check, float, float, str]]:
    """(check, value, limit, words) for each check that applies to this goal; value > limit is damage
    (detail reads the other way round and is negated)."""
    asked = _intents(goal)
    o = original_stats
    out: list[tuple[Check, float, float, str]] = []
    for check, what, value, metric, intents, limits in (
        ("blown_highlights", "blown (white) highlights", n.blown_highlights, None, _ASKS_HIGHLIGHTS,
         (CLIP_NEW, CLIP_NEW_ASKED)),
        ("clipped_highlights", "clipped highlights (a channel at 253)", n.clipped_highlights,
         "clipped_highlights_pct", _ASKS_HIGHLIGHTS, (COLOUR_CLIP_NEW, COLOUR_CLIP_NEW_ASKED)),
        ("clipped_shadows", "crushed shadows", n.clipped_shadows, "clipped_shadows_pct", _ASKS_SHADOWS,
         (CLIP_NEW, CLIP_NEW_ASKED)),
    ):
        limit = limits[bool(asked & intents)]
        target = _bound(goal, metric, "<=") if metric else None
        if target is not None:  # the goal's own bound on clipping is what it asked
            limit = max(limit, target - float(getattr(o, metric)))
        out.append((check, value, limit, f"new {what} {value:.1f} % of the pixels > {limit:g} %"))
    if not asked & _AMPLIFIES_NOISE_FIRST:
        ratio = NOISE_RATIO * (1.5 if asked & _ASKS_NOISE else 1.0)
        limit = max(ratio, 1 + NOISE_FLOOR / max(o.noise_sigma, 1e-6))
        out.append(("noise", n.noise, limit, f"luma noise x{n.noise:.1f} (sigma {o.noise_sigma:.4f} -> "
                    f"{o.noise_sigma * n.noise:.4f}) > x{limit:.1f}"))
        ratio = CHROMA_RATIO * (1.5 if asked & _ASKS_CHROMA else 1.0)
        limit = max(ratio, 1 + CHROMA_FLOOR / max(n.chroma_before, 1e-6))
        out.append(("chroma_noise", n.chroma_noise, limit, f"chroma noise x{n.chroma_noise:.1f} (sigma "
                    f"{n.chroma_before:.2f} -> {n.chroma_before * n.chroma_noise:.2f} a*/b*) > x{limit:.1f}"))
    if asked & _CHANGES_CONTENT:
        return out
    if _bound(goal, "sharpness", "<=") is None:
        # The detail estimate (sharpness above what the noise explains) is a difference of two large
        # numbers on a noisy photo: the more of the sharpness the removed noise explains, the less it
        # is trusted (a perfect denoise of camera noise on train photos read 0.30-1.19).
        least = DETAIL_MIN * (1 - n.noise_removed)
        if o.noise_sigma >= NOISY:  # a noisy photo's own clean version can read 0.35 (train): the critic's floor
            from agent.critics import SOFT_RATIO

            least = min(least, SOFT_RATIO)
        out.append(("detail", -n.detail, -least, f"fine detail lost: {n.detail:.0%} of the original's detail "
                    f"above its noise is left < {least:.0%} (smeared)"))
    out.append(("halos", n.halos, HALO_MAX, f"halos: overshoot {n.halos:.3f} of the edge contrast beside "
                f"edges > {HALO_MAX:g}"))
    (a_lo, a_hi), (b_lo, b_hi) = tint_allowed(goal, o)
    off = math.hypot(max(a_lo - n.tint_a, 0.0, n.tint_a - a_hi), max(b_lo - n.tint_b, 0.0, n.tint_b - b_hi))
    out.append(("tint", off, TINT_TOL, f"neutral greys turned a* {n.tint_a:+.1f}, b* {n.tint_b:+.1f} (asked: "
                f"a* {a_lo:+.1f}..{a_hi:+.1f}, b* {b_lo:+.1f}..{b_hi:+.1f}), {off:.1f} beyond it > {TINT_TOL:g}"))
    return out


def naturalness_vetoes(n: Naturalness, goal: Any, original_stats: Any,
                       parent: Naturalness | None = None) -> list[Veto]:
    """The guard: what `n` (a version against the original) did beyond the goal's allowance.

    Allowances come from the goal: brighter may clip a little more highlights (5 % instead
    of 2 %), more contrast both ends, darker the shadows, a target's own bound on clipping
    is honoured; brightening, sharpening and dehazing may raise the noise more; warmer,
    cooler, neutralize and saturation move the neutrals as far as their targets ask
    (`tint_allowed`); a softening goal may lose detail. With `parent` (the version the
    step started from), only damage the step worsened is vetoed.
    """
    before = {c: (v, lim) for c, v, lim, _ in _figures(parent, goal, original_stats)} if parent else {}
    vetoes = []
    for check, value, limit, text in _figures(n, goal, original_stats):
        if value <= limit:
            continue
        if check in before and value <= max(before[check][0], limit) + VETO_MARGIN * abs(limit):
            continue
        shown = -value if check == "detail" else value
        vetoes.append(Veto(check=check, value=round(shown, 4), limit=round(abs(limit), 4), text=text))
    return vetoes


Score.model_rebuild()  # Naturalness is declared after Score
