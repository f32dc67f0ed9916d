"""What the loop's nodes share and cannot checkpoint, and the working copy a node changes.

`LoopContext` holds the run's objects (the session, the goal, the options, the planner with its
tools bound, the critic, the reference, the accountant, the callback); LangGraph hands it to every
node as the runtime context. `Ledger` is one node's working copy of the state it changes (budgets
spent, new trace entries, attempts, model calls); `Ledger.update()` is the node's return value.
`score` and `review` measure and critique a version; `budget_spent` reads the budgets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from agent.accounting import Accountant, Call
from agent.loop_state import LoopState, Spent, TraceEntry
from agent.options import Budget, EditOptions
from agent.protocol import Attempt, BudgetSpent
from agent.scoring import score_version
from agent.state import EditSession, Version
from tools.analysis import measure
from tools.masks import crop_to, with_local_metrics

# critic(session, version, goal=, reference=) -> agent.critics.Review (.goal_met, .score 0-10, .suggestions);
# a critic that calls a model names it in .model_key and keeps its last answer in .last_raw.
Critic = Callable[..., Any]


@dataclass
class LoopContext:
    """The run's objects the nodes read (see the module doc); nothing here is checkpointed."""

    session: EditSession
    goal: Any
    options: EditOptions
    planner: Any  # the chat model with the tools bound
    planner_key: str  # accounting.model_key of the planner
    critic: Critic | None = None
    reference: Any = None  # (1,3,h,w) at the preview size
    ref_stats: Any = None
    acct: Accountant = field(default_factory=Accountant)
    region: str | None = None  # a session mask every edit is confined to
    on_event: Callable[[TraceEntry], None] | None = None
    vision: bool = False  # the planner reads the preview as an image part
    t0: float = field(default_factory=time.perf_counter)
    seconds_before: float = 0.0  # seconds the run spent before a resume
    # tool call id -> (the version it made, its params, its mask, when it started): not yet judged
    candidates: dict[str, tuple[Version, dict[str, Any], str | None, float]] = field(default_factory=dict)

    @property
    def budget(self) -> Budget:
        return self.options.budget

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.t0

    @property
    def model_critic(self) -> bool:
        """The critic looks at the images through a model (each turn's result is critiqued); a critic
        without a model reads only the measurements the planner has, and is asked when targets are met."""
        return self.critic is not None and getattr(self.critic, "model_key", None) is not None

    def score(self, v: Version) -> Any:
        """Measure `v` (inside the region when there is one) and set its stats and score."""
        s = self.session
        v.stats = s.measure(v.id, self.region) if v.id in s.versions else \
            measure(v.image if self.region is None else crop_to(v.image, s.mask(self.region, v.image)))
        # region targets ("dL@face", "defects_left"): extra fields on the stats, so every scorer sees them
        v.stats = with_local_metrics(v.stats, s.original, v.image, [t.metric for t in getattr(self.goal, "targets", [])],
                                     lambda n: s.mask(n, v.image) if n in s.masks_full else None)
        v.score = score_version(s.original, v.image, self.goal, stats=v.stats, reference=self.reference,
                                original_stats=s.measure("v0", self.region))
        return v.score


class Ledger:
    """One node's working copy of what it changes in the state; `update()` returns the changes."""

    def __init__(self, ctx: LoopContext, state: LoopState) -> None:
        self.ctx, self.state = ctx, state
        self.spent: Spent = Spent(**state["spent"])
        self.broken = dict(state["broken"])
        self.critic_phase = state["critic_phase"]
        self.budget_cause = state["budget_spent"]
        self.trace: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []

    @property
    def turn(self) -> int:
        return self.spent["turns"]

    def record(self, entry: TraceEntry) -> None:
        self.trace.append(asdict(entry))
        if self.ctx.on_event:
            self.ctx.on_event(entry)

    def attempt(self, a: Attempt) -> None:
        self.history.append(a.model_dump(mode="json"))

    def attempts(self) -> list[Attempt]:
        """Every attempt of the run, this node's included."""
        return [Attempt.model_validate(a) for a in [*self.state["history"], *self.history]]

    def model_call(self, role: str, key: str, message: Any, seconds: float, error: str | None = None) -> Call:
        """Record one model request in the accountant and in the state."""
        call = self.ctx.acct.record(self.turn, role, key, message, seconds, error)
        self.calls.append(asdict(call))
        self.spent["input_tokens"] += call.input_tokens
        self.spent["output_tokens"] += call.output_tokens
        return call

    def over_budget(self) -> str | None:
        """Why the run must end now (a spent budget, in words), noting which budget; None: go on."""
        spent = budget_spent(self.ctx, self.spent)
        if spent is None:
            return None
        self.budget_cause = spent.cause
        return str(spent)

    def update(self, **changes: Any) -> dict[str, Any]:
        self.spent["seconds"] = round(self.ctx.seconds(), 3)
        return {"spent": self.spent, "trace": self.trace, "history": self.history, "calls": self.calls,
                "broken": self.broken, "critic_phase": self.critic_phase, "budget_spent": self.budget_cause,
                **changes}


