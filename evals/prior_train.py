"""Train the photo prior (tools/prior.py) on the train photos and report it on the validation photos.

Self-supervised: each train photo, as a 384 px preview, is degraded PER_PHOTO (24) times by
`tools.prior.degrade` with a random `Correction` (`sample_correction`: exposure +-2.5 EV,
white-balance casts, contrast x0.5-1.6, saturation x0.5-1.6, midtone gamma, faded blacks and
dimmed whites, noise, blur, JPEG; 15 % left clean), and the network learns to read the
correction back from `tools.prior.features`. A first fit leaves 15 % of the train photos out and
sets each output's shrink toward neutral on them; the fit on all train photos keeps that shrink.
Features are cached per photo under data/prior-cache/ (git-ignored), so a second run only trains
(~25 s); the features took 14.5 min on 2 cores shared with a load of ~10-15.

    python -m evals.prior_train            # features, train, write tools/data/prior.pt and its sha256
    python -m evals.prior_train --quick    # 8 degradations per photo, 40 epochs, into data/prior-cache/prior-quick.pt
    python -m evals.prior_train --report --weights data/prior-cache/prior-quick.pt   # that network's table
    python -m evals.prior_train --report   # the validation table (prior against the offline rules agent)

The report degrades each validation photo twice with seeded corrections and compares, per
parameter, the mean absolute error of the prior and of the rules agent (the params of the steps
`agent.api.edit(image, "restore this photo", model="offline", prior=False)` applied; noise and blur: the
photo's measured Stats, since the agent estimates no sigma), then the PSNR to the clean photo of
identity, the rules agent, the prior (`correction_steps(estimate(x))`) and the oracle (the true
correction's steps: what the steps can give back at best).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tools import prior
from tools.prior import Correction

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "data" / "prior-cache"
QUICK_WEIGHTS = CACHE / "prior-quick.pt"
SEED = 12
PER_PHOTO = 24
CLEAN_SHARE = 0.15
EPOCHS = 60
HIDDEN = 128  # 60 epochs x 128 units: the lowest held-out error of the few tried on train photos
REPORT_PER_PHOTO = 2
GENTLE = 0.6  # a second prior row at this strength: on held-out train photos it made 3/40 worse, not 10/40
PSNR_CAP = 50.0  # dB: closer than this is invisible, and exact inverses (inf, ~100) would swamp a mean
CLEAN_BLUR = 0.65  # px: what Stats.blur_sigma reads on sharp photos (0.4-0.9, tools/analysis.py)


# ----------------------------------------------------------------- degradations


def sample_correction(rng: np.random.Generator) -> tuple[Correction, int | None]:
    """A random correction (the inverse of the damage `tools.prior.degrade` does) and a JPEG quality or None."""
    if rng.random() < CLEAN_SHARE:
        return Correction(), None
    kw: dict[str, float] = {}
    if rng.random() < 0.6:
        kw["stops"] = rng.uniform(-2.5, 2.5)
    if rng.random() < 0.5:
        kw["temperature"], kw["tint"] = rng.uniform(-50, 50), rng.uniform(-30, 30)
    if rng.random() < 0.4:  # the damage multiplies the midtone slope by 0.5-1.6
        kw["contrast"] = -100 * rng.uniform(math.log(0.5), math.log(1.6)) / math.log(3)
    if rng.random() < 0.4:  # the damage multiplies chroma by 0.5-1.6 (saturation's +100 undoes 0.5 at most)
        kw["saturation"] = 100 * (1 / rng.uniform(0.5, 1.6) - 1)
    if rng.random() < 0.25:
        kw["midtone"] = math.exp(rng.uniform(math.log(0.7), math.log(1.4)))
    if rng.random() < 0.3:
        kw["black"], kw["white"] = rng.uniform(0, 0.12), rng.uniform(0.85, 1.0)
    if rng.random() < 0.25:
        kw["noise"] = math.exp(rng.uniform(math.log(0.005), math.log(0.06)))
    if rng.random() < 0.2:
        kw["blur"] = rng.uniform(0.5, 2.5)
    quality = int(rng.integers(20, 81)) if rng.random() < 0.2 else None
    return Correction(**kw), quality


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


def cases(name: str, clean: torch.Tensor, n: int, seed: int) -> list[tuple[Correction, int | None, torch.Tensor]]:
    """`n` seeded (correction, quality, degraded preview) of one clean preview named `name`."""
    out = []
    for k in range(n):
        rng = np.random.default_rng([seed, _key(name), k])
        c, q = sample_correction(rng)
        out.append((c, q, prior.degrade(clean, c, quality=q, seed=int(rng.integers(2**31)))))
    return out


def load_preview(path: Path) -> torch.Tensor:
    from tools.io import load_image

    return prior.preview(load_image(path).image)


# ----------------------------------------------------------------- features, cached per photo


def _init_worker() -> None:
    import cv2

    torch.set_num_threads(1)  # two processes on two cores: threads inside each only contend
    cv2.setNumThreads(1)


def photo_features(name: str, clean: torch.Tensor, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, F) features and (n, T) targets of `n` seeded degradations of one clean preview."""
    xs, ys = [], []
    for c, _, y in cases(name, clean, n, seed):
        xs.append(prior.features(y))
        ys.append(prior.to_targets(c))
    return np.stack(xs), np.stack(ys)


