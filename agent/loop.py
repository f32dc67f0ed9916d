"""The agent loop: a LangGraph graph (agent.nodes) that plans, acts, scores, critiques and decides.

Any LangChain chat model with tool calling plans; the offline planner is one of them. Tool calls act
on the session's current version; each result is scored (structure lock against the original, goal
targets, the critique when a critic judged it). A step that breaks the lock, harms the photo beyond
what the goal asked (the naturalness guard, `agent.scoring.naturalness_vetoes`) or lowers the combined
score is rolled back and the planner is told why, as fields (`protocol.Attempt`) and in words. Nothing
a model sends or an op does ends the run: bad arguments, unreadable calls, an op that raises, runs out
of memory (retried), hangs past the op timeout or returns NaN come back as observations typed by
`agent.protocol.StepError`; calls that never ran count against their own budget. A model critic judges
each turn's result (`EditOptions.critique_every`); its review enters the score and the planner reads
its suggestions. The run ends when the targets are met and the critic (if any) is satisfied, the model
keeps failing, the planner stops while the goal is unmet after `nodes.MAX_REMINDERS` reminders, or a
budget is spent. The result is the best version, not the last (refined toward a reference when there
is one); `LoopResult.goal_met` is False, and `unmet` says why, whenever a target of it is unmet or the
critic is not satisfied with it.

Budgets spent, attempts, trace, model calls, the best version, the critic phase and the broken tools
live in the graph state (`agent.loop_state.LoopState`), so a run resumed from its checkpoint goes on
with all of them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from typing import Any

from langchain_core.messages import AnyMessage, SystemMessage

from agent.accounting import Accountant, Call, model_key
from agent.loop_context import Critic, Ledger, LoopContext, critic_objection, review
from agent.loop_refine import refine_best
from agent.loop_state import Best, LoopResult, TraceEntry, initial_state
from agent.nodes import best_so_far, build_graph, finished
from agent.options import Budget, EditOptions
from agent.planner_message import SYSTEM_PROMPT, sees_images, state_message
from agent.state import EditSession, Version, preview_of
from tools.analysis import measure
from tools.lut3d import FILE_BACKED
from tools.registry import all_tools, to_langchain

__all__ = ["SYSTEM_PROMPT", "Budget", "Critic", "LoopResult", "TraceEntry", "run_loop"]

RECURSION_LIMIT = 100_000  # graph steps; the budgets end a run long before (a guard against a bug)


def run_loop(
    session: EditSession,
    goal: Any,
    model: Any,
    options: EditOptions | None = None,
    *,
    reference: Any = None,
    critic: Critic | None = None,
    on_event: Callable[[TraceEntry], None] | None = None,
    accountant: Accountant | None = None,
    region: str | None = None,
    checkpointer: Any = None,
    thread_id: str | None = None,
) -> LoopResult:
    """Plan and edit until the goal is met or a budget ends the run; see the module doc.

    `options`: budget, vision, critique cadence, op timeout and retries, invalid-call budget
    (default: `EditOptions(budget=goal.budget)`). `region`: the name of a session mask every edit
    is confined to (`edit --mask`); the photo is then measured inside the region's bounding box.
    `accountant`: an `agent.accounting.Accountant` (prices); every model call is recorded in it
    and the cost budget reads it. `checkpointer` + `thread_id`: a LangGraph checkpointer
    (agent.sessions uses SqliteSaver); a thread with a saved, unfinished state is resumed from its
    last checkpoint, with its budgets spent, trace and best version, instead of started over. A
    session offering `recall(tool_call_id) -> version id | None` and `adopt_call(version,
    tool_call_id)` makes the resumed act node skip calls already committed.
    """
    if options is None:
        budget = getattr(goal, "budget", None)
        options = EditOptions(budget=budget) if budget is not None else EditOptions()
    ctx = _context(session, goal, model, options, reference=reference, critic=critic, on_event=on_event,
                   accountant=accountant, region=region)
    app = build_graph().compile(checkpointer=checkpointer)
    config: dict[str, Any] = {"recursion_limit": RECURSION_LIMIT}
    saved = None
    if checkpointer is not None:
        config["configurable"] = {"thread_id": thread_id or "imagent"}
        saved = app.get_state(config) if checkpointer.get_tuple(config) is not None else None
    # sync: each node's checkpoint is written before the next node runs (a crash loses no step)
    invoke = partial(app.invoke, config=config, context=ctx, **({"durability": "sync"} if checkpointer is not None else {}))
    final = _start(ctx, invoke) if saved is None else _resume(ctx, saved, invoke)
    return _finish(ctx, final)


def _context(session: EditSession, goal: Any, model: Any, options: EditOptions, **given: Any) -> LoopContext:
    """The run's objects: the planner with the tools bound (strict schemas where the provider takes
    them: the model cannot invent or drop arguments), the reference at the preview size."""
    tools = [t for t in all_tools() if (not t.read_only or t.name == "measure" or t.family == "mask")
             and t.name not in FILE_BACKED]  # a planner cannot load a user's .cube
    lc_tools = [to_langchain(t) for t in tools]
    strict = "strict" in inspect.signature(model.bind_tools).parameters
    bound = model.bind_tools(lc_tools, strict=True) if strict else model.bind_tools(lc_tools)
    reference = given.pop("reference")
    if reference is not None:
        reference = preview_of(reference, session.preview_size)
    accountant = given.pop("accountant")
    return LoopContext(session=session, goal=goal, options=options, planner=bound, planner_key=model_key(model),
                       reference=reference, ref_stats=measure(reference) if reference is not None else None,
                       acct=accountant if accountant is not None else Accountant(),
                       vision=sees_images(options.vision, model), **given)


def _start(ctx: LoopContext, invoke: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """A fresh run: nothing to do when the original meets the goal already."""
    head = ctx.session.head
    ctx.score(head)
    state = initial_state([], Best(id=head.id, combined=float(head.score.combined)))
    led = Ledger(ctx, state)
    stop = (finished(ctx, led) or led.over_budget()) if head.score.targets_total else None
    first: list[AnyMessage] = [SystemMessage(content=SYSTEM_PROMPT), state_message(ctx, led)]
    start = {**state, **led.update(messages=first, stop=stop)}
    if stop is not None:
        return start
    return invoke(start)


def _resume(ctx: LoopContext, saved: Any, invoke: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """Go on from a checkpoint: the versions the thread committed are in the session (scored here);
    the budgets spent, the trace, the model calls and the best version come from the state."""
    for v in ctx.session.versions.values():
        if v.score is None:
            ctx.score(v)
    values = saved.values
    ctx.seconds_before = float(values["spent"]["seconds"])
    if not ctx.acct.calls:
        ctx.acct.calls.extend(Call(**c) for c in values["calls"])
    if not saved.next:
        return values
    return invoke(None)


def _finish(ctx: LoopContext, final: dict[str, Any]) -> LoopResult:
    """The best version (refined toward a reference), whether it meets the goal, and what was spent."""
    led = Ledger(ctx, final)
    best = ctx.session.versions[best_so_far(ctx, final["best"])["id"]]
    best = refine_best(ctx, led, best)
    unmet = verdict(ctx, led, best)
    done = led.update()
    spent = done["spent"]
    return LoopResult(best=best, stop_reason=final.get("stop") or "done",
                      trace=[TraceEntry(**e) for e in [*final["trace"], *done["trace"]]], turns=spent["turns"],
                      model_calls=spent["model_calls"], input_tokens=spent["input_tokens"],
                      output_tokens=spent["output_tokens"], seconds=ctx.seconds(), messages=list(final["messages"]),
                      cost_usd=ctx.acct.cost_usd, usage=ctx.acct.to_dict(), invalid_calls=spent["invalid_calls"],
                      budget_spent=done["budget_spent"], goal_met=not unmet, unmet=unmet)


def verdict(ctx: LoopContext, led: Ledger, best: Version) -> list[str]:
    """Why the best version does not meet the goal: its unmet targets, the critic's objections."""
    unmet = [t.label for t in best.score.targets if not t.met]
    # The measurement critic's objections (a cast on "brighten it") are the guard's and the
    # targets' business: only a model critic's verdict can hold back a goal whose targets are met.
    critic = ctx.critic
    if critic is None or getattr(critic, "name", "") == "offline" or unmet or not best.score.targets_total:
        return unmet
    crit = best.critique if best.critique is not None else review(ctx, led, best)
    if crit is None or crit.goal_met:  # a failed critic is in the trace; the measurements decide
        return unmet
    return [critic_objection(crit)]
