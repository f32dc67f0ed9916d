"""Goals: an instruction turned into named intents and measurable targets on the image's stats.

``parse_goal("brighten it and fix the blue cast, a bit more contrast", stats)`` splits
the instruction into clauses, maps each to intents (see ``agent/intents.py``), settles
ambiguous ones with the measurements ("fix the exposure" on a dark photo means
brighten) and turns every intent into targets on ``tools.analysis.Stats`` fields,
computed from the ORIGINAL's stats. Clauses it cannot map are listed in
``Goal.unmapped``: reported, never silently turned into edits.

Target table (m = the original's value of the metric in question, d = degree: 0.5 "a
bit", 1, 2 "much"; guard targets, weight 0.5, keep an edit from fixing one thing by
breaking another). Targets on one metric from several intents are intersected.

================== ================================================================
intent             targets
================== ================================================================
brighten           mean_L in [min(m+8d, max(70, m+2)), max(75, low+4)];
                   "+N stops": mean_L = L*(Y(m) * 2**N) +- 3 (mean luminance scaled),
                   "N% brighter": the same with a ratio 1 + N/100;
                   guard: clipped highlights <= max(2, m+0.5) %
darken             mirror of brighten: mean_L in [min(20, high-4), max(m-8d, min(30, m-2))];
                   guard: clipped shadows <= max(2, m+0.5) %
fix_exposure       mean_L in [45, 62]; guards: clipped highlights <= 2 %,
                   clipped shadows <= max(2, m) %. Named brighten/darken when m is outside
more_contrast      rms_contrast in [m(1+.75r), m(1+1.5r)] (at least 15 % wide, at most 0.5)
                   when a percentage is asked, else in [lo, max(0.32, 1.15 lo)],
                   r = 0.2d or the "N%" asked;
                   without a percentage at least min(m+0.03d, 0.18); guards: clipping
                   <= max(3, m+1) % at both ends
less_contrast      rms_contrast in [m(1-1.5r), m(1-.75r)]
warmer / cooler    cast_b moved by 6d b* units: in [b+4.2d, b+9.6d] (cooler: negated)
neutralize_cast    cast <= 3 (a*/b* of near-neutral pixels, hypot)
more_saturation    mean_saturation in [m(1+.75r), m(1+1.6r)], r = 0.25d or "N%";
                   without a percentage at least m+0.02d
less_saturation    mean_saturation in [m(1-1.5r), m(1-.75r)]
black_and_white    mean_saturation <= 0.02; guard: colorfulness <= 3
denoise            noise_sigma <= m * max(0.25, 1-0.4d)  (60 % of the original at d=1)
sharpen            sharpness >= m(1+0.3d)   (variance of Laplacian)
soften             sharpness <= m(1-0.3 min(d, 2))
dehaze             rms_contrast >= m(1+0.15d); guards: p05_L <= max(p05-5d, min(p05, 5)),
                   colorfulness >= m(1+0.1d)
lift_shadows       p05_L >= min(p05+6d, max(30, p05+1)); guards: clipped shadows
                   <= max(0.5, m/2) %, p95_L <= p95+3
recover_highlights clipped highlights <= min(2, max(0.3, 0.4m)) %; guards: p99_L <= p99-2d,
                   mean_L >= m-8
match_reference    from the reference's stats: mean_L +-4, cast_a/cast_b +-3,
                   mean_saturation and rms_contrast +-15 % (at least +-0.03 / +-0.02)
fix_color          neutralize_cast when cast >= 3, more_saturation when the colours are
                   dull (mean_saturation < 0.12), else neutralize_cast
enhance            "restore this photo", "make it better": what the measurements flag
                   (``_restore`` below), each no further than the evidence allows:
                   the light's cast (illuminant_a/b, the part four estimates agree on)
                   at 3 or more: illuminant_a/b within +-1.5 (neutralize_cast);
                   a lifted black point (p01_L > 15: haze, a faded or flat print):
                   set_levels, p01_L <= 8 and, when dim, p99_L >= 80;
                   else exposure when the white point (p99_L toward 85) and the mean
                   (mean_L toward 48) both say so, by the smaller of the two changes:
                   mean_L = L*(Y(m) * 2**stops) +- 3; rms_contrast < 0.14 (gentle
                   more_contrast) and dull colour (mean_saturation < 0.12) when no
                   levels are set; > 3 % clipped highlights (recover);
                   noise_sigma > 0.02: denoise (degree 1), else blockiness > 1.4: deblock;
                   blur_sigma > 1.05: deblur
low_light          "this night shot is too dark": p99_L = L*(Y(p99) * 2**stops) -6..+3, stops what puts
                   the white point (p99_L) at 85, + 0.2, within 1 to 4; noise_sigma <= 0.6 m 2**(stops/2), weight 0.5 (brightening by 2.5
                   stops multiplied the measured noise by 2.2-2.9 on train photos): the planner
                   exposes, then denoises, the neural denoiser first
upscale            width = f x the original's +- 0.5 px, f = 4 for "4x", "four times", "for print",
                   else 2 (the planner's upscale picks the neural or the Lanczos method); while
                   sessions keep the original's size (SIZE_FIXED) a note says how to upscale instead
deblur             (measurement only) blur_sigma <= 0.8 + 0.6 (m - 0.8): one unsharp mask
                   solved from the measured blur, last, weaker with noise (agent/offline.py)
deblock            (measurement only) blockiness <= 1 + 0.9 (m - 1), weight 0.5: one
                   edge-preserving smoothing pass, first
set_levels         (measurement only) p01_L <= 8 when over 15; p99_L >= 80 when under
                   80: the black and white points of a veiled photo, which the planner
                   sets in one levels call
================== ================================================================

Numbers in ``_restore`` come from clean photos: the clean skimage colour photos
(astronaut, coffee, chelsea, rocket) have p01_L 0-13, p99_L 72-95, mean_L 26-50,
and read a light's cast under 3 except chelsea (6.8); benchmarks/restore_diag.py shows, per restore
case, where the dB go. Blur and blocking: 16 clean skimage photos at 128 px read blur_sigma
0.44-0.91 and blockiness 0.96-1.35 (the motion-blurred clock reads 1.31 and is sharpened).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, model_validator

from agent import intents as _intents
from agent import lexicon as _lexicon
from agent import natural as _natural
from agent import wishes as _wishes
from agent.options import Budget

if TYPE_CHECKING:
    from tools.analysis import Stats

# metric -> (absolute scale, relative scale, name): distance = gap / max(abs, rel*|bound|),
# so one "unit" of distance is a comparable, clearly visible miss on every metric.
METRICS: dict[str, tuple[float, float, str]] = {
    "width": (100.0, 0.0, "width"),
    "height": (100.0, 0.0, "height"),
    "mean_L": (10.0, 0.0, "mean L*"),
    "median_L": (10.0, 0.0, "median L*"),
    "p01_L": (10.0, 0.0, "1st percentile L*"),
    "p05_L": (10.0, 0.0, "5th percentile L*"),
    "p95_L": (10.0, 0.0, "95th percentile L*"),
    "p99_L": (10.0, 0.0, "99th percentile L*"),
    "clipped_shadows_pct": (2.0, 0.0, "clipped shadows %"),
    "clipped_highlights_pct": (2.0, 0.0, "clipped highlights %"),
    "rms_contrast": (0.05, 0.0, "RMS contrast"),
    "colorfulness": (10.0, 0.0, "colourfulness"),
    "cast_a": (5.0, 0.0, "cast a*"),
    "cast_b": (5.0, 0.0, "cast b*"),
    "cast": (5.0, 0.0, "colour cast"),
    "mean_saturation": (0.1, 0.0, "mean saturation"),
    "noise_sigma": (0.002, 0.5, "noise sigma"),
    "sharpness": (1e-9, 0.5, "sharpness"),
    "dynamic_range": (1.0, 0.0, "dynamic range (stops)"),
    "illuminant_a": (5.0, 0.0, "the light's cast a*"),
    "illuminant_b": (5.0, 0.0, "the light's cast b*"),
    "blur_sigma": (0.1, 0.0, "blur (px)"),
    "blockiness": (0.5, 0.0, "JPEG blockiness"),
    "ssim_ref": (0.05, 0.0, "SSIM to the reference"),
    "delta_e_ref": (3.0, 0.0, "mean deltaE to the reference"),
}
# pairs of intents that cannot both hold: of the two, the one asked later wins
_PAIRS = [("brighten", "darken"), ("more_contrast", "less_contrast"), ("warmer", "cooler"),
          ("more_saturation", "less_saturation"), ("sharpen", "soften"),
          ("black_and_white", "more_saturation")]
OPPOSITE: dict[str, set[str]] = {}
for _a, _b in _PAIRS:
    OPPOSITE.setdefault(_a, set()).add(_b)
    OPPOSITE.setdefault(_b, set()).add(_a)
EXPOSURE_OK = (45.0, 62.0)
CAST_OK = 3.0
# Blind restoration ("restore this photo"): where clean photos lie (see the module doc).
BLACK_OK = 15.0  # p01_L above this (clean photos: 13 at most): a veil (haze, fading) lifted the blacks
BLACK_AIM = 8.0  # ... brought down to at most this
WHITE_AIM = 80.0  # p99_L below this, with a veil: the white point was pulled down too; raised to it
EXPOSE_WHITE = 85.0  # exposure that puts the white point here (mid of clean photos: 72-95) ...
EXPOSE_MEAN = 48.0  # ... and the one that puts the mean here (26-50): the smaller change of the two
EXPOSE_MIN = 1 / 3  # stops: smaller exposure changes (under a camera's smallest step) are left alone
LIGHT_OK = 1.5  # the light's cast, a*/b*, left after a correction
LIGHT_MIN = 3.0  # the light's cast, a* or b*, from which a blind goal corrects it ...
LIGHT_SHARE = 0.5  # ... by this share of it: about half the casts read at 3+ on restore cases were real
BLUR_MIN = 1.05  # blur_sigma (px) from which a blind goal sharpens: clean photos read 0.44-0.91 ...
BLUR_CLEAN = 0.8  # ... the bundled ones ~0.8: the blur beyond this is the photo's own defect
BLUR_KEEP = 0.6  # share of the excess blur the target leaves (one deconvolving sharpen removes ~70%)
BLOCK_MIN = 1.4  # blockiness from which a blind goal deblocks: clean photos read at most 1.35
NOISE_MIN = 0.02  # noise_sigma from which a blind goal denoises


def _fmt(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 1:
        return f"{x:.1f}".removesuffix(".0")
    return f"{x:.3g}"


def lstar(y: float) -> float:
    """CIE L* (0-100) of a relative luminance Y in [0, 1]."""
    y = min(max(y, 0.0), 1.0)
    return 116.0 * y ** (1 / 3) - 16.0 if y > 216 / 24389 else y * 24389 / 27


def luminance_of(lstar_value: float) -> float:
    """Relative luminance Y in [0, 1] of a CIE L* value."""
    value = min(max(lstar_value, 0.0), 100.0)
    return ((value + 16.0) / 116.0) ** 3 if value > 8 else value * 27 / 24389


class Target(BaseModel):
    """One measurable wish: a metric of the edited image and the range it should land in."""

    metric: str = Field(description="a Stats field name, or ssim_ref / delta_e_ref")
    op: Literal["between", ">=", "<="]
    low: float | None = None
    high: float | None = None
    label: str = ""
    weight: float = Field(1.0, gt=0, le=10)
    intent: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Target:
        if self.metric not in METRICS and _local_info(self.metric) is None:
            raise ValueError(f"unknown metric {self.metric!r}; use one of {', '.join(METRICS)}")
        need = {"between": ("low", "high"), ">=": ("low",), "<=": ("high",)}[self.op]
        for name in need:
            if getattr(self, name) is None:
                raise ValueError(f"target on {self.metric} with op {self.op!r} needs {name}")
        if self.op == "between" and self.low > self.high:  # type: ignore[operator]
            raise ValueError(f"target on {self.metric}: low {self.low} > high {self.high}")
        if not self.label:
            self.label = self.describe()
        return self

    def describe(self) -> str:
        name = (METRICS.get(self.metric) or _local_info(self.metric))[2]  # type: ignore[index]
        if self.op == "between":
            return f"{name} between {_fmt(self.low)} and {_fmt(self.high)}"  # type: ignore[arg-type]
        bound = self.low if self.op == ">=" else self.high
        return f"{name} {self.op} {_fmt(bound)}"  # type: ignore[arg-type]

    @property
    def bounds(self) -> tuple[float, float]:
        lo = self.low if self.op in ("between", ">=") and self.low is not None else -math.inf
        hi = self.high if self.op in ("between", "<=") and self.high is not None else math.inf
        return lo, hi

    def met(self, value: float) -> bool:
        lo, hi = self.bounds
        return lo <= value <= hi

    def distance(self, value: float) -> float:
        """0 when met; otherwise the gap in units of the metric's scale (1 = a clear miss)."""
        lo, hi = self.bounds
        if value < lo:
            gap, bound = lo - value, lo
        elif value > hi:
            gap, bound = value - hi, hi
        else:
            return 0.0
        absolute, relative, _ = METRICS.get(self.metric) or _local_info(self.metric)  # type: ignore[misc]
        return gap / max(absolute, relative * abs(bound))

    def check(self, values: Stats | Mapping[str, float]) -> dict[str, Any]:
        """label, metric, op, low, high, value, met, distance: one row of a progress report."""
        v = value_of(values, self.metric)
        return {"label": self.label, "metric": self.metric, "op": self.op, "low": self.low,
                "high": self.high, "value": v, "met": self.met(v), "distance": self.distance(v)}


