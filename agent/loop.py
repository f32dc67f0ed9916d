"""The agent loop as a LangGraph graph: plan -> act (+score) -> decide -> plan | end.

Any LangChain chat model with tool calling plans; the offline planner is one of
them. Tool calls act on the session's current version; each result is scored
(structure lock against the original, goal targets, optional critique). A step
that breaks the lock, harms the photo beyond what the goal asked (the naturalness
guard, `agent.scoring.naturalness_vetoes`: new clipping, noise, lost detail, halos,
neutrals turned coloured) or lowers the combined score is rolled back and the model
is told why, as fields (`Attempt.kind`, `Attempt.vetoes`) and in words. Nothing a model sends or an op does ends the run: bad arguments,
unreadable calls, an op that raises, runs out of memory (retried a few times),
hangs past `op_timeout` or returns NaN all come back as observations, typed by
`agent.protocol.StepError`; calls that never ran count against their own budget
(`max_invalid_calls`), not the step budget. The run ends when the targets are met
(and the critic, if any, agrees), the planner stops, the model keeps failing, or a
budget is spent. The result is the best version, not the last; `LoopResult.goal_met`
is False (and `unmet` says why) whenever a target of it is unmet or the critic is not
satisfied with it.
"""

from __future__ import annotations

import gc
import inspect
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from agent.goals import Budget
from agent.protocol import (
    Attempt,
    BadArguments,
    BudgetSpent,
    ExecutionFailed,
    ModelOutputUnusable,
    PlanState,
    StepError,
    check_arguments,
    render_state,
    unusable_calls,
)
from agent.settings import MAX_INVALID_CALLS, OP_TIMEOUT
from agent.state import EditSession, Version
from tools.lut3d import FILE_BACKED
from tools.registry import ToolError, all_tools, get, to_langchain

SYSTEM_PROMPT = """You are imagent, a careful photo editor. You edit by calling tools; each tool \
acts on the CURRENT version of the photo and answers with what changed in measured terms, the \
structural similarity to the original and the new version id. Pixels never appear in text.
Rules: reach the goal's targets with few, moderate edits; keep the photo's structure (a step that \
drops structural similarity below the lock, or makes the overall score worse, is rolled back and \
you are told why — then try a gentler or different edit). Use masks only by the names listed. \
A step that harms the photo beyond what the goal asked (new clipped highlights or shadows, more noise, \
smeared detail, halos, grey turned coloured) is rolled back by the naturalness guard with the measured \
figure: do not repeat it; try a gentler or different edit. \
When every target is met, or nothing more would help, answer without tool calls in one sentence."""

MAX_FAILED_TURNS = 3
SCORE_TOLERANCE = 1e-3  # a step must not lower the combined score by more than this
OP_RETRIES = 2  # retries of an op that ran out of memory, the one fault that may pass
RETRY_PAUSE = 0.05  # seconds; retry n waits a random 0..RETRY_PAUSE * 2**n (jitter)


@dataclass
class TraceEntry:
    """One executed (or refused) tool call and what it did to the score."""

    turn: int
    tool: str
    params: dict[str, Any]
    mask: str | None
    outcome: str  # kept | rolled_back | error
    reason: str
    version: str | None
    structure: float | None = None
    combined: float | None = None
    targets_met: int | None = None
    seconds: float = 0.0
    critique: dict[str, Any] | None = None  # a critic's review (tool "critic:<name>")
    error: str | None = None  # StepError.kind when outcome is "error": bad_arguments, model_output, ...
    cause: str | None = None  # StepError.cause: timeout, out_of_memory, not_finite, not_an_object, ...
    kind: str | None = None  # Attempt.kind of a kept or rolled-back step: kept, lock, naturalness, score
    vetoes: list[dict[str, Any]] | None = None  # the naturalness guard's findings (Veto fields) when it vetoed


