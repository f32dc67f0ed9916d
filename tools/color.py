"""Colour tools: saturation, vibrance, hue, white balance, HSL bands, split toning, black & white.

Conventions are Lightroom's unless a docstring says otherwise: sliders run -100..100 with 0
the identity. "Luma" is Rec.709 Y' of the sRGB-encoded values (`colorspace.luminance`).

Colour moves happen in one opponent space (Y', a, b): a = R - (G+B)/2, b = (sqrt(3)/2)(G-B).
Its hue angle atan2(b, a) equals HSV's at the primaries and secondaries (0 red, 60 yellow,
120 green, 180 aqua, 240 blue, 300 magenta). Changing a and b leaves luma untouched, and a
result that leaves the RGB cube is pulled toward its grey at the same hue and luma
(`_scale_chroma`) instead of being clipped per channel, which would shift its hue.

CPU path: each map is a short chain of torch ops, the same code as on the GPU or under
autograd; on the CPU without autograd it runs in bands of rows (`_in_bands`), so at 12 MP
the temporaries are a few MB each instead of 144 MB. White balance alone has a separate
CPU path, a lookup table (`_apply_gains`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from tools import colorspace as cs
from tools.colorspace import LUMA, linear_to_srgb, luminance, srgb_to_linear, use_cv
from tools.registry import Params, register

Tensor = torch.Tensor

# ----------------------------------------------------------------- shared machinery

_BAND_PIXELS = 1 << 18  # pixels per CPU band: its temporaries stay in cache, and two threads share the work
_SQ3 = math.sqrt(3) / 2
_OPP = torch.tensor([LUMA, (1.0, -0.5, -0.5), (0.0, _SQ3, -_SQ3)], dtype=torch.float64)
_OPP_INV = torch.linalg.inv(_OPP)  # columns: grey (1,1,1), then the RGB step of one unit of a, of b


def _in_bands(fn: Callable[..., Tensor], image: Tensor, *args: Any) -> Tensor:
    """Run a per-pixel map whole (GPU, autograd) or band by band of rows (CPU), clamped to [0,1].

    This clamp is the only one: fused with the copy into the output, it costs no extra pass.
    CPU bands run on the shared threads (`colorspace.in_threads`), each start to end: 12 MP
    saturation 105 -> 68 ms, vibrance 194 -> 120 ms against one band after another on torch's
    pool; the same ops per pixel, so the same result.
    """
    b, _, h, w = image.shape
    rows = max(1, _BAND_PIXELS // (b * w))
    if not use_cv(image) or rows >= h:
        return fn(image, *args).clamp(0, 1)
    out = torch.empty_like(image)

    def band(r: int) -> None:
        with torch.no_grad():  # grad mode is per thread; this path never needs a graph
            torch.clamp(fn(image[:, :, r : r + rows], *args), 0, 1, out=out[:, :, r : r + rows])

    cs.in_threads(band, list(range(0, h, rows)))
    return out


def _chroma(x: Tensor) -> tuple[Tensor, Tensor]:
    """The opponent chroma planes (a, b), each (B,1,H,W)."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return r - 0.5 * (g + b), _SQ3 * (g - b)


def _chroma_rgb(a: Tensor, b: Tensor) -> Tensor:
    """The zero-luma RGB offset of chroma (a, b); add a luma or an image to it."""
    u, v = (_OPP_INV[:, k].to(a).view(1, 3, 1, 1) for k in (1, 2))
    return a * u + b * v


_HUE_STEPS = 1440  # hue tables: 0.25 degree steps


def _hue_table(fn: Callable[[np.ndarray], np.ndarray], like: Tensor) -> Tensor:
    """fn(hue in degrees) sampled for `_by_hue`: two turns, so no modulo per pixel."""
    deg = np.arange(2 * _HUE_STEPS) * (360 / _HUE_STEPS) % 360
    return torch.as_tensor(np.asarray(fn(deg), dtype=np.float64), dtype=like.dtype, device=like.device)