def value_of(values: Stats | Mapping[str, float], metric: str) -> float:
    """A metric from a Stats object or a plain mapping (which may add ssim_ref, delta_e_ref)."""
    v = values.get(metric) if isinstance(values, Mapping) else getattr(values, metric, None)
    if v is None:
        raise KeyError(f"no value for metric {metric!r}: measure it (tools.analysis.measure) "
                       "or pass it in the mapping")
    return float(v)


class Intent(BaseModel):
    """One thing the user asked for, where it came from and how sure the parser is."""

    name: str
    degree: float = Field(1.0, gt=0, le=8, description="0.5 a bit, 1 default, 2 much")
    source: Literal["embedding", "keyword", "rule", "measurement", "llm"]
    confidence: float = Field(1.0, ge=0, le=1)
    clause: str = ""
    stops: float | None = Field(None, description="exact exposure change asked, in stops")
    percent: float | None = Field(None, description="relative change asked, in percent")
    region: str | None = Field(None, description="a named region the edit is limited to: face, sky")
    argument: str | None = Field(None, description="a direct wish's exact edit: look name, crop ratio W:H, "
                                 "rotation in degrees clockwise, flip axis (agent.wishes)")
    box: tuple[float, float, float, float] | None = Field(
        None, description="x, y, w, h of the object to remove, fractions of width and height")
    steps: list[dict[str, Any]] | None = Field(
        None, description="the learned prior's steps for this wish (agent/natural.py): the planner's first try")
    aim: dict[str, float | tuple[float, float]] | None = Field(
        None, description="metric -> the value the prior's steps reach on the preview (target +- NATURAL_TOL) "
                          "or the (low, high) range they may reach")


