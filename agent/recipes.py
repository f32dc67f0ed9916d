"""Target recipes: how each intent's measurable targets are computed from the original's stats.

A recipe is `(intent, s, ref) -> list[Target]`: `s` the original's `tools.analysis.Stats` (None
when not measured), `ref` the reference's. Each `IntentSpec` (agent/intent_spec.py) names its
recipe; `agent.goals.targets_for` calls it.

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
neutralize_cast    cast_a/b (near-neutral pixels) moved toward 0 by at most 1.5x the light's
                   cast (illuminant_a/b) on that axis, only where it has the same sign, +-1.5;
                   cast >= 12 (nothing neutral to read): no target; unmeasured: cast <= 3
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
                   (``agent.settle.restore``), each no further than the evidence allows:
                   the light's cast (illuminant_a/b, the part four estimates agree on)
                   at 3 or more: illuminant_a/b within +-1.5 (neutralize_cast);
                   a veil (Stats.veil >= 0.07: both tone ends short of black and white,
                   a faded or flat print; a high-key photo's lifted black alone is kept):
                   set_levels, both ends stretched by the veil less 0.02;
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
set_levels         (measurement only) p01_L and p99_L where levels(v, 1 - v) puts them
                   (+-4 from either side), v = Stats.veil - 0.02: the black and white
                   points of a veiled photo, set in one levels call the intent carries
region intents     brighten/darken the face or sky: dL@<region> (mean L* change inside the
                   session mask, made with mask_faces / mask_sky) moved by 6d..6d+12 L*;
                   bluer sky: db@sky in [-(6d+10), -6d]; remove_defects: defects_left <= 0.3
                   (find_defects' share of the original's); remove_object: changed@box >= 3
                   (mean |delta L*| inside the box); face generator edits: the face's score
================== ================================================================

Numbers in ``agent.settle.restore`` come from clean photos: the clean skimage colour photos
(astronaut, coffee, chelsea, rocket) have p01_L 0-13, p99_L 72-95, mean_L 26-50,
and read a light's cast under 3 except chelsea (6.8); benchmarks/restore_diag.py shows, per restore
case, where the dB go. Blur and blocking: 16 clean skimage photos at 128 px read blur_sigma
0.44-0.91 and blockiness 0.96-1.35 (the motion-blurred clock reads 1.31 and is sharpened).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from agent.clauses import upscale_factor
from agent.targets import Intent, Target, fmt, lstar, luminance_of, make_target
from tools.region_metric import RegionMetric

Recipe = Callable[[Intent, Any, Any], list[Target]]  # (intent, original's stats, reference's stats)

EXPOSURE_OK = (45.0, 62.0)
CAST_OK = 3.0
# Blind restoration ("restore this photo"): where clean photos lie (see the module doc).
# A veil (Stats.veil: both tone ends short of black and white) from which a blind goal sets the levels;
# clean train photos read under it 4 times in 5 (a lifted black alone is a high-key photo's own, kept) ...
VEIL_MIN = 0.07
VEIL_CLEAN = 0.02  # ... less what a clean photo shows anyway: the levels take the rest off each end ...
# ... the black end up to this times the white's: haze of airlight A lifts black A/(1-A) times what it takes
# off white (4 at A = 0.8; the restore suite's haze, 0.8-0.9) ...
VEIL_HAZE = 4.0
KEY_HIGH = 62.0  # ... unless mean L* is over this: a high-key photo's blacks are its own light
LEVELS_TOL = 4.0  # L*: per-channel levels move the L* percentiles about as a grey's
EXPOSE_WHITE = 85.0  # exposure that puts the white point here (mid of clean photos: 72-95) ...
EXPOSE_MEAN = 48.0  # ... and the one that puts the mean here (26-50): the smaller change of the two
EXPOSE_MIN = 1 / 3  # stops: smaller exposure changes (under a camera's smallest step) are left alone
LIGHT_OK = 1.5  # the light's cast, a*/b*, left after a correction
CAST_PER_LIGHT = 1.5  # a named cast moves an axis by at most this times the light's cast on it (dev photos)
CAST_NONE = 12.0  # cast from which nothing near neutral is read (a blue photo reads -50): left alone
LIGHT_MIN = 3.0  # the light's cast, a* or b*, from which a blind goal corrects it ...
LIGHT_SHARE = 0.5  # ... by this share of it: about half the casts read at 3+ on restore cases were real ...
LIGHT_MOVE_MAX = 8.0  # ... by at most this (a*/b*): a sunset's light reads b* +25 clean (dev blind-45)
BLUR_MIN = 1.05  # blur_sigma (px) from which a blind goal sharpens: clean photos read 0.44-0.91 ...
BLUR_CLEAN = 0.8  # ... the bundled ones ~0.8: the blur beyond this is the photo's own defect
BLUR_KEEP = 0.6  # share of the excess blur the target leaves (one deconvolving sharpen removes ~70%)
BLOCK_MIN = 1.4  # blockiness from which a blind goal deblocks: clean photos read at most 1.35
NOISE_MIN = 0.02  # noise_sigma from which a blind goal denoises
NIGHT_MAX_STOPS = 4.0  # the exposure tool's bound: one step
NIGHT_BIAS = 0.2  # stops the white point's estimate fell short by on train photos
NIGHT_NOISE_KEEP = 0.6  # low_light: the noise left, as a share of what the exposure alone would leave
NATURAL_TOL = {"mean_L": 2.5, "cast_a": 2.0, "cast_b": 2.0, "rms_contrast": 0.012, "mean_saturation": 0.02}


def stops_to(lightness: float, goal: float) -> float:
    """Exposure change, in stops, that moves L* `lightness` to `goal` (luminance scaled)."""
    return math.log2(max(luminance_of(goal), 1e-4) / max(luminance_of(lightness), 1e-4))


def night_stops(s: Any) -> float:
    """Stops a dark shot needs: what puts its white point (p99_L) at 85, plus 0.2, within 1 to 4.

    On 16 train photos (256 px) darkened by 2, 3 and 4 EV with camera noise, the white
    point's estimate was off by -0.22 stops on average (rms 0.46), the mean's (mean_L
    toward 48) by +0.06 (rms 0.90), their average by rms 0.62.
    """
    return min(NIGHT_MAX_STOPS, max(1.0, stops_to(s.p99_L, EXPOSE_WHITE) + NIGHT_BIAS))


def measured(recipe: Callable[[Intent, Any], list[Target]]) -> Recipe:
    """A recipe relative to the original's measurements: no targets without them."""
    def run(intent: Intent, s: Any, ref: Any = None) -> list[Target]:
        return [] if s is None else recipe(intent, s)
    run.__doc__ = recipe.__doc__
    return run