def _by_hue(a: Tensor, b: Tensor, tables: Tensor) -> list[Tensor]:
    """Look up each pixel's opponent hue in each row of (K, 2*_HUE_STEPS) `_hue_table`s.

    Hue is detached: atan2 has no gradient at grey pixels; gradients still flow through
    whatever the looked-up values multiply.
    """
    k = torch.atan2(b.detach(), a.detach()).mul_(_HUE_STEPS / (2 * math.pi)).add_(_HUE_STEPS + 0.5)
    k = k.to(torch.int32).view(-1)
    return [t.index_select(0, k).view_as(a) for t in tables]


def _scale_chroma(x: Tensor, y: Tensor, s: float | Tensor) -> Tensor:
    """y + s*(x - y), s cut per pixel where needed so every channel stays in [0,1].

    y is the luma of x (B,1,H,W, in [0,1]); hue and luma are kept exactly, only the
    distance from grey shrinks for colours that would clip.
    """
    hi = x.amax(1, keepdim=True) - y
    lo = y - x.amin(1, keepdim=True)
    room = torch.minimum((1 - y) / hi.clamp_min(1e-6), y / lo.clamp_min(1e-6))
    f = torch.minimum(room, s) if isinstance(s, Tensor) else room.clamp(max=s)
    return torch.lerp(y, x, f)


def _unchanged(image: Tensor) -> Tensor:
    return image.clone()


# ----------------------------------------------------------------- saturation, vibrance, hue


class Saturation(Params):
    """Make all colours more vivid or more muted; -100 gives black and white."""

    amount: float = Field(
        0.0, ge=-100, le=100, description="-100 = grey (black and white), 0 = unchanged, +100 = twice the colour"
    )


@register(Saturation, family="color", pointwise=True)
def saturation(image: Tensor, p: Saturation) -> Tensor:
    """(B,3,H,W) sRGB in [0,1] -> same. Lightroom's slider: chroma around Rec.709 luma x (1 + amount/100).

    Luma is kept; colours that would clip stop at the gamut edge at their own hue.
    """
    if p.amount == 0:
        return _unchanged(image)
    return _in_bands(_saturate, image, 1 + p.amount / 100)


def _saturate(x: Tensor, s: float) -> Tensor:
    y = luminance(x)
    if s <= 1:  # a blend toward grey never leaves the cube
        return torch.lerp(y, x, s)
    return _scale_chroma(x, y, s)


class Vibrance(Params):
    """Boost muted colours more than already vivid ones, sparing skin tones; negative mutes gently."""

    amount: float = Field(0.0, ge=-100, le=100, description="-100 = mute dull colours, 0 = unchanged, +100 = strong boost")


_SKIN_HUE, _SKIN_HALF_WIDTH, _SKIN_GUARD = 25.0, 40.0, 0.6


@register(Vibrance, family="color", pointwise=True)
def vibrance(image: Tensor, p: Vibrance) -> Tensor:
    """(B,3,H,W) sRGB in [0,1] -> same. Lightroom-like vibrance, never clips a colour.

    Per pixel the chroma scale is 1 + v*(1 - c), v = amount/100, c = max(RGB) - min(RGB):
    grey-ish pixels get the full change, fully saturated ones none. On a boost, hues near
    skin (a cos^2 bump centred on 25 deg, zero beyond +-40 deg) get 60% less.
    """
    if p.amount == 0:
        return _unchanged(image)
    guard = _hue_table(_skin_guard, image)[None] if p.amount > 0 else None
    return _in_bands(_vibrance, image, p.amount / 100, guard)


def _skin_guard(deg: np.ndarray) -> np.ndarray:
    d = np.abs((deg - _SKIN_HUE + 180) % 360 - 180) / _SKIN_HALF_WIDTH
    return 1 - _SKIN_GUARD * np.cos(np.minimum(d, 1) * np.pi / 2) ** 2


def _vibrance(x: Tensor, v: float, guard: Tensor | None) -> Tensor:
    y = luminance(x)
    s = (x.amax(1, keepdim=True) - x.amin(1, keepdim=True)).neg_().add_(1).mul_(v)
    if guard is not None:
        s = s * _by_hue(*_chroma(x), guard)[0]
    return _scale_chroma(x, y, s.add_(1))


