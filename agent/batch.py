"""Batch enhancement: every photo of a folder toward one goal; one bad file fails alone.

With a per-photo cap (`max_photo_seconds`, `max_photo_memory`) each photo is edited in a
pool of long-lived worker processes (`python -m agent.batch`), so a photo over a cap can be
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
import json
import os
import re
import selectors
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.configure import edit_options
from agent.errors import ExitCode, UserError
from agent.options import EditOptions
from agent.runtime import pixel_limit, worker_env

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}
CSV_FIELDS = ["file", "status", "outcome", "exit_status", "output", "targets_met", "targets_total", "structure",
              "mean_L_before", "mean_L_after", "cast_before", "cast_after", "steps", "seconds", "peak_mb",
              "stop_reason", "error"]
# status of a photo that did not edit -> its exit status (`ExitCode`); an edited one has its outcome's
FAILED_EXIT = {"unreadable": ExitCode.USAGE, "over_cap": ExitCode.USAGE, "failed": ExitCode.ERROR}
# The least memory loading can take: an 8-bit decode (3-4 B/px) plus the float32 (1,3,H,W) copy
# (12 B/px). A photo whose header says it needs more than its cap is refused before decoding.
LOAD_BYTES_PER_PIXEL = 16
HOOK_ENV = "IMAGENT_BATCH_HOOK"  # "module:function", called with each photo's path (tests inject faults)


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


# ------------------------------------------------------------------ one photo


@dataclass(frozen=True)
class Job:
    """What every photo of a batch is edited with: the models and the resolved options."""

    model: str | Any
    critic: str | Any | None
    base_url: str | None
    options: EditOptions

    @property
    def portable(self) -> bool:
        """Whether a worker process can rebuild it (models named by strings)."""
        return all(m is None or isinstance(m, str) for m in (self.model, self.critic))

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "critic": self.critic, "base_url": self.base_url,
                "options": self.options.model_dump(mode="json")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        return cls(data["model"], data["critic"], data["base_url"], EditOptions.model_validate(data["options"]))

    def edit(self, path: Path | Any, goal: str) -> Any:
        from agent.api import edit

        return edit(path, goal, model=self.model, critic=self.critic, base_url=self.base_url, options=self.options)


def edit_one(path: Path, goal: str, out_dir: Path, job: Job, memory: int | None = None) -> dict[str, Any]:
    """Edit one photo into out_dir; a row for summary.csv, never an exception."""
    from tools.io import ImageLoadError, read_header

    t0 = time.perf_counter()
    row: dict[str, Any] = {"file": path.name}
    try:
        if memory is not None:
            _, w, h = read_header(path, max_pixels=job.options.max_pixels)
            if w * h * LOAD_BYTES_PER_PIXEL > memory:
                raise _OverCap(f"{path.name} is {w:,} x {h:,} px: loading it alone needs about "
                               f"{_size(w * h * LOAD_BYTES_PER_PIXEL)}, over the {_size(memory)} per-photo "
                               f"memory cap; {_MEMORY_FIX}")
        _hook(path)
        result = job.edit(path, goal)
        out = result.save(out_dir / path.name)
        s = result.score
        row.update(status="ok", outcome=result.outcome, exit_status=result.exit_code, output=str(out),
                   targets_met=s.targets_met, targets_total=s.targets_total, structure=round(s.structure, 4),
                   mean_L_before=round(result.stats_before.mean_L, 2), mean_L_after=round(result.stats_after.mean_L, 2),
                   cast_before=round(result.stats_before.cast, 2), cast_after=round(result.stats_after.cast, 2),
                   steps=len(result.recipe.steps), stop_reason=result.stop_reason)
    except _OverCap as exc:
        row.update(status="over_cap", error=str(exc))
    except Exception as exc:  # one bad file must not end the batch; the row says why
        if memory is not None and _out_of_memory(exc):
            row.update(status="over_cap", error=f"{path.name} needed more than the {_size(memory)} per-photo "
                       f"memory cap ({type(exc).__name__}: {_first_line(exc)}); {_MEMORY_FIX}")
        elif isinstance(exc, ImageLoadError):
            row.update(status="unreadable", error=str(exc))
        else:
            row.update(status="failed", error=f"{type(exc).__name__}: {_first_line(exc)}")
    if row["status"] != "ok":
        row.update(outcome=row["status"], exit_status=FAILED_EXIT[row["status"]])
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


_MEMORY_FIX = "raise it with --max-photo-memory (IMAGENT_MAX_PHOTO_MEMORY) or shrink the photo"
_TIME_FIX = "raise it with --max-photo-seconds (IMAGENT_MAX_PHOTO_SECONDS)"


class _OverCap(Exception):
    pass


def _out_of_memory(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc} {exc.__cause__}".lower()
    return isinstance(exc, MemoryError) or any(
        s in text for s in ("memory available", "can't allocate memory", "insufficient memory",
                            "out of memory", "bad_alloc", "cannot allocate memory"))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def _hook(path: Path) -> None:
    spec = os.environ.get(HOOK_ENV)
    if spec:
        import importlib

        module, _, name = spec.partition(":")
        getattr(importlib.import_module(module), name)(path)


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


# ------------------------------------------------------------------ worker processes


class Pool:
    """`workers` long-lived worker processes; one over its time cap is killed and replaced."""

    def __init__(self, workers: int, goal: str, out_dir: Path, job: Job, seconds: float | None,
                 memory: int | None) -> None:
        self.size = max(1, workers)
        self.seconds = seconds
        self.live: list[_Worker] = []
        self.idle: list[_Worker] = []
        self.config = {"goal": goal, "out_dir": str(out_dir), "job": job.to_json(), "memory": memory}
        self.env = worker_env(self.size, job.options.max_pixels)

    def _spawn(self) -> _Worker:
        proc = subprocess.Popen([sys.executable, "-m", "agent.batch"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=self.env)
        w = _Worker(proc)
        w.send(self.config)
        return w

    def start(self, photos: int) -> None:
        """Spawn the workers for `photos` photos now, so their start overlaps this process's."""
        while len(self.live) < min(self.size, photos):
            w = self._spawn()
            self.live.append(w)
            self.idle.append(w)

    def close(self) -> None:
        for w in self.live:
            w.close()
        self.live, self.idle = [], []

    def map(self, files: list[Path]) -> Iterator[dict[str, Any]]:
        queue = deque(files)
        sel = selectors.DefaultSelector()
        idle, live = self.idle, self.live
        for w in live:
            sel.register(w.fd, selectors.EVENT_READ, w)
        try:
            while queue or any(w.job for w in live):
                while queue and (idle or len(live) < self.size):
                    w = idle.pop() if idle else self._spawn()
                    if w not in live:
                        live.append(w)
                        sel.register(w.fd, selectors.EVENT_READ, w)
                    w.job, w.started = queue.popleft(), None
                    w.send({"file": str(w.job)})
                timeout = min((w.started + self.seconds - time.monotonic() for w in live
                               if w.job and w.started and self.seconds), default=None)
                for key, _ in sel.select(None if timeout is None else max(0.0, timeout)):
                    w = key.data
                    for msg in w.read():
                        if "started" in msg:
                            w.started = time.monotonic()
                        elif "row" in msg:
                            w.job = None
                            idle.append(w)
                            yield msg["row"]
                    if w.dead and w.job:  # the worker died under its photo: that photo fails alone
                        yield self._lost(w, f"the worker editing it died ({w.why()})")
                for w in [w for w in live if w.job and w.started and self.seconds]:
                    if time.monotonic() - w.started >= self.seconds:
                        peak = w.peak_mb()
                        w.kill()
                        yield self._lost(w, f"still running after the {self.seconds:g} s per-photo time cap; "
                                         f"stopped; {_TIME_FIX}", "over_cap", peak)
                for w in [w for w in live if w.dead]:
                    live.remove(w)
                    sel.unregister(w.fd)
                    if w in idle:
                        idle.remove(w)
        finally:
            self.close()
            sel.close()

    def _lost(self, w: _Worker, why: str, status: str = "failed", peak: float | None = None) -> dict[str, Any]:
        path, w.job = w.job, None
        assert path is not None
        seconds = round(time.monotonic() - w.started, 2) if w.started else 0.0
        w.dead = True
        return {"file": path.name, "status": status, "outcome": status, "exit_status": FAILED_EXIT[status],
                "error": f"{path.name}: {why}", "seconds": seconds, "peak_mb": peak}


