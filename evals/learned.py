"""The restore-learned suite: classical and learned restorers on real photos with realistic damage.

Cases (evals/suites/restore-learned.json, written by `python -m evals.learned --write`): photos
of the corpus's validation split (evals/corpus.py; nothing here was tuned on them) at 512 px,
each damaged three ways, as `tools.degrade` makes them:

- noise: camera noise, Poisson-Gaussian in linear light (shot 0.02, read 2e-4: a high ISO),
  the sRGB curve, JPEG quality 95; goal "remove the noise";
- night: -3 EV with the same kind of noise (shot 0.002, read 1e-5), JPEG 95;
  goal "this night shot is too dark";
- upscale: the photo area-averaged 4x smaller (128 px); goal "upscale 4x".

Systems, each applying where its damage is (NotApplicable elsewhere):

- noise: nlm and bilateral at the strengths best on six train photos (0.6; 1.0, the
  tool's top), neural (`denoise(method="neural")`);
- night: exposure (by the white point, as the agent estimates it: `agent.goals.night_stops`),
  exposure+nlm, exposure+neural, low_light (Zero-DCE++ curves alone);
- upscale: bicubic, lanczos, neural (`upscale(factor=4)`);
- any other name: the agent (offline, ...) with the case's goal.

One oracle, not a method (it reads the damage it should not know), bounds what a better
exposure estimate could give: `oracle-exposure+neural`, the exact inverse of the night
cases' stops, then the neural denoiser.

`python -m evals.learned [--limit N] [--systems a,b] [--out DIR]` runs them and prints the
README's table: PSNR, SSIM, gradient similarity (GMS, Xue et al. 2014: 1 = the reference's
edges), sharpness (mean gradient magnitude over the reference's: under 1 is softer) and
seconds per input megapixel. `--noise SHOT,READ,QUALITY` runs the noise cases at another
camera-noise level (e.g. 0.006,4e-5,90, tools.degrade's default) and `--tune-nlm N` finds the
NLM strength best on N train photos at that level (pass it as `--nlm-strength`): 0.3 at
tools.degrade's default level on six train photos, 0.6 at the suite's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from evals.baselines import NotApplicable, Output

SIZE = 512
NOISE = {"shot": 0.02, "read": 2e-4, "quality": 95}
NIGHT = {"stops": 3.0, "shot": 0.002, "read": 1e-5, "quality": 95}
NLM_STRENGTH, BILATERAL_STRENGTH = 0.6, 1.0  # best on six train photos at NOISE
KINDS = {
    "noise": ("remove the noise", ("nlm", "bilateral", "neural")),
    "night": ("this night shot is too dark", ("exposure", "exposure+nlm", "exposure+neural", "low_light")),
    "upscale": ("upscale 4x", ("bicubic", "lanczos", "neural")),
}
SYSTEMS = tuple(dict.fromkeys(s for _, names in KINDS.values() for s in names))
ORACLES = ("oracle-exposure+neural",)  # upper bounds that read the damage: not methods
NLM_STRENGTHS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)  # what --tune-nlm tries


def kind_of(case: Any) -> str:
    ops = {d.op for d in case.degrade}
    return "upscale" if "downscale" in ops else "night" if "low_light" in ops else "noise"


def make_cases(photos: list[Path], root: Path) -> list[Any]:
    """Three cases per photo (noise, night, upscale), sources relative to the repository."""
    from evals.suites import Case, Degradation

    cases = []
    for i, p in enumerate(photos):
        src = str(p.relative_to(root)) if p.is_relative_to(root) else str(p)
        damage = {"noise": [Degradation(op="camera_noise", params={**NOISE, "seed": i})],
                  "night": [Degradation(op="low_light", params={**NIGHT, "seed": i})],
                  "upscale": [Degradation(op="downscale", params={"factor": 4})]}
        for kind, (goal, _) in KINDS.items():
            cases.append(Case(id=f"{kind}-{i:02d}", kind="restore", source=src, size=SIZE,
                              degrade=damage[kind], goal=goal, lock=0.8))
    return cases


def with_noise(case: Any, shot: float, read: float, quality: int) -> Any:
    """The same case with its camera noise at another level (noise cases; others unchanged)."""
    if kind_of(case) != "noise":
        return case
    degrade = [d.model_copy(update={"params": {**d.params, "shot": shot, "read": read, "quality": quality}})
               if d.op == "camera_noise" else d for d in case.degrade]
    return case.model_copy(update={"degrade": degrade})


def run(name: str, case: Any, image: torch.Tensor, nlm_strength: float = NLM_STRENGTH) -> Output:
    """One classical or learned restorer of this suite (or an oracle) on one case."""
    from tools.registry import get

    kind = kind_of(case)
    if name in ORACLES:
        if kind != "night":
            raise NotApplicable(f"{name} bounds night cases only")
        stops = sum(float(d.params.get("stops", 0.0)) for d in case.degrade if d.op == "low_light")
        out = get("exposure")(image, {"stops": stops})
        return Output(image=get("denoise")(out, {"method": "neural", "strength": 1.0}), steps=2)
    if name not in KINDS[kind][1]:
        raise NotApplicable(f"{name} does not restore {kind} cases")
    denoise, upscale = get("denoise"), get("upscale")
    if kind == "noise":
        method, s = {"nlm": ("nlm", nlm_strength), "bilateral": ("bilateral", BILATERAL_STRENGTH),
                     "neural": ("neural", 1.0)}[name]
        return Output(image=denoise(image, {"method": method, "strength": s}), steps=1)
    if kind == "upscale":
        if name == "bicubic":
            return Output(image=F.interpolate(image, scale_factor=4, mode="bicubic").clamp(0, 1), steps=1)
        return Output(image=upscale(image, {"factor": 4, "method": name}), steps=1)
    if name == "low_light":
        return Output(image=get("low_light")(image, {"strength": 1.0}), steps=1)
    from agent.goals import night_stops
    from tools.analysis import measure

    out = get("exposure")(image, {"stops": night_stops(measure(image))})
    if name != "exposure":
        out = denoise(out, {"method": name.split("+")[1], "strength": NLM_STRENGTH if "nlm" in name else 1.0})
    return Output(image=out, steps=1 + (name != "exposure"))


# ------------------------------------------------------------------ measures


def _gradients(image: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of the Rec.709 luma, (B,1,H-2,W-2)."""
    from tools.colorspace import luminance

    k = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=image.dtype).view(1, 1, 3, 3) / 4
    y = luminance(image)
    return (F.conv2d(y, k).square() + F.conv2d(y, k.transpose(-1, -2)).square()).sqrt()