def _rel(intent: Intent, per_degree: float) -> tuple[float, str]:
    """The relative change r asked: "N%" exactly, else per_degree * degree."""
    if intent.percent is not None:
        return intent.percent / 100.0, f"{fmt(intent.percent)}% {'less' if 'less' in intent.name else 'more'} than the original's"
    return per_degree * intent.degree, "from the original's"


# --- light ----------------------------------------------------------------------------------


def _regional_light(intent: Intent) -> list[Target]:
    """dL@<region> moved by 6d..6d+12 L* (brighten) or its mirror (darken)."""
    lo, hi = 6 * intent.degree, 6 * intent.degree + 12
    where = RegionMetric(kind="dL", mask=intent.region)
    return [make_target(where, *((lo, hi) if intent.name == "brighten" else (-hi, -lo)), intent.name)]


def _exact_light(intent: Intent, m: float) -> list[Target]:
    """"+1 stop", "10% brighter": the mean luminance scaled by the ratio asked, +- 3 L*."""
    n = intent.name
    if intent.stops is not None:
        ratio, why = 2.0 ** intent.stops, f"{intent.stops:+g} stop from {fmt(m)}"
    else:  # "10% brighter": the mean luminance scaled by 1.1
        p = intent.percent / 100.0  # type: ignore[operator]
        ratio = 1 + p if n == "brighten" else max(0.05, 1 - p)
        why = f"{intent.percent:g}% {'more' if n == 'brighten' else 'less'} light than {fmt(m)}"
    goal = lstar(luminance_of(m) * ratio)
    return [make_target("mean_L", max(0.0, goal - 3), min(100.0, goal + 3), n, label=why)]


