"""imagent's typed image tools: pure ops over (B,3,H,W) float tensors in [0,1]."""

from __future__ import annotations


def _tune_malloc() -> None:
    # glibc returns every large block to the OS on free, so each 12 MP temporary is
    # page-faulted in again: measured here, keeping them mapped makes torch's
    # pointwise ops up to 9x faster (x + 0.1 at 12 MP: 109 ms -> 12 ms).
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: serve blocks < 1 GiB from the heap
        libc.mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD: do not trim the heap back eagerly
    except (OSError, AttributeError):
        pass  # not glibc (musl, ...): keep the defaults


_tune_malloc()
