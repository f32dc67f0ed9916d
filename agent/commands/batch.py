"""`imagent batch`: edit every photo in a folder toward one goal; one bad file fails alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli import (
    BaseUrlOpt,
    CriticOpt,
    CritiqueEveryOpt,
    LockOpt,
    MaxCostOpt,
    MaxPixelsOpt,
    MaxStepsOpt,
    ModelOpt,
    PreviewOpt,
    VisionOpt,
    app,
    console,
    edit_flags,
)


@app.command("batch")
def batch_cmd(
    in_dir: Annotated[Path, typer.Argument(help="Folder of photos (not modified).")],
    goal: Annotated[str, typer.Option("-g", "--goal", help="What you want, in words, for every photo.")],
    out_dir: Annotated[Path, typer.Option("-o", "--output", help="Folder for the edited photos (created).")],
    model: ModelOpt = None,
    critic: CriticOpt = None,
    max_cost: MaxCostOpt = None,
    workers: Annotated[int, typer.Option(help="Photos edited at once.")] = 1,
    engine: Annotated[str, typer.Option(help="local (threads) or ray (pip install 'imagent[ray]').")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="An existing Ray cluster (default: start one here).")] = None,
    lock: LockOpt = None,
    max_steps: MaxStepsOpt = None,
    preview: PreviewOpt = None,
    vision: VisionOpt = None,
    critique_every: CritiqueEveryOpt = None,
    base_url: BaseUrlOpt = None,
    max_pixels: MaxPixelsOpt = None,
    max_photo_seconds: Annotated[float | None, typer.Option(
        help="Stop a photo still running after this many seconds; it fails alone (0 = no cap) "
             "[default: IMAGENT_MAX_PHOTO_SECONDS or 600].")] = None,
    max_photo_memory: Annotated[str | None, typer.Option(
        help="Memory one photo may use, like 4G or 512M; a photo over it fails alone (0 = no cap) "
             "[default: IMAGENT_MAX_PHOTO_MEMORY or 4G].")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Skip photos that summary.csv in the output folder lists as done (output present).")] = False,
) -> None:
    """Edit every photo in a folder toward one goal; one bad file fails alone.

    With a time or memory cap, photos are edited in worker processes (--workers of them);
    a photo over a cap is stopped and fails alone, with its reason and peak memory in
    summary.csv, which gets a row as each photo finishes.

    Exit status: the worst photo's. 0 every goal met; 1 a photo failed (a bug or an
    environment problem); 2 a photo unreadable, over the pixel limit or over a cap (its row
    says the fix); 3 edited but a goal not met; 4 nothing understood / nothing to do.
    """
    from agent.batch import exit_status, run_batch
    from agent.settings import load_settings

    # a bad setting fails once, not per photo
    cfg = load_settings(model=model, critic=critic, max_cost_usd=max_cost, max_pixels=max_pixels,
                        max_photo_seconds=max_photo_seconds, max_photo_memory=max_photo_memory)
    options = edit_flags(lock=lock, max_steps=max_steps, preview=preview, vision=vision, max_cost=max_cost,
                         critique_every=critique_every, max_pixels=cfg.max_pixels, settings=cfg)
    rows = run_batch(in_dir, out_dir, goal, model=model, critic=critic, base_url=base_url, options=options,
                     workers=workers, console=console, engine=engine, ray_address=ray_address, resume=resume,
                     max_photo_seconds=cfg.max_photo_seconds if engine == "local" else None,
                     max_photo_memory=cfg.max_photo_memory if engine == "local" else None)
    raise typer.Exit(exit_status(rows))
