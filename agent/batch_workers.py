"""One photo of a batch: edited in this process (`edit_one`) or in a pool of long-lived worker
processes (`Pool`, each `python -m agent.batch_workers`), so a photo over its memory or time
cap can be stopped without stopping the batch (see agent.batch's module doc). A worker imports
torch once, not once per photo.
"""

from __future__ import annotations

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

from agent.errors import ExitCode
from agent.options import EditOptions
from agent.runtime import pixel_policy, worker_env

# status of a photo that did not edit -> its exit status (`ExitCode`); an edited one has its outcome's
FAILED_EXIT = {"unreadable": ExitCode.USAGE, "over_cap": ExitCode.USAGE, "failed": ExitCode.ERROR}
# The least memory loading can take: an 8-bit decode (3-4 B/px) plus the float32 (1,3,H,W) copy
# (12 B/px). A photo whose header says it needs more than its cap is refused before decoding.
LOAD_BYTES_PER_PIXEL = 16
HOOK_ENV = "IMAGENT_BATCH_HOOK"  # "module:function", called with each photo's path (tests inject faults)


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
        proc = subprocess.Popen([sys.executable, "-m", "agent.batch_workers"], stdin=subprocess.PIPE,
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
    pixel_policy(job.options.max_pixels)  # this process edits only the batch's photos
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
