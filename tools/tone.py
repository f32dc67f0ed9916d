"""Tone tools: exposure, brightness, contrast, curves, levels and local tone.

Conventions are Lightroom's unless a docstring says otherwise. The 1-D curves
(`per_channel=True`) are exact functions of one channel value: on the CPU path
they run as a 65536-entry table indexed by the 16-bit value (exact for 8- and
16-bit sources; ~20 ms for any curve at 12 MP, less than one float32 cv2.multiply,
where exposure's closed form alone takes ~10x that); on the torch path (GPU,
autograd) the same closed form runs directly, so the two paths agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from tools import colorspace as cs
from tools.registry import Params, ToolError, register

Tensor = torch.Tensor
LUT_SIZE = cs.LUT_SIZE  # the recipe's fused LUT uses the same 16-bit grid
_EPS = 1e-12


# ----------------------------------------------------------------- shared machinery


def apply_curve(image: Tensor, curve: Callable[[Tensor], Tensor], channels: Sequence[int] | None = None) -> Tensor:
    """Apply an elementwise curve on [0,1] to some (default all) channels of a (B,C,H,W) image."""
    channels = range(image.shape[1]) if channels is None else channels
    if not cs.use_cv(image):
        if len(channels) == image.shape[1]:
            return curve(image.clamp(0, 1)).clamp(0, 1)
        keep = [curve(image[:, c : c + 1].clamp(0, 1)).clamp(0, 1) if c in channels else image[:, c : c + 1]
                for c in range(image.shape[1])]
        return torch.cat(keep, 1)
    return cs.apply_lut(image, curve_table(curve), channels)


def curve_table(curve: Callable[[Tensor], Tensor]) -> Tensor:
    """(LUT_SIZE,) float64: the curve at the 16-bit grid k/65535, clamped to [0,1] (what the CPU path applies)."""
    return curve(torch.linspace(0, 1, LUT_SIZE, dtype=torch.float64)).clamp_(0, 1)


def _pow(x: Tensor, e: float | Tensor) -> Tensor:
    """x**e for x in [0,1] with 0 -> 0 and a finite gradient at 0 (plain pow gives inf)."""
    return torch.where(x > 0, x.clamp_min(_EPS) ** e, torch.zeros_like(x))


def _rational(x: Tensor, k: float) -> Tensor:
    """x(1+k)/(1+kx): fixes 0 and 1, lifts (k>0) or lowers (k<0); k -> -k/(1+k) inverts it."""
    return x * (1 + k) / (1 + k * x)


def pchip_slopes(xs: Sequence[float], ys: Sequence[float]) -> list[float]:
    """Knot slopes of the monotone cubic (PCHIP, as scipy.interpolate.PchipInterpolator)."""
    n = len(xs)
    h = [xs[k + 1] - xs[k] for k in range(n - 1)]
    m = [(ys[k + 1] - ys[k]) / h[k] for k in range(n - 1)]
    if n == 2:
        return [m[0], m[0]]
    d = [0.0] * n
    for k in range(1, n - 1):
        if m[k - 1] * m[k] > 0:  # same sign and neither flat: weighted harmonic mean
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / m[k - 1] + w2 / m[k])
    d[0] = _pchip_edge(h[0], h[1], m[0], m[1])
    d[-1] = _pchip_edge(h[-1], h[-2], m[-1], m[-2])
    return d


def _pchip_edge(h0: float, h1: float, m0: float, m1: float) -> float:
    d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    if (d > 0) - (d < 0) != (m0 > 0) - (m0 < 0):
        return 0.0
    if (m0 > 0) - (m0 < 0) != (m1 > 0) - (m1 < 0) and abs(d) > 3 * abs(m0):
        return 3 * m0
    return d


def pchip(x: Tensor, points: Sequence[Sequence[float]]) -> Tensor:
    """Monotone cubic through `points` [[x,y],...]; flat beyond the first and last x."""
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    kw = {"dtype": x.dtype, "device": x.device}
    d = torch.tensor(pchip_slopes(xs, ys), **kw)
    xt, yt = torch.tensor(xs, **kw), torch.tensor(ys, **kw)
    x = x.clamp(xs[0], xs[-1])
    k = (torch.searchsorted(xt, x.detach().contiguous(), right=True) - 1).clamp_(0, len(xs) - 2)
    x0, h = xt[k], xt[k + 1] - xt[k]
    t = (x - x0) / h
    t2, t3 = t * t, t * t * t
    return (
        (2 * t3 - 3 * t2 + 1) * yt[k]
        + (t3 - 2 * t2 + t) * h * d[k]
        + (3 * t2 - 2 * t3) * yt[k + 1]
        + (t3 - t2) * h * d[k + 1]
    )


def _luma(image: Tensor) -> Tensor:
    return cs.luminance(image)  # Rec.709 weights on the sRGB-encoded values


_SET_LUMA_ROWS_PX = 1 << 18  # pixels per CPU band of _set_luma: its ~10 temporaries stay in cache


def _set_luma(image: Tensor, y: Tensor, y_new: Tensor) -> Tensor:
    """Move each pixel to luma y_new keeping its hue (W3C SetLum + ClipColor, Photoshop's
    Luminosity mode): out = y_new + (image - y) * s, s <= 1 the largest scale that keeps every
    channel in [0,1]. One scale serves both ends: a shifted pixel can only leave at one end.

    CPU path: the same maths in bands of rows on the shared threads (12 MP: 87 -> 57 ms,
    bit-identical), since each of its passes over 12 MP temporaries is memory-bound."""
    b, _, h, w = image.shape
    rows = max(1, _SET_LUMA_ROWS_PX // (b * w))
    if not cs.use_cv(image) or rows >= h:
        return _set_luma_pixels(image, y, y_new)
    out = torch.empty_like(image)

    def band(r: int) -> None:
        with torch.no_grad():  # grad mode is per thread; the CPU path never needs a graph
            rs = slice(r, r + rows)
            out[:, :, rs] = _set_luma_pixels(image[:, :, rs], y[:, :, rs], y_new[:, :, rs])

    cs.in_threads(band, list(range(0, h, rows)))
    return out


def _set_luma_pixels(image: Tensor, y: Tensor, y_new: Tensor) -> Tensor:
    under = y - image  # how far each channel sits under luma
    u0, u1, u2 = under.unbind(1)
    # Pairwise max/min of three planes, one difference image: 12 MP ~10% faster than amin/amax.
    below = torch.maximum(torch.maximum(u0, u1), u2)  # = y - darkest channel, exactly
    above = torch.minimum(torch.minimum(u0, u1), u2)  # = y - brightest channel
    yn = y_new[:, 0]
    if torch.is_grad_enabled() and (image.requires_grad or y_new.requires_grad):
        s = torch.minimum(yn / below.clamp_min(1e-6), (yn - 1) / above.clamp_max(-1e-6))
    else:  # the same values, the two planes reused in place (12 MP: ~20% less time)
        s = torch.minimum(torch.div(yn, below.clamp_min_(1e-6), out=below),
                          torch.div(yn - 1, above.clamp_max_(-1e-6), out=above), out=below)
    return torch.addcmul(y_new, under, s.clamp_max(1).unsqueeze(1), value=-1).clamp_(0, 1)


def _scale_by_luma(image: Tensor, y: Tensor, y_new: Tensor) -> Tensor:
    """Scale RGB by the luma ratio: brightness changes, hue and saturation stay."""
    return (image * (y_new / y.clamp_min(1e-4))).clamp_(0, 1)


# ----------------------------------------------------------------- exposure, brightness, contrast, gamma


class Exposure(Params):
    """Brighten or darken the whole image like a camera's EV dial."""

    stops: float = Field(0.0, ge=-4, le=4, description="EV change; +1 doubles the light, -1 halves it")


