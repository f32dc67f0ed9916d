"""Recipes: the ordered, replayable list of tool steps from an original to a version.

A recipe is JSON (darktable's history stack, in spirit): each step names a tool,
the params model VERSION it was written with, the params and an optional mask
name. Replaying the same recipe on the same image gives identical pixels; the
agent iterates on a preview and replays the recipe once on the full-resolution
original. A run of pointwise steps without masks renders in one pass at 12 MP: per-channel
curves only, through one exact 16-bit table per channel; with colour steps among them
(saturation, hue, HSL, ...), through one baked 3-D LUT (`tools.lut3d`, trilinear, 33^3).
`fuse=False` replays op by op, exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools import lut3d
from tools.colorspace import LUT_SIZE, apply_lut
from tools.registry import Params, Tool, ToolError, check_mask, get

RECIPE_FORMAT = 1


class RecipeError(ToolError):
    """A recipe that cannot be read or replayed; the message names the step and the fix."""


class Step(BaseModel):
    """One edit: a tool, the params version it was written with, its params, an optional mask."""

    model_config = ConfigDict(extra="forbid")
    tool: str
    version: int = 1
    params: dict[str, Any] = Field(default_factory=dict)
    mask: str | None = None

    @classmethod
    def of(cls, tool: str, params: Params | dict[str, Any] | None = None, mask: str | None = None) -> Step:
        """A validated step (bad tool or params raise ToolError here, not at replay time)."""
        t = get(tool)
        p = t.validate(params)
        return cls(tool=tool, version=t.params.VERSION, params=p.model_dump(mode="json"), mask=mask)

    def resolve(self) -> tuple[Tool, Params]:
        """The registered tool and validated (migrated if old) params for this step."""
        t = get(self.tool)
        try:
            data = t.params.migrate(dict(self.params), self.version)
        except ToolError as exc:
            raise ToolError(f"{self.tool}: {exc}") from None
        return t, t.validate(data)

    def upgraded(self) -> Step:
        """This step at its tool's current VERSION (params migrated and validated)."""
        t, p = self.resolve()
        if self.version == t.params.VERSION:
            return self
        return self.model_copy(update={"version": t.params.VERSION, "params": p.model_dump(mode="json")})


class Recipe(BaseModel):
    """An ordered list of steps; `masks` maps mask names to where their pixels come from."""

    model_config = ConfigDict(extra="forbid")
    imagent_recipe: int = RECIPE_FORMAT
    steps: list[Step] = Field(default_factory=list)
    masks: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description='mask name -> source, e.g. {"path": "sky.png"}'
    )
    size: tuple[int, int] | None = Field(
        None, description="(width, height) of the image the recipe was made on; pixel-sized "
        "params (blur sigma, sharpen radius, ...) scale with the image on replay"
    )

    def then(self, tool: str, params: Params | dict[str, Any] | None = None, mask: str | None = None) -> Recipe:
        """A new recipe with one more (validated) step; recipes are values."""
        return self.model_copy(update={"steps": [*self.steps, Step.of(tool, params, mask)]})

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str, where: str = "recipe") -> Recipe:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecipeError(f"{where} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or "steps" not in data:
            raise RecipeError(f'{where} is not an imagent recipe: expected an object with "steps"')
        if data.get("imagent_recipe", RECIPE_FORMAT) > RECIPE_FORMAT:
            raise RecipeError(f"{where} uses recipe format {data['imagent_recipe']}; upgrade imagent")
        try:
            recipe = cls.model_validate(data)
        except ValidationError as exc:
            raise RecipeError(f"{where} is malformed: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
        steps = []
        for i, step in enumerate(recipe.steps, 1):
            try:
                steps.append(step.upgraded())  # old versions migrate on load: the recipe is current from here
            except ToolError as exc:
                raise RecipeError(f"{where}, step {i}: {exc}") from None
        return recipe.model_copy(update={"steps": steps})

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RecipeError(f"cannot read recipe {p}: {exc}") from None
        return cls.from_json(text, where=str(p))


def apply_recipe(
    image: torch.Tensor,
    recipe: Recipe,
    masks: dict[str, torch.Tensor] | None = None,
    *,
    fuse: bool = True,
    lut_size: int = lut3d.DEFAULT_SIZE,
) -> torch.Tensor:
    """Replay every step on `image` (B,3,H,W in [0,1]); masks are looked up by name.

    Masks are resampled to the image's size, so a recipe made on a preview replays
    on the full-resolution original. With `fuse`, each run of two or more unmasked
    pointwise steps renders in one pass (`fused_lut` or a `lut_size`^3 3-D LUT, see
    `tools.lut3d` for its measured error); a masked step or a spatial one ends the run.
    """
    masks = masks or {}
    out = image
    factor = 1.0
    if recipe.size is not None:
        factor = max(image.shape[-2:]) / max(recipe.size)
    pending: list[tuple[Tool, Params]] = []

    def flush() -> None:
        nonlocal out
        if len(pending) == 1 or not fuse:
            for t, p in pending:
                out = t(out, p)
        elif len(pending) > 1 and all(t.per_channel for t, _ in pending):
            out = fused_lut(pending, out)  # exact on the 16-bit grid, and faster than the 3-D LUT
        elif len(pending) > 1:
            out = lut3d.apply(out, lut3d.bake(pending, lut_size))
        pending.clear()

    for i, step in enumerate(recipe.steps, 1):
        try:
            tool, params = step.resolve()
        except ToolError as exc:
            raise RecipeError(f"step {i}: {exc}") from None
        params = params.scaled(factor)
        if tool.read_only:
            continue
        if step.mask is None and lut3d.fusable(tool):
            pending.append((tool, params))
            continue
        flush()
        mask = None
        if step.mask is not None:
            if step.mask not in masks:
                known = ", ".join(sorted(masks)) or "none"
                raise RecipeError(f"step {i} ({step.tool}) uses mask {step.mask!r}, which was not given (known: {known})")
            mask = resize_mask(masks[step.mask], out)
        out = tool(out, params, mask=mask)
    flush()
    return out


def fused_lut(steps: list[tuple[Tool, Params]], image: torch.Tensor) -> torch.Tensor:
    """Apply a run of per-channel steps as one 16-bit-indexed lookup table per channel."""
    ramp = torch.linspace(0, 1, LUT_SIZE, dtype=torch.float32, device=image.device)
    table = ramp.view(1, 1, 1, -1).expand(1, 3, 1, LUT_SIZE).contiguous()
    for t, p in steps:
        table = t(table, p)
    return apply_lut(image, table.view(3, LUT_SIZE))


def resize_mask(mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Bring a (B|1,1,h,w) mask onto the image's grid (bilinear, values kept in [0,1])."""
    if mask.ndim == 2:
        mask = mask[None, None]
    if tuple(mask.shape[-2:]) != tuple(image.shape[-2:]):
        mask = torch.nn.functional.interpolate(
            mask.to(image.dtype), size=tuple(image.shape[-2:]), mode="bilinear", align_corners=False
        )
    return check_mask(mask, image, "recipe mask")
