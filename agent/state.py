"""EditSession: the original, an immutable graph of versions, named masks, the current one.

The agent iterates on a preview (long side 1024 px by default); every version
keeps the recipe that leads to it from the original, so the chosen version is
rendered once at full resolution by replaying that recipe. Originals are never
modified: tools are pure and versions are new tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from agent.options import DEFAULT_PREVIEW
from tools.recipe import Recipe, apply_recipe, resize_mask
from tools.registry import Params, ToolError, check_mask, get


def preview_of(image: torch.Tensor, long_side: int = DEFAULT_PREVIEW) -> torch.Tensor:
    """Downscale (antialiased) so the long side is at most `long_side`; smaller images are kept."""
    h, w = image.shape[-2:]
    scale = long_side / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    out = torch.nn.functional.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
    return out.clamp_(0, 1)


@dataclass
class Version:
    """An immutable node of the history graph."""

    id: str
    image: torch.Tensor  # preview resolution
    recipe: Recipe
    parent: str | None = None
    stats: Any = None  # tools.analysis.Stats
    score: Any = None  # agent.scoring.Score
    critique: Any = None  # agent.critics.Critique, when a critic looked at it
    note: str = ""


# The measurements that summarise a version (its stats' and score's headline numbers): what a
# chat session stores per version and what the loop reports a step changed.
KEY_METRICS = ("mean_L", "p05_L", "p95_L", "clipped_shadows_pct", "clipped_highlights_pct", "rms_contrast",
               "colorfulness", "cast_a", "cast_b", "mean_saturation", "noise_sigma", "sharpness")


def key_metrics(v: Version) -> dict[str, float]:
    """A version's KEY_METRICS (those its stats have), its structure and combined score, rounded."""
    out: dict[str, float] = {}
    if v.stats is not None:
        out = {k: round(float(getattr(v.stats, k)), 4) for k in KEY_METRICS if hasattr(v.stats, k)}
    if v.score is not None:
        out["structure"] = round(float(v.score.structure), 4)
        out["combined"] = round(float(v.score.combined), 4)
    return out


def named_mask(name: str, mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """`mask` checked and resampled to `image`'s size, under a valid name (letters, digits, - or _)."""
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ToolError(f"mask name {name!r} must be letters, digits, '-' or '_'")
    return check_mask(resize_mask(mask, image), image, "mask")


@dataclass
class EditSession:
    """Holds the original (full resolution and preview), the versions and the named masks."""

    original_full: torch.Tensor
    preview_size: int = DEFAULT_PREVIEW
    versions: dict[str, Version] = field(default_factory=dict)
    masks_full: dict[str, torch.Tensor] = field(default_factory=dict)
    current: str = "v0"
    _made: int = 0  # versions ever made, adopted or not: ids are never reused
    _measured: dict[tuple[str, str | None], Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.original_full = self.original_full.detach()
        preview = preview_of(self.original_full, self.preview_size)
        size = (int(preview.shape[-1]), int(preview.shape[-2]))
        self.versions["v0"] = Version("v0", preview, Recipe(size=size), note="original")

    @property
    def original(self) -> torch.Tensor:
        return self.versions["v0"].image

    @property
    def head(self) -> Version:
        return self.versions[self.current]

    def measure(self, version: str, region: str | None = None) -> Any:
        """`tools.analysis.measure` of a version (inside a mask's bounding box when `region`
        names one), computed once: versions never change, and the goal parser and the loop
        both need the original's (~0.15 s each at 1024 px)."""
        key = (version, region)
        if key not in self._measured:
            from tools.analysis import measure
            from tools.masks import crop_to

            image = self.versions[version].image
            self._measured[key] = measure(image if region is None else crop_to(image, self.mask(region, image)))
        return self._measured[key]

    def add_mask(self, name: str, mask: torch.Tensor) -> None:
        """Register a named mask (any resolution; resampled to the preview and to full size)."""
        self.masks_full[name] = named_mask(name, mask, self.original_full)

    def mask(self, name: str, like: torch.Tensor) -> torch.Tensor:
        if name not in self.masks_full:
            known = ", ".join(sorted(self.masks_full)) or "none defined"
            raise ToolError(f"unknown mask {name!r} (masks: {known})")
        return resize_mask(self.masks_full[name], like)

    def try_step(self, tool: str, params: Params | dict[str, Any] | None, mask: str | None = None) -> Version:
        """Apply one tool to the current version and return the (not yet adopted) new version."""
        t = get(tool)
        if t.read_only:
            raise ToolError(f"{tool} only measures; it does not make a new version")
        p = t.validate(params)
        if mask is not None and not t.supports_mask:
            raise ToolError(f"{tool} cannot be restricted to a mask; call it without `mask`")
        base = self.head
        m = self.mask(mask, base.image) if mask is not None else None
        out = t(base.image, p, mask=m)
        if out.shape != base.image.shape:
            raise ToolError(f"{tool} changes the image size; the agent keeps the original framing")
        self._made += 1
        vid = f"v{self._made}"
        return Version(vid, out, base.recipe.then(tool, p, mask), parent=base.id)

    def adopt(self, version: Version) -> None:
        """Add a version to the graph and make it current."""
        self.versions[version.id] = version
        self.current = version.id

    def checkout(self, vid: str) -> Version:
        if vid not in self.versions:
            raise ToolError(f"no version {vid!r}; versions: {', '.join(self.versions)}")
        self.current = vid
        return self.versions[vid]

    def render(self, vid: str | None = None) -> torch.Tensor:
        """The version at full resolution: its recipe replayed on the original."""
        v = self.versions[vid or self.current]
        return apply_recipe(self.original_full, v.recipe, self.masks_full)
