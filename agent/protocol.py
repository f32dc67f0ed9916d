"""What the loop tells the planning model each turn, in a form both people and programs read.

Every planning turn ends with a human message holding the instruction and one
`<imagent-state>` JSON block: the goal's targets and whether each is met now,
the current measurements, what was tried and whether it was kept or rolled
back (and why), the critic's view and the budget left. A language model reads
it as text; the offline planner parses it. Pixels never travel here: versions
are handles like "v3".
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, Field

OPEN, CLOSE = "<imagent-state>", "</imagent-state>"
_BLOCK = re.compile(re.escape(OPEN) + r"\s*(\{.*?\})\s*" + re.escape(CLOSE), re.S)


class TargetState(BaseModel):
    """One measurable target and where the current version stands."""

    label: str
    metric: str
    op: str
    low: float | None = None
    high: float | None = None
    value: float | None = None
    met: bool = False


class Attempt(BaseModel):
    """One tool call the loop executed, and its fate."""

    tool: str
    params: dict[str, Any] = Field(default_factory=dict)
    mask: str | None = None
    kept: bool
    reason: str = ""
    before: dict[str, float] = Field(default_factory=dict, description="metrics before the call")
    after: dict[str, float] = Field(default_factory=dict, description="metrics after the call")


class PlanState(BaseModel):
    """Everything the planner needs to choose the next edits."""

    instruction: str
    intents: list[dict[str, Any]] = Field(default_factory=list)
    targets: list[TargetState] = Field(default_factory=list)
    unmapped: list[str] = Field(default_factory=list)
    stats: dict[str, float] = Field(default_factory=dict, description="measurements of the current version")
    original_stats: dict[str, float] = Field(default_factory=dict)
    reference_stats: dict[str, float] | None = None
    version: str = "v0"
    structure: float = 1.0
    lock: float = 0.8
    step: int = 0
    history: list[Attempt] = Field(default_factory=list)
    critique: dict[str, Any] | None = None
    steps_left: int | None = None
    masks: list[str] = Field(default_factory=list)

    @property
    def all_met(self) -> bool:
        return all(t.met for t in self.targets)


def render_state(state: PlanState) -> str:
    """The state as a tagged JSON block to append to a human message."""
    return f"{OPEN}\n{state.model_dump_json(exclude_none=True)}\n{CLOSE}"


def parse_state(messages: list[Any]) -> PlanState | None:
    """The most recent state block in a conversation (None when there is none)."""
    for msg in reversed(messages):
        content = getattr(msg, "content", msg)
        if isinstance(content, list):  # multimodal content: text parts only
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str) or OPEN not in content:
            continue
        found = _BLOCK.findall(content)
        if found:
            return PlanState.model_validate(json.loads(found[-1]))
    return None
