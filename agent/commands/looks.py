"""`imagent looks`: the looks library (film, vintage, sepia, moody, cinematic ...).

    imagent looks                                   # list them
    imagent looks photo.jpg --sheet looks.jpg       # every look on one photo, labelled
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli import MaxPixelsOpt, app, check_outputs, console
from agent.runtime import pixel_policy


@app.command("looks")
def looks_cmd(
    photo: Annotated[Path | None, typer.Argument(help="A photo to preview every look on (with --sheet).")] = None,
    sheet: Annotated[Path | None, typer.Option(help="Write a contact sheet of every look on PHOTO here.")] = None,
    degree: Annotated[float, typer.Option(help="How strong: 0 none, 1 as designed, up to 1.5.", min=0, max=1.5)] = 1.0,
    thumb: Annotated[int, typer.Option(help="Pixels per thumbnail (long side).", min=64, max=1024)] = 256,
    overwrite: Annotated[bool, typer.Option(help="Allow replacing an existing sheet.")] = False,
    max_pixels: MaxPixelsOpt = None,
) -> None:
    """List the looks a goal can ask for ("give it a film look"), or preview them all on a photo."""
    from agent.looks import looks

    if (photo is None) != (sheet is None):
        raise typer.BadParameter("give both a PHOTO and --sheet to preview the looks, or neither to list them")
    if photo is None:
        from rich.table import Table

        table = Table(title=f"{len(looks())} looks")
        for col in ("look", "what it does", "steps", "also called"):
            table.add_column(col)
        for look in looks().values():
            table.add_row(look.name, look.description, ", ".join(s["tool"] for s in look.steps),
                          ", ".join(look.words[:4]))
        console.print(table)
        return
    from agent.images import contact_sheet
    from agent.state import preview_of
    from tools.io import load_image, save_image
    from tools.recipe import apply_recipe

    check_outputs({"--sheet": sheet}, {"photo": photo}, overwrite=None)
    if sheet.exists() and not overwrite:
        raise typer.BadParameter(f"{sheet} exists; pass --overwrite to replace it")
    src = preview_of(load_image(photo, max_pixels=pixel_policy(max_pixels)).image, thumb)
    items = [(src, "original", True)] + [(apply_recipe(src, look.recipe(degree)), look.name, False)
                                         for look in looks().values()]
    path = save_image(contact_sheet(items, thumb, columns=6), sheet, overwrite=overwrite)
    console.print(f"{len(items) - 1} looks on {photo.name} -> {path}")