class Hue(Params):
    """Shift every colour around the colour wheel (e.g. +30: reds turn orange, blues turn purple)."""

    degrees: float = Field(
        0.0, ge=-180, le=180, description="rotation in degrees; + goes red -> yellow -> green -> blue, 0 = unchanged"
    )


@register(Hue, family="color", pointwise=True)
def hue(image: Tensor, p: Hue) -> Tensor:
    """(B,3,H,W) sRGB in [0,1] -> same. Rotates chroma in the (a, b) opponent plane.

    One 3x3 matrix (fast, differentiable) that keeps Rec.709 luma, unlike an HSV rotation
    which keeps V and so turns a dark blue into a glaring yellow. Colours that would clip
    lose saturation at constant hue and luma instead.
    """
    if p.degrees == 0:
        return _unchanged(image)
    if isinstance(p.degrees, Tensor):  # a tensor slider (agent.refine fits it by autograd)
        t = torch.deg2rad(p.degrees.double())
        one, zero, c, s = torch.ones_like(t), torch.zeros_like(t), torch.cos(t), torch.sin(t)
        rot = torch.stack([torch.stack([one, zero, zero]), torch.stack([zero, c, -s]), torch.stack([zero, s, c])])
    else:
        t = math.radians(p.degrees)
        rot = torch.tensor(
            [[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]], dtype=torch.float64
        )
    # The luma row rides along in the same product: rotation keeps luma, one pass gives both.
    m = torch.cat([_OPP_INV @ rot @ _OPP, _OPP[:1]]).to(image)
    return _in_bands(_rotate, image, m)


def _rotate(x: Tensor, m: Tensor) -> Tensor:
    r = torch.einsum("ij,bjhw->bihw", m, x)
    return _scale_chroma(r[:, :3], r[:, 3:], 1.0)


# ----------------------------------------------------------------- white balance

_REF_MIRED = 1e6 / 6504  # D65's colour temperature: slider 0
_MIRED_PER_STEP = 1.5  # temperature +-100 = +-150 mired, about a full CTO / CTB gel
_TINT_DENSITY = 0.2  # tint +-100 = a CC20 magenta / green filter: green x 10^-+0.2
_XYZ_TO_RGB = np.array(  # CIE XYZ -> linear sRGB (D65)
    [[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560], [0.0556434, -0.2040259, 1.0572252]]
)


class WhiteBalance(Params):
    """Make the colours warmer or cooler (temperature) and fix green or magenta casts (tint)."""

    temperature: float = Field(
        0.0, ge=-100, le=100, description="+ = warmer/yellower, - = cooler/bluer; +-100 is about a full CTO/CTB gel"
    )
    tint: float = Field(0.0, ge=-100, le=100, description="+ = more magenta, - = more green (removes a magenta cast)")


@register(WhiteBalance, family="color", pointwise=True, per_channel=True)
def white_balance(image: Tensor, p: WhiteBalance) -> Tensor:
    """(B,3,H,W) sRGB in [0,1] -> same. Von Kries gains in linear light.

    Temperature t re-lights the scene with a blackbody of 1e6/(153.8 + 1.5 t) K instead
    of 6504 K (D65): gains = rgb(that blackbody) / rgb(6504 K blackbody), Planckian locus
    from Kim et al. (2002). Tint multiplies the green gain by 10^(-0.2 tint/100). Gains are
    then normalised so a grey keeps its luminance (Rec.709, linear).
    """
    if p.temperature == 0 and p.tint == 0:
        return _unchanged(image)
    g = torch.as_tensor(white_balance_gains(p.temperature, p.tint), dtype=image.dtype, device=image.device)
    return _apply_gains(image, g.expand(image.shape[0], 3))


def white_balance_gains(temperature: float | Tensor, tint: float | Tensor) -> np.ndarray | Tensor:
    """The (3,) linear-light RGB gains of `white_balance`, grey luminance kept.

    Tensor sliders (agent.refine fits them by autograd) give a float64 tensor of the same gains.
    """
    if isinstance(temperature, Tensor) or isinstance(tint, Tensor):
        t, k = (torch.as_tensor(v, dtype=torch.float64) for v in (temperature, tint))
        g = _planck_rgb(_REF_MIRED + _MIRED_PER_STEP * t) / torch.from_numpy(_planck_rgb(_REF_MIRED))
        g = g * torch.stack([k.new_ones(()), 10 ** (-_TINT_DENSITY * k / 100), k.new_ones(())])
        return g / (g @ torch.tensor(LUMA, dtype=torch.float64))
    g = _planck_rgb(_REF_MIRED + _MIRED_PER_STEP * temperature) / _planck_rgb(_REF_MIRED)
    g[1] *= 10 ** (-_TINT_DENSITY * tint / 100)
    return g / np.dot(LUMA, g)