@register(Exposure, family="tone", pointwise=True, per_channel=True)
def exposure(image: Tensor, p: Exposure) -> Tensor:
    """(B,3,H,W) sRGB in [0,1] -> same. Lightroom: multiply LINEAR light by 2**stops, clip at white."""
    gain = 2.0**p.stops
    return apply_curve(image, lambda x: cs.linear_to_srgb(cs.srgb_to_linear(x) * gain))


class Brightness(Params):
    """Lift or deepen the midtones while black and white stay where they are."""

    amount: float = Field(
        0.0, ge=-1, le=1, description="midtone lift; +1 takes mid-grey from 0.5 to 0.75, -1 to 0.25"
    )


@register(Brightness, family="tone", pointwise=True, per_channel=True)
def brightness(image: Tensor, p: Brightness) -> Tensor:
    """Lightroom-like midtone lift (not PIL/OpenCV's additive offset): per channel
    x -> x(1+k)/(1+kx), which fixes 0 and 1; -amount is the exact inverse of +amount."""
    m = 0.5 + 0.25 * p.amount  # where mid-grey lands
    k = (2 * m - 1) / (1 - m)
    return apply_curve(image, lambda x: _rational(x, k))


class Contrast(Params):
    """Add or remove contrast with an S-curve around mid-grey; black and white stay put."""

    amount: float = Field(
        0.0, ge=-100, le=100, description="+100 triples the midtone slope, -100 divides it by three"
    )


