"""`imagent inpaint` (fill a masked region) and `imagent mask` (make a mask PNG).

    imagent inpaint photo.jpg --mask hole.png -o filled.jpg [--method auto|telea|ns|exemplar]
    imagent inpaint scan.png --defects -o clean.png          # find dust and scratches, fill them
    imagent inpaint photo.jpg --remove-object 120,80,60,40 -o out.jpg
    imagent mask faces photo.jpg -o face.png [--grow 4 --feather 8 --invert]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from agent.cli import MaxPixelsOpt, app, check_outputs, console, err_console
from agent.errors import ExitCode, UserError
from agent.runtime import pixel_policy

METHODS = ("auto", "telea", "ns", "exemplar")
KINDS = ("rect", "ellipse", "brush", "luminance", "color", "faces", "subject", "sky", "defects")


def load_mask(path: Path, like: Any, max_pixels: int) -> Any:
    """A grayscale (or colour) PNG as a (1,1,H,W) mask on the image's grid: white = 1."""
    from tools.io import load_image
    from tools.masks import fit_mask, mask_from_image

    m = load_image(path, max_pixels=max_pixels)
    return fit_mask(mask_from_image(m.image), like, where=f"mask {path}", allow_full=True)


def _numbers(text: str, n: int, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.replace(" ", ",").split(",") if v]
    except ValueError:
        raise UserError(f"{what} must be {n} numbers separated by commas, got {text!r}") from None
    if len(vals) != n:
        raise UserError(f"{what} must be {n} numbers separated by commas (x,y,w,h), got {len(vals)}")
    return vals


def _box_px(text: str, w: int, h: int) -> tuple[float, float, float, float]:
    """x,y,w,h in pixels, or as fractions when every number is <= 1."""
    x, y, bw, bh = _numbers(text, 4, "the box")
    if all(v <= 1 for v in (x, y, bw, bh)):
        x, y, bw, bh = x * w, y * h, bw * w, bh * h
    if bw <= 0 or bh <= 0 or x >= w or y >= h or x + bw <= 0 or y + bh <= 0:
        raise UserError(f"the box {text} lies outside the {w}x{h} image or is empty")
    return x, y, bw, bh


@app.command("inpaint")
def inpaint_cmd(
    image: Annotated[Path, typer.Argument(help="Photo to retouch (never modified).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the result.")],
    mask: Annotated[Path | None, typer.Option(help="Grayscale PNG, white = fill (soft edges blend).")] = None,
    method: Annotated[str, typer.Option(help="auto | telea | ns | exemplar")] = "auto",
    defects: Annotated[bool, typer.Option("--defects", help="Find dust spots and scratches and fill them.")] = False,
    remove_object: Annotated[str | None, typer.Option(help="x,y,w,h box (px, or fractions) around an object to remove.")] = None,
    max_size: Annotated[float, typer.Option(help="--defects: largest spot / scratch width, px.")] = 12.0,
    sensitivity: Annotated[float, typer.Option(help="--defects: 0 obvious only .. 1 faint too.")] = 0.5,
    save_mask: Annotated[Path | None, typer.Option(help="Also write the mask that was filled (PNG).")] = None,
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality 1-100.")] = 95,
    overwrite: Annotated[bool, typer.Option(help="Allow writing over the input file.")] = False,
    max_pixels: MaxPixelsOpt = None,
) -> None:
    """Fill a region from its surroundings: a mask you painted, found dust and scratches, or an object in a box.

    Exit status: 0 filled; 4 nothing to fill (an empty mask, no defects found): nothing written.
    """
    import time

    from tools.inpaint import find_defects, inpaint, object_mask
    from tools.io import check_output_path, load_image, save_image

    if method not in METHODS:
        raise UserError(f"--method {method!r} is not known; use one of {', '.join(METHODS)}")
    if sum(x is not None and x is not False for x in (mask, remove_object, defects or None)) != 1:
        raise UserError("give exactly one of --mask MASK.png, --defects or --remove-object x,y,w,h")
    check_outputs({"-o": output, "--save-mask": save_mask}, {"photo": image, "--mask": mask}, overwrite=overwrite)
    check_output_path(output, source=image, overwrite=overwrite)
    max_pixels = pixel_policy(max_pixels)
    src = load_image(image, max_pixels=max_pixels)
    img = src.image
    w, h = src.size
    t0 = time.perf_counter()
    if mask is not None:
        m = load_mask(mask, img, max_pixels)
    elif defects:
        m = find_defects(img, max_size, sensitivity)
        if float(m.max()) == 0:
            err_console.print("nothing to fill: no dust spots or scratches found; raise --sensitivity or "
                              "--max-size, or paint a --mask (nothing written)", highlight=False)
            raise typer.Exit(ExitCode.NOTHING)
    else:
        m = object_mask(img, *_box_px(remove_object or "", w, h), grow_px=0.006 * max(w, h))
    if float(m.max()) == 0:
        err_console.print(f"nothing to fill: the mask {mask} is all black (white = fill); nothing written",
                          highlight=False)
        raise typer.Exit(ExitCode.NOTHING)
    out = inpaint(img, m, method)  # type: ignore[arg-type]
    seconds = time.perf_counter() - t0
    path = save_image(out, output, like=src, quality=quality, overwrite=overwrite, source=image)
    if save_mask is not None:
        save_image(m.expand(-1, 3, -1, -1), save_mask, overwrite=overwrite, source=image)
    console.print(f"filled {float((m > 0).float().mean()) * 100:.2f}% of {w}x{h} ({method}) in {seconds:.2f} s -> {path}")


