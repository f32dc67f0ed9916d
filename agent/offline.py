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
hazy photo's contrast, a monochrome conversion for "black and white"): the strategies
their `IntentSpec.first` names (agent/intent_spec.py, agent/strategies.py `NAMED`).

The planner reads the attempts' typed fields (`Attempt.kind`: kept, lock, naturalness,
score, error; `.kept`, `.params`, `.before`/`.after`), never the loop's sentences; only an
attempt recorded without a kind (a hand-written history) falls back to its reason's words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from agent.intent_spec import INTENTS
from agent.protocol import Attempt, PlanState, TargetState
from agent.strategies import (
    AUTO_WB,
    BLACKS,
    FAMILY,
    NAMED,
    STRATEGIES,
    STRONG_CAST,
    WHITES,
    Strategy,
    aim_of,
    local_strategies,
    log2_lum,
)
from tools.region_metric import RegionMetric

__all__ = ["BoundTool", "Call", "History", "Plan", "Strategy", "decide", "kind_of", "log2_lum"]

MAX_FAILURES = 2  # failed attempts after which a strategy is dropped
MAX_USES = 4  # attempts of one tool after which it is dropped whatever they did


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


# ----------------------------------------------------------------------------- history


def kind_of(a: Attempt) -> str:
    """kept | lock (structure lock broken or the naturalness guard vetoed it: too far, a smaller
    step may pass) | score (overall score fell) | error (bad call). The typed `Attempt.kind`;
    for an attempt recorded without one, from its fields alone (never from the reason's words)."""
    if a.kind is not None:
        return {"naturalness": "lock"}.get(a.kind, a.kind)
    if a.kept:
        return "kept"
    return "score" if a.after else "error"


def moved_nothing(a: Attempt) -> bool:
    """A kept step that changed no measurement notably (`Attempt.moved` is False)."""
    return a.moved is False


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
            elif kind != "kept" or moved_nothing(a):
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
    """The steps the goal's intents carry (the learned prior's, or a measured veil's levels), each tool's
    until it was tried once."""
    calls: list[Call] = []
    for intent in state.intents:
        for step in intent.get("steps") or ():
            tool, args = str(step["tool"]), dict(step.get("params", {}))
            if tool in tools and not hist.of(tool) and all(c.name != tool for c in calls):
                calls.append(Call(tool, args, f"{tool} {_fmt(args)}: the correction {intent.get('name')} "
                                              "carries"))
    return calls


def _propose(t: TargetState, state: PlanState, tools: dict[str, BoundTool], hist: History) -> _Proposal | None:
    current = t.value if t.value is not None else state.stats.get(t.metric)
    if current is None and RegionMetric.parse(t.metric) is not None:
        current = 0.0  # a region metric whose mask is not made yet: the strategy makes it
    if current is None:
        return None
    aim = aim_of(t, current)
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
    region = RegionMetric.parse(t.metric)
    base = STRATEGIES.get(t.metric, ()) or (local_strategies(region, state) if region is not None else ())
    first = _intent_first(t.metric, state)
    if t.metric in ("p01_L", "p05_L") and (t.value or 0.0) < 1.0:
        first += (BLACKS.on(0.2),)  # crushed to black: only raising the black point lifts it
    elif t.metric in ("p95_L", "p99_L") and (t.value or 0.0) > 99.0:
        first += (WHITES.on(0.1),)  # clipped white: only lowering the white point brings it back
    if t.metric in ("cast", "cast_a", "cast_b"):
        if abs(aim_of(t, state.stats.get(t.metric, 0.0))) >= 3.0:  # a wanted cast: grey world undoes it
            base = tuple(s for s in base if s.tool != AUTO_WB.tool)
        elif state.stats.get("cast", 0.0) > STRONG_CAST:
            first += (AUTO_WB,)  # a strong cast: grey world first, the sliders to fine-tune
    return first + tuple(s for s in base if s not in first)


def _intent_first(metric: str, state: PlanState) -> tuple[Strategy, ...]:
    """The strategies the goal's intents name first for this metric (`IntentSpec.first`), by intent name."""
    names = sorted({str(i.get("name")) for i in state.intents} & INTENTS.keys())
    return tuple(NAMED[x] for name in names for x in INTENTS[name].first.get(metric, ()))


def _arguments(s: Strategy, state: PlanState, metric: str, current: float, aim: float,
               hist: History, tool: BoundTool) -> dict[str, Any] | None:
    """Arguments for one strategy (capped by what earlier steps did); None if only repeats remain."""
    step = 0.0
    if s.param and s.build is None:
        gain = hist.gain(s, metric) or s.gain
        step = (s.coord(aim) - s.coord(current)) / gain
        cap = hist.cap(s, metric, aim, step)
        step = math.copysign(min(max(abs(step), s.min_step), s.max_step, cap), step)
    # never the exact call that was rolled back; a solved call (build) after the lock broke: half of it
    factors = (0.5, 0.25) if s.build is not None and hist.last_kind(s.tool) == "lock" else (1.0, 0.5, 0.25)
    for factor in factors:
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
