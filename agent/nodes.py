"""The loop's graph: nodes over `LoopState` with the run's objects in a `LoopContext`, and named routers.

    plan -> act -> score -> act ... -> critique -> decide -> plan | end

`plan` asks the model; its tool calls queue up. `act` takes the next call and runs it (a call that
cannot run, a mask, a measurement: answered at once), `score` measures the version it made and keeps
or rolls it back (structure lock, naturalness guard, combined score), `critique` has a model critic
judge the turn's result (every `EditOptions.critique_every` turns; a critic without a model reads
only the measurements and is asked once the targets are met), `decide` ends the run (targets met
and the critic satisfied, the model failing, the planner stopping while the goal is unmet after
`MAX_REMINDERS` reminders, a budget spent) or tells the planner where things stand and plans again.
"""

from __future__ import annotations

import time
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agent.critics import target_text
from agent.loop_context import Ledger, LoopContext, critic_objection, review
from agent.loop_state import Best, LoopState, TraceEntry
from agent.op_runner import run_op
from agent.planner_message import state_message
from agent.protocol import (
    Attempt,
    BadArguments,
    ExecutionFailed,
    ModelOutputUnusable,
    StepError,
    check_arguments,
    unusable_calls,
)
from agent.scoring import naturalness_vetoes, score_version
from agent.state import Version, key_metrics
from tools.analysis import describe_delta, notable_changes
from tools.masks import combine, describe_mask
from tools.registry import Tool, ToolError, get

MAX_FAILED_TURNS = 3
# Answers without tool calls while a target is unmet or the critic objects: each is answered with
# what is unmet; the answer after the last reminder ends the run ("the planner finished after ...";
# LoopResult.goal_met says whether the best version meets the goal). The budgets end runs sooner.
MAX_REMINDERS = 2
SCORE_TOLERANCE = 1e-3  # a step must not lower the combined score by more than this
Ctx = Runtime[LoopContext]


def plan(state: LoopState, runtime: Ctx) -> dict[str, Any]:
    """Ask the planning model for the next tool calls (unless a budget is spent)."""
    ctx = runtime.context
    led = Ledger(ctx, state)
    spent = led.over_budget()
    if spent:
        return led.update(stop=spent)
    led.spent["turns"] += 1
    led.spent["model_calls"] += 1
    t1 = time.perf_counter()
    try:
        ai = ctx.planner.invoke(state["messages"])
    except Exception as exc:  # provider errors (after the client's retries) end the run with the best so far
        led.model_call("planner", ctx.planner_key, None, time.perf_counter() - t1,
                       f"{type(exc).__name__}: {str(exc)[:200]}")
        unusable = unusable_calls(exc)
        if not unusable:
            return led.update(stop=f"the planning model failed: {type(exc).__name__}: {exc}")
        # the client could not build a message from the answer (e.g. arguments sent as a list): tell the model
        for err in unusable:
            fail(led, err, "?", {}, None, t1)
        told = HumanMessage(content="Your last answer could not be used: " + "; ".join(map(str, unusable))
                            + ". Call the tools again, each with a JSON object of named fields.")
        return led.update(messages=[AIMessage(content="(an answer with unreadable tool calls)"), told],
                          queue=[], turn_ok=False)
    led.model_call("planner", ctx.planner_key, ai, time.perf_counter() - t1)
    queue = [{"invalid": dict(c)} for c in getattr(ai, "invalid_tool_calls", None) or []]
    queue += [{"call": dict(c)} for c in getattr(ai, "tool_calls", None) or []]
    return led.update(messages=[ai], queue=queue, turn_ok=False)


def act(state: LoopState, runtime: Ctx) -> dict[str, Any]:
    """Run the next queued tool call; a version it makes waits in the context for `score`."""
    ctx = runtime.context
    led = Ledger(ctx, state)
    item, rest = state["queue"][0], state["queue"][1:]
    if "invalid" in item:
        bad = item["invalid"]
        msg = f"malformed tool call {bad.get('name')!r}: {bad.get('error') or 'arguments are not valid JSON'}"
        text, _ = fail(led, ModelOutputUnusable(msg, tool=str(bad.get("name")), cause="not_json"),
                       str(bad.get("name")), {}, None, time.perf_counter())
        return led.update(queue=rest, messages=[ToolMessage(content=text, tool_call_id=bad.get("id") or "invalid",
                                                            status="error")])
    call = item["call"]
    spent = led.over_budget()
    if spent:  # the model is told which budget ended the run
        return led.update(queue=rest, messages=[_answer(call, f"not run: {spent}", False)])
    answered = start_call(ctx, led, call)
    if answered is None:
        return led.update(queue=rest, pending=call)
    text, ok = answered
    return led.update(queue=rest, messages=[_answer(call, text, ok)], turn_ok=state["turn_ok"] or ok)