class _Worker:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        assert proc.stdout is not None and proc.stdin is not None
        self.fd = proc.stdout.fileno()
        self.buf = b""
        self.job: Path | None = None
        self.started: float | None = None
        self.dead = False

    def send(self, msg: dict[str, Any]) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.dead = True

    def read(self) -> list[dict[str, Any]]:
        data = os.read(self.fd, 1 << 16)
        if not data:
            self.dead = True
            self.proc.wait()
            return []
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def why(self) -> str:
        code = self.proc.returncode
        if code is not None and code < 0:
            import signal

            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"

    def peak_mb(self) -> float | None:
        return _status_mb(f"/proc/{self.proc.pid}/status", "VmHWM")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.dead = True

    def close(self) -> None:
        if self.proc.poll() is None:
            with_stdin = self.proc.stdin
            if with_stdin is not None and not self.job:
                with_stdin.close()  # end of work: the worker returns from its loop
                try:
                    self.proc.wait(timeout=10)
                    return
                except subprocess.TimeoutExpired:
                    pass
            self.kill()


def _status_mb(path: str, field: str) -> float | None:
    try:
        found = re.search(rf"^{field}:\s+(\d+) kB", Path(path).read_text(), re.M)
    except OSError:
        return None
    return round(int(found.group(1)) / 1024, 1) if found else None


