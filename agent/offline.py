"""The offline planner's policy: measured state in, tool calls with computed arguments out.

`decide(state, tools)` reads one `PlanState` (targets, current stats, the history
of attempts with before/after metrics) and answers with up to three calls, in a
photographer's order: white balance and exposure, then tonal range, contrast,
colour, and detail last (denoise before sharpen). Arguments are computed, not
guessed: each strategy maps a target metric to a coordinate in which its tool
acts roughly linearly (exposure: log2 of relative luminance; contrast and
saturation: log of the measure; white balance: b*/a* shift) with a prior gain.

Feedback: the gain is re-fitted from the last attempt of the same tool (a secant
through its before/after metrics), so an exposure step that moved L* less than
predicted makes the next one bigger; a step that overshot bounds the next one
(bracketing). A step rolled back by the structure lock is retried at half
strength; a call identical to a rolled-back one is never repeated; a target
whose last step lowered the score waits while other targets are tried. A
strategy that failed twice (rolled back, refused, or moved nothing) is dropped;
a target with no strategy left is given up, and when nothing is left to try the
planner says so and stops. Intents pick specialised tools first (dehaze for a
hazy photo's contrast, a monochrome conversion for "black and white").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from agent.goals import luminance_of
from agent.protocol import Attempt, PlanState, TargetState

MAX_FAILURES = 2  # failed attempts after which a strategy is dropped
MAX_USES = 4  # attempts of one tool after which it is dropped whatever they did
NO_CHANGE = "no notable change"  # how the loop reports a step that moved no measurement
LOCK_WORDS = ("lock", "structure similarity")  # how the loop words a structure-lock rollback


@dataclass(frozen=True)
class BoundTool:
    """A tool as the model sees it: its name and JSON-schema properties (bounds included)."""

    name: str
    properties: dict[str, Any] = field(default_factory=dict)

    def fit(self, args: dict[str, Any]) -> dict[str, Any]:
        """Keep only arguments the tool has; clamp numbers into its bounds; round for readability."""
        out: dict[str, Any] = {}
        for key, value in args.items():
            prop = self.properties.get(key)
            if prop is None:
                continue
            if isinstance(value, float):
                lo, hi = _bounds(prop)
                value = min(max(value, lo), hi)
                value = int(round(value)) if prop.get("type") == "integer" else round(value, 3)
            out[key] = value
        return out


@dataclass(frozen=True)
class Call:
    name: str
    args: dict[str, Any]
    why: str = ""


@dataclass(frozen=True)
class Plan:
    text: str
    calls: list[Call]


# ----------------------------------------------------------------------------- strategies


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
    build: Callable[[PlanState, History, float], dict[str, Any]] | None = None
    extra: Callable[[PlanState], dict[str, Any]] | None = None  # arguments read off the photo

    def on(self, gain: float, coord: Callable[[float], float] = _same) -> Strategy:
        """The same tool and argument steering another metric."""
        return replace(self, gain=gain, coord=coord)


def _white_balance(state: PlanState, hist: History, scale: float) -> dict[str, Any]:
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
            want[axis] = _aim(t, s.get(t.metric, 0.0)) - s.get(t.metric, 0.0)
            read[axis] = t.metric
    for t in state.targets:
        if t.metric in want and not t.met and read[t.metric] == t.metric:
            want[t.metric] = _aim(t, s.get(t.metric, 0.0)) - s.get(t.metric, 0.0)
        elif t.metric == "cast" and not t.met:
            strength = max(s.get("cast", 0.0), 1e-6)
            keep = min(1.0, _aim(t, strength) / strength)
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


def _levels(state: PlanState, hist: History, scale: float) -> dict[str, Any]:
    """Black and white points that put the measured p01_L / p99_L where the targets aim.

    A veil (haze, a faded print, flat contrast) is close to an affine map of the sRGB
    values, which levels invert exactly: solved from the two percentiles as greys, or
    from one with the other end kept. `scale` < 1 (a retry) moves part of the way.
    """
    s = state.stats
    aims = {t.metric: _aim(t, s.get(t.metric, 0.0)) for t in state.targets
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


def _done(hist: History, tool: str, **params: Any) -> bool:
    """True when a call of `tool` with these parameters was already kept: one-shot fixes."""
    return any(a.kept and all(a.params.get(k) == v for k, v in params.items()) for a in hist.of(tool))


def _deblur(state: PlanState, hist: History, scale: float) -> dict[str, Any]:
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
    from agent.goals import BLUR_CLEAN

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


def _deblock(state: PlanState, hist: History, scale: float) -> dict[str, Any]:
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


def _neural_denoise(state: PlanState, hist: History, scale: float) -> dict[str, Any]:
    """One pass of the neural denoiser (OIDN guided by NLM), all of it; half after a rollback.

    On camera-like noise (train photos, 512 px) it beat the best NLM strength by 1.9 dB, so it
    goes first; a pass the structure lock or the score rejects twice leaves the classical
    strategies to the target, and where OIDN is not installed they are all there is.
    """
    if _done(hist, "denoise", method="neural") or not _neural_ready("oidn"):
        return {}
    return {"method": "neural", "strength": scale, "detail": 0.0}


def _upscale(state: PlanState, hist: History, scale: float) -> dict[str, Any]:
    """2x or 4x toward the width asked; Real-ESRGAN where it loads, else Lanczos.

    The network takes ~10 minutes per input megapixel on 2 CPU cores: where it runs past
    the op timeout the strategy is dropped and `resize` (bicubic) enlarges instead.
    """
    ratio = _width_ratio(state)
    if ratio < 1.5:
        return {}
    return {"factor": 4 if ratio > 3 else 2, "method": "neural" if _neural_ready("esrgan") else "lanczos"}


def _enlarge(state: PlanState, hist: History, scale: float) -> dict[str, Any]:
    """The fallback: resize by the exact ratio asked (bicubic)."""
    ratio = _width_ratio(state)
    return {"scale": ratio} if ratio >= 1.5 else {}


def _width_ratio(state: PlanState) -> float:
    aim = next((_aim(t, 0.0) for t in state.targets if t.metric == "width" and not t.met), None)
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


def _aim(t: TargetState, current: float) -> float:
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


# ----------------------------------------------------------------------------- history


def kind_of(a: Attempt) -> str:
    """kept | lock (structure lock broken or the naturalness guard vetoed it: too far, a smaller
    step may pass) | score (overall score fell) | error (bad call). The typed `Attempt.kind`
    when the loop set it, else read from the reason."""
    if a.kind is not None:
        return {"naturalness": "lock"}.get(a.kind, a.kind)
    if a.kept:
        return "kept"
    reason = a.reason.lower()
    if not a.after:
        return "error"
    if any(w in reason for w in LOCK_WORDS):
        return "lock"
    return "score"


class History:
    """The attempts the loop reported, read per tool."""

    def __init__(self, attempts: list[Attempt]) -> None:
        self.attempts = attempts

    def of(self, tool: str) -> list[Attempt]:
        return [a for a in self.attempts if a.tool == tool]

    def last_kind(self, tool: str) -> str | None:
        mine = self.of(tool)
        return kind_of(mine[-1]) if mine else None

    def gain(self, s: Strategy, metric: str) -> float | None:
        """d(coord)/d(param) measured by the latest try of the tool (secant), if it is usable."""
        for a in reversed(self.of(s.tool)):
            p = _step_of(s, a)
            if p is None:
                continue
            if metric not in a.before or metric not in a.after:
                return None
            k = (s.coord(a.after[metric]) - s.coord(a.before[metric])) / p
            if k * s.gain <= 0:
                return None  # a wrong-signed secant is noise or clipping: keep the prior
            # One noisy measurement must not make the next step explode or vanish.
            return min(max(k / s.gain, 0.25), 4.0) * s.gain
        return None

    def failures(self, s: Strategy, metric: str, aim: float) -> int:
        """Rolled-back, refused or ineffective tries of this strategy's tool."""
        mine = self.of(s.tool)
        n = max(0, len(mine) - MAX_USES + MAX_FAILURES)  # diminishing returns: stop eventually
        for i, a in enumerate(mine):
            kind = kind_of(a)
            if kind == "error":
                n += MAX_FAILURES  # the tool does not take our arguments: do not insist
            elif kind != "kept" or NO_CHANGE in a.reason:
                n += 1
            elif _step_of(s, a) is None:
                continue
            elif metric in a.before and metric in a.after:
                gap0 = abs(s.coord(a.before[metric]) - s.coord(aim))
                gap1 = abs(s.coord(a.after[metric]) - s.coord(aim))
                n += gap1 > 0.9 * gap0  # kept, but it hardly closed the gap (or overshot far)
            elif i and mine[i - 1].kept and mine[i - 1].params == a.params:
                n += 1  # the same step again: the metric (not reported per step) did not move
        return n

    def cap(self, s: Strategy, metric: str, aim: float, direction: float) -> float:
        """The largest sensible |step| in `direction`, from what earlier steps did.

        Half the step that last broke the structure lock (while the tool has not
        worked since), and 3/4 of the smallest step that overshot the aim: the
        response is often steeper than the secant says once it starts to bite.
        """
        cap = math.inf
        recent = True
        for a in reversed(self.of(s.tool)):
            step = _step_of(s, a)
            if step is None or step * direction <= 0:
                recent = recent and not a.kept
                continue
            if recent and kind_of(a) == "lock":
                cap = min(cap, 0.5 * abs(step))
            if metric in a.before and metric in a.after and \
                    (a.before[metric] - aim) * (a.after[metric] - aim) < 0:
                cap = min(cap, 0.75 * abs(step))
            recent = recent and not a.kept
        return cap

    def repeats(self, tool: str, args: dict[str, Any]) -> bool:
        """True when this exact call was already tried and rolled back."""
        for a in self.of(tool):
            if not a.kept and all(_close(a.params.get(k), v) for k, v in args.items()):
                return True
        return False