def budget_spent(ctx: LoopContext, spent: Spent, next_call: str = "planner") -> BudgetSpent | None:
    """The first budget `spent` has used up, as a BudgetSpent naming it; None when all have room.
    The cost budget is hard: it is spent when the next call (by the `next_call` role) would likely
    pass it, that role's last call being the estimate. A critique (`next_call="critic"`) spends model
    calls and money only: the step, time and invalid-call budgets do not keep a result unjudged."""
    budget, acct = ctx.budget, ctx.acct
    plans = next_call == "planner"
    if plans and budget.max_steps is not None and spent["steps"] >= budget.max_steps:
        return BudgetSpent(f"step budget spent ({budget.max_steps} edits)", cause="steps")
    if budget.max_model_calls is not None and spent["model_calls"] >= budget.max_model_calls:
        return BudgetSpent(f"model-call budget spent ({budget.max_model_calls} calls)", cause="model_calls")
    if plans and budget.max_seconds is not None and ctx.seconds() >= budget.max_seconds:
        return BudgetSpent(f"time budget spent ({budget.max_seconds:g} s)", cause="seconds")
    cap_calls = ctx.options.max_invalid_calls
    if plans and spent["invalid_calls"] and spent["invalid_calls"] >= cap_calls:  # 0: the first one ends the run
        return BudgetSpent(f"invalid-call budget spent ({cap_calls} tool calls could not run as sent)",
                           cause="invalid_calls")
    cap = budget.max_cost_usd
    if cap is not None:
        cost = acct.cost_usd
        if cost >= cap:
            return BudgetSpent(f"cost budget spent (${cost:.4f} of ${cap:g})", cause="cost")
        # Hard budget: stop before a call that would likely pass it (the last one's cost).
        if cost + acct.last_cost(next_call) > cap:
            return BudgetSpent(f"cost budget spent (${cost:.4f} of ${cap:g}; the next call would pass it)",
                               cause="cost")
    return None


def review(ctx: LoopContext, led: Ledger, v: Version) -> Any:
    """The critic's review of `v`, folded into its combined score; None when the critic failed or a
    budget left no room to ask it (the trace says which)."""
    critic, session, goal = ctx.critic, ctx.session, ctx.goal
    key = getattr(critic, "model_key", None)
    name = f"critic:{getattr(critic, 'name', type(critic).__name__)}"
    spent = budget_spent(ctx, led.spent, "critic") if key is not None else None
    if spent is not None:  # a model critic is a model call: the budgets hold for it too
        led.record(TraceEntry(led.turn, name, {}, None, "error", f"the critic was not asked: {spent}", v.id))
        return None
    t1 = time.perf_counter()
    err = None
    try:
        crit = critic(session, v, goal=goal, reference=ctx.reference)  # type: ignore[misc]
    except Exception as exc:  # a failing critic must not end the edit; the trace says why
        crit, err = None, f"{type(exc).__name__}: {str(exc)[:200]}"
    seconds = time.perf_counter() - t1
    if key is not None:
        led.spent["model_calls"] += 1
        led.model_call("critic", key, getattr(critic, "last_raw", None), seconds, err)
    if crit is None:
        led.record(TraceEntry(led.turn, name, {}, None, "error", f"the critic failed: {err}", v.id, seconds=seconds))
        return None
    v.critique = crit
    led.critic_phase = True
    v.score = score_version(session.original, v.image, goal, stats=v.stats, reference=ctx.reference,
                            critique=float(crit.score), natural=v.score.naturalness)
    reliable = getattr(crit, "reliable", True)
    issues = ", ".join(getattr(crit, "issues", []) or []) or "no issues"
    why = "; ".join(getattr(crit, "contradictions", []) or [])
    reason = (f"{'goal met' if crit.goal_met else 'not yet'}: score {crit.score:.1f}/10, {issues}"
              + ("" if reliable else f"; UNRELIABLE, contradicts the measurements: {why}"))
    led.record(TraceEntry(led.turn, name, {}, None, "critique" if reliable else "unreliable", reason, v.id,
                          v.score.structure, v.score.combined, v.score.targets_met, seconds,
                          critique=dump(crit)))
    return crit


def critic_objection(crit: Any) -> str:
    """A critique that is not satisfied, in words: its issues (the planner reads its suggestions)."""
    return f"the critic is not satisfied ({', '.join(getattr(crit, 'issues', []) or []) or 'no issue named'})"


def floats(stats: Any) -> dict[str, float]:
    if stats is None:
        return {}
    return {k: round(float(v), 4) for k, v in stats.model_dump().items() if isinstance(v, (int, float))}


def dump(obj: Any, exclude: set[str] | None = None) -> dict[str, Any] | None:
    return obj.model_dump(mode="json", exclude=exclude) if hasattr(obj, "model_dump") else None