@register(Contrast, family="tone", pointwise=True, per_channel=True)
def contrast(image: Tensor, p: Contrast) -> Tensor:
    """S-curve per channel, pivot fixed at sRGB 0.5 (not the image mean, so it fuses into a LUT).

    Each half is the brightness curve squeezed into [0,0.5] / [0.5,1]; slope at the
    pivot is 3**(amount/100), the curve is C1 there, and -amount inverts +amount.
    """
    k = 3.0 ** (-p.amount / 100) - 1  # slope at the pivot = 1/(1+k)

    def s_curve(x: Tensor) -> Tensor:
        low = 0.5 * _rational(2 * x, k)
        high = 1 - 0.5 * _rational(2 - 2 * x, k)
        return torch.where(x < 0.5, low, high)

    return apply_curve(image, s_curve)


class Gamma(Params):
    """Gamma-correct the image: above 1 brightens the midtones, below 1 darkens them."""

    gamma: float = Field(1.0, ge=0.1, le=10, description="display gamma; out = in ** (1/gamma), 1 = unchanged")


@register(Gamma, family="tone", pointwise=True, per_channel=True)
def gamma(image: Tensor, p: Gamma) -> Tensor:
    """out = in ** (1/gamma) per channel (PIL/Photoshop Levels convention: gamma > 1 brightens)."""
    e = 1.0 / p.gamma
    return apply_curve(image, lambda x: _pow(x, e))


# ----------------------------------------------------------------- curves and levels

_Point = Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(min_length=2, max_length=2)]


class _CurvePoints(Params):
    points: list[_Point] = Field(
        default_factory=lambda: [[0.0, 0.0], [1.0, 1.0]],
        min_length=2,
        max_length=16,
        description="2-16 control points [[input, output], ...] in [0,1], inputs strictly increasing; "
        "[[0,0],[1,1]] = unchanged, [[0,0],[0.25,0.2],[0.75,0.8],[1,1]] = gentle S-curve",
    )

    @field_validator("points")
    @classmethod
    def _increasing(cls, pts: list[list[float]]) -> list[list[float]]:
        for i in range(1, len(pts)):
            if pts[i][0] <= pts[i - 1][0]:
                raise ValueError(
                    f"input (x) values must increase strictly: point {i + 1} has x={pts[i][0]} after "
                    f"x={pts[i - 1][0]}; sort the points by x and drop duplicates"
                )
        return pts


class Curves(_CurvePoints):
    """Tone curve: reshape tones (or one colour channel) through control points."""

    channel: Literal["rgb", "r", "g", "b"] = Field(
        "rgb", description="rgb = all three channels alike; r/g/b = that channel only (colour shifts). "
        "For brightness only, with colours kept, use luma_curve"
    )


@register(Curves, family="tone", pointwise=True, per_channel=True)
def curves(image: Tensor, p: Curves) -> Tensor:
    """Lightroom point curve: monotone cubic (PCHIP) through the points, per channel; inputs
    below the first / above the last point map to that point's output (Photoshop's clipping)."""
    channels = (0, 1, 2) if p.channel == "rgb" else ("rgb".index(p.channel),)
    return apply_curve(image, lambda x: pchip(x, p.points), channels)


class LumaCurve(_CurvePoints):
    """Tone curve on brightness only: reshape light and dark without shifting colours."""


@register(LumaCurve, family="tone", pointwise=True)
def luma_curve(image: Tensor, p: LumaCurve) -> Tensor:
    """Photoshop's curve in Luminosity mode: the curve (PCHIP, as curves) maps Rec.709 luma of
    the sRGB values and each pixel moves to its new luma along its own hue (W3C SetLum/ClipColor).
    Not per-channel: it mixes channels."""
    y = _luma(image)
    return _set_luma(image, y, apply_curve(y, lambda x: pchip(x, p.points)))