def _cached(job: tuple[str, Path | None, torch.Tensor | None, int, int, Path | None]) -> tuple[np.ndarray, np.ndarray]:
    name, path, image, n, seed, cache = job
    file = cache / f"{hashlib.sha256(name.encode()).hexdigest()[:16]}.npz" if cache else None
    if file is not None and file.exists():
        with np.load(file) as d:
            return d["x"], d["y"]
    clean = image if image is not None else load_preview(path)  # type: ignore[arg-type]
    x, y = photo_features(name, clean, n, seed)
    if file is not None:
        tmp = file.with_suffix(".tmp.npz")
        np.savez(tmp, x=x, y=y)
        tmp.replace(file)
    return x, y


def dataset(images: Sequence[tuple[str, Path | torch.Tensor]], n: int, seed: int, *,
            cache: Path | None = None, workers: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features X, targets Y and the photo index of each row, for named photos (paths or previews)."""
    if cache is not None:
        cache = cache / f"v{prior.FEATURES_VERSION}-n{n}-s{seed}"
        cache.mkdir(parents=True, exist_ok=True)
    jobs = [(name, src if isinstance(src, Path) else None, src if isinstance(src, torch.Tensor) else None,
             n, seed, cache) for name, src in images]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers, initializer=_init_worker) as pool:
            parts = list(pool.map(_cached, jobs))
    else:
        parts = [_cached(j) for j in jobs]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    idx = np.concatenate([np.full(len(p[0]), i) for i, p in enumerate(parts)])
    return x, y, idx


# ----------------------------------------------------------------- training


def fit(x: np.ndarray, y: np.ndarray, *, epochs: int = EPOCHS, seed: int = SEED, hidden: int = HIDDEN,
        log: Any = None) -> prior.PriorNet:
    """Train the network on standardised features (AdamW, cosine schedule, Huber loss), seeded."""
    torch.manual_seed(seed)
    net = prior.PriorNet(x.shape[1], hidden=hidden)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    net.mean.copy_(xt.mean(0))
    net.std.copy_(xt.std(0).clamp_min(1e-3))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * math.ceil(len(x) / 128))
    g = torch.Generator().manual_seed(seed)
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=g)
        total = 0.0
        for i in range(0, len(x), 128):
            b = order[i : i + 128]
            loss = torch.nn.functional.smooth_l1_loss(net(xt[b]), yt[b], beta=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        if log and (epoch % 25 == 0 or epoch == epochs - 1):
            log(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}")
    return net.eval()


def mae_table(net: prior.PriorNet, x: np.ndarray, y: np.ndarray, neutral: bool = False) -> dict[str, float]:
    """Mean absolute error per parameter, in the tools' units, of the network on (x, y);
    `neutral`: of the do-nothing answer instead."""
    with torch.no_grad():
        pred = np.zeros_like(y) if neutral else net(torch.from_numpy(x)).numpy()
    out = {}
    for k in prior.TARGETS:
        got = [getattr(prior.from_targets(p), k) for p in pred]
        want = [getattr(prior.from_targets(t), k) for t in y]
        out[k] = float(np.mean(np.abs(np.subtract(got, want))))
    return out


def save(net: prior.PriorNet, path: Path, source: Path | None = None) -> str:
    """Write the weights; with `source` (tools/prior.py), record their sha256 there. Returns it."""
    import io

    buf = io.BytesIO()
    torch.save({k: v.detach().clone() for k, v in net.state_dict().items()}, buf)
    data = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    if source is not None:
        text = source.read_text(encoding="utf-8")
        new = re.sub(r'^WEIGHTS_SHA256 = "[0-9a-f]{64}"$', f'WEIGHTS_SHA256 = "{sha}"', text, count=1, flags=re.M)
        if new == text and sha not in text:
            raise RuntimeError(f"no WEIGHTS_SHA256 line in {source}: cannot record the new weights' sha256 {sha}")
        source.write_text(new, encoding="utf-8")
    return sha


def train(images: Sequence[tuple[str, Path | torch.Tensor]], out: Path, *, per_photo: int = PER_PHOTO,
          epochs: int = EPOCHS, seed: int = SEED, cache: Path | None = None, workers: int = 2,
          record_in: Path | None = None, holdout: float = 0.15, log: Any = print) -> dict[str, Any]:
    """Features (cached), fit, save. `holdout`: that share of photos is held out of a first fit, which
    sets each output's shrink toward neutral; then the fit on all photos is saved with it."""
    t0 = time.perf_counter()
    x, y, idx = dataset(images, per_photo, seed, cache=cache, workers=workers)
    log(f"{len(x)} samples of {len(images)} photos, {x.shape[1]} features ({time.perf_counter() - t0:.0f} s)")
    result: dict[str, Any] = {"samples": len(x)}
    shrink = np.ones(y.shape[1], dtype=np.float32)
    held = np.array([_key("holdout:" + images[i][0]) % 100 < holdout * 100 for i in idx])  # not the split's hash
    if 0 < held.sum() < len(held):  # too few photos to hold any out: no shrink
        net = fit(x[~held], y[~held], epochs=epochs, seed=seed, log=log)
        with torch.no_grad():
            pred = net(torch.from_numpy(x[held])).numpy()
        grid = np.linspace(0, 1, 21)
        shrink = np.array([min(grid, key=lambda a: np.abs(a * pred[:, j] - y[held][:, j]).mean())
                           for j in range(y.shape[1])], dtype=np.float32)
        net.shrink.copy_(torch.from_numpy(shrink))
        result["holdout_mae"] = mae_table(net, x[held], y[held])
        result["neutral_mae"] = mae_table(net, x[held], y[held], neutral=True)
        log("shrink: " + ", ".join(f"{k} {a:.2f}" for k, a in zip(prior.TARGETS, shrink, strict=True)))
        log("holdout MAE (neutral): " + ", ".join(f"{k} {v:.3g} ({result['neutral_mae'][k]:.3g})"
                                                 for k, v in result["holdout_mae"].items()))
    net = fit(x, y, epochs=epochs, seed=seed, log=log)
    net.shrink.copy_(torch.from_numpy(shrink))
    result["sha256"] = save(net, out, record_in)
    result["seconds"] = time.perf_counter() - t0
    log(f"wrote {out} (sha256 {result['sha256'][:12]}...) in {result['seconds']:.0f} s")
    return result


# ----------------------------------------------------------------- the validation report


PARAMS = ("stops", "temperature", "tint", "contrast", "saturation", "black", "white", "midtone", "noise", "blur")


def rules_estimate(steps: Sequence[Any], stats: Any) -> dict[str, float]:
    """The params a rules agent's recipe applied, as a correction (noise, blur: the measured Stats)."""
    got = {"stops": 0.0, "temperature": 0.0, "tint": 0.0, "contrast": 0.0, "saturation": 0.0,
           "black": 0.0, "white": 1.0, "midtone": 1.0}
    for s in steps:
        p = s.params
        if s.tool == "exposure":
            got["stops"] += p["stops"]
        elif s.tool == "white_balance":
            got["temperature"] += p["temperature"]
            got["tint"] += p["tint"]
        elif s.tool in ("contrast", "saturation"):
            got[s.tool] += p["amount"]
        elif s.tool == "levels":
            got["black"], got["white"], got["midtone"] = p["black"], p["white"], p["midtone"]
    got["noise"] = stats.noise_sigma
    got["blur"] = math.sqrt(max(stats.blur_sigma**2 - CLEAN_BLUR**2, 0.0))
    return got


def apply_steps(image: torch.Tensor, steps: list[dict[str, Any]]) -> torch.Tensor:
    from tools.recipe import Recipe, Step, apply_recipe

    return apply_recipe(image, Recipe(steps=[Step.of(s["tool"], s["params"]) for s in steps]))


def rules_case(name: str, x: torch.Tensor, clean: torch.Tensor) -> dict[str, Any]:
    """The offline rules agent's blind restore of one damaged preview: its params and PSNR."""
    from agent.api import edit
    from tools.analysis import measure
    from tools.metrics import psnr

    res = edit(x, "restore this photo", model="offline", critic="offline", prior=False)  # the rules alone
    return {"rules": rules_estimate(res.recipe.steps, measure(x)), "psnr_rules": psnr(res.image, clean)}


def report_case(job: tuple[str, torch.Tensor | Path, int, bool, Path | None, Path | None]) -> list[dict[str, Any]]:
    """Every seeded case of one validation photo: true, prior and rules params, and PSNRs.

    The rules agent's part does not depend on the prior: with `cache` it is kept per photo.
    """
    import json

    from tools.metrics import psnr

    name, src, seed, rules, weights, cache = job
    net = prior.load(weights, sha256=None) if weights is not None else None
    clean = src if isinstance(src, torch.Tensor) else load_preview(src)
    file = cache / f"rules-alone-s{seed}" / f"{hashlib.sha256(name.encode()).hexdigest()[:16]}.json" if cache else None
    done = json.loads(file.read_text()) if file is not None and file.exists() else None
    rows = []
    for k, (c, q, x) in enumerate(cases(name, clean, REPORT_PER_PHOTO, seed)):
        est = prior.estimate(x, net)
        row: dict[str, Any] = {"name": f"{name}#{k}", "true": c.model_dump(), "prior": est.model_dump(), "jpeg": q,
                               "clean": c == Correction() and q is None}
        row["psnr_identity"] = psnr(x, clean)
        row["psnr_prior"] = psnr(apply_steps(x, prior.correction_steps(est)), clean)
        row["psnr_prior_0.6"] = psnr(apply_steps(x, prior.correction_steps(est, GENTLE)), clean)
        row["psnr_oracle"] = psnr(apply_steps(x, prior.correction_steps(c)), clean)
        if rules:
            row.update(done[k] if done is not None else rules_case(name, x, clean))
        rows.append(row)
    if rules and file is not None and done is None:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps([{"rules": r["rules"], "psnr_rules": r["psnr_rules"]} for r in rows]))
    return rows