def _step_of(s: Strategy, a: Attempt) -> float | None:
    """The step an attempt took on the strategy's argument (None: it did not move it)."""
    value = a.params.get(s.param) if s.param else None
    if not isinstance(value, (int, float)):
        return None
    step = s.from_arg(float(value))
    return step if abs(step) > 1e-6 else None


def _close(x: Any, y: Any) -> bool:
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return abs(x - y) <= 1e-3 * max(1.0, abs(x), abs(y))
    return x == y


def _bounds(prop: dict[str, Any]) -> tuple[float, float]:
    lo = prop.get("minimum", prop.get("exclusiveMinimum", -math.inf))
    hi = prop.get("maximum", prop.get("exclusiveMaximum", math.inf))
    for alt in prop.get("anyOf", []):  # Optional[float] fields carry bounds one level down
        lo = alt.get("minimum", lo)
        hi = alt.get("maximum", hi)
    return lo, hi


# ----------------------------------------------------------------------------- deciding


@dataclass(frozen=True)
class _Proposal:
    target: TargetState
    strategy: Strategy
    call: Call
    deferred: bool  # its last step lowered the score: other targets go first


def decide(state: PlanState, tools: dict[str, BoundTool], max_calls: int = 3) -> Plan:
    """The next one to `max_calls` tool calls, or none with a one-line summary when done."""
    targets = state.targets
    if not targets and state.unmapped:
        return Plan(f"I cannot measure what '{'; '.join(state.unmapped)}' asks for, so I have nothing "
                    "to steer by; rephrase it (e.g. 'brighter', 'warmer', 'more contrast').", [])
    if not targets:
        return Plan("Nothing to do: the measurements show nothing this goal asks to change.", [])
    unmet = [t for t in targets if not t.met]
    if not unmet:
        return Plan(f"All {len(targets)} targets met ({_labels(targets)}); done.", [])
    limit = max_calls if state.steps_left is None else min(max_calls, state.steps_left)
    if limit <= 0:
        return Plan(f"No steps left; {len(targets) - len(unmet)}/{len(targets)} targets met.", [])

    hist = History(state.history)
    prior = _prior_calls(state, tools, hist)
    if prior:  # the learned prior's correction first, whole (agent/natural.py); rules move what it leaves
        prior = prior[: state.steps_left or len(prior)]
        return Plan("; ".join(c.why for c in prior) + ".", prior)
    proposals, given_up = [], []
    for t in unmet:
        p = _propose(t, state, tools, hist)
        if p is None:
            given_up.append(t)
        else:
            proposals.append(p)
    if not proposals:
        return Plan(f"Stopping: nothing I know moves {_labels(given_up)} further (every tool I have for "
                    f"it failed {MAX_FAILURES} times or is not available); "
                    f"{len(targets) - len(unmet)}/{len(targets)} targets met.", [])

    fresh = [p for p in proposals if not p.deferred] or proposals
    stage = min(p.strategy.stage for p in fresh)
    calls: list[Call] = []
    families: set[str] = set()
    for p in fresh:
        family = FAMILY.get(p.target.metric, p.target.metric)
        if p.strategy.stage == stage and family not in families and all(c.name != p.call.name for c in calls):
            calls.append(p.call)
            families.add(family)
    calls = calls[:limit]
    text = "; ".join(c.why for c in calls)
    if given_up:
        text += f". Giving up on {_labels(given_up)}: no tool I have for it is left to try"
    return Plan(text + ".", calls)


