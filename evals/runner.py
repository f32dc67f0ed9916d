"""Run a suite: every case through every system, on threads here or as Ray tasks anywhere.

One unit of work is a case: build its input and reference, run each system, score
each output. `run_case` is a pure function of the case (it returns the record and
the images as PNG bytes, writing nothing), so the same code runs in a thread, in a
local Ray worker or on a remote cluster, and only the driver touches the output
folder:

    OUT/run.json          the suite, systems and options of the run
    OUT/results.jsonl     one line per case (the last line of a case wins), appended and
                          fsynced as cases finish; a torn last line is ignored on resume
    OUT/images/CASE/*.png input, reference and every system's output
    OUT/summary.csv       one row per system: means, success rate, cost, time
    OUT/report.html       see evals/report.py

A case that fails (an unreadable photo, a system that raises) is recorded with its
error and the run goes on. `resume=True` runs only the cases (and systems) that
have no successful record yet.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from agent.engines import make_engine
from agent.errors import UserError
from tools.io import encode_png

METRICS = ("psnr", "ssim", "ms_ssim", "delta_e")
HOLE_METRICS = ("hole_psnr", "hole_ssim", "hole_delta_e")  # inpaint: inside the hole only
PSNR_CAP = 100.0  # dB for identical images: JSON has no infinity
# summary columns: (key, header, direction for "best": +1 higher, -1 lower, 0 none)
SUMMARY: list[tuple[str, str, int]] = [
    ("cases", "cases", 0), ("failed", "failed", -1), ("psnr", "PSNR dB", 1), ("ssim", "SSIM", 1),
    ("ms_ssim", "MS-SSIM", 1), ("delta_e", "mean dE2000", -1), ("hole_psnr", "hole PSNR dB", 1),
    ("hole_ssim", "hole SSIM", 1), ("hole_delta_e", "hole dE2000", -1), ("moved", "edit moved %", 1), ("success", "targets success %", 1),
    ("lock_violations", "lock violations", -1), ("steps", "steps", 0), ("tool_calls", "tool calls", 0),
    ("model_calls", "model calls", 0), ("tokens", "tokens", 0), ("usd", "USD total", -1),
    ("seconds", "s / case", -1),
]


def slug(name: str) -> str:
    """A system name as a file name ("openai:gpt-4o" -> "openai_gpt-4o")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "system"


def full_reference(output: Any, reference: Any) -> dict[str, float | None]:
    """psnr (capped), ssim, ms_ssim (None when too small), mean deltaE2000 of output vs reference."""
    from tools.metrics import delta_e2000, ms_ssim, psnr, ssim

    if output.shape != reference.shape:
        return dict.fromkeys(METRICS)
    with warnings.catch_warnings():  # small eval images afford fewer MS-SSIM scales; said in the README
        warnings.simplefilter("ignore")
        try:
            ms = ms_ssim(output, reference)
        except ValueError:
            ms = None
    p = psnr(output, reference)
    return {"psnr": round(min(p, PSNR_CAP), 6), "ssim": round(ssim(output, reference), 6),
            "ms_ssim": None if ms is None else round(ms, 6),
            "delta_e": round(delta_e2000(output, reference)[0], 6)}


def hole_metrics(output: Any, reference: Any, hole: Any) -> dict[str, float | None]:
    """psnr (capped), ssim and mean deltaE2000 inside the hole only."""
    from tools.metrics import delta_e2000_masked, psnr_masked, ssim_masked

    if output.shape != reference.shape:
        return dict.fromkeys(HOLE_METRICS)
    p = psnr_masked(output, reference, hole)
    return {"hole_psnr": round(min(p, PSNR_CAP), 6), "hole_ssim": round(ssim_masked(output, reference, hole), 6),
            "hole_delta_e": round(delta_e2000_masked(output, reference, hole), 6)}