@dataclass
class LoopResult:
    best: Version
    stop_reason: str
    trace: list[TraceEntry]
    turns: int
    model_calls: int
    input_tokens: int
    output_tokens: int
    seconds: float
    messages: list[AnyMessage] = field(default_factory=list)
    cost_usd: float = 0.0
    usage: dict[str, Any] = field(default_factory=dict)  # agent.accounting.Accountant.to_dict()
    invalid_calls: int = 0  # tool calls that never ran (bad arguments, unreadable)
    budget_spent: str | None = None  # BudgetSpent.cause when a budget ended the run
    goal_met: bool = True  # every target of the best version met and the critic (if any) satisfied with it
    unmet: list[str] = field(default_factory=list)  # why not: unmet target labels, the critic's issues


class _State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    stop: str | None


Scorer = Callable[[Version], Any]  # sets version.stats/score; returns the Score
# critic(session, version, goal=, reference=) -> agent.critics.Review (.goal_met, .score 0-10, .suggestions);
# a critic that calls a model names it in .model_key and keeps its last answer in .last_raw.
Critic = Callable[..., Any]


def run_loop(
    session: EditSession,
    goal: Any,
    model: Any,
    *,
    budget: Budget | None = None,
    reference: Any = None,
    critic: Critic | None = None,
    vision: bool = False,
    on_event: Callable[[TraceEntry], None] | None = None,
    accountant: Any = None,
    region: str | None = None,
    checkpointer: Any = None,
    thread_id: str | None = None,
    op_timeout: float = OP_TIMEOUT,
    max_invalid_calls: int = MAX_INVALID_CALLS,
    op_retries: int = OP_RETRIES,
) -> LoopResult:
    """Plan and edit until the goal is met or a budget ends the run; see module doc.

    `region`: the name of a session mask every edit is confined to (`edit --mask`); the
    photo is then measured inside the region's bounding box.

    `accountant`: an `agent.accounting.Accountant` (prices); every model call is recorded
    in it and the cost budget (`budget.max_cost_usd`) reads it.

    `checkpointer` + `thread_id`: a LangGraph checkpointer (agent.sessions uses SqliteSaver); a
    thread with a saved, unfinished state is resumed from its last checkpoint instead of started
    over. A session offering `recall(tool_call_id) -> version id | None` and
    `adopt_call(version, tool_call_id)` makes the resumed act node skip calls already committed.

    `op_timeout`: seconds the loop waits for one op (less when the time budget ends sooner); a
    late op runs on in its thread and its result is discarded. `max_invalid_calls`: tool calls
    that could not run as sent (bad arguments, unreadable calls) before the run ends.
    `op_retries`: retries, after a jittered pause, of an op that ran out of memory.
    """
    from agent.accounting import Accountant, model_key
    from agent.scoring import naturalness_vetoes, score_version
    from tools.analysis import describe_delta, measure

    budget = budget or getattr(goal, "budget", None) or Budget()
    t0 = time.perf_counter()
    counters = {"calls": 0, "in": 0, "out": 0, "steps": 0, "turns": 0, "failed_turns": 0, "invalid": 0}
    broken: dict[str, str] = {}  # tool -> cause: ops that crashed or hung are not run again in this edit
    spent_budget: list[str] = []
    acct = accountant if accountant is not None else Accountant()
    planner_key = model_key(model)
    critic_phase = False  # once the critic has judged, every candidate is judged before the keep decision
    trace: list[TraceEntry] = []
    history: list[Attempt] = []
    if reference is not None:
        from agent.state import preview_of

        reference = preview_of(reference, session.preview_size)
    ref_stats = measure(reference) if reference is not None else None

    def score(v: Version) -> Any:
        from tools.masks import crop_to, with_local_metrics

        v.stats = session.measure(v.id, region) if v.id in session.versions else \
            measure(v.image if region is None else crop_to(v.image, session.mask(region, v.image)))
        # region targets ("dL@face", "defects_left"): extra fields on the stats, so every scorer sees them
        v.stats = with_local_metrics(v.stats, session.original, v.image, [t.metric for t in getattr(goal, "targets", [])],
                                     lambda n: session.mask(n, v.image) if n in session.masks_full else None)
        v.score = score_version(session.original, v.image, goal, stats=v.stats, reference=reference,
                                original_stats=session.measure("v0", region))
        return v.score

    def review(v: Version) -> Any:
        """The critic's review of `v`, folded into its combined score; None when the critic failed."""
        nonlocal critic_phase
        critic_phase = True
        key = getattr(critic, "model_key", None)
        t1 = time.perf_counter()
        err = None
        try:
            crit = critic(session, v, goal=goal, reference=reference)  # type: ignore[misc]
        except Exception as exc:  # a failing critic must not end the edit; the trace says why
            crit, err = None, f"{type(exc).__name__}: {str(exc)[:200]}"
        seconds = time.perf_counter() - t1
        if key is not None:
            counters["calls"] += 1
            call = acct.record(counters["turns"], "critic", key, getattr(critic, "last_raw", None), seconds, err)
            counters["in"] += call.input_tokens
            counters["out"] += call.output_tokens
        name = f"critic:{getattr(critic, 'name', type(critic).__name__)}"
        if crit is None:
            _record(TraceEntry(counters["turns"], name, {}, None, "error", f"the critic failed: {err}", v.id,
                               seconds=seconds))
            return None
        v.critique = crit
        v.score = score_version(session.original, v.image, goal, stats=v.stats, reference=reference,
                                critique=float(crit.score), natural=v.score.naturalness)
        reliable = getattr(crit, "reliable", True)
        issues = ", ".join(getattr(crit, "issues", []) or []) or "no issues"
        why = "; ".join(getattr(crit, "contradictions", []) or [])
        reason = (f"{'goal met' if crit.goal_met else 'not yet'}: score {crit.score:.1f}/10, {issues}"
                  + ("" if reliable else f"; UNRELIABLE, contradicts the measurements: {why}"))
        _record(TraceEntry(counters["turns"], name, {}, None, "critique" if reliable else "unreliable", reason,
                           v.id, v.score.structure, v.score.combined, v.score.targets_met, seconds,
                           critique=_dump(crit)))
        return crit

    score(session.head)
    tools = [t for t in all_tools() if (not t.read_only or t.name == "measure" or t.family == "mask")
             and t.name not in FILE_BACKED]  # a planner cannot load a user's .cube
    lc_tools = [to_langchain(t) for t in tools]
    # Strict schemas where the provider takes them: the model cannot invent or drop arguments.
    if "strict" in inspect.signature(model.bind_tools).parameters:
        bound = model.bind_tools(lc_tools, strict=True)
    else:
        bound = model.bind_tools(lc_tools)

    def over_budget() -> str | None:
        spent = budget_spent()
        if spent is None:
            return None
        spent_budget[:] = [spent.cause]
        return str(spent)

    def budget_spent() -> BudgetSpent | None:
        if budget.max_steps is not None and counters["steps"] >= budget.max_steps:
            return BudgetSpent(f"step budget spent ({budget.max_steps} edits)", cause="steps")
        if budget.max_model_calls is not None and counters["calls"] >= budget.max_model_calls:
            return BudgetSpent(f"model-call budget spent ({budget.max_model_calls} calls)", cause="model_calls")
        if budget.max_seconds is not None and time.perf_counter() - t0 >= budget.max_seconds:
            return BudgetSpent(f"time budget spent ({budget.max_seconds:g} s)", cause="seconds")
        if counters["invalid"] and counters["invalid"] >= max_invalid_calls:  # 0: the first one ends the run
            return BudgetSpent(f"invalid-call budget spent ({max_invalid_calls} tool calls could not run as sent)",
                               cause="invalid_calls")
        cap = getattr(budget, "max_cost_usd", None)
        if cap is not None:
            cost = acct.cost_usd
            if cost >= cap:
                return BudgetSpent(f"cost budget spent (${cost:.4f} of ${cap:g})", cause="cost")
            # Hard budget: stop before a call that would likely pass it (the last one's cost).
            if cost + acct.last_cost("planner") > cap:
                return BudgetSpent(f"cost budget spent (${cost:.4f} of ${cap:g}; the next call would pass it)",
                                   cause="cost")
        return None

    def state_message() -> HumanMessage:
        head = session.head
        s = head.score
        ps = PlanState(
            instruction=goal.instruction,
            intents=[i.model_dump() for i in getattr(goal, "intents", [])],
            targets=s.targets,
            unmapped=list(getattr(goal, "unmapped", [])),
            stats=_floats(head.stats),
            original_stats=_floats(session.versions["v0"].stats),
            reference_stats=_floats(ref_stats) or None,
            version=head.id,
            structure=round(s.structure, 4),
            lock=goal.lock,
            step=counters["steps"],
            history=history[-12:],
            critique=_dump(getattr(head, "critique", None), exclude={"raw"}),
            steps_left=None if budget.max_steps is None else budget.max_steps - counters["steps"],
            masks=sorted(session.masks_full),
        )
        text = (
            f"Goal: {goal.instruction}\nCurrent version {head.id}: {head.stats.summary()}\n"
            f"Targets met: {s.targets_met}/{s.targets_total}.\n{render_state(ps)}"
        )
        if not vision:
            return HumanMessage(content=text)
        from agent.images import data_url

        return HumanMessage(content=[{"type": "text", "text": text},
                                     {"type": "image_url", "image_url": {"url": data_url(head.image)}}])

    def plan(state: _State) -> dict[str, Any]:
        reason = over_budget()
        if reason:
            return {"stop": reason}
        counters["turns"] += 1
        counters["calls"] += 1
        t1 = time.perf_counter()
        try:
            ai = bound.invoke(state["messages"])
        except Exception as exc:  # provider errors (after the client's retries) end the run with the best so far
            acct.record(counters["turns"], "planner", planner_key, None, time.perf_counter() - t1,
                        f"{type(exc).__name__}: {str(exc)[:200]}")
            unusable = unusable_calls(exc)
            if not unusable:
                return {"stop": f"the planning model failed: {type(exc).__name__}: {exc}"}
            # the client could not build a message from the answer (e.g. arguments sent as a list): tell the model
            for err in unusable:
                fail(err, "?", {}, None, t1)
            counters["failed_turns"] += 1
            told = HumanMessage(content="Your last answer could not be used: " + "; ".join(map(str, unusable))
                                + ". Call the tools again, each with a JSON object of named fields.")
            stop = decide()
            return {"messages": [AIMessage(content="(an answer with unreadable tool calls)"), told]
                    + ([] if stop else [state_message()]), "stop": stop}
        call = acct.record(counters["turns"], "planner", planner_key, ai, time.perf_counter() - t1)
        counters["in"] += call.input_tokens
        counters["out"] += call.output_tokens
        return {"messages": [ai]}

    def act(state: _State) -> dict[str, Any]:
        ai = state["messages"][-1]
        calls = list(getattr(ai, "tool_calls", []) or [])
        bad = list(getattr(ai, "invalid_tool_calls", []) or [])
        if not calls and not bad:
            text = ai.content if isinstance(ai.content, str) else ""
            crit = session.head.critique
            unmet = "" if crit is None or crit.goal_met else \
                f" (the critic is not satisfied: {', '.join(getattr(crit, 'issues', []) or []) or 'no issue named'})"
            return {"stop": "the planner finished" + unmet + (f": {text.strip()[:200]}" if text.strip() else "")}
        out: list[AnyMessage] = []
        any_ok = False
        for call in bad:
            msg = f"malformed tool call {call.get('name')!r}: {call.get('error') or 'arguments are not valid JSON'}"
            text, _ = fail(ModelOutputUnusable(msg, tool=str(call.get("name")), cause="not_json"),
                           str(call.get("name")), {}, None, time.perf_counter())
            out.append(ToolMessage(content=text, tool_call_id=call.get("id") or "invalid", status="error"))
        for call in calls:
            spent = over_budget()
            if spent:  # the model is told which budget ended the run
                out.append(ToolMessage(content=f"not run: {spent}", tool_call_id=call.get("id") or "none",
                                       status="error"))
                continue
            text, ok = execute(call)
            any_ok |= ok
            out.append(ToolMessage(content=text, tool_call_id=call.get("id") or "none",  # some servers send none
                                   status="success" if ok else "error"))
        counters["failed_turns"] = 0 if any_ok else counters["failed_turns"] + 1
        stop = decide()
        if stop is None:
            out.append(state_message())
        return {"messages": out, "stop": stop}

    def execute(call: dict[str, Any]) -> tuple[str, bool]:
        name, raw = str(call.get("name") or "?"), call.get("args")
        t1 = time.perf_counter()
        try:
            args, mask = check_arguments(name, {} if raw is None else raw)
        except StepError as err:
            return fail(err, name, raw if isinstance(raw, dict) else {"arguments": raw}, None, t1)
        done = session.recall(call["id"]) if hasattr(session, "recall") and call.get("id") else None
        if done is not None and done in session.versions:  # committed before a crash: not redone
            session.current = done
            v = session.versions[done]
            if v.score is None:
                score(v)
            counters["steps"] += 1
            _record(TraceEntry(counters["turns"], name, args, mask, "kept", "committed before the interruption",
                               done, v.score.structure, v.score.combined, v.score.targets_met))
            return f"kept as {done} (done before an interruption); targets met {v.score.targets_met}", True
        try:
            tool = get(name)
            if name in broken:
                raise BadArguments(f"not run: {name} failed earlier in this edit ({broken[name]}); use another tool",
                                   tool=name, cause="failed_before")
            if tool.family == "mask":  # makes a named mask in the session, not a version
                from tools.masks import combine, describe_mask

                p = tool.validate(args)
                made = run_op(name, lambda: tool(session.head.image, p))
                old = session.mask(p.name, made) if p.name in session.masks_full else None
                session.add_mask(p.name, combine(old, made, p.combine, p.name))
                info = describe_mask(session.head.image, session.mask(p.name, session.head.image))
                _record(TraceEntry(counters["turns"], name, p.model_dump(), None, "mask", info.summary(), None,
                                   seconds=time.perf_counter() - t1))
                return f"mask {p.name!r}: {info.summary()}", True
            if tool.read_only:
                return f"{session.head.id}: {session.head.stats.summary()}", True
            if mask is None and region is not None and tool.supports_mask:
                mask = region
            head = session.head
            cand = run_op(name, lambda: session.try_step(name, args, mask))
            try:
                s = score(cand)
            except Exception as exc:  # what the op made cannot be measured (wrong dtype, ...): the op's fault
                raise ExecutionFailed(f"{name} made an image that cannot be measured ({type(exc).__name__}: "
                                      f"{str(exc)[:160]}); use another tool", tool=name, cause="error") from exc
            counters["steps"] += 1
        except ToolError as exc:
            return fail(BadArguments(str(exc), tool=name, fields=exc.fields), name, args, mask, t1)
        except StepError as err:
            return fail(err, name, args, mask, t1)
        vetoes = naturalness_vetoes(s.naturalness, goal, session.measure("v0", region),
                                    parent=head.score.naturalness) if s.lock_ok and s.naturalness else []
        if critic is not None and critic_phase and s.lock_ok and not vetoes and head.critique is not None:
            # the head's score includes a critique: judge the candidate the same way before comparing
            review(cand)
            s = cand.score
        old = head.score
        before, after = _key_metrics(head), _key_metrics(cand)
        if not s.lock_ok:
            outcome, kind = "rolled_back", "lock"
            reason = (f"structure similarity to the original fell to {s.structure:.3f}, below the lock "
                      f"{goal.lock:.2f}: the edit damages the photo; try a gentler edit")
        elif vetoes:
            # "like the structure lock": planners that read only words treat it as a lock rollback
            outcome, kind = "rolled_back", "naturalness"
            reason = (f"naturalness guard: {'; '.join(map(str, vetoes))}: the edit harms the photo beyond what "
                      "the goal asked, like the structure lock; do not repeat it, try a gentler or different edit")
        elif s.combined < old.combined - SCORE_TOLERANCE:
            outcome, kind = "rolled_back", "score"
            reason = (f"the overall score fell from {old.combined:.3f} to {s.combined:.3f} "
                      f"({describe_delta(head.stats, cand.stats)}); try a different edit")
        else:
            outcome, kind = "kept", "kept"
            if hasattr(session, "adopt_call"):
                session.adopt_call(cand, call.get("id"))
            else:
                session.adopt(cand)
            reason = describe_delta(head.stats, cand.stats)
        _record(TraceEntry(counters["turns"], name, cand.recipe.steps[-1].params, mask, outcome, reason,
                           cand.id, s.structure, s.combined, s.targets_met, time.perf_counter() - t1, kind=kind,
                           vetoes=[v.model_dump() for v in vetoes] or None))
        history.append(Attempt(tool=name, params=cand.recipe.steps[-1].params, mask=mask, kept=outcome == "kept",
                               kind=kind, reason=reason, vetoes=vetoes, before=before, after=after))
        if outcome == "kept":
            return (f"kept as {cand.id}: {reason}; structure {s.structure:.3f}; "
                    f"targets met {s.targets_met}/{s.targets_total}"), True
        return f"rolled back (current stays {session.current}): {reason}", False

    def run_op(name: str, op: Callable[[], Any]) -> Any:
        """op() on a worker thread within the op timeout and the time left; faults become ExecutionFailed."""
        import torch

        for attempt in range(op_retries + 1):
            left = None if budget.max_seconds is None else budget.max_seconds - (time.perf_counter() - t0)
            wait = op_timeout if left is None else max(0.0, min(op_timeout, left))
            try:
                out = _within(op, wait)
            except _LateOp:
                why = "the op timeout" if wait >= op_timeout else "the time budget ends"
                raise ExecutionFailed(f"{name} did not finish within {wait:.1f} s ({why}); it is abandoned and "
                                      "will not be run again in this edit", tool=name, cause="timeout") from None
            except ToolError:
                raise
            except (MemoryError, torch.OutOfMemoryError) as exc:
                if attempt == op_retries:
                    raise ExecutionFailed(f"{name} ran out of memory ({attempt + 1} tries): {str(exc)[:120]}; "
                                          "try a smaller region or another tool", tool=name,
                                          cause="out_of_memory") from exc
                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                time.sleep(random.uniform(0, RETRY_PAUSE * 2 ** attempt))
                continue
            except Exception as exc:  # a crashing op must not end the edit: the model is told once
                raise ExecutionFailed(f"{name} failed: {type(exc).__name__}: {str(exc)[:160]}; it will not be "
                                      "run again in this edit, use another tool", tool=name, cause="error") from exc
            image = getattr(out, "image", out)
            if isinstance(image, torch.Tensor) and image.is_floating_point() and not bool(image.isfinite().all()):
                raise ExecutionFailed(f"{name} produced NaN or infinite values with these arguments; the result "
                                      "is discarded, try other values or another tool", tool=name, cause="not_finite")
            return out
        raise AssertionError("unreachable")

    def fail(err: StepError, name: str, args: dict[str, Any], mask: str | None, t1: float) -> tuple[str, bool]:
        """Record a call that made no version; the text is the observation the model reads."""
        if err.invalid:
            counters["invalid"] += 1
        elif isinstance(err, ExecutionFailed):
            counters["steps"] += 1  # the op ran: a step, like a rolled-back one
            if err.cause in ("error", "timeout"):
                broken[name] = err.cause
        _record(TraceEntry(counters["turns"], name, args, mask, "error", str(err), None,
                           seconds=time.perf_counter() - t1, error=err.kind, cause=err.cause or None))
        history.append(Attempt(tool=name, params=args, mask=mask, kept=False, kind="error", reason=str(err)))
        return f"error: {err}", False

    def decide() -> str | None:
        s = session.head.score
        if s.targets_total and s.targets_met == s.targets_total:
            if critic is None:
                return "all targets met"
            head = session.head
            crit = head.critique if head.critique is not None else review(head)
            if crit is None:
                return "all targets met (the critic failed; see the trace)"
            if crit.goal_met:
                return "all targets met and the critic is satisfied"
        if counters["failed_turns"] >= MAX_FAILED_TURNS:
            last = next((e.reason for e in reversed(trace) if e.outcome != "kept"), "")
            return f"the model failed {MAX_FAILED_TURNS} turns in a row (last: {last[:160]})"
        return over_budget()

    def verdict(best: Version) -> list[str]:
        """Why the best version does not meet the goal: its unmet targets, the critic's objections."""
        unmet = [t.label for t in best.score.targets if not t.met]
        # The measurement critic's objections (a cast on "brighten it") are the guard's and the
        # targets' business: only a model critic's verdict can hold back a goal whose targets are met.
        if critic is None or getattr(critic, "name", "") == "offline" or unmet or not best.score.targets_total:
            return unmet
        crit = best.critique if best.critique is not None else review(best)
        if crit is None or crit.goal_met:  # a failed critic is in the trace; the measurements decide
            return unmet
        return [f"the critic is not satisfied ({', '.join(getattr(crit, 'issues', []) or []) or 'no issue named'})"]

    def refined(best: Version) -> Version:
        """The best version with its steps' continuous params fitted jointly by autograd
        (agent/refine.py) toward the reference, adding the look's global tools it lacks, inside
        the structure lock and the naturalness guard. Kept, as a new version, only when it
        scores higher. (Toward targets alone `refine` works too, but a target is a range the
        planner steers into already; fitting to it moved scripted runs for no measured gain.)"""
        from agent.refine import LOOK_TOOLS, Objective, refine
        from agent.scoring import naturalness, naturalness_vetoes
        from tools.recipe import Step

        if region is not None:  # the fitted stats are whole-image ones, a region's are not
            return best
        if reference is None:  # targets alone are ranges the planner already steers into
            return best
        objective, extra = Objective(reference=reference), LOOK_TOOLS
        v0 = session.measure("v0")

        def guard(original: Any, image: Any) -> str | None:
            vetoes = naturalness_vetoes(naturalness(original, image, original_stats=v0), goal, v0)
            return vetoes[0].text if vetoes else None

        used = {st.mask for st in best.recipe.steps if st.mask}
        try:
            r = refine(session.original, best.recipe.steps, objective, lock=goal.lock, extra=extra,
                       masks={n: session.mask(n, session.original) for n in used}, guard=guard)
        except Exception as exc:  # a refinement is a bonus: its failure keeps the best version as found
            _record(TraceEntry(counters["turns"], "refine", {}, None, "error", f"{type(exc).__name__}: {exc}"[:300], None))
            return best
        if not r.loss_after < r.loss_before:
            return best
        session._made += 1
        while f"v{session._made}" in session.versions:  # ids are never reused
            session._made += 1
        recipe = best.recipe.model_copy(update={"steps": [Step.model_validate(x) for x in r.steps]})
        v = Version(f"v{session._made}", r.image, recipe, parent=best.id, note="refined")
        session.versions[v.id] = v
        score(v)
        if critic is not None and best.critique is not None:  # compared like for like: critiqued too
            review(v)
        kept = v.score.combined > best.score.combined
        _record(TraceEntry(counters["turns"], "refine", {"fitted": ", ".join(r.fitted)}, None,
                           "kept" if kept else "rolled_back",
                           f"fitted by autograd: loss {r.loss_before:.4g} -> {r.loss_after:.4g}; score "
                           f"{best.score.combined:.3f} -> {v.score.combined:.3f}", v.id,
                           structure=v.score.structure, combined=v.score.combined, targets_met=v.score.targets_met))
        if not kept:
            del session.versions[v.id]
            return best
        session.current = v.id
        return v

    def _record(entry: TraceEntry) -> None:
        trace.append(entry)
        if on_event:
            on_event(entry)

    graph = StateGraph(_State)
    graph.add_node("plan", plan)
    graph.add_node("act", act)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", after_plan, ["act", "plan", END])
    graph.add_conditional_edges("act", after_act, ["plan", END])
    app = graph.compile(checkpointer=checkpointer)
    config: dict[str, Any] = {"recursion_limit": 4 * (budget.max_model_calls or 50) + 10}
    saved = None
    if checkpointer is not None:
        config["configurable"] = {"thread_id": thread_id or "imagent"}
        saved = app.get_state(config) if checkpointer.get_tuple(config) is not None else None

    init: _State = {"messages": [SystemMessage(content=SYSTEM_PROMPT), state_message()], "stop": None}
    if saved is not None:  # resume: the versions the thread committed are in the session; score them
        for v in session.versions.values():
            if v.score is None and v.id != "v0":
                score(v)
        final = saved.values
        if saved.next:
            final = app.invoke(None, config=config)
    else:
        stop = decide() if session.head.score.targets_total else None
        final = {"messages": init["messages"], "stop": stop}
        if stop is None:
            final = app.invoke(init, config=config)
    best = max(session.versions.values(), key=lambda v: (v.score.combined if v.score else float("-inf")))
    best = refined(best)
    unmet = verdict(best)
    return LoopResult(best=best, stop_reason=final.get("stop") or "done", trace=trace, turns=counters["turns"],
                      model_calls=counters["calls"], input_tokens=counters["in"], output_tokens=counters["out"],
                      seconds=time.perf_counter() - t0, messages=list(final["messages"]),
                      cost_usd=acct.cost_usd, usage=acct.to_dict(), invalid_calls=counters["invalid"],
                      budget_spent=spent_budget[0] if spent_budget else None, goal_met=not unmet, unmet=unmet)


