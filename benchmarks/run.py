"""`make bench`: every colour/tone/detail op vs its nearest OpenCV equivalent, same run, same image.

imagent's op runs through the registry on a (1,3,H,W) float32 CPU tensor (what the
agent holds); the peer is what an OpenCV user would write for the same edit, on the
same pixels as an HWC float32 array (uint8 where OpenCV only takes 8-bit: LUT,
CLAHE, equalizeHist, NL-means), prepared outside the timing. The two sides run
interleaved (A, B, A, B, ...) so that load from other work hits both alike. Reported:
median milliseconds over several runs after a warm-up, and the ratio imagent / OpenCV
(lower is better; < 1 means imagent is faster).

Where the peer takes uint8 and `tools.render8` renders the op on an 8-bit photo (per-channel
curves, equalize), a second row "(8-bit)" times the op as `imagent apply` does it (uint8 in,
uint8 out, like the peer); the float row moves four times the bytes. The "worst" line compares
like with like: the 8-bit row where there is one.

    python -m benchmarks.run [--sizes 1,12] [--only exposure,blur] [--out bench-results]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

import tools  # noqa: F401  (malloc tuning applies to both sides of the comparison)
from tools.recipe import Recipe, apply_recipe
from tools.registry import get
from tools.render8 import render8, renders8

SIZES = {1: (1155, 866), 12: (4000, 3000)}


def _u8(a: np.ndarray) -> np.ndarray:
    return (a * 255 + 0.5).astype(np.uint8)


def _hsv_scale_s(a: np.ndarray, k: float) -> np.ndarray:
    hsv = cv2.cvtColor(a, cv2.COLOR_RGB2HSV)
    hsv[..., 1] *= k
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _hsv_shift_h(a: np.ndarray, deg: float) -> np.ndarray:
    hsv = cv2.cvtColor(a, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + deg) % 360
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _shadows(a: np.ndarray) -> np.ndarray:
    y = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    base = cv2.GaussianBlur(y, (0, 0), 0.02 * max(a.shape[:2]))
    gain = 1 + 0.5 * (1 - base) ** 2
    return cv2.multiply(a, cv2.merge([gain, gain, gain]))


def _clahe(u: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(u, cv2.COLOR_RGB2Lab)
    lab[..., 0] = cv2.createCLAHE(2.0, (8, 8)).apply(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)


def _equalize(u: np.ndarray) -> np.ndarray:
    ycc = cv2.cvtColor(u, cv2.COLOR_RGB2YCrCb)
    ycc[..., 0] = cv2.equalizeHist(np.ascontiguousarray(ycc[..., 0]))
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


def _dehaze(a: np.ndarray) -> np.ndarray:
    dark = cv2.erode(np.ascontiguousarray(a.min(axis=2)), np.ones((15, 15), np.uint8))
    t = cv2.max(cv2.boxFilter(1 - 0.95 * dark, -1, (31, 31)), 0.1)  # box filter stands in for the guided filter
    return (a - 0.9) / cv2.merge([t, t, t]) + 0.9


def _vignette(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    yy, xx = np.ogrid[-1 : 1 : complex(0, h), -1 : 1 : complex(0, w)]
    m = (1 - 0.5 * np.clip((xx * xx + yy * yy) / 2, 0, 1)).astype(np.float32)
    return cv2.multiply(a, cv2.merge([m, m, m]))


def _vibrance(a: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(a, cv2.COLOR_RGB2HSV)
    s = hsv[..., 1]
    s *= 1 + 0.4 * (1 - s)  # dull colours boosted most
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _hsl(a: np.ndarray) -> np.ndarray:
    """8 hue bands with triangular weights, per-band saturation and luminance gains."""
    hsv = cv2.cvtColor(a, cv2.COLOR_RGB2HSV)
    h = hsv[..., 0]
    sat_gain = np.ones_like(h)
    val_gain = np.ones_like(h)
    for centre, ds, dv in ((0, 0, 0), (30, 0, 0.2), (60, 0, 0), (120, 0, 0), (180, 0, 0), (240, -0.4, 0),
                           (270, 0, 0), (300, 0, 0)):
        if ds == 0 and dv == 0:
            continue
        w = np.clip(1 - np.abs(((h - centre + 180) % 360) - 180) / 45, 0, 1)
        sat_gain += ds * w
        val_gain += dv * w
    hsv[..., 1] *= sat_gain
    hsv[..., 2] *= val_gain
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _split_toning(a: np.ndarray) -> np.ndarray:
    y = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    hi = cv2.merge([y, y, y])
    lo = 1 - hi
    tint_lo = cv2.multiply(lo, (-0.03, 0.0, 0.05, 0))
    tint_hi = cv2.multiply(hi, (0.05, 0.02, -0.04, 0))
    return cv2.add(cv2.add(a, tint_lo), tint_hi)


def _curve_lut() -> np.ndarray:
    x = np.arange(256) / 255
    return np.clip(255 * (x + 0.3 * x * (1 - x)), 0, 255).astype(np.uint8)


# tool -> (imagent params, peer description, peer fn, peer input: "f32" | "u8")
CASES: dict[str, tuple[dict[str, Any], str, Callable[[np.ndarray], Any], str]] = {
    "exposure": ({"stops": 0.7}, "pow 2.2, multiply, pow 1/2.2",
                 lambda a: cv2.pow(cv2.multiply(cv2.pow(a, 2.2), 1.6245), 1 / 2.2), "f32"),
    "brightness": ({"amount": 0.3}, "cv2.add offset", lambda a: cv2.add(a, 0.1), "f32"),
    "contrast": ({"amount": 30}, "cv2.addWeighted around 0.5", lambda a: cv2.addWeighted(a, 1.3, a, 0, -0.15), "f32"),
    "gamma": ({"gamma": 1.4}, "cv2.pow", lambda a: cv2.pow(a, 1 / 1.4), "f32"),
    "curves": ({"points": [[0, 0], [0.25, 0.32], [0.75, 0.82], [1, 1]]}, "cv2.LUT (uint8)",
               lambda u: cv2.LUT(u, _curve_lut()), "u8"),
    "levels": ({"black": 0.05, "white": 0.95, "midtone": 1.2}, "subtract, multiply, pow",
               lambda a: cv2.pow(cv2.max(cv2.multiply(cv2.subtract(a, 0.05), 1 / 0.9), 0), 1 / 1.2), "f32"),
    "whites_blacks": ({"whites": 30, "blacks": -20}, "cv2.LUT (uint8)", lambda u: cv2.LUT(u, _curve_lut()), "u8"),
    "shadows_highlights": ({"shadows": 40, "highlights": -30}, "gray, GaussianBlur, gain multiply", _shadows, "f32"),
    "clahe": ({"clip_limit": 2.0, "strength": 1.0}, "Lab + createCLAHE (uint8)", _clahe, "u8"),
    "equalize": ({"strength": 1.0}, "YCrCb + equalizeHist (uint8)", _equalize, "u8"),
    "saturation": ({"amount": 30}, "HSV round trip, scale S", lambda a: _hsv_scale_s(a, 1.3), "f32"),
    "vibrance": ({"amount": 40}, "HSV round trip, saturation-weighted S boost", _vibrance, "f32"),
    "hue": ({"degrees": 20}, "HSV round trip, shift H", lambda a: _hsv_shift_h(a, 20), "f32"),
    "white_balance": ({"temperature": 30, "tint": 10}, "cv2.multiply per-channel gains",
                      lambda a: cv2.multiply(a, (1.1, 1.0, 0.9, 0)), "f32"),
    "auto_white_balance": ({"strength": 1.0}, "cv2.mean + cv2.multiply (grey world)",
                           lambda a: cv2.multiply(a, tuple(0.5 / max(m, 1e-6) for m in cv2.mean(a)[:3]) + (0,)), "f32"),
    "hsl": ({"blue_saturation": -40, "orange_luminance": 20}, "HSV round trip, hue-band weights, S/V gains",
            _hsl, "f32"),
    "split_toning": ({"shadow_hue": 220, "shadow_saturation": 30, "highlight_hue": 45, "highlight_saturation": 30},
                     "gray, luminance-weighted tints, cv2.add", _split_toning, "f32"),
    "black_and_white": ({}, "cv2.transform 3x3 mix", lambda a: cv2.transform(a, np.full((3, 3), 1 / 3, np.float32)), "f32"),
    "sharpen": ({"amount": 1.0, "radius": 1.5}, "GaussianBlur + addWeighted (unsharp)",
                lambda a: cv2.addWeighted(a, 2.0, cv2.GaussianBlur(a, (0, 0), 1.5), -1.0, 0), "f32"),
    "blur": ({"sigma": 3.0}, "cv2.GaussianBlur", lambda a: cv2.GaussianBlur(a, (0, 0), 3.0), "f32"),
    "denoise": ({"method": "bilateral", "strength": 0.5}, "cv2.bilateralFilter d=9",
                lambda a: cv2.bilateralFilter(a, 9, 0.1, 5), "f32"),
    "clarity": ({"amount": 50}, "large GaussianBlur + addWeighted",
                lambda a: cv2.addWeighted(a, 1.5, cv2.GaussianBlur(a, (0, 0), 20), -0.5, 0), "f32"),
    "dehaze": ({"amount": 0.8}, "dark channel (erode) + box filters + recover", _dehaze, "f32"),
    "vignette": ({"amount": -0.5}, "radial mask + cv2.multiply", _vignette, "f32"),
}

def _lut8(f: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.clip(f(np.arange(256) / 255) * 255 + 0.5, 0, 255).astype(np.uint8)


_BRIGHT, _CONTRAST, _GAMMA = _lut8(lambda x: x * 1.2 / (1 + 0.2 * x)), _lut8(lambda x: (x - 0.5) * 1.25 + 0.5), \
    _lut8(lambda x: x ** (1 / 1.2))
_HUE_SAT = np.stack([(np.arange(256) + 8) % 180, _lut8(lambda x: x * 1.3),
                     np.arange(256)], -1).astype(np.uint8)[:, None]  # per-channel LUT on HSV: H + 16 deg, S x 1.3


def _six_ops(u: np.ndarray) -> np.ndarray:
    """The 6-op recipe as an OpenCV user writes it on uint8: a LUT per curve, one HSV round trip."""
    x = cv2.LUT(cv2.LUT(u, _BRIGHT), _CONTRAST)
    x = cv2.cvtColor(cv2.LUT(cv2.cvtColor(x, cv2.COLOR_RGB2HSV), _HUE_SAT), cv2.COLOR_HSV2RGB)
    return cv2.multiply(cv2.LUT(x, _GAMMA), (1.1, 1.0, 0.9, 0))


# recipe -> (steps, peer description, peer fn, peer input): timed through tools.recipe.apply_recipe
RECIPES: dict[str, tuple[list[tuple[str, dict[str, Any]]], str, Callable[[np.ndarray], Any], str]] = {
    "recipe_6op": ([("brightness", {"amount": 0.2}), ("contrast", {"amount": 25}), ("saturation", {"amount": 30}),
                    ("hue", {"degrees": 16}), ("gamma", {"gamma": 1.2}), ("white_balance", {"temperature": 30})],
                   "uint8: cv2.LUT x3, HSV round trip with a per-channel LUT, cv2.multiply", _six_ops, "u8"),
}
ONLY_SMALL = {"denoise_nlm"}  # NL-means at 12 MP takes minutes on 2 cores on both sides


def _median_ms(fns: tuple[Callable[[], Any], ...], runs: int) -> list[float]:
    """Median milliseconds of each fn, run in turn (A, B, A, B, ...) after one warm-up each."""
    for fn in fns:
        fn()  # warm-up: first call pays lazy imports and allocations
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, ts in zip(fns, times, strict=True):
            t = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t) * 1000)
    return [statistics.median(ts) for ts in times]


def _image(size: tuple[int, int]) -> np.ndarray:
    import skimage.data

    return cv2.resize(skimage.data.astronaut(), size, interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255


def run(sizes: list[int], only: set[str] | None) -> list[dict[str, Any]]:
    rows = []
    cases = dict(CASES)
    cases["denoise_nlm"] = ({"method": "nlm", "strength": 0.5}, "cv2.fastNlMeansDenoisingColored (uint8)",
                            lambda u: cv2.fastNlMeansDenoisingColored(u, None, 6, 6, 7, 21), "u8")
    for mp in sizes:
        a = _image(SIZES[mp])
        u = _u8(a)
        t = torch.from_numpy(a).permute(2, 0, 1)[None].contiguous()
        runs = 5 if mp <= 1 else 3
        for name, (params, peer_desc, peer, kind) in cases.items():
            tool_name = name.split("_nlm")[0]
            if only and name not in only and tool_name not in only:
                continue
            if mp > 1 and name in ONLY_SMALL:
                continue
            tool = get(tool_name)
            p = tool.validate(params)
            src = u if kind == "u8" else a
            ours, theirs = _median_ms((lambda tool=tool, p=p, t=t: tool(t, p), lambda peer=peer, src=src: peer(src)),
                                      runs)
            rows.append(_row(name, mp, ours, theirs, peer_desc))
            recipe = Recipe().then(tool_name, params)
            if kind == "u8" and renders8(recipe):  # the same op as `imagent apply` renders an 8-bit photo
                ours, theirs = _median_ms((lambda r=recipe, u=u: render8(u, r), lambda peer=peer, u=u: peer(u)), runs)
                rows.append(_row(f"{name} (8-bit)", mp, ours, theirs, peer_desc))
        for name, (steps, peer_desc, peer, kind) in RECIPES.items():
            if only and name not in only:
                continue
            recipe = Recipe()
            for tool_name, params in steps:
                recipe = recipe.then(tool_name, params)
            src = u if kind == "u8" else a
            ours, theirs = _median_ms((lambda r=recipe, t=t: apply_recipe(t, r), lambda peer=peer, src=src: peer(src)),
                                      runs)
            rows.append(_row(name, mp, ours, theirs, peer_desc))
    return rows


def _row(name: str, mp: int, ours: float, theirs: float, peer_desc: str) -> dict[str, Any]:
    print(f"{mp:>3} MP  {name:<20} imagent {ours:9.1f} ms   opencv {theirs:9.1f} ms   "
          f"ratio {ours / theirs:6.2f}   ({peer_desc})", flush=True)
    return {"op": name, "megapixels": mp, "imagent_ms": round(ours, 1), "opencv_ms": round(theirs, 1),
            "ratio": round(ours / theirs, 2), "peer": peer_desc}


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| op | MP | imagent ms | OpenCV ms | ratio | OpenCV peer |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['op']} | {r['megapixels']} | {r['imagent_ms']} | {r['opencv_ms']} | "
                     f"{r['ratio']} | {r['peer']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,12", help="megapixel sizes to run: 1, 12")
    ap.add_argument("--only", default="", help="comma-separated op names")
    ap.add_argument("--out", default="bench-results", help="folder for bench.md and bench.json")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = run([int(s) for s in args.sizes.split(",")], set(filter(None, args.only.split(","))) or None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.machine(), "cpus": torch.get_num_threads(), "torch": torch.__version__,
            "opencv": cv2.__version__}
    (out / "bench.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (out / "bench.md").write_text(f"{meta}\n\n{markdown(rows)}\n")
    like_for_like = [r for r in rows if r["megapixels"] == 12 and not any(
        o["op"] == f"{r['op']} (8-bit)" and o["megapixels"] == 12 for o in rows)]
    worst = max(like_for_like, key=lambda r: r["ratio"], default=None)
    print(f"\nwrote {out / 'bench.md'}" + (f"; worst at 12 MP: {worst['op']} {worst['ratio']}x" if worst else ""))


if __name__ == "__main__":
    main()
