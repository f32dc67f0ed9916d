"""Differentiable refinement on the match suite: the offline agent's steps, refined toward the reference.

    .venv/bin/python -m benchmarks.refine_match                 # the bundled match suite (seed 8)
    .venv/bin/python -m benchmarks.refine_match --seed 9        # a held-out suite (seed 9)
    .venv/bin/python -m benchmarks.refine_match --split val     # match cases over validation photos
    .venv/bin/python -m benchmarks.refine_match --extra look    # also agent.refine.LOOK_TOOLS

Per case: PSNR to the reference of the agent's result, then of the same steps with their params
fitted by `agent.refine.refine` (the ops the agent chose; with --extra, also the listed tools when
the agent did not use them), and the seconds of each. Not part of `make test`.
(Here, not in agent/refine.py: the agent layer may not import evals.)
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv: list[str] | None = None) -> None:
    from agent.api import edit
    from agent.options import DEFAULT_PREVIEW, Budget, EditOptions
    from agent.refine import LOOK_TOOLS, Objective, refine
    from evals.corpus import photos
    from evals.suites import Generator, build_case, generate, read_suite
    from tools.metrics import psnr

    ap = argparse.ArgumentParser(prog="python -m benchmarks.refine_match")
    ap.add_argument("--seed", type=int, default=8, help="generator seed; 8 = the bundled suite")
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--split", choices=("train", "val"), help="cases over the corpus photos of this split")
    ap.add_argument("--size", type=int, default=128, help="long side of the case images, px")
    ap.add_argument("--extra", default="", help="comma-separated tools refine may add (at neutral); "
                    "'look' = agent.refine.LOOK_TOOLS")
    ap.add_argument("--iters", type=int, default=150)
    args = ap.parse_args(argv)

    extra = tuple(x for t in args.extra.split(",") if t for x in (LOOK_TOOLS if t == "look" else (t,)))
    if args.split:
        sources = [str(p) for p in photos(args.split)][: args.count]
        cases = generate(Generator(kind="match", seed=args.seed, count=args.count, size=args.size, sources=sources))
    elif args.seed == 8 and args.size == 128:
        cases = read_suite("match").cases[: args.count]
    else:
        cases = generate(Generator(kind="match", seed=args.seed, count=args.count, size=args.size))
    before, after, t_edit, t_refine = [], [], [], []
    for case in cases:
        image, ref = build_case(case)
        t0 = time.perf_counter()
        res = edit(image, case.goal, model="offline", reference=ref,
                   options=EditOptions(lock=case.lock, budget=Budget(max_steps=case.max_steps),
                                       preview=max(DEFAULT_PREVIEW, *image.shape[-2:])))
        t1 = time.perf_counter()
        # preview = the image's own size: the agent's steps were made on `image` itself
        r = refine(image, res.recipe.steps, Objective(reference=ref), iters=args.iters, lock=case.lock, extra=extra)
        t2 = time.perf_counter()
        before.append(psnr(res.image, ref))
        after.append(psnr(r.image, ref))
        t_edit.append(t1 - t0)
        t_refine.append(t2 - t1)
        chosen = ",".join(s.tool for s in res.recipe.steps) or "-"
        print(f"{case.id} {case.source.rsplit('/', 1)[-1]:<28} {before[-1]:6.2f} -> {after[-1]:6.2f} dB  "
              f"edit {t_edit[-1]:4.1f} s, refine {t_refine[-1]:4.1f} s  steps {chosen} -> "
              f"{','.join(s['tool'] for s in r.steps) or '-'} {r.note}", flush=True)
    print(f"mean {statistics.mean(before):.2f} -> {statistics.mean(after):.2f} dB over {len(cases)} cases; "
          f"min {min(after):.2f}; refine {statistics.mean(t_refine):.1f} s a case (edit {statistics.mean(t_edit):.1f} s)")


if __name__ == "__main__":
    main()
