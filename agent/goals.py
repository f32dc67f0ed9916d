"""Goals: an instruction turned into named intents and measurable targets on the image's stats.

``parse_goal("brighten it and fix the blue cast, a bit more contrast", stats)`` splits
the instruction into clauses, maps each to intents (see ``agent/intents.py``), settles
ambiguous ones with the measurements ("fix the exposure" on a dark photo means
brighten: ``agent/settle.py``) and turns every intent into targets on ``tools.analysis.Stats``
fields, computed from the ORIGINAL's stats by the intent's recipe (``agent/intent_spec.py``
names it, ``agent/recipes.py`` holds them and the table of every intent's targets). Clauses it
cannot map are listed in ``Goal.unmapped``: reported, never silently turned into edits.

The goal's types (Intent, Target, Goal, METRICS) live in ``agent/targets.py``; they and the
recipes' constants are re-exported here for the code that reads them from ``agent.goals``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent import intents as _intents
from agent import lexicon as _lexicon
from agent import natural as _natural
from agent import spelling as _spelling
from agent import wishes as _wishes
from agent.intent_spec import INTENTS, IntentSpec, opposites
from agent.options import Budget

# recipes' constants that tests and benchmarks read from agent.goals
from agent.recipes import (
    BLOCK_MIN,
    BLUR_CLEAN,
    BLUR_MIN,
    EXPOSE_WHITE,
    LIGHT_SHARE,
    night_stops,
    stops_to,
)
from agent.settle import resolve
from agent.targets import (
    METRICS,
    Goal,
    Intent,
    Target,
    fmt,
    lstar,
    luminance_of,
    make_target,
    merge_targets,
    value_of,
)

if TYPE_CHECKING:
    from tools.analysis import Stats

__all__ = ["BLOCK_MIN", "BLUR_CLEAN", "BLUR_MIN", "Budget", "EXPOSE_WHITE", "Goal", "INTENTS", "Intent",
           "IntentSpec", "LIGHT_SHARE", "METRICS", "SIZE_FIXED", "Target", "lstar", "luminance_of",
           "merge_targets", "night_stops", "noise_lock", "parse_goal", "targets_for", "value_of", "wish_names"]

_stops_to = stops_to  # the name tests and benchmarks read


def targets_for(intent: Intent, s: Any, ref: Any = None) -> list[Target]:
    """The targets of one intent, computed from the original's stats `s` by its spec's recipe."""
    spec = INTENTS.get(intent.name)
    return [] if spec is None else spec.targets(intent, s, ref)


def wish_names() -> dict[str, str]:
    """What a language model may answer a clause with: the intents and the looks, with their meaning."""
    from agent.looks import looks  # the looks load the tool registry: only when a model is asked

    return {**{n: spec.description for n, spec in INTENTS.items() if spec.offered},
            **{f"look:{n}": look.description for n, look in looks().items()}}


HOLD_L = 1.5  # L* units an intent the user refused may drift ("not brighter": mean L* <= original + 1.5)
HOLD_REL = 0.04  # other metrics: 4 % of the original's value


def _held(name: str, clause: str, s: Any) -> list[Target]:
    """Targets that keep what the user refused from happening: each metric the refused intent would
    move stays on the original's side of it, within a small tolerance ("not brighter": mean L*
    may not rise). Intents whose targets need no stats, or have none, hold nothing measurable."""
    spec = INTENTS.get(name)
    if s is None or spec is None or not spec.holds:
        return []
    out = []
    for t in targets_for(Intent(name=name, source="rule"), s):
        if t.region is not None:
            continue
        v = value_of(s, t.metric)
        tol = HOLD_L if t.metric.endswith("_L") else HOLD_REL * max(abs(v), 1e-3)
        if t.low is not None and t.low > v:  # the refused intent would raise it
            out.append(make_target(t.metric, None, v + tol, f"not_{name}", label=f"not {name}: '{clause}'"))
        elif t.high is not None and t.high < v:  # ... or lower it
            out.append(make_target(t.metric, v - tol, None, f"not_{name}", label=f"not {name}: '{clause}'"))
    return out


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




@dataclass
class _Reading:
    """What the clauses of one instruction said, gathered while reading them."""

    notes: list[str] = field(default_factory=list)
    matches: list[_intents.Match] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # intent[@region] -> the clause that said "not"
    limited: dict[str, str] = field(default_factory=dict)  # "don't make it too warm": held unless asked
    direct: list[_wishes.Wish] = field(default_factory=list)  # exact edits: looks, framing


# a clause that refuses what it names ("no vignette", "don't rotate it", "without cropping")
_REFUSING = re.compile(r"^(?:(?:but|and|just|only|please|yet)\s+)*(?:no|not|don'?t|dont|do not|never|without|avoid)\b")


def _leave_it(clause: str) -> str:
    return f"'{clause}': read as 'leave it as it is' (no edit, no target)"


def _read_clause(r: _Reading, clause: str, previous: _intents.Match | None, model: Any,
                 mapper: Callable[[str], list[str]] | None) -> _intents.Match | None:
    """One clause into `r`; answers the match a following clause may refer back to."""
    rest = _intents.negated(clause)
    if rest is not None:
        m = _intents.match_clause(rest, None, model)
        # "too" or "overdo" limits how far, it does not refuse: "don't make it too warm, just a little warmer"
        limits = r.limited if re.search(r"\btoo\b|\boverdo", clause) else r.refused
        for name in m.intents if m is not None else ():  # "don't brighten the sky" refuses brighten@sky only
            limits.setdefault(f"{name}@{m.region}" if m.region else name, clause)
        if m is None or not m.intents:
            r.notes.append(_leave_it(clause))
        return previous
    m = _intents.match_clause(clause, previous, model)
    if m is None and mapper is not None:
        named = mapper(clause)
        for name in [n[5:] for n in named if n.startswith("look:")][:1]:
            r.direct.append(_wishes.Wish("look", name, 1.0, clause))
        picked = tuple(n for n in named if n in INTENTS and INTENTS[n].asked)
        if picked:
            m = _intents.Match(clause, picked, "llm", 0.6, _intents.degree_of(clause)[0])
        elif named:
            return previous
    refined = _intents.refine(previous, m) if m is not None and previous is not None else None
    if refined is not None and r.matches and r.matches[-1] is previous:
        r.matches[-1] = refined  # "the face is too dark, brighten": one wish, not a second global one
        return refined
    if m is None:
        r.unmapped.append(clause)
    elif not m.intents:
        r.notes.append(_leave_it(clause))
    else:
        r.matches.append(m)
        return m
    return previous


def _read(r: _Reading, text: str, english: str, model: Any, mapper: Callable[[str], list[str]] | None) -> None:
    """Every clause of the instruction into `r`: framing and looks as direct wishes, the rest as intents."""
    clauses = _intents.split_clauses(english)
    if not clauses and re.search(r"\w", english):
        r.unmapped.append(english)  # only politeness ("thanks, that's all"): nothing asked
        return
    if not clauses:
        clauses = ["enhance"]
        r.notes.append("empty instruction: general enhancement by measurement")
    r.direct += [w for w in [_wishes.find_look(text) or _wishes.find_look(english)] if w is not None]
    vocabulary = _wishes.look_vocabulary(r.direct[0].argument) if r.direct else set()
    previous = None
    for clause in clauses:
        framing = _wishes.find_framing(clause)
        if framing is not None and (_REFUSING.match(clause) or _intents.negated(clause) is not None):
            r.notes.append(_leave_it(clause))  # "no vignette", "don't rotate it": the framing is refused
            continue
        if framing is not None:
            r.direct.append(framing)
            continue
        if vocabulary and (set(re.findall(r"[a-z]+", clause)) <= vocabulary or _wishes.find_look(clause)):
            continue  # the look's clause, or only its words ("high key, bright and airy"): the look says it all
        previous = _read_clause(r, clause, previous, model, mapper)


def _intent_of(m: _intents.Match, name: str, stats: Any, image_size: tuple[int, int] | None) -> Intent:
    """One matched intent, with what its spec lets a clause add (a region, exact stops, a box)."""
    spec = INTENTS.get(name)
    return Intent(name=name, degree=m.degree, source=m.source, confidence=min(1.0, m.confidence), clause=m.clause,
                  stops=m.stops if spec and spec.stops else None, percent=m.percent,
                  region=m.region if spec and spec.region else None,
                  box=_fraction_box(m.box, stats, image_size) if spec and spec.box else None)


def _settle(r: _Reading, stats: Any, image_size: tuple[int, int] | None,
            natural: Callable[[], _natural.Natural | None] | None) -> list[tuple[Intent, str]]:
    """Every matched intent settled by the measurements: (intent as named, target kind)."""
    nat_cache: list[_natural.Natural | None] = []

    def nat() -> _natural.Natural | None:
        if natural is not None and not nat_cache:
            nat_cache.append(natural())
        return nat_cache[0] if nat_cache else None

    resolved: list[tuple[Intent, str]] = []
    for m in r.matches:
        for name in m.intents:
            spec = INTENTS.get(name)
            prior = nat() if spec is not None and spec.prior else None
            got = resolve(_intent_of(m, name, stats, image_size), stats, prior, spec.settle if spec else None)
            if not got:
                r.notes.append(f"'{m.clause}': the learned prior finds the {name.replace('_', ' ')} already natural")
            resolved += got
    return resolved


def _latest(r: _Reading, resolved: list[tuple[Intent, str]]) -> dict[str, tuple[Intent, str]]:
    """One intent per name and region (the strongest degree); of two opposites the later wins."""
    kept: dict[str, tuple[Intent, str]] = {}
    for intent, kind in resolved:
        where = f"@{intent.region}" if intent.region else ""  # "brighten the face, darken the sky": no clash
        for other in {o + where for o in opposites(intent.name)} & kept.keys():
            r.notes.append(f"'{intent.clause}' ({intent.name}) overrides '{kept[other][0].clause}' ({other})")
            del kept[other]
        have = kept.get(intent.name + where)
        if have is None or intent.degree > have[0].degree or intent.stops is not None:
            kept[intent.name + where] = (intent, kind)
    return kept


def _add_exact(r: _Reading, kept: dict[str, tuple[Intent, str]]) -> None:
    """Direct wishes (looks, framing) and an upscale's factor: exact edits, applied as asked."""
    if r.direct and r.unmapped and r.direct[0].kind == "look":
        r.notes.append(f"read as part of the {r.direct[0].argument} look: {'; '.join(r.unmapped)}")
        r.unmapped = []
    for key, (intent, kind) in list(kept.items()):
        if kind == "upscale" and SIZE_FIXED:  # 2x or 4x, as the words say
            kept[key] = (intent.model_copy(update={"argument": str(_intents.upscale_factor(intent.clause))}), kind)
    for w in r.direct:
        kept[w.label] = (Intent(name=w.kind, argument=w.argument, degree=w.degree, source="rule",
                                clause=w.clause), "direct")
    for key in [k for k in kept if k in r.refused]:
        r.notes.append(f"'{kept[key][0].clause}' ({key}) dropped: '{r.refused[key]}'")
        del kept[key]


