"""`imagent export`: a recipe of colour-only steps as a `.cube` 3-D LUT for other software.

    imagent export look.json --cube look.cube [--size 33|65] [--overwrite]

The .cube is Adobe's uniform-lattice form (what ffmpeg's `lut3d`, Resolve, Premiere, OBS and
Photoshop read); `evals/cube_check.py` measures ffmpeg's rendering of it against `imagent apply`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli import app, check_outputs, console
from agent.errors import UserError

SIZES = (33, 65)


@app.command("export")
def export_cmd(
    recipe: Annotated[Path, typer.Argument(help="Recipe JSON whose steps are all colour-only (tone, colour, B&W, a .cube).")],
    cube: Annotated[Path, typer.Option(help="Where to write the .cube 3-D LUT.")],
    size: Annotated[int, typer.Option(help="Lattice points per axis: 33 (read everywhere) or 65 (closer to "
                                               "imagent's rendering, 8x larger file).")] = 33,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing .cube file.")] = False,
) -> None:
    """Export a recipe as a .cube 3-D LUT (for Resolve, Premiere, ffmpeg, OBS, Photoshop ...).

    Only whole-frame colour steps fit in a LUT: a recipe with a spatial step (sharpen, clarity,
    crop ...), a masked step or an auto white balance is refused, naming the step.
    """
    from agent.cubes import load_recipe_cubes
    from tools.io import atomic_write_bytes
    from tools.lut3d import recipe_to_cube
    from tools.recipe import Recipe

    if cube.suffix.lower() != ".cube":
        raise UserError(f"--cube {cube}: the file name must end in .cube")
    if size not in SIZES:
        raise UserError(f"--size {size} is not offered: use 33 (the usual) or 65")
    check_outputs({"--cube": cube}, {"recipe": recipe}, overwrite=None)
    if cube.exists() and not overwrite:
        raise UserError(f"--cube {cube} already exists; pass --overwrite to replace it")
    rec = Recipe.load(recipe)
    load_recipe_cubes(rec, recipe.parent)  # a recipe may itself hold a user's .cube step
    text = recipe_to_cube(rec, size, title=recipe.stem)
    atomic_write_bytes(cube, text.encode("utf-8"))
    console.print(f"wrote {cube}: a {size}x{size}x{size} LUT of {len(rec.steps)} step(s)")
