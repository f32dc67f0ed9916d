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

Three kinds of session, each one thing: `agent.state.EditSession` holds one edit's versions in
memory (the original, the version graph, named masks: what the loop edits); `agent.sessions.
SessionStore` is a session folder on disk (SQLite, content-addressed images, checkpoints); this
`Session` is a conversation over a store (a planner, the turns). Each turn runs the loop on a
`chat_turns._TurnSession`, an EditSession whose kept versions are committed to the store. The
web app's `Tab` holds one Session. Reading a message: agent.chat_requests; running a turn:
agent.chat_turns; the files a session writes: agent.chat_files.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import torch

from agent import chat_turns
from agent.chat_files import SessionFiles
from agent.chat_requests import (
    REDO,
    SHOW_ORIGINAL,
    UNDO,
    Reply,
    Request,
    norm,
    resolve,
    version_number,
)
from agent.chat_requests import degree_factor as degree_factor  # noqa: F401  (re-exported)
from agent.chat_turns import MaskScoped as MaskScoped  # noqa: F401  (re-exported)
from agent.configure import BUDGET_FIELDS, OPTION_FIELDS, edit_options
from agent.critics import make_critic
from agent.errors import UserError
from agent.goals import Goal
from agent.options import EditOptions
from agent.planners import make_planner
from agent.sessions import CheckpointRefused, SessionError, SessionStore, is_session, session_root
from agent.state import named_mask, preview_of
from tools.io import ImageLoadError, ImageSaveError, load_image, pixel_limit
from tools.recipe import Recipe, apply_recipe, resize_mask
from tools.registry import ToolError

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