def _targets(r: _Reading, kept: dict[str, tuple[Intent, str]], stats: Any, reference_stats: Any) -> list[Target]:
    """The targets of every kept intent, and of every refused one (held where it is)."""
    targets: list[Target] = []
    asked = {intent.name for intent, _ in kept.values()}
    for name, clause in [*r.refused.items(), *((n, c) for n, c in r.limited.items() if n not in asked)]:
        targets += _held(name, clause, stats)
    for intent, kind in kept.values():
        if kind == "direct" or (kind == "upscale" and SIZE_FIXED):
            continue  # an exact edit or enlargement, applied as asked (agent.wishes): nothing to measure
        got = targets_for(intent.model_copy(update={"name": kind}), stats, reference_stats)
        for t in got:
            t.intent = intent.name
        targets += got
        if kind == "match_reference" and reference_stats is None:
            r.unmapped.append(f"{intent.clause} (no reference image was measured: nothing to match)")
        elif kind == "enhance":
            r.notes.append("enhance: the measurements show nothing to fix")
        elif not got:
            r.notes.append(f"{intent.name}: targets need the original's measurements (no stats given)")
    return targets


def _lock_for(r: _Reading, kept: dict[str, tuple[Intent, str]], stats: Any, lock: float) -> float:
    """The structure lock, relaxed for a denoise goal to what the clean photo itself would keep."""
    specs = [INTENTS[i.name] for i, _ in kept.values() if i.name in INTENTS]
    if stats is None or not any(spec.removes_noise for spec in specs):
        return lock
    night = any("noise_first" in spec.allows for spec in specs)  # exposed first: the noise grows with the light
    # the lock is gain-invariant: after brightening by `stops` the noise it sees is ~2**(stops/2) larger
    relaxed = noise_lock(stats.noise_sigma * (2.0 ** (night_stops(stats) / 2) if night else 1.0))
    if relaxed >= lock:
        return lock
    r.notes.append(f"structure lock {lock:.2f} -> {relaxed:.2f}: the photo's noise ({fmt(stats.noise_sigma)}) "
                   "is structure the original has and a clean version loses")
    return relaxed


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
    r = _Reading()
    if not usable:
        r.notes.append(f"embedding model unavailable ({_intents.embedder_problem() or 'not loaded'}); "
                       "keyword parser used")
    lang, english = _lexicon.gloss(text)
    if lang != "en":
        r.notes.append(f"read as: {english} ({_lexicon.NAMES[lang]} phrase table)")
    else:
        english, slips = _spelling.corrected(english)
        r.notes += [f"read '{slip}' as '{word}'" for slip, word in slips]
    _read(r, text, english, model if usable else None, mapper)
    if usable and loaded and loaded[-1] is None:  # it failed to load when a clause needed it
        usable = False
        r.notes.insert(0, f"embedding model unavailable ({_intents.embedder_problem() or 'not loaded'}); "
                          "keyword parser used")
    kept = _latest(r, _settle(r, stats, image_size, natural))
    _add_exact(r, kept)
    targets, clashes = merge_targets(_targets(r, kept, stats, reference_stats))
    lock = _lock_for(r, kept, stats, lock)
    return Goal(instruction=text, intents=[i for i, _ in kept.values()], targets=targets,
                reference=reference, lock=lock, budget=budget or Budget(), unmapped=r.unmapped,
                parser="embedding" if usable else "keyword", notes=r.notes + clashes)