class Goal(BaseModel):
    """Instruction text + intents + measurable targets + the structure lock and the budget."""

    instruction: str
    intents: list[Intent] = Field(default_factory=list)
    targets: list[Target] = Field(default_factory=list)
    reference: str | None = None
    lock: float = Field(0.80, ge=0, le=1, description="minimum SSIM to the original")
    budget: Budget = Field(default_factory=Budget)
    unmapped: list[str] = Field(default_factory=list)
    parser: Literal["embedding", "keyword"] = "embedding"
    notes: list[str] = Field(default_factory=list)

    def check(self, values: Stats | Mapping[str, float]) -> list[dict[str, Any]]:
        return [t.check(values) for t in self.targets]

    def met(self, values: Stats | Mapping[str, float]) -> bool:
        return all(t.met(value_of(values, t.metric)) for t in self.targets)

    def distance(self, values: Stats | Mapping[str, float]) -> float:
        """Weighted sum of target distances: 0 when every target is met."""
        return sum(t.weight * t.distance(value_of(values, t.metric)) for t in self.targets)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> Goal:
        return cls.model_validate_json(text)


# --- intents -> targets -------------------------------------------------------------------


def _t(metric: str, lo: float | None, hi: float | None, intent: str, weight: float = 1.0,
       label: str = "") -> Target:
    op = "between" if lo is not None and hi is not None else (">=" if lo is not None else "<=")
    t = Target(metric=metric, op=op, low=lo, high=hi, intent=intent, weight=weight)
    if label:
        t.label = f"{t.label} ({label})"
    return t


def _rel(intent: Intent, per_degree: float) -> tuple[float, str]:
    """The relative change r asked: "N%" exactly, else per_degree * degree."""
    if intent.percent is not None:
        return intent.percent / 100.0, f"{_fmt(intent.percent)}% {'less' if 'less' in intent.name else 'more'} than the original's"
    return per_degree * intent.degree, "from the original's"


def _exposure_targets(s: Any, name: str) -> list[Target]:
    return [
        _t("mean_L", *EXPOSURE_OK, name),
        _t("clipped_highlights_pct", None, 2.0, name, 0.5),
        _t("clipped_shadows_pct", None, max(2.0, s.clipped_shadows_pct) if s else 2.0, name, 0.5),
    ]


