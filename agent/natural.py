"""Magnitudes from the learned prior: what this photo looks like corrected, and how far to go.

A goal's words give a direction ("too dark", "warmer") and a degree ("a little", "way");
how far the photo should move comes from the prior (`tools/prior.py`: a small model trained
on real photos to estimate the correction that makes a photo natural) and the measurements,
not from a fixed L* band. `Natural` holds the prior's correction of the original's preview
and the stats of that corrected preview; `agent.goals.parse_goal` reads it:

- blind "restore / enhance / fix this photo": each fault from the estimator that reads it best
  (settle.py `_blind`): exposure from the prior at `BLIND_STRENGTH`, targets where its steps land
  and its steps the first plan; the cast, the black point, contrast and colour from the rules;
- an exposure wish ("too dark", "brighter", "fix the exposure"): the prior's stops when they
  point the asked way, within the degree's band (`exposure_stops`): "a little" stays under
  half a stop; a high-key or low-key photo keeps its key because the prior learned keys from
  content, where the rules pushed every photo toward L* 45-62;
- a colour wish ("fix the colours", "remove the cast") stays with the measured cast: the prior
  reads colour weakly (its white-balance output is shrunk to 0.35 and its tint to 0 on held-out
  train photos, evals/prior_train.py), so a named cast is the rules' to fix.

Without the prior's weights (or with `prior=False`, the `rules` system of the evals) goals
fall back to the rules in agent/recipes.py and agent/settle.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from tools.analysis import Stats
    from tools.prior import Correction

# Exposure bands per degree, in stops: (least, most). Under the least the asked change would not
# show (the prior says the photo is fine, or disagrees): the least is used. "a little" (degree
# 0.5) is at most half a stop; "way too dark" (degree 2) follows the prior up to the tool's 4.
_BANDS = ((0.75, (0.2, 0.5)), (1.5, (0.5, 2.5)), (8.0, (0.75, 4.0)))
# A blind restore applies the prior's correction at this strength: on held-out TRAIN photos it left
# 3/40 worse than the input by > 1 dB against 10/40 at full strength (evals/prior_train.py)
BLIND_STRENGTH = 0.6
# A blind restore denoises or sharpens only when the prior sees the noise or blur as well as the
# rules' measurements (its own thresholds for a denoise or sharpen step, tools/prior.py)
NOISE_SEEN, BLUR_SEEN = 0.01, 0.7
EXPOSURE_OK_STOPS = 0.15  # "fix the exposure": under this the prior finds it right and nothing moves
# The prior's steps a blind restore may take (noise and blur stay with the measured rules of
# agent/settle.py `restore`, gated by the prior's own noise and blur estimates).
TONE_TOOLS = ("white_balance", "exposure", "levels", "contrast", "saturation")
# Which intents take their magnitude from the prior: IntentSpec.prior (agent/intent_spec.py).


@dataclass(frozen=True)
class Natural:
    """The prior's correction of a photo's preview and the measurements of the corrected preview."""

    correction: Correction
    stats: Stats
    preview: torch.Tensor

    def steps(self, tools: tuple[str, ...] | None = None, strength: float = 1.0) -> list[dict[str, Any]]:
        """The correction's recipe steps, only those of `tools` when given."""
        from tools.prior import correction_steps

        return [s for s in correction_steps(self.correction, strength) if tools is None or s["tool"] in tools]

    def stats_after(self, steps: list[dict[str, Any]]) -> Stats:
        """The preview's measurements after `steps`."""
        from tools.analysis import measure

        return measure(_render(self.preview, steps))


def _render(preview: torch.Tensor, steps: list[dict[str, Any]]) -> torch.Tensor:
    from tools.recipe import Recipe, Step, apply_recipe

    return apply_recipe(preview, Recipe(steps=[Step.of(s["tool"], s["params"]) for s in steps]))


def natural_of(preview: torch.Tensor) -> Natural | None:
    """The prior's view of a (1,3,H,W) preview; None when the prior cannot run (no weights)."""
    from tools.analysis import measure
    from tools.prior import PriorError, correction_steps, estimate

    try:
        c = estimate(preview)
    except PriorError:
        return None
    return Natural(c, measure(_render(preview, correction_steps(c))), preview)


def exposure_range(stops: float, degree: float) -> tuple[float, float]:
    """The exposure changes a wish's target accepts around `stops`: half to one and a half times
    it, never past the degree's band ("a little" stays a little whichever planner gets there)."""
    lo, hi = next(band for top, band in _BANDS if degree <= top)
    sign, mag = (1.0 if stops >= 0 else -1.0), abs(stops)
    return sign * min(0.5 * mag, hi), sign * min(1.5 * mag, hi)


def exposure_stops(prior_stops: float, direction: float, degree: float) -> float:
    """The exposure change for a wish in `direction` (+1 brighter, -1 darker) of `degree`.

    The prior's stops when they point that way, clamped to the degree's band; else the band's
    least (the user asked for a change the prior does not see as needed: a visible, small one).
    """
    lo, hi = next(band for top, band in _BANDS if degree <= top)
    along = prior_stops * direction
    return direction * min(max(along, lo), hi)
