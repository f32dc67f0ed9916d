"""Conversational editing: each message is a new goal in the context of the previous ones.

    from agent.chat import Session
    with Session.open("photo.jpg") as s:          # or Session.open("path/to/session-folder")
        s.say("brighter")                          # parse -> targets on the CURRENT version -> loop
        s.say("a bit more")                        # the last request again, degree 0.5, from here
        s.say("less than that")                    # from the last request's start, halfway between
        s.say("like before but warmer")            # from where the last request started: warmer
        s.say("now only the sky")                  # the last request again, inside mask 'sky'
        s.undo(); s.redo(); s.checkout(2); s.save("out.png")

Relative requests are resolved against the stored history (agent.sessions), never against
model memory: "more" keeps the last request's intents with degree 0.5 / 1 / 2 ("a bit" /
plain / "a lot") and measures its targets on the current version; "less than that" asks for
25-75 % of the last request's change on each of its main metrics, starting again from that
request's base (a branch); "only the NAME" repeats the last request from its base with every
tool call confined to the named mask, the targets scaled by the mask's area. Every version the
loop keeps is committed to the store the moment it is made, so a crash loses at most the step
in flight. Each turn starts the planner afresh: the turns before it reach the model as one
bounded digest (last 4 verbatim, older ones counted), so long sessions never outgrow its context.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from agent.errors import UserError
from agent.sessions import CheckpointRefused, SessionError, SessionStore, is_session, session_root
from agent.state import EditSession, Version

HELP = """Say what you want ("brighter", "a bit more", "less than that", "like before but warmer",
"now only the sky", "undo that"), or use a command:
  /undo  /redo            step back / forward through your edits
  /history                the conversation: each request, what it became, the version it made
  /versions               every version: parent, the step that made it, measurements (* = current)
  /checkout N             make version N current (the next request branches from it)
  /compare [N]            side-by-side preview of version N (default: the original) and the current one
  /save PATH              render the current version at full resolution and write it (asks before
                          replacing a file; never over the photo the session started from)
  /recipe                 the current version's recipe (JSON, replayable with `imagent apply`)
  /export FILE.cube       the current version as a 3-D LUT for other editors (colour-only edits)
  /masks                  named masks;  /mask NAME PATH  adds one from a grayscale image (white = edit)
  /model [NAME]           the planner in use; give a name to switch (offline, openai:gpt-4o-mini, ...)
  /resume                 finish a request a crash cut off (done automatically when a session opens)
  /help  /quit"""

KEEP_VERBATIM = 4  # turns shown to the model as they were; older ones are summarised
CONTEXT_LIMIT = 900  # characters of conversation digest given to the model per turn

_WORD_DEGREE = [(re.compile(r"\b(bit|little|touch|tad|slightly|somewhat|notch|smidge)\b"), 0.5),
                (re.compile(r"\b(lot|lots|much|way|far|heaps|significantly)\b"), 2.0)]
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
_UNDO = re.compile(_LEAD + r"(?:undo(?: (?:that|it|the last (?:one|change|step|edit)))?|go back|revert(?: that| it)?|"
                   r"take (?:that|it) back)$")
_REDO = re.compile(_LEAD + r"redo(?: that| it)?$")
_ORIGINAL = re.compile(_LEAD + r"(?:compare(?: it)? (?:with|to) (?:the )?original|show(?: me)? the original|"
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


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[!?.]+$", "", text.lower().replace("’", "'")).split())


def degree_factor(text: str) -> float:
    for pat, value in _WORD_DEGREE:
        if pat.search(text):
            return value
    return 1.0


class Session:
    """A durable editing conversation on one photo (see the module doc)."""

    def __init__(self, store: SessionStore, *, model: str | Any = "offline", base_url: str | None = None,
                 lock: float = 0.80, max_steps: int = 8, max_seconds: float = 120.0,
                 max_model_calls: int = 24, on_event: Any = None, ask: Any = None,
                 critic: str | Any | None = None, api_key: str | None = None) -> None:
        self.store = store
        self.base_url, self.lock, self.on_event = base_url, lock, on_event
        self.critic = critic  # None: no critic; "offline", "provider:model" or a critic object
        self._api_key = api_key  # for the planner and critic only: kept in memory, never stored
        self.ask = ask  # ask(question) -> bool: a person's yes; None (not a terminal) answers no
        self.budget = dict(max_steps=max_steps, max_seconds=max_seconds, max_model_calls=max_model_calls)
        self._planner: Any = None if isinstance(model, str) else model
        self.model_name = model if isinstance(model, str) else type(model).__name__
        self.preview = int(store.meta("preview", 1024))
        self._full: torch.Tensor | None = None
        self._cache: dict[int, torch.Tensor] = {}
        self.resumed: Reply | None = None  # what finishing an interrupted turn on open did

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, source: str | Path | torch.Tensor, *, session: str | Path | None = None,
             root: str | Path | None = None, preview: int = 1024, max_pixels: int = 100_000_000,
             masks: dict[str, torch.Tensor] | None = None, **options: Any) -> Session:
        """Resume a session folder, or start one on a photo (path or (1,3,H,W) tensor).

        A new session goes to `session` (a new or empty folder), else to a fresh folder under
        `root` (default $IMAGENT_HOME/sessions). `options`: model, base_url, lock, max_steps,
        max_seconds, max_model_calls, on_event, ask (a yes/no prompt; without one, existing files
        are never replaced), critic, api_key (memory only).
        """
        if isinstance(source, (str, Path)) and Path(source).is_dir():
            if session is not None:
                raise UserError(f"{source} is a session folder; resume it without --session")
            return cls.resume(source, **options)
        from tools.io import load_image

        src = load_image(source, max_pixels=max_pixels) if isinstance(source, (str, Path)) else None
        image = src.image if src is not None else source
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[:2] != (1, 3):
            raise UserError("a session starts from an image path or a (1,3,H,W) tensor in [0,1]")
        stem = Path(source).stem if src is not None else "image"
        folder = Path(session) if session is not None else _fresh_folder(Path(root) if root else session_root(), stem)
        settings = {"model": options.get("model", "offline") if isinstance(options.get("model", "offline"), str)
                    else "custom", "format_name": src.format if src else "PNG"}
        store = SessionStore.create(folder, image, bit_depth=src.bit_depth if src else 8,
                                    alpha=src.alpha if src else None,
                                    source=Path(source).resolve() if src is not None else None,
                                    preview=preview, settings=settings)
        s = cls(store, **options)
        for name, m in (masks or {}).items():
            s.add_mask(name, m)
        return s

    @classmethod
    def resume(cls, folder: str | Path, **options: Any) -> Session:
        folder = Path(folder)
        if not is_session(folder) and not folder.is_dir() and (session_root() / str(folder)).is_dir():
            folder = session_root() / str(folder)
        store = SessionStore.open(folder)
        if "model" not in options:
            options["model"] = store.meta("model", "offline") or "offline"
            if options["model"] == "custom":
                options["model"] = "offline"
        auto = options.pop("resume_interrupted", True)
        s = cls(store, **options)
        if auto:  # a turn a crash cut off continues from its checkpoint; failing that, the chat still opens
            try:
                s.resumed = s.resume_interrupted()
            except CheckpointRefused:  # a tampered folder: fail closed, open nothing
                s.close()
                raise
            except Exception as exc:
                s.resumed = Reply(f"could not resume the interrupted request: {type(exc).__name__}: {exc}",
                                  kind="error", version=s.head)
        return s

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- state -----------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        return self.store.folder

    @property
    def head(self) -> str:
        return f"v{self.store.head}"

    @property
    def versions(self) -> list[Any]:
        """Every version (agent.sessions.VersionRow): id, parent, hash, recipe, turn, stats."""
        return self.store.versions()

    @property
    def original_full(self) -> torch.Tensor:
        if self._full is None:
            self._full = self.store.original()
        return self._full

    def image(self, vid: int | str | None = None) -> torch.Tensor:
        """A version's working preview (default: the current one)."""
        n = self.store.head if vid is None else _vid(vid)
        if n not in self._cache:
            if n == 0:
                from agent.state import preview_of

                img = preview_of(self.original_full, self.preview)
            else:
                img = self.store.version_image(n)
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[n] = img
        return self._cache[n]

    def recipe(self, vid: int | str | None = None) -> Any:
        from tools.recipe import Recipe

        n = self.store.head if vid is None else _vid(vid)
        return Recipe.model_validate_json(self.store.require(n).recipe)

    def render(self, vid: int | str | None = None) -> torch.Tensor:
        """A version at full resolution: its recipe replayed on the original."""
        from tools.recipe import apply_recipe

        return apply_recipe(self.original_full, self.recipe(vid), self.store.masks())

    def add_mask(self, name: str, mask: torch.Tensor | str | Path) -> None:
        """Name a mask (tensor (1,1,H,W) or a grayscale image path; white = edit) for later requests."""
        if isinstance(mask, (str, Path)):
            from tools.io import load_image

            mask = load_image(mask).image.mean(1, keepdim=True)
        probe = EditSession(self.original_full[..., :2, :2], preview_size=2)
        probe.original_full = self.original_full  # validates the name and resamples to full size
        probe.add_mask(name, mask)
        self.store.add_mask(name, probe.masks_full[name])

    @property
    def planner(self) -> Any:
        if self._planner is None:
            from agent.planners import make_planner

            self._planner = make_planner(self.model_name, base_url=self.base_url, **self._key())
        return self._planner

    def _key(self) -> dict[str, Any]:
        return {"api_key": self._api_key} if self._api_key else {}

    def set_model(self, name: str, *, critic: str | Any | None = None, api_key: str | None = None,
                  base_url: str | None = None) -> None:
        """Switch the planner (and critic); the spec is remembered by the session, the key never."""
        from agent.critics import make_critic
        from agent.planners import make_planner

        key = {"api_key": api_key} if api_key else {}
        planner = make_planner(name, base_url=base_url, **key)
        if isinstance(critic, str):
            make_critic(critic, base_url=base_url, **key)  # fail now on a bad spec, not mid-request
        self._planner, self.model_name, self.critic = planner, name, critic
        self._api_key, self.base_url = api_key, base_url
        self.store.set_meta(model=name)

    # -- the conversation ------------------------------------------------------------------

    def say(self, text: str, mask: str | None = None) -> Reply:
        """One message: a /command, or an edit request resolved against the conversation.

        `mask`: the name of a session mask to confine this request to (as "..., in the NAME")."""
        text = text.strip()
        if not text:
            return Reply("say what you want changed, or /help", kind="command", version=self.head)
        if text.startswith("/"):
            return self.command(text)
        t = _norm(text)
        if _UNDO.match(t):
            return self.command("/undo")
        if _REDO.match(t):
            return self.command("/redo")
        if _ORIGINAL.match(t):
            return self.command("/compare 0")
        try:
            req, goal = self._resolve(text, t, mask)
        except UserError as exc:
            return Reply(str(exc), kind="error", version=self.head)
        if goal is None:  # "like before" with nothing more: go back there
            self.store.set_head(req.base)
            return Reply(f"back to v{req.base}, where the last request started", kind="command", version=self.head)
        return self._run(text, req, goal)

    def _previous(self) -> tuple[Any, Any]:
        """The last edit turn that was resolved (its row and its Goal)."""
        from agent.goals import Goal

        for turn in reversed(self.store.turns("edit")):
            if turn.goal and turn.request:
                return turn, Goal.from_json(turn.goal)
        raise UserError("there is no earlier request to refer to; say what you want first (e.g. 'brighter')")

    def _resolve(self, text: str, t: str, mask: str | None = None) -> tuple[Request, Any]:
        from agent.goals import Budget, parse_goal
        from agent.natural import natural_of
        from tools.analysis import measure

        budget = Budget(**self.budget)
        head = self.store.head
        text, named = self._mask_suffix(text)  # "a bit more in the sky": the region overrides
        named = named or (self._mask_name(mask) if mask else None)
        t = _norm(text)
        if _MORE.match(t):
            prev, pgoal = self._previous()
            f = degree_factor(t)
            intents = [_scaled(i, f) for i in pgoal.intents]
            req = Request("more", f"{_word(f)}more of '{_root(prev)}' ({_names(intents)})", head,
                          named or prev.request.get("mask"), f, prev.id, _root(prev))
            return req, self._goal(req, intents, measure(self.image(head)), budget)
        if _LESS.match(t):
            prev, pgoal = self._previous()
            base, result = prev.request["base"], prev.result
            if result is None or result == base:
                raise UserError(f"the last request ('{prev.text}') changed nothing, so there is nothing to reduce")
            req = Request("less", f"less of '{_root(prev)}' than v{result}: between v{base} and v{result}", base,
                          named or prev.request.get("mask"), 0.5, prev.id, _root(prev))
            return req, _between_goal(req.instruction, pgoal, measure(self.image(base)),
                                      measure(self.image(result)), self.lock, budget)
        m = _LIKE.match(t)
        if m:
            prev, _ = self._previous()
            base = prev.request["base"]
            rest = m.group("rest")
            if not rest:
                return Request("like_before", "as before", base, previous=prev.id), None
            req = Request("like_before", rest, base, previous=prev.id, root=rest)
            goal = parse_goal(rest, measure(self.image(base)), lock=self.lock, budget=budget)
            return req, goal
        m = _ONLY.match(t)
        if m and m.group("mask") not in ("a", "it", "that", "this", "more", "less"):
            name = self._mask_name(m.group("mask"))
            prev, pgoal = self._previous()
            base = prev.request["base"]
            req = Request("only", f"'{_root(prev)}' only inside mask '{name}'", base, name, 1.0, prev.id,
                          _root(prev))
            return req, self._goal(req, pgoal.intents, measure(self.image(base)), budget)
        mask = named
        req = Request("new", text, head, mask, root=text)
        natural = None if mask else lambda: natural_of(self.image(head))  # noqa: E731
        goal = parse_goal(text, measure(self.image(head)), lock=self.lock, budget=budget, natural=natural)
        if mask:
            goal = _scope(goal, measure(self.image(head)), self._coverage(mask))
        return req, goal

    def _goal(self, req: Request, intents: list[Any], stats: Any, budget: Any) -> Any:
        from agent.goals import Goal, merge_targets, targets_for

        targets = []
        for i in intents:
            got = targets_for(i, stats)
            for tg in got:
                tg.intent = i.name
            targets += got
        targets, clashes = merge_targets(targets)
        goal = Goal(instruction=req.instruction, intents=intents, targets=targets, lock=self.lock,
                    budget=budget, parser="keyword", notes=clashes)
        return _scope(goal, stats, self._coverage(req.mask)) if req.mask else goal

    def _mask_name(self, word: str) -> str:
        names = self.store.mask_hashes()
        for cand in (word, word.rstrip("s"), word + "s"):
            if cand in names:
                return cand
        known = ", ".join(names) or "none yet"
        raise UserError(f"no mask named '{word}' (masks: {known}); add one with /mask {word} PATH "
                        "(a grayscale image, white = edit)")

    def _mask_suffix(self, text: str) -> tuple[str, str | None]:
        names = self.store.mask_hashes()
        if not names:
            return text, None
        alt = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        m = re.search(rf"[,\s]+(?:only\s+)?(?:on|in|to|for)\s+(?:the\s+)?({alt})(?:\s+only)?\s*[.!]?$", text, re.I)
        if not m:
            return text, None
        return text[: m.start()].strip(), m.group(1).lower()

    def _coverage(self, name: str) -> float:
        from tools.recipe import resize_mask

        m = resize_mask(self.store.masks()[name], self.image(0))
        return float(m.mean())

    def _run(self, text: str, req: Request, goal: Any) -> Reply:
        turn = self.store.begin_turn(text, "edit", base=req.base, request=asdict(req), goal=goal.to_json())
        return self._execute(turn, req, goal)

    def resume_interrupted(self) -> Reply | None:
        """Finish the last turn if a crash cut it off: the agent continues from its last
        checkpoint; tool calls whose versions were committed are not redone. None: nothing to do."""
        from agent.goals import Goal

        turns = self.store.turns()
        last = turns[-1] if turns else None
        if last is None or last.kind != "edit" or last.status != "interrupted" or not last.request or not last.goal:
            return None
        self.store.reopen_turn(last.id)
        reply = self._execute(last.id, Request(**last.request), Goal.from_json(last.goal), resume=True)
        reply.text = f"resumed the interrupted request '{last.text}': {reply.text}"
        return reply

    def _execute(self, turn: int, req: Request, goal: Any, resume: bool = False) -> Reply:
        from agent import wishes
        from agent.loop import run_loop
        from agent.settings import load_settings

        store = self.store
        session = self._turn_session(req.base, turn, resume=resume)
        # direct wishes: a look or a vignette is applied as asked, then the loop goes on from it
        # (a resumed turn has them already); framing would change the size a session keeps
        first, framing = wishes.recipes(goal)
        for step in first.steps if not resume else []:
            session.adopt(session.try_step(step.tool, step.params, mask=req.mask))
        planner = self.planner if req.mask is None else MaskScoped(self.planner, req.mask)
        context = self.context(before=turn)
        run_goal = goal.model_copy(update={"instruction": goal.instruction + (f"\n{context}" if context else "")})
        before = session.versions.get(f"v{req.base}", session.head)
        saver, thread = store.checkpointer(), f"turn-{turn}"
        try:
            limits = load_settings()  # op timeout and invalid-call budget: IMAGENT_* or imagent.toml
            result = run_loop(session, run_goal, planner, budget=goal.budget, on_event=self.on_event,
                              checkpointer=saver, thread_id=thread, op_timeout=limits.op_timeout,
                              max_invalid_calls=limits.max_invalid_calls, critic=self._make_critic())
        except CheckpointRefused:
            store.interrupt_turn(turn)  # nothing ran: the turn stays as the crash left it
            raise
        except Exception as exc:
            store.end_turn(turn, result=store.head, reply=f"failed: {type(exc).__name__}: {exc}", status="failed")
            raise
        best = int(result.best.id[1:])
        store.set_head(best)
        kept = [e for e in result.trace if e.outcome == "kept"]
        steps = ", ".join([*(f"{s.tool} (as asked)" for s in first.steps),
                           *(f"{e.tool}{'@' + e.mask if e.mask else ''}" for e in kept)]) or "no edit kept"
        if framing.steps:
            steps += ("; not done here: " + ", ".join(s.tool for s in framing.steps)
                      + " (a session keeps the photo's framing; use imagent edit or imagent apply)")
        s = result.best.score
        text_out = (f"{req.instruction} -> v{best} from v{req.base} ({steps}); {result.stop_reason}; "
                    f"targets met {s.targets_met}/{s.targets_total}; "
                    f"{before.stats.summary() if before.stats else ''} -> {result.best.stats.summary()}")
        if not result.goal_met:
            text_out += "; goal not met: " + ", ".join(result.unmet)
        store.end_turn(turn, result=best, reply=text_out)
        saver.delete_thread(thread)  # the turn is finished: its checkpoints are no longer needed
        return Reply(text_out, version=f"v{best}", trace=result.trace, goal=goal, base=f"v{req.base}",
                     before=before.stats, after=result.best.stats, seconds=result.seconds,
                     cost_usd=result.cost_usd)

    def _make_critic(self) -> Any:
        if not isinstance(self.critic, str):
            return self.critic
        from agent.critics import make_critic

        return make_critic(self.critic, base_url=self.base_url, **self._key())

    def _turn_session(self, base: int, turn: int, resume: bool = False) -> EditSession:
        from tools.recipe import Recipe

        store = self.store

        def commit(v: Version, call_id: str | None) -> None:
            row = store.commit_version(_vid(v.parent or "v0"), v.image, v.recipe.model_dump_json(), turn=turn,
                                       stats=_key_stats(v), call_id=call_id)
            v.id = row.name
            self._cache[row.id] = v.image
            store.set_meta(head=row.id, redo=[])

        def recall(call_id: str) -> str | None:
            vid = store.call_version(turn, call_id)
            return None if vid is None else f"v{vid}"

        session = _TurnSession(self.original_full, preview_size=self.preview, commit=commit,
                               next_id=store.next_version_id, calls=recall)
        for name, m in store.masks().items():
            session.masks_full[name] = m
        # a resumed turn starts with the versions it already committed, current where it stopped
        for n in [base] + (store.turn_versions(turn) if resume else []):
            if n == 0:
                continue
            row = store.require(n)
            session.versions[row.name] = Version(row.name, self.image(n), Recipe.model_validate_json(row.recipe),
                                                 parent=f"v{row.parent}")
        head = f"v{store.head}" if resume else f"v{base}"
        session.current = head if head in session.versions else f"v{base}"
        return session

    def context(self, before: int | None = None) -> str:
        """The conversation so far as one bounded digest for the model."""
        turns = [t for t in self.store.turns("edit") if before is None or t.id < before]
        if not turns:
            return ""
        old, recent = turns[:-KEEP_VERBATIM], turns[-KEEP_VERBATIM:]
        lines = []
        if old:
            counts: dict[str, int] = {}
            for t in old:
                key = _norm(t.text)[:40]
                counts[key] = counts.get(key, 0) + 1
            common = sorted(counts.items(), key=lambda kv: -kv[1])[:6]
            lines.append(f"Earlier ({len(old)} requests): " + "; ".join(f"'{k}' x{n}" if n > 1 else f"'{k}'"
                                                                     for k, n in common))
        for t in recent:
            res = f"v{t.result}" if t.result is not None else t.status
            lines.append(f"'{t.text[:80]}' -> {res}")
        text = "Conversation so far: " + " | ".join(lines)
        return text if len(text) <= CONTEXT_LIMIT else text[: CONTEXT_LIMIT - 3] + "..."

    # -- commands --------------------------------------------------------------------------

    def command(self, text: str) -> Reply:
        """Run one slash command ("/undo", "/checkout 3", ...)."""
        name, _, arg = text[1:].strip().partition(" ")
        name, arg = name.lower(), arg.strip()
        table = {"undo": self.undo, "redo": self.redo, "help": lambda: Reply(HELP, kind="command"),
                 "history": self.history_text, "versions": self.versions_text,
                 "recipe": lambda: Reply(self.recipe().to_json(), kind="command"),
                 "masks": self._masks_reply, "quit": lambda: Reply("bye", kind="quit"),
                 "resume": lambda: self.resume_interrupted() or Reply("no interrupted request to resume",
                                                                      kind="command"),
                 "exit": lambda: Reply("bye", kind="quit")}
        try:
            if name in table:
                reply = table[name]()
            elif name == "checkout":
                if not arg:
                    raise UserError("/checkout needs a version: /checkout 3 (see /versions)")
                reply = self.checkout(arg)
            elif name == "compare":
                reply = self.compare(arg or 0)
            elif name == "save":
                if not arg:
                    raise UserError("/save needs a path: /save edited.jpg")
                reply = self._save_reply(Path(arg).expanduser())
            elif name == "mask":
                mname, _, mpath = arg.partition(" ")
                if not mname or not mpath.strip():
                    raise UserError("/mask needs a name and an image: /mask sky sky.png (white = edit)")
                self.add_mask(mname, mpath.strip())
                reply = Reply(f"mask '{mname}' added ({self._coverage(mname):.0%} of the image)", kind="command")
            elif name == "model":
                reply = self._model_reply(arg)
            elif name == "export":
                if not arg:
                    raise UserError("/export needs a path: /export look.cube")
                reply = self._export_reply(arg)
            else:
                raise UserError(f"unknown command /{name}; /help lists them")
        except Exception as exc:
            if not user_facing(exc):
                raise
            return Reply(str(exc), kind="error", version=self.head)
        reply.version = reply.version or self.head
        if reply.kind != "error" and name in _RECORDED:
            self.store.begin_turn(text, "command", base=self.store.head)  # the history shows commands too
            last = self.store.turns()[-1]
            self.store.end_turn(last.id, result=self.store.head, reply=reply.text[:500])
        return reply

    def undo(self) -> Reply:
        """Go back to where the request that made the current version started."""
        head = self.store.head
        if head == 0:
            return Reply("nothing to undo: this is the original", kind="command", version=self.head)
        row = self.store.require(head)
        target = row.parent if row.parent is not None else 0
        for t in reversed(self.store.turns("edit")):
            if t.result == head and t.base is not None and t.base in self.store.lineage(head):
                target = t.base
                break
        self.store.set_head(target, redo=[*self.store.meta("redo", []), head])
        return Reply(f"undone: back to v{target} (/redo returns to v{head})", kind="command", version=self.head)

    def redo(self) -> Reply:
        stack = list(self.store.meta("redo", []))
        if not stack:
            return Reply("nothing to redo", kind="command", version=self.head)
        target = stack.pop()
        self.store.set_head(target, redo=stack)
        return Reply(f"redone: now at v{target}", kind="command", version=self.head)

    def checkout(self, vid: int | str) -> Reply:
        """Make a version current; the next request branches from it."""
        n = _vid(vid)
        self.store.set_head(n)
        return Reply(f"now at v{n}; the next request starts from it", kind="command", version=self.head)

    def compare(self, vid: int | str = 0, path: str | Path | None = None) -> Reply:
        """Side-by-side preview of version `vid` (default the original) and the current one, as PNG."""
        from tools.io import save_image

        n, head = _vid(vid), self.store.head
        a, b = self.image(n), self.image(head)
        gap = torch.ones(1, 3, a.shape[-2], max(2, a.shape[-1] // 64))
        out = Path(path) if path else self.folder / "previews" / f"compare-v{n}-v{head}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        save_image(torch.cat([a, gap, b], -1), out)
        return Reply(f"v{n} (left) | v{head} (right): {out}", kind="command", path=out, version=self.head)

    def save(self, path: str | Path, *, version: int | str | None = None, quality: int = 95,
             overwrite: bool = False) -> Path:
        """Render a version (default the current) at full resolution and write it atomically.

        An existing file is replaced only with overwrite=True; the session's source photo never."""
        from tools.io import save_image

        path = Path(path)
        if self._target_exists(path) and not overwrite:
            raise UserError(f"{path} exists; save under another name, or pass overwrite=True to replace it")
        deep = path.suffix.lower() in (".png", ".tif", ".tiff")
        alpha = self.store.alpha()
        # overwrite=False: save_image then only guards the source, which stays refused whatever was asked
        return save_image(self.render(version), path, alpha=alpha, quality=quality,
                          bit_depth=int(self.store.meta("bit_depth", 8)) if deep else 8,
                          overwrite=False, source=self.store.meta("source"))

    def _target_exists(self, path: Path, image: bool = True) -> bool:
        """Whether `path` exists; the session's source photo is refused outright, and an image path
        is checked (folder, extension) before anyone is asked about it."""
        from tools.io import check_output_path

        source = self.store.meta("source")
        if image:
            check_output_path(path, source=source)
        elif source and path.exists() and Path(source).exists() and path.samefile(source):
            raise UserError(f"refusing to overwrite the original {source} with {path}; export somewhere else")
        return path.exists()

    def _save_reply(self, path: Path) -> Reply:
        """/save: an existing file is replaced only after a person says yes."""
        if self._target_exists(path):
            question = f"{path} exists; overwrite? [y/N]"
            if self.ask is None or not self.ask(question):
                why = "" if self.ask is not None else " (no terminal to ask: the answer is no)"
                return Reply(f"{question} no{why}: {path} is unchanged; /save to another path",
                             kind="error", version=self.head)
        path = self.save(path, overwrite=True)
        return Reply(f"wrote {path} ({self.head} at full resolution)", kind="command", path=path)

    def export(self, dest: str | Path, *, overwrite: bool = False) -> list[Path]:
        """Write the current image, its recipe (with its masks) and a contact sheet of versions.

        Files already in `dest` are replaced only with overwrite=True (all are checked first, so a
        refused export writes nothing); the session's source photo never."""
        from tools.io import save_image

        dest = Path(dest)
        stem = Path(self.store.meta("source") or "image").stem
        used = self._used_masks(self.recipe())
        image, recipe_path = dest / f"{stem}-{self.head}.png", dest / f"{stem}-{self.head}.recipe.json"
        targets = [image, *(dest / f"mask-{n}.png" for n in used), recipe_path, dest / "contact-sheet.png"]
        exist = [p.name for p in targets if dest.is_dir() and self._target_exists(p, p != recipe_path)]
        if exist and not overwrite:
            raise UserError(f"{dest} already holds {', '.join(exist)}; pass --overwrite to replace "
                            f"{'it' if len(exist) == 1 else 'them'}, or export to another folder")
        dest.mkdir(parents=True, exist_ok=True)
        written = [self.save(image, overwrite=True), *self.write_recipe(recipe_path)]
        written.append(save_image(self.contact_sheet(), dest / "contact-sheet.png", source=self.store.meta("source")))
        return written

    def write_recipe(self, path: str | Path, *, version: int | str | None = None) -> list[Path]:
        """Write a version's recipe (default the current) to `path` and the masks it uses beside it
        (mask-NAME.png, 16-bit), so `imagent apply` replays it; replaces them. Returns the files."""
        from tools.io import atomic_write_bytes, save_image

        path = Path(path)
        rec, masks = self.recipe(version), self.store.masks()
        written = []
        for name in self._used_masks(rec):
            p = save_image(masks[name].expand(-1, 3, -1, -1), path.parent / f"mask-{name}.png", bit_depth=16,
                           source=self.store.meta("source"))
            rec.masks[name] = {"path": p.name}
            written.append(p)
        written.append(atomic_write_bytes(path, rec.to_json().encode()))
        return written

    def cube(self, version: int | str | None = None, size: int = 33) -> str:
        """A version's recipe (default the current) as .cube text; RecipeError names a step a LUT
        cannot hold (spatial, masked or image-dependent)."""
        from tools.lut3d import recipe_to_cube

        n = self.store.head if version is None else _vid(version)
        stem = Path(self.store.meta("source") or "image").stem
        return recipe_to_cube(self.recipe(n), size=size, title=f"imagent {stem} v{n}")

    def _export_reply(self, arg: str) -> Reply:
        """/export FILE.cube: an existing file is replaced only after a person says yes."""
        from tools.io import atomic_write_bytes

        path = Path(arg).expanduser()
        if path.suffix.lower() != ".cube":
            raise UserError("/export writes a 3-D LUT: give a .cube path, e.g. /export look.cube "
                            "(/save writes the image, /recipe shows the recipe)")
        text = self.cube()  # before asking: a recipe a LUT cannot hold is refused first
        if self._target_exists(path, image=False):
            question = f"{path} exists; overwrite? [y/N]"
            if self.ask is None or not self.ask(question):
                return Reply(f"{question} no: {path} is unchanged; /export to another path", kind="error",
                             version=self.head)
        atomic_write_bytes(path, text.encode())
        return Reply(f"wrote {path} ({self.head} as a 33^3 .cube LUT)", kind="command", path=path)

    def _used_masks(self, rec: Any) -> list[str]:
        masks = self.store.mask_hashes()
        used = sorted({s.mask for s in rec.steps if s.mask})
        for name in used:
            if name not in masks or not re.fullmatch(r"[\w-]+", name):
                raise SessionError(f"session {self.folder}: the recipe names a mask {name!r} the session does not "
                                   "hold; the database may be tampered with, so nothing was exported")
        return used

    def contact_sheet(self, thumb: int = 192, columns: int = 6) -> torch.Tensor:
        """Every version as a labelled thumbnail in a grid (the current one framed)."""
        from agent.images import contact_sheet

        items = [(self.image(r.id), r.name + (f" <- v{r.parent}" if r.parent is not None else " original"),
                  r.id == self.store.head) for r in self.versions]
        return contact_sheet(items, thumb, columns)

    def history_text(self) -> Reply:
        lines = []
        for t in self.store.turns():
            res = f"-> v{t.result}" if t.result is not None else ""
            flag = "" if t.status == "done" else f" [{t.status}]"
            lines.append(f"{t.id:>3}. {t.text}{flag} {res}" + (f"  ({t.reply[:100]})" if t.kind == "edit" else ""))
        return Reply("\n".join(lines) or "no messages yet", kind="command")

    def versions_text(self) -> Reply:
        lines = []
        head = self.store.head
        for r in self.versions:
            steps = json.loads(r.recipe).get("steps", [])
            last = steps[-1] if steps else None
            what = "original" if last is None else last["tool"] + (f"@{last['mask']}" if last.get("mask") else "") + \
                "(" + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in last["params"].items() if v not in (0, 0.0, None, False)) + ")"
            st = r.stats or {}
            meas = f"  L* {st['mean_L']:.0f}, contrast {st['rms_contrast']:.2f}" if "mean_L" in st else ""
            parent = f" <- v{r.parent}" if r.parent is not None else ""
            lines.append(f"{'*' if r.id == head else ' '} v{r.id}{parent}  {what}{meas}")
        return Reply("\n".join(lines), kind="command")

    def _masks_reply(self) -> Reply:
        names = self.store.mask_hashes()
        if not names:
            return Reply("no masks yet; add one with /mask NAME PATH (grayscale image, white = edit)", kind="command")
        return Reply("\n".join(f"{n}: {self._coverage(n):.0%} of the image" for n in names), kind="command")

    def _model_reply(self, arg: str) -> Reply:
        if not arg:
            return Reply(f"planner: {self.model_name}", kind="command")
        self.set_model(arg, critic=self.critic, api_key=self._api_key, base_url=self.base_url)
        return Reply(f"planner is now {arg}", kind="command")


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
        from langchain_core.runnables import RunnableLambda

        return self.model.bind_tools(tools, **kwargs) | RunnableLambda(self._scope)

    def _scope(self, ai: Any) -> Any:
        from tools.registry import ToolError, get

        calls = []
        for c in getattr(ai, "tool_calls", None) or []:
            try:
                read_only = get(c["name"]).read_only
            except ToolError:
                read_only = True
            calls.append(c if read_only else {**c, "args": {**(c.get("args") or {}), "mask": self.mask}})
        return ai.model_copy(update={"tool_calls": calls}) if calls else ai


# -- goals for relative requests -----------------------------------------------------------


def _scaled(intent: Any, factor: float) -> Any:
    upd: dict[str, Any] = {"degree": min(8.0, max(0.25, factor)), "source": "rule"}
    if intent.stops is not None:
        upd["stops"] = intent.stops * factor
    if intent.percent is not None:
        upd["percent"] = intent.percent * factor
    return intent.model_copy(update=upd)


def _between_goal(text: str, prev: Any, before: Any, after: Any, lock: float, budget: Any) -> Any:
    """'Less than that': each main metric of the last request, 25-75 % of the way it moved."""
    from agent.goals import METRICS, Goal, Target

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


# -- small helpers -------------------------------------------------------------------------


_RECORDED = {"undo", "redo", "checkout", "compare", "save", "mask", "model", "export"}  # commands that act


def user_facing(exc: Exception) -> bool:
    """Whether `exc` is a problem the person can fix (shown as one line), not a bug."""
    from tools.io import ImageLoadError, ImageSaveError
    from tools.registry import ToolError

    return isinstance(exc, (UserError, ToolError, ImageLoadError, ImageSaveError, FileNotFoundError))


def _vid(v: int | str) -> int:
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


def _key_stats(v: Version) -> dict[str, float]:
    out: dict[str, float] = {}
    if v.stats is not None:
        for k in ("mean_L", "rms_contrast", "cast_a", "cast_b", "mean_saturation"):
            out[k] = round(float(getattr(v.stats, k)), 4)
    if v.score is not None:
        out["structure"] = round(float(v.score.structure), 4)
    return out


def _fresh_folder(root: Path, stem: str) -> Path:
    base = re.sub(r"[^\w.-]+", "-", stem).strip("-") or "session"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        p = root / (f"{base}-{stamp}" + (f"-{i}" if i else ""))
        if not p.exists():
            return p
    raise SessionError(f"could not find a free session folder name under {root}")


