"""The offline planner's strategies: which tool moves which metric, and how its argument is computed.

A `Strategy` maps a target metric to a coordinate in which its tool acts roughly linearly
(exposure: log2 of relative luminance; contrast and saturation: log of the measure; white
balance: b*/a* shift) with a prior gain; agent/offline.py re-fits the gain from what earlier
steps did. `STRATEGIES` lists the generic levers per metric; `NAMED` the strategies an
`IntentSpec.first` may name (agent/intent_spec.py): an intent's own tools, tried first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from agent.protocol import Attempt, PlanState, TargetState
from agent.recipes import BLUR_CLEAN
from agent.targets import luminance_of
from tools.region_metric import GAN_KINDS, MASKED, RegionMetric


def log2_lum(L: float) -> float:
    """Exposure works on light: log2 of the relative luminance Y of an L* value."""
    return math.log2(max(luminance_of(L), 1e-4))


def _ln(x: float) -> float:
    return math.log(max(x, 1e-6))


def _half_ln(x: float) -> float:
    # sharpening scales the Laplacian, whose variance is the sharpness: work in its sqrt
    return 0.5 * _ln(x)


def _same(x: float) -> float:
    return x


class Tried(Protocol):
    """What a strategy reads of the attempts so far (agent.offline.History)."""

    def of(self, tool: str) -> list[Attempt]: ...

    def gain(self, s: Strategy, metric: str) -> float | None: ...

    def cap(self, s: Strategy, metric: str, aim: float, direction: float) -> float: ...


@dataclass(frozen=True)
class Strategy:
    """One way to move one metric: `tool(param = to_arg(delta / gain), **fixed)`.

    `coord` maps the metric into a space where the tool acts about linearly, and
    `gain` is the prior d(coord)/d(step), replaced by the measured one after a
    try; `to_arg`/`from_arg` convert a step to the tool's argument and back when
    the argument is not additive (gamma is a ratio). `min_step`/`max_step` keep a
    step meaningful and moderate (the tool's own bounds apply on top). `build`
    computes the arguments itself when one metric is not enough (white balance
    reads both cast axes). A strategy without `param` is a fixed call.
    """

    tool: str
    stage: int  # photographer's order: 0 light & colour balance .. 5 sharpening
    param: str
    gain: float
    coord: Callable[[float], float] = _same
    min_step: float = 0.0
    max_step: float = math.inf
    fixed: tuple[tuple[str, Any], ...] = ()
    to_arg: Callable[[float], float] = _same
    from_arg: Callable[[float], float] = _same
    build: Callable[[PlanState, Tried, float], dict[str, Any]] | None = None
    extra: Callable[[PlanState], dict[str, Any]] | None = None  # arguments read off the photo

    def on(self, gain: float, coord: Callable[[float], float] = _same) -> Strategy:
        """The same tool and argument steering another metric."""
        return replace(self, gain=gain, coord=coord)


def _white_balance(state: PlanState, hist: Tried, scale: float) -> dict[str, Any]:
    """Temperature and tint that move the measured cast (b*, a*) to where the targets want it.

    Targets on the light's cast (illuminant_a/b) steer the same two sliders; the gain
    is then re-fitted on that metric.
    """
    s = state.stats
    want = {"cast_a": 0.0, "cast_b": 0.0}
    read = {"cast_a": "cast_a", "cast_b": "cast_b"}  # the metric each axis is steered by
    for t in state.targets:
        axis = LIGHT_AXIS.get(t.metric)
        if axis is not None and not t.met:
            want[axis] = aim_of(t, s.get(t.metric, 0.0)) - s.get(t.metric, 0.0)
            read[axis] = t.metric
    for t in state.targets:
        if t.metric in want and not t.met and read[t.metric] == t.metric:
            want[t.metric] = aim_of(t, s.get(t.metric, 0.0)) - s.get(t.metric, 0.0)
        elif t.metric == "cast" and not t.met:
            strength = max(s.get("cast", 0.0), 1e-6)
            keep = min(1.0, aim_of(t, strength) / strength)
            for axis in want:
                want[axis] = want[axis] or -(1 - keep) * s.get(axis, 0.0)
    args = {}
    for axis, lever in (("cast_b", WB_TEMPERATURE), ("cast_a", WB_TINT)):
        metric = read[axis]
        gain = hist.gain(lever, metric) or lever.gain
        step = want[axis] / gain
        if abs(step) >= lever.min_step:
            cap = hist.cap(lever, metric, s.get(metric, 0.0) + want[axis], step)
            args[lever.param] = math.copysign(min(abs(step), lever.max_step, cap), step) * scale
    return args


LIGHT_AXIS = {"illuminant_a": "cast_a", "illuminant_b": "cast_b"}  # the light's cast -> the slider axis


def _srgb_of(lightness: float) -> float:
    """The sRGB-encoded value of a grey of CIE L* `lightness`."""
    y = luminance_of(lightness)
    return 12.92 * y if y <= 0.0031308 else 1.055 * y ** (1 / 2.4) - 0.055


def _levels(state: PlanState, hist: Tried, scale: float) -> dict[str, Any]:
    """Black and white points that put the measured p01_L / p99_L where the targets aim.

    A veil (haze, a faded print, flat contrast) is close to an affine map of the sRGB
    values, which levels invert exactly: solved from the two percentiles as greys, or
    from one with the other end kept. `scale` < 1 (a retry) moves part of the way.
    """
    s = state.stats
    aims = {t.metric: aim_of(t, s.get(t.metric, 0.0)) for t in state.targets
            if t.metric in ("p01_L", "p99_L") and not t.met}
    if not aims:
        return {}
    c1, c99 = _srgb_of(s.get("p01_L", 0.0)), _srgb_of(s.get("p99_L", 100.0))
    if "p01_L" in aims and "p99_L" in aims:
        a1, a99 = _srgb_of(aims["p01_L"]), _srgb_of(aims["p99_L"])
        span = (c99 - c1) / max(a99 - a1, 1e-3)
        black = c1 - a1 * span
        white = black + span
    elif "p01_L" in aims:
        a1 = _srgb_of(aims["p01_L"])
        black, white = max(c1 - a1, 0.0) / max(1 - a1, 1e-3), 1.0
    else:
        black, white = 0.0, c99 / max(_srgb_of(aims["p99_L"]), 1e-3)
    black = min(max(black * scale, 0.0), 0.8)
    white = min(max(1 - (1 - white) * scale, black + 0.1), 1.0)
    if black < 0.004 and white > 0.996:
        return {}
    return {"black": black, "white": white}


def _done(hist: Tried, tool: str, **params: Any) -> bool:
    """True when a call of `tool` with these parameters was already kept: one-shot fixes."""
    return any(a.kept and all(a.params.get(k) == v for k, v in params.items()) for a in hist.of(tool))


def _deblur(state: PlanState, hist: Tried, scale: float) -> dict[str, Any]:
    """One unsharp mask that undoes most of a measured Gaussian blur (blind "restore").

    The excess blur sigma_b = sqrt(blur_sigma^2 - 0.8^2) (0.8 px: clean photos) is
    undone to first order by radius 0.6 sigma_b, amount 5: on skimage photos at 128 px
    with 0.8-1.6 px of blur that gains 3-5 dB PSNR. Noise is sharpened too, so the
    amount falls with the measured noise, 5 (1 - noise / 0.016), to nothing from
    0.016 (the PSNR-best amounts on the same photos with noise added after the blur:
    ~5 at 0.001, 3 at 0.006, 1-2 at 0.011, 0-1 at 0.019); after a denoise or deblock
    it is at most 3 (what is left of the noise or ringing). Once only: the blur
    estimate of a sharpened photo is not worth steering by again.
    """
    if _done(hist, "sharpen"):
        return {}
    blur = state.stats.get("blur_sigma", 0.0)
    excess = math.sqrt(max(blur * blur - BLUR_CLEAN * BLUR_CLEAN, 0.0))
    if excess < 0.3:
        return {}
    cleaned = {str(i.get("name")) for i in state.intents} & {"denoise", "deblock"}
    amount = min(3.0 if cleaned else 5.0, 5.0 * (1 - state.stats.get("noise_sigma", 0.0) / DEBLUR_NOISE))
    if amount < 0.5:
        return {}
    return {"amount": amount * scale, "radius": max(0.3, 0.6 * excess), "threshold": 0.0}


DEBLUR_NOISE = 0.016  # measured noise sigma at which sharpening a blurred photo stops paying


def _deblock(state: PlanState, hist: Tried, scale: float) -> dict[str, Any]:
    """One edge-preserving smoothing pass over JPEG blocks and ringing (bilateral, strength 0.7).

    On skimage photos at 128 px, JPEG quality 15-35: +0.3 to +0.8 dB PSNR; a boundary-only
    deblocking filter removed the grid but gained nothing, the smoothing is what helps.
    """
    if _done(hist, "denoise", method="bilateral"):
        return {}
    return {"method": "bilateral", "strength": 0.7 * scale}


def _sharpen_threshold(state: PlanState) -> dict[str, Any]:
    """When noise matters to the goal, sharpen only edges above twice the noise level."""
    if any(t.metric == "noise_sigma" for t in state.targets):
        return {"threshold": 2.0 * state.stats.get("noise_sigma", 0.0)}
    return {}


def _pow2(x: float) -> float:
    return 2.0**x


def _log2(x: float) -> float:
    return math.log2(max(x, 1e-6))




# Prior gains, measured on skimage sample photos (astronaut, coffee, chelsea, rocket;
# hazy, over- and underexposed variants from tools.degrade) at moderate settings.
# They only need the right sign and order of magnitude: after one try the secant
# through the real before/after metrics replaces them.
EXPOSURE = Strategy("exposure", 0, "stops", 1.0, log2_lum, min_step=0.1, max_step=2.5)
GAMMA = Strategy("gamma", 0, "gamma", 1.2, log2_lum, min_step=0.1, max_step=1.0, to_arg=_pow2,
                 from_arg=_log2)
BRIGHTNESS = Strategy("brightness", 0, "amount", 18.0, min_step=0.05, max_step=0.6)
WB_TEMPERATURE = Strategy("white_balance", 0, "temperature", 0.2, min_step=2.0, max_step=80.0,
                          build=_white_balance)
WB_TINT = Strategy("white_balance", 0, "tint", 0.15, min_step=2.0, max_step=80.0, build=_white_balance)
AUTO_WB = Strategy("auto_white_balance", 0, "", 0.0, fixed=(("method", "grey_world"), ("strength", 0.8)))
SHADOWS = Strategy("shadows_highlights", 1, "shadows", 0.15, min_step=5.0, max_step=70.0)
HIGHLIGHTS = Strategy("shadows_highlights", 1, "highlights", 0.07, min_step=5.0, max_step=70.0)
BLACKS = Strategy("whites_blacks", 1, "blacks", 0.2, min_step=5.0, max_step=60.0)
WHITES = Strategy("whites_blacks", 1, "whites", 0.1, min_step=5.0, max_step=60.0)
DEHAZE = Strategy("dehaze", 1, "amount", 0.5, _ln, min_step=0.1, max_step=0.8)
LEVELS = Strategy("levels", 1, "black", 0.0, build=_levels)
CONTRAST = Strategy("contrast", 2, "amount", 0.0025, _ln, min_step=5.0, max_step=60.0)
CLARITY = Strategy("clarity", 2, "amount", 0.001, _ln, min_step=10.0, max_step=60.0)
SATURATION = Strategy("saturation", 3, "amount", 0.6, _ln, min_step=0.05, max_step=0.7,
                      to_arg=lambda x: 100 * math.expm1(x), from_arg=lambda a: math.log1p(max(a, -99.9) / 100))
VIBRANCE = Strategy("vibrance", 3, "amount", 0.003, _ln, min_step=5.0, max_step=80.0)
MONO = Strategy("black_and_white", 3, "", 0.0, fixed=(("strength", 1.0),))
DENOISE = Strategy("denoise", 4, "strength", -1.5, _ln, min_step=0.1, max_step=0.8)
BLUR = Strategy("blur", 4, "sigma", -3.0, _ln, min_step=0.6, max_step=2.0)
SHARPEN = Strategy("sharpen", 5, "amount", 0.6, _half_ln, min_step=0.2, max_step=2.5, fixed=(("radius", 1.0),),
                   extra=_sharpen_threshold)
DEBLUR = Strategy("sharpen", 5, "amount", 0.0, build=_deblur)
DEBLOCK = Strategy("denoise", 0, "strength", 0.0, build=_deblock)


def _neural_ready(backend: str) -> bool:
    """True when a learned backend loads here (tools/neural.py); else the classical tool is used."""
    from tools import neural

    return neural.problem(backend) is None  # type: ignore[arg-type]


def _neural_denoise(state: PlanState, hist: Tried, scale: float) -> dict[str, Any]:
    """One pass of the neural denoiser (OIDN guided by NLM), all of it; half after a rollback.

    On camera-like noise (train photos, 512 px) it beat the best NLM strength by 1.9 dB, so it
    goes first; a pass the structure lock or the score rejects twice leaves the classical
    strategies to the target, and where OIDN is not installed they are all there is.
    """
    if _done(hist, "denoise", method="neural") or not _neural_ready("oidn"):
        return {}
    return {"method": "neural", "strength": scale, "detail": 0.0}


def _upscale(state: PlanState, hist: Tried, scale: float) -> dict[str, Any]:
    """2x or 4x toward the width asked; Real-ESRGAN where it loads, else Lanczos.

    The network takes ~10 minutes per input megapixel on 2 CPU cores: where it runs past
    the op timeout the strategy is dropped and `resize` (bicubic) enlarges instead.
    """
    ratio = _width_ratio(state)
    if ratio < 1.5:
        return {}
    return {"factor": 4 if ratio > 3 else 2, "method": "neural" if _neural_ready("esrgan") else "lanczos"}


def _enlarge(state: PlanState, hist: Tried, scale: float) -> dict[str, Any]:
    """The fallback: resize by the exact ratio asked (bicubic)."""
    ratio = _width_ratio(state)
    return {"scale": ratio} if ratio >= 1.5 else {}


def _width_ratio(state: PlanState) -> float:
    aim = next((aim_of(t, 0.0) for t in state.targets if t.metric == "width" and not t.met), None)
    width = state.stats.get("width", 0.0)
    return 0.0 if aim is None or width <= 0 else aim / width


NEURAL_DENOISE = Strategy("denoise", 0, "strength", 0.0, build=_neural_denoise)
UPSCALE = Strategy("upscale", 5, "factor", 0.0, build=_upscale)
ENLARGE = Strategy("resize", 5, "scale", 0.0, build=_enlarge)
LOW_LIGHT = Strategy("low_light", 0, "", 0.0, fixed=(("strength", 1.0),))

# Which strategies move which metric, gentlest-that-works first; a strategy that
# cannot move the metric the needed way (sharpen below zero) is skipped by itself.
STRATEGIES: dict[str, tuple[Strategy, ...]] = {
    "mean_L": (EXPOSURE, GAMMA, BRIGHTNESS),
    "median_L": (EXPOSURE, GAMMA, BRIGHTNESS),
    "cast_b": (WB_TEMPERATURE, AUTO_WB),
    "cast_a": (WB_TINT, AUTO_WB),
    "cast": (WB_TEMPERATURE, AUTO_WB),
    "illuminant_b": (WB_TEMPERATURE,),
    "illuminant_a": (WB_TINT,),
    "p01_L": (BLACKS, SHADOWS.on(0.1)),
    "p05_L": (SHADOWS, BLACKS.on(0.15)),
    "clipped_shadows_pct": (BLACKS.on(-0.4), SHADOWS.on(-0.05)),
    "p95_L": (HIGHLIGHTS, WHITES.on(0.1)),
    "p99_L": (WHITES, HIGHLIGHTS.on(0.05)),
    "clipped_highlights_pct": (WHITES.on(1.0), HIGHLIGHTS.on(0.5)),
    "rms_contrast": (CONTRAST, CLARITY),
    "dynamic_range": (CONTRAST.on(0.02),),
    "mean_saturation": (SATURATION, VIBRANCE),
    "colorfulness": (SATURATION.on(1.0, _ln), VIBRANCE.on(0.005, _ln)),
    "noise_sigma": (DENOISE, BLUR),
    "sharpness": (SHARPEN, CLARITY.on(0.006, _half_ln), BLUR.on(-1.3, _half_ln)),
    "blur_sigma": (DEBLUR,),
    "blockiness": (DEBLOCK,),
    "width": (UPSCALE, ENLARGE),
}

# How far inside a one-sided bound to aim: additive for scales, relative for ratios.
MARGIN_ADD = {"mean_L": 3.0, "median_L": 3.0, "p01_L": 2.0, "p05_L": 2.0, "p95_L": 2.0, "p99_L": 2.0,
              "rms_contrast": 0.015, "cast_a": 1.0, "cast_b": 1.0, "cast": 1.0,
              "mean_saturation": 0.02, "colorfulness": 3.0, "dynamic_range": 0.3}
MARGIN_REL = 0.2  # noise, sharpness, clipped percentages: aim 20% past the bound


def aim_of(t: TargetState, current: float) -> float:
    """The value to steer to: the middle of a range, or a margin inside a one-sided bound."""
    lo, hi = t.low, t.high
    if lo is not None and hi is not None:
        return 0.5 * (lo + hi)
    add = MARGIN_ADD.get(t.metric)
    if lo is not None:
        return lo + add if add is not None else lo * (1 + MARGIN_REL) + 1e-6
    if hi is not None:
        return hi - add if add is not None else hi * (1 - MARGIN_REL)
    return current


STRONG_CAST = 12.0  # a*b* units: beyond this a grey-world balance is the first try

# Region targets (agent/recipes.py): remove the defects, remove the object in a box, or move L*
# inside a named mask, which is made first when the session does not have it yet.
REMOVE_DEFECTS = Strategy("remove_defects", 0, "", 0.0, fixed=(("kind", "both"),))
MASK_MAKERS = {"face": "mask_faces", "sky": "mask_sky"}
LOCAL_EXPOSURE = Strategy("exposure", 1, "stops", 15.0, min_step=0.1, max_step=1.5)  # ~15 L* per stop in midtones
LOCAL_COOL = Strategy("white_balance", 1, "temperature", 0.35, min_step=5.0, max_step=80.0)  # ~0.35 b* per unit


# Face generator edits (tools/gan): gains are the directions' measured score change per unit strength.
GAN_EDITS = {f"gan_{d}": Strategy("gan_edit", 0, "strength", g, min_step=2.0, max_step=3.0,
                                  fixed=(("direction", d),))
             for d, g in (("smile", 0.42), ("eyeglasses", 1.5), ("lighting", 0.12))}


def local_strategies(region: RegionMetric, state: PlanState) -> tuple[Strategy, ...]:
    """The strategies for a region target: the edit itself, or first the mask it needs."""
    if region.kind in GAN_KINDS:
        return (GAN_EDITS[region.kind],)
    if region.kind == "defects_left":
        return (REMOVE_DEFECTS,)
    if region.box is not None:
        x, y, w, h = region.box
        return (Strategy("remove_object", 0, "", 0.0, fixed=(("x", x), ("y", y), ("w", w), ("h", h))),)
    if region.kind in MASKED and region.mask:
        where = region.mask
        if where not in state.masks:
            maker = MASK_MAKERS.get(where)
            return (Strategy(maker, 0, "", 0.0, fixed=(("name", where),)),) if maker else ()
        return (replace(LOCAL_EXPOSURE if region.kind == "dL" else LOCAL_COOL, fixed=(("mask", where),)),)
    return ()


# The strategies an intent may try first (`IntentSpec.first` names them): an intent's own tools
# beat the generic levers on its targets (dehaze for a hazy photo's contrast, a monochrome
# conversion for "black and white", a night shot's one big exposure step).
NAMED: dict[str, Strategy] = {
    "dehaze": DEHAZE, "dehaze_blacks": DEHAZE.on(-25.0), "dehaze_colour": DEHAZE.on(0.5, _ln),
    "mono": MONO, "levels": LEVELS,
    "neural_denoise": NEURAL_DENOISE, "denoise_first": replace(DENOISE, stage=0),
    "night_exposure": replace(EXPOSURE, max_step=4.0), "low_light": LOW_LIGHT,
    "neural_denoise_last": replace(NEURAL_DENOISE, stage=4),
}

# Metrics that move together: one call per family per turn, or they over-correct.
FAMILY = {"median_L": "mean_L", "cast_a": "cast", "cast_b": "cast", "illuminant_a": "cast",
          "illuminant_b": "cast", "p01_L": "shadows",
          "p05_L": "shadows", "clipped_shadows_pct": "shadows", "p95_L": "highlights",
          "p99_L": "highlights", "clipped_highlights_pct": "highlights",
          "colorfulness": "mean_saturation", "dynamic_range": "rms_contrast"}

