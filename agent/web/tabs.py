"""One browser tab's state, and the server's settings.

Each tab holds at most one `agent.chat.Session` (which holds the session folder's lock) and a
lock of its own: a tab runs one action at a time, tabs run alongside each other. Tabs are
kept by Gradio's per-tab session hash and closed when the tab goes away, so the session folder
is free again for `imagent chat --resume` or another tab.
"""

from __future__ import annotations

import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import UserError

NAME = re.compile(r"[\w][\w.-]{0,200}")  # a session folder name: no separators, no leading dot


@dataclass
class Config:
    """What the server was started with; nothing here comes from a browser."""

    root: Path  # the sessions folder, shared with `imagent chat`
    work: Path  # downloads are written under work/<tab id>/, never where a client says
    max_pixels: int = 100_000_000
    max_upload_bytes: int = 200 << 20
    preview: int = 1024
    model: str = "offline"
    critic: str = "offline"
    base_url: str | None = None
    planners: list[str] = field(default_factory=lambda: ["offline"])  # offered in the planner list
    _local: list[str] | None = field(default=None, repr=False)

    def planner_choices(self) -> list[str]:
        """The planners offered: `planners`, then each local GGUF model already fetched (`make llm`)."""
        if self._local is None:  # looked up once, on the first page load (not before the port answers)
            from agent.local_llm import MODELS, LocalModelError, model_path

            found = []
            for name in MODELS:
                try:
                    model_path(name)
                    found.append(f"local:{name}")
                except LocalModelError:
                    pass
            self._local = found
        return [*self.planners, *(p for p in self._local if p not in self.planners)]


class Busy(UserError):
    """The tab is still working on its previous action."""


class Tab:
    """A browser tab: its session, the last reply and the steps of the request in flight."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.id = secrets.token_hex(8)
        self.session: Any = None  # agent.chat.Session
        self.last: Any = None  # the last edit's agent.chat.Reply
        self.steps: list[Any] = []  # TraceEntry of the request in flight, or of the last one
        self.notice, self.failed = "Upload a photo or open a session to start.", False
        self.download: Path | None = None
        self.header = ""  # photo, size and session name, for the status line while a request runs
        self.thumbs: dict[int, Any] = {}
        self.model, self.critic, self.base_url = config.model, config.critic, config.base_url
        self.api_key: str | None = None  # memory only: handed to the planner, never stored or shown
        self.options: Any = None  # agent.options.EditOptions set in the browser (budget); None: the settings'
        self.mask: str | None = None  # the mask requests are confined to (the last one made)
        self._lock = threading.Lock()

    @contextmanager
    def busy(self) -> Iterator[Tab]:
        """Hold the tab for one action; a second one while the first runs is refused, not queued."""
        if not self._lock.acquire(blocking=False):
            raise Busy("still working on the last request; wait for it to finish")
        try:
            yield self
        finally:
            self._lock.release()

    def require(self) -> Any:
        if self.session is None:
            raise UserError("no photo yet: upload one, or open a session from the list")
        return self.session

    def attach(self, session: Any) -> None:
        """Make `session` this tab's, releasing the one it had."""
        self.detach()
        self.session, self.last, self.steps, self.thumbs = session, session.resumed, [], {}
        self.mask = self.download = None

    def detach(self) -> None:
        if self.session is not None:
            self.session.close()
        self.session = self.last = None

    @property
    def outbox(self) -> Path:
        """This tab's download folder (server-chosen; emptied when the tab closes)."""
        folder = self.config.work / self.id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def close(self, wait: float = 600.0) -> None:
        """Release the session, after the request in flight (if any) ends, waiting at most `wait` s."""
        got = self._lock.acquire(timeout=wait)
        try:
            self.detach()
            shutil.rmtree(self.config.work / self.id, ignore_errors=True)
        finally:
            if got:
                self._lock.release()

    def tell(self, text: str, failed: bool = False) -> None:
        self.notice, self.failed = text, failed


class Tabs:
    """Every open tab by Gradio's session hash."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._tabs: dict[str, Tab] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Tab:
        with self._lock:
            if key not in self._tabs:
                self._tabs[key] = Tab(self.config)
            return self._tabs[key]

    def drop(self, key: str) -> None:
        with self._lock:
            tab = self._tabs.pop(key, None)
        if tab is not None:
            tab.close()

    def holder(self, folder: Path, asking: Tab) -> Tab | None:
        """Another tab of this server with `folder` open, if any."""
        with self._lock:
            tabs = list(self._tabs.values())
        for t in tabs:
            if t is not asking and t.session is not None and t.session.folder.resolve() == folder.resolve():
                return t
        return None

    def close_all(self) -> None:
        for key in list(self._tabs):
            self.drop(key)


def session_names(root: Path) -> list[str]:
    """Session folders under `root`, newest first (names only: a client picks from these)."""
    from agent.sessions import is_session

    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if NAME.fullmatch(p.name) and not p.is_symlink() and is_session(p)]
    return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]
