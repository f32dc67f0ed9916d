"""Inpainting benchmark: PSNR and SSIM inside the hole, per method and hole kind, ground truth known.

Holes are cut into sample photos (skimage: astronaut, coffee, chelsea, rocket) and
textures (brick, grass, gravel) at 384 px on the long side, then filled by every
method; only the hole's pixels are scored (SSIM: the 11-px Gaussian SSIM map of
kornia averaged over the hole). Hole kinds: 30 small spots (r 2-4 px), 3 thin
scratches (2 px), two 64 px squares, free-form brush strokes (r 6 px). The speed
part fills a 5% square hole in a 12 MP (4000x3000) image. The defect part paints the
eval suite's spots and scratches, white and black, on six photos at 128 and 384 px and
scores find_defects: pixel recall of the marks, and the % of a clean photo it flags
(nine clean photos, text and a printed page among them).

The real part (`--real`) cuts spots (30, r 2-4 px), two 36 px squares and three thin
scratches into ~20 photos of the corpus's validation split (evals/corpus.py; `--split
train` to develop) at 512 px and scores every method inside the holes, `auto`'s
self-test included: the bound is auto >= telea on average.

    python -m benchmarks.inpaint [--out bench-results] [--no-speed] [--defects-only]
    python -m benchmarks.inpaint --real [--split val] [--photos 20] [--size 512]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from tools import masks as M
from tools.inpaint import inpaint

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
TEXTURES = ("brick", "grass", "gravel")
METHODS = ("telea", "ns", "exemplar", "auto")
KINDS = ("spots", "scratches", "squares", "strokes")
REAL_KINDS = ("spots", "squares36", "scratches")


def load(name: str, long_side: int = 384) -> torch.Tensor:
    import cv2
    import skimage.data

    a = getattr(skimage.data, name)()
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    h, w = a.shape[:2]
    s = long_side / max(h, w)
    a = cv2.resize(a[..., :3], (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255


def holes(img: torch.Tensor, kind: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    H, W = img.shape[-2:]
    m = torch.zeros(1, 1, H, W)

    def rnd(lo: float, hi: float) -> float:
        return float(lo + (hi - lo) * torch.rand(1, generator=g))

    if kind == "spots":
        for _ in range(30):
            m = M.union(m, M.ellipse(img, rnd(10, W - 10), rnd(10, H - 10), *(2 * [rnd(2, 4)])))
    elif kind == "scratches":
        for _ in range(3):
            m = M.union(m, M.brush(img, [(rnd(10, W - 10), rnd(10, H - 10)), (rnd(10, W - 10), rnd(10, H - 10))], 1.0))
    elif kind in ("squares", "squares36"):
        side = 36 if kind == "squares36" else 64
        for _ in range(2):
            m = M.union(m, M.rect(img, round(rnd(10, W - side - 10)), round(rnd(10, H - side - 10)), side, side))
    else:
        pts = [(rnd(30, W - 30), rnd(30, H - 30)) for _ in range(5)]
        m = M.brush(img, pts, 6.0)
    return (m > 0.5).float()


def scores(out: torch.Tensor, truth: torch.Tensor, m: torch.Tensor) -> tuple[float, float]:
    import kornia.metrics

    sel = m[0, 0] > 0
    mse = float(((out[0][:, sel] - truth[0][:, sel]) ** 2).mean())
    smap = kornia.metrics.ssim(out, truth, 11)
    return 10 * np.log10(1 / max(mse, 1e-10)), float(smap[0][:, sel].mean())


def quality() -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    res: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for group, names in (("photos", PHOTOS), ("textures", TEXTURES)):
        res[group] = {}
        for kind in KINDS:
            per: dict[str, list[tuple[float, float, float]]] = {meth: [] for meth in METHODS}
            for i, name in enumerate(names):
                img = load(name)
                m = holes(img, kind, seed=i)
                for meth in METHODS:
                    t = time.perf_counter()
                    out = inpaint(img, m, meth)  # type: ignore[arg-type]
                    dt = time.perf_counter() - t
                    assert torch.equal(out[..., m[0, 0] == 0], img[..., m[0, 0] == 0])
                    per[meth].append((*scores(out, img, m), dt))
            res[group][kind] = {meth: {"psnr": round(statistics.mean(v[0] for v in vals), 2),
                                       "ssim": round(statistics.mean(v[1] for v in vals), 3),
                                       "seconds": round(statistics.mean(v[2] for v in vals), 3)}
                                for meth, vals in per.items()}
            row = "  ".join(f"{meth} {d['psnr']:.2f} dB / {d['ssim']:.3f}" for meth, d in res[group][kind].items())
            print(f"{group:8s} {kind:9s} {row}", flush=True)
    return res


def real(split: str = "val", count: int = 20, size: int = 512) -> dict[str, dict[str, float]]:
    """PSNR inside the holes on corpus photos, per hole kind and method (mean over photos), plus 'all'
    and the mean seconds of one fill per method."""
    from evals.corpus import photos
    from evals.suites import load_source

    found = photos(split)  # type: ignore[arg-type]
    chosen = found[:: max(1, len(found) // count)][:count]
    per: dict[str, dict[str, list[float]]] = {k: {meth: [] for meth in METHODS} for k in (*REAL_KINDS, "all")}
    seconds: dict[str, list[float]] = {meth: [] for meth in METHODS}
    for i, path in enumerate(chosen):
        img = load_source(str(path), size)
        for kind in REAL_KINDS:
            m = holes(img, kind, seed=i)
            damaged = torch.where(m > 0, torch.ones_like(img), img)  # the hole's content is white: never read
            for meth in METHODS:
                t = time.perf_counter()
                out = inpaint(damaged, m, meth)  # type: ignore[arg-type]
                seconds[meth].append(time.perf_counter() - t)
                v = scores(out, img, m)[0]
                per[kind][meth].append(v)
                per["all"][meth].append(v)
        print(f"{path.name:28s} " + "  ".join(f"{meth} {statistics.mean(per['all'][meth][-3:]):.2f}"
                                               for meth in METHODS), flush=True)
    res = {kind: {meth: round(statistics.mean(v), 2) for meth, v in d.items()} for kind, d in per.items()}
    res["seconds"] = {meth: round(statistics.mean(v), 3) for meth, v in seconds.items()}
    res["all"]["photos"] = len(chosen)
    for kind, d in res.items():
        unit = "s" if kind == "seconds" else "dB"
        print(f"{split} {kind:10s} " + "  ".join(f"{meth} {d[meth]:.2f} {unit}" for meth in METHODS), flush=True)
    return res


CLEAN = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "camera", "text", "page", "ihc")


def load_any(name: str, long_side: int) -> torch.Tensor:
    """A skimage data file by its base name (also the ones without a loader, e.g. motorcycle_left)."""
    import os

    import skimage
    import skimage.io

    if hasattr(skimage.data, name) and name != "motorcycle_left":
        return load(name, long_side)
    import cv2

    fn = next(f for f in os.listdir(skimage.data_dir) if f.split(".")[0] == name)
    a = skimage.io.imread(os.path.join(skimage.data_dir, fn))
    a = np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]
    h, w = a.shape[:2]
    s = long_side / max(h, w)
    a = cv2.resize(a, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255


def defects() -> dict[str, float]:
    """find_defects on the eval's marks (recall) and on clean photos (% flagged), per size and polarity."""
    from evals.suites import Case, case_mask
    from tools.inpaint import find_defects

    res: dict[str, float] = {}
    for size in (128, 384):
        flagged = [float(find_defects(load_any(n, size)).mean()) * 100 for n in CLEAN]
        res[f"clean_flagged_pct_{size}"] = round(statistics.mean(flagged), 3)
        for shape in ("spots", "scratches"):
            for value, tag in ((1.0, "white"), (0.0, "black")):
                rec = []
                for i, name in enumerate(CLEAN[:6]):
                    img = load_any(name, size)
                    case = Case(id="b", kind="inpaint", source=name, goal="x", mask={"shape": shape, "seed": i})
                    m = case_mask(case, *img.shape[-2:]) > 0
                    found = find_defects(torch.where(m, torch.full_like(img, value), img)) > 0
                    rec.append(float(found[m].float().mean()))
                res[f"{shape}_{tag}_recall_{size}"] = round(statistics.mean(rec), 3)
        print(f"defects {size} px: " + "  ".join(f"{k} {v}" for k, v in res.items() if k.endswith(str(size))),
              flush=True)
    return res


