"""`imagent serve`: the web app (agent/web) on this machine's loopback address.

    imagent serve                      # http://127.0.0.1:7860, sessions in $IMAGENT_HOME/sessions
    imagent serve --port 8080 --root ./sessions --max-upload-mb 50

Sessions are the ones `imagent chat` keeps: one started here resumes there and back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli import MaxPixelsOpt, app, console, err_console
from agent.errors import UserError
from agent.runtime import pixel_policy, quiet_environment

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback lets other machines in.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
    root: Annotated[Path | None, typer.Option("--root", help="Folder of sessions (default $IMAGENT_HOME/sessions).")] = None,
    model: Annotated[str | None, typer.Option(help="Default planner: offline | provider:model | hf:/local/path.")] = None,
    critic: Annotated[str | None, typer.Option(help="Default critic: offline | none | provider:model.")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL (a local LLM).")] = None,
    preview: Annotated[int, typer.Option(help="Long side of the working preview in px.")] = 1024,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload, in MiB.")] = 200.0,
    max_pixels: MaxPixelsOpt = None,
) -> None:
    """Edit photos in the browser: upload, chat, masks, undo/branch, downloads (Gradio, 127.0.0.1 by default)."""
    import shutil
    import tempfile

    from agent.sessions import session_root
    from agent.settings import load_settings

    if not 0 < port < 65536:
        raise UserError(f"--port {port} is not a port; use 1-65535")
    if max_upload_mb <= 0:
        raise UserError("--max-upload-mb must be above 0")
    if host not in LOOPBACK:
        err_console.print(f"[yellow]warning:[/] listening on {host}: anyone who can reach this machine on port "
                          f"{port} can open, edit and download your sessions (there is no login)", highlight=False)
    quiet_environment()  # before gradio is imported: no calls home
    settings = load_settings(model=model, critic=critic, base_url=base_url)
    from agent.web.tabs import Config

    planners = ["offline"] + ([settings.model] if settings.model != "offline" else [])
    config = Config(root=(root or session_root()).expanduser(), work=Path(tempfile.mkdtemp(prefix="imagent-web-")),
                    max_pixels=pixel_policy(max_pixels), max_upload_bytes=int(max_upload_mb * 2**20),
                    preview=preview, model=settings.model, critic=settings.critic, base_url=settings.base_url,
                    planners=planners)
    config.root.mkdir(parents=True, exist_ok=True)
    from agent.web.layout import launch

    console.print(f"imagent serve: http://{'[' + host + ']' if ':' in host else host}:{port} "
                  f"(sessions in {config.root}; Ctrl+C stops)", highlight=False)
    try:
        launch(config, host=host, port=port, quiet=True)
    finally:
        shutil.rmtree(config.work, ignore_errors=True)
