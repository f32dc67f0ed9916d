"""Batch enhancement: every photo of a folder toward one goal; one bad file fails alone.

With a per-photo cap (`max_photo_seconds`, `max_photo_memory`) each photo is edited in a
pool of long-lived worker processes (`python -m agent.batch_workers`), so a photo over a cap can be
stopped without stopping the batch: memory by `RLIMIT_AS` (the address space a photo may add
to its warmed-up worker; allocations past it fail and the photo fails), time by killing the
worker, which is then replaced. A worker imports torch once, not once per photo. Without
caps (or with an in-memory model object) photos run on threads in this process.

summary.csv is appended (flushed, fsynced) as each photo finishes, so a killed batch keeps
what it did, and `resume=True` skips the photos it lists as done whose output exists.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.batch_workers import (  # noqa: F401  (HOOK_ENV and FAILED_EXIT are re-exported)
    FAILED_EXIT,
    HOOK_ENV,
    Job,
    Pool,
    edit_one,
)
from agent.configure import edit_options
from agent.errors import ExitCode, UserError
from agent.options import EditOptions
from agent.runtime import pixel_limit

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}
CSV_FIELDS = ["file", "status", "outcome", "exit_status", "output", "targets_met", "targets_total", "structure",
              "mean_L_before", "mean_L_after", "cast_before", "cast_after", "steps", "seconds", "peak_mb",
              "stop_reason", "error"]


def run_batch(
    in_dir: Path,
    out_dir: Path,
    goal: str,
    *,
    model: str | Any = "offline",
    critic: str | Any | None = None,
    base_url: str | None = None,
    options: EditOptions | None = None,
    workers: int = 1,
    engine: str = "local",
    ray_address: str | None = None,
    console: Any = None,
    resume: bool = False,
    max_photo_seconds: float | None = None,
    max_photo_memory: int | None = None,
    **flat: Any,
) -> list[dict[str, Any]]:
    """Edit each image in `in_dir` into `out_dir`; returns one row per file (sorted by file).

    Every photo is edited with `options` (an EditOptions; `flat`: single options on top, as
    `agent.api.edit` takes them), resolved once against the settings here.

    Rows are appended to out_dir/summary.csv as photos finish; at the end it is rewritten whole
    and sorted. engine "local": worker processes when a cap is set, else threads (torch and
    OpenCV release the GIL in their kernels). engine "ray": one Ray task per photo (no caps).
    """
    from rich.progress import Progress

    from agent.critics import check_specs

    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise UserError(f"input folder {in_dir} does not exist")
    if out_dir.exists() and out_dir.resolve() == in_dir.resolve():
        raise UserError(f"output folder {out_dir} is the input folder; choose another so originals stay untouched")
    files = sorted(p for p in in_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {in_dir}")
    names = {p.name for p in files}
    check_specs(model, critic, base_url)  # a bad one fails once, here
    job = Job(model, critic, base_url, edit_options(options, **flat))
    out_dir.mkdir(parents=True, exist_ok=True)

    summary = Summary(out_dir / "summary.csv", resume=resume, keep=names)
    todo = [p for p in files if p.name not in summary.done]
    if console is not None and resume:
        console.print(f"resume: {len(files) - len(todo)} photo(s) already done, {len(todo)} to edit")
    caps = max_photo_seconds is not None or max_photo_memory is not None
    if caps and engine == "local" and not job.portable:
        raise UserError("per-photo caps run photos in worker processes, which need the model and critic "
                        "named by a string; pass max_photo_seconds=None and max_photo_memory=None")
    rows = list(summary.done.values())
    pool = None
    if caps and engine == "local":
        pool = Pool(workers, goal, out_dir, job, max_photo_seconds, max_photo_memory)
        pool.start(len(todo))  # the workers import torch while this process goes on
        stream: Iterator[dict[str, Any]] = pool.map(todo)
    else:
        stream = _in_process(todo, goal, out_dir, job, workers, engine, ray_address)
    try:
        summary.open()
        with Progress(console=console, transient=False) as progress:
            task = progress.add_task(f"editing {len(todo)} photos", total=len(todo))
            for row in stream if todo else ():
                summary.append(row)
                rows.append(row)
                progress.advance(task)
    finally:
        summary.close()
        if pool is not None:
            pool.close()
    rows.sort(key=lambda r: r["file"])
    summary.rewrite(rows)
    if console is not None:
        _print_table(console, rows, out_dir)
    return rows


def exit_status(rows: list[dict[str, Any]]) -> int:
    """The batch's exit status: its worst photo's (`ExitCode.worst`)."""
    return ExitCode.worst([int(r["exit_status"]) for r in rows])


def _in_process(files: list[Path], goal: str, out_dir: Path, job: Job, workers: int, engine: str,
                ray_address: str | None) -> Iterator[dict[str, Any]]:
    from agent.engines import make_engine

    def one(path: Path) -> dict[str, Any]:
        return edit_one(path, goal, out_dir, job)

    # Pillow and OpenCV follow the batch's limit in this process, for this batch only
    with pixel_limit(job.options.max_pixels):
        runner = make_engine(engine, workers, ray_address)
        try:
            yield from runner.map(one, [(p,) for p in files])
        finally:
            if hasattr(runner, "close"):
                runner.close()


# ------------------------------------------------------------------ summary.csv


class Summary:
    """summary.csv, appended one fsynced row at a time; on resume, the rows already done."""

    def __init__(self, path: Path, *, resume: bool, keep: set[str]) -> None:
        self.path = path
        self.fd: int | None = None
        self.done: dict[str, dict[str, Any]] = {}
        if resume and path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            if not text.endswith("\n"):  # a batch killed mid-write leaves a torn last line
                text = text[: text.rfind("\n") + 1]
            for r in csv.DictReader(io.StringIO(text)):
                out = r.get("output") or ""
                if (r.get("file") in keep and r.get("status") == "ok" and (r.get("exit_status") or "").isdigit()
                        and out and Path(out).is_file()):
                    self.done[r["file"]] = {k: r.get(k, "") for k in CSV_FIELDS}

    def open(self) -> None:
        """Start the file afresh: the header and the rows already done, then appends."""
        self.rewrite(sorted(self.done.values(), key=lambda r: r["file"]))
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def append(self, row: dict[str, Any]) -> None:
        assert self.fd is not None
        os.write(self.fd, _csv([row], header=False))  # one write per row: a kill tears at most the last
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def rewrite(self, rows: list[dict[str, Any]]) -> None:
        from tools.io import atomic_write_bytes

        atomic_write_bytes(self.path, _csv(rows, header=True))


def _csv(rows: list[dict[str, Any]], *, header: bool) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _print_table(console: Any, rows: list[dict[str, Any]], out_dir: Path) -> None:
    from rich.table import Table

    table = Table(title=f"batch: {sum(r['status'] == 'ok' for r in rows)}/{len(rows)} edited")
    for col in ("file", "status", "targets", "structure", "L* before->after", "peak MB", "note"):
        table.add_column(col, overflow="fold")
    for r in rows:
        ok = r["status"] == "ok"
        table.add_row(r["file"], r["outcome"] if ok else f"[red]{r['status']}[/]",
                      f"{r['targets_met']}/{r['targets_total']}" if ok else "-",
                      str(r.get("structure", "-")),
                      f"{r['mean_L_before']} -> {r['mean_L_after']}" if ok else "-",
                      str(r.get("peak_mb") or "-"),
                      str(r.get("stop_reason", "")) if ok else str(r.get("error", ""))[:160])
    console.print(table)
    console.print(f"summary: {out_dir / 'summary.csv'}")
