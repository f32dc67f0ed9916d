"""A session folder's plumbing and defences, under `agent.sessions.SessionStore`: its file
names and schema, the errors a folder can raise, the exclusive lock, the SQLite connections,
the checks that refuse links and special files, the strict checkpoint serializer, and the
crash points tests use to kill a write at the same step on any machine.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import sqlite3
import stat
from contextlib import suppress
from pathlib import Path
from typing import Any

from agent.errors import UserError

DB_NAME, LOCK_NAME, IMAGES = "session.db", "session.lock", "images"
CHECKPOINTS = "checkpoints.sqlite"  # LangGraph's SqliteSaver: the agent's state per turn (thread id = turn id)
PREVIEWS = "previews"
# Names a session folder holds; none of them may be a symbolic link (it would lead a write outside).
OWN_NAMES = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", LOCK_NAME, IMAGES, PREVIEWS,
             CHECKPOINTS, f"{CHECKPOINTS}-wal", f"{CHECKPOINTS}-shm", f"{CHECKPOINTS}-journal")
KILL_ENV = "IMAGENT_TEST_KILL_AT"  # tests only: "POINT:N" SIGKILLs this process the Nth time POINT is reached

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY, parent INTEGER REFERENCES versions(id), hash TEXT NOT NULL,
    recipe TEXT NOT NULL, turn INTEGER, note TEXT NOT NULL DEFAULT '', stats TEXT,
    created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS versions_parent ON versions(parent);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY, text TEXT NOT NULL, kind TEXT NOT NULL, request TEXT, goal TEXT,
    base INTEGER, result INTEGER, reply TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
    started REAL NOT NULL, ended REAL);
CREATE TABLE IF NOT EXISTS masks (name TEXT PRIMARY KEY, hash TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS calls (
    turn INTEGER NOT NULL, call_id TEXT NOT NULL, version INTEGER NOT NULL REFERENCES versions(id),
    PRIMARY KEY (turn, call_id));
"""


class SessionError(UserError):
    """A session folder that cannot be used as asked; the message says why and what to do."""


class SessionInUse(SessionError):
    """Another process has the session open."""


class SessionDamaged(SessionError):
    """The database cannot be read; the images are left untouched."""