def targets_for(intent: Intent, s: Any, ref: Any = None) -> list[Target]:
    """The targets of one intent, computed from the original's stats `s` (see the module table)."""
    n, d = intent.name, intent.degree
    if n in GAN_TARGETS:  # face generator edits: the face's attribute score must move (tools/gan)
        metric, low, high = GAN_TARGETS[n]
        return [_t(metric, None if low is None else low * d, None if high is None else high * d, n)]
    local = _local_targets(intent)
    if local is not None:
        return local
    if n in ("fix_exposure",):
        return _exposure_targets(s, n)
    if n == "neutralize_light":
        out = []
        for axis in "ab":
            v = getattr(s, f"illuminant_{axis}", 0.0)
            if abs(v) > LIGHT_OK:
                keep = v * (1 - LIGHT_SHARE)
                out.append(_t(f"illuminant_{axis}", keep - LIGHT_OK, keep + LIGHT_OK, "neutralize_cast",
                              label=f"{LIGHT_SHARE:.0%} of {_fmt(v)} removed"))
        return out
    if n == "deblur":
        m = s.blur_sigma
        return [_t("blur_sigma", None, BLUR_CLEAN + BLUR_KEEP * (m - BLUR_CLEAN), n,
                   label=f"{1 - BLUR_KEEP:.0%} of the blur over {_fmt(BLUR_CLEAN)} px removed")]
    if n == "deblock":
        m = s.blockiness
        # A guard's weight: one smoothing pass lowers it a little, a later sharpen raises it a little.
        return [_t("blockiness", None, 1 + 0.9 * (m - 1), n, 0.5, label=f"down from {_fmt(m)}")]
    if n == "set_levels":
        out = [_t("p01_L", None, BLACK_AIM, n, label=f"down from {_fmt(s.p01_L)}")]
        if s.p99_L < WHITE_AIM:
            out.append(_t("p99_L", WHITE_AIM, None, n, label=f"up from {_fmt(s.p99_L)}"))
        return out
    if n == "neutralize_cast":
        if intent.degree < 1:  # unasked ("enhance"): halve it; a warm scene reads as a cast
            return [_t("cast", None, max(CAST_OK, s.cast * (1 - intent.degree)), n, label="reduced")]
        return [_t("cast", None, CAST_OK, n)]
    if n == "black_and_white":
        return [_t("mean_saturation", None, 0.02, n), _t("colorfulness", None, 3.0, n, 0.5)]
    if n == "natural":  # the prior's correction (agent/natural.py): where its steps land, within tolerance
        return [_t(k, *(v if isinstance(v, tuple) else (v - NATURAL_TOL[k], v + NATURAL_TOL[k])), n,
                   label="the learned prior's correction") for k, v in (intent.aim or {}).items()]
    if n == "match_reference":
        if ref is None:
            return []
        sat, con = ref.mean_saturation, ref.rms_contrast
        why = "the reference's"
        return [_t("mean_L", ref.mean_L - 4, ref.mean_L + 4, n, label=why),
                _t("cast_a", ref.cast_a - 3, ref.cast_a + 3, n, label=why),
                _t("cast_b", ref.cast_b - 3, ref.cast_b + 3, n, label=why),
                _t("mean_saturation", max(0.0, sat - max(0.03, 0.15 * sat)),
                   sat + max(0.03, 0.15 * sat), n, label=why),
                _t("rms_contrast", max(0.0, con - max(0.02, 0.15 * con)),
                   con + max(0.02, 0.15 * con), n, label=why)]
    if s is None:
        return []
    m = s.mean_L
    if n in ("brighten", "darken") and (intent.stops is not None or intent.percent is not None):
        if intent.stops is not None:
            ratio, why = 2.0 ** intent.stops, f"{intent.stops:+g} stop from {_fmt(m)}"
        else:  # "10% brighter": the mean luminance scaled by 1.1
            p = intent.percent / 100.0  # type: ignore[operator]
            ratio = 1 + p if n == "brighten" else max(0.05, 1 - p)
            why = f"{intent.percent:g}% {'more' if n == 'brighten' else 'less'} light than {_fmt(m)}"
        goal = lstar(luminance_of(m) * ratio)
        return [_t("mean_L", max(0.0, goal - 3), min(100.0, goal + 3), n, label=why)]
    if n == "brighten":
        lo = min(m + 8 * d, max(70.0, m + 2))
        return [_t("mean_L", lo, max(75.0, lo + 4), n, label=f"up from {_fmt(m)}"),
                _t("clipped_highlights_pct", None, max(2.0, s.clipped_highlights_pct + 0.5), n, 0.5)]
    if n == "darken":
        hi = max(m - 8 * d, min(30.0, m - 2))
        return [_t("mean_L", min(20.0, hi - 4), hi, n, label=f"down from {_fmt(m)}"),
                _t("clipped_shadows_pct", None, max(2.0, s.clipped_shadows_pct + 0.5), n, 0.5)]
    if n in ("more_contrast", "less_contrast", "dehaze"):
        c = s.rms_contrast
        r, why = _rel(intent, 0.15 if n == "dehaze" else 0.2)
        why = f"{why} {_fmt(c)}"
        if n == "less_contrast":
            r = min(r, 0.6)
            return [_t("rms_contrast", c * (1 - 1.5 * r), c * (1 - 0.75 * r), n, label=why)]
        lo = c * (1 + (1.0 if n == "dehaze" else 0.75) * r)
        if n == "dehaze":
            p05 = s.p05_L
            return [_t("rms_contrast", lo, None, n, label=why),
                    _t("p05_L", None, max(p05 - 5 * d, min(p05, 5.0)), n, 0.5),
                    _t("colorfulness", s.colorfulness * (1 + 0.1 * d), None, n, 0.5)]
        if intent.percent is None:
            lo = max(lo, min(c + 0.03 * d, 0.18))
        # Without a number asked, only harsh contrast caps it: fixing the exposure of a dark
        # photo raises its contrast too, and "more contrast" must never end in less.
        hi = min(0.5, max(c * (1 + 1.5 * r), lo * 1.15)) if intent.percent is not None else max(0.32, lo * 1.15)
        return [_t("rms_contrast", lo, max(hi, lo + 1e-3), n, label=why),
                _t("clipped_highlights_pct", None, max(3.0, s.clipped_highlights_pct + 1), n, 0.5),
                _t("clipped_shadows_pct", None, max(3.0, s.clipped_shadows_pct + 1), n, 0.5)]
    if n in ("warmer", "cooler"):
        b = s.cast_b
        step = 6.0 * (intent.percent / 20.0 if intent.percent is not None else d)
        why = f"from {_fmt(b)}"
        if n == "warmer":
            return [_t("cast_b", b + 0.7 * step, b + 1.6 * step, n, label=why)]
        return [_t("cast_b", b - 1.6 * step, b - 0.7 * step, n, label=why)]
    if n in ("more_saturation", "less_saturation"):
        sat = s.mean_saturation
        r, why = _rel(intent, 0.25)
        why = f"{why} {_fmt(sat)}"
        if n == "less_saturation":
            r = min(r, 0.6)
            return [_t("mean_saturation", sat * (1 - 1.5 * r), sat * (1 - 0.75 * r), n, label=why)]
        lo = sat * (1 + 0.75 * r)
        if intent.percent is None:
            lo = max(lo, sat + 0.02 * d)
        lo = min(lo, sat + 0.5 * (1 - sat))  # a photo near full saturation: half of what is left
        return [_t("mean_saturation", lo, max(lo, min(1.0, max(sat * (1 + 1.6 * r), lo + 0.02))), n,
                   label=why)]
    if n == "low_light":
        stops = night_stops(s)
        # steered by the white point, as estimated: a dark photo's mean L* sits among clipped
        # blacks and does not scale with the light (a -3 EV shot at L* 4 read 25, not 32, at +4 EV)
        goal = lstar(luminance_of(s.p99_L) * 2.0**stops)
        # 6 L* short is allowed: colourful highlights clip a channel before the luminance says so
        return [_t("p99_L", max(0.0, goal - 6), min(100.0, goal + 3), n,
                   label=f"{stops:+.1f} stops from {_fmt(s.p99_L)}"),
                _t("noise_sigma", None, NIGHT_NOISE_KEEP * s.noise_sigma * 2.0 ** (stops / 2), n, 0.5,
                   label=f"{NIGHT_NOISE_KEEP:.0%} of what brightening alone leaves")]
    if n == "upscale":
        f = _intents.upscale_factor(intent.clause)
        return [_t("width", f * s.width - 0.5, f * s.width + 0.5, n, label=f"{f}x of {s.width} px")]
    if n == "denoise":
        f = max(0.25, 1 - 0.4 * d)
        return [_t("noise_sigma", None, s.noise_sigma * f, n,
                   label=f"{f:.0%} of the original's {_fmt(s.noise_sigma)}")]
    if n == "sharpen":
        return [_t("sharpness", s.sharpness * (1 + 0.3 * d), None, n,
                   label=f"+{0.3 * d:.0%} over the original's")]
    if n == "soften":
        return [_t("sharpness", None, s.sharpness * (1 - 0.3 * min(d, 2.0)), n)]
    if n == "lift_shadows":
        p05 = s.p05_L
        return [_t("p05_L", min(p05 + 6 * d, max(30.0, p05 + 1)), None, n,
                   label=f"up from {_fmt(p05)}"),
                _t("clipped_shadows_pct", None, max(0.5, s.clipped_shadows_pct / 2), n, 0.5),
                _t("p95_L", None, min(100.0, s.p95_L + 3), n, 0.5)]
    if n == "recover_highlights":
        clip = s.clipped_highlights_pct
        return [_t("clipped_highlights_pct", None, min(2.0, max(0.3, 0.4 * clip)), n),
                _t("p99_L", None, s.p99_L - 2 * d, n, 0.5),
                _t("mean_L", m - 8, None, n, 0.5)]
    return []


