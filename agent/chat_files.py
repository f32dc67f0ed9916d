"""What a chat session writes: a version as an image, its recipe with its masks, a .cube LUT,
an export folder, a contact sheet, a side-by-side comparison.

A file is replaced only when asked (`overwrite=True`, or a person's yes to /save and /export);
the photo the session started from never.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from agent.chat_requests import Reply, version_number
from agent.errors import UserError
from agent.images import contact_sheet
from agent.sessions import SessionError
from tools.io import atomic_write_bytes, check_output_path, save_image
from tools.lut3d import recipe_to_cube


class SessionFiles:
    """The files of a `agent.chat.Session`: a mixin over the session's `store`, `image(n)`,
    `recipe(n)`, `render(n)`, `versions`, `head`, `folder` and `ask` (a person's yes/no)."""

    def compare(self, vid: int | str = 0, path: str | Path | None = None) -> Reply:
        """Side-by-side preview of version `vid` (default the original) and the current one, as PNG."""
        n, head = version_number(vid), self.store.head
        a, b = self.image(n), self.image(head)
        gap = torch.ones(1, 3, a.shape[-2], max(2, a.shape[-1] // 64))
        out = Path(path) if path else self.folder / "previews" / f"compare-v{n}-v{head}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        save_image(torch.cat([a, gap, b], -1), out)
        return Reply(f"v{n} (left) | v{head} (right): {out}", kind="command", path=out, version=self.head)

    def save(self, path: str | Path, *, version: int | str | None = None, quality: int = 95,
             overwrite: bool = False) -> Path:
        """Render a version (default the current) at full resolution and write it atomically.

        An existing file is replaced only with overwrite=True; the session's source photo never."""
        path = Path(path)
        if self._target_exists(path) and not overwrite:
            raise UserError(f"{path} exists; save under another name, or pass overwrite=True to replace it")
        deep = path.suffix.lower() in (".png", ".tif", ".tiff")
        alpha = self.store.alpha()
        # overwrite=False: save_image then only guards the source, which stays refused whatever was asked
        return save_image(self.render(version), path, alpha=alpha, quality=quality,
                          bit_depth=int(self.store.meta("bit_depth", 8)) if deep else 8,
                          overwrite=False, source=self.store.meta("source"))

    def _target_exists(self, path: Path, image: bool = True) -> bool:
        """Whether `path` exists; the session's source photo is refused outright, and an image path
        is checked (folder, extension) before anyone is asked about it."""
        source = self.store.meta("source")
        if image:
            check_output_path(path, source=source)
        elif source and path.exists() and Path(source).exists() and path.samefile(source):
            raise UserError(f"refusing to overwrite the original {source} with {path}; export somewhere else")
        return path.exists()

    def _save_reply(self, path: Path) -> Reply:
        """/save: an existing file is replaced only after a person says yes."""
        if self._target_exists(path):
            question = f"{path} exists; overwrite? [y/N]"
            if self.ask is None or not self.ask(question):
                why = "" if self.ask is not None else " (no terminal to ask: the answer is no)"
                return Reply(f"{question} no{why}: {path} is unchanged; /save to another path",
                             kind="error", version=self.head)
        path = self.save(path, overwrite=True)
        return Reply(f"wrote {path} ({self.head} at full resolution)", kind="command", path=path)

    def export(self, dest: str | Path, *, overwrite: bool = False) -> list[Path]:
        """Write the current image, its recipe (with its masks) and a contact sheet of versions.

        Files already in `dest` are replaced only with overwrite=True (all are checked first, so a
        refused export writes nothing); the session's source photo never."""
        dest = Path(dest)
        stem = Path(self.store.meta("source") or "image").stem
        used = self._used_masks(self.recipe())
        image, recipe_path = dest / f"{stem}-{self.head}.png", dest / f"{stem}-{self.head}.recipe.json"
        targets = [image, *(dest / f"mask-{n}.png" for n in used), recipe_path, dest / "contact-sheet.png"]
        exist = [p.name for p in targets if dest.is_dir() and self._target_exists(p, p != recipe_path)]
        if exist and not overwrite:
            raise UserError(f"{dest} already holds {', '.join(exist)}; pass --overwrite to replace "
                            f"{'it' if len(exist) == 1 else 'them'}, or export to another folder")
        dest.mkdir(parents=True, exist_ok=True)
        written = [self.save(image, overwrite=True), *self.write_recipe(recipe_path)]
        written.append(save_image(self.contact_sheet(), dest / "contact-sheet.png", source=self.store.meta("source")))
        return written

    def write_recipe(self, path: str | Path, *, version: int | str | None = None) -> list[Path]:
        """Write a version's recipe (default the current) to `path` and the masks it uses beside it
        (mask-NAME.png, 16-bit), so `imagent apply` replays it; replaces them. Returns the files."""
        path = Path(path)
        rec, masks = self.recipe(version), self.store.masks()
        written = []
        for name in self._used_masks(rec):
            p = save_image(masks[name].expand(-1, 3, -1, -1), path.parent / f"mask-{name}.png", bit_depth=16,
                           source=self.store.meta("source"))
            rec.masks[name] = {"path": p.name}
            written.append(p)
        written.append(atomic_write_bytes(path, rec.to_json().encode()))
        return written

    def cube(self, version: int | str | None = None, size: int = 33) -> str:
        """A version's recipe (default the current) as .cube text; RecipeError names a step a LUT
        cannot hold (spatial, masked or image-dependent)."""
        n = self.store.head if version is None else version_number(version)
        stem = Path(self.store.meta("source") or "image").stem
        return recipe_to_cube(self.recipe(n), size=size, title=f"imagent {stem} v{n}")

    def _export_reply(self, arg: str) -> Reply:
        """/export FILE.cube: an existing file is replaced only after a person says yes."""
        path = Path(arg).expanduser()
        if path.suffix.lower() != ".cube":
            raise UserError("/export writes a 3-D LUT: give a .cube path, e.g. /export look.cube "
                            "(/save writes the image, /recipe shows the recipe)")
        text = self.cube()  # before asking: a recipe a LUT cannot hold is refused first
        if self._target_exists(path, image=False):
            question = f"{path} exists; overwrite? [y/N]"
            if self.ask is None or not self.ask(question):
                return Reply(f"{question} no: {path} is unchanged; /export to another path", kind="error",
                             version=self.head)
        atomic_write_bytes(path, text.encode())
        return Reply(f"wrote {path} ({self.head} as a 33^3 .cube LUT)", kind="command", path=path)

    def _used_masks(self, rec: Any) -> list[str]:
        masks = self.store.mask_hashes()
        used = sorted({s.mask for s in rec.steps if s.mask})
        for name in used:
            if name not in masks or not re.fullmatch(r"[\w-]+", name):
                raise SessionError(f"session {self.folder}: the recipe names a mask {name!r} the session does not "
                                   "hold; the database may be tampered with, so nothing was exported")
        return used

    def contact_sheet(self, thumb: int = 192, columns: int = 6) -> torch.Tensor:
        """Every version as a labelled thumbnail in a grid (the current one framed)."""
        items = [(self.image(r.id), r.name + (f" <- v{r.parent}" if r.parent is not None else " original"),
                  r.id == self.store.head) for r in self.versions]
        return contact_sheet(items, thumb, columns)