def _worker() -> None:
    """A worker's life: read its config, warm up, then edit one photo per line on stdin."""
    import resource

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # a stray print must not corrupt the protocol
    sys.stdout = sys.stderr

    def send(msg: dict[str, Any]) -> None:
        proto.write(json.dumps(msg, default=str) + "\n")

    cfg = json.loads(sys.stdin.readline())
    job, memory, out_dir = Job.from_json(cfg["job"]), cfg["memory"], Path(cfg["out_dir"])
    from tools.io import set_pixel_limit

    if job.options.max_pixels:  # this process edits only the batch's photos
        set_pixel_limit(job.options.max_pixels)
    _warm_up(cfg["goal"], job)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    for line in sys.stdin:
        path = Path(json.loads(line)["file"])
        send({"started": path.name})
        with suppress(OSError), open("/proc/self/clear_refs", "w") as f:  # VmHWM: this photo's peak
            f.write("5")
        if memory is not None:
            base = int(_status_mb("/proc/self/status", "VmSize") or 0) << 20
            resource.setrlimit(resource.RLIMIT_AS, (min(base + memory, hard) if hard > 0 else base + memory, hard))
        try:
            row = edit_one(path, cfg["goal"], out_dir, job, memory)
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        row["peak_mb"] = _status_mb("/proc/self/status", "VmHWM")
        send({"row": row})


def _warm_up(goal: str, job: Job) -> None:
    """Load what every photo needs (models, thread pools) before any cap counts; only with
    local models, so no paid call is made."""
    import torch

    torch.ones(512, 512).sum()
    if job.model in (None, "offline") and job.critic in (None, "offline", "none"):
        try:
            job.edit(torch.full((1, 3, 64, 64), 0.3), goal)
        except Exception:  # the first photo will say what is wrong, in its row
            pass


if __name__ == "__main__":
    _worker()
