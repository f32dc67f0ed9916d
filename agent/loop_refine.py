"""The loop's last step: the best version's continuous params fitted jointly by autograd toward the
reference (`agent.refine`), kept as a new version only when it scores higher."""

from __future__ import annotations

from typing import Any

from agent.loop_context import Ledger, LoopContext, review
from agent.loop_state import TraceEntry
from agent.refine import LOOK_TOOLS, Objective, refine
from agent.scoring import naturalness, naturalness_vetoes
from agent.state import Version
from tools.recipe import Step


def refine_best(ctx: LoopContext, led: Ledger, best: Version) -> Version:
    """`best` with its steps' params fitted toward the reference, adding the look's global tools it
    lacks, inside the structure lock and the naturalness guard; a new version when it scores higher.
    (Toward targets alone `refine` works too, but a target is a range the planner steers into
    already; fitting to it moved scripted runs for no measured gain.) Without a reference, or inside
    a region (the fitted stats are whole-image ones), `best` as it is."""
    session, goal = ctx.session, ctx.goal
    if ctx.region is not None or ctx.reference is None:
        return best
    v0 = session.measure("v0")

    def guard(original: Any, image: Any) -> str | None:
        vetoes = naturalness_vetoes(naturalness(original, image, original_stats=v0), goal, v0)
        return vetoes[0].text if vetoes else None

    used = {st.mask for st in best.recipe.steps if st.mask}
    try:
        r = refine(session.original, best.recipe.steps, Objective(reference=ctx.reference), lock=goal.lock,
                   extra=LOOK_TOOLS, masks={n: session.mask(n, session.original) for n in used}, guard=guard)
    except Exception as exc:  # a refinement is a bonus: its failure keeps the best version as found
        led.record(TraceEntry(led.turn, "refine", {}, None, "error", f"{type(exc).__name__}: {exc}"[:300], None))
        return best
    if not r.loss_after < r.loss_before:
        return best
    session._made += 1
    while f"v{session._made}" in session.versions:  # ids are never reused
        session._made += 1
    recipe = best.recipe.model_copy(update={"steps": [Step.model_validate(x) for x in r.steps]})
    v = Version(f"v{session._made}", r.image, recipe, parent=best.id, note="refined")
    session.versions[v.id] = v
    ctx.score(v)
    if ctx.critic is not None and best.critique is not None:  # compared like for like: critiqued too
        review(ctx, led, v)
    kept = v.score.combined > best.score.combined
    led.record(TraceEntry(led.turn, "refine", {"fitted": ", ".join(r.fitted)}, None, "kept" if kept else "rolled_back",
                          f"fitted by autograd: loss {r.loss_before:.4g} -> {r.loss_after:.4g}; score "
                          f"{best.score.combined:.3f} -> {v.score.combined:.3f}", v.id,
                          structure=v.score.structure, combined=v.score.combined, targets_met=v.score.targets_met))
    if not kept:
        del session.versions[v.id]
        return best
    session.current = v.id
    return v