def _planck_rgb(mired: float | Tensor) -> np.ndarray | Tensor:
    """Linear sRGB of a blackbody at 1e6/mired K, luminance 1 (Kim et al. 2002 cubic fit).

    The 4000 K+ cubic is in 1/T, so it also holds toward infinite temperature (0 mired).
    A float64 tensor `mired` gives a tensor (differentiable); a float, the numpy array.
    """
    u, kelvin = mired * 1e-6, 1e6 / mired
    if kelvin >= 4000:
        x = -3.0258469e9 * u**3 + 2.1070379e6 * u**2 + 0.2226347e3 * u + 0.240390
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    else:
        x = -0.2661239e9 * u**3 - 0.2343589e6 * u**2 + 0.8776956e3 * u + 0.179910
        if kelvin >= 2222:
            y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
        else:
            y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    if isinstance(mired, Tensor):
        return torch.from_numpy(_XYZ_TO_RGB) @ torch.stack([x / y, torch.ones_like(y), (1 - x - y) / y])
    return _XYZ_TO_RGB @ np.array([x / y, 1.0, (1 - x - y) / y])


def _apply_gains(image: Tensor, gains: Tensor) -> Tensor:
    """Multiply linear light by per-image, per-channel gains (B,3).

    torch path: linear_to_srgb(g * srgb_to_linear(x)). CPU path: the same curve, made
    exactly per channel on the 16-bit grid every per-channel op shares and looked up with
    `colorspace.apply_lut` (within 1e-4 of the closed form; no powers per pixel).
    """
    g = gains.view(-1, 3, 1, 1)
    if not use_cv(image):
        return linear_to_srgb(srgb_to_linear(image) * g).clamp(0, 1)
    ramp = torch.linspace(0, 1, cs.LUT_SIZE, dtype=torch.float64)
    tables = linear_to_srgb(srgb_to_linear(ramp) * g.detach().cpu().double().view(-1, 3, 1))
    return cs.apply_lut(image, tables.clamp(0, 1))  # the table is the output: clamping it clamps the image


class AutoWhiteBalance(Params):
    """Remove a colour cast automatically so that neutral greys and whites look neutral."""

    method: Literal["grey_world", "white_patch"] = Field(
        "grey_world",
        description="grey_world: the average colour becomes neutral (busy, colourful scenes); "
        "white_patch: the brightest tones become neutral (scenes with something white or light grey)",
    )
    strength: float = Field(0.0, ge=0, le=1, description="0 = unchanged, 1 = full correction; 0.6-0.8 looks natural")
    percentile: float = Field(
        99.0, ge=90, le=100, description="white_patch only: brightness percentile taken as white; 100 = the brightest pixel"
    )


_STAT_PIXELS = 1 << 16  # statistics from a ~65k-pixel grid: stable, and cheap at 12 MP
_MAX_GAIN = 4.0


@register(AutoWhiteBalance, family="color", pointwise=True, cost=2.0)
def auto_white_balance(image: Tensor, p: AutoWhiteBalance) -> Tensor:
    """(B,3,H,W) sRGB in [0,1] -> same. Per-image gains in linear light, then as white_balance.

    grey_world: gain_c ~ 1 / mean_c over pixels with no clipped channel (>= 0.98);
    white_patch: gain_c ~ 1 / percentile_c (robust to a few clipped highlights).
    Gains are normalised to keep a grey's luminance, capped at 4x, and raised to
    `strength` (0 = identity). Image-dependent, so not a fusable per-channel curve.
    """
    if p.strength == 0:
        return _unchanged(image)
    _, _, h, w = image.shape
    step = max(1, math.ceil(math.sqrt(h * w / _STAT_PIXELS)))
    x = image[:, :, ::step, ::step].clamp(0, 1).flatten(2)  # (B,3,N)
    lin = srgb_to_linear(x)
    if p.method == "grey_world":
        ok = (x.amax(1, keepdim=True) < 0.98).to(lin.dtype)
        n = ok.sum(2)
        stat = torch.where(n > 0, (lin * ok).sum(2) / n.clamp_min(1), lin.mean(2))
    else:
        stat = torch.quantile(lin, p.percentile / 100, dim=2)
    g = _normalise(1 / stat.clamp_min(1e-4)).clamp(1 / _MAX_GAIN, _MAX_GAIN)
    return _apply_gains(image, _normalise(g**p.strength))


