"""How precisely gan_edit frames a face in a photo, and how cleanly its edit comes back.

Generator faces (latent known) are pasted into skimage photos at 80-200 px, at several
positions and small rotations, so the true crop and the TRUE edit (the paste of
G(z + k v) at the same place) are known. Per face:
- reconstruction PSNR in PHOTO space: the inversion rendered back through the chosen crop,
  against the photo, over the true face ellipse (the same photo pixels whatever the crop),
- crop error vs the truth: centre (px), size (%), angle (degrees), and seconds,
- edits (eyeglasses +3 on faces without glasses, -3 on hand-labelled faces with glasses;
  smile +3): PSNR of gan_edit's result vs the true edited photo inside the face ellipse,
  and `captured` = 1 - MSE(result, truth) / MSE(photo, truth) (1 = the true edit, 0 = no
  change, < 0 = worse than doing nothing: ghosts).
The astronaut (real photo, no truth) gets the reconstruction PSNR and the edit's size.

    python -m benchmarks.gan_align [--threads 1] [--faces 12] [--out bench-results] [--label after]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# (labels seed, index in sample(96, seed), wears glasses by the hand labels), background,
# face size px, centre (fraction of W, H), rotation degrees.
CASES = [
    ((7, 0, False), "coffee", 120, (0.50, 0.45), 0.0),
    ((7, 33, True), "chelsea", 160, (0.45, 0.50), 4.0),
    ((8, 2, False), "chelsea", 80, (0.35, 0.40), -5.0),
    ((8, 7, True), "coffee", 200, (0.55, 0.55), 0.0),
    ((11, 0, True), "coffee", 120, (0.40, 0.38), 0.0),
    ((11, 1, False), "immunohistochemistry", 100, (0.62, 0.45), 7.0),
    ((12, 1, True), "hubble_deep_field", 140, (0.50, 0.50), -3.0),
    ((12, 2, False), "chelsea", 90, (0.30, 0.55), 2.0),
    ((9, 0, False), "rocket", 180, (0.50, 0.52), -6.0),
    ((10, 3, False), "camera", 110, (0.66, 0.40), 0.0),
    ((9, 2, False), "coffee", 150, (0.45, 0.48), 8.0),
    ((10, 1, False), "immunohistochemistry", 130, (0.38, 0.60), -8.0),
]
PHOTO = (320, 240)  # W, H


def render(face: torch.Tensor, cx: float, cy: float, size: float, angle: float, h: int, w: int) -> torch.Tensor:
    """(1,C,r,r) -> (1,C,h,w): `face` drawn as a square of `size` px centred at (cx, cy), rotated
    by `angle` degrees; zero outside. Bicubic, align_corners=False (= F.interpolate at angle 0)."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64) + 0.5, torch.arange(w, dtype=torch.float64) + 0.5,
                            indexing="ij")
    a = math.radians(angle)
    dx, dy = xs - cx, ys - cy
    u = (math.cos(a) * dx + math.sin(a) * dy) / size  # photo -> frame: the inverse rotation
    v = (-math.sin(a) * dx + math.cos(a) * dy) / size
    grid = torch.stack([2 * u, 2 * v], -1)[None].float()
    out = F.grid_sample(face.float(), grid, mode="bicubic", padding_mode="zeros", align_corners=False)
    inside = ((u.abs() < 0.5) & (v.abs() < 0.5)).float()[None, None]
    return out * inside


def paste_face(bg: torch.Tensor, face: torch.Tensor, cx: float, cy: float, size: float, angle: float) -> torch.Tensor:
    h, w = bg.shape[-2:]
    alpha = render(torch.ones(1, 1, 64, 64), cx, cy, size, angle, h, w).clamp(0, 1)
    return (bg * (1 - alpha) + render(face, cx, cy, size, angle, h, w) * alpha).clamp(0, 1)


def psnr(a: torch.Tensor, b: torch.Tensor, region: torch.Tensor) -> float:
    mse = float(((a - b) ** 2)[..., region].mean())
    return 10 * math.log10(1 / max(mse, 1e-10))