def after_plan(state: _State) -> str:
    """End on a stop; act on the model's answer; plan again when the answer could not be read."""
    if state.get("stop"):
        return END
    return "act" if isinstance(state["messages"][-1], AIMessage) else "plan"


def after_act(state: _State) -> str:
    return END if state.get("stop") else "plan"


class _LateOp(Exception):
    """The op did not finish in the time given."""


def _within(op: Callable[[], Any], seconds: float) -> Any:
    """op() on a daemon thread, waiting at most `seconds`; a late op runs on and its result is dropped.

    Python cannot stop a thread: a hung op keeps its thread (and the CPU it uses) until it returns.
    """
    import torch

    box: dict[str, Any] = {}
    grad = torch.is_grad_enabled()  # grad mode is per thread; the op sees the caller's

    def work() -> None:
        try:
            with torch.set_grad_enabled(grad):
                box["out"] = op()
        except BaseException as exc:  # handed to the waiting thread, which decides
            box["exc"] = exc

    worker = threading.Thread(target=work, name="imagent-op", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise _LateOp
    if "exc" in box:
        raise box["exc"]
    return box["out"]


def _floats(stats: Any) -> dict[str, float]:
    if stats is None:
        return {}
    return {k: round(float(v), 4) for k, v in stats.model_dump().items() if isinstance(v, (int, float))}


def _dump(obj: Any, exclude: set[str] | None = None) -> dict[str, Any] | None:
    return obj.model_dump(exclude=exclude) if hasattr(obj, "model_dump") else None


def _key_metrics(v: Version) -> dict[str, float]:
    keys = ("mean_L", "p05_L", "p95_L", "clipped_shadows_pct", "clipped_highlights_pct", "rms_contrast",
            "colorfulness", "cast_a", "cast_b", "mean_saturation", "noise_sigma", "sharpness")
    d = _floats(v.stats)
    out = {k: d[k] for k in keys if k in d}
    if v.score is not None:
        out["structure"] = round(float(v.score.structure), 4)
        out["combined"] = round(float(v.score.combined), 4)
    return out
