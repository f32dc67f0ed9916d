"""One chat turn run by the loop on the session's store: every version the loop keeps is
committed the moment it is made (a crash loses at most the step in flight), and a turn a crash
cut off resumes from its LangGraph checkpoint without redoing the calls it committed.
The functions take `s`, the turn's `agent.chat.Session`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from langchain_core.runnables import RunnableLambda

from agent import wishes
from agent.chat_requests import Reply, Request, version_number
from agent.configure import loop_options
from agent.critics import make_critic
from agent.loop import run_loop
from agent.sessions import CheckpointRefused
from agent.state import EditSession, Version, key_metrics
from tools.recipe import Recipe
from tools.registry import ToolError, get


def run(s: Any, text: str, req: Request, goal: Any) -> Reply:
    """Record an edit turn and run it."""
    turn = s.store.begin_turn(text, "edit", base=req.base, request=asdict(req), goal=goal.to_json())
    return execute(s, turn, req, goal)


def execute(s: Any, turn: int, req: Request, goal: Any, resume: bool = False) -> Reply:
    """Run turn `turn` (resume: continue it from its checkpoint) and record what it made."""
    store = s.store
    session = _turn_session(s, req.base, turn, resume=resume)
    # direct wishes: a look or a vignette is applied as asked, then the loop goes on from it
    # (a resumed turn has them already); framing would change the size a session keeps
    first, framing = wishes.recipes(goal)
    for step in first.steps if not resume else []:
        session.adopt(session.try_step(step.tool, step.params, mask=req.mask))
    planner = s.planner if req.mask is None else MaskScoped(s.planner, req.mask)
    context = s.context(before=turn)
    run_goal = goal.model_copy(update={"instruction": goal.instruction + (f"\n{context}" if context else "")})
    before = session.versions.get(f"v{req.base}", session.head)
    saver, thread = store.checkpointer(), f"turn-{turn}"
    try:
        result = run_loop(session, run_goal, planner, loop_options(s.options, goal), on_event=s.on_event,
                          checkpointer=saver, thread_id=thread, critic=_make_critic(s))
    except CheckpointRefused:
        store.interrupt_turn(turn)  # nothing ran: the turn stays as the crash left it
        raise
    except Exception as exc:
        store.end_turn(turn, result=store.head, reply=f"failed: {type(exc).__name__}: {exc}", status="failed")
        raise
    best = int(result.best.id[1:])
    store.set_head(best)
    kept = [e for e in result.trace if e.outcome == "kept"]
    steps = ", ".join([*(f"{st.tool} (as asked)" for st in first.steps),
                       *(f"{e.tool}{'@' + e.mask if e.mask else ''}" for e in kept)]) or "no edit kept"
    if framing.steps:
        steps += ("; not done here: " + ", ".join(st.tool for st in framing.steps)
                  + " (a session keeps the photo's framing; use imagent edit or imagent apply)")
    score = result.best.score
    text_out = (f"{req.instruction} -> v{best} from v{req.base} ({steps}); {result.stop_reason}; "
                f"targets met {score.targets_met}/{score.targets_total}; "
                f"{before.stats.summary() if before.stats else ''} -> {result.best.stats.summary()}")
    if not result.goal_met:
        text_out += "; goal not met: " + ", ".join(result.unmet)
    store.end_turn(turn, result=best, reply=text_out)
    saver.delete_thread(thread)  # the turn is finished: its checkpoints are no longer needed
    return Reply(text_out, version=f"v{best}", trace=result.trace, goal=goal, base=f"v{req.base}",
                 before=before.stats, after=result.best.stats, seconds=result.seconds,
                 cost_usd=result.cost_usd)


def _make_critic(s: Any) -> Any:
    if not isinstance(s.critic, str):
        return s.critic
    return make_critic(s.critic, base_url=s.base_url, **s.credentials())


def _turn_session(s: Any, base: int, turn: int, resume: bool = False) -> EditSession:
    store = s.store

    def commit(v: Version, call_id: str | None) -> None:
        row = store.commit_version(version_number(v.parent or "v0"), v.image, v.recipe.model_dump_json(), turn=turn,
                                   stats=key_metrics(v), call_id=call_id)
        v.id = row.name
        s.cache[row.id] = v.image
        store.set_meta(head=row.id, redo=[])

    def recall(call_id: str) -> str | None:
        n = store.call_version(turn, call_id)
        return None if n is None else f"v{n}"

    session = _TurnSession(s.original_full, preview_size=s.preview, commit=commit,
                           next_id=store.next_version_id, calls=recall)
    for name, m in store.masks().items():
        session.masks_full[name] = m
    # a resumed turn starts with the versions it already committed, current where it stopped
    for n in [base] + (store.turn_versions(turn) if resume else []):
        if n == 0:
            continue
        row = store.require(n)
        session.versions[row.name] = Version(row.name, s.image(n), Recipe.model_validate_json(row.recipe),
                                             parent=f"v{row.parent}")
    head = f"v{store.head}" if resume else f"v{base}"
    session.current = head if head in session.versions else f"v{base}"
    return session


@dataclass
class _TurnSession(EditSession):
    """The loop's EditSession for one turn: ids come from the store and kept versions are committed."""

    commit: Any = None
    next_id: Any = None
    calls: Any = None  # tool_call_id -> the version it committed ("vN"), from the store

    def try_step(self, tool: str, params: Any, mask: str | None = None) -> Version:
        if self.next_id is not None:
            self._made = self.next_id() - 1
        return super().try_step(tool, params, mask)

    def recall(self, call_id: str) -> str | None:
        return None if self.calls is None else self.calls(call_id)

    def adopt_call(self, version: Version, call_id: str | None) -> None:
        if self.commit is not None:
            self.commit(version, call_id)  # durable before the loop sees it as kept; may reuse a stored id
        super().adopt(version)

    def adopt(self, version: Version) -> None:
        self.adopt_call(version, None)


class MaskScoped:
    """Wraps a planning model so every edit it calls is confined to one named mask."""

    def __init__(self, model: Any, mask: str) -> None:
        self.model, self.mask = model, mask

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.model.bind_tools(tools, **kwargs) | RunnableLambda(self._scope)

    def _scope(self, ai: Any) -> Any:
        calls = []
        for c in getattr(ai, "tool_calls", None) or []:
            try:
                read_only = get(c["name"]).read_only
            except ToolError:
                read_only = True
            calls.append(c if read_only else {**c, "args": {**(c.get("args") or {}), "mask": self.mask}})
        return ai.model_copy(update={"tool_calls": calls}) if calls else ai
