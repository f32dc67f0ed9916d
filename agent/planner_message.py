"""What the planning model reads: the system prompt and, each turn, the state message.

The state message is the instruction, a one-line summary and the `agent.protocol.PlanState` block
(targets, measurements, attempts as typed `Attempt`s, the critic's review with its suggestions, the
budget left), with the preview as an image part when the planner sees images (`EditOptions.vision`:
"on", "off", or "auto" = when the model's LangChain profile says it takes image inputs).
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import HumanMessage

from agent.images import data_url
from agent.loop_context import Ledger, LoopContext, dump, floats
from agent.protocol import PlanState, render_state

SYSTEM_PROMPT = """You are imagent, a careful photo editor. You edit by calling tools; each tool \
acts on the CURRENT version of the photo and answers with what changed in measured terms, the \
structural similarity to the original and the new version id. Pixels never appear in text.
Rules: reach the goal's targets with few, moderate edits; keep the photo's structure (a step that \
drops structural similarity below the lock, or makes the overall score worse, is rolled back and \
you are told why — then try a gentler or different edit). Use masks only by the names listed. \
A step that harms the photo beyond what the goal asked (new clipped highlights or shadows, more noise, \
smeared detail, halos, grey turned coloured) is rolled back by the naturalness guard with the measured \
figure: do not repeat it; try a gentler or different edit. When a critic reviews the photo, its issues \
and suggestions are in the state block: act on them. \
When every target is met and the critic is satisfied, or nothing more would help, answer without tool \
calls in one sentence."""


def accepts_images(model: Any) -> bool:
    """True when the model's LangChain profile says it takes image inputs (no profile: False,
    as for the offline planner and local GGUF models)."""
    profile = getattr(model, "profile", None)
    return bool(isinstance(profile, dict) and profile.get("image_inputs"))


def sees_images(vision: str, model: Any) -> bool:
    """Whether the planner gets the preview as an image part (`EditOptions.vision`)."""
    return vision == "on" or (vision == "auto" and accepts_images(model))


def state_message(ctx: LoopContext, led: Ledger, note: str = "") -> HumanMessage:
    """Where the edit stands, for the planner; `note` (e.g. what is still unmet) comes first."""
    session, goal, budget = ctx.session, ctx.goal, ctx.budget
    head = session.head
    s = head.score
    ps = PlanState(
        instruction=goal.instruction,
        intents=[i.model_dump() for i in getattr(goal, "intents", [])],
        targets=s.targets,
        unmapped=list(getattr(goal, "unmapped", [])),
        stats=floats(head.stats),
        original_stats=floats(session.versions["v0"].stats),
        reference_stats=floats(ctx.ref_stats) or None,
        version=head.id,
        structure=round(s.structure, 4),
        lock=goal.lock,
        step=led.spent["steps"],
        history=led.attempts()[-12:],
        critique=dump(getattr(head, "critique", None), exclude={"raw"}),
        steps_left=None if budget.max_steps is None else budget.max_steps - led.spent["steps"],
        masks=sorted(session.masks_full),
    )
    text = (f"{note}Goal: {goal.instruction}\nCurrent version {head.id}: {head.stats.summary()}\n"
            f"Targets met: {s.targets_met}/{s.targets_total}.\n{render_state(ps)}")
    if not ctx.vision:
        return HumanMessage(content=text)
    return HumanMessage(content=[{"type": "text", "text": text},
                                 {"type": "image_url", "image_url": {"url": data_url(head.image)}}])