def speed() -> dict[str, float]:
    """A 5% square hole (775 px side) in a 12 MP image: seconds per method (one run each)."""
    img = torch.nn.functional.interpolate(load("chelsea", 1000), size=(3000, 4000), mode="bilinear")
    side = round((0.05 * 3000 * 4000) ** 0.5)
    m = M.rect(img, 1500, 1000, side, side)
    out = {}
    for meth in ("telea", "ns", "exemplar"):
        t = time.perf_counter()
        inpaint(img, m, meth)  # type: ignore[arg-type]
        out[meth] = round(time.perf_counter() - t, 2)
        print(f"12 MP, 5% hole: {meth} {out[meth]:.2f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--defects-only", action="store_true", help="only the find_defects part (seconds)")
    ap.add_argument("--real", action="store_true", help="only the corpus photos part: PSNR in the holes per method")
    ap.add_argument("--split", default="val", choices=("train", "val"), help="corpus split for --real")
    ap.add_argument("--photos", type=int, default=20, help="corpus photos for --real")
    ap.add_argument("--size", type=int, default=512, help="long side, px, for --real")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from tools.io import atomic_write_bytes

    if args.real:
        target = out / f"inpaint-real-{args.split}.json"
        atomic_write_bytes(target, json.dumps(real(args.split, args.photos, args.size), indent=2).encode())
        print(f"wrote {target}")
        return
    result: dict[str, object] = {"threads": torch.get_num_threads(), "defects": defects()}
    if not args.defects_only:
        result["quality"] = quality()
    if not args.no_speed and not args.defects_only:
        result["speed_12mp_5pct"] = speed()
    target = out / ("defects.json" if args.defects_only else "inpaint.json")
    target.unlink(missing_ok=True)  # a benchmark rerun replaces its own result file
    atomic_write_bytes(target, json.dumps(result, indent=2).encode())
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