class Session(SessionFiles):
    """A durable editing conversation on one photo (see the module doc); its files: SessionFiles."""

    def __init__(self, store: SessionStore, *, model: str | Any = "offline", options: EditOptions | None = None,
                 critic: str | Any | None = None, base_url: str | None = None, api_key: str | None = None,
                 on_event: Any = None, ask: Any = None, **flat: Any) -> None:
        """`options` (lock, budget, ...; `flat`: single options on top, as agent.api.edit takes
        them) apply to every request; `critic` None: no critic."""
        self.store = store
        self.options = edit_options(options, **flat)
        self.base_url, self.on_event = base_url, on_event
        self.critic = critic  # None: no critic; "offline", "provider:model" or a critic object
        self._api_key = api_key  # for the planner and critic only: kept in memory, never stored
        self.ask = ask  # ask(question) -> bool: a person's yes; None (not a terminal) answers no
        self._planner: Any = None if isinstance(model, str) else model
        self.model_name = model if isinstance(model, str) else type(model).__name__
        self.preview = int(store.meta("preview", 1024))
        self._full: torch.Tensor | None = None
        self.cache: dict[int, torch.Tensor] = {}  # version id -> its preview
        self.resumed: Reply | None = None  # what finishing an interrupted turn on open did


    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, source: str | Path | torch.Tensor, *, session: str | Path | None = None,
             root: str | Path | None = None, masks: dict[str, torch.Tensor] | None = None,
             options: EditOptions | None = None, **kwargs: Any) -> Session:
        """Resume a session folder, or start one on a photo (path or (1,3,H,W) tensor).

        A new session goes to `session` (a new or empty folder), else to a fresh folder under
        `root` (default $IMAGENT_HOME/sessions); its preview is `options.preview` px and a photo
        over `options.max_pixels` is refused. `kwargs`: Session's (model, critic, base_url,
        api_key (memory only), on_event, ask: a yes/no prompt; without one, existing files are
        never replaced) and single edit options (lock, max_steps, preview, ...).
        """
        if isinstance(source, (str, Path)) and Path(source).is_dir():
            if session is not None:
                raise UserError(f"{source} is a session folder; resume it without --session")
            return cls.resume(source, options=options, **kwargs)
        flat = {k: kwargs.pop(k) for k in list(kwargs) if k in BUDGET_FIELDS or k in OPTION_FIELDS}
        opts = edit_options(options, **flat)
        src = load_image(source, max_pixels=opts.max_pixels or pixel_limit()) if isinstance(source, (str, Path)) else None
        image = src.image if src is not None else source
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[:2] != (1, 3):
            raise UserError("a session starts from an image path or a (1,3,H,W) tensor in [0,1]")
        stem = Path(source).stem if src is not None else "image"
        folder = Path(session) if session is not None else _fresh_folder(Path(root) if root else session_root(), stem)
        model = kwargs.get("model", "offline")
        settings = {"model": model if isinstance(model, str) else "custom", "format_name": src.format if src else "PNG"}
        store = SessionStore.create(folder, image, bit_depth=src.bit_depth if src else 8,
                                    alpha=src.alpha if src else None,
                                    source=Path(source).resolve() if src is not None else None,
                                    preview=opts.preview, settings=settings)
        s = cls(store, options=opts, **kwargs)
        for name, m in (masks or {}).items():
            s.add_mask(name, m)
        return s

    @classmethod
    def resume(cls, folder: str | Path, **kwargs: Any) -> Session:
        """Open a session folder (or a name under $IMAGENT_HOME/sessions) and finish the turn a crash
        cut off (`resume_interrupted=False`: leave it); `kwargs` as for `open`."""
        folder = Path(folder)
        if not is_session(folder) and not folder.is_dir() and (session_root() / str(folder)).is_dir():
            folder = session_root() / str(folder)
        store = SessionStore.open(folder)
        if "model" not in kwargs:
            kwargs["model"] = store.meta("model", "offline") or "offline"
            if kwargs["model"] == "custom":
                kwargs["model"] = "offline"
        auto = kwargs.pop("resume_interrupted", True)
        s = cls(store, **kwargs)
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
        n = self.store.head if vid is None else version_number(vid)
        if n not in self.cache:
            if n == 0:
                img = preview_of(self.original_full, self.preview)
            else:
                img = self.store.version_image(n)
            if len(self.cache) > 16:
                self.cache.clear()
            self.cache[n] = img
        return self.cache[n]

    def recipe(self, vid: int | str | None = None) -> Any:
        n = self.store.head if vid is None else version_number(vid)
        return Recipe.model_validate_json(self.store.require(n).recipe)

    def render(self, vid: int | str | None = None) -> torch.Tensor:
        """A version at full resolution: its recipe replayed on the original."""
        return apply_recipe(self.original_full, self.recipe(vid), self.store.masks())

    def add_mask(self, name: str, mask: torch.Tensor | str | Path) -> None:
        """Name a mask (tensor (1,1,H,W) or a grayscale image path; white = edit) for later requests."""
        if isinstance(mask, (str, Path)):
            mask = load_image(mask).image.mean(1, keepdim=True)
        self.store.add_mask(name, named_mask(name, mask, self.original_full))

    @property
    def planner(self) -> Any:
        if self._planner is None:
            self._planner = make_planner(self.model_name, base_url=self.base_url, **self.credentials())
        return self._planner

    def credentials(self) -> dict[str, Any]:
        return {"api_key": self._api_key} if self._api_key else {}

    def set_model(self, name: str, *, critic: str | Any | None = None, api_key: str | None = None,
                  base_url: str | None = None) -> None:
        """Switch the planner (and critic); the spec is remembered by the session, the key never."""
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
        t = norm(text)
        if UNDO.match(t):
            return self.command("/undo")
        if REDO.match(t):
            return self.command("/redo")
        if SHOW_ORIGINAL.match(t):
            return self.command("/compare 0")
        try:
            req, goal = resolve(self, text, t, mask)
        except UserError as exc:
            return Reply(str(exc), kind="error", version=self.head)
        if goal is None:  # "like before" with nothing more: go back there
            self.store.set_head(req.base)
            return Reply(f"back to v{req.base}, where the last request started", kind="command", version=self.head)
        return chat_turns.run(self, text, req, goal)

    def coverage(self, name: str) -> float:
        """The fraction of the image mask `name` covers."""
        m = resize_mask(self.store.masks()[name], self.image(0))
        return float(m.mean())


    def resume_interrupted(self) -> Reply | None:
        """Finish the last turn if a crash cut it off: the agent continues from its last
        checkpoint; tool calls whose versions were committed are not redone. None: nothing to do."""
        turns = self.store.turns()
        last = turns[-1] if turns else None
        if last is None or last.kind != "edit" or last.status != "interrupted" or not last.request or not last.goal:
            return None
        self.store.reopen_turn(last.id)
        reply = chat_turns.execute(self, last.id, Request(**last.request), Goal.from_json(last.goal), resume=True)
        reply.text = f"resumed the interrupted request '{last.text}': {reply.text}"
        return reply

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
                key = norm(t.text)[:40]
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
                reply = Reply(f"mask '{mname}' added ({self.coverage(mname):.0%} of the image)", kind="command")
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
        n = version_number(vid)
        self.store.set_head(n)
        return Reply(f"now at v{n}; the next request starts from it", kind="command", version=self.head)

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
        return Reply("\n".join(f"{n}: {self.coverage(n):.0%} of the image" for n in names), kind="command")

    def _model_reply(self, arg: str) -> Reply:
        if not arg:
            return Reply(f"planner: {self.model_name}", kind="command")
        self.set_model(arg, critic=self.critic, api_key=self._api_key, base_url=self.base_url)
        return Reply(f"planner is now {arg}", kind="command")


_RECORDED = {"undo", "redo", "checkout", "compare", "save", "mask", "model", "export"}  # commands that act


def user_facing(exc: Exception) -> bool:
    """Whether `exc` is a problem the person can fix (shown as one line), not a bug."""
    return isinstance(exc, (UserError, ToolError, ImageLoadError, ImageSaveError, FileNotFoundError))



def _fresh_folder(root: Path, stem: str) -> Path:
    base = re.sub(r"[^\w.-]+", "-", stem).strip("-") or "session"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        p = root / (f"{base}-{stamp}" + (f"-{i}" if i else ""))
        if not p.exists():
            return p
    raise SessionError(f"could not find a free session folder name under {root}")