def run_case(case_data: dict[str, Any], systems: list[str], options: dict[str, Any]) -> dict[str, Any]:
    """Run `systems` on one case; returns {"record": JSON-ready dict, "files": {relpath: PNG bytes}}."""
    import torch

    from agent.scoring import structure_similarity
    from evals.baselines import NotApplicable, run_system
    from evals.suites import Case, build_case
    from tools.analysis import measure

    torch.set_grad_enabled(False)
    case = Case.model_validate(case_data)
    folder = f"images/{slug(case.id)}"
    record: dict[str, Any] = {"case": case.id, "kind": case.kind, "goal": case.goal, "source": case.source,
                              "status": "ok", "error": None, "systems": {}}
    files: dict[str, bytes] = {}
    try:
        image, reference = build_case(case)
    except Exception as exc:  # an unreadable photo fails its case, not the run
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        return {"record": record, "files": files}
    files[f"{folder}/input.png"] = encode_png(image)
    record["input"] = f"{folder}/input.png"
    if reference is not None:
        files[f"{folder}/reference.png"] = encode_png(reference)
        record["reference"] = f"{folder}/reference.png"
        record["input_metrics"] = full_reference(image, reference)
    hole = None
    if case.kind == "inpaint":
        from evals.suites import case_mask

        hole = case_mask(case, *image.shape[-2:])
        files[f"{folder}/mask.png"] = encode_png(hole.expand(1, 3, -1, -1))
        record["mask"] = f"{folder}/mask.png"
        record["input_metrics"].update(hole_metrics(image, reference, hole))
    in_stats = measure(image)
    ref_stats = measure(reference) if reference is not None else None
    agent_options = {k: v for k, v in options.items() if k in ("critic", "base_url") and v is not None}
    for name in systems:
        entry: dict[str, Any] = {"status": "ok"}
        try:
            out, seconds = run_system(name, case, image, reference, **agent_options)
        except NotApplicable as exc:
            record["systems"][name] = {"status": "n/a", "note": str(exc)}
            continue
        except Exception as exc:  # one system's failure is recorded; the others still run
            record["systems"][name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            continue
        result = out.image.detach().float().clamp(0, 1)
        rel = f"{folder}/{slug(name)}.png"
        files[rel] = encode_png(result)
        # the lock judges what the edit did outside the hole: filling the hole is the task, not damage
        judged = result if hole is None or result.shape != image.shape else torch.where(hole > 0, image, result)
        structure = structure_similarity(image, judged) if result.shape == image.shape else 0.0
        stats = measure(result)
        met = sum(t.met(stats, in_stats, ref_stats) for t in case.targets)
        tokens = out.input_tokens + out.output_tokens
        if hole is not None:
            entry.update(hole_metrics(result, reference, hole))
        entry.update(image=rel, **(full_reference(result, reference) if reference is not None else {}),
                     structure=round(structure, 6), lock_violation=structure < case.lock - 1e-6,
                     targets_met=met, targets_total=len(case.targets),
                     success=met == len(case.targets) if case.targets else None,
                     steps=out.steps, tool_calls=out.tool_calls, model_calls=out.model_calls,
                     input_tokens=out.input_tokens, output_tokens=out.output_tokens, tokens=tokens, usd=out.usd,
                     seconds=round(seconds, 3), trace=out.trace, stop_reason=out.stop_reason, note=out.note,
                     **out.extra)
        record["systems"][name] = entry
    if record["systems"] and all(e["status"] == "failed" for e in record["systems"].values()):
        record["status"] = "failed"
        record["error"] = "every system failed"
    return {"record": record, "files": files}


# ------------------------------------------------------------------ results


def read_results(out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """case id -> its latest record from results.jsonl (a torn or garbled line is skipped)."""
    path = Path(out_dir) / "results.jsonl"
    records: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "case" in rec:
            records[rec["case"]] = rec
    return records


def _append_line(path: Path, record: dict[str, Any] | None) -> None:
    data = ("" if record is None else json.dumps(record, default=str)).encode("utf-8") + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        os.write(fd, data)  # one write per line: a crash leaves at most a torn last line
        os.fsync(fd)
    finally:
        os.close(fd)


def _mean(values: Iterable[Any]) -> float | None:
    vals = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def summarize(records: Iterable[dict[str, Any]], systems: list[str]) -> list[dict[str, Any]]:
    """One row per system: means over the cases it ran (see SUMMARY for the columns)."""
    records = list(records)
    rows = []
    for name in systems:
        entries = [r["systems"][name] for r in records if name in r.get("systems", {})]
        ok = [e for e in entries if e["status"] == "ok"]
        failed = sum(e["status"] == "failed" for e in entries) + sum(
            1 for r in records if r.get("status") == "failed" and name not in r.get("systems", {}))
        judged = [e["success"] for e in ok if e.get("success") is not None]
        usd = [e["usd"] for e in ok]
        row: dict[str, Any] = {"system": name, "cases": len(ok), "failed": failed}
        for key in (*METRICS, *HOLE_METRICS, "moved", "steps", "tool_calls", "model_calls", "tokens", "seconds"):
            row[key] = _mean(e.get(key) for e in ok)
        row["success"] = 100.0 * sum(judged) / len(judged) if judged else None
        row["lock_violations"] = sum(bool(e.get("lock_violation")) for e in ok)
        row["usd"] = None if any(u is None for u in usd) else round(sum(usd), 6)
        rows.append(row)
    return rows


def write_summary(out_dir: Path, rows: list[dict[str, Any]]) -> Path:
    from tools.io import atomic_write_bytes

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["system"] + [k for k, _, _ in SUMMARY], extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (round(v, 4) if isinstance(v, float) else ("" if v is None else v)) for k, v in row.items()})
    return atomic_write_bytes(out_dir / "summary.csv", buf.getvalue().encode("utf-8"))


