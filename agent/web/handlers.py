"""What each control does: a call on the tab's `agent.chat.Session`, then the tab's new View.

Every handler takes the Tab first and returns a View (`say` yields one per step while the
agent works). A problem the person can fix becomes the status line, never a traceback; a
second action while one runs is refused (Busy). Paths are always the server's: an upload
must lie in Gradio's upload folder, a session is picked by name from the server's list, and
downloads are written to the tab's own folder.
"""

from __future__ import annotations

import queue
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.chat import user_facing
from agent.errors import UserError
from agent.web.masks import free_name, make_mask, painted
from agent.web.tabs import Tab, Tabs, session_names
from agent.web.views import View, view_of


def _act(tab: Tab, fn: Callable[[], str | None]) -> View:
    """Run one action while holding the tab; its message, or its error, becomes the status line."""
    try:
        with tab.busy():
            note = fn()
            if note is not None:
                tab.tell(note)
    except Exception as exc:
        if not user_facing(exc):
            raise
        tab.tell(str(exc), failed=True)
    return view_of(tab)


def _options(tab: Tab) -> dict[str, Any]:
    return {"critic": tab.critic, "base_url": tab.base_url, "api_key": tab.api_key, "options": tab.options}


def upload(tab: Tab, path: str | None, uploads: Path | None = None) -> View:
    """Start a session on an uploaded photo (`uploads`: the folder uploads must come from)."""
    def run() -> str:
        from agent.chat import Session

        if not path:
            raise UserError("no file received; pick a photo (JPEG, PNG, TIFF, WebP)")
        p = Path(path)
        if uploads is not None and not p.resolve().is_relative_to(uploads.resolve()):
            raise UserError("that file did not come through the upload box; upload the photo again")
        size = p.stat().st_size
        if size > tab.config.max_upload_bytes:
            raise UserError(f"{p.name} is {size / 2**20:.0f} MiB, over the {tab.config.max_upload_bytes / 2**20:.0f} MiB "
                            "upload limit; start the server with a larger --max-upload-mb")
        s = Session.open(p, root=tab.config.root, preview=tab.config.preview, max_pixels=tab.config.max_pixels,
                         model=tab.model, **_options(tab))
        tab.attach(s)
        return f"session {s.folder.name} started on {p.name}; say what you want changed"
    return _act(tab, run)


def reopen(tab: Tab, name: str | None, tabs: Tabs | None = None) -> View:
    """Open a stored session by its name in the server's list (a chat session opens here too)."""
    def run() -> str:
        from agent.chat import Session

        names = session_names(tab.config.root)
        if not name or name not in names:
            raise UserError(f"no session named {name!r}; pick one from the list (refresh it first)")
        folder = tab.config.root / name
        if tab.session is not None and tab.session.folder.resolve() == folder.resolve():
            return f"session {name} is already open here"
        if tabs is not None and tabs.holder(folder, tab) is not None:
            raise UserError(f"session {name} is open in another browser tab of this app; close it there, "
                            "or work on it in that tab")
        s = Session.resume(folder, **_options(tab))  # SessionInUse: held by `imagent chat` or another server
        tab.attach(s)
        return f"reopened session {name} at {s.head}" + (f"; {s.resumed.text}" if s.resumed else "")
    return _act(tab, run)


# chat commands that name a server path: the page has buttons and a mask panel for these instead
PATH_COMMANDS = {"save": "the Image download button", "mask": "the mask panel", "export": "the .cube LUT button"}


def say(tab: Tab, text: str, mask: str | None = None) -> Iterator[View]:
    """One message (a request or a /command); yields the page after each step the agent takes."""
    try:
        with tab.busy():
            s = tab.require()
            name = (text or "").strip()[1:].split(" ", 1)[0].lower() if (text or "").strip().startswith("/") else ""
            if name in PATH_COMMANDS:
                raise UserError(f"/{name} takes a path on the server, which a web page may not name; "
                                f"use {PATH_COMMANDS[name]}")
            if name == "model":
                _offered(tab, text.strip()[len("/model"):].strip())
            yield from _converse(tab, s, text, mask or None)
    except Exception as exc:
        if not user_facing(exc):
            raise
        tab.tell(str(exc), failed=True)
        yield view_of(tab)


