"""Compare two eval runs: per-system, per-metric mean deltas and the cases that changed most."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.errors import UserError
from evals.runner import METRICS, read_results

COMPARED = (*METRICS, "structure", "targets_met", "steps", "model_calls", "tokens", "seconds")


def _value(record: dict[str, Any], system: str, metric: str) -> float | None:
    e = record.get("systems", {}).get(system, {})
    v = e.get(metric) if e.get("status") == "ok" else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def compare_runs(run_a: str | Path, run_b: str | Path, *, metric: str = "psnr", top: int = 5) -> dict[str, Any]:
    """{"common": n, "metrics": [...], "deltas": {system: {metric: mean(B - A)}},
    "changed": {system: [{"case", "a", "b", "delta"}, ...]}} over the cases both runs have."""
    if metric not in COMPARED:
        raise UserError(f"--metric {metric!r}: use one of {', '.join(COMPARED)}")
    runs = []
    for run in (run_a, run_b):
        if not (Path(run) / "results.jsonl").is_file():
            raise UserError(f"{run} is not an eval run folder (no results.jsonl); give the --out of `imagent eval`")
        runs.append(read_results(run))
    a, b = runs
    common = [c for c in a if c in b]
    if not common:
        raise UserError(f"{run_a} and {run_b} have no case in common; compare runs of the same suite")
    systems = [s for s in dict.fromkeys(s for c in common for s in a[c].get("systems", {}))
               if any(s in b[c].get("systems", {}) for c in common)]
    deltas: dict[str, dict[str, float | None]] = {}
    changed: dict[str, list[dict[str, Any]]] = {}
    for s in systems:
        deltas[s] = {}
        for m in COMPARED:
            diffs = [vb - va for c in common
                     if (va := _value(a[c], s, m)) is not None and (vb := _value(b[c], s, m)) is not None]
            deltas[s][m] = sum(diffs) / len(diffs) if diffs else None
        rows = []
        for c in common:
            va, vb = _value(a[c], s, metric), _value(b[c], s, metric)
            if va is not None and vb is not None and vb != va:
                rows.append({"case": c, "a": va, "b": vb, "delta": vb - va})
        changed[s] = sorted(rows, key=lambda r: -abs(r["delta"]))[:top]
    return {"common": len(common), "metrics": list(COMPARED), "deltas": deltas, "changed": changed}