class Levels(Params):
    """Set the black point, white point and midtones; optionally fade the output range."""

    black: float = Field(0.0, ge=0, le=1, description="input black point: this value and below become black")
    white: float = Field(1.0, ge=0, le=1, description="input white point: this value and above become white")
    midtone: float = Field(1.0, ge=0.1, le=10, description="midtone gamma; above 1 brightens midtones")
    out_black: float = Field(0.0, ge=0, le=1, description="output black level (raise to fade blacks)")
    out_white: float = Field(1.0, ge=0, le=1, description="output white level (lower to dim whites)")

    @model_validator(mode="after")
    def _order(self) -> Levels:
        if self.black >= self.white:
            raise ValueError(
                f"black point {self.black} must be below white point {self.white}; "
                "lower black or raise white"
            )
        return self


@register(Levels, family="tone", pointwise=True, per_channel=True)
def levels(image: Tensor, p: Levels) -> Tensor:
    """Photoshop Levels per channel: t = clip((x-black)/(white-black)); t **= 1/midtone;
    out = out_black + (out_white - out_black) * t (out_black > out_white inverts, as in Photoshop)."""
    span, e = p.white - p.black, 1.0 / p.midtone

    def curve(x: Tensor) -> Tensor:
        t = _pow(((x - p.black) / span).clamp(0, 1), e)
        return p.out_black + (p.out_white - p.out_black) * t

    return apply_curve(image, curve)


class WhitesBlacks(Params):
    """Move the white and black clipping points: punchier ends or recovered highlights and shadows."""

    whites: float = Field(
        0.0, ge=-100, le=100, description="+ pushes bright tones to pure white (+100 clips from 0.75 up); "
        "- pulls white down to soften highlights (-100 puts white at 0.75)"
    )
    blacks: float = Field(
        0.0, ge=-100, le=100, description="- pushes dark tones to pure black (-100 clips up to 0.25); "
        "+ lifts black to a matte grey (+100 puts black at 0.25)"
    )


@register(WhitesBlacks, family="tone", pointwise=True, per_channel=True)
def whites_blacks(image: Tensor, p: WhitesBlacks) -> Tensor:
    """Lightroom's Whites/Blacks: whites bends only the upper half (x >= 0.5), blacks only the
    lower half, each by a quadratic x + c(x-0.5)**2 that keeps mid-grey and slope 1 at 0.5 and
    moves the end point by a quarter of the range at +-100; curves stay monotone."""
    aw, ab = 0.25 * abs(p.whites) / 100, 0.25 * abs(p.blacks) / 100
    # c chosen so the end lands where the sliders say: f(1-a)=1 (clip) or f(1)=1-a (soften).
    cw = aw / (0.5 - aw) ** 2 if p.whites > 0 else -aw / 0.25
    cb = -ab / (0.5 - ab) ** 2 if p.blacks < 0 else ab / 0.25

    def curve(x: Tensor) -> Tensor:
        u = x - 0.5
        return x + torch.where(u > 0, cw * u * u, cb * u * u)

    return apply_curve(image, curve)


# ----------------------------------------------------------------- local and adaptive tone


class ShadowsHighlights(Params):
    """Open up dark shadows or recover bright highlights, region by region, keeping colours."""

    shadows: float = Field(0.0, ge=-100, le=100, description="+ lifts dark regions, - deepens them")
    highlights: float = Field(
        0.0, ge=-100, le=100, description="- recovers (darkens) bright regions, + brightens them"
    )


_THUMB = 256  # the region mask is smooth at 2% of the long side: a thumbnail carries it exactly


def _region_luma(y: Tensor) -> Tensor:
    """Luma blurred with a Gaussian of sigma = 2% of the long side (computed on a thumbnail)."""
    import torch.nn.functional as F

    h, w = y.shape[-2:]
    f = -(-max(h, w) // _THUMB)  # whole-pixel box averaging: the same thumbnail on both paths
    small = F.avg_pool2d(y, f, f, ceil_mode=True) if f > 1 else y
    sigma = 0.02 * max(h, w) / f
    k = 2 * math.ceil(3 * sigma) + 1
    if cs.use_cv(y):
        import cv2

        small = cs.per_plane(small, lambda a: cv2.GaussianBlur(a, (k, k), sigma, borderType=cv2.BORDER_REPLICATE))
        if f == 1:
            return small
        out = y.new_empty(y.shape, dtype=torch.float32)
        for i in range(y.shape[0]):
            big = cv2.resize(small[i, 0].numpy(), (w, h), interpolation=cv2.INTER_LINEAR)
            out[i, 0] = torch.from_numpy(big)
        return out.to(y.dtype)
    import kornia.filters

    small = kornia.filters.gaussian_blur2d(small, (k, k), (sigma, sigma), border_type="replicate")
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False) if f > 1 else small