class CheckpointRefused(SessionError):
    """checkpoints.sqlite holds an object imagent does not load: nothing was reconstructed or run."""


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def connect(path: Path, check: bool = False) -> sqlite3.Connection:
    # check_same_thread=False: LangGraph may run a node on a worker thread; the flock
    # already makes this process the only user.
    db = sqlite3.connect(path, timeout=5.0, check_same_thread=False)
    try:
        if check:
            ok = db.execute("PRAGMA quick_check").fetchone()
            if not ok or ok[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check: {ok[0] if ok else 'no answer'}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a committed version survives power loss too
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(SCHEMA)
    except BaseException:
        db.close()
        raise
    return db


def connect_plain(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=5.0, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a saved checkpoint is never older than a committed version
    except BaseException:
        db.close()
        raise
    return db


def damaged(folder: Path, exc: Exception) -> SessionDamaged:
    n = len(list((folder / IMAGES).glob("*.png"))) if (folder / IMAGES).is_dir() else 0
    return SessionDamaged(
        f"session {folder}: the database {DB_NAME} is damaged ({exc}); its {n} image(s) in "
        f"{folder / IMAGES} are untouched. Copy them out, or start again from the original with "
        "`imagent chat IMAGE`")


def discard(path: Path, folder: Path) -> None:
    """Remove what a failed create made, so no half-made session is left behind."""
    shutil.rmtree(path, ignore_errors=True)
    for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", LOCK_NAME, CHECKPOINTS):
        (folder / name).unlink(missing_ok=True)


def check_folder(folder: Path) -> None:
    """Refuse a session folder whose own files are links or special files (each could lead a
    write, a delete or a read outside the folder)."""
    for name in OWN_NAMES:
        p = folder / name
        if p.is_symlink():
            raise SessionError(f"session {folder}: {name} is a symbolic link (to {os.readlink(p)}); a session "
                               "folder holds only its own files, so imagent refuses to open it. Replace the "
                               "link with the real file or folder")
    images = folder / IMAGES
    if images.is_dir():
        with os.scandir(images) as it:
            for e in it:
                if e.is_symlink() or not e.is_file(follow_symlinks=False):
                    raise SessionError(f"session {folder}: {IMAGES}/{e.name} is not a plain file (a link or a "
                                       "folder); imagent refuses to open a session that could lead outside it. "
                                       "Remove it and open the session again")


def crash_point(point: str, path: Path | None = None, data: bytes | None = None) -> None:
    """Tests only: with IMAGENT_TEST_KILL_AT=POINT:N, SIGKILL this process the Nth time POINT is
    reached, so a crash test interrupts the same steps on any machine. Points: `write` (an image
    half written to its temporary file, as a kill inside the write leaves it), `image` (an image
    stored, its version row not committed), `commit` (a version committed and announced)."""
    spec = os.environ.get(KILL_ENV)
    if not spec or spec.partition(":")[0] != point:
        return
    _reached[point] = _reached.get(point, 0) + 1
    if _reached[point] != int(spec.partition(":")[2] or 1):
        return
    if path is not None and data is not None:
        fd = os.open(path.with_name(f".{path.name}.killed.tmp"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)


_reached: dict[str, int] = {}


def refused_type(data: bytes) -> str | None:
    """The first object in a msgpack checkpoint that imagent does not load, without building any.

    LangGraph stores an object as an extension holding (module, name, args): loading imports
    `module.name` and calls it, so a checkpoint edited by someone else can run any function.
    Only LangGraph's own list of plain data types (messages, datetime, uuid, ...) passes."""
    import ormsgpack
    from langgraph.checkpoint.serde._msgpack import SAFE_MSGPACK_METHODS, SAFE_MSGPACK_TYPES

    refused: list[str] = []

    def look(code: int, payload: bytes) -> None:
        inner = ormsgpack.unpackb(payload, ext_hook=look, option=ormsgpack.OPT_NON_STR_KEYS)
        if code == 7:  # LangGraph's delta snapshot: a plain wrapper, its contents were just checked
            return None
        ok = isinstance(inner, (list, tuple)) and len(inner) >= 3 and all(isinstance(x, str) for x in inner[:2])
        key = tuple(inner[:2]) if ok else ()
        if code == 3 and ok and len(inner) >= 4 and (*key, inner[3]) in SAFE_MSGPACK_METHODS:
            return None
        if code in (0, 1, 2, 4, 5) and key in SAFE_MSGPACK_TYPES:
            return None
        refused.append(".".join(key) if key else f"msgpack extension {code}")
        return None

    try:
        ormsgpack.unpackb(data, ext_hook=look, option=ormsgpack.OPT_NON_STR_KEYS)
    except Exception as exc:
        return f"unreadable data ({type(exc).__name__})"
    return refused[0] if refused else None


def StrictSerializer(folder: Path) -> Any:  # noqa: N802 - a class made on first use (langgraph loads lazily)
    """LangGraph's serializer that refuses, as one CheckpointRefused, any checkpoint holding a type
    it does not know (see `refused_type`); loading then goes through LangGraph's strict allowlist."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    class _Strict(JsonPlusSerializer):
        def loads_typed(self, data: tuple[str, bytes]) -> Any:
            kind, blob = data
            bad = None
            if kind == "msgpack":
                bad = refused_type(blob)
            elif kind not in ("null", "bytes", "bytearray"):
                bad = f"'{kind}' data"
            if bad is not None:
                raise CheckpointRefused(
                    f"session {folder}: checkpoint holds an object of type {bad} that imagent does not load; "
                    "the session folder may be tampered with. Nothing was run and its images and versions are "
                    f"untouched; delete {folder / CHECKPOINTS} to open it without resuming the interrupted request")
            return super().loads_typed(data)

    return _Strict(allowed_msgpack_modules=None, allowed_json_modules=None)


def lock(folder: Path) -> int:
    path = folder / LOCK_NAME
    try:  # never through a link: the pid written below would overwrite whatever it points to
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise SessionError(f"session {folder}: cannot open {LOCK_NAME} ({exc.strerror}); if it is a symbolic "
                           "link, remove it: a session folder holds only its own files") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.close(fd)
        raise SessionError(f"session {folder}: {LOCK_NAME} is not the session's own file (a special file or a "
                           "hard link to another file); remove it and open the session again")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            holder = ""
        os.close(fd)
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise SessionInUse(f"session {folder} is in use by another imagent process{who}; "
                           "close that chat first, or open a copy of the folder") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def unlock(fd: int) -> None:
    with suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    with suppress(OSError):
        os.close(fd)
