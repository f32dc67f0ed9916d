"""A user's .cube files in recipes: read by the agent layer, confined beside the recipe, checked by hash.

Tools never read files: `tools.lut3d.remember_cube` keeps a parsed LUT under the sha256 of the
file's bytes, and the `lut3d` step names the file (relative to the recipe) and that hash. Replaying a
recipe reads the file again and refuses one whose hash differs: the pixels would differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.errors import UserError


def beside_recipe(base: Path, raw: str, what: str, kind: str, file: str) -> Path:
    """`raw`, a path relative to a recipe's folder, refused when it leads out of that folder."""
    import os

    folder = Path(os.path.realpath(base))
    real = Path(os.path.realpath(folder / raw))
    if Path(raw).is_absolute() or not real.is_relative_to(folder):
        raise UserError(f"{what}: {raw!r} is outside the recipe's folder; "
                        f"{kind} must sit beside the recipe (copy the {file} there and name it relatively)")
    return real


def load_recipe_cubes(rec: Any, base: Path) -> None:
    """Read the .cube files a recipe's `lut3d` steps name (beside the recipe, like masks) and hand
    them to the tool; a file whose sha256 is not the recipe's is refused: the replay would differ."""
    for i, step in enumerate(rec.steps, 1):
        name, digest = step.params.get("cube", ""), step.params.get("sha256", "")
        if step.tool != "lut3d" or not digest:
            continue
        what = f"recipe step {i} (lut3d)"
        path = beside_recipe(base, str(name), what, ".cube files", ".cube")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"{what}: cannot read {name!r} beside the recipe ({exc.strerror or exc}); "
                            "copy the .cube the recipe was made with there") from None
        found = _remember(data, str(path))
        if found != digest:
            raise UserError(f"{what}: {name!r} is not the .cube the recipe was made with (sha256 {found[:12]}..., "
                            f"the recipe wants {digest[:12]}...); put the original back or redo the step with --look")


def look_step(path: Path, beside: Path | None = None) -> Any:
    """A `lut3d` step for the user's .cube (read and checked now); `beside`: a recipe that will name it,
    whose folder must not hold a different file of the same name."""
    from tools.recipe import Step

    if path.suffix.lower() != ".cube":
        raise UserError(f"--look {path}: expected a .cube file (Adobe/Resolve 3-D LUT)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"--look {path}: cannot read it ({exc.strerror or exc})") from None
    digest = _remember(data, f"--look {path}")
    there = beside.parent / path.name if beside is not None else None
    if there is not None and there.exists() and there.read_bytes() != data:
        raise UserError(f"--look {path}: the recipe's folder already holds a different {path.name}; "
                        "rename one of them")
    return Step.of("lut3d", {"cube": path.name, "sha256": digest})


def _remember(data: bytes, where: str) -> str:
    from tools.lut3d import remember_cube

    try:
        return remember_cube(data, where)
    except ValueError as exc:
        raise UserError(f"{exc}; not a 3-D .cube LUT imagent can read") from None


def copy_beside(look: Path, recipe: Path) -> None:
    """Put the .cube beside a recipe that names it (`look_step` made sure no other file has its name)."""
    from tools.io import atomic_write_bytes

    there = recipe.parent / look.name
    if not there.exists():
        atomic_write_bytes(there, look.read_bytes())