def score(state: LoopState, runtime: Ctx) -> dict[str, Any]:
    """Measure the version the pending call made; keep it or roll it back, and tell the model why."""
    ctx = runtime.context
    call = state["pending"] or {}
    made = ctx.candidates.pop(str(call.get("id")), None)
    if made is None:  # resumed between act and score: the version was not kept; make it again
        return {"queue": [{"call": call}, *state["queue"]], "pending": None}
    led = Ledger(ctx, state)
    text, ok = judge(ctx, led, call, *made)
    return led.update(pending=None, messages=[_answer(call, text, ok)], turn_ok=state["turn_ok"] or ok)


def critique(state: LoopState, runtime: Ctx) -> dict[str, Any]:
    """A model critic judges the turn's result (every `critique_every` turns), unless it has already."""
    ctx = runtime.context
    head = ctx.session.head
    led = Ledger(ctx, state)
    if ctx.model_critic and head.id != "v0" and head.critique is None \
            and led.turn % ctx.options.critique_every == 0:
        review(ctx, led, head)
    return led.update()


def decide(state: LoopState, runtime: Ctx) -> dict[str, Any]:
    """End the run or plan again, telling the planner where things stand (and what is unmet)."""
    ctx = runtime.context
    led = Ledger(ctx, state)
    idle = isinstance(state["messages"][-1], AIMessage)  # the planner answered without tool calls
    if idle:
        led.spent["idle_answers"] += 1
    else:
        led.spent["idle_answers"] = 0
        led.spent["failed_turns"] = 0 if state["turn_ok"] else led.spent["failed_turns"] + 1
    best = best_so_far(ctx, state["best"])
    stop = finished(ctx, led) or stalled(led, state)
    unmet = not_done(ctx)
    stop = stop or (idle and ended_early(led, state, unmet)) or led.over_budget()
    if stop:
        return led.update(stop=stop, best=best)
    note = ""
    if idle and unmet:
        left = MAX_REMINDERS + 1 - led.spent["idle_answers"]
        note = (f"Not done yet: {'; '.join(unmet)}. Continue with tool calls; answering without tool calls "
                f"{left} more time(s) ends the run.\n")
    return led.update(messages=[state_message(ctx, led, note)], best=best)


# ----------------------------------------------------------------------------- routers


def after_plan(state: LoopState) -> str:
    """End on a stop; act on the answer's tool calls; decide on an answer without any (or unreadable)."""
    if state.get("stop"):
        return END
    return "act" if state["queue"] else "decide"


def after_act(state: LoopState) -> str:
    """Score the version the call made; else the next call; else critique the turn's result."""
    if state.get("pending"):
        return "score"
    return "act" if state["queue"] else "critique"


def after_score(state: LoopState) -> str:
    return "act" if state["queue"] else "critique"


def after_decide(state: LoopState) -> str:
    return END if state.get("stop") else "plan"


def build_graph() -> StateGraph:
    """The loop's graph (see the module doc), to compile with a checkpointer or none."""
    graph = StateGraph(LoopState, context_schema=LoopContext)
    for name, node in (("plan", plan), ("act", act), ("score", score), ("critique", critique), ("decide", decide)):
        graph.add_node(name, node)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", after_plan, ["act", "decide", END])
    graph.add_conditional_edges("act", after_act, ["score", "act", "critique"])
    graph.add_conditional_edges("score", after_score, ["act", "critique"])
    graph.add_edge("critique", "decide")
    graph.add_conditional_edges("decide", after_decide, ["plan", END])
    return graph


# ----------------------------------------------------------------------------- one tool call


def start_call(ctx: LoopContext, led: Ledger, call: dict[str, Any]) -> tuple[str, bool] | None:
    """Run one tool call up to the version it makes (left in `ctx.candidates`; None is returned);
    a call that makes no version is answered here: (the observation, whether it succeeded)."""
    session = ctx.session
    name, raw = str(call.get("name") or "?"), call.get("args")
    t1 = time.perf_counter()
    try:
        args, mask = check_arguments(name, {} if raw is None else raw)
    except StepError as err:
        return fail(led, err, name, raw if isinstance(raw, dict) else {"arguments": raw}, None, t1)
    done = recalled(ctx, led, call, name, args, mask)
    if done is not None:
        return done
    try:
        tool = get(name)
        if name in led.broken:
            raise BadArguments(f"not run: {name} failed earlier in this edit ({led.broken[name]}); use another tool",
                               tool=name, cause="failed_before")
        if tool.family == "mask":  # makes a named mask in the session, not a version
            return make_mask(ctx, led, tool, args, t1)
        if tool.read_only:
            return f"{session.head.id}: {session.head.stats.summary()}", True
        if mask is None and ctx.region is not None and tool.supports_mask:
            mask = ctx.region
        cand = _run(ctx, name, lambda: session.try_step(name, args, mask))
    except ToolError as exc:
        return fail(led, BadArguments(str(exc), tool=name, fields=exc.fields), name, args, mask, t1)
    except StepError as err:
        return fail(led, err, name, args, mask, t1)
    ctx.candidates[str(call.get("id"))] = (cand, args, mask, t1)
    return None