def _normalise(g: Tensor) -> Tensor:
    """Scale (B,3) gains so a grey keeps its linear luminance."""
    return g / (g @ torch.tensor(LUMA, dtype=g.dtype, device=g.device))[:, None]


# ----------------------------------------------------------------- HSL bands

BANDS = ("red", "orange", "yellow", "green", "aqua", "blue", "purple", "magenta")
_CENTRES = (0.0, 30.0, 60.0, 120.0, 180.0, 240.0, 270.0, 300.0)  # Lightroom's bands, in degrees
_HUE_PER_STEP = 0.3  # hue slider +-100 = +-30 degrees
_LUM_STOPS = 0.75  # luminance +-100: luma -> luma ** 2^-+0.75 (0 and 1 stay put)
_GREY_GUARD = 0.25  # luminance acts fully from chroma max-min >= 0.25, not at all on greys


def _band(band: str, kind: str) -> Any:
    i = BANDS.index(band)
    nxt, prv = BANDS[(i + 1) % 8], BANDS[i - 1]
    text = {
        "hue": f"shift {band} hues: + toward {nxt}, - toward {prv}; +-100 = +-30 degrees",
        "saturation": f"{band} saturation: -100 = grey, 0 = unchanged, +100 = twice as vivid",
        "luminance": f"{band} brightness: -100 = much darker, +100 = much lighter; greys untouched",
    }[kind]
    return Field(0.0, ge=-100, le=100, description=text)


class HSL(Params):
    """Change the hue, saturation or brightness of one colour range only (e.g. a deeper blue sky)."""

    red_hue: float = _band("red", "hue")
    orange_hue: float = _band("orange", "hue")
    yellow_hue: float = _band("yellow", "hue")
    green_hue: float = _band("green", "hue")
    aqua_hue: float = _band("aqua", "hue")
    blue_hue: float = _band("blue", "hue")
    purple_hue: float = _band("purple", "hue")
    magenta_hue: float = _band("magenta", "hue")
    red_saturation: float = _band("red", "saturation")
    orange_saturation: float = _band("orange", "saturation")
    yellow_saturation: float = _band("yellow", "saturation")
    green_saturation: float = _band("green", "saturation")
    aqua_saturation: float = _band("aqua", "saturation")
    blue_saturation: float = _band("blue", "saturation")
    purple_saturation: float = _band("purple", "saturation")
    magenta_saturation: float = _band("magenta", "saturation")
    red_luminance: float = _band("red", "luminance")
    orange_luminance: float = _band("orange", "luminance")
    yellow_luminance: float = _band("yellow", "luminance")
    green_luminance: float = _band("green", "luminance")
    aqua_luminance: float = _band("aqua", "luminance")
    blue_luminance: float = _band("blue", "luminance")
    purple_luminance: float = _band("purple", "luminance")
    magenta_luminance: float = _band("magenta", "luminance")