@register(ShadowsHighlights, family="tone", cost=4.0)
def shadows_highlights(image: Tensor, p: ShadowsHighlights) -> Tensor:
    """Lightroom-like Shadows/Highlights, a local operator (not per pixel, so not pointwise).

    Region luma r = luma blurred at sigma 2% of the long side. Shadow weight 1 - smoothstep(r/0.5),
    highlight weight smoothstep((r-0.5)/0.5); luma y -> y ** 2**(-shadows/100 * ws), then
    1-y -> (1-y) ** 2**(highlights/100 * wh); RGB is scaled by the luma ratio to keep hue.
    """
    if p.shadows == 0 and p.highlights == 0:
        return image.clone()
    y = _luma(image).clamp(0, 1)
    r = _region_luma(y).clamp(0, 1)
    t = (2 * r).clamp(0, 1)
    ws = 1 - t * t * (3 - 2 * t)
    t = (2 * r - 1).clamp(0, 1)
    wh = t * t * (3 - 2 * t)
    y_new = y.clamp_min(1e-4)
    if p.shadows:
        y_new = y_new ** torch.exp2(-p.shadows / 100 * ws)
    if p.highlights:
        y_new = 1 - (1 - y_new).clamp_min(1e-4) ** torch.exp2(p.highlights / 100 * wh)
    return _scale_by_luma(image, y, y_new)


class Clahe(Params):
    """Boost local contrast region by region (CLAHE) on lightness only; colours are kept."""

    # Default 1, not the neutral 0: CLAHE's own knobs have no neutral value, and callers
    # (OpenCV habits, the benchmarks) expect clip_limit alone to apply it. strength=0 is off.
    strength: float = Field(1.0, ge=0, le=1, description="how much of the equalised result: 0 = off, 1 = full")
    clip_limit: float = Field(
        2.0, ge=0, le=40, description="contrast limit in multiples of the mean histogram bin (OpenCV's "
        "clipLimit); 1-3 natural, 40 strong, 0 = no limit"
    )
    tiles: int = Field(8, ge=2, le=16, description="tiles per side of the grid; more = more local")


def _clahe_plane(l_star: np.ndarray, clip: float, tiles: int) -> np.ndarray:
    """OpenCV CLAHE on one float L* plane, counted at 8 bits (floor, as kornia counts levels)."""
    import cv2

    # floor(2.55 L) as round(2.55 L - 0.5) in one saturating pass (numpy's floor: 13x slower)
    q = cv2.convertScaleAbs(cv2.max(l_star, 0.0), alpha=2.55, beta=-0.49999)
    return cv2.LUT(cv2.createCLAHE(clip, (tiles, tiles)).apply(q), _LEVELS)


_LEVELS = np.arange(256, dtype=np.float32) / np.float32(2.55)  # 8-bit level -> L*


def _clahe_lab(rgb: np.ndarray, p: Clahe) -> np.ndarray:
    """The CPU path of clahe on one HWC float32 RGB image (modified in place: a copy of ours)."""
    import cv2

    lab = cv2.cvtColor(np.clip(rgb, 0, 1, out=rgb), cv2.COLOR_RGB2Lab)
    l_star = cv2.extractChannel(lab, 0)
    l_new = _clahe_plane(l_star, p.clip_limit, p.tiles)
    if p.strength < 1:
        l_new = cv2.addWeighted(l_star, 1 - p.strength, l_new, p.strength, 0)
    cv2.insertChannel(l_new, lab, 0)
    return cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)


def _clahe_torch(l_star: Tensor, clip: float, tiles: int) -> Tensor:
    import kornia.enhance

    x = (l_star / 100).clamp(0, 1)
    out = kornia.enhance.equalize_clahe(x.detach(), float(clip), (tiles, tiles))
    if l_star.requires_grad and torch.is_grad_enabled():
        # The exact (hard-histogram) path has zero gradient; kornia's soft-histogram path has one
        # but its values drift from OpenCV's by up to ~30 L* on small tiles (measured). So: exact
        # values forward, the soft path's gradient backward.
        soft = kornia.enhance.equalize_clahe(x, float(clip), (tiles, tiles), slow_and_differentiable=True)
        out = out + (soft - soft.detach())
    return out * 100