@app.command("mask")
def mask_cmd(
    kind: Annotated[str, typer.Argument(help="rect | ellipse | brush | luminance | color | faces | subject | sky | defects")],
    image: Annotated[Path, typer.Argument(help="Photo the mask is for (sets the size; read for content masks).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Mask PNG to write (white = selected).")],
    box: Annotated[str | None, typer.Option(help="rect/ellipse/subject: x,y,w,h in px (or fractions).")] = None,
    points: Annotated[str | None, typer.Option(help="brush: x1,y1,x2,y2,... in px.")] = None,
    radius: Annotated[float, typer.Option(help="brush radius, px.")] = 10.0,
    low: Annotated[float, typer.Option(help="luminance: darkest luma (0-1).")] = 0.0,
    high: Annotated[float, typer.Option(help="luminance: brightest luma (0-1).")] = 0.3,
    hue: Annotated[float, typer.Option(help="color: hue in degrees.")] = 210.0,
    hue_width: Annotated[float, typer.Option(help="color: degrees either side.")] = 30.0,
    grow: Annotated[float, typer.Option(help="Grow (+) or shrink (-) the edge, px.")] = 0.0,
    feather: Annotated[float, typer.Option(help="Soften the edge over this many px.")] = 0.0,
    invert: Annotated[bool, typer.Option(help="Select everything else.")] = False,
    combine: Annotated[str, typer.Option(help="With --base: add | subtract | intersect this selection and the base mask.")] = "new",
    base: Annotated[Path | None, typer.Option(help="An existing mask PNG to combine this selection with.")] = None,
    max_pixels: MaxPixelsOpt = None,
) -> None:
    """Make a mask PNG (white = selected) for `inpaint --mask`, `edit --mask` or a recipe.

    Build a selection in steps, like a photo editor's selection modes:
    `imagent mask faces p.jpg -o m.png` then `imagent mask rect p.jpg --box ... --combine subtract --base m.png -o m2.png`.
    """
    from tools import masks as M
    from tools.inpaint import find_defects
    from tools.io import check_output_path, load_image, save_image

    if kind not in KINDS:
        raise UserError(f"mask kind {kind!r} is not known; use one of {', '.join(KINDS)}")
    check_outputs({"-o": output}, {"photo": image, "--base": base}, overwrite=None)
    check_output_path(output, source=image)
    max_pixels = pixel_policy(max_pixels)
    src = load_image(image, max_pixels=max_pixels)
    img = src.image
    w, h = src.size
    if kind in ("rect", "ellipse", "subject"):
        if box is None:
            raise UserError(f"mask {kind} needs --box x,y,w,h")
        x, y, bw, bh = _box_px(box, w, h)
        m = {"rect": lambda: M.rect(img, x, y, bw, bh),
             "ellipse": lambda: M.ellipse(img, x + bw / 2, y + bh / 2, bw / 2, bh / 2),
             "subject": lambda: M.subject(img, x, y, bw, bh)}[kind]()
    elif kind == "brush":
        vals = _numbers(points or "", len((points or "").replace(" ", ",").split(",")), "--points")
        if len(vals) < 2 or len(vals) % 2:
            raise UserError("mask brush needs --points x1,y1,x2,y2,... (pairs of pixel coordinates)")
        m = M.brush(img, list(zip(vals[::2], vals[1::2], strict=True)), radius)
    elif kind == "luminance":
        m = M.luminance_range(img, low, high)
    elif kind == "color":
        m = M.color_range(img, hue, hue_width)
    elif kind == "faces":
        m = M.faces(img)
    elif kind == "sky":
        m = M.sky(img)
    else:
        m = find_defects(img)
    m = M.grow(m, grow) if grow else m
    m = M.feather(m, feather) if feather else m
    m = M.invert(m) if invert else m
    if (combine == "new") != (base is None):
        raise UserError("--combine add|subtract|intersect and --base MASK.png go together")
    if base is not None:
        m = M.combine(load_mask(base, img, max_pixels), m, combine, base.name)
    info = M.describe_mask(img, m)
    path = save_image(m.expand(-1, 3, -1, -1).contiguous(), output)
    console.print(f"{kind} mask: {info.summary()} -> {path}")
