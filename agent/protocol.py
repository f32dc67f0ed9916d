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
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, ValidationError

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


Check = Literal["blown_highlights", "clipped_highlights", "clipped_shadows", "noise", "chroma_noise", "detail", "halos", "tint"]


class Veto(BaseModel):
    """Damage a step did that measurements see, beyond what the goal asked (agent.scoring's naturalness
    guard): the step is rolled back and the planner reads which check, the figure and the limit."""

    check: Check = Field(description="what was damaged")
    value: float = Field(description="the measured figure (detail: the share left)")
    limit: float = Field(description="the most the guard allows for this goal (detail: the least share kept)")
    text: str = Field(description="the figure in words: 'new clipped highlights 12.3 % of the pixels > 2 %'")

    def __str__(self) -> str:
        return self.text


# Why an attempt was kept or not: kept, or rolled back by the structure lock, the naturalness guard or a
# lower overall score, or an error (no version was made).
AttemptKind = Literal["kept", "lock", "naturalness", "score", "error"]


class Attempt(BaseModel):
    """One tool call the loop executed, and its fate, as fields a planner reads (never the `reason` prose):
    `kind` (kept, or rolled back by the lock / the naturalness guard / the score, or an error), `moved`,
    `error`/`cause`/`fields` for an error, `vetoes` for the guard, `before`/`after` metrics."""

    tool: str
    params: dict[str, Any] = Field(default_factory=dict)
    mask: str | None = None
    kept: bool
    kind: AttemptKind | None = Field(None, description="why it was kept or rolled back (None: not said)")
    reason: str = ""
    moved: bool | None = Field(None, description="a kept or rolled-back step: whether any measurement moved "
                               "notably (False: 'no notable change'); None for an error")
    error: str | None = Field(None, description="kind 'error': the StepError kind (bad_arguments, model_output, "
                              "execution_failed, budget_spent)")
    cause: str | None = Field(None, description="kind 'error': the detail (timeout, out_of_memory, not_finite, "
                              "failed_before, not_an_object, ...)")
    fields: list[str] = Field(default_factory=list, description="kind 'error': the arguments at fault")
    vetoes: list[Veto] = Field(default_factory=list, description="the naturalness guard's findings "
                               "when kind is 'naturalness'")
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


# ----------------------------------------------------------------------------- why a call made no version


class StepError(Exception):
    """Why a tool call made no version. The model reads the message; the loop reads the fields.

    `kind` names the class of fault, `invalid` says whether it counts against the invalid-call budget
    (the op never ran) rather than the step budget, `fields` the arguments at fault, `cause` the detail.
    """

    kind: ClassVar[str] = "error"
    invalid: ClassVar[bool] = False

    def __init__(self, message: str, *, tool: str = "", fields: tuple[str, ...] = (), cause: str = "") -> None:
        super().__init__(message)
        self.tool, self.fields, self.cause = tool, fields, cause


class BadArguments(StepError):
    """A wrong value, an unknown tool or mask: the model corrects the call and tries again."""

    kind = "bad_arguments"
    invalid = True


class ModelOutputUnusable(StepError):
    """A tool call that cannot be read: arguments that are not JSON, or not an object of named fields."""

    kind = "model_output"
    invalid = True


class ExecutionFailed(StepError):
    """The op ran and failed; the model is told once and no version is kept.

    `cause`: "error" (it raised), "out_of_memory" (retried first), "timeout" (the loop stopped
    waiting; a late result is discarded) or "not_finite" (NaN or inf in its output).
    """

    kind = "execution_failed"


class BudgetSpent(StepError):
    """A budget of the run is spent; `cause` names it (steps, model_calls, seconds, cost, invalid_calls)."""

    kind = "budget_spent"


def json_kind(value: Any) -> str:
    """What a JSON value is, in the words of the JSON spec ("a list", "a number", "true or false")."""
    if isinstance(value, bool):
        return "true or false"
    for types, name in (((dict,), "an object"), ((list, tuple), "a list"), ((str,), "a string"),
                        ((int, float), "a number")):
        if isinstance(value, types):
            return name
    return "null" if value is None else type(value).__name__


def check_arguments(tool: str, args: Any) -> tuple[dict[str, Any], str | None]:
    """A tool call's arguments as (params, mask name); any other shape is a StepError the model can act on."""
    if not isinstance(args, dict):
        raise ModelOutputUnusable(f"{tool}: arguments must be a JSON object of named fields, got {json_kind(args)}",
                                  tool=tool, cause="not_an_object")
    params = dict(args)
    mask = params.pop("mask", None)
    if mask is not None and not isinstance(mask, str):
        raise BadArguments(f"{tool}: wrong value for `mask`: must be the name of a mask (a string) or null, "
                           f"got {json_kind(mask)} {json.dumps(mask, default=str)[:40]}", tool=tool, fields=("mask",))
    return params, mask


def unusable_calls(exc: BaseException) -> list[ModelOutputUnusable]:
    """The tool calls a chat model's client refused to build a message from (pydantic errors at
    `tool_calls.<i>.args`: arguments sent as a list, a string, a number); [] for any other failure."""
    if not isinstance(exc, ValidationError):
        return []
    errors = exc.errors()
    if not errors or any(tuple(e.get("loc", ()))[:1] not in (("tool_calls",), ("invalid_tool_calls",))
                         for e in errors):
        return []
    out = []
    for e in errors:
        loc = tuple(e["loc"])
        where = ".".join(str(x) for x in loc[2:]) or "call"
        if where == "args":
            msg = f"tool call {loc[1]}: arguments must be a JSON object of named fields, got {json_kind(e.get('input'))}"
        else:
            msg = f"tool call {loc[1]}: `{where}` is unusable: {e['msg']}"
        out.append(ModelOutputUnusable(msg, fields=(where,), cause=str(e["type"])))
    return out
