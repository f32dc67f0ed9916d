"""Batch enhancement: every photo of a folder toward one goal; one bad file fails alone."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

from agent.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}
CSV_FIELDS = ["file", "status", "output", "targets_met", "targets_total", "structure", "mean_L_before",
              "mean_L_after", "cast_before", "cast_after", "steps", "seconds", "stop_reason", "error"]


def run_batch(
    in_dir: Path,
    out_dir: Path,
    goal: str,
    *,
    model: str = "offline",
    workers: int = 1,
    engine: str = "local",
    ray_address: str | None = None,
    console: Any = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Edit each image in `in_dir` into `out_dir`; returns one row per file and writes summary.csv.

    engine "local": threads, not processes (torch and OpenCV release the GIL in their
    kernels, and models load once). engine "ray": one Ray task per photo, on a local Ray
    or a cluster (`ray_address`; the folders must then be on storage every node sees).
    """
    from rich.progress import Progress
    from rich.table import Table

    from agent.api import edit
    from agent.planners import check_specs
    from tools.io import ImageLoadError, atomic_write_bytes

    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise UserError(f"input folder {in_dir} does not exist")
    if out_dir.exists() and out_dir.resolve() == in_dir.resolve():
        raise UserError(f"output folder {out_dir} is the input folder; choose another so originals stay untouched")
    files = sorted(p for p in in_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {in_dir}")
    check_specs(model, options.get("critic"), options.get("base_url"))  # a bad one fails once, here
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(path: Path) -> dict[str, Any]:
        t0 = time.perf_counter()
        row: dict[str, Any] = {"file": path.name}
        try:
            result = edit(path, goal, model=model, **options)
            out = result.save(out_dir / path.name)
            s = result.score
            row.update(status="ok", output=str(out), targets_met=s.targets_met, targets_total=s.targets_total,
                       structure=round(s.structure, 4), mean_L_before=round(result.stats_before.mean_L, 2),
                       mean_L_after=round(result.stats_after.mean_L, 2), cast_before=round(result.stats_before.cast, 2),
                       cast_after=round(result.stats_after.cast, 2), steps=len(result.recipe.steps),
                       stop_reason=result.stop_reason)
        except ImageLoadError as exc:
            row.update(status="unreadable", error=str(exc))
        except Exception as exc:  # one bad file must not end the batch; the row says why
            row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        row["seconds"] = round(time.perf_counter() - t0, 2)
        return row

    from evals.runner import make_engine

    rows: list[dict[str, Any]] = []
    runner = make_engine(engine, workers, ray_address)
    try:
        with Progress(console=console, transient=False) as progress:
            task = progress.add_task(f"editing {len(files)} photos", total=len(files))
            for row in runner.map(one, [(p,) for p in files]):
                rows.append(row)
                progress.advance(task)
    finally:
        if hasattr(runner, "close"):
            runner.close()
    rows.sort(key=lambda r: r["file"])

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out_dir / "summary.csv", buf.getvalue().encode("utf-8"))

    if console is not None:
        table = Table(title=f"batch: {sum(r['status'] == 'ok' for r in rows)}/{len(rows)} edited")
        for col in ("file", "status", "targets", "structure", "L* before->after", "note"):
            table.add_column(col, overflow="fold")
        for r in rows:
            ok = r["status"] == "ok"
            table.add_row(r["file"], r["status"] if ok else f"[red]{r['status']}[/]",
                          f"{r['targets_met']}/{r['targets_total']}" if ok else "-",
                          str(r.get("structure", "-")),
                          f"{r['mean_L_before']} -> {r['mean_L_after']}" if ok else "-",
                          r.get("stop_reason", "") if ok else r.get("error", "")[:120])
        console.print(table)
        console.print(f"summary: {out_dir / 'summary.csv'}")
    return rows
