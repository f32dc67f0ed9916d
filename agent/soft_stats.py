"""Differentiable measurements: `tools.analysis.measure`'s statistics as torch expressions.

`soft_stats` gives the ones with a differentiable form (`STATS`), so `agent.refine` can fit an
edit's params by gradient descent toward targets on them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tools import analysis
from tools import colorspace as cs

Tensor = torch.Tensor

# Stats with a differentiable form here (others in a target are ignored by the objective).
STATS = ("mean_L", "median_L", "p01_L", "p05_L", "p95_L", "p99_L", "rms_contrast",
         "colorfulness", "cast_a", "cast_b", "cast", "mean_saturation")
_QUANTILES = {"p01_L": 0.01, "p05_L": 0.05, "median_L": 0.5, "p95_L": 0.95, "p99_L": 0.99}


def soft_stats(image: Tensor, names: Sequence[str] = STATS) -> dict[str, Tensor]:
    """Differentiable `tools.analysis.measure` values of a (1,3,H,W) image, for `names` in STATS.

    Same definitions as `measure` (every pixel, not a sample): L* from CIE Lab, rms_contrast =
    std L* / 100, the cast read on the near-neutral pixels (`_soft_cast`: a continuous version),
    HSV saturation, Hasler-Suesstrunk colourfulness.
    """
    x = image.clamp(0, 1)
    lab = cs.rgb_to_lab(x)[0].flatten(1)
    lum, a, b = lab
    out: dict[str, Tensor] = {}
    for n in names:
        if n == "mean_L":
            out[n] = lum.mean()
        elif n in _QUANTILES:
            out[n] = torch.quantile(lum, _QUANTILES[n])
        elif n == "rms_contrast":
            out[n] = lum.std(correction=0) / 100
        elif n in ("cast_a", "cast_b", "cast"):
            ca, cb = _soft_cast(lum, a, b)
            out[n] = {"cast_a": ca, "cast_b": cb}.get(n, torch.sqrt(ca * ca + cb * cb + 1e-12))
        elif n == "mean_saturation":
            hi, lo = x.amax(1), x.amin(1)
            out[n] = torch.where(hi > 0, (hi - lo) / hi.clamp_min(1e-12), torch.zeros_like(hi)).mean()
        elif n == "colorfulness":
            r, g, bl = x[0].flatten(1)
            rg, yb = r - g, 0.5 * (r + g) - bl
            sigma = torch.sqrt(rg.var(correction=0) + yb.var(correction=0) + 1e-12)
            mu = torch.sqrt(rg.mean() ** 2 + yb.mean() ** 2 + 1e-12)
            out[n] = 255 * (sigma + 0.3 * mu)
        else:
            raise ValueError(f"soft_stats: {n!r} has no differentiable form; use one of {', '.join(STATS)}")
    return out


def _soft_cast(lum: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """`measure`'s cast made continuous, so a line search can walk it: the near-neutral test
    is a sigmoid one unit wide at its edges (C*ab < 12, 15 <= L* <= 90), and below 1 % of such
    pixels the mean over all pixels takes over along a ramp from 1 % down to 0.5 %, not at once.
    The weights carry no gradient: the fit moves colours, not which pixels count as neutral."""
    low, high = analysis.NEUTRAL_L
    chroma = torch.sqrt(a.detach() ** 2 + b.detach() ** 2)
    w = torch.sigmoid(analysis.NEUTRAL_CHROMA - chroma) * \
        torch.sigmoid((high - low) / 2 - (lum.detach() - (low + high) / 2).abs())
    count = w.sum()
    need = max(1.0, analysis.NEUTRAL_MIN_FRACTION * lum.numel())
    share = ((count - need / 2) / (need / 2)).clamp(0, 1)
    near_a, near_b = (a * w).sum() / count.clamp_min(1e-6), (b * w).sum() / count.clamp_min(1e-6)
    return torch.lerp(a.mean(), near_a, share), torch.lerp(b.mean(), near_b, share)