def light(intent: Intent, s: Any, ref: Any = None) -> list[Target]:
    """brighten / darken: in a region, by the stops or percent asked, or by the degree."""
    if intent.region:
        return _regional_light(intent)
    if s is None:
        return []
    n, d, m = intent.name, intent.degree, s.mean_L
    if intent.stops is not None or intent.percent is not None:
        return _exact_light(intent, m)
    if n == "brighten":
        lo = min(m + 8 * d, max(70.0, m + 2))
        return [make_target("mean_L", lo, max(75.0, lo + 4), n, label=f"up from {fmt(m)}"),
                make_target("clipped_highlights_pct", None, max(2.0, s.clipped_highlights_pct + 0.5), n, 0.5)]
    hi = max(m - 8 * d, min(30.0, m - 2))
    return [make_target("mean_L", min(20.0, hi - 4), hi, n, label=f"down from {fmt(m)}"),
            make_target("clipped_shadows_pct", None, max(2.0, s.clipped_shadows_pct + 0.5), n, 0.5)]


def fix_exposure(intent: Intent, s: Any, ref: Any = None) -> list[Target]:
    return [make_target("mean_L", *EXPOSURE_OK, intent.name),
            make_target("clipped_highlights_pct", None, 2.0, intent.name, 0.5),
            make_target("clipped_shadows_pct", None, max(2.0, s.clipped_shadows_pct) if s else 2.0, intent.name, 0.5)]


@measured
def low_light(intent: Intent, s: Any) -> list[Target]:
    n, stops = intent.name, night_stops(s)
    # steered by the white point, as estimated: a dark photo's mean L* sits among clipped
    # blacks and does not scale with the light (a -3 EV shot at L* 4 read 25, not 32, at +4 EV)
    goal = lstar(luminance_of(s.p99_L) * 2.0**stops)
    # 6 L* short is allowed: colourful highlights clip a channel before the luminance says so
    return [make_target("p99_L", max(0.0, goal - 6), min(100.0, goal + 3), n,
                        label=f"{stops:+.1f} stops from {fmt(s.p99_L)}"),
            make_target("noise_sigma", None, NIGHT_NOISE_KEEP * s.noise_sigma * 2.0 ** (stops / 2), n, 0.5,
                        label=f"{NIGHT_NOISE_KEEP:.0%} of what brightening alone leaves")]


@measured
def lift_shadows(intent: Intent, s: Any) -> list[Target]:
    n, d, p05 = intent.name, intent.degree, s.p05_L
    return [make_target("p05_L", min(p05 + 6 * d, max(30.0, p05 + 1)), None, n, label=f"up from {fmt(p05)}"),
            make_target("clipped_shadows_pct", None, max(0.5, s.clipped_shadows_pct / 2), n, 0.5),
            make_target("p95_L", None, min(100.0, s.p95_L + 3), n, 0.5)]


@measured
def recover_highlights(intent: Intent, s: Any) -> list[Target]:
    n, clip = intent.name, s.clipped_highlights_pct
    return [make_target("clipped_highlights_pct", None, min(2.0, max(0.3, 0.4 * clip)), n),
            make_target("p99_L", None, s.p99_L - 2 * intent.degree, n, 0.5),
            make_target("mean_L", s.mean_L - 8, None, n, 0.5)]