def gradient_similarity(output: torch.Tensor, reference: torch.Tensor, c: float = 0.0026) -> float:
    """Mean gradient-magnitude similarity (GMSD's GMS map, Xue et al., IEEE TIP 2014), 1 = same edges."""
    g, r = _gradients(output), _gradients(reference)
    return float(((2 * g * r + c) / (g * g + r * r + c)).mean())


def sharpness(output: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean gradient magnitude of the output over the reference's: 1 = as crisp, 0.7 = visibly soft."""
    return float(_gradients(output).mean() / _gradients(reference).mean().clamp_min(1e-9))


def tune_nlm(photo_paths: list[Path], shot: float, read: float, quality: int) -> dict[float, float]:
    """Mean PSNR of NLM at each of NLM_STRENGTHS on these (train) photos at one noise level."""
    from evals.suites import Case, Degradation, build_case
    from tools.metrics import psnr
    from tools.registry import get

    means = {}
    damaged = []
    for i, p in enumerate(photo_paths):
        case = Case(id=f"tune-{i}", kind="restore", source=str(p), size=SIZE, goal="remove the noise", degrade=[
            Degradation(op="camera_noise", params={"shot": shot, "read": read, "quality": quality, "seed": i})])
        damaged.append(build_case(case))
    for s in NLM_STRENGTHS:
        scores = [psnr(get("denoise")(x, {"method": "nlm", "strength": s}), ref) for x, ref in damaged]
        means[s] = sum(scores) / len(scores)
        print(f"nlm strength {s}: {means[s]:.2f} dB over {len(scores)} train photos", flush=True)
    return means


def measure_case(case: Any, systems: list[str], nlm_strength: float = NLM_STRENGTH,
                 **agent: Any) -> list[dict[str, Any]]:
    """One row per system that applies: psnr, ssim, gms, sharpness, seconds per input MP."""
    from evals.baselines import run_system
    from evals.suites import build_case
    from tools.metrics import psnr, ssim

    image, reference = build_case(case)
    assert reference is not None
    rows = [{"case": case.id, "kind": kind_of(case), "system": "input", "psnr": None, "ssim": None,
             "gms": None, "sharpness": None, "s_per_mp": 0.0}]
    if image.shape == reference.shape:
        rows[0].update(psnr=psnr(image, reference), ssim=ssim(image, reference),
                       gms=gradient_similarity(image, reference), sharpness=sharpness(image, reference))
    for name in systems:
        t0 = time.perf_counter()
        try:
            out = (run(name, case, image, nlm_strength) if name in (*SYSTEMS, *ORACLES)
                   else run_system(name, case, image, reference, **agent)[0])
        except NotApplicable:
            continue
        seconds = time.perf_counter() - t0
        o = out.image
        ok = o.shape == reference.shape
        rows.append({"case": case.id, "kind": kind_of(case), "system": name,
                     "psnr": psnr(o, reference) if ok else None, "ssim": ssim(o, reference) if ok else None,
                     "gms": gradient_similarity(o, reference) if ok else None,
                     "sharpness": sharpness(o, reference) if ok else None,
                     "s_per_mp": seconds / (image.shape[-1] * image.shape[-2] / 1e6),
                     "trace": getattr(out, "trace", [])})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per (kind, system), means over its cases."""
    lines = ["| damage | method | cases | PSNR dB | SSIM | GMS | sharpness | s / MP |", "|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["kind"], r["system"]), []).append(r)

    def mean(rs: list[dict[str, Any]], k: str) -> str:
        v = [r[k] for r in rs if r[k] is not None]
        return "-" if not v else f"{sum(v) / len(v):.3f}" if k in ("ssim", "gms", "sharpness") else f"{sum(v) / len(v):.1f}"

    for (kind, system), rs in groups.items():
        lines.append(f"| {kind} | {system} | {len(rs)} | {mean(rs, 'psnr')} | {mean(rs, 'ssim')} | "
                     f"{mean(rs, 'gms')} | {mean(rs, 'sharpness')} | {mean(rs, 's_per_mp')} |")
    return "\n".join(lines)


def pictures(out_dir: Path, case_index: int = 4, crop: int = 192) -> list[Path]:
    """The README's three strips from one validation photo: each method on the same centre crop."""
    import cv2

    from evals.suites import build_case, read_suite
    from tools.io import to_array

    cases = {kind_of(c): c for c in read_suite("restore-learned").cases if c.id.endswith(f"-{case_index:02d}")}
    strips = {"noise": ("input", "nlm", "neural"), "upscale": ("bicubic", "lanczos", "neural"),
              "night": ("input", "exposure", "low_light", "exposure+neural")}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, names in strips.items():
        image, reference = build_case(cases[kind])
        h, w = reference.shape[-2:]
        y0, x0 = (h - crop) // 2, (w - crop) // 2
        panels = []
        for name in (*names, "clean"):
            out = reference if name == "clean" else image if name == "input" else run(name, cases[kind], image).image
            if kind == "upscale" and name == "input":
                out = F.interpolate(image, scale_factor=4, mode="nearest")
            arr = cv2.cvtColor(to_array(out[..., y0 : y0 + crop, x0 : x0 + crop]), cv2.COLOR_RGB2BGR)
            arr = cv2.resize(arr, (2 * crop, 2 * crop), interpolation=cv2.INTER_NEAREST)
            cv2.putText(arr, name, (8, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 0), 4, cv2.LINE_AA)
            cv2.putText(arr, name, (8, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
            panels.append(arr)
        path = out_dir / f"learned-{kind}.jpg"
        cv2.imwrite(str(path), cv2.hconcat(panels), [cv2.IMWRITE_JPEG_QUALITY, 88])
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    from evals.corpus import photos
    from evals.suites import SUITE_DIR, Generator, Suite, read_suite, write_suite

    ap = argparse.ArgumentParser(prog="python -m evals.learned", description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=int, metavar="N", help="write the suite from the first N validation photos")
    ap.add_argument("--limit", type=int, help="run only the first N cases")
    ap.add_argument("--kinds", default="noise,night,upscale", help="damage kinds to run")
    ap.add_argument("--systems", default=",".join([*SYSTEMS, "offline"]))
    ap.add_argument("--out", type=Path, help="also write the rows to OUT/rows.jsonl")
    ap.add_argument("--pictures", type=Path, metavar="DIR", help="write the README's pictures to DIR")
    ap.add_argument("--noise", metavar="SHOT,READ,QUALITY", help="camera-noise level for the noise cases "
                    f"(default the suite's: {NOISE['shot']},{NOISE['read']},{NOISE['quality']})")
    ap.add_argument("--nlm-strength", type=float, default=NLM_STRENGTH, help="the nlm system's strength")
    ap.add_argument("--tune-nlm", type=int, metavar="N", help="print NLM's PSNR per strength on N train photos")
    args = ap.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    level = (NOISE["shot"], NOISE["read"], NOISE["quality"])
    if args.noise:
        try:
            shot, read, quality = args.noise.split(",")
            level = (float(shot), float(read), int(quality))
        except ValueError:
            ap.error(f"--noise {args.noise!r}: give SHOT,READ,QUALITY, e.g. 0.006,4e-5,90")
    if args.tune_nlm:
        train = photos("train")
        means = tune_nlm(train[:: max(1, len(train) // args.tune_nlm)][: args.tune_nlm], *level)
        print(f"best nlm strength: {max(means, key=lambda s: means[s])}")
        return
    if args.pictures:
        print("\n".join(str(p) for p in pictures(args.pictures)))
        return
    if args.write:
        cases = make_cases(photos("val")[: args.write], root)
        suite = Suite(name="restore-learned", description=__doc__.splitlines()[0],
                      generator=Generator(kind="restore", count=len(cases), size=SIZE, sources=[]), cases=cases)
        print(f"wrote {write_suite(suite, SUITE_DIR / 'restore-learned.json')}")
        return
    cases = [with_noise(c, *level) for c in read_suite("restore-learned").cases if kind_of(c) in args.kinds.split(",")]
    rows: list[dict[str, Any]] = []
    for case in cases[: args.limit]:
        new = measure_case(case, args.systems.split(","), args.nlm_strength)
        rows += new
        print(" ".join(f"{r['system']}={r['psnr']:.2f}" for r in new if r["psnr"] is not None), case.id, flush=True)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            with (args.out / "rows.jsonl").open("a") as f:
                f.writelines(json.dumps(r) + "\n" for r in new)
    print(table(rows))


if __name__ == "__main__":
    main()