# ------------------------------------------------------------------ the run


def run_eval(
    suite: Any,
    systems: list[str],
    out_dir: str | Path,
    *,
    engine: str = "local",
    workers: int = 1,
    resume: bool = False,
    ray_address: str | None = None,
    options: dict[str, Any] | None = None,
    console: Any = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    report: bool = True,
) -> list[dict[str, Any]]:
    """Run every case of `suite` (an `evals.suites.Suite`) through `systems`; returns the summary rows."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from tools.io import atomic_write_bytes

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = read_results(out)
    meta_path = out / "run.json"
    if done and not resume:
        raise UserError(f"{out} already holds results of a run; pass --resume to continue it or choose another --out")
    if resume and meta_path.is_file():
        old = json.loads(meta_path.read_text(encoding="utf-8"))
        if old.get("suite") != suite.name:
            raise UserError(f"{out} holds a run of suite {old.get('suite')!r}, not {suite.name!r}; choose another --out")
        systems = list(dict.fromkeys([*old.get("systems", []), *systems]))
    opts = dict(options or {})
    meta = {"suite": suite.name, "kind": suite.generator.kind, "systems": systems, "engine": engine,
            "cases": [c.id for c in suite.cases], "options": {k: v for k, v in opts.items() if v is not None}}
    atomic_write_bytes(meta_path, json.dumps(meta, indent=2).encode("utf-8"))

    work = []
    for case in suite.cases:
        prev = done.get(case.id, {}).get("systems", {})
        missing = [s for s in systems if prev.get(s, {}).get("status") not in ("ok", "n/a")]
        if missing:
            work.append((case.model_dump(mode="json"), missing, opts))
    results_path = out / "results.jsonl"
    if results_path.is_file() and results_path.stat().st_size:
        with results_path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
        if torn:  # end a line torn by a crash, so the next record starts on its own line
            _append_line(results_path, None)
    runner = make_engine(engine, workers, ray_address)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console, disable=console is None)
    try:
        with progress:
            task = progress.add_task(f"{suite.name}: {len(work)} case(s) x {len(systems)} system(s)", total=len(work))
            for res in runner.map(run_case, work):
                rec = res["record"]
                prev = done.get(rec["case"])
                if prev is not None:  # keep what an earlier run already got right
                    rec["systems"] = {**prev.get("systems", {}), **rec["systems"]}
                for rel, data in res["files"].items():
                    (out / rel).parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_bytes(out / rel, data)
                _append_line(results_path, rec)
                done[rec["case"]] = rec
                progress.advance(task)
                if on_record is not None:
                    on_record(rec)
    finally:
        close = getattr(runner, "close", None)
        if close is not None:
            close()
    order = {c.id: i for i, c in enumerate(suite.cases)}
    records = sorted((r for r in done.values() if r["case"] in order), key=lambda r: order[r["case"]])
    rows = summarize(records, systems)
    write_summary(out, rows)
    if report:
        from evals.report import write_report

        write_report(out)
    return rows