def veil_levels(s: Any) -> dict[str, float]:
    """levels(black, white) that take a veil off the tone ends (`Stats.black_lift`, `white_drop`), each less
    what clean photos show: a fade toward grey lifts both ends alike (the smaller is taken off both); haze
    lifts black more (up to VEIL_HAZE times the white's), except on a high-key photo, whose blacks are its
    light; a dark photo's whites stay where they are beyond the black's lift (its key, or underexposure)."""
    lift, drop = (max(0.0, v - VEIL_CLEAN) for v in (s.black_lift, s.white_drop))
    black = min(lift, (1.0 if s.mean_L > KEY_HIGH else VEIL_HAZE) * drop)
    return {"black": round(black, 3), "white": round(1.0 - min(drop, lift), 3)}


def _levelled(lightness: float, black: float, white: float) -> float:
    """L* of a grey at `lightness` after levels(black, white)."""
    import torch

    from tools.colorspace import linear_to_srgb, srgb_to_linear

    x = float(linear_to_srgb(torch.tensor(luminance_of(lightness))))
    t = min(max((x - black) / (white - black), 0.0), 1.0)
    return lstar(float(srgb_to_linear(torch.tensor(t))))


@measured
def set_levels(intent: Intent, s: Any) -> list[Target]:
    """The black and white points where `veil_levels` puts them (within LEVELS_TOL), from either side."""
    n, lv = intent.name, veil_levels(s)
    black, white = (_levelled(x, lv["black"], lv["white"]) for x in (s.p01_L, s.p99_L))
    return [make_target("p01_L", None, black + LEVELS_TOL, n, label=f"down from {fmt(s.p01_L)}"),
            make_target("p99_L", white - LEVELS_TOL, None, n, label=f"up from {fmt(s.p99_L)}")]


# --- contrast -------------------------------------------------------------------------------


@measured
def contrast(intent: Intent, s: Any) -> list[Target]:
    """more_contrast / less_contrast / dehaze: rms_contrast moved by r, with guards."""
    n, d, c = intent.name, intent.degree, s.rms_contrast
    r, why = _rel(intent, 0.15 if n == "dehaze" else 0.2)
    why = f"{why} {fmt(c)}"
    if n == "less_contrast":
        r = min(r, 0.6)
        return [make_target("rms_contrast", c * (1 - 1.5 * r), c * (1 - 0.75 * r), n, label=why)]
    lo = c * (1 + (1.0 if n == "dehaze" else 0.75) * r)
    if n == "dehaze":
        p05 = s.p05_L
        return [make_target("rms_contrast", lo, None, n, label=why),
                make_target("p05_L", None, max(p05 - 5 * d, min(p05, 5.0)), n, 0.5),
                make_target("colorfulness", s.colorfulness * (1 + 0.1 * d), None, n, 0.5)]
    if intent.percent is None:
        lo = max(lo, min(c + 0.03 * d, 0.18))
    # Without a number asked, only harsh contrast caps it: fixing the exposure of a dark
    # photo raises its contrast too, and "more contrast" must never end in less.
    hi = min(0.5, max(c * (1 + 1.5 * r), lo * 1.15)) if intent.percent is not None else max(0.32, lo * 1.15)
    return [make_target("rms_contrast", lo, max(hi, lo + 1e-3), n, label=why),
            make_target("clipped_highlights_pct", None, max(3.0, s.clipped_highlights_pct + 1), n, 0.5),
            make_target("clipped_shadows_pct", None, max(3.0, s.clipped_shadows_pct + 1), n, 0.5)]


# --- colour ---------------------------------------------------------------------------------


@measured
def temperature(intent: Intent, s: Any) -> list[Target]:
    """warmer / cooler: cast_b moved by 6 b* units per degree (or percent / 20)."""
    n, b = intent.name, s.cast_b
    step = 6.0 * (intent.percent / 20.0 if intent.percent is not None else intent.degree)
    why = f"from {fmt(b)}"
    if n == "warmer":
        return [make_target("cast_b", b + 0.7 * step, b + 1.6 * step, n, label=why)]
    return [make_target("cast_b", b - 1.6 * step, b - 0.7 * step, n, label=why)]