def _prior_calls(state: PlanState, tools: dict[str, BoundTool], hist: History) -> list[Call]:
    """The steps the goal's intents carry from the learned prior, each tool's until it was tried once."""
    calls: list[Call] = []
    for intent in state.intents:
        for step in intent.get("steps") or ():
            tool, args = str(step["tool"]), dict(step.get("params", {}))
            if tool in tools and not hist.of(tool) and all(c.name != tool for c in calls):
                calls.append(Call(tool, args, f"{tool} {_fmt(args)}: the learned prior's correction "
                                              f"({intent.get('name')})"))
    return calls


def _propose(t: TargetState, state: PlanState, tools: dict[str, BoundTool], hist: History) -> _Proposal | None:
    current = t.value if t.value is not None else state.stats.get(t.metric)
    if current is None and "@" in t.metric:
        current = 0.0  # a region metric whose mask is not made yet: the strategy makes it
    if current is None:
        return None
    aim = _aim(t, current)
    every = [s for s in _options(t, state) if s.tool in tools]
    options = [s for s in every if hist.failures(s, t.metric, aim) < MAX_FAILURES]
    # A strategy whose last step lowered the score goes behind the others ...
    options.sort(key=lambda s: hist.last_kind(s.tool) == "score")
    # ... and a target whose last step did waits behind the other targets.
    last = next((a for a in reversed(hist.attempts) if a.tool in {s.tool for s in every}), None)
    deferred = last is not None and kind_of(last) == "score"
    for s in options:
        args = _arguments(s, state, t.metric, current, aim, hist, tools[s.tool])
        if args is not None:
            why = f"{s.tool} {_fmt(args)} to move {t.metric} {current:.3g} -> {aim:.3g} ({t.label})"
            return _Proposal(t, s, Call(s.tool, args, why), deferred)
    return None


