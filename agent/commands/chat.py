"""`imagent chat` (a terminal conversation about one photo) and `imagent sessions list|show|export|delete`.

The chat reads one message per line: from the keyboard with a rich prompt, or piped on stdin
(`printf 'brighter\\n/save out.jpg\\n' | imagent chat photo.jpg`), so scripts and tests drive it
exactly as a person does.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from agent.cli import (
    BaseUrlOpt,
    CritiqueEveryOpt,
    LockOpt,
    MaxPixelsOpt,
    MaxStepsOpt,
    PreviewOpt,
    VisionOpt,
    app,
    console,
    edit_flags,
)
from agent.errors import UserError
from agent.runtime import pixel_policy

sessions_app = typer.Typer(help="List, inspect, export or delete chat sessions.", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")

RootOpt = Annotated[Path | None, typer.Option("--root", help="Folder of sessions (default $IMAGENT_HOME/sessions).")]


@app.command("chat")
def chat_cmd(
    image: Annotated[Path | None, typer.Argument(help="Photo to edit (never modified).")] = None,
    session: Annotated[Path | None, typer.Option("--session", help="Folder for the new session (default: under --root).")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Session folder or name to continue.")] = None,
    model: Annotated[str | None, typer.Option(help="offline | provider:model | hf:/local/path (default: the session's, else offline)")] = None,
    base_url: BaseUrlOpt = None,
    mask: Annotated[list[str] | None, typer.Option("--mask", help="NAME=PATH: a grayscale mask image (white = edit); repeatable.")] = None,
    preview: PreviewOpt = None,
    lock: LockOpt = None,
    max_steps: MaxStepsOpt = None,
    vision: VisionOpt = None,
    critique_every: CritiqueEveryOpt = None,
    root: RootOpt = None,
    max_pixels: MaxPixelsOpt = None,
) -> None:
    """Edit a photo in conversation: "brighter", "a bit more", "now only the sky", /undo, /save PATH."""
    from agent.chat import Session

    if (image is None) == (resume is None):
        raise UserError("give a photo to start a session (imagent chat photo.jpg) or --resume SESSION, not both")
    edit_options = edit_flags(lock=lock, max_steps=max_steps, preview=preview, vision=vision,
                              critique_every=critique_every, max_pixels=pixel_policy(max_pixels))
    options: dict[str, Any] = {"base_url": base_url, "options": edit_options, "on_event": _print_step,
                               "ask": _ask if sys.stdin.isatty() else None}  # piped: never replace a file
    if model is not None:
        options["model"] = model
    if resume is not None:
        if session is not None:
            raise UserError("--session names a new session's folder; with --resume give only the session")
        s = Session.resume(_find(resume, root), **options)
    else:
        s = Session.open(image, session=session, root=root, **options)
    with s:
        for spec in mask or []:
            name, sep, path = spec.partition("=")
            if not sep or not name or not path:
                raise UserError(f"--mask {spec!r}: use NAME=PATH, e.g. --mask sky=sky.png")
            s.add_mask(name.strip(), path.strip())
        _greet(s, resumed=resume is not None)
        _converse(s)
        console.print(f"session saved in {s.folder}; continue with: imagent chat --resume {s.folder}")


def _greet(s: Any, resumed: bool) -> None:
    st = s.store
    w, h = st.meta("size")
    console.print(f"[bold]imagent chat[/] - {Path(st.meta('source') or 'image').name} {w}x{h}, session {s.folder}, "
                  f"planner {s.model_name}; now at {s.head}. /help lists commands.")
    rec = st.recovered
    if resumed and (rec.get("interrupted") or rec.get("temporary") or rec.get("unreferenced")):
        console.print(f"[yellow]recovered after a crash:[/] {rec['interrupted']} interrupted message(s) marked, "
                      f"{rec['temporary']} temporary file(s) and {rec['unreferenced']} unfinished image(s) removed; "
                      f"every kept version is intact (now at {s.head}).")
    if s.resumed is not None:
        console.print(f"[{'red' if s.resumed.kind == 'error' else 'green'}]imagent>[/] {escape(s.resumed.text)}",
                      highlight=False)


def _converse(s: Any) -> None:
    interactive = sys.stdin.isatty()
    while True:
        try:
            line = console.input("[bold cyan]you>[/] ") if interactive else sys.stdin.readline()
        except (EOFError, KeyboardInterrupt):
            break
        if not interactive:
            if not line:
                break
            line = line.strip()
            if line:
                console.print(f"[bold cyan]you>[/] {line}", highlight=False)
        if not line.strip():
            continue
        reply = s.say(line)
        colour = {"error": "red", "edit": "green"}.get(reply.kind, "white")
        console.print(f"[{colour}]imagent>[/] {escape(reply.text)}", highlight=False)  # text, not markup
        if reply.kind == "quit":
            break


def _ask(question: str) -> bool:
    """A yes/no question at the terminal; only "y" or "yes" is a yes."""
    try:
        answer = console.input(f"[yellow]imagent>[/] {escape(question)} ")
    except (EOFError, KeyboardInterrupt):
        return False
    return answer.strip().lower() in ("y", "yes")


def _print_step(e: Any) -> None:
    if e.tool.startswith("critic"):
        return
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in e.params.items() if v not in (0, 0.0, None, False))
    colour = {"kept": "green", "rolled_back": "yellow", "error": "red"}.get(e.outcome, "white")
    console.print(f"   {e.tool}{'@' + e.mask if e.mask else ''}({params}) [{colour}]{e.outcome}[/]"
                  f"{' as ' + e.version if e.outcome == 'kept' and e.version else ''}: {e.reason[:100]}",
                  highlight=False)


def _find(name: str, root: Path | None) -> Path:
    from agent.sessions import is_session, session_root

    p = Path(name)
    if is_session(p):
        return p
    under = (root or session_root()) / name
    if is_session(under):
        return under
    raise UserError(f"no session {name!r}: not a session folder, and not in {root or session_root()} "
                    "(see `imagent sessions list`)")


@sessions_app.command("list")
def sessions_list(root: RootOpt = None) -> None:
    """Every session under the root: name, photo, versions, messages, last change."""
    import sqlite3
    import time

    from agent.sessions import DB_NAME, is_session, session_root

    base = root or session_root()
    found = sorted(p for p in base.iterdir() if is_session(p)) if base.is_dir() else []
    if not found:
        console.print(f"no sessions in {base}")
        return
    table = Table(title=f"{len(found)} session(s) in {base}")
    for col in ("name", "photo", "versions", "messages", "last change"):
        table.add_column(col)
    for p in found:
        if (p / DB_NAME).is_symlink():  # never read a database outside the session folder
            table.add_row(p.name, f"[red]refused: {DB_NAME} is a symbolic link[/]", "-", "-", "-")
            continue
        try:  # read-only peek: works while a chat holds the session
            db = sqlite3.connect(f"file:{p / DB_NAME}?mode=ro", uri=True)
            src = db.execute("SELECT value FROM meta WHERE key='source'").fetchone()
            nv = db.execute("SELECT COUNT(*) FROM versions").fetchone()[0]
            nt = db.execute("SELECT COUNT(*) FROM turns WHERE kind='edit'").fetchone()[0]
            db.close()
            photo = Path(src[0].strip('"')).name if src and src[0] != "null" else "-"
        except sqlite3.DatabaseError as exc:
            photo, nv, nt = f"[red]damaged database: {exc}[/]", "-", "-"
        changed = time.strftime("%Y-%m-%d %H:%M", time.localtime((p / DB_NAME).stat().st_mtime))
        table.add_row(p.name, photo, str(nv), str(nt), changed)
    console.print(table)


@sessions_app.command("show")
def sessions_show(session: Annotated[str, typer.Argument(help="Session folder or name.")], root: RootOpt = None) -> None:
    """A session's photo, its versions (* = current) and its conversation."""
    from agent.chat import Session

    with Session.resume(_find(session, root), resume_interrupted=False) as s:  # look, never edit
        w, h = s.store.meta("size")
        console.print(f"{s.folder}: {s.store.meta('source')} ({w}x{h}), now at {s.head}, planner {s.model_name}")
        console.print("[bold]versions[/]")
        console.print(s.versions_text().text, highlight=False)
        console.print("[bold]conversation[/]")
        console.print(s.history_text().text, highlight=False)


@sessions_app.command("export")
def sessions_export(
    session: Annotated[str, typer.Argument(help="Session folder or name.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write into (created).")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace files an earlier export left there.")] = False,
    root: RootOpt = None,
) -> None:
    """Write the current image (full resolution), its recipe and a contact sheet of every version."""
    from agent.chat import Session

    with Session.resume(_find(session, root), resume_interrupted=False) as s:  # look, never edit
        for p in s.export(output, overwrite=overwrite):
            console.print(f"wrote {p}")


@sessions_app.command("delete")
def sessions_delete(
    session: Annotated[str, typer.Argument(help="Session folder or name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    root: RootOpt = None,
) -> None:
    """Delete a session folder (refused while a chat has it open)."""
    import shutil

    from agent.sessions import SessionStore

    folder = _find(session, root)
    store = SessionStore.open(folder)  # raises "in use" while another process holds it
    try:
        if not yes and not typer.confirm(f"delete session {folder} and all its versions?"):
            raise typer.Exit(1)
        shutil.rmtree(folder)
    finally:
        store.close()
    console.print(f"deleted {folder}")