def bluer(intent: Intent, s: Any, ref: Any = None) -> list[Target]:
    """b* down by 6-16 per degree inside the region (without one, goals settles it as cooler)."""
    if not intent.region:
        return []
    d = intent.degree
    return [make_target(RegionMetric(kind="db", mask=intent.region), -(6 * d + 10), -6 * d, intent.name)]


def neutralize_cast(intent: Intent, s: Any, ref: Any = None) -> list[Target]:
    """Each axis of the neutrals' cast moved toward 0 only as far as the light's own cast explains it.

    The near-neutral pixels also read the scene's colour (a blue sky at b* -11), so an axis moves
    only when the light's cast (illuminant_a/b) has its sign, by at most CAST_PER_LIGHT times it
    ("a bit": `degree` of that). From CAST_NONE up nothing near neutral is read (a blue photo at
    b* -50) and the light's estimate there pointed the wrong way on dev photos: no target.
    """
    if s is None:
        return [make_target("cast", None, CAST_OK, intent.name)]
    if s.cast >= CAST_NONE:
        return []
    out = []
    for axis in "ab":
        c, light = getattr(s, f"cast_{axis}"), getattr(s, f"illuminant_{axis}", 0.0)
        move = min(abs(c), CAST_PER_LIGHT * abs(light)) * min(1.0, intent.degree)
        if c * light > 0 and move > LIGHT_OK:
            aim = c - math.copysign(move, c)
            out.append(make_target(f"cast_{axis}", aim - LIGHT_OK, aim + LIGHT_OK, intent.name,
                                   label=f"{fmt(c)} toward the light's {fmt(light)}"))
    return out


def neutralize_light(intent: Intent, s: Any, ref: Any = None) -> list[Target]:
    """The light's cast (illuminant a*/b*) reduced by LIGHT_SHARE (at most LIGHT_MOVE_MAX), where over LIGHT_OK."""
    out = []
    for axis in "ab":
        v = getattr(s, f"illuminant_{axis}", 0.0)
        if abs(v) > LIGHT_OK:
            keep = v - math.copysign(min(abs(v) * LIGHT_SHARE, LIGHT_MOVE_MAX), v)
            out.append(make_target(f"illuminant_{axis}", keep - LIGHT_OK, keep + LIGHT_OK, "neutralize_cast",
                                   label=f"{fmt(v - keep)} of {fmt(v)} removed"))
    return out


@measured
def saturation(intent: Intent, s: Any) -> list[Target]:
    """more_saturation / less_saturation: mean_saturation moved by r."""
    n, sat = intent.name, s.mean_saturation
    r, why = _rel(intent, 0.25)
    why = f"{why} {fmt(sat)}"
    if n == "less_saturation":
        r = min(r, 0.6)
        return [make_target("mean_saturation", sat * (1 - 1.5 * r), sat * (1 - 0.75 * r), n, label=why)]
    lo = sat * (1 + 0.75 * r)
    if intent.percent is None:
        lo = max(lo, sat + 0.02 * intent.degree)
    lo = min(lo, sat + 0.5 * (1 - sat))  # a photo near full saturation: half of what is left
    return [make_target("mean_saturation", lo, max(lo, min(1.0, max(sat * (1 + 1.6 * r), lo + 0.02))), n,
                        label=why)]


def black_and_white(intent: Intent, s: Any, ref: Any = None) -> list[Target]:
    return [make_target("mean_saturation", None, 0.02, intent.name),
            make_target("colorfulness", None, 3.0, intent.name, 0.5)]


def match_reference(intent: Intent, s: Any, ref: Any = None) -> list[Target]:
    if ref is None:
        return []
    n, sat, con, why = intent.name, ref.mean_saturation, ref.rms_contrast, "the reference's"
    return [make_target("mean_L", ref.mean_L - 4, ref.mean_L + 4, n, label=why),
            make_target("cast_a", ref.cast_a - 3, ref.cast_a + 3, n, label=why),
            make_target("cast_b", ref.cast_b - 3, ref.cast_b + 3, n, label=why),
            make_target("mean_saturation", max(0.0, sat - max(0.03, 0.15 * sat)), sat + max(0.03, 0.15 * sat), n,
                        label=why),
            make_target("rms_contrast", max(0.0, con - max(0.02, 0.15 * con)), con + max(0.02, 0.15 * con), n,
                        label=why)]