def crop_params(crop) -> tuple[float, float, float, float]:  # type: ignore[no-untyped-def]
    return crop.x0 + crop.size / 2, crop.y0 + crop.size / 2, float(crop.size), float(getattr(crop, "angle", 0.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--faces", type=int, default=len(CASES))
    ap.add_argument("--strength", type=float, default=3.0)
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    ap.add_argument("--label", default="run")
    ap.add_argument("--no-guard", action="store_true", help="carry the whole delta back (no confidence mask)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from tests.helpers import sample
    from tools.gan import directions as dirs
    from tools.gan import face as facelib
    from tools.gan import tools as gt
    from tools.gan.backends import get_backend
    from tools.registry import ToolError, get

    if args.no_guard:
        gt.GUARD = (1e9, 2e9)
    b = get_backend()
    edit = get("gan_edit")
    ell = facelib.ellipse_mask(64)
    rows = []
    for (seed, idx, glasses), bg_name, size, (fx, fy), angle in CASES[: args.faces]:
        z = b.random_latents(96, seed)[idx : idx + 1]
        w, h = PHOTO
        bg = sample(bg_name, PHOTO)
        cx, cy = fx * w, fy * h
        with torch.no_grad():
            face = b.synthesize(z)
        img = paste_face(bg, face, cx, cy, size, angle)
        region = render(ell, cx, cy, size, angle, h, w)[0, 0] > 0.5
        row: dict = {"face": f"{seed}/{idx}", "glasses": glasses, "bg": bg_name, "size": size, "angle": angle}
        gt._INVERSIONS.clear()
        t = time.perf_counter()
        try:
            crop, result = gt._invert_face(img[0], 0)
        except ToolError as e:
            row["error"] = str(e)
            rows.append(row)
            print(row, flush=True)
            continue
        row["seconds"] = round(time.perf_counter() - t, 2)
        recon_photo = facelib.paste(img[0], crop, result.recon, ell, delta=False)
        row["recon_psnr_photo"] = round(psnr(recon_photo, img[0], region), 2)
        row["recon_psnr_crop"] = round(result.psnr[0], 2)
        ex, ey, es, ea = crop_params(crop)
        row["centre_err_px"] = round(math.hypot(ex - cx, ey - cy), 2)
        row["size_err_pct"] = round(100 * (es / size - 1), 2)
        row["angle_err_deg"] = round(ea - angle, 2)
        for direction, k in (("eyeglasses", -args.strength if glasses else args.strength), ("smile", args.strength)):
            with torch.no_grad():
                true_face = b.synthesize(z + k * dirs.vector(direction, b, True))
            truth = paste_face(bg, true_face, cx, cy, size, angle)
            out = edit(img, {"direction": direction, "strength": k})
            before = float(((img - truth) ** 2)[..., region].mean())
            after = float(((out - truth) ** 2)[..., region].mean())
            row[f"{direction}_psnr"] = round(psnr(out, truth, region), 2)
            row[f"{direction}_psnr_noedit"] = round(psnr(img, truth, region), 2)
            row[f"{direction}_captured"] = round(1 - after / max(before, 1e-12), 3)
            row[f"{direction}_kept"] = gt.last_inversion.get("edit_kept")
        rows.append(row)
        print(json.dumps(row), flush=True)

    # The astronaut: a real face, no truth; the region is the detector's ellipse for every method.
    astro = sample("astronaut", (256, 256))
    gt._INVERSIONS.clear()
    t = time.perf_counter()
    crop, result = gt._invert_face(astro[0], 0)
    secs = time.perf_counter() - t
    det = facelib.crop_for_box(facelib.detect_faces(astro[0])[0])
    region = facelib.paste(torch.zeros(1, 256, 256), det, torch.ones(1, 1, 64, 64), ell, delta=False)[0] > 0.5
    recon_photo = facelib.paste(astro[0], crop, result.recon, ell, delta=False)
    out = edit(astro, {"direction": "eyeglasses", "strength": 3.0})
    astro_row = {"recon_psnr_photo": round(psnr(recon_photo, astro[0], region), 2),
                 "recon_psnr_crop": round(result.psnr[0], 2), "seconds": round(secs, 2),
                 "glasses_mean_abs_change": round(float((out - astro).abs()[..., region].mean()), 4),
                 "glasses_edit_kept": gt.last_inversion.get("edit_kept")}
    print("astronaut", json.dumps(astro_row), flush=True)

    ok = [r for r in rows if "error" not in r]
    summary = {k: round(float(np.mean([r[k] for r in ok])), 3) for k in (
        "recon_psnr_photo", "recon_psnr_crop", "centre_err_px", "seconds", "eyeglasses_psnr", "eyeglasses_psnr_noedit",
        "eyeglasses_captured", "smile_psnr", "smile_psnr_noedit", "smile_captured")}
    summary["abs_size_err_pct"] = round(float(np.mean([abs(r["size_err_pct"]) for r in ok])), 2)
    summary["max_seconds"] = max(r["seconds"] for r in ok)
    summary["min_captured"] = min(min(r["eyeglasses_captured"], r["smile_captured"]) for r in ok)
    summary["detected"] = f"{len(ok)}/{len(rows)}"
    print("summary", json.dumps(summary), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"gan_align-{args.label}.json"
    path.write_text(json.dumps({"summary": summary, "astronaut": astro_row, "rows": rows}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
