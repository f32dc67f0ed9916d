"""`imagent gan sample|invert|edit|directions`: the face generator from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from agent.cli import app, console
from agent.errors import UserError
from agent.runtime import cap_threads

gan = typer.Typer(help="GAN face tools: generate faces, invert a face, edit along a direction, list directions.",
                  no_args_is_help=True)
app.add_typer(gan, name="gan")


@gan.command("sample")
def sample_cmd(
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the faces (PNG/JPEG ...).")],
    seed: Annotated[int, typer.Option(help="Random seed: each seed gives different faces.")] = 0,
    n: Annotated[int, typer.Option("-n", help="How many faces (a grid).", min=1, max=64)] = 1,
    size: Annotated[int, typer.Option(help="Pixels per face (the generator makes 64; larger is upscaled).",
                                      min=16, max=1024)] = 64,
    overwrite: Annotated[bool, typer.Option(help="Allow replacing an existing file.")] = False,
) -> None:
    """Generate new synthetic faces with the embedded face generator."""
    import torch.nn.functional as F

    from tools.gan.backends import get_backend
    from tools.gan.tools import tile
    from tools.io import save_image

    if seed < 0:
        raise UserError(f"--seed {seed} is invalid: use a whole number >= 0")
    if output.exists() and not overwrite:
        raise UserError(f"{output} exists; pass --overwrite to replace it")
    faces = get_backend().sample(n, seed)
    if size != faces.shape[-1]:
        faces = F.interpolate(faces, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    path = save_image(tile(faces), output, overwrite=overwrite)
    console.print(f"wrote {n} face(s), seed {seed}, to {path}")


def _face_index(img, face: int | None) -> int:  # type: ignore[no-untyped-def]
    """Auto: the largest detected face; a small square image with none is taken as a face crop."""
    if face is not None:
        return face
    from tools.gan.face import detect_faces

    h, w = img.shape[-2:]
    if detect_faces(img[0]) or h != w or h > 256:
        return 0
    return -1


@gan.command("invert")
def invert_cmd(
    image: Annotated[Path, typer.Argument(help="A face photo, or an aligned square face crop.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (psnr, ssim, seconds ...).")] = False,
    face: Annotated[int | None, typer.Option(help="Face index (0 = largest); -1 = the whole image is the face; "
                                                  "default: detect, else a square image is taken whole.")] = None,
    steps: Annotated[int, typer.Option(help="Refinement steps.", min=0, max=10000)] = 300,
    seconds: Annotated[float, typer.Option(help="Time budget for the refinement.", min=0.1)] = 9.0,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Also write the reconstruction here.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Allow replacing an existing output file.")] = False,
) -> None:
    """Fit the face generator to a face and report how faithfully it reproduces it."""
    import dataclasses

    from tools.gan import invert as inv
    from tools.gan import tools as gt
    from tools.io import load_image, save_image

    cap_threads(4)
    src = load_image(image)
    idx = _face_index(src.image, face)
    old = inv.DEFAULTS
    inv.DEFAULTS = dataclasses.replace(old, steps=steps, seconds=seconds)
    try:
        crop, result = gt._invert_face(src.image[0], idx)
    finally:
        inv.DEFAULTS = old
    report = {"file": str(image), "psnr": round(result.psnr[0], 2), "ssim": round(result.ssim[0], 4),
              "seconds": round(result.seconds, 2), "steps": result.steps, "warm_start": result.warm_start,
              "face": idx, "crop": {"x": crop.x0, "y": crop.y0, "size": crop.size}}
    if output is not None:
        report["output"] = str(save_image(result.recon, output, overwrite=overwrite, source=image))
    if as_json:
        print(json.dumps(report))
        return
    console.print(f"{image}: reconstruction PSNR {report['psnr']} dB, SSIM {report['ssim']}, "
                  f"{report['seconds']} s ({result.steps} steps, {result.warm_start} warm start)")


@gan.command("edit")
def edit_cmd(
    image: Annotated[Path, typer.Argument(help="Photo with a frontal face.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the edited photo.")],
    direction: Annotated[str, typer.Option(help="smile, eyeglasses, lighting, warmth, hair_darkness, "
                                                "background, pca0-pca4 (see `imagent gan directions`).")],
    strength: Annotated[float, typer.Option(help="-3..3: + adds the attribute, - removes it.")] = 2.0,
    face: Annotated[int | None, typer.Option(help="Face index (0 = largest); -1 = the whole image is the face.")] = None,
    unconditional: Annotated[bool, typer.Option(help="Use the raw direction (other attributes may move).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Allow replacing an existing output file (never the input).")] = False,
) -> None:
    """Edit a face along a semantic direction; only the face area changes."""
    from tools.gan import tools as gt
    from tools.io import load_image, save_image
    from tools.registry import get

    cap_threads(4)
    if output.resolve() == image.resolve():
        raise UserError(f"-o {output} is the input photo; originals are never overwritten, choose another output")
    src = load_image(image)
    tool = get("gan_edit")
    params = tool.validate({"direction": direction, "strength": strength,
                            "face": _face_index(src.image, face), "conditional": not unconditional})
    out = tool(src.image, params)
    path = save_image(out, output, like=src, overwrite=overwrite, source=image)
    q = gt.last_inversion
    extra = f" (face reconstruction PSNR {q['psnr']} dB, SSIM {q['ssim']})" if q and strength else ""
    console.print(f"wrote {path}: {direction} {strength:+g}{extra}")


@gan.command("directions")
def directions_cmd(
    recompute: Annotated[bool, typer.Option(help="Refit every direction (a few CPU minutes) and save it.")] = False,
    samples: Annotated[int, typer.Option(help="Latents to sample when refitting.", min=200)] = 4000,
    held_out: Annotated[int, typer.Option(help="Held-out latents for the edit accuracy.", min=20)] = 300,
    as_json: Annotated[bool, typer.Option("--json", help="Print the measured accuracy as JSON.")] = False,
) -> None:
    """List the latent directions with their measured accuracy (or refit them)."""
    from rich.table import Table

    from tools.gan import attributes
    from tools.gan import directions as dirs
    from tools.gan.backends import get_backend

    if recompute:
        cap_threads(4)
        probe = attributes.fit_eyeglasses_probe(get_backend())
        console.print(f"eyeglasses probe: AUC {probe['cv_auc']} ({probe['cv_folds']}-fold) on "
                      f"{probe['labelled']} hand-labelled faces; saved {attributes.save_probe(probe)}")
        record = dirs.fit(get_backend(), n=samples, n_test=held_out, log=console.print)
        console.print(f"saved {dirs.save(record)}")
    data = dirs.load()
    rows = {}
    for name, d in data["directions"].items():
        row = {"kind": d["kind"]}
        if d["kind"] == "interfacegan":
            row.update(boundary_accuracy=d["boundary_accuracy"],
                       edit_accuracy=d["unconditional"]["edit_accuracy"],
                       conditional_edit_accuracy=d["conditional"]["edit_accuracy"],
                       others_moved=d["unconditional"]["other_change_mean"],
                       others_moved_conditional=d["conditional"]["other_change_mean"])
        else:
            row["explained_variance"] = d["explained_variance"]
        rows[name] = row
    if as_json:
        print(json.dumps({"generator": data["generator"], "edit_strength": data["edit_strength"],
                          "directions": rows, "eyeglasses_scorer": attributes.probe_info()}, indent=1))
        return
    table = Table(title=f"{len(rows)} directions for the {data['generator']} generator "
                        f"(edits measured at strength {data['edit_strength']})")
    for col in ("direction", "kind", "boundary acc", "edit right way", "conditional", "others moved (std)",
                "conditional", "PCA var"):
        table.add_column(col)
    for name, r in rows.items():
        def f(key: str, pct: bool = True, r: dict = r) -> str:
            v = r.get(key)
            return "" if v is None else (f"{v:.0%}" if pct else f"{v:.2f}")
        table.add_row(name, r["kind"], f("boundary_accuracy"), f("edit_accuracy"), f("conditional_edit_accuracy"),
                      f("others_moved", False), f("others_moved_conditional", False), f("explained_variance"))
    console.print(table)
    p = attributes.probe_info()
    if p:
        console.print(f"eyeglasses are scored by a probe with cross-validated AUC {p['cv_auc']} on "
                      f"{p['labelled']} hand-labelled generated faces ({p['with_glasses']} with glasses)")