def natural(intent: Intent, s: Any, ref: Any = None) -> list[Target]:
    """The prior's correction (agent/natural.py): where its steps land, within tolerance."""
    return [make_target(k, *(v if isinstance(v, tuple) else (v - NATURAL_TOL[k], v + NATURAL_TOL[k])), intent.name,
                        label="the learned prior's correction") for k, v in (intent.aim or {}).items()]


# --- detail ---------------------------------------------------------------------------------


@measured
def denoise(intent: Intent, s: Any) -> list[Target]:
    f = max(0.25, 1 - 0.4 * intent.degree)
    return [make_target("noise_sigma", None, s.noise_sigma * f, intent.name,
                        label=f"{f:.0%} of the original's {fmt(s.noise_sigma)}")]


@measured
def sharpen(intent: Intent, s: Any) -> list[Target]:
    d = intent.degree
    return [make_target("sharpness", s.sharpness * (1 + 0.3 * d), None, intent.name,
                        label=f"+{0.3 * d:.0%} over the original's")]


@measured
def soften(intent: Intent, s: Any) -> list[Target]:
    return [make_target("sharpness", None, s.sharpness * (1 - 0.3 * min(intent.degree, 2.0)), intent.name)]


@measured
def deblur(intent: Intent, s: Any) -> list[Target]:
    m = s.blur_sigma
    return [make_target("blur_sigma", None, BLUR_CLEAN + BLUR_KEEP * (m - BLUR_CLEAN), intent.name,
                        label=f"{1 - BLUR_KEEP:.0%} of the blur over {fmt(BLUR_CLEAN)} px removed")]


@measured
def deblock(intent: Intent, s: Any) -> list[Target]:
    m = s.blockiness
    # A guard's weight: one smoothing pass lowers it a little, a later sharpen raises it a little.
    return [make_target("blockiness", None, 1 + 0.9 * (m - 1), intent.name, 0.5, label=f"down from {fmt(m)}")]


@measured
def upscale(intent: Intent, s: Any) -> list[Target]:
    f = upscale_factor(intent.clause)
    return [make_target("width", f * s.width - 0.5, f * s.width + 0.5, intent.name, label=f"{f}x of {s.width} px")]


# --- regions and objects --------------------------------------------------------------------


def remove_defects(intent: Intent, s: Any, ref: Any = None) -> list[Target]:
    return [make_target(RegionMetric(kind="defects_left"), None, 0.3, intent.name)]


def remove_object(intent: Intent, s: Any, ref: Any = None) -> list[Target]:
    """Mean |delta L*| >= 3 inside the box: something was removed (no box: nothing to measure)."""
    if intent.box is None:
        return []
    return [make_target(RegionMetric(kind="changed", box=intent.box), 3.0, None, intent.name)]


def face_edit(kind: str, low: float | None, high: float | None) -> Recipe:
    """A face generator edit (tools/gan): the face's attribute score must move by low/high per degree,
    in tools.gan.attributes' score units: about 0.5 std each, except eyeglasses at 1 std (2.5 on
    the probe's logit): at half that the frames are faint."""
    def recipe(intent: Intent, s: Any, ref: Any = None) -> list[Target]:
        d = intent.degree
        return [make_target(RegionMetric(kind=kind, mask="face"), None if low is None else low * d,  # type: ignore[arg-type]
                            None if high is None else high * d, intent.name)]
    return recipe


def nothing(intent: Intent, s: Any, ref: Any = None) -> list[Target]:
    """Intents settled into others before their targets are computed (fix_color, enhance)."""
    return []