def report(images: Sequence[tuple[str, Path | torch.Tensor]], *, seed: int = SEED + 1, rules: bool = True,
           workers: int = 2, weights: Path | None = None, cache: Path | None = None) -> list[dict[str, Any]]:
    """Rows of `report_case` over the photos (seed differs from training's: other damages);
    `weights`: a network other than the shipped one; `cache`: where the rules agent's rows are kept."""
    jobs = [(name, src, seed, rules, weights, cache) for name, src in images]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers, initializer=_init_worker) as pool:
            return [r for rows in pool.map(report_case, jobs) for r in rows]
    return [r for j in jobs for r in report_case(j)]


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of a report: MAE per parameter, then PSNR, then harm."""
    has_rules = all("rules" in r for r in rows)
    lines = [f"{len(rows)} cases ({sum(r['clean'] for r in rows)} clean)", "",
             "| parameter | prior MAE | rules MAE | do-nothing MAE |", "|---|---|---|---|"]
    neutral = Correction().model_dump()
    for k in PARAMS:
        err_p = np.mean([abs(r["prior"][k] - r["true"][k]) for r in rows])
        err_r = np.mean([abs(r["rules"][k] - r["true"][k]) for r in rows]) if has_rules else float("nan")
        err_0 = np.mean([abs(neutral[k] - r["true"][k]) for r in rows])
        lines.append(f"| {k} | {err_p:.3g} | {err_r:.3g} | {err_0:.3g} |")
    lines += ["", f"| system | mean PSNR to clean, damaged (dB, capped at {PSNR_CAP:.0f}) | gain over identity (dB) "
              "| worse than input by > 1 dB (damaged) | clean photos: PSNR after (dB) |", "|---|---|---|---|---|"]
    damaged = [r for r in rows if not r["clean"]]
    clean = [r for r in rows if r["clean"]]
    base = np.array([min(r["psnr_identity"], PSNR_CAP) for r in damaged])
    for s in ["identity", *(["rules"] if has_rules else []), "prior", f"prior_{GENTLE}", "oracle"]:
        v = np.array([min(r[f"psnr_{s}"], PSNR_CAP) for r in damaged])
        after = np.mean([min(r[f"psnr_{s}"], PSNR_CAP) for r in clean]) if clean else float("nan")
        lines.append(f"| {s} | {v.mean():.2f} | {v.mean() - base.mean():+.2f} | {int(np.sum(v < base - 1))}/{len(v)} "
                     f"| {after:.1f} |")
    if clean:
        lines += ["", f"clean photos: the prior's |stops| averages {np.mean([abs(r['prior']['stops']) for r in clean]):.2f} EV"]
    return "\n".join(lines)


# ----------------------------------------------------------------- command line


def _named(split: str) -> list[tuple[str, Path]]:
    from evals.corpus import corpus_dir, photos

    root = corpus_dir()
    return [(p.relative_to(root).as_posix(), p) for p in photos(split)]  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m evals.prior_train", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 degradations per photo and 40 epochs (a smoke run)")
    ap.add_argument("--report", action="store_true", help="print the validation table of the shipped weights")
    ap.add_argument("--holdout", type=float, default=0.15,
                    help="share of train photos held out of a first fit to set the shrink toward neutral")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N photos")
    ap.add_argument("--no-rules", action="store_true", help="report without the rules agent (faster)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--weights", type=Path, default=None,
                    help="train into / report this file instead of the shipped tools/data/prior.pt "
                    f"(--quick: {QUICK_WEIGHTS.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    _init_worker()  # one thread here too: small matrices, and a shared machine's cores stall a pool
    if args.report:
        rows = report(_named("val")[: args.limit], rules=not args.no_rules, workers=args.workers, cache=CACHE,
                      weights=args.weights)
        print(table(rows))
        return 0
    per, epochs = (8, 40) if args.quick else (PER_PHOTO, EPOCHS)
    out = args.weights or (QUICK_WEIGHTS if args.quick else prior.WEIGHTS)
    # Only the shipped file's sha256 is recorded in tools/prior.py; a smoke run never replaces it.
    train(_named("train")[: args.limit], out, per_photo=per, epochs=epochs, cache=CACHE, workers=args.workers,
          record_in=Path(prior.__file__) if out == prior.WEIGHTS else None, holdout=args.holdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