@register(Clahe, family="tone", cost=6.0)
def clahe(image: Tensor, p: Clahe) -> Tensor:
    """CLAHE on L* of CIE Lab, OpenCV's convention (256-level tile histograms, clip limit as a
    multiple of the mean bin, bilinear blend of tile LUTs), blended by strength; a*, b* kept.
    CPU: cv2.createCLAHE on 8-bit L (OpenCV's 16-bit CLAHE clips 65536-bin histograms, a
    different op: 2-7 L* mean off kornia, measured). Torch: kornia.enhance.equalize_clahe;
    gradients come from kornia's soft-histogram path (an approximation)."""
    h, w = image.shape[-2:]
    if min(h, w) <= p.tiles:
        raise ToolError(
            f"clahe: a {h}x{w} px image is too small for a {p.tiles}x{p.tiles} tile grid; "
            f"use tiles <= {max(min(h, w) - 1, 2)} or a larger image"
        )
    if p.strength == 0:
        return image.clone()
    if cs.use_cv(image):
        # Lab stays interleaved from start to end: only L* leaves the HWC array (12 MP: 280 -> ~150 ms)
        return cs.per_image(image, lambda a: _clahe_lab(a, p)).clamp_(0, 1)
    lab = cs.rgb_to_lab(image)
    l_new = torch.lerp(lab[:, :1], _clahe_torch(lab[:, :1], p.clip_limit, p.tiles), p.strength)
    return cs.lab_to_rgb(torch.cat([l_new, lab[:, 1:]], 1))


class Equalize(Params):
    """Spread the tones evenly over the whole range (histogram equalisation), keeping colours."""

    strength: float = Field(0.0, ge=0, le=1, description="how much of the equalised result: 0 = off, 1 = full")


EQ_BINS = 1024
# Above this many pixels the histogram is counted on every second pixel of every second row:
# 3 M samples at 12 MP; on 12 validation photos at 12 MP the CDF stayed within 0.04 % of the full
# count (under a tenth of an 8-bit level), for a third less time. Smaller images are counted in full.
_EQ_FULL_COUNT_PX = 4_000_000


def equalize_step(height: int, width: int) -> int:
    """The histogram counts rows and columns 0, step, 2*step...: 2 above 4 MP, else 1."""
    return 2 if height * width > _EQ_FULL_COUNT_PX else 1


def equalize_curve(hist: Tensor, strength: float) -> Callable[[Tensor], Tensor]:
    """Equalize's tone curve for a luma histogram (EQ_BINS bins over [0,1]): the CDF, linear within
    a bin (smooth in v, so differentiable), blended with the identity by strength."""
    cdf = torch.cat([hist.new_zeros(1), hist.cumsum(0)]) / hist.sum().clamp_min(1)

    def curve(v: Tensor) -> Tensor:
        s = v.clamp(0, 1) * EQ_BINS
        i = s.detach().long().clamp_(max=EQ_BINS - 1)
        c = cdf.to(v.dtype)
        lo, hi = c[i], c[i + 1]
        return torch.lerp(v, lo + (hi - lo) * (s - i), strength)

    return curve


@register(Equalize, family="tone", cost=2.0)
def equalize(image: Tensor, p: Equalize) -> Tensor:
    """Global histogram equalisation of luma (Rec.709 on sRGB values, as OpenCV's YCrCb recipe
    equalises Y), per image: luma maps through its own CDF (1024 bins, linear within a bin),
    blended with the original luma by strength; pixels move to the new luma along their own hue
    (as luma_curve). Not pointwise: the map depends on the whole image. 8-bit photos render
    through `tools.render8.equalize8` (the same curve, uint8 in and out)."""
    if p.strength == 0:
        return image.clone()
    step = equalize_step(image.shape[-2], image.shape[-1])
    outs = []
    for i in range(image.shape[0]):  # each image has its own histogram
        one = image[i : i + 1]
        y = _luma(one)
        curve = equalize_curve(torch.histc(y.detach()[..., ::step, ::step], EQ_BINS, 0, 1), p.strength)
        outs.append(_set_luma(one, y, apply_curve(y, curve)))
    return outs[0] if len(outs) == 1 else torch.cat(outs)
