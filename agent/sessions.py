"""Durable editing sessions: a folder holding an SQLite database and content-addressed images.

    my-session/
      session.db          SQLite in WAL mode: meta, the version graph, chat turns, named masks
      session.lock        held (flock) while a process has the session open
      images/<sha256>.png every image, named by the SHA-256 of its PNG bytes, read-only
      checkpoints.sqlite  LangGraph checkpoints of each edit turn, so a turn cut off by a crash resumes

Write order makes a crash at any instant safe: an image is written first (temporary file,
fsync, rename: `tools.io.atomic_write_bytes`), then the row naming it is committed in one
transaction with `synchronous=FULL`. A committed version therefore always has its image; a
crash leaves at most an unreferenced image or a temporary file, and the next open removes
both (it holds the lock, so no writer is running). Committing is idempotent: the same edit of
the same parent gives the same bytes and hash, so a step replayed after a crash reuses the
version it already committed instead of adding a twin.

Images are lossless PNG: the original at its source's bit depth (8 or 16), previews and masks
at 16 bits. The original is written once and never changed; versions are immutable nodes.

A session folder is untrusted input (it can be copied, shared, edited): nothing in it may make
imagent touch a file outside it or run code. The lock is opened without following links; a
symbolic link anywhere among the session's own files refuses the open; every image path is a
64-hex hash confined to images/ after realpath; the rows are checked on open (hashes, parents,
head); and the checkpoints are read by `StrictSerializer`, which refuses any type it does not know.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agent.session_folder import (  # noqa: F401  (the folder's names and errors are re-exported)
    CHECKPOINTS,
    DB_NAME,
    IMAGES,
    KILL_ENV,
    LOCK_NAME,
    OWN_NAMES,
    PREVIEWS,
    CheckpointRefused,
    SessionDamaged,
    SessionError,
    SessionInUse,
    StrictSerializer,
    check_folder,
    connect,
    connect_plain,
    crash_point,
    damaged,
    discard,
    file_hash,
    lock,
    unlock,
)
from agent.state import preview_of
from tools.io import ImageLoadError, atomic_write_bytes, load_image
from tools.io import encode_png as io_encode_png
from tools.recipe import Recipe

FORMAT = 1
_HASH = re.compile(r"[0-9a-f]{64}")  # an image's name: the SHA-256 of its PNG bytes


@dataclass(frozen=True)
class VersionRow:
    id: int
    parent: int | None
    hash: str
    recipe: str  # tools.recipe.Recipe JSON
    turn: int | None
    note: str
    stats: dict[str, float] | None
    created: float

    @property
    def name(self) -> str:
        return f"v{self.id}"


@dataclass(frozen=True)
class TurnRow:
    id: int
    text: str
    kind: str  # edit | command
    request: dict[str, Any] | None
    goal: str | None
    base: int | None
    result: int | None
    reply: str
    status: str  # running | done | interrupted | failed
    started: float
    ended: float | None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_png(image: torch.Tensor, bit_depth: int = 16) -> bytes:
    """A version as the store keeps it: lossless 16-bit PNG bytes (tools.io.encode_png)."""
    return io_encode_png(image, bit_depth)


def session_root() -> Path:
    """Where `imagent chat` keeps sessions unless told otherwise ($IMAGENT_HOME/sessions)."""
    home = os.environ.get("IMAGENT_HOME") or Path.home() / ".local" / "share" / "imagent"
    return Path(home) / "sessions"


def is_session(folder: str | Path) -> bool:
    return (Path(folder) / DB_NAME).is_file()


class SessionStore:
    """One open session folder. Exclusive: a second open (any process) raises SessionInUse."""

    def __init__(self, folder: Path, db: sqlite3.Connection, lock_fd: int) -> None:
        self.folder, self.db, self._lock_fd = folder, db, lock_fd
        self.images = folder / IMAGES
        self.on_commit: list[Callable[[VersionRow], None]] = []
        self.recovered: dict[str, int] = {}
        self._saver: Any = None

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def create(cls, folder: str | Path, original: torch.Tensor, *, bit_depth: int = 8,
               alpha: torch.Tensor | None = None, source: str | Path | None = None,
               preview: int = 1024, settings: dict[str, Any] | None = None) -> SessionStore:
        """A new session holding `original` (full resolution) as v0."""
        folder = Path(folder)
        made = not folder.exists()
        if not made and (not folder.is_dir() or any(folder.iterdir())):
            what = "a session already" if is_session(folder) else "not an empty folder"
            raise SessionError(f"cannot create a session in {folder}: it is {what}; "
                               "resume it with --resume or choose a new folder")
        try:
            (folder / IMAGES).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SessionError(f"cannot create the session folder {folder}: {exc.strerror}") from None
        check_folder(folder)
        lock_fd = lock(folder)
        try:
            db = connect(folder / DB_NAME)
            store = cls(folder, db, lock_fd)
            h = store.put_image(original, bit_depth=bit_depth)
            meta = {"format": FORMAT, "created": time.time(), "source": str(source) if source else None,
                    "bit_depth": bit_depth, "size": [int(original.shape[-1]), int(original.shape[-2])],
                    "original": h, "preview": preview, "head": 0, "redo": [], **(settings or {})}
            if alpha is not None:
                meta["alpha"] = store.put_image(alpha, bit_depth=16)
            with db:
                db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                               [(k, json.dumps(v)) for k, v in meta.items()])
                db.execute("INSERT INTO versions (id, parent, hash, recipe, note, created) "
                           "VALUES (0, NULL, ?, ?, 'original', ?)", (h, _empty_recipe(original, preview), time.time()))
            return store
        except BaseException:
            unlock(lock_fd)
            discard(folder if made else folder / IMAGES, folder)
            raise

    @classmethod
    def open(cls, folder: str | Path) -> SessionStore:
        """Open an existing session: lock it, check the database, tidy what a crash left."""
        folder = Path(folder)
        if not folder.is_dir():
            raise SessionError(f"no session at {folder}: the folder does not exist")
        if not is_session(folder):
            raise SessionError(f"{folder} is not an imagent session (no {DB_NAME}); "
                               "start one with `imagent chat IMAGE --session DIR`")
        check_folder(folder)
        lock_fd = lock(folder)
        try:
            db = connect(folder / DB_NAME, check=True)
            store = cls(folder, db, lock_fd)
            if store.meta("format", None) is None or store.version_row(0) is None:
                raise SessionDamaged(f"session {folder}: {DB_NAME} holds no session record; "
                                     f"the images in {folder / IMAGES} are untouched")
            if int(store.meta("format")) > FORMAT:
                raise SessionError(f"session {folder} was written by a newer imagent "
                                   f"(format {store.meta('format')}); upgrade imagent")
            store._check_rows()
            store.recovered = store._recover()
            return store
        except sqlite3.DatabaseError as exc:
            unlock(lock_fd)
            raise damaged(folder, exc) from None
        except BaseException:
            unlock(lock_fd)
            raise

    def checkpointer(self) -> Any:
        """LangGraph's SqliteSaver on this session's checkpoints.sqlite (opened once, closed with the store)."""
        if self._saver is None:
            from langgraph.checkpoint.sqlite import SqliteSaver

            try:
                conn = connect_plain(self.folder / CHECKPOINTS)
            except sqlite3.DatabaseError as exc:
                raise SessionDamaged(f"session {self.folder}: {CHECKPOINTS} is damaged ({exc}); delete it to "
                                     "open the session without resuming interrupted turns") from None
            self._saver = SqliteSaver(conn, serde=StrictSerializer(self.folder))
        return self._saver

    def close(self) -> None:
        if self._lock_fd < 0:
            return
        if self._saver is not None:
            with suppress(sqlite3.Error):
                self._saver.conn.close()
            self._saver = None
        with suppress(sqlite3.Error):
            self.db.close()
        unlock(self._lock_fd)
        self._lock_fd = -1

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _check_rows(self) -> None:
        """Refuse rows that could lead a read outside the folder or to a version that is not there."""
        bad = [h for h in self.referenced_hashes() if not isinstance(h, str) or not _HASH.fullmatch(h)]
        orphans = self.db.execute("SELECT id FROM versions WHERE parent IS NOT NULL AND parent NOT IN "
                                  "(SELECT id FROM versions)").fetchall()
        head = self.meta("head", 0)
        redo = self.meta("redo", [])
        ids = {int(r[0]) for r in self.db.execute("SELECT id FROM versions")}
        missing = [v for v in [head, *(redo if isinstance(redo, list) else [redo])]
                   if not isinstance(v, int) or v not in ids]
        if bad or orphans or missing:
            what = (f"image name {bad[0]!r} is not a SHA-256 hash" if bad else
                    f"version v{orphans[0][0]} has a parent that does not exist" if orphans else
                    f"the current version {missing[0]!r} does not exist")
            raise SessionDamaged(f"session {self.folder}: {DB_NAME} is inconsistent ({what}); it may have been "
                                 f"edited by hand or tampered with, so imagent reads nothing it names. The images in "
                                 f"{self.images} are untouched")

    def interrupt_turn(self, turn: int) -> None:
        """Mark a turn interrupted again (its resume was refused before anything ran)."""
        with self.db:
            self.db.execute("UPDATE turns SET status = 'interrupted', ended = ? WHERE id = ?", (time.time(), turn))

    def _recover(self) -> dict[str, int]:
        """Remove temporary files and unreferenced images a crash left; mark cut-off turns."""
        removed = {"temporary": 0, "unreferenced": 0, "interrupted": 0}
        used = self.referenced_hashes()
        for p in self.images.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                p.unlink(missing_ok=True)
                removed["temporary"] += 1
            elif p.suffix == ".png" and p.stem not in used:
                p.unlink(missing_ok=True)
                removed["unreferenced"] += 1
        for p in self.folder.glob(".*.tmp"):  # exports and previews written next to the db
            p.unlink(missing_ok=True)
            removed["temporary"] += 1
        with self.db:
            cur = self.db.execute("UPDATE turns SET status = 'interrupted', ended = ? "
                                  "WHERE status = 'running'", (time.time(),))
        removed["interrupted"] = cur.rowcount
        return removed

    # -- meta ------------------------------------------------------------------------------

    def meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, **values: Any) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                [(k, json.dumps(v)) for k, v in values.items()])

    @property
    def head(self) -> int:
        return int(self.meta("head", 0))

    # -- images ----------------------------------------------------------------------------

    def image_path(self, h: str) -> Path:
        """images/<h>.png, where h must be a SHA-256 hex digest and the path must stay inside images/."""
        if not isinstance(h, str) or not _HASH.fullmatch(h):
            raise SessionDamaged(f"session {self.folder}: {DB_NAME} names an image {h!r} that is not a SHA-256 "
                                 "hash; the database may be tampered with, so imagent does not read it")
        path = self.images / f"{h}.png"
        images = os.path.realpath(self.images)
        if images != os.path.join(os.path.realpath(self.folder), IMAGES) or \
                os.path.dirname(os.path.realpath(path)) != images:
            raise SessionError(f"session {self.folder}: {path} leads outside the session folder (a symbolic "
                               "link); imagent refuses to read or write through it")
        return path

    def put_image(self, image: torch.Tensor, *, bit_depth: int = 16) -> str:
        """Store an image (atomically, once per content); returns its hash."""
        data = encode_png(image, bit_depth)
        h = sha256(data)
        path = self.image_path(h)
        if not (path.is_file() and file_hash(path) == h):
            path.unlink(missing_ok=True)  # a damaged copy is replaced, never trusted
            crash_point("write", path, data)
            atomic_write_bytes(path, data)
            with suppress(OSError):
                os.chmod(path, 0o444)
        return h

    def get_image(self, h: str, channels: int = 3) -> torch.Tensor:
        path = self.image_path(h)
        try:  # the process's one pixel limit (--max-pixels / IMAGENT_MAX_PIXELS), as for any photo
            img = load_image(path).image
        except ImageLoadError as exc:
            raise SessionError(f"session {self.folder}: image {h[:12]}... is missing or damaged ({exc})") from None
        return img.mean(1, keepdim=True) if channels == 1 else img

    def original(self) -> torch.Tensor:
        return self.get_image(self.meta("original"))

    def alpha(self) -> torch.Tensor | None:
        h = self.meta("alpha")
        return None if h is None else self.get_image(h, channels=1)

    # -- versions --------------------------------------------------------------------------

    def commit_version(self, parent: int, image: torch.Tensor, recipe_json: str, *, turn: int | None = None,
                       note: str = "", stats: dict[str, float] | None = None,
                       call_id: str | None = None) -> VersionRow:
        """Store a new version (image first, then its row); the same edit of `parent` is stored once.

        `call_id`: the tool call that made it, recorded in the same transaction, so a turn resumed
        after a crash knows that call's side effect is done (`call_version`)."""
        # The same recipe on the same parent is the same edit, even when the pixels differ in the
        # last bit (a parent reloaded from its 16-bit PNG after a restart): keep the first.
        known = self.db.execute("SELECT id FROM versions WHERE parent = ? AND recipe = ?",
                                (parent, recipe_json)).fetchone()
        h = self.put_image(image) if known is None else ""
        if h:
            crash_point("image")  # the image is durable, its row not yet committed
        with self.db:
            row = self.db.execute("SELECT id FROM versions WHERE parent = ? AND recipe = ?",
                                  (parent, recipe_json)).fetchone()
            if row is None:
                cur = self.db.execute(
                    "INSERT INTO versions (parent, hash, recipe, turn, note, stats, created) VALUES (?,?,?,?,?,?,?)",
                    (parent, h, recipe_json, turn, note, json.dumps(stats) if stats else None, time.time()))
                vid = int(cur.lastrowid or 0)
            else:
                vid = int(row[0])
            if call_id is not None and turn is not None:
                self.db.execute("INSERT OR REPLACE INTO calls VALUES (?, ?, ?)", (turn, call_id, vid))
        v = self.version_row(vid)
        assert v is not None
        for fn in self.on_commit:
            fn(v)
        crash_point("commit")
        return v

    def call_version(self, turn: int, call_id: str) -> int | None:
        """The version a turn's tool call committed, if it did (None: not run, or rolled back)."""
        row = self.db.execute("SELECT version FROM calls WHERE turn = ? AND call_id = ?", (turn, call_id)).fetchone()
        return None if row is None else int(row[0])

    def turn_versions(self, turn: int) -> list[int]:
        """Versions a turn made or reached through its tool calls, oldest first."""
        rows = self.db.execute("SELECT id FROM versions WHERE turn = ? UNION SELECT version FROM calls "
                               "WHERE turn = ? ORDER BY 1", (turn, turn)).fetchall()
        return [int(r[0]) for r in rows]

    def next_version_id(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM versions").fetchone()[0])

    def version_row(self, vid: int) -> VersionRow | None:
        row = self.db.execute("SELECT * FROM versions WHERE id = ?", (vid,)).fetchone()
        return None if row is None else _version(row)

    def versions(self) -> list[VersionRow]:
        return [_version(r) for r in self.db.execute("SELECT * FROM versions ORDER BY id")]

    def version_image(self, vid: int) -> torch.Tensor:
        v = self.require(vid)
        return self.get_image(v.hash)

    def require(self, vid: int) -> VersionRow:
        v = self.version_row(vid)
        if v is None:
            ids = ", ".join(r.name for r in self.versions())
            raise SessionError(f"no version v{vid} in this session; versions: {ids}")
        return v

    def lineage(self, vid: int) -> list[int]:
        """Version ids from the original to `vid`."""
        out: list[int] = []
        cur: int | None = vid
        while cur is not None:
            out.append(cur)
            row = self.require(cur)
            cur = row.parent
        return out[::-1]

    def set_head(self, vid: int, redo: list[int] | None = None) -> None:
        self.require(vid)
        self.set_meta(head=vid, redo=redo if redo is not None else [])

    # -- turns -----------------------------------------------------------------------------

    def begin_turn(self, text: str, kind: str, *, base: int | None = None,
                   request: dict[str, Any] | None = None, goal: str | None = None) -> int:
        with self.db:
            cur = self.db.execute(
                "INSERT INTO turns (text, kind, request, goal, base, status, started) VALUES (?,?,?,?,?,?,?)",
                (text, kind, json.dumps(request) if request is not None else None, goal, base,
                 "running", time.time()))
        return int(cur.lastrowid or 0)

    def end_turn(self, turn: int, *, result: int | None, reply: str, status: str = "done") -> None:
        with self.db:
            self.db.execute("UPDATE turns SET result = ?, reply = ?, status = ?, ended = ? WHERE id = ?",
                            (result, reply, status, time.time(), turn))

    def reopen_turn(self, turn: int) -> None:
        """Mark an interrupted turn running again (it is being resumed)."""
        with self.db:
            self.db.execute("UPDATE turns SET status = 'running', ended = NULL WHERE id = ?", (turn,))

    def turns(self, kind: str | None = None) -> list[TurnRow]:
        q = "SELECT * FROM turns" + (" WHERE kind = ?" if kind else "") + " ORDER BY id"
        return [_turn(r) for r in self.db.execute(q, (kind,) if kind else ())]

    # -- masks -----------------------------------------------------------------------------

    def add_mask(self, name: str, mask: torch.Tensor) -> None:
        h = self.put_image(mask.clamp(0, 1), bit_depth=16)
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO masks VALUES (?, ?, ?)", (name, h, time.time()))

    def mask_hashes(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT name, hash FROM masks ORDER BY name").fetchall())

    def masks(self) -> dict[str, torch.Tensor]:
        return {name: self.get_image(h, channels=1) for name, h in self.mask_hashes().items()}

    # -- checks ----------------------------------------------------------------------------

    def referenced_hashes(self) -> set[str]:
        used = {r[0] for r in self.db.execute("SELECT hash FROM versions UNION SELECT hash FROM masks")}
        used |= {h for h in (self.meta("original"), self.meta("alpha")) if h}
        return used

    def verify(self) -> list[str]:
        """Problems found: every referenced image must exist with the hash it is named by."""
        problems = []
        for h in sorted(self.referenced_hashes()):
            try:
                path = self.image_path(h)
            except SessionError as exc:
                problems.append(str(exc))
                continue
            if not path.is_file():
                problems.append(f"missing image {path.name}")
            elif file_hash(path) != h:
                problems.append(f"image {path.name} does not match its hash")
        return problems

    def iter_files(self) -> Iterator[Path]:
        yield from sorted(self.images.glob("*.png"))


# -- helpers -------------------------------------------------------------------------------


def _empty_recipe(original: torch.Tensor, preview: int) -> str:
    p = preview_of(original, preview)
    return Recipe(size=(int(p.shape[-1]), int(p.shape[-2]))).model_dump_json()



def _version(r: tuple[Any, ...]) -> VersionRow:
    return VersionRow(int(r[0]), None if r[1] is None else int(r[1]), r[2], r[3], r[4], r[5] or "",
                      json.loads(r[6]) if r[6] else None, float(r[7]))


def _turn(r: tuple[Any, ...]) -> TurnRow:
    return TurnRow(int(r[0]), r[1], r[2], json.loads(r[3]) if r[3] else None, r[4], r[5], r[6], r[7] or "",
                   r[8], float(r[9]), r[10])
