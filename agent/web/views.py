"""What a tab shows, computed from its Session: plain data (arrays, rows, text), no Gradio."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.web.tabs import Tab, session_names

STEP_COLUMNS = ["#", "tool", "parameters", "outcome", "why", "structure", "score"]
TARGET_COLUMNS = ["target", "before", "after", "met"]
THUMB = 160


@dataclass
class View:
    """Everything on the page that follows the session; layout.py maps it onto components."""

    status: str
    chat: list[dict[str, str]] = field(default_factory=list)
    compare: tuple[np.ndarray, np.ndarray] | None = None
    versions: list[tuple[np.ndarray, str]] = field(default_factory=list)
    steps: list[list[Any]] = field(default_factory=list)
    targets: list[list[Any]] = field(default_factory=list)
    cost: str = ""
    masks: list[str] = field(default_factory=list)
    editor: np.ndarray | None = None
    download: str | None = None
    sessions: list[str] = field(default_factory=list)
    mask: str | None = None  # the mask requests are confined to
    partial: bool = False  # a request is in flight: images and lists other than steps are unchanged


def view_of(tab: Tab, working: bool = False) -> View:
    """The page for `tab` now. `working`: a request is in flight on another thread, which owns the
    session's database meanwhile, so only what the tab itself holds is shown (status, steps)."""
    s = tab.session
    if working:
        return View(status=f"{tab.header} - working...\n\n{tab.notice}", steps=step_rows(tab.steps),
                    mask=tab.mask, partial=True)
    sessions = session_names(tab.config.root)
    if s is None:
        return View(status=_status(tab, None), sessions=sessions)
    head = s.store.head
    return View(status=_status(tab, s), chat=chat_messages(s), compare=_compare(tab, head),
                versions=versions_strip(tab), steps=step_rows(tab.steps), targets=target_rows(tab.last),
                cost=_cost(tab.last), masks=sorted(s.store.mask_hashes()), editor=array(s.image(head)),
                download=str(tab.download) if tab.download else None, sessions=sessions, mask=tab.mask)


def array(image: Any) -> np.ndarray:
    """A (1,3,H,W) tensor in [0,1] as an 8-bit (H,W,3) array for the browser."""
    from tools.io import to_array

    return to_array(image, 8)


def _status(tab: Tab, s: Any) -> str:
    note = ("Error: " if tab.failed else "") + tab.notice
    if s is None:
        return note
    w, h = s.store.meta("size")
    tab.header = f"{Path(s.store.meta('source') or 'image').name} {w}x{h} - session {s.folder.name}"
    return f"{tab.header} - now at {s.head} - planner {s.model_name}\n\n{note}"


def _compare(tab: Tab, head: int) -> tuple[np.ndarray, np.ndarray]:
    """(before, current): where the last edit started when it made the current version, else the parent."""
    s = tab.session
    last = tab.last
    if last is not None and last.version == f"v{head}" and last.base:
        before = int(last.base[1:])
    else:
        row = s.store.require(head)
        before = row.parent if row.parent is not None else head
    return array(s.image(before)), array(s.image(head))


def versions_strip(tab: Tab) -> list[tuple[np.ndarray, str]]:
    """Every version as a thumbnail with 'vN <- vP: last tool' (* marks the current one)."""
    from agent.state import preview_of

    s = tab.session
    out = []
    for r in s.versions:
        if r.id not in tab.thumbs:
            tab.thumbs[r.id] = array(preview_of(s.image(r.id), THUMB))
        steps = json.loads(r.recipe).get("steps", [])
        what = "original" if not steps else steps[-1]["tool"] + (f"@{steps[-1]['mask']}" if steps[-1].get("mask") else "")
        mark = "* " if r.id == s.store.head else ""
        parent = f" <- v{r.parent}" if r.parent is not None else ""
        out.append((tab.thumbs[r.id], f"{mark}v{r.id}{parent}: {what}"))
    return out


def chat_messages(s: Any) -> list[dict[str, str]]:
    """The stored conversation (so a session started in `imagent chat` reads the same here)."""
    out = []
    for t in s.store.turns():
        out.append({"role": "user", "content": t.text})
        flag = "" if t.status == "done" else f" [{t.status}]"
        out.append({"role": "assistant", "content": (t.reply or "") + flag})
    return out


def _num(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def step_rows(steps: list[Any]) -> list[list[Any]]:
    """One row per tool call: what was called, kept or rolled back and why, structure, score."""
    rows = []
    for i, e in enumerate(steps, 1):
        params = ", ".join(f"{k}={_num(v)}" for k, v in e.params.items() if v not in (0, 0.0, None, False))
        outcome = e.outcome + (f" as {e.version}" if e.outcome == "kept" and e.version else "")
        rows.append([i, e.tool + (f"@{e.mask}" if e.mask else ""), params, outcome, e.reason[:160],
                     "" if e.structure is None else round(e.structure, 3),
                     "" if e.combined is None else round(e.combined, 3)])
    return rows


def target_rows(reply: Any) -> list[list[Any]]:
    """Each target of the last edit with its value before and after, and whether it is met."""
    if reply is None or reply.goal is None or reply.before is None or reply.after is None:
        return []
    rows = []
    for t in reply.goal.targets:
        try:
            b, a = t.check(reply.before), t.check(reply.after)
        except KeyError:  # a metric measured only inside a region: not in the whole-image Stats
            rows.append([t.label, "-", "-", "-"])
            continue
        rows.append([t.label, round(b["value"], 3), round(a["value"], 3), "yes" if a["met"] else "no"])
    return rows


def _cost(reply: Any) -> str:
    if reply is None or not reply.seconds:
        return ""
    return f"last request: {reply.seconds:.1f} s, ${reply.cost_usd:.4f}"
