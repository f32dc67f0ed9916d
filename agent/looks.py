"""The looks library: film, vintage, sepia, moody, cinematic... each a small recipe of existing tools.

The looks are data (`agent/data/looks.json`): per look a description, the words people use for
it in six languages, and its steps. A step's `params` scale with the degree (0 leaves the photo
untouched, 1 is the look as designed, 1.5 stronger): a number moves from the tool's neutral
default toward the designed value, curve points toward the straight line. `fixed` params (hues,
channel mixes, the curve's channel) do not scale. Adding a look is one entry in that file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from agent.errors import UserError
from tools.registry import get

MAX_DEGREE = 1.5


@dataclass(frozen=True)
class Look:
    name: str
    description: str
    words: tuple[str, ...]
    steps: tuple[dict[str, Any], ...]

    def recipe(self, degree: float = 1.0) -> Any:
        """The look at `degree` (0..1.5) as a tools.recipe.Recipe; every step validated by its tool."""
        from tools.recipe import Recipe  # imports torch: only when a look is applied

        if not 0 <= degree <= MAX_DEGREE:
            raise UserError(f"look degree {degree} is out of range; use 0 (none) to {MAX_DEGREE} (strong)")
        recipe = Recipe()
        for step in self.steps:
            recipe = recipe.then(step["tool"], {**_scaled(step["tool"], step.get("params", {}), degree),
                                                **step.get("fixed", {})})
        return recipe


def _scaled(tool: str, params: dict[str, Any], degree: float) -> dict[str, Any]:
    fields = get(tool).params.model_fields
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name == "points":  # toward y = x
            out[name] = [[x, min(1.0, max(0.0, x + degree * (y - x)))] for x, y in value]
        else:
            neutral = fields[name].default
            new = neutral + degree * (value - neutral)
            lo, hi = _bounds(fields[name])
            out[name] = min(hi, max(lo, new))
    return out


def _bounds(field: Any) -> tuple[float, float]:
    lo, hi = float("-inf"), float("inf")
    for m in field.metadata:
        lo = getattr(m, "ge", lo) if getattr(m, "ge", None) is not None else lo
        hi = getattr(m, "le", hi) if getattr(m, "le", None) is not None else hi
    return lo, hi


@cache
def looks() -> dict[str, Look]:
    """Every look by name, from the data file (checked: each builds a valid recipe)."""
    data = json.loads(resources.files("agent").joinpath("data/looks.json").read_text(encoding="utf-8"))
    out = {name: Look(name, entry["description"], tuple(entry["words"]), tuple(entry["steps"]))
           for name, entry in data.items() if not name.startswith("_")}
    for look in out.values():
        look.recipe(1.0)
    return out


def get_look(name: str) -> Look:
    """A look by name ('old photo' and 'old_photo' alike); a one-line error lists the known ones."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in looks():
        return looks()[key]
    for look in looks().values():
        if name.strip().lower() in (w.lower() for w in look.words):
            return look
    raise UserError(f"unknown look {name!r}; known looks: {', '.join(looks())} (imagent looks)")
