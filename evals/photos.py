"""The `photos` suite: real photos nobody tuned for, hidden faults, goals in other people's words.

Cases (evals/suites/photos.json, written by `python -m evals.photos --write`): photos of the
corpus's validation split (evals/corpus.py; never tuned on) at 384 px, each with a seeded hidden
fault and a goal worded the way people say it ("this shot came out way too dark", "the picture
is overexposed, tone it down", "underexposed with a warm tint, correct both", "restore this
photo" ...). High-key and low-key scenes (clean mean L* above 62 or below 38) get their own
cases: a fix must give them back their key, not a mid-grey average. The clean photo is the
reference.

    imagent eval photos --systems identity,auto,rules,prior,offline --out runs/photos
    python -m evals.photos --check runs/photos     # the issue's bounds, per system

Systems: identity; auto (OpenCV one-click, evals/baselines.py); rules (the offline agent with
magnitudes from the rules only, `agent.api.edit(prior=False)`); prior (the learned prior's
correction applied as it is, `tools.prior`); offline (the agent: prior magnitudes, measured
planning, structure lock).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path
from typing import Any

SIZE = 384
COUNT = 48
SEED = 12
HIGH_KEY, LOW_KEY = 62.0, 38.0  # clean mean L* beyond which a photo is high key / low key

# scenario -> (hidden fault: [(degradation, params drawn from r)], goals people say for it)
_WARM = lambda r: {"r": round(1 + r.uniform(0.12, 0.28), 3), "g": 1.0, "b": round(1 - r.uniform(0.12, 0.28), 3)}  # noqa: E731
_COOL = lambda r: {"r": round(1 - r.uniform(0.12, 0.25), 3), "g": 1.0, "b": round(1 + r.uniform(0.12, 0.3), 3)}  # noqa: E731
_GREEN = lambda r: {"r": round(1 - r.uniform(0.05, 0.15), 3), "g": round(1 + r.uniform(0.1, 0.2), 3), "b": 1.0}  # noqa: E731
_DARK = lambda lo, hi: lambda r: {"stops": round(r.uniform(lo, hi), 3)}  # noqa: E731
_BRIGHT = lambda lo, hi: lambda r: {"stops": -round(r.uniform(lo, hi), 3)}  # noqa: E731
SCENARIOS: dict[str, tuple[list[tuple[str, Any]], list[str]]] = {
    "dark": ([("underexpose", _DARK(0.8, 2.2))],
             ["this shot came out way too dark", "it's underexposed, fix it", "too dark",
              "brighten it up, it is far too dim", "can you fix the exposure?"]),
    "bright": ([("underexpose", _BRIGHT(0.6, 1.4))],
               ["the picture is overexposed, tone it down", "way too bright", "it's washed out by too much light, darken it",
                "fix the exposure"]),
    "cast": ([("color_cast", lambda r: r.choice([_WARM, _COOL, _GREEN])(r))],
             ["fix the colours", "there is an ugly colour cast, remove it", "the white balance is off",
              "make the colours look natural"]),
    "dark+cast": ([("underexpose", _DARK(0.7, 1.6)), ("color_cast", _WARM)],
                  ["underexposed with a warm tint, correct both", "too dark and too yellow",
                   "fix the exposure and the white balance"]),
    "flat": ([("low_contrast", lambda r: {"factor": round(r.uniform(0.6, 0.8), 3)}),
              ("desaturate", lambda r: {"amount": round(r.uniform(0.2, 0.45), 3)})],
             ["it looks flat and dull", "restore this photo", "make it look natural again"]),
    "blind": ([], ["restore this photo", "enhance", "fix this photo", "make it look natural again"]),
    "high-key": ([], ["restore this photo", "enhance", "fix this photo"]),
    "low-key": ([], ["restore this photo", "enhance", "make it look natural again"]),
}
# blind / keyed scenarios draw 1-2 faults from this pool
_POOL: list[tuple[str, Any]] = [
    ("underexpose", lambda r: {"stops": round(r.choice([-1, 1]) * r.uniform(0.6, 1.3), 3)}),
    ("color_cast", lambda r: r.choice([_WARM, _COOL])(r)),
    ("low_contrast", lambda r: {"factor": round(r.uniform(0.65, 0.85), 3)}),
    ("desaturate", lambda r: {"amount": round(r.uniform(0.2, 0.4), 3)}),
]
_ORDER = ("underexpose", "color_cast", "low_contrast", "desaturate")  # as a camera pipeline would get them wrong


def _goals_for(degrade: list[Any], blind: list[str]) -> list[str]:
    """The goals of the scenario a single fault belongs to; blind goals for two faults."""
    if len(degrade) != 1 or degrade[0].op not in ("underexpose", "color_cast"):
        return blind
    d = degrade[0]
    return SCENARIOS["cast" if d.op == "color_cast" else "dark" if d.params["stops"] > 0 else "bright"][1]


def make_cases(sources: dict[str, float], root: Path, seed: int = SEED, count: int = COUNT) -> list[Any]:
    """`count` cases over `sources` (path -> clean mean L* at SIZE): scenarios round-robin, keyed
    scenarios on keyed photos, each photo used once before any is used again."""
    from evals.suites import Case, Degradation, TargetSpec

    r = random.Random(seed)
    high = [p for p, m in sources.items() if m > HIGH_KEY]
    low = [p for p, m in sources.items() if m < LOW_KEY]
    rest = [p for p in sources if p not in high and p not in low]
    for group in (high, low, rest):
        r.shuffle(group)
    pools = {"high-key": high, "low-key": low}
    used: dict[str, int] = {}
    cases = []
    names = list(SCENARIOS)
    for i in range(count):
        scenario = names[i % len(names)]
        group = pools.get(scenario) or rest + high + low
        source = min(group, key=lambda p: (used.get(p, 0), group.index(p)))
        used[source] = used.get(source, 0) + 1
        faults, goals = SCENARIOS[scenario]
        if not faults:
            faults = r.sample(_POOL, r.choice([1, 2]))
        degrade = [Degradation(op=op, params=draw(r)) for op, draw in faults]
        degrade.sort(key=lambda d: _ORDER.index(d.op))
        if scenario != "blind":  # a keyed photo's goal names its fault when there is one
            goals = _goals_for(degrade, goals)
        rel = "reference"
        targets = [TargetSpec(metric="mean_L", low=-6, high=6, relative_to=rel),
                   TargetSpec(metric="cast_a", low=-4, high=4, relative_to=rel),
                   TargetSpec(metric="cast_b", low=-4, high=4, relative_to=rel),
                   TargetSpec(metric="rms_contrast", low=-0.03, high=0.03, relative_to=rel)]
        cases.append(Case(id=f"{scenario}-{i:02d}", kind="restore", source=Path(source).relative_to(root).as_posix(),
                          size=SIZE, degrade=degrade, goal=r.choice(goals), targets=targets, lock=0.7))
    return cases


def write(count: int = COUNT, split: str = "val", seed: int = SEED, path: Path | None = None) -> Path:
    """The suite from one split's photos: the bundled one from "val"; a development copy from
    "train" (`--dev`: data/photos-dev.json, git-ignored) to design on without looking at val."""
    from evals.corpus import photos
    from evals.suites import SUITE_DIR, Generator, Suite, load_source, write_suite
    from tools.analysis import measure

    root = Path(__file__).resolve().parent.parent
    keys = {str(p): measure(load_source(str(p), SIZE)).mean_L for p in photos(split)}  # type: ignore[arg-type]
    cases = make_cases(keys, root, seed=seed, count=count)
    name = "photos" if split == "val" else f"photos-{split}"
    suite = Suite(name=name, description=__doc__.splitlines()[0],
                  generator=Generator(kind="restore", seed=seed, count=len(cases), size=SIZE, sources=[]), cases=cases)
    return write_suite(suite, path or SUITE_DIR / "photos.json")


def check(run: Path) -> list[str]:
    """The issue's bounds on a finished run: mean PSNR gain over identity >= 3 dB, no case below
    identity by more than 1 dB, >= 2 dB over auto; one line per system that ran."""
    from evals.runner import read_results

    records = [r for r in read_results(run).values() if r.get("status") == "ok"]
    systems = sorted({s for r in records for s, e in r["systems"].items() if e.get("status") == "ok"})
    lines = []
    for s in systems:
        rows = [(r["case"], r["systems"][s]["psnr"], r["systems"]["identity"]["psnr"], r["systems"].get("auto", {}).get("psnr"))
                for r in records if r["systems"].get(s, {}).get("status") == "ok" and "identity" in r["systems"]]
        if not rows:
            continue
        gain = [p - i for _, p, i, _ in rows]
        over_auto = [p - a for _, p, _, a in rows if a is not None]
        worst = min(zip(gain, (c for c, *_ in rows), strict=True))
        ok = statistics.mean(gain) >= 3 and worst[0] >= -1 and (not over_auto or statistics.mean(over_auto) >= 2)
        lines.append(f"{s:10s} cases {len(rows):3d}  PSNR {statistics.mean(p for _, p, _, _ in rows):6.2f} dB  "
                     f"gain over identity {statistics.mean(gain):+6.2f} dB  worst {worst[0]:+6.2f} dB ({worst[1]})  "
                     + (f"over auto {statistics.mean(over_auto):+6.2f} dB  " if over_auto else "")
                     + f"success {sum(r['systems'][s].get('success', False) for r in records if s in r['systems'])}/{len(rows)}  "
                     + ("bounds met" if ok else "bounds NOT met"))
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m evals.photos", description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="write evals/suites/photos.json from the validation photos")
    ap.add_argument("--dev", action="store_true",
                    help="write data/photos-dev.json: the same kind of suite from TRAIN photos, to design on")
    ap.add_argument("--check", type=Path, metavar="RUN", help="the bounds on a finished `imagent eval photos` run")
    args = ap.parse_args(argv)
    if args.write:
        print(f"wrote {write()}")
    if args.dev:
        root = Path(__file__).resolve().parent.parent
        print(f"wrote {write(split='train', seed=SEED + 1, path=root / 'data' / 'photos-dev.json')}")
    if args.check:
        print("\n".join(check(args.check)) or "no finished cases in that run")
    if not (args.write or args.dev or args.check):
        print(json.dumps({"usage": "python -m evals.photos --write | --check RUN"}))


if __name__ == "__main__":
    main()
