"""`make soak`: a 200-photo batch with ~2 % pathological inputs, killed part-way and resumed.

Checks that each bad photo fails alone with its reason, the rest edit, peak memory is
reported per photo, and that SIGKILL + `--resume` ends with one complete summary.csv.
Not collected by pytest (benchmarks/). Prints the figures; exits 1 if a check fails.
"""

from __future__ import annotations

import csv
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from tests.helpers import png_bytes

ROOT = Path(__file__).resolve().parents[1]
N = 200
MEMORY_CAP = "256M"
# file -> (status, words its error must hold)
BAD = {
    "bad_truncated.jpg": ("unreadable", "damaged or truncated"),
    "bad_bomb.png": ("unreadable", "over the 100 MP limit; pass --max-pixels or set IMAGENT_MAX_PIXELS"),
    "bad_huge.png": ("over_cap", "per-photo memory cap"),
    "bad_notimage.png": ("unreadable", "a text file, not a raster image"),
    "bad_empty.png": ("unreadable", "empty (0 bytes)"),
}






def make_photos(src: Path) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(N - len(BAD)):
        base = rng.uniform(20, 120, 3)
        grad = np.linspace(0, 60, 96)[None, :, None]
        a = np.clip(base + grad + rng.normal(0, 8, (64, 96, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(src / f"p{i:03d}.{'jpg' if i % 3 else 'png'}")
    jpg = (src / "p001.jpg").read_bytes()
    (src / "bad_truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
    (src / "bad_bomb.png").write_bytes(png_bytes(40_000, 40_000, zlib.compress(b"\x00" * 64)))  # 1,600 MP header
    (src / "bad_huge.png").write_bytes(png_bytes(6000, 6000))  # 36 MP valid, ~100 KB: over the memory cap
    (src / "bad_notimage.png").write_text("this is not a photo\n")
    (src / "bad_empty.png").write_bytes(b"")


def rows(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((out / "summary.csv").open())) if (out / "summary.csv").is_file() else []


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="imagent-soak-"))
    src, out = tmp / "in", tmp / "out"
    src.mkdir()
    make_photos(src)
    cmd = [sys.executable, "-c", "import sys; from agent.cli import main; main()", "batch", str(src), "-g",
           "brighten it", "-o", str(out), "--workers", "2", "--max-photo-memory", MEMORY_CAP,
           "--max-photo-seconds", "120"]
    t0 = time.monotonic()
    batch = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(rows(out)) < N // 3 and batch.poll() is None:
        time.sleep(0.2)
    os.kill(batch.pid, signal.SIGKILL)
    batch.wait()
    killed_after = len(rows(out))
    t_kill = time.monotonic() - t0
    t1 = time.monotonic()
    res = subprocess.run([*cmd, "--resume"], cwd=ROOT, capture_output=True, text=True)
    t_resume = time.monotonic() - t1
    final = rows(out)
    by_file = {r["file"]: r for r in final}
    problems = []
    if len(final) != N or len(by_file) != N:
        problems.append(f"summary.csv has {len(final)} rows for {len(by_file)} files, expected {N}")
    for name, (status, says) in BAD.items():
        r = by_file.get(name, {})
        if r.get("status") != status or says not in r.get("error", ""):
            problems.append(f"{name}: {r.get('status')!r} {r.get('error')!r}")
    good = [r for f, r in by_file.items() if f not in BAD]
    not_ok = [r["file"] for r in good if r["status"] != "ok" or not Path(r["output"]).is_file()]
    if not_ok:
        problems.append(f"{len(not_ok)} good photos not edited: {not_ok[:5]}")
    peaks = [float(r["peak_mb"]) for r in good if r.get("peak_mb")]
    if len(peaks) != len(good):
        problems.append(f"peak memory missing for {len(good) - len(peaks)} photos")
    if res.returncode != 2:
        problems.append(f"resumed batch exit status {res.returncode}, expected 2 (the worst photo: unreadable)")
    print(f"soak: {N} photos ({len(BAD)} pathological) in {tmp}")
    print(f"  killed (SIGKILL) after {t_kill:.1f} s with {killed_after} rows in summary.csv; "
          f"--resume took {t_resume:.1f} s, exit status {res.returncode}")
    print(f"  final summary: {len(final)} rows, {sum(r['status'] == 'ok' for r in final)} ok")
    for name in BAD:
        r = by_file.get(name, {})
        print(f"  {name}: {r.get('status')} ({r.get('seconds')} s): {r.get('error', '')[:150]}")
    if peaks:
        print(f"  peak memory per photo (worker RSS): median {statistics.median(peaks):.0f} MB, "
              f"max {max(peaks):.0f} MB; photo seconds median "
              f"{statistics.median(float(r['seconds']) for r in good):.2f}")
    problems += kill_resume_cycles(50)
    for p in problems:
        print(f"  FAIL {p}")
    return 1 if problems else 0


def kill_resume_cycles(n: int) -> list[str]:
    """The session store's SIGKILL test (tests/agent/test_sessions.py), run for n kill/resume
    cycles instead of 12: every committed version must survive every kill."""
    env = {**os.environ, "IMAGENT_SOAK_KILLS": str(n)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                           "tests/agent/test_sessions.py", "-k", "sigkill_mid_turn"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    said = [ln for ln in done.stdout.splitlines() if "SIGKILL x" in ln]
    print(f"  sessions: {said[0].strip() if said else 'no summary line'}")
    return [] if done.returncode == 0 else [f"{n} session kill/resume cycles: {done.stdout[-1500:]}"]


if __name__ == "__main__":
    sys.exit(main())