def merge_targets(targets: list[Target]) -> tuple[list[Target], list[str]]:
    """One target per metric: ranges intersected; on a clash the heavier (then earlier) wins."""
    merged: dict[str, Target] = {}
    clashes: list[str] = []
    for t in sorted(targets, key=lambda t: -t.weight):
        have = merged.get(t.metric)
        if have is None:
            merged[t.metric] = t
            continue
        (lo1, hi1), (lo2, hi2) = have.bounds, t.bounds
        lo, hi = max(lo1, lo2), min(hi1, hi2)
        if lo > hi:
            if t.weight >= 1:
                clashes.append(f"'{t.label}' conflicts with '{have.label}'; kept the latter")
            continue
        merged[t.metric] = _t(t.metric, None if lo == -math.inf else lo,
                              None if hi == math.inf else hi, have.intent or "",
                              max(have.weight, t.weight))
        merged[t.metric].label = f"{merged[t.metric].label} ({have.intent} + {t.intent})"
    first: dict[str, int] = {}
    for i, t in enumerate(targets):
        first.setdefault(t.metric, i)
    return sorted(merged.values(), key=lambda t: first[t.metric]), clashes


# --- parsing ------------------------------------------------------------------------------


def wish_names() -> dict[str, str]:
    """What a language model may answer a clause with: the intents and the looks, with their meaning."""
    from agent.looks import looks

    skip = {"match_reference", "remove_object", "enhance"}
    return {**{n: d for n, d in _intents.INTENTS.items() if n not in skip},
            **{f"look:{n}": look.description for n, look in looks().items()}}


HOLD_L = 1.5  # L* units an intent the user refused may drift ("not brighter": mean L* <= original + 1.5)
HOLD_REL = 0.04  # other metrics: 4 % of the original's value


def _held(name: str, clause: str, s: Any) -> list[Target]:
    """Targets that keep what the user refused from happening: each metric the refused intent would
    move stays on the original's side of it, within a small tolerance ("not brighter": mean L*
    may not rise). Intents whose targets need no stats, or have none, hold nothing measurable."""
    if s is None or name not in INTENTS_WITH_TARGETS:
        return []
    out = []
    for t in targets_for(Intent(name=name, source="rule"), s):
        if "@" in t.metric:
            continue
        v = value_of(s, t.metric)
        tol = HOLD_L if t.metric.endswith("_L") else HOLD_REL * max(abs(v), 1e-3)
        if t.low is not None and t.low > v:  # the refused intent would raise it
            out.append(_t(t.metric, None, v + tol, f"not_{name}", label=f"not {name}: '{clause}'"))
        elif t.high is not None and t.high < v:  # ... or lower it
            out.append(_t(t.metric, v - tol, None, f"not_{name}", label=f"not {name}: '{clause}'"))
    return out


INTENTS_WITH_TARGETS = {"brighten", "darken", "more_contrast", "less_contrast", "warmer", "cooler",
                        "more_saturation", "less_saturation", "sharpen", "soften", "lift_shadows",
                        "recover_highlights"}


NATURAL_TOL = {"mean_L": 2.5, "cast_a": 2.0, "cast_b": 2.0, "rms_contrast": 0.012, "mean_saturation": 0.02}


def _aim(nat: _natural.Natural, steps: list[dict[str, Any]], metrics: tuple[str, ...]) -> dict[str, float]:
    after = nat.stats if steps == nat.steps() else nat.stats_after(steps)
    return {k: round(float(getattr(after, k)), 4) for k in metrics}


def _by_prior(intent: Intent, s: Any, nat: _natural.Natural | None) -> list[tuple[Intent, str]] | None:
    """Intents the prior gives a magnitude (agent/natural.py); None: the rules decide."""
    if nat is None or s is None:
        return None
    n, c = intent.name, nat.correction
    measured = {"source": "measurement"}
    if n == "enhance":
        return _blind(intent, s, nat)
    exposure = n in ("brighten", "darken") and intent.stops is None and intent.percent is None and not intent.region
    if n == "fix_exposure" or exposure:
        if n == "fix_exposure":
            if abs(c.stops) < _natural.EXPOSURE_OK_STOPS:
                return []  # the prior finds the exposure right: nothing to fix (said in the notes)
            direction, degree = math.copysign(1.0, c.stops), 1.0
        else:
            direction, degree = (1.0 if n == "brighten" else -1.0), intent.degree
        stops = round(_natural.exposure_stops(c.stops, direction, degree), 2)
        steps = [{"tool": "exposure", "params": {"stops": stops}}]
        name = "brighten" if stops > 0 else "darken"
        # any planner's way there counts: from half to one and a half times the stops (within the band)
        ends = [_aim(nat, [{"tool": "exposure", "params": {"stops": x}}], ("mean_L",))["mean_L"]
                for x in _natural.exposure_range(stops, degree)]
        inner, outer = ends  # the smaller change's landing is the bound nearest the original: no slack there
        slack = NATURAL_TOL["mean_L"] / 2
        aim = {"mean_L": (inner, outer + slack) if stops > 0 else (outer - slack, inner)}
        return [(intent.model_copy(update={"name": name, "stops": stops, "steps": steps, "aim": aim, **measured}),
                 "natural")]
    return None


