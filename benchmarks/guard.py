"""The naturalness guard (agent/scoring.py) on corpus photos: how often it vetoes plausible edits
(false vetoes) and how often it catches damaging ones. Its tolerances were chosen on train.

    python -m benchmarks.guard train|val [STEP] [CASE,CASE...]    # every STEP-th photo of the split

Rows go to out/guard-<split>.json; a table per case, then the two rates, are printed.
"""
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

from agent.goals import parse_goal
from agent.scoring import naturalness, naturalness_vetoes
from agent.state import preview_of
from evals.corpus import photos
from tools.analysis import measure
from tools.degrade import camera_noise, color_cast
from tools.io import load_image
from tools.registry import get

torch.set_num_threads(1)

split = sys.argv[1]
step = int(sys.argv[2]) if len(sys.argv) > 2 else 1
SIZE = 384


def op(name, **p):
    t = get(name)
    return lambda x: t(x, t.validate(p))

def chain(*fs):
    def f(x):
        for g in fs:
            x = g(x)
        return x
    return f

def noisy(x):
    return camera_noise(x, shot=0.02, read=4e-4, quality=95)


def cast(x):
    return color_cast(x, 1.0, 1.0, 0.8)
# (name, goal, prepare original, edit, plausible?)
CASES = [
    ("exposure+0.5", "make it brighter", None, op("exposure", stops=0.5), True),
    ("gamma1.25-brighter", "make it brighter", None, op("gamma", gamma=1.25), True),
    ("denoise-noisy-0.8", "remove the noise", noisy, op("denoise", method="nlm", strength=0.8), True),
    ("exposure-0.5", "make it darker", None, op("exposure", stops=-0.5), True),
    ("contrast1.2", "more contrast", None, op("contrast", amount=20), True),
    ("warmer", "make it warmer", None, op("white_balance", temperature=20), True),
    ("cooler", "make it cooler", None, op("white_balance", temperature=-20), True),
    ("saturation+25", "more saturated colours", None, op("saturation", amount=25), True),
    ("denoise-noisy", "remove the noise", noisy, op("denoise", method="nlm", strength=0.5), True),
    ("sharpen0.5", "sharpen it", None, op("sharpen", amount=0.5), True),
    ("clarity+20", "more clarity", None, op("clarity", amount=20), True),
    ("shadows+30", "lift the shadows", None, op("shadows_highlights", shadows=30), True),
    ("wb-fix-cast", "remove the yellow cast", cast, op("auto_white_balance", method="grey_world", strength=0.8), True),
    ("bright+contrast", "brighter with more contrast", None, chain(op("exposure", stops=0.3), op("contrast", amount=15)), True),
    # damaging
    ("exposure+1.5", "make it brighter", None, op("exposure", stops=1.5), False),
    ("warmer-wb60", "make it warmer", None, op("white_balance", temperature=70), False),
    ("denoise-clean-strong", "remove the noise", None, op("denoise", method="nlm", strength=1.0), False),
    ("tint+60", "fix the colours", None, op("white_balance", tint=60), False),
    ("clarity100+sharpen3", "sharpen it", None, chain(op("clarity", amount=100), op("sharpen", amount=3)), False),
    ("saturation100", "more saturated colours", noisy, op("saturation", amount=100), False),
]
only = sys.argv[3].split(",") if len(sys.argv) > 3 else None
rows = []
ps = photos(split)[::step]
t0 = time.time()
for k, p in enumerate(ps):
    print(k, p.name, f"{time.time()-t0:.0f}s", flush=True)
    base = preview_of(load_image(p).image, SIZE)
    for name, goal_text, prep, edit, plausible in CASES:
        if only and name not in only:
            continue
        orig = prep(base) if prep else base
        so = measure(orig)
        try:
            goal = parse_goal(goal_text, so)
        except Exception as exc:
            print("parse_goal failed:", p.name, goal_text, str(exc)[:120], flush=True)
            continue
        cand = edit(orig).clamp(0, 1)
        sc = measure(cand)
        n = naturalness(orig, cand, original_stats=so, stats=sc)
        v = naturalness_vetoes(n, goal, so)
        rows.append(dict(photo=str(p.relative_to(p.parents[1])), case=name, plausible=plausible,
                         vetoes=[x.check for x in v], texts=[x.text for x in v], fig=n.model_dump(),
                         intents=[i.name for i in goal.intents], mean_L=so.mean_L))
out = Path("out") / f"guard-{split}.json"
out.parent.mkdir(exist_ok=True)
out.write_text(json.dumps(rows))
print(f"{len(ps)} photos, {time.time()-t0:.0f} s")
by = defaultdict(list)
for r in rows:
    by[(r["case"], r["plausible"])].append(r)
for (c, pl), rs in by.items():
    n = sum(bool(r["vetoes"]) for r in rs)
    cnt = Counter(x for r in rs for x in r["vetoes"])
    print(f"{'OK ' if pl else 'BAD'} {c:22s} vetoed {n}/{len(rs)} {dict(cnt)}")
for lim in (50, 60, 70):
    rs = [r for r in rows if r["case"] == "exposure+0.5" and r["mean_L"] < lim]
    print(f"exposure+0.5 on photos with mean L* < {lim}: vetoed {sum(bool(r['vetoes']) for r in rs)}/{len(rs)}")
pl = [r for r in rows if r["plausible"]]
bad = [r for r in rows if not r["plausible"]]
print("false-veto rate (plausible):", sum(bool(r["vetoes"]) for r in pl), "/", len(pl))
print("catch rate (damaging):", sum(bool(r["vetoes"]) for r in bad), "/", len(bad))