def recalled(ctx: LoopContext, led: Ledger, call: dict[str, Any], name: str, args: dict[str, Any],
             mask: str | None) -> tuple[str, bool] | None:
    """A call a resumed session committed before the interruption: adopted, not redone."""
    session = ctx.session
    done = session.recall(call["id"]) if hasattr(session, "recall") and call.get("id") else None
    if done is None or done not in session.versions:
        return None
    session.current = done
    v = session.versions[done]
    if v.score is None:
        ctx.score(v)
    led.spent["steps"] += 1
    led.record(TraceEntry(led.turn, name, args, mask, "kept", "committed before the interruption",
                          done, v.score.structure, v.score.combined, v.score.targets_met))
    return f"kept as {done} (done before an interruption); targets met {v.score.targets_met}", True


def make_mask(ctx: LoopContext, led: Ledger, tool: Tool, args: dict[str, Any], t1: float) -> tuple[str, bool]:
    session = ctx.session
    p = tool.validate(args)
    made = _run(ctx, tool.name, lambda: tool(session.head.image, p))
    old = session.mask(p.name, made) if p.name in session.masks_full else None
    session.add_mask(p.name, combine(old, made, p.combine, p.name))
    info = describe_mask(session.head.image, session.mask(p.name, session.head.image))
    led.record(TraceEntry(led.turn, tool.name, p.model_dump(), None, "mask", info.summary(), None,
                          seconds=time.perf_counter() - t1))
    return f"mask {p.name!r}: {info.summary()}", True


def judge(ctx: LoopContext, led: Ledger, call: dict[str, Any], cand: Version, args: dict[str, Any],
          mask: str | None, t1: float) -> tuple[str, bool]:
    """Score a candidate, keep it or roll it back (lock, naturalness, score), and record the attempt."""
    session, name = ctx.session, str(call.get("name"))
    head = session.head
    try:
        s = ctx.score(cand)
    except Exception as exc:  # what the op made cannot be measured (wrong dtype, ...): the op's fault
        err = ExecutionFailed(f"{name} made an image that cannot be measured ({type(exc).__name__}: "
                              f"{str(exc)[:160]}); use another tool", tool=name, cause="error")
        return fail(led, err, name, args, mask, t1)
    led.spent["steps"] += 1
    vetoes = naturalness_vetoes(s.naturalness, ctx.goal, session.measure("v0", ctx.region),
                                parent=head.score.naturalness) if s.lock_ok and s.naturalness else []
    critiqued = ctx.critic is not None and led.critic_phase and s.lock_ok and not vetoes \
        and head.critique is not None and (not ctx.model_critic or led.turn % ctx.options.critique_every == 0)
    if critiqued:  # the head's score includes a critique: judge the candidate the same way before comparing
        review(ctx, led, cand)
        s = cand.score
    kind, reason = keep_or_roll_back(ctx, head, cand, vetoes, critiqued)
    if kind == "kept":
        session.adopt_call(cand, call.get("id")) if hasattr(session, "adopt_call") else session.adopt(cand)
    params = cand.recipe.steps[-1].params
    led.record(TraceEntry(led.turn, name, params, mask, "kept" if kind == "kept" else "rolled_back", reason,
                          cand.id, s.structure, s.combined, s.targets_met, time.perf_counter() - t1, kind=kind,
                          vetoes=[v.model_dump() for v in vetoes] or None))
    moved = bool(notable_changes(head.stats, cand.stats))
    led.attempt(Attempt(tool=name, params=params, mask=mask, kept=kind == "kept", kind=kind, reason=reason,
                        moved=moved, vetoes=vetoes, before=key_metrics(head), after=key_metrics(cand)))
    if kind == "kept":
        return f"kept as {cand.id}: {reason}; structure {s.structure:.3f}; targets met {s.targets_met}/{s.targets_total}", True
    return f"rolled back (current stays {session.current}): {reason}", False