def _blind(intent: Intent, s: Any, nat: _natural.Natural) -> list[tuple[Intent, str]]:
    """A blind restore: each fault read by the estimator that reads it best on held-out photos.

    The prior reads exposure, noise and blur better than the measured rules (evals/prior_train.py
    --report) and abstains on tint, contrast, saturation and levels (its shrink factors are 0):
    exposure (and its white balance, where the rules see no light cast) comes from the prior, at
    `BLIND_STRENGTH`; a lifted black point, the light's cast, flat contrast and dull colour from
    the rules (`_restore`); denoise and deblur only when the prior sees the noise or blur too.
    """
    c = nat.correction
    rules = [(i, k) for i, k in _restore(intent, s)
             if k not in ("fix_exposure", "recover_highlights") and i.name not in ("brighten", "darken")
             and (k != "denoise" or c.noise >= _natural.NOISE_SEEN)
             and (k != "deblur" or c.blur >= _natural.BLUR_SEEN)]
    kinds = {k for _, k in rules}
    tools = tuple(t for t in _natural.TONE_TOOLS
                  if not (t == "white_balance" and "neutralize_light" in kinds)  # the measured cast decides
                  and not (t in ("exposure", "levels") and "set_levels" in kinds))  # a veiled photo: levels first
    steps = nat.steps(tools, _natural.BLIND_STRENGTH)
    if not steps:
        return rules or [(intent.model_copy(update={"source": "measurement"}), "enhance")]
    metrics = ("mean_L",) + (("cast_a", "cast_b") if any(x["tool"] == "white_balance" for x in steps) else ())
    metrics += tuple(m for t, m in (("contrast", "rms_contrast"), ("saturation", "mean_saturation"))
                     if any(x["tool"] == t for x in steps))
    update = {"name": "restore", "steps": steps, "aim": _aim(nat, steps, metrics), "source": "measurement"}
    return [(intent.model_copy(update=update), "natural"), *rules]


def _resolve(intent: Intent, s: Any, nat: _natural.Natural | None = None) -> list[tuple[Intent, str]]:
    """Settle intents whose direction depends on the photo: (intent as named, target kind)."""
    by_prior = _by_prior(intent, s, nat)
    if by_prior is not None:
        return by_prior
    n = intent.name
    if n == "bluer" and not intent.region:  # "bluer" with no region named: the whole photo cooler
        return [(intent.model_copy(update={"name": "cooler"}), "cooler")]
    if s is None:
        if n == "fix_color":
            return [(intent.model_copy(update={"name": "neutralize_cast"}), "neutralize_cast")]
        if n == "enhance":
            return [(intent.model_copy(update={"name": k}), k)
                    for k in ("fix_exposure", "neutralize_cast")]
        return [(intent, n)]
    measured = {"source": "measurement"}
    if n == "fix_exposure":
        m = s.mean_L
        name = "brighten" if m < EXPOSURE_OK[0] else "darken" if m > EXPOSURE_OK[1] else n
        return [(intent.model_copy(update={"name": name, **measured}), "fix_exposure")]
    if n == "fix_color":
        name = "more_saturation" if s.cast < CAST_OK and s.mean_saturation < 0.12 else "neutralize_cast"
        return [(intent.model_copy(update={"name": name, **measured}), name)]
    if n == "enhance":
        found = _restore(intent, s)
        return found or [(intent.model_copy(update=measured), "enhance")]
    return [(intent, n)]


def _stops_to(lightness: float, goal: float) -> float:
    """Exposure change, in stops, that moves L* `lightness` to `goal` (luminance scaled)."""
    return math.log2(max(luminance_of(goal), 1e-4) / max(luminance_of(lightness), 1e-4))


# Every version of an edit session keeps the original's size (agent/state.py refuses a tool that
# changes it: masks, the lock and the preview/full-size replay assume it), so an upscale wish is
# a direct wish, done after the measured edits (agent/wishes.py), not a target; the width target
# and the planner's upscale strategy (agent/offline.py) are there for when sessions allow a size change.
SIZE_FIXED = True
NOISE_LOCK_SLOPE = 11.0  # structure lost per unit of measured noise sigma ...
NOISE_LOCK_CLEAN = 0.008  # ... above what clean photos read
NOISE_LOCK_MIN = 0.3


def noise_lock(noise_sigma: float) -> float:
    """The structure lock a denoise goal can keep: what the clean photo itself would score.

    The lock compares with the noisy original, whose noise is structure a clean version
    loses: camera-like noise on six train photos (512 px) put the clean photo at 0.87-0.93
    of the noisy one at sigma 0.02, 0.52-0.67 at 0.055, 0.37-0.53 at 0.085; this line is
    under all 24 of those points. A denoise stronger than the truth still fails it.
    """
    return min(1.0, max(NOISE_LOCK_MIN, 1 - NOISE_LOCK_SLOPE * (noise_sigma - NOISE_LOCK_CLEAN)))


NIGHT_MAX_STOPS = 4.0  # the exposure tool's bound: one step
NIGHT_BIAS = 0.2  # stops the white point's estimate fell short by on train photos
NIGHT_NOISE_KEEP = 0.6  # low_light: the noise left, as a share of what the exposure alone would leave


def night_stops(s: Any) -> float:
    """Stops a dark shot needs: what puts its white point (p99_L) at 85, plus 0.2, within 1 to 4.

    On 16 train photos (256 px) darkened by 2, 3 and 4 EV with camera noise, the white
    point's estimate was off by -0.22 stops on average (rms 0.46), the mean's (mean_L
    toward 48) by +0.06 (rms 0.90), their average by rms 0.62.
    """
    return min(NIGHT_MAX_STOPS, max(1.0, _stops_to(s.p99_L, EXPOSE_WHITE) + NIGHT_BIAS))