def _options(t: TargetState, state: PlanState) -> tuple[Strategy, ...]:
    """The strategies for one target, in the order to try them for this goal and photo."""
    base = STRATEGIES.get(t.metric, ()) or _local_strategies(t, state)
    intents = {str(i.get("name")) for i in state.intents}
    first = tuple(x for name in sorted(intents) if t.metric in INTENT_FIRST.get(name, {})
                  for x in _as_tuple(INTENT_FIRST[name][t.metric]))
    if t.metric in ("p01_L", "p05_L") and (t.value or 0.0) < 1.0:
        first += (BLACKS.on(0.2),)  # crushed to black: only raising the black point lifts it
    elif t.metric in ("p95_L", "p99_L") and (t.value or 0.0) > 99.0:
        first += (WHITES.on(0.1),)  # clipped white: only lowering the white point brings it back
    if t.metric in ("cast", "cast_a", "cast_b"):
        if abs(_aim(t, state.stats.get(t.metric, 0.0))) >= 3.0:  # a wanted cast: grey world undoes it
            base = tuple(s for s in base if s.tool != AUTO_WB.tool)
        elif state.stats.get("cast", 0.0) > STRONG_CAST:
            first += (AUTO_WB,)  # a strong cast: grey world first, the sliders to fine-tune
    return first + tuple(s for s in base if s not in first)


STRONG_CAST = 12.0  # a*b* units: beyond this a grey-world balance is the first try

# Region targets (agent/goals.py): remove the defects, remove the object in a box, or move L*
# inside a named mask, which is made first when the session does not have it yet.
REMOVE_DEFECTS = Strategy("remove_defects", 0, "", 0.0, fixed=(("kind", "both"),))
MASK_MAKERS = {"face": "mask_faces", "sky": "mask_sky"}
LOCAL_EXPOSURE = Strategy("exposure", 1, "stops", 15.0, min_step=0.1, max_step=1.5)  # ~15 L* per stop in midtones
LOCAL_COOL = Strategy("white_balance", 1, "temperature", 0.35, min_step=5.0, max_step=80.0)  # ~0.35 b* per unit


# Face generator edits (tools/gan): gains are the directions' measured score change per unit strength.
GAN_EDITS = {f"gan_{d}": Strategy("gan_edit", 0, "strength", g, min_step=2.0, max_step=3.0,
                                  fixed=(("direction", d),))
             for d, g in (("smile", 0.42), ("eyeglasses", 1.5), ("lighting", 0.12))}