def _converse(tab: Tab, s: Any, text: str, mask: str | None) -> Iterator[View]:
    events: queue.Queue[Any] = queue.Queue()
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["reply"] = s.say(text, mask=mask)
        except Exception as exc:  # handed to the page's thread, which decides how to show it
            box["error"] = exc

    s.on_event, tab.steps = events.put, []
    worker = threading.Thread(target=work, name=f"imagent-web-{tab.id}", daemon=True)
    tab.tell(f"working on '{text}'...")
    worker.start()
    try:
        yield view_of(tab, working=True)
        while worker.is_alive() or not events.empty():
            try:
                e = events.get(timeout=0.2)
            except queue.Empty:
                continue
            tab.steps.append(e)
            tab.tell(f"working on '{text}': step {len(tab.steps)}, {e.tool} {e.outcome.replace('_', ' ')}")
            yield view_of(tab, working=True)
    finally:
        worker.join()  # a closed page still lets the request finish before the tab is free again
        s.on_event = None
    if "error" in box:
        raise box["error"]
    reply = box["reply"]
    if reply.kind == "edit":
        tab.last, tab.steps = reply, list(reply.trace)
    tab.tell(reply.text.split("; L*")[0][:300], failed=reply.kind == "error")  # the chat has it all
    yield view_of(tab)


def undo(tab: Tab) -> View:
    return _act(tab, lambda: tab.require().undo().text)


def redo(tab: Tab) -> View:
    return _act(tab, lambda: tab.require().redo().text)


def checkout(tab: Tab, index: int | None) -> View:
    """Make the version at `index` in the versions strip current: the next request branches from it."""
    def run() -> str:
        s = tab.require()
        rows = s.versions
        if index is None or not 0 <= int(index) < len(rows):
            raise UserError("pick a version in the strip")
        return s.checkout(rows[int(index)].id).text
    return _act(tab, run)


def add_mask(tab: Tab, kind: str, editor: dict[str, Any] | None, colour: str = "#3070d0") -> View:
    """Make a mask (brush strokes or a detector) on the current version and name it for requests."""
    def run() -> str:
        s = tab.require()
        m = make_mask(kind, s.image(), painted(editor), colour)
        name = free_name(kind, s.store.mask_hashes())
        s.add_mask(name, m)
        tab.mask = name
        return f"mask '{name}' added ({float(m.mean()):.0%} of the photo); requests now apply only inside it"
    return _act(tab, run)


def _offered(tab: Tab, spec: str) -> str:
    """A planner or critic spec a page may ask for: any but a local model path the server did not offer."""
    offered = {*tab.config.planners, tab.config.model, tab.config.critic}
    if spec.lower().startswith(("hf:", "gguf:")) and spec not in offered:
        raise UserError(f"{spec!r} names a path on the server, which a web page may not choose; start the "
                        "server with it instead: imagent serve --model hf:/path/to/model")
    return spec


def set_planner(tab: Tab, model: str, critic: str, base_url: str | None, api_key: str | None) -> View:
    """Choose the planner and critic; the key stays in this process's memory (never stored or shown)."""
    def run() -> str:
        model_ = _offered(tab, (model or "offline").strip())
        critic_ = _offered(tab, (critic or "offline").strip())
        url = (base_url or "").strip() or None
        if tab.session is not None:
            tab.session.set_model(model_, critic=critic_, api_key=api_key or None, base_url=url)
        else:
            from agent.critics import check_specs

            check_specs(model_, critic_, base_url=url)
        tab.model, tab.critic, tab.base_url, tab.api_key = model_, critic_, url, api_key or None
        return f"planner {model_}, critic {critic_}" + (", with an API key (kept in memory only)" if api_key else "")
    return _act(tab, run)


def set_budget(tab: Tab, max_steps: float, max_seconds: float) -> View:
    def run() -> str:
        from agent.configure import edit_options

        opts = edit_options(tab.options, max_steps=int(max_steps), max_seconds=float(max_seconds))
        tab.options = opts
        if tab.session is not None:
            tab.session.options = opts
        return f"budget: at most {opts.budget.max_steps} edits and {opts.budget.max_seconds:g} s per request"
    return _act(tab, run)


def download(tab: Tab, what: str) -> View:
    """Write the current image, recipe (a zip with its masks when it uses any) or .cube LUT for download."""
    def run() -> str:
        s = tab.require()
        out = tab.outbox
        for old in out.iterdir():
            if old.is_file():
                old.unlink()
        stem = f"{Path(s.store.meta('source') or 'image').stem}-{s.head}"
        if what == "image":
            path = s.save(out / f"{stem}.png", overwrite=True)
        elif what == "recipe":
            path = _recipe_file(s, out, stem)
        elif what == "cube":
            from tools.io import atomic_write_bytes

            path = atomic_write_bytes(out / f"{stem}.cube", s.cube().encode())
        else:
            raise UserError(f"nothing to download called {what!r}")
        tab.download = path
        return f"ready: {path.name} ({s.head}); use the download link"
    return _act(tab, run)


def _recipe_file(s: Any, out: Path, stem: str) -> Path:
    files = s.write_recipe(out / f"{stem}.recipe.json")
    if len(files) == 1:
        return files[0]
    bundle = out / f"{stem}.recipe.zip"  # the recipe names its masks relatively: keep them together
    with zipfile.ZipFile(bundle, "w") as z:
        for f in files:
            z.write(f, f.name)
    return bundle