def _restore(intent: Intent, s: Any) -> list[tuple[Intent, str]]:
    """The unasked fixes of a blind goal, each as far as the measurements give evidence for.

    Each fix needs evidence that clean photos rarely show, and goes no further than
    the evidence: the light's cast only where four estimates of it agree
    (`tools.analysis._illuminant`; a warm scene under white light reads ~0); levels
    only for a lifted black point; exposure only when the white point and the mean
    agree on the direction, by the smaller of their two changes (a low-key photo has
    a low mean but a normal white point). Earlier, gentle fixes of everything (degree
    0.5, no cast) left hazy, flat and cast photos far from clean (see the README's Evals).
    """
    measured = {"source": "measurement"}
    gentle = {**measured, "degree": 0.5}

    def make(name: str, kind: str | None = None, **update: Any) -> tuple[Intent, str]:
        return intent.model_copy(update={"name": name, **measured, **update}), kind or name

    found: list[tuple[Intent, str]] = []
    light = (getattr(s, "illuminant_a", 0.0), getattr(s, "illuminant_b", 0.0))
    if max(abs(light[0]), abs(light[1])) >= LIGHT_MIN:
        found.append(make("neutralize_cast", "neutralize_light"))
    veiled = s.p01_L > BLACK_OK
    if veiled:
        found.append(make("set_levels"))
    else:
        by_white = _stops_to(s.p99_L, EXPOSE_WHITE)
        by_mean = _stops_to(s.mean_L, EXPOSE_MEAN)
        if by_white * by_mean > 0 and min(abs(by_white), abs(by_mean)) >= EXPOSE_MIN:
            stops = math.copysign(min(abs(by_white), abs(by_mean)), by_mean)
            found.append(make("brighten" if stops > 0 else "darken", stops=round(stops, 2)))
    if s.clipped_highlights_pct > 3 and not any(k in ("darken", "set_levels") for _, k in found):
        found.append(make("recover_highlights", **gentle))
    checks = [("more_contrast", s.rms_contrast < 0.14 and not veiled),
              ("more_saturation", s.mean_saturation < 0.12 and s.colorfulness > 3 and not veiled)]
    found += [make(k, **gentle) for k, bad in checks if bad]
    if s.noise_sigma > NOISE_MIN:
        found.append(make("denoise"))
    elif getattr(s, "blockiness", 1.0) > BLOCK_MIN:  # a denoise smooths blocks too
        found.append(make("deblock"))
    if getattr(s, "blur_sigma", 0.0) > BLUR_MIN:
        found.append(make("deblur"))
    return found


# --- region intents (masks and inpainting) --------------------------------------------------
# brighten/darken with a region -> dL@<region> (mean L* change inside the session mask of that
# name, which the planner makes with mask_faces / mask_sky) moved by 6d..6d+12 L*;
# remove_defects -> defects_left <= 0.3 (find_defects' share of the original's);
# remove_object  -> changed@x,y,w,h >= 3 (mean |delta L*| inside the box: something was removed).
_LOCAL = {"dL": (5.0, 0.0, "L* change in the {}"), "db": (5.0, 0.0, "b* change in the {} (below 0: bluer)"), "changed": (3.0, 0.0, "L* change inside box {}"),
          "defects_left": (0.3, 0.0, "dust and scratches left (share of the original's)"),
          "gan_smile": (0.5, 0.0, "smile score change of the {}"),
          "gan_eyeglasses": (1.0, 0.0, "eyeglasses score change of the {}"),
          "gan_lighting": (0.05, 0.0, "lighting change of the {} (0-1 luma)")}
# intent -> (metric, low, high) per unit degree, in tools.gan.attributes' score units: about 0.5 std
# each, except eyeglasses at 1 std (2.5 on the probe's logit): at half that the frames are faint.
GAN_TARGETS = {"smile": ("gan_smile@face", 0.6, None), "add_glasses": ("gan_eyeglasses@face", 2.5, None),
               "remove_glasses": ("gan_eyeglasses@face", None, -2.5),
               "face_lighting": ("gan_lighting@face", 0.05, None)}


def _local_info(metric: str) -> tuple[float, float, str] | None:
    base, _, where = metric.partition("@")
    info = _LOCAL.get(base)
    return None if info is None else (info[0], info[1], info[2].format(where))


def _local_targets(intent: Intent) -> list[Target] | None:
    n, d = intent.name, intent.degree
    if n == "remove_defects":
        return [_t("defects_left", None, 0.3, n)]
    if n == "remove_object":
        if intent.box is None:
            return []
        return [_t("changed@" + ",".join(f"{v:.4f}" for v in intent.box), 3.0, None, n)]
    if intent.region and n == "bluer":  # b* down by 6-16 per degree inside the region
        return [_t(f"db@{intent.region}", -(6 * d + 10), -6 * d, n)]
    if intent.region and n in ("brighten", "darken"):
        lo, hi = 6 * d, 6 * d + 12
        return [_t(f"dL@{intent.region}", *((lo, hi) if n == "brighten" else (-hi, -lo)), n)]
    return None


def _fraction_box(box: tuple[float, ...] | None, stats: Any, size: tuple[int, int] | None,
                  ) -> tuple[float, float, float, float] | None:
    """A box from the text as fractions: numbers <= 1 are fractions already, else pixels of the original."""
    if box is None:
        return None
    if all(v <= 1 for v in box):
        return tuple(box)  # type: ignore[return-value]
    w, h = size or ((stats.width, stats.height) if stats is not None else (0, 0))
    if not w or not h:
        return None
    x, y, bw, bh = box
    fx, fy = min(max(x / w, 0.0), 1.0), min(max(y / h, 0.0), 1.0)
    return (fx, fy, min(bw / w, 1.0 - fx), min(bh / h, 1.0 - fy))


