"""Does ffmpeg, applying an exported .cube, render what `imagent apply` renders? Measured on real photos.

    python -m evals.cube_check [--split val] [--size 33] [--photos 12] [--interp tetrahedral]

For each of a few colour-only looks (`LOOKS`) the recipe is exported with `recipe_to_cube`, and each
photo (downscaled to <= 1024 px, written as a 16-bit RGB PNG so both sides read the same pixels) is
rendered twice: by `apply_recipe`, as `imagent apply` does, and by
`ffmpeg -i in.png -vf lut3d=file=look.cube:interp=tetrahedral -pix_fmt rgb48be out.png`. A 16-bit
RGB PNG decodes to rgb48be and lut3d works on packed 16-bit RGB, so the filter chain converts only the
byte order (no YUV on the way). Each pair is scored by CIEDE2000 over every pixel (`delta_e`: Lab in
float64; `tools.metrics.delta_e2000` on the CPU goes through OpenCV's float32 Lab, whose tables put
up to ~0.6 dE between colours one 16-bit code apart); a photo passes at mean < 1 and max < 3. Two more pairs say where a difference comes from: ffmpeg against the op-by-op
replay (`fuse=False`): the .cube's own lattice error; `imagent apply` against that replay: the error of
imagent's fused 33^3 LUT (see `tools.lut3d`), which `imagent apply` uses for runs of colour steps.
Exit status 0 when every photo passes every look, 1 otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from agent.errors import UserError
from evals.corpus import Split, photos
from tools.io import load_image, save_image
from tools.lut3d import recipe_to_cube
from tools.metrics import ciede2000
from tools.recipe import Recipe, apply_recipe

MEAN_BOUND, MAX_BOUND = 1.0, 3.0
LONG_SIDE = 1024

LOOKS: dict[str, list[tuple[str, dict]]] = {
    "warm_pop": [("white_balance", {"temperature": 25}), ("contrast", {"amount": 20}), ("saturation", {"amount": 20})],
    "split_tone": [("split_toning", {"shadow_hue": 220, "shadow_saturation": 40,
                                     "highlight_hue": 40, "highlight_saturation": 40})],
    "bw_red_filter": [("black_and_white", {"red": 60, "green": 40, "blue": 0, "strength": 1}),
                      ("contrast", {"amount": 15})],
    "hue_shift": [("hue", {"degrees": 20}), ("vibrance", {"amount": 20})],
    "matte_fade": [("levels", {"out_black": 0.06}), ("saturation", {"amount": -15}),
                   ("white_balance", {"temperature": -10, "tint": 5})],
}


def delta_e(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(mean, max) CIEDE2000 of two sRGB (B,3,H,W) images, Lab computed exactly in float64."""
    import kornia.color

    de = ciede2000(*(kornia.color.rgb_to_lab(x.detach().double().clamp(0, 1)) for x in (a, b)))
    return float(de.mean()), float(de.max())


def look(name: str) -> Recipe:
    rec = Recipe()
    for tool, params in LOOKS[name]:
        rec = rec.then(tool, params)
    return rec


def pick(split: Split, n: int) -> list[Path]:
    """n photos of the split, evenly spaced over its sorted list (so over its folders)."""
    found = photos(split)
    if len(found) < n:
        raise UserError(f"the {split} split has {len(found)} photos, fewer than --photos {n}; run `make photos`")
    return [found[i * len(found) // n] for i in range(n)]


def prepare(photo: Path, folder: Path) -> Path:
    """The photo at <= LONG_SIDE px as a 16-bit RGB PNG: the one input both renderers read."""
    x = load_image(photo).image
    scale = LONG_SIDE / max(x.shape[-2:])
    if scale < 1:
        x = torch.nn.functional.interpolate(x, scale_factor=scale, mode="area")
    return save_image(x, folder / "in.png", bit_depth=16, overwrite=True)


def ffmpeg_render(ffmpeg: str, src: Path, cube: Path, out: Path, interp: str) -> torch.Tensor:
    subprocess.run([ffmpeg, "-v", "error", "-nostdin", "-y", "-i", str(src),
                    "-vf", f"lut3d=file={cube}:interp={interp}", "-pix_fmt", "rgb48be", str(out)],
                   check=True, capture_output=True)
    img = load_image(out)
    if img.bit_depth != 16 or img.mode != "RGB":
        raise RuntimeError(f"ffmpeg wrote {img.mode} {img.bit_depth}-bit, not 16-bit RGB")
    return img.image


def run(split: Split, size: int, n: int, interp: str, names: list[str]) -> bool:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise UserError("ffmpeg is not installed: `apt-get install ffmpeg` (scripts/system-packages.sh)")
    chosen = pick(split, n)
    results: dict[str, list[tuple[float, ...]]] = {k: [] for k in names}
    with tempfile.TemporaryDirectory(prefix="cube_check") as tmp:
        folder = Path(tmp)
        cubes = {}
        for name in names:
            cubes[name] = folder / f"{name}.cube"
            cubes[name].write_text(recipe_to_cube(look(name), size, title=name))
        for photo in chosen:
            src = prepare(photo, folder)
            x = load_image(src).image
            for name in names:
                rec = look(name)
                ff = ffmpeg_render(ffmpeg, src, cubes[name], folder / "ff.png", interp)
                ours, exact = apply_recipe(x, rec), apply_recipe(x, rec, fuse=False)
                row = (*delta_e(ff, ours), *delta_e(ff, exact), *delta_e(ours, exact))
                results[name].append(row)
                ok = row[0] < MEAN_BOUND and row[1] < MAX_BOUND
                print(f"{name:14s} {photo.parent.name}/{photo.name}: ffmpeg vs apply {row[0]:.3f}/{row[1]:.2f}, "
                      f"vs ops {row[2]:.3f}/{row[3]:.2f}; apply vs ops {row[4]:.3f}/{row[5]:.2f} "
                      f"{'ok' if ok else 'FAIL'}", flush=True)
    print(f"\n{split} split, {n} photos <= {LONG_SIDE} px, {size}^3 .cube, ffmpeg lut3d interp={interp}; "
          f"pass: mean dE2000 < {MEAN_BOUND:g} and max < {MAX_BOUND:g} per photo")
    print("mean dE: average over the photos / worst photo; max dE: worst pixel of any photo")
    print(f"{'look':14s} {'ffmpeg vs imagent apply':>27s} {'passed':>7s} {'ffmpeg vs ops':>18s} {'apply vs ops':>18s}")
    all_ok = True
    for name, rows in results.items():
        passed = sum(r[0] < MEAN_BOUND and r[1] < MAX_BOUND for r in rows)
        all_ok &= passed == len(rows)
        cols = [f"{sum(r[i] for r in rows) / len(rows):.3f}/{max(r[i] for r in rows):.3f}/{max(r[i + 1] for r in rows):.2f}"
                for i in (0, 2, 4)]
        print(f"{name:14s} {cols[0]:>27s} {passed:4d}/{len(rows)} {cols[1]:>18s} {cols[2]:>18s}")
    return all_ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m evals.cube_check", description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("train", "val", "all"), default="val")
    ap.add_argument("--size", type=int, choices=(33, 65), default=33)
    ap.add_argument("--photos", type=int, default=12, help="how many photos (>= 10 for the issue's claim)")
    ap.add_argument("--interp", choices=("tetrahedral", "trilinear"), default="tetrahedral")
    ap.add_argument("--look", action="append", choices=sorted(LOOKS), help="only these looks (repeatable)")
    args = ap.parse_args(argv)
    try:
        ok = run(args.split, args.size, args.photos, args.interp, args.look or list(LOOKS))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
