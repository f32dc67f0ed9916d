"""Running one op for the loop: on a worker thread, within a timeout, retried when memory ran out.

Whatever the op does comes back as a value or a typed `agent.protocol.ExecutionFailed` (cause
"timeout", "out_of_memory", "not_finite" or "error"); a `ToolError` (bad arguments) passes through.
Python cannot stop a thread: a hung op keeps its thread until it returns, and its result is dropped.
"""

from __future__ import annotations

import gc
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from agent.protocol import ExecutionFailed
from tools.registry import ToolError

RETRY_PAUSE = 0.05  # seconds; retry n waits a random 0..RETRY_PAUSE * 2**n (jitter)


class LateOp(Exception):
    """The op did not finish in the time given."""


def run_op(name: str, op: Callable[[], Any], *, timeout: float, seconds_left: Callable[[], float | None],
           retries: int) -> Any:
    """op() on a worker thread within `timeout` and the time left; faults become ExecutionFailed."""
    for attempt in range(retries + 1):
        left = seconds_left()
        wait = timeout if left is None else max(0.0, min(timeout, left))
        try:
            out = within(op, wait)
        except LateOp:
            why = "the op timeout" if wait >= timeout else "the time budget ends"
            raise ExecutionFailed(f"{name} did not finish within {wait:.1f} s ({why}); it is abandoned and "
                                  "will not be run again in this edit", tool=name, cause="timeout") from None
        except ToolError:
            raise
        except (MemoryError, torch.OutOfMemoryError) as exc:
            if attempt == retries:
                raise ExecutionFailed(f"{name} ran out of memory ({attempt + 1} tries): {str(exc)[:120]}; "
                                      "try a smaller region or another tool", tool=name,
                                      cause="out_of_memory") from exc
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            time.sleep(random.uniform(0, RETRY_PAUSE * 2 ** attempt))
            continue
        except Exception as exc:  # a crashing op must not end the edit: the model is told once
            raise ExecutionFailed(f"{name} failed: {type(exc).__name__}: {str(exc)[:160]}; it will not be "
                                  "run again in this edit, use another tool", tool=name, cause="error") from exc
        image = getattr(out, "image", out)
        if isinstance(image, torch.Tensor) and image.is_floating_point() and not bool(image.isfinite().all()):
            raise ExecutionFailed(f"{name} produced NaN or infinite values with these arguments; the result "
                                  "is discarded, try other values or another tool", tool=name, cause="not_finite")
        return out
    raise AssertionError("unreachable")


def within(op: Callable[[], Any], seconds: float) -> Any:
    """op() on a daemon thread, waiting at most `seconds`; a late op runs on and its result is dropped."""
    box: dict[str, Any] = {}
    grad = torch.is_grad_enabled()  # grad mode is per thread; the op sees the caller's

    def work() -> None:
        try:
            with torch.set_grad_enabled(grad):
                box["out"] = op()
        except BaseException as exc:  # handed to the waiting thread, which decides
            box["exc"] = exc

    worker = threading.Thread(target=work, name="imagent-op", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise LateOp
    if "exc" in box:
        raise box["exc"]
    return box["out"]