def parse_goal(
    text: str,
    stats: Stats | None = None,
    *,
    reference_stats: Stats | None = None,
    reference: str | None = None,
    lock: float = 0.8,
    budget: Budget | None = None,
    image_size: tuple[int, int] | None = None,
    mapper: Callable[[str], list[str]] | None = None,
    natural: Callable[[], _natural.Natural | None] | None = None,
) -> Goal:
    """Everyday instruction -> Goal with intents and targets computed from the original's stats.

    `mapper` (e.g. `agent.local_llm.wish_mapper`) reads the clauses nothing else could read: it
    answers with names from `wish_names()`, intents or looks.

    Without `stats` only absolute targets are set (exposure range, cast, monochrome);
    relative ones ("brighter", "more contrast") need the original's measurements.
    `image_size`: (width, height) of the full-size original, for pixel boxes in the text
    ("remove the object at 120,80,60,40"); default: the measured image's size.
    `natural`: gives the learned prior's view of the original (`agent.natural.natural_of`), called
    only when an intent needs a magnitude from it; without it the rules set every magnitude.
    """
    usable = _intents.embedder_available()
    loaded: list[_intents.Embedder | None] = []

    def model() -> _intents.Embedder | None:  # loaded only if a clause needs it
        loaded.append(_intents.embedder())
        return loaded[-1]
    notes: list[str] = []
    if not usable:
        why = _intents.embedder_problem() or "not loaded"
        notes.append(f"embedding model unavailable ({why}); keyword parser used")
    lang, english = _lexicon.gloss(text)
    if lang != "en":
        notes.append(f"read as: {english} ({_lexicon.NAMES[lang]} phrase table)")
    clauses = _intents.split_clauses(english)
    if not clauses:
        clauses = ["enhance"]
        notes.append("empty instruction: general enhancement by measurement")
    matches: list[_intents.Match] = []
    unmapped: list[str] = []
    previous = None
    refused: dict[str, str] = {}  # intent -> the clause that said "not"
    direct = [w for w in [_wishes.find_look(text) or _wishes.find_look(english)] if w is not None]
    vocabulary = _wishes.look_vocabulary(direct[0].argument) if direct else set()
    for clause in clauses:
        framing = _wishes.find_framing(clause)
        if framing is not None:
            direct.append(framing)
            continue
        if vocabulary and (set(re.findall(r"[a-z]+", clause)) <= vocabulary or _wishes.find_look(clause)):
            continue  # the look's clause, or only its words ("high key, bright and airy"): the look says it all
        rest = _intents.negated(clause)
        if rest is not None:
            m = _intents.match_clause(rest, None, model if usable else None)
            for name in m.intents if m is not None else ():
                refused.setdefault(name, clause)
            if m is None or not m.intents:
                notes.append(f"'{clause}': read as 'leave it as it is' (no edit, no target)")
            continue
        m = _intents.match_clause(clause, previous, model if usable else None)
        if m is None and mapper is not None:
            named = mapper(clause)
            for name in [n[5:] for n in named if n.startswith("look:")][:1]:
                direct.append(_wishes.Wish("look", name, 1.0, clause))
            picked = tuple(n for n in named if n in _intents.INTENTS)
            if picked:
                m = _intents.Match(clause, picked, "llm", 0.6, _intents.degree_of(clause)[0])
            elif named:
                continue
        if m is None:
            unmapped.append(clause)
        elif not m.intents:
            notes.append(f"'{clause}': read as 'leave it as it is' (no edit, no target)")
        else:
            matches.append(m)
            previous = m

    if usable and loaded and loaded[-1] is None:  # it failed to load when a clause needed it
        usable = False
        why = _intents.embedder_problem() or "not loaded"
        notes.insert(0, f"embedding model unavailable ({why}); keyword parser used")

    nat_cache: list[_natural.Natural | None] = []

    def nat() -> _natural.Natural | None:
        if natural is not None and not nat_cache:
            nat_cache.append(natural())
        return nat_cache[0] if nat_cache else None

    resolved: list[tuple[Intent, str]] = []
    for m in matches:
        for name in m.intents:
            intent = Intent(name=name, degree=m.degree, source=m.source,
                            confidence=min(1.0, m.confidence), clause=m.clause,
                            stops=m.stops if name in ("brighten", "darken") else None,
                            percent=m.percent, region=m.region if name in ("brighten", "darken", "bluer") else None,
                            box=_fraction_box(m.box, stats, image_size) if name == "remove_object" else None)
            got = _resolve(intent, stats, nat() if _natural.wants(name) else None)
            if not got:
                notes.append(f"'{m.clause}': the learned prior finds the {name.replace('_', ' ')} already natural")
            resolved += got

    # one intent per name (the strongest degree); of two opposites the later wins
    kept: dict[str, tuple[Intent, str]] = {}
    for intent, kind in resolved:
        where = f"@{intent.region}" if intent.region else ""  # "brighten the face, darken the sky": no clash
        for other in {o + where for o in OPPOSITE.get(intent.name, set())} & kept.keys():
            notes.append(f"'{intent.clause}' ({intent.name}) overrides '{kept[other][0].clause}' "
                         f"({other})")
            del kept[other]
        have = kept.get(intent.name + where)
        if have is None or intent.degree > have[0].degree or intent.stops is not None:
            kept[intent.name + where] = (intent, kind)

    if direct and unmapped and direct[0].kind == "look":
        notes.append(f"read as part of the {direct[0].argument} look: {'; '.join(unmapped)}")
        unmapped = []
    for key, (intent, kind) in list(kept.items()):
        if kind == "upscale" and SIZE_FIXED:  # 2x or 4x, as the words say
            kept[key] = (intent.model_copy(update={"argument": str(_intents.upscale_factor(intent.clause))}), kind)
    for w in direct:
        kept[w.label] = (Intent(name=w.kind, argument=w.argument, degree=w.degree, source="rule",
                                clause=w.clause), "direct")
    targets: list[Target] = []
    for key in [k for k, (i, _) in kept.items() if i.name in refused]:
        notes.append(f"'{kept[key][0].clause}' ({kept[key][0].name}) dropped: '{refused[kept[key][0].name]}'")
        del kept[key]
    for name, clause in refused.items():
        targets += _held(name, clause, stats)
    for intent, kind in kept.values():
        if kind == "direct":
            continue  # an exact edit, applied as asked (agent.wishes): nothing to measure
        if kind == "upscale" and SIZE_FIXED:
            continue  # an exact enlargement after the measured edits (agent.wishes): nothing to measure
        got = targets_for(intent.model_copy(update={"name": kind}), stats, reference_stats)
        for t in got:
            t.intent = intent.name
        targets += got
        if kind == "match_reference" and reference_stats is None:
            unmapped.append(f"{intent.clause} (no reference image was measured: nothing to match)")
        elif kind == "enhance":
            notes.append("enhance: the measurements show nothing to fix")
        elif not got:
            notes.append(f"{intent.name}: targets need the original's measurements (no stats given)")
    targets, clashes = merge_targets(targets)
    if stats is not None and any(i.name in ("denoise", "low_light") for i, _ in kept.values()):
        night = next((i for i, _ in kept.values() if i.name == "low_light"), None)
        # the lock is gain-invariant: after brightening by `stops` the noise it sees is ~2**(stops/2) larger
        relaxed = noise_lock(stats.noise_sigma * (2.0 ** (night_stops(stats) / 2) if night else 1.0))
        if relaxed < lock:
            notes.append(f"structure lock {lock:.2f} -> {relaxed:.2f}: the photo's noise ({_fmt(stats.noise_sigma)}) "
                         "is structure the original has and a clean version loses")
            lock = relaxed
    return Goal(instruction=text, intents=[i for i, _ in kept.values()], targets=targets,
                reference=reference, lock=lock, budget=budget or Budget(), unmapped=unmapped,
                parser="embedding" if usable else "keyword", notes=notes + clashes)
