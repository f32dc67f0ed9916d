"""A chat message read against the conversation: the grammar of relative requests and the
goal each becomes (see agent.chat's module doc for what each kind means).

"more" keeps the last request's intents with degree 0.5 / 1 / 2 ("a bit" / plain / "a lot") and
measures its targets on the current version; "less than that" asks for 25-75 % of the last
request's change on each of its main metrics, from that request's base; "like before but ..."
starts again from the last request's base; "only the NAME" repeats the last request from its
base inside mask NAME, the targets scaled by the mask's area. The functions take `s`, the
`agent.chat.Session` the message is read in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.clauses import degree_of
from agent.errors import UserError
from agent.goals import METRICS, Goal, Target, merge_targets, parse_goal, targets_for
from agent.natural import natural_of
from tools.analysis import measure

_LEAD = r"^(?:(?:ok|okay|now|and|but|then|hmm|good|nice|great|please|yes|no),?\s+)*"
_DEG = r"(?:(?:a\s+)?(?:tiny\s+|little\s+)?(?:bit|touch|tad|lot|notch)|a little|lots|slightly|somewhat|much|way|even|far|still)"
_MORE = re.compile(_LEAD + rf"(?:(?:{_DEG})\s+)*(?:more|further|stronger)(?:\s+(?:than that|of that|of the same|still|again|please))*$"
                   r"|^(?:again|same again|do it again|once more|keep going|go on|go further|push it further)$")
_LESS = re.compile(_LEAD + rf"(?:(?:{_DEG})\s+)*less(?:\s+(?:than that|of that|so|please))*$"
                   r"|^(?:(?:that'?s|that is|it'?s|it is|way|a bit|far)\s+)*(?:too much|too strong|overdone|too far)$"
                   r"|^(?:not (?:so|that|as) much|halfway|half as much|(?:somewhere )?in between|back off(?: a bit)?|"
                   r"dial it back|pull it back|tone it down a bit)$")
_LIKE = re.compile(_LEAD + r"(?:like|as)\s+(?:before|it was(?: before)?|the previous (?:one|version))"
                   r"(?:,?\s+(?:but|and|only|just)\s+(?P<rest>.+))?$")
_ONLY = re.compile(_LEAD + r"(?:(?:do|apply)\s+(?:it|that|this)\s+)?(?:only|just)\s+(?:(?:on|in|to|for)\s+)?"
                   r"(?:the\s+)?(?P<mask>[\w-]+)(?:\s+(?:only|please))?$")
UNDO = re.compile(_LEAD + r"(?:undo(?: (?:that|it|the last (?:one|change|step|edit)))?|go back|revert(?: that| it)?|"
                   r"take (?:that|it) back)$")
REDO = re.compile(_LEAD + r"redo(?: that| it)?$")
SHOW_ORIGINAL = re.compile(_LEAD + r"(?:compare(?: it)? (?:with|to) (?:the )?original|show(?: me)? the original|"
                       r"before and after)$")

@dataclass
class Reply:
    """What one message did: the text to show, the current version after it, any file written."""

    text: str
    kind: str = "edit"  # edit | command | error | quit
    version: str | None = None
    path: Path | None = None
    trace: list[Any] = field(default_factory=list)
    goal: Any = None
    base: str | None = None  # the version an edit started from
    before: Any = None  # tools.analysis.Stats of `base` and of the result (edits only)
    after: Any = None
    seconds: float = 0.0
    cost_usd: float = 0.0


@dataclass
class Request:
    """An edit message resolved against the history: self-contained, stored with the turn."""

    kind: str  # new | more | less | like_before | only
    instruction: str
    base: int
    mask: str | None = None
    factor: float = 1.0
    previous: int | None = None  # the turn it is relative to
    root: str = ""  # the absolute request a chain of relative ones goes back to


def norm(text: str) -> str:
    return " ".join(re.sub(r"[!?.]+$", "", text.lower().replace("’", "'")).split())


def degree_factor(text: str) -> float:
    """0.5 for "a bit more", 2 for "much more", else 1 (the goal parser's degree words)."""
    return degree_of(text)[0]


def _previous(s: Any) -> tuple[Any, Any]:
    """The last edit turn that was resolved (its row and its Goal)."""
    for turn in reversed(s.store.turns("edit")):
        if turn.goal and turn.request:
            return turn, Goal.from_json(turn.goal)
    raise UserError("there is no earlier request to refer to; say what you want first (e.g. 'brighter')")

def resolve(s: Any, text: str, t: str, mask: str | None = None) -> tuple[Request, Any]:
    budget = s.options.budget
    head = s.store.head
    text, named = _mask_suffix(s, text)  # "a bit more in the sky": the region overrides
    named = named or (mask_name(s, mask) if mask else None)
    t = norm(text)
    if _MORE.match(t):
        prev, pgoal = _previous(s)
        f = degree_factor(t)
        intents = [_scaled(i, f) for i in pgoal.intents]
        req = Request("more", f"{_word(f)}more of '{_root(prev)}' ({_names(intents)})", head,
                      named or prev.request.get("mask"), f, prev.id, _root(prev))
        return req, _goal(s, req, intents, measure(s.image(head)), budget)
    if _LESS.match(t):
        prev, pgoal = _previous(s)
        base, result = prev.request["base"], prev.result
        if result is None or result == base:
            raise UserError(f"the last request ('{prev.text}') changed nothing, so there is nothing to reduce")
        req = Request("less", f"less of '{_root(prev)}' than v{result}: between v{base} and v{result}", base,
                      named or prev.request.get("mask"), 0.5, prev.id, _root(prev))
        return req, _between_goal(req.instruction, pgoal, measure(s.image(base)),
                                  measure(s.image(result)), s.options.lock, budget)
    m = _LIKE.match(t)
    if m:
        prev, _ = _previous(s)
        base = prev.request["base"]
        rest = m.group("rest")
        if not rest:
            return Request("like_before", "as before", base, previous=prev.id), None
        req = Request("like_before", rest, base, previous=prev.id, root=rest)
        goal = parse_goal(rest, measure(s.image(base)), lock=s.options.lock, budget=budget)
        return req, goal
    m = _ONLY.match(t)
    if m and m.group("mask") not in ("a", "it", "that", "this", "more", "less"):
        name = mask_name(s, m.group("mask"))
        prev, pgoal = _previous(s)
        base = prev.request["base"]
        req = Request("only", f"'{_root(prev)}' only inside mask '{name}'", base, name, 1.0, prev.id,
                      _root(prev))
        return req, _goal(s, req, pgoal.intents, measure(s.image(base)), budget)
    mask = named
    req = Request("new", text, head, mask, root=text)
    natural = None if mask else lambda: natural_of(s.image(head))  # noqa: E731
    goal = parse_goal(text, measure(s.image(head)), lock=s.options.lock, budget=budget, natural=natural)
    if mask:
        goal = _scope(goal, measure(s.image(head)), s.coverage(mask))
    return req, goal

def _goal(s: Any, req: Request, intents: list[Any], stats: Any, budget: Any) -> Any:
    targets = []
    for i in intents:
        got = targets_for(i, stats)
        for tg in got:
            tg.intent = i.name
        targets += got
    targets, clashes = merge_targets(targets)
    goal = Goal(instruction=req.instruction, intents=intents, targets=targets, lock=s.options.lock,
                budget=budget, parser="keyword", notes=clashes)
    return _scope(goal, stats, s.coverage(req.mask)) if req.mask else goal

def mask_name(s: Any, word: str) -> str:
    names = s.store.mask_hashes()
    for cand in (word, word.rstrip("s"), word + "s"):
        if cand in names:
            return cand
    known = ", ".join(names) or "none yet"
    raise UserError(f"no mask named '{word}' (masks: {known}); add one with /mask {word} PATH "
                    "(a grayscale image, white = edit)")

def _mask_suffix(s: Any, text: str) -> tuple[str, str | None]:
    names = s.store.mask_hashes()
    if not names:
        return text, None
    alt = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    m = re.search(rf"[,\s]+(?:only\s+)?(?:on|in|to|for)\s+(?:the\s+)?({alt})(?:\s+only)?\s*[.!]?$", text, re.I)
    if not m:
        return text, None
    return text[: m.start()].strip(), m.group(1).lower()


# -- goals for relative requests ----------------------------------------------------------


def _scaled(intent: Any, factor: float) -> Any:
    upd: dict[str, Any] = {"degree": min(8.0, max(0.25, factor)), "source": "rule"}
    if intent.stops is not None:
        upd["stops"] = intent.stops * factor
    if intent.percent is not None:
        upd["percent"] = intent.percent * factor
    return intent.model_copy(update=upd)


def _between_goal(text: str, prev: Any, before: Any, after: Any, lock: float, budget: Any) -> Any:
    """'Less than that': each main metric of the last request, 25-75 % of the way it moved."""
    targets = []
    for t in prev.targets:
        if t.weight < 1:
            continue
        b, a = float(getattr(before, t.metric)), float(getattr(after, t.metric))
        if abs(a - b) < 0.25 * METRICS[t.metric][0] * 0.1:
            continue
        lo, hi = sorted((b + 0.25 * (a - b), b + 0.75 * (a - b)))
        targets.append(Target(metric=t.metric, op="between", low=lo, high=hi, intent=t.intent,
                              label=f"{METRICS[t.metric][2]} between {lo:.3g} and {hi:.3g} (less than last time)"))
    if not targets:
        raise UserError("the last request moved none of its measurements noticeably; nothing to reduce")
    return Goal(instruction=text, intents=prev.intents, targets=targets, lock=lock, budget=budget,
                parser="keyword")


def _scope(goal: Any, stats: Any, coverage: float) -> Any:
    """Targets for an edit confined to a mask covering `coverage` of the image: the whole-image
    change asked is scaled by the area (guards, weight < 1, keep their bounds)."""
    c = min(1.0, max(0.02, coverage))
    out = []
    for t in goal.targets:
        if t.weight < 1:
            out.append(t)
            continue
        v = float(getattr(stats, t.metric))
        lo = None if t.low is None else v + c * (t.low - v)
        hi = None if t.high is None else v + c * (t.high - v)
        scoped = t.model_copy(update={"low": lo, "high": hi})
        # the label states the bounds actually checked, then what was asked inside the mask
        out.append(scoped.model_copy(update={"label": f"{scoped.describe()} over the whole image "
                                                      f"(asked: {t.label}, inside a mask of {c:.0%} of it)"}))
    return goal.model_copy(update={"targets": out})


def version_number(v: int | str) -> int:
    s = str(v).strip().lower().removeprefix("v")
    if not s.isdigit():
        raise UserError(f"'{v}' is not a version; give a number like 3 or v3")
    return int(s)


def _root(turn: Any) -> str:
    req = turn.request or {}
    return req.get("root") or req.get("instruction") or turn.text


def _names(intents: list[Any]) -> str:
    return ", ".join(f"{i.name} x{i.degree:g}" for i in intents) or "nothing measurable"


def _word(f: float) -> str:
    return "a bit " if f < 1 else "a lot " if f > 1 else ""
