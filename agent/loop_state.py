"""The loop's graph state: what a run has spent and done, as plain data a checkpoint stores.

Everything that must survive a resumed checkpoint lives in `LoopState`: the conversation, the
budgets spent (`Spent`), the attempt history (`protocol.Attempt` dumps), the trace (`TraceEntry`
dumps), the model calls made (`accounting.Call` dumps), the best version so far, the critic
phase and the tools that broke. Only JSON-like values go in (dicts, lists, numbers, strings):
`agent.sessions.StrictSerializer` loads nothing else. Lists that grow are LangGraph reducers
(`operator.add`), so a node returns only what it adds.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

from agent.state import Version


@dataclass
class TraceEntry:
    """One executed (or refused) tool call and what it did to the score."""

    turn: int
    tool: str
    params: dict[str, Any]
    mask: str | None
    outcome: str  # kept | rolled_back | error | mask | critique | unreliable
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


class Spent(TypedDict):
    """What a run has used so far; the budgets (`agent.options.Budget`) are read against it."""

    turns: int  # planning turns begun
    steps: int  # ops that ran (kept, rolled back or failed)
    model_calls: int  # planner and model-critic calls
    invalid_calls: int  # tool calls that could not run as sent
    failed_turns: int  # consecutive turns in which no call succeeded
    idle_answers: int  # consecutive answers without tool calls while the goal is unmet
    input_tokens: int
    output_tokens: int
    seconds: float  # wall-clock seconds of the run, across resumes


def nothing_spent() -> Spent:
    return Spent(turns=0, steps=0, model_calls=0, invalid_calls=0, failed_turns=0, idle_answers=0,
                 input_tokens=0, output_tokens=0, seconds=0.0)


class Best(TypedDict):
    """The best version so far and its combined score (a critiqued score included)."""

    id: str
    combined: float


class LoopState(TypedDict):
    """The graph's state (see the module doc); `queue` and `pending` hold the latest answer's tool
    calls not yet acted on and the one whose candidate awaits scoring."""

    messages: Annotated[list[AnyMessage], add_messages]
    stop: str | None
    budget_spent: str | None  # BudgetSpent.cause once a budget ended the run
    spent: Spent
    trace: Annotated[list[dict[str, Any]], operator.add]  # TraceEntry fields
    history: Annotated[list[dict[str, Any]], operator.add]  # protocol.Attempt fields
    calls: Annotated[list[dict[str, Any]], operator.add]  # accounting.Call fields
    queue: list[dict[str, Any]]  # {"call": tool call} or {"invalid": invalid tool call}
    pending: dict[str, Any] | None  # the tool call whose candidate version the score node judges next
    turn_ok: bool  # a call of this turn succeeded (kept, a mask made, a measurement read)
    best: Best
    critic_phase: bool  # once a critique is in a score, candidates are critiqued before they are compared
    broken: dict[str, str]  # tool -> cause: ops that crashed or hung are not run again in this edit


def initial_state(messages: list[AnyMessage], best: Best) -> LoopState:
    return LoopState(messages=messages, stop=None, budget_spent=None, spent=nothing_spent(), trace=[], history=[],
                     calls=[], queue=[], pending=None, turn_ok=False, best=best, critic_phase=False, broken={})
