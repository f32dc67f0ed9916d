"""`imagent batch`: edit every photo in a folder toward one goal; one bad file fails alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli import app, console


@app.command("batch")
def batch_cmd(
    in_dir: Annotated[Path, typer.Argument(help="Folder of photos (not modified).")],
    goal: Annotated[str, typer.Option("-g", "--goal", help="What you want, in words, for every photo.")],
    out_dir: Annotated[Path, typer.Option("-o", "--output", help="Folder for the edited photos (created).")],
    model: Annotated[str | None, typer.Option(help="offline | provider:model | hf:/local/path [default: offline]")] = None,
    critic: Annotated[str | None, typer.Option(help="offline | none | provider:model | hf:/local/path [default: offline]")] = None,
    max_cost: Annotated[float | None, typer.Option(help="Cost budget per photo in USD.")] = None,
    workers: Annotated[int, typer.Option(help="Photos edited at once.")] = 1,
    engine: Annotated[str, typer.Option(help="local (threads) or ray (pip install 'imagent[ray]').")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="An existing Ray cluster (default: start one here).")] = None,
    lock: Annotated[float, typer.Option(help="Minimum structural similarity to the original (0-1).")] = 0.80,
    max_steps: Annotated[int, typer.Option(help="Most edits per photo.")] = 8,
    preview: Annotated[int, typer.Option(help="Long side of the working preview in px.")] = 1024,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL.")] = None,
    max_pixels: Annotated[int, typer.Option(help="Refuse images larger than this many pixels.")] = 100_000_000,
) -> None:
    """Edit every photo in a folder toward one goal; one bad file fails alone."""
    from agent.batch import run_batch
    from agent.settings import load_settings

    load_settings(model=model, critic=critic, max_cost_usd=max_cost)  # a bad setting fails once, not per photo
    rows = run_batch(in_dir, out_dir, goal, model=model, workers=workers, lock=lock, max_steps=max_steps,
                     preview=preview, base_url=base_url, max_pixels=max_pixels, console=console,
                     critic=critic, max_cost_usd=max_cost, engine=engine, ray_address=ray_address)
    failed = [r for r in rows if r["status"] != "ok"]
    if failed and len(failed) == len(rows):
        raise typer.Exit(1)