@register(HSL, family="color", pointwise=True, cost=3.0)
def hsl(image: Tensor, p: HSL) -> Tensor:
    """(B,3,H,W) sRGB in [0,1] -> same. Lightroom's HSL panel, 8 bands.

    A pixel's opponent hue picks its settings: between two neighbouring band centres
    (0, 30, 60, 120, 180, 240, 270, 300 deg) the weights fall off as cos^2, so they sum
    to 1 everywhere and there are no seams. Hue rotates the chroma, saturation scales
    it, luminance bends the luma (see _LUM_STOPS), weighted by colourfulness.
    """
    vals = np.array([[getattr(p, f"{b}_{k}") for k in ("hue", "saturation", "luminance")] for b in BANDS])
    if not vals.any():
        return _unchanged(image)

    def per_hue(deg: np.ndarray) -> np.ndarray:
        dh, ds, dl = (_band_weights(deg) @ (vals * [_HUE_PER_STEP, 0.01, 0.01])).T
        turn = np.deg2rad(dh)
        return np.stack([(1 + ds) * np.cos(turn), (1 + ds) * np.sin(turn), dl * -_LUM_STOPS])

    return _in_bands(_hsl, image, _hue_table(per_hue, image), bool(vals[:, 2].any()))


def _band_weights(deg: np.ndarray) -> np.ndarray:
    """(N, 8) weights of each band at hue `deg`: cos^2 falloff between adjacent centres."""
    c = np.array([*_CENTRES, 360.0])
    k = np.clip(np.searchsorted(c, deg % 360, side="right") - 1, 0, 7)
    t = (deg % 360 - c[k]) / (c[k + 1] - c[k])
    w = np.zeros((len(deg), 8))
    w[np.arange(len(deg)), k] = np.cos(t * np.pi / 2) ** 2
    w[np.arange(len(deg)), (k + 1) % 8] += np.sin(t * np.pi / 2) ** 2
    return w


def _hsl(x: Tensor, tables: Tensor, bends_luma: bool) -> Tensor:
    y = luminance(x)
    a, b = _chroma(x)
    kc, ks, stops = _by_hue(a, b, tables)  # chroma rotation+scale as (kc, ks); luma exponent
    a2 = torch.addcmul(a * kc, b, ks, value=-1)
    b2 = torch.addcmul(b * kc, a, ks)
    if bends_luma:
        colourful = (x.amax(1, keepdim=True) - x.amin(1, keepdim=True)).div_(_GREY_GUARD).clamp_(max=1)
        y = y.clamp(1e-6, 1) ** torch.exp2(stops * colourful)
    return _scale_chroma(_chroma_rgb(a2, b2).add_(y), y, 1.0)


# ----------------------------------------------------------------- split toning, black and white

_TONE_CHROMA = 0.3  # opponent chroma added at saturation 100 (a pure red has 1.0)
_HUE_HELP = "degrees: 0 red, 30 orange, 60 yellow, 120 green, 180 aqua/teal, 220 blue, 270 purple, 300 magenta"


class SplitToning(Params):
    """Tint the shadows and the highlights with two colours (split toning / colour grading), e.g. teal and orange."""

    shadow_hue: float = Field(220.0, ge=0, le=360, description=f"colour of the shadow tint, {_HUE_HELP}")
    shadow_saturation: float = Field(0.0, ge=0, le=100, description="strength of the shadow tint; 0 = none")
    highlight_hue: float = Field(40.0, ge=0, le=360, description=f"colour of the highlight tint, {_HUE_HELP}")
    highlight_saturation: float = Field(0.0, ge=0, le=100, description="strength of the highlight tint; 0 = none")
    balance: float = Field(
        0.0, ge=-100, le=100, description="+ lets the highlight tint reach into darker tones, - the shadow tint into lighter"
    )


@register(SplitToning, family="color", pointwise=True)
def split_toning(image: Tensor, p: SplitToning) -> Tensor:
    """(B,3,H,W) sRGB in [0,1] -> same. Lightroom's split toning; luma is kept.

    Highlight weight w = smoothstep(luma ** 2^(-balance/50)), shadow weight 1 - w; each
    adds chroma saturation/100 * 0.3 in the direction of its hue in the opponent plane.
    Pure black and pure white stay neutral (no room for colour there).
    """
    if p.shadow_saturation == 0 and p.highlight_saturation == 0:
        return _unchanged(image)
    tints = [
        (_TONE_CHROMA * sat / 100 * math.cos(math.radians(h)), _TONE_CHROMA * sat / 100 * math.sin(math.radians(h)))
        for h, sat in ((p.shadow_hue, p.shadow_saturation), (p.highlight_hue, p.highlight_saturation))
    ]
    return _in_bands(_split_tone, image, tints, 2 ** (-p.balance / 50))


