"""One Score per version: the structure lock, the goal's targets, reference closeness, critique.

The loop scores every candidate against the ORIGINAL (the structure lock: did the
edit keep the photo's content? `tools.compare.structure_similarity`, whose module doc says
how and why it measures structure and not tone) and against the goal (are the targets
met?), and keeps the version with the highest `Score.combined`. The naturalness guard
(`naturalness`, `naturalness_vetoes`) rolls back a step that damages the photo beyond what
the goal asked: new clipping, noise, lost detail, halos, tint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from pydantic import BaseModel, Field

from agent.intent_spec import INTENTS, allowed
from agent.protocol import Check, TargetState, Veto
from tools import colorspace
from tools.compare import (
    HALO_RADIUS,
    LOCK_EDGE,
    NOISE_LAPLACIAN,
    SOFT_RATIO,
    chroma_noise,
    compare_lumas,
    detail_kept,
    envelope_overshoot,
    gaussian_blur,
    lock_grid,
    lock_lumas,
    structure_per_image,
    structure_similarity,
    to_grid,
)
from tools.registry import ToolError, check_image

__all__ = ["HALO_RADIUS", "LOCK_EDGE", "Naturalness", "Score", "naturalness", "naturalness_vetoes", "score_version",
           "structure_per_image", "structure_similarity", "target_states", "tint_allowed"]


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
    grid = lock_grid(*candidate.shape[-2:])
    c = to_grid(candidate.detach().float().clamp(0, 1), grid)
    r = to_grid(reference.detach().to(c.device, torch.float32).clamp(0, 1), grid)
    _, ssim_ref = compare_lumas(colorspace.luminance(c), colorspace.luminance(r))
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
        x, y = lock_lumas(original, candidate)
        st, ss = compare_lumas(x, y)
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
NOISY = 0.02  # noise_sigma from which a photo is noisy (agent/recipes.py NOISE_MIN: a blind goal denoises)
DETAIL_MIN = 0.45  # share of the original's detail above its noise a step must keep, times (1 - noise_removed)
HALO_MAX = 0.03  # mean overshoot beyond the original's local envelope near edges, over the edge contrast
TINT_TOL = 3.5  # a*, b* units the original's near-neutral pixels may move beyond what the goal asked
NEUTRAL_MIN = 0.01  # fewer near-neutral pixels than this share: no tint check (nothing neutral to turn)
VETO_MARGIN = 0.1  # a step is vetoed only when it worsens a figure beyond the limit by this share of the
#                    limit over its parent: damage already there (a look asked for) is not the step's
_CAST_AXES = {"cast_a": 0, "illuminant_a": 0, "cast_b": 1, "illuminant_b": 1}


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
    from tools.analysis import HIGHLIGHT_CLIP, NEUTRAL_CHROMA, NEUTRAL_L, measure

    if original.shape == candidate.shape and torch.equal(original, candidate):
        return Naturalness()
    if original.shape[-2:] != candidate.shape[-2:]:
        return Naturalness()  # framing changed: the structure lock reads that, per-pixel checks cannot
    o_st = original_stats if original_stats is not None else measure(original)
    c_st = stats if stats is not None else measure(candidate)
    grid = lock_grid(*original.shape[-2:])
    x = to_grid(original.detach().float().clamp(0, 1), grid)
    y = to_grid(candidate.detach().float().clamp(0, 1), grid)
    lab_x, lab_y = colorspace.rgb_to_lab(x), colorspace.rgb_to_lab(y)
    luma_x, luma_y = colorspace.luminance(x), colorspace.luminance(y)
    L = lab_x[0, 0]
    low, high = NEUTRAL_L
    # Colour read from locally averaged RGB (Gaussian sigma 2 px): picked on noisy pixels, the selection keeps
    # the ones noise made grey, and a* b* of noisy pixels are biased (Lab is not linear), so any denoise
    # would read as a tint.
    smooth_x, smooth_y = colorspace.rgb_to_lab(gaussian_blur(x, 2.0)), colorspace.rgb_to_lab(gaussian_blur(y, 2.0))
    _, sa, sb = smooth_x[0]
    neutral = (sa.square() + sb.square() < NEUTRAL_CHROMA**2) & (L >= low) & (L <= high)
    neutral &= y[0].amax(0) < HIGHLIGHT_CLIP  # blown pixels lose their colour: the clipping checks' business
    tint_a = tint_b = 0.0
    if float(neutral.float().mean()) >= NEUTRAL_MIN:
        tint_a = float((smooth_y[0, 1] - sa)[neutral].mean())
        tint_b = float((smooth_y[0, 2] - sb)[neutral].mean())
    cn_x, cn_y = chroma_noise(lab_x, luma_x), chroma_noise(lab_y, luma_y)
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
        halos=envelope_overshoot(luma_x, luma_y),
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
    for name in _intents(goal) & INTENTS.keys():
        if INTENTS[name].saturation:
            for axis in (0, 1):
                widen(axis, INTENTS[name].saturation * start[axis])
    return (box[0][0], box[0][1]), (box[1][0], box[1][1])


def _figures(n: Naturalness, goal: Any, original_stats: Any) -> list[tuple[Check, float, float, str]]:
    """(check, value, limit, words) for each check that applies to this goal; value > limit is damage
    (detail reads the other way round and is negated)."""
    asked = _intents(goal)
    o = original_stats
    out: list[tuple[Check, float, float, str]] = []
    for check, what, value, metric, end, limits in (
        ("blown_highlights", "blown (white) highlights", n.blown_highlights, None, "highlights",
         (CLIP_NEW, CLIP_NEW_ASKED)),
        ("clipped_highlights", "clipped highlights (a channel at 253)", n.clipped_highlights,
         "clipped_highlights_pct", "highlights", (COLOUR_CLIP_NEW, COLOUR_CLIP_NEW_ASKED)),
        ("clipped_shadows", "crushed shadows", n.clipped_shadows, "clipped_shadows_pct", "shadows",
         (CLIP_NEW, CLIP_NEW_ASKED)),
    ):
        limit = limits[allowed(asked, end)]
        target = _bound(goal, metric, "<=") if metric else None
        if target is not None:  # the goal's own bound on clipping is what it asked
            limit = max(limit, target - float(getattr(o, metric)))
        out.append((check, value, limit, f"new {what} {value:.1f} % of the pixels > {limit:g} %"))
    if not allowed(asked, "noise_first"):
        ratio = NOISE_RATIO * (1.5 if allowed(asked, "noise") else 1.0)
        limit = max(ratio, 1 + NOISE_FLOOR / max(o.noise_sigma, 1e-6))
        out.append(("noise", n.noise, limit, f"luma noise x{n.noise:.1f} (sigma {o.noise_sigma:.4f} -> "
                    f"{o.noise_sigma * n.noise:.4f}) > x{limit:.1f}"))
        ratio = CHROMA_RATIO * (1.5 if allowed(asked, "chroma") else 1.0)
        limit = max(ratio, 1 + CHROMA_FLOOR / max(n.chroma_before, 1e-6))
        out.append(("chroma_noise", n.chroma_noise, limit, f"chroma noise x{n.chroma_noise:.1f} (sigma "
                    f"{n.chroma_before:.2f} -> {n.chroma_before * n.chroma_noise:.2f} a*/b*) > x{limit:.1f}"))
    if allowed(asked, "content"):
        return out
    if _bound(goal, "sharpness", "<=") is None:
        # The detail estimate (sharpness above what the noise explains) is a difference of two large
        # numbers on a noisy photo: the more of the sharpness the removed noise explains, the less it
        # is trusted (a perfect denoise of camera noise on train photos read 0.30-1.19).
        least = DETAIL_MIN * (1 - n.noise_removed)
        if o.noise_sigma >= NOISY:  # a noisy photo's own clean version can read 0.35 (train): the critic's floor
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
