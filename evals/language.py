"""`python -m evals.language`: how well goals in six languages map to intents (issue 14's suite).

The cases (`evals/data/language.json`: "dev" goals written with the phrase tables and everyday-words
probes measured before the fixes they drove, 61 "val"
and 60 "test" goals written after them, each measured once and then seen while the tables grew,
and 140 "blind" goals written by someone who had not read the tables, measured once before the
tables were tuned again on dev and val only, and 156 "blind2" goals written later the same way, by
someone who read nothing of the repository, measured once (144/156): the held-out figures; English, Chinese, German, French,
Spanish, Japanese; plain wishes, compounds, negations, looks, regions, geometry, nonsense) name the
intents each goal must map to. A goal is right when the label set of its parsed intents is
exactly the expected one; a nonsense goal is right when nothing is mapped (the CLI then
refuses it). Reported: accuracy per language and per kind, and seconds per goal.

    python -m evals.language [--parser default|keyword|llm] [--llm NAME] [--split dev,val]
                             [--show-misses] [--json OUT]

`--split` scores only those splits (tune with `--split dev,val --show-misses`: blind and blind2 misses stay unread).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from importlib import resources
from typing import Any

from agent.errors import UserError

SPLITS = ("dev", "val", "test", "blind", "blind2")


def cases() -> list[dict[str, Any]]:
    data = json.loads(resources.files("evals").joinpath("data/language.json").read_text(encoding="utf-8"))
    return data["cases"]


def labels(goal: Any) -> set[str]:
    """The label of each parsed intent: NAME, NAME@REGION, or NAME:ARGUMENT (look, crop, rotate, flip)."""
    out = set()
    for i in goal.intents:
        if i.name == "enhance" and i.source == "measurement":
            continue  # the fallback when nothing was understood, not a mapping
        arg = getattr(i, "argument", None)
        label = f"{i.name}:{arg}" if arg else i.name
        out.add(f"{label}@{i.region}" if i.region else label)
    return out


def run(parser: str = "default", model: str | None = None,
        splits: tuple[str, ...] = SPLITS) -> list[dict[str, Any]]:
    """Score every case of `splits`; parser 'llm' asks the local model `model` (default: the 0.5B one)
    about the clauses the tables and rules cannot read."""
    from functools import partial

    from agent.goals import parse_goal, wish_names

    if parser == "llm":
        from agent.local_llm import model_path, wish_mapper

        path = str(model_path(model or "qwen2.5-coder-0.5b"))
        parse_goal = partial(parse_goal, mapper=wish_mapper(path, wish_names()))

    before = os.environ.get("IMAGENT_NO_EMBEDDINGS")
    if parser == "keyword":
        os.environ["IMAGENT_NO_EMBEDDINGS"] = "1"
    try:
        return [_score(parse_goal, c) for c in cases() if c.get("split", "dev") in splits]
    finally:
        if before is None:
            os.environ.pop("IMAGENT_NO_EMBEDDINGS", None)
        else:
            os.environ["IMAGENT_NO_EMBEDDINGS"] = before


def _score(parse_goal: Any, case: dict[str, Any]) -> dict[str, Any]:
    t = time.perf_counter()
    try:
        got, error = labels(parse_goal(case["goal"])), None
    except UserError as exc:
        got, error = set(), str(exc)
    return {**case, "got": sorted(got), "error": error, "seconds": time.perf_counter() - t,
            "right": got == set(case["expect"])}


def table(rows: list[dict[str, Any]], key: str) -> dict[str, tuple[int, int]]:
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        out[r[key]][0] += r["right"]
        out[r[key]][1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parser", choices=("default", "keyword", "llm"), default="default")
    ap.add_argument("--llm", default=None, help="with --parser llm: a local model name (make llm)")
    ap.add_argument("--split", default=",".join(SPLITS),
                    help=f"comma-separated splits to score (default: all of {', '.join(SPLITS)})")
    ap.add_argument("--show-misses", action="store_true")
    ap.add_argument("--json", help="write every case's result here")
    args = ap.parse_args(argv)
    splits = tuple(x.strip() for x in args.split.split(",") if x.strip())
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        ap.error(f"unknown split {', '.join(unknown)}: choose among {', '.join(SPLITS)}")
    rows = run(args.parser, args.llm, splits)
    for split in splits:
        part = [r for r in rows if r.get("split", "dev") == split]
        if not part:
            continue
        right = sum(r["right"] for r in part)
        print(f"{split}: all {right}/{len(part)} ({100 * right / len(part):.0f} %)")
        for key in ("lang", "kind"):
            print("  " + " | ".join(f"{k} {a}/{n} ({100 * a / n:.0f} %)" for k, (a, n) in table(part, key).items()))
    print(f"{statistics.median(r['seconds'] for r in rows) * 1000:.1f} ms per goal (median)")
    if args.show_misses:
        for r in rows:
            if not r["right"]:
                print(f"  [{r.get('split', 'dev')} {r['lang']} {r['kind']}] {r['goal']!r}: "
                      f"want {r['expect']}, got {r['got']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, ensure_ascii=False, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