def _local_strategies(t: TargetState, state: PlanState) -> tuple[Strategy, ...]:
    base, _, where = t.metric.partition("@")
    if base in GAN_EDITS:
        return (GAN_EDITS[base],)
    if base == "defects_left":
        return (REMOVE_DEFECTS,)
    if base == "changed":
        try:
            x, y, w, h = (float(v) for v in where.split(","))
        except ValueError:
            return ()
        return (Strategy("remove_object", 0, "", 0.0, fixed=(("x", x), ("y", y), ("w", w), ("h", h))),)
    if base in ("dL", "db") and where:
        if where not in state.masks:
            maker = MASK_MAKERS.get(where)
            return (Strategy(maker, 0, "", 0.0, fixed=(("name", where),)),) if maker else ()
        return (replace(LOCAL_EXPOSURE if base == "dL" else LOCAL_COOL, fixed=(("mask", where),)),)
    return ()

def _as_tuple(x: Strategy | tuple[Strategy, ...]) -> tuple[Strategy, ...]:
    return x if isinstance(x, tuple) else (x,)


# Intents whose own tools beat the generic levers on their targets (in the order to try them).
INTENT_FIRST: dict[str, dict[str, Strategy | tuple[Strategy, ...]]] = {
    "dehaze": {"rms_contrast": DEHAZE, "p05_L": DEHAZE.on(-25.0), "p01_L": DEHAZE.on(-25.0),
               "colorfulness": DEHAZE.on(0.5, _ln)},
    "black_and_white": {"mean_saturation": MONO, "colorfulness": MONO},
    "set_levels": {"p01_L": LEVELS, "p99_L": LEVELS},
    # Noise first, as raw converters do: levels and contrast amplify it, and after them a
    # denoise strong enough for the target (relative to the original's noise) breaks the lock.
    "denoise": {"noise_sigma": (NEURAL_DENOISE, replace(DENOISE, stage=0))},
    # A dark shot: exposure first, in one step of up to 4 stops (an exact inverse of too little
    # light, and half-way the noise target is missed while the light is not yet right; Zero-DCE++'s curves
    # scored 9.8 dB against exposure's 22.9 at -3 EV on train photos, so they are the fallback),
    # then the noise that brightening revealed, neural first.
    "low_light": {"p99_L": (replace(EXPOSURE, max_step=4.0), LOW_LIGHT), "noise_sigma": replace(NEURAL_DENOISE, stage=4)},
}

# Metrics that move together: one call per family per turn, or they over-correct.
FAMILY = {"median_L": "mean_L", "cast_a": "cast", "cast_b": "cast", "illuminant_a": "cast",
          "illuminant_b": "cast", "p01_L": "shadows",
          "p05_L": "shadows", "clipped_shadows_pct": "shadows", "p95_L": "highlights",
          "p99_L": "highlights", "clipped_highlights_pct": "highlights",
          "colorfulness": "mean_saturation", "dynamic_range": "rms_contrast"}


def _arguments(s: Strategy, state: PlanState, metric: str, current: float, aim: float,
               hist: History, tool: BoundTool) -> dict[str, Any] | None:
    """Arguments for one strategy (capped by what earlier steps did); None if only repeats remain."""
    step = 0.0
    if s.param and s.build is None:
        gain = hist.gain(s, metric) or s.gain
        step = (s.coord(aim) - s.coord(current)) / gain
        cap = hist.cap(s, metric, aim, step)
        step = math.copysign(min(max(abs(step), s.min_step), s.max_step, cap), step)
    for factor in (1.0, 0.5, 0.25):  # never the exact call that was rolled back
        if s.build is not None:
            raw = s.build(state, hist, factor)
        elif s.param:
            raw = {s.param: s.to_arg(step * factor)}
        else:
            raw = {}
        args = tool.fit({**raw, **dict(s.fixed), **(s.extra(state) if s.extra else {})})
        if s.param and all(_close(args.get(k, s.to_arg(0.0)), s.to_arg(0.0)) for k in raw):
            return None  # nothing left to move: steps below the minimum, or arguments it lacks
        if not hist.repeats(s.tool, args):
            return args
        if not s.param:
            return None
    return None


def _fmt(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:+g}" if isinstance(v, float) else f"{k}={v}" for k, v in args.items()) or "()"


def _labels(targets: list[TargetState]) -> str:
    return ", ".join(t.label or t.metric for t in targets)