def keep_or_roll_back(ctx: LoopContext, head: Version, cand: Version, vetoes: list[Any],
                      critiqued: bool) -> tuple[str, str]:
    """(Attempt.kind, the reason in words) for a scored candidate against the current version."""
    s = cand.score
    if not s.lock_ok:
        return "lock", (f"structure similarity to the original fell to {s.structure:.3f}, below the lock "
                        f"{ctx.goal.lock:.2f}: the edit damages the photo; try a gentler edit")
    if vetoes:  # "like the structure lock": planners that read only words treat it as a lock rollback
        return "naturalness", (f"naturalness guard: {'; '.join(map(str, vetoes))}: the edit harms the photo beyond "
                               "what the goal asked, like the structure lock; do not repeat it, try a gentler or "
                               "different edit")
    old = head.score
    if old.critique is not None and not critiqued:  # compared like for like: the head's measured score
        old = score_version(ctx.session.original, head.image, ctx.goal, stats=head.stats, reference=ctx.reference,
                            natural=old.naturalness)
    if s.combined < old.combined - SCORE_TOLERANCE:
        return "score", (f"the overall score fell from {old.combined:.3f} to {s.combined:.3f} "
                         f"({describe_delta(head.stats, cand.stats)}); try a different edit")
    return "kept", describe_delta(head.stats, cand.stats)


def fail(led: Ledger, err: StepError, name: str, args: dict[str, Any], mask: str | None,
         t1: float) -> tuple[str, bool]:
    """Record a call that made no version; the text is the observation the model reads."""
    if err.invalid:
        led.spent["invalid_calls"] += 1
    elif isinstance(err, ExecutionFailed):
        led.spent["steps"] += 1  # the op ran: a step, like a rolled-back one
        if err.cause in ("error", "timeout"):
            led.broken[name] = err.cause
    led.record(TraceEntry(led.turn, name, args, mask, "error", str(err), None, seconds=time.perf_counter() - t1,
                          error=err.kind, cause=err.cause or None))
    led.attempt(Attempt(tool=name, params=args, mask=mask, kept=False, kind="error", reason=str(err),
                        error=err.kind, cause=err.cause or None, fields=list(err.fields)))
    return f"error: {err}", False


# ----------------------------------------------------------------------------- when the run ends


def finished(ctx: LoopContext, led: Ledger) -> str | None:
    """Why the run is done: every target of the current version met and the critic (if any) satisfied."""
    head = ctx.session.head
    s = head.score
    if not s.targets_total or s.targets_met < s.targets_total:
        return None
    if ctx.critic is None:
        return "all targets met"
    crit = head.critique if head.critique is not None else review(ctx, led, head)
    if crit is None:
        return "all targets met (the critic gave no review; see the trace)"
    return "all targets met and the critic is satisfied" if crit.goal_met else None


def not_done(ctx: LoopContext) -> list[str]:
    """What keeps the current version from the goal: unmet targets (with values), the critic's objection."""
    head = ctx.session.head
    out = [target_text(t) for t in head.score.targets if not t.met]
    if head.critique is not None and not head.critique.goal_met:
        out.append(critic_objection(head.critique))
    return out


def stalled(led: Ledger, state: LoopState) -> str | None:
    if led.spent["failed_turns"] < MAX_FAILED_TURNS:
        return None
    last = next((e["reason"] for e in reversed([*state["trace"], *led.trace]) if e["outcome"] != "kept"), "")
    return f"the model failed {MAX_FAILED_TURNS} turns in a row (last: {last[:160]})"


def ended_early(led: Ledger, state: LoopState, unmet: list[str]) -> str | None:
    """The planner answered without tool calls: accepted when nothing is unmet, else after the reminders."""
    if unmet and led.spent["idle_answers"] <= MAX_REMINDERS:
        return None
    ai = state["messages"][-1]
    text = ai.content.strip() if isinstance(ai.content, str) else ""
    why = f" after {MAX_REMINDERS} reminders of what is unmet ({'; '.join(unmet)[:200]})" if unmet else ""
    return "the planner finished" + why + (f": {text[:200]}" if text else "")


def best_so_far(ctx: LoopContext, best: Best) -> Best:
    """The version with the highest combined score (a critiqued one counts its critique)."""
    top = max((v for v in ctx.session.versions.values() if v.score is not None), key=lambda v: v.score.combined)
    if best["id"] in ctx.session.versions and best["combined"] >= top.score.combined:
        return best
    return Best(id=top.id, combined=float(top.score.combined))


def _answer(call: dict[str, Any], text: str, ok: bool) -> ToolMessage:
    return ToolMessage(content=text, tool_call_id=call.get("id") or "none",  # some servers send none
                       status="success" if ok else "error")


def _run(ctx: LoopContext, name: str, op: Any) -> Any:
    left = None if ctx.budget.max_seconds is None else ctx.budget.max_seconds
    return run_op(name, op, timeout=ctx.options.op_timeout, retries=ctx.options.op_retries,
                  seconds_left=lambda: None if left is None else left - ctx.seconds())