def _split_tone(x: Tensor, tints: list[tuple[float, float]], gamma: float) -> Tensor:
    (sa, sb), (ha, hb) = tints
    y = luminance(x)
    t = y.clamp(1e-6, 1) ** gamma if gamma != 1 else y
    w = t * t * (3 - 2 * t)
    da, db = w * (ha - sa) + sa, w * (hb - sb) + sb
    return _scale_chroma(_chroma_rgb(da, db).add_(x), y, 1.0)


class BlackAndWhite(Params):
    """Convert to black and white, choosing how light each colour turns (like colour filters on B&W film)."""

    red: float = Field(
        21.26, ge=-100, le=200, description="% of red in the grey; raise it (lower blue) for a red filter: darker sky"
    )
    green: float = Field(71.52, ge=-100, le=200, description="% of green in the grey; raise it for lighter foliage")
    blue: float = Field(7.22, ge=-100, le=200, description="% of blue in the grey; raise it for a lighter sky")
    strength: float = Field(
        0.0, ge=0, le=1, description="1 = fully black and white, 0 = unchanged; in between keeps some colour"
    )

    @model_validator(mode="after")
    def _mix_is_positive(self) -> BlackAndWhite:
        total = self.red + self.green + self.blue
        if total <= 0:
            raise ValueError(f"red + green + blue is {total:g}; make it positive (the mix is scaled to 100%)")
        return self


@register(BlackAndWhite, family="color", pointwise=True)
def black_and_white(image: Tensor, p: BlackAndWhite) -> Tensor:
    """(B,3,H,W) sRGB in [0,1] -> same. A monochrome channel mixer (Photoshop's), normalised.

    grey = (red R + green G + blue B) / (red + green + blue) on the sRGB values; the
    defaults are Rec.709 luma, so strength 1 with them equals saturation -100.
    """
    if p.strength == 0:
        return _unchanged(image)
    w = torch.tensor([p.red, p.green, p.blue], dtype=image.dtype, device=image.device) / (p.red + p.green + p.blue)
    return _in_bands(_mono, image, w, p.strength)


def _mono(x: Tensor, w: Tensor, strength: float) -> Tensor:
    grey = torch.einsum("c,bchw->bhw", w, x).unsqueeze(1).clamp_(0, 1)  # negative weights overshoot
    return torch.lerp(x, grey, strength)


# ----------------------------------------------------------------- a user's .cube look


class Lut3DLook(Params):
    """Apply a colour look from a .cube 3-D LUT file the user gave (`--look`); not for inventing looks."""

    cube: str = Field("", max_length=255, description="file name of the .cube beside the recipe; empty = no look")
    sha256: str = Field("", pattern=r"^([0-9a-f]{64})?$", description="sha256 of the .cube file's bytes")
    interpolation: Literal["trilinear", "tetrahedral"] = Field(
        "tetrahedral", description="between lattice points: tetrahedral (ffmpeg's and Resolve's default) or trilinear"
    )
    strength: float = Field(1.0, ge=0, le=1, description="1 = the full look, 0 = unchanged")


@register(Lut3DLook, family="color", pointwise=True, name="lut3d")
def lut3d_look(image: Tensor, p: Lut3DLook) -> Tensor:
    """(B,3,H,W) sRGB in [0,1] -> same, through the LUT kept under `p.sha256` (`tools.lut3d.remember_cube`).

    The agent layer reads the file, checks its hash and hands the bytes over; this op only looks
    the LUT up, so a recipe replays the same pixels or refuses.
    """
    from tools import lut3d
    from tools.registry import ToolError

    if not p.sha256 or p.strength == 0:
        return _unchanged(image)
    lut = lut3d.remembered(p.sha256)
    if lut is None:
        raise ToolError(f"lut3d: the .cube {p.cube!r} (sha256 {p.sha256[:12]}...) is not loaded; "
                        "give it with --look, or keep it beside the recipe", fields=("sha256",))
    out = lut3d.apply_tetrahedral(image, lut) if p.interpolation == "tetrahedral" else lut3d.apply(image, lut)
    return out if p.strength == 1 else torch.lerp(image, out, p.strength)
