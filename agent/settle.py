"""Settling intents by measurement: which way "fix the exposure" goes, what "restore" fixes, and
the magnitudes the learned prior gives (agent/natural.py).

`resolve(intent, s, nat)` answers (intent as named, target kind) pairs: the kind names the
`IntentSpec` whose recipe computes the targets (agent/intent_spec.py), e.g. a "fix the exposure"
on a dark photo is named brighten and measured as fix_exposure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from agent import natural as _natural
from agent.recipes import (
    BLOCK_MIN,
    BLUR_MIN,
    CAST_OK,
    EXPOSE_MEAN,
    EXPOSE_MIN,
    EXPOSE_WHITE,
    EXPOSURE_OK,
    LIGHT_MIN,
    NATURAL_TOL,
    NOISE_MIN,
    VEIL_MIN,
    stops_to,
    veil_levels,
)
from agent.targets import Intent


def _prior_aim(nat: _natural.Natural, steps: list[dict[str, Any]], metrics: tuple[str, ...]) -> dict[str, float]:
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
        ends = [_prior_aim(nat, [{"tool": "exposure", "params": {"stops": x}}], ("mean_L",))["mean_L"]
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
    `BLIND_STRENGTH`; a veil, the light's cast, flat contrast and dull colour from
    the rules (`restore`); denoise and deblur only when the prior sees the noise or blur too.
    """
    c = nat.correction
    rules = [(i, k) for i, k in restore(intent, s)
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
    update = {"name": "restore", "steps": steps, "aim": _prior_aim(nat, steps, metrics), "source": "measurement"}
    return [(intent.model_copy(update=update), "natural"), *rules]



Settled = list[tuple[Intent, str]]  # (intent as named, target kind)
Settler = Callable[[Intent, Any], Settled]  # (intent, the original's stats or None) -> settled


def resolve(intent: Intent, s: Any, nat: _natural.Natural | None = None, settle: Settler | None = None) -> Settled:
    """Settle an intent whose direction or magnitude depends on the photo: (intent as named, target kind).

    The learned prior first (`nat`, for the intents whose spec says `prior`), then the spec's own
    `settle` function; an intent with neither is its own kind."""
    by_prior = _by_prior(intent, s, nat)
    if by_prior is not None:
        return by_prior
    return settle(intent, s) if settle is not None else [(intent, intent.name)]


def _as(intent: Intent, name: str, kind: str | None = None, measured: bool = True) -> tuple[Intent, str]:
    update = {"name": name, "source": "measurement"} if measured else {"name": name}
    return intent.model_copy(update=update), kind or name


def bluer(intent: Intent, s: Any) -> Settled:
    """"bluer" with no region named: the whole photo cooler."""
    return [(intent, intent.name)] if intent.region else [_as(intent, "cooler", measured=False)]


def fix_exposure(intent: Intent, s: Any) -> Settled:
    """Named brighten or darken when the mean is outside the normal range; measured as fix_exposure."""
    if s is None:
        return [(intent, intent.name)]
    m = s.mean_L
    name = "brighten" if m < EXPOSURE_OK[0] else "darken" if m > EXPOSURE_OK[1] else intent.name
    return [_as(intent, name, "fix_exposure")]


def fix_color(intent: Intent, s: Any) -> Settled:
    """Dull colour without a cast: more saturation; else (or unmeasured) neutralize the cast."""
    if s is None:
        return [_as(intent, "neutralize_cast", measured=False)]
    name = "more_saturation" if s.cast < CAST_OK and s.mean_saturation < 0.12 else "neutralize_cast"
    return [_as(intent, name)]


def enhance(intent: Intent, s: Any) -> Settled:
    """What the measurements flag (`restore`); unmeasured: the exposure and the cast."""
    if s is None:
        return [_as(intent, k, measured=False) for k in ("fix_exposure", "neutralize_cast")]
    return restore(intent, s) or [(intent.model_copy(update={"source": "measurement"}), "enhance")]


def restore(intent: Intent, s: Any) -> list[tuple[Intent, str]]:
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
    veiled = getattr(s, "veil", 0.0) >= VEIL_MIN
    if veiled:
        found.append(make("set_levels", steps=[{"tool": "levels", "params": veil_levels(s)}]))
    else:
        by_white = stops_to(s.p99_L, EXPOSE_WHITE)
        by_mean = stops_to(s.mean_L, EXPOSE_MEAN)
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

