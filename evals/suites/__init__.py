"""Eval suites: cases generated deterministically from a seed, stored as JSON data files.

A suite file (``evals/suites/<name>.json``) holds the generator spec (kind, seed,
count, working size, sources) and the cases it generated. A case names its source
image, how the input is made from it (a list of degradations from
``tools.degrade``, or a hidden look as a recipe of pointwise tools), the goal text,
measurable targets and the structure lock. The clean image (restore) or the
clean image with the look (match) is the reference; retouch cases have none and
are judged by their targets.

Regenerating a suite from its spec gives the stored cases exactly, and building
a case twice gives the same input bytes (`tests/evals/test_suites.py`).
``load_suite(name, images=DIR)`` regenerates the cases over the user's photos.

Inpaint cases paint a hole (drawn from the case's mask seed by `case_mask`) white
into the clean photo; the clean photo is the reference. Chat cases are a
scripted conversation (``turns``) with targets on the image it ends on, relative
to the photo it started from. Gan cases draw faces from the embedded generator
(see `evals.gan`).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from agent.errors import UserError

SUITE_DIR = Path(__file__).parent
SUITE_FORMAT = 1
BUNDLED_SOURCES = ("skimage:astronaut", "skimage:coffee", "skimage:chelsea", "skimage:rocket")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
Kind = Literal["restore", "retouch", "match", "inpaint", "gan", "chat"]


class TargetSpec(BaseModel):
    """A range a Stats metric of the output must land in, absolute or relative to a measured image."""

    model_config = ConfigDict(extra="forbid")
    metric: str
    low: float | None = None
    high: float | None = None
    relative_to: Literal["input", "reference"] | None = None

    def bounds(self, input_stats: Any, reference_stats: Any) -> tuple[float, float]:
        base = 0.0
        if self.relative_to is not None:
            stats = input_stats if self.relative_to == "input" else reference_stats
            if stats is None:
                raise UserError(f"target on {self.metric} is relative to the {self.relative_to}, "
                                "but this case has none")
            base = float(getattr(stats, self.metric))
        lo = -float("inf") if self.low is None else base + self.low
        hi = float("inf") if self.high is None else base + self.high
        return lo, hi

    def met(self, output_stats: Any, input_stats: Any, reference_stats: Any) -> bool:
        lo, hi = self.bounds(input_stats, reference_stats)
        return lo <= float(getattr(output_stats, self.metric)) <= hi


class Degradation(BaseModel):
    """One call of an `tools.degrade` function on the clean image."""

    model_config = ConfigDict(extra="forbid")
    op: Literal["underexpose", "color_cast", "low_contrast", "add_noise", "blur", "jpeg", "haze", "desaturate",
                "camera_noise", "low_light", "downscale"]
    params: dict[str, int | float] = Field(default_factory=dict)


class Case(BaseModel):
    """One eval case: where the input comes from, what is asked, how it is judged."""

    model_config = ConfigDict(extra="forbid")
    id: str
    kind: Kind
    source: str = Field(description='"skimage:NAME" (bundled sample) or a path to a photo')
    size: int = Field(128, ge=16, le=4096, description="long side, px, the source is resized to")
    degrade: list[Degradation] = Field(default_factory=list, description="restore: clean -> input")
    look: list[dict[str, Any]] = Field(default_factory=list, description="match: recipe steps clean -> reference")
    goal: str
    targets: list[TargetSpec] = Field(default_factory=list)
    lock: float = Field(0.8, ge=0, le=1)
    max_steps: int = Field(8, ge=1, le=100)
    # kinds that depend on tools still being written: their fields, so suites can be authored
    mask: dict[str, Any] | None = Field(None, description='inpaint: {"shape": "rect|ellipse|strokes", "area": 0.05, "seed": 1}')
    gan: dict[str, Any] | None = Field(None, description='gan: {"seed": 1, "direction": "smile", "amount": 1.0}')
    turns: list[str] = Field(default_factory=list, description="chat: the user's messages, in order")

    @property
    def has_reference(self) -> bool:
        return self.kind in ("restore", "match", "inpaint", "gan")


class Generator(BaseModel):
    """How a suite's cases are made: the same spec and seed always give the same cases."""

    model_config = ConfigDict(extra="forbid")
    kind: Kind
    seed: int = 0
    count: int = Field(8, ge=1, le=100_000)
    size: int = Field(128, ge=16, le=4096)
    sources: list[str] = Field(default_factory=lambda: list(BUNDLED_SOURCES))


class Suite(BaseModel):
    """A named list of cases plus the generator that made them."""

    model_config = ConfigDict(extra="forbid")
    imagent_suite: int = SUITE_FORMAT
    name: str
    description: str = ""
    generator: Generator
    cases: list[Case] = Field(default_factory=list)


# ------------------------------------------------------------------ generation

# restore: each draws its parameters; applied in the order a camera pipeline would have
_RESTORE_POOL: list[tuple[str, Any]] = [
    ("underexpose", lambda r: {"stops": round(r.choice([-1, 1]) * r.uniform(0.7, 1.5), 3)}),
    ("color_cast", lambda r: dict(zip("rgb", _cast_gains(r), strict=True))),
    ("haze", lambda r: {"transmission": round(r.uniform(0.55, 0.8), 3), "airlight": round(r.uniform(0.8, 0.95), 3)}),
    ("low_contrast", lambda r: {"factor": round(r.uniform(0.5, 0.75), 3)}),
    ("blur", lambda r: {"sigma": round(r.uniform(0.8, 1.6), 3)}),
    ("add_noise", lambda r: {"sigma": round(r.uniform(0.02, 0.05), 3), "seed": r.randrange(1 << 16)}),
    ("jpeg", lambda r: {"quality": r.randrange(12, 36)}),
]

# retouch: goal text -> targets the edit must reach, relative to the input's measurements
RETOUCH_GOALS: list[tuple[str, list[dict[str, Any]]]] = [
    ("warmer and a little brighter", [{"metric": "cast_b", "low": 3, "high": 16}, {"metric": "mean_L", "low": 2, "high": 12}]),
    ("more vivid, keep skin natural", [{"metric": "mean_saturation", "low": 0.02, "high": 0.2}]),
    ("a bit darker and cooler", [{"metric": "mean_L", "low": -12, "high": -2}, {"metric": "cast_b", "low": -16, "high": -3}]),
    ("more contrast", [{"metric": "rms_contrast", "low": 0.02, "high": 0.12}]),
    ("make it brighter", [{"metric": "mean_L", "low": 4, "high": 20}]),
    ("muted, less saturated colours", [{"metric": "mean_saturation", "low": -0.3, "high": -0.02}]),
    ("lift the shadows", [{"metric": "p05_L", "low": 3, "high": 30}]),
    ("black and white", [{"metric": "mean_saturation", "high": 0.02}]),
]


def _cast_gains(r: random.Random) -> tuple[float, float, float]:
    warm = r.random() < 0.5
    k = r.uniform(0.12, 0.3)
    return (round(1 + k, 3), 1.0, round(1 - k, 3)) if warm else (round(1 - k, 3), 1.0, round(1 + k, 3))


def _restore_case(r: random.Random, i: int, source: str, size: int) -> Case:
    picks = sorted(r.sample(range(len(_RESTORE_POOL)), r.choice([2, 3])))
    degrade = [Degradation(op=_RESTORE_POOL[j][0], params=_RESTORE_POOL[j][1](r)) for j in picks]
    ops = {d.op for d in degrade}
    rel = "reference"
    targets = [TargetSpec(metric="mean_L", low=-6, high=6, relative_to=rel),
               TargetSpec(metric="cast_a", low=-4, high=4, relative_to=rel),
               TargetSpec(metric="cast_b", low=-4, high=4, relative_to=rel),
               TargetSpec(metric="rms_contrast", low=-0.03, high=0.03, relative_to=rel)]
    if "add_noise" in ops:
        targets.append(TargetSpec(metric="noise_sigma", high=0.01, relative_to=rel))
    return Case(id=f"restore-{i:03d}", kind="restore", source=source, size=size, degrade=degrade,
                goal="restore this photo", targets=targets, lock=0.7)


def _retouch_case(r: random.Random, i: int, source: str, size: int) -> Case:
    goal, targets = RETOUCH_GOALS[r.randrange(len(RETOUCH_GOALS))]
    specs = [TargetSpec(**t, relative_to=None if goal == "black and white" else "input") for t in targets]
    return Case(id=f"retouch-{i:03d}", kind="retouch", source=source, size=size, goal=goal,
                targets=specs, lock=0.8)


def _match_case(r: random.Random, i: int, source: str, size: int) -> Case:
    look = [
        {"tool": "exposure", "params": {"stops": round(r.uniform(-0.7, 0.7), 3)}},
        {"tool": "white_balance", "params": {"temperature": round(r.uniform(-40, 40), 2),
                                              "tint": round(r.uniform(-20, 20), 2)}},
        {"tool": "contrast", "params": {"amount": round(r.uniform(-30, 30), 2)}},
        {"tool": "saturation", "params": {"amount": round(r.uniform(-40, 40), 2)}},
    ]
    rel = "reference"
    targets = [TargetSpec(metric="mean_L", low=-4, high=4, relative_to=rel),
               TargetSpec(metric="cast_a", low=-3, high=3, relative_to=rel),
               TargetSpec(metric="cast_b", low=-3, high=3, relative_to=rel),
               TargetSpec(metric="mean_saturation", low=-0.04, high=0.04, relative_to=rel)]
    return Case(id=f"match-{i:03d}", kind="match", source=source, size=size, look=look,
                goal="match the look of the reference photo", targets=targets, lock=0.8)


# inpaint: mask kind -> the goal the agent is given (it sees only the damaged photo, no mask)
INPAINT_SHAPES = {"spots": "remove the spots", "scratches": "remove the scratches",
                  "square": "fill the hole", "strokes": "fill the hole"}
HOLE_VALUE = 1.0  # holes are painted white in the input, as a scanner shows dust and missing emulsion


def _inpaint_case(r: random.Random, i: int, source: str, size: int) -> Case:
    shape = list(INPAINT_SHAPES)[i % len(INPAINT_SHAPES)]
    return Case(id=f"inpaint-{i:03d}", kind="inpaint", source=source, size=size,
                mask={"shape": shape, "seed": r.randrange(1 << 16)}, goal=INPAINT_SHAPES[shape], lock=0.7)


def case_mask(case: Case, height: int, width: int) -> torch.Tensor:
    """The hole of an inpaint case as a (1,1,H,W) 0/1 tensor, drawn from its mask seed.

    spots: 6-12 discs of radius 1-3 px; scratches: 2-3 lines 1-2 px thick across
    40-90 % of the photo; square: one 64 px square (half the short side if smaller);
    strokes: 2-3 free-form brush strokes 5-9 px wide.
    """
    import cv2
    import numpy as np

    spec = case.mask or {}
    shape = spec.get("shape")
    if shape not in INPAINT_SHAPES:
        raise UserError(f"case {case.id}: mask shape {shape!r} is not one of {', '.join(INPAINT_SHAPES)}")
    r = random.Random(int(spec.get("seed", 0)))
    m = np.zeros((height, width), np.uint8)
    side = max(height, width)
    if shape == "spots":
        for _ in range(r.randint(6, 12)):
            cv2.circle(m, (r.randrange(width), r.randrange(height)), r.randint(1, 3), 1, -1)
    elif shape == "scratches":
        for _ in range(r.randint(2, 3)):
            x0, y0 = r.randrange(width), r.randrange(height)
            ang, length = r.uniform(0, 3.1416), r.uniform(0.4, 0.9) * side
            x1, y1 = int(x0 + length * np.cos(ang)), int(y0 + length * np.sin(ang))
            cv2.line(m, (x0, y0), (x1, y1), 1, r.randint(1, 2))
    elif shape == "square":
        s = min(64, min(height, width) // 2)
        x, y = r.randrange(width - s + 1), r.randrange(height - s + 1)
        m[y:y + s, x:x + s] = 1
    else:
        for _ in range(r.randint(2, 3)):
            pts = [(r.randrange(width), r.randrange(height))]
            for _ in range(r.randint(3, 5)):
                px, py = pts[-1]
                step = side // 6
                pts.append((min(width - 1, max(0, px + r.randint(-step, step))),
                            min(height - 1, max(0, py + r.randint(-step, step)))))
            cv2.polylines(m, [np.array(pts, np.int32)], False, 1, r.randint(5, 9))
    if not m.any():  # a degenerate draw (a zero-length scratch): one pixel keeps the case valid
        m[height // 2, width // 2] = 1
    return torch.from_numpy(m.astype(np.float32)).view(1, 1, height, width)


# chat: a scripted conversation -> targets on the image it ends on, relative to the photo it started from
CHAT_SCRIPTS: list[tuple[list[str], list[dict[str, Any]]]] = [
    (["make it brighter", "a bit more"], [{"metric": "mean_L", "low": 6, "high": 40}]),
    (["make it brighter", "a bit more", "undo that"], [{"metric": "mean_L", "low": 2, "high": 25}]),
    (["make it warmer", "undo that"], [{"metric": "mean_L", "low": -0.5, "high": 0.5},
                                       {"metric": "cast_b", "low": -0.5, "high": 0.5}]),
    (["a bit darker", "cooler too"], [{"metric": "mean_L", "low": -25, "high": -1},
                                      {"metric": "cast_b", "low": -20, "high": -1}]),
    (["more vivid", "more contrast"], [{"metric": "mean_saturation", "low": 0.01, "high": 0.3},
                                       {"metric": "rms_contrast", "low": 0.005, "high": 0.15}]),
    (["black and white", "undo that", "warmer"], [{"metric": "cast_b", "low": 1, "high": 20},
                                                  {"metric": "mean_saturation", "low": -0.05}]),
]


def _chat_case(r: random.Random, i: int, source: str, size: int) -> Case:
    turns, targets = CHAT_SCRIPTS[r.randrange(len(CHAT_SCRIPTS))]
    return Case(id=f"chat-{i:03d}", kind="chat", source=source, size=size, goal=" / ".join(turns),
                turns=list(turns), targets=[TargetSpec(**t, relative_to="input") for t in targets], lock=0.8)


# gan: edits on held-out faces (seeds far from the directions' fitting seeds)
GAN_EDITS = (("smile", 3.0), ("lighting", 3.0), ("warmth", 3.0), ("hair_darkness", -3.0), ("eyeglasses", 3.0))


def _gan_case(r: random.Random, i: int, source: str, size: int) -> Case:
    seed = 1000 + r.randrange(1 << 20)
    if i % 2 == 0:
        return Case(id=f"gan-{i:03d}", kind="gan", source="generator:dcgan", size=64,
                    gan={"task": "invert", "seed": seed, "steps": 200, "seconds": 9.0},
                    goal="reconstruct this generated face", lock=0.0)
    direction, amount = GAN_EDITS[(i // 2) % len(GAN_EDITS)]
    return Case(id=f"gan-{i:03d}", kind="gan", source="generator:dcgan", size=256,
                gan={"task": "edit", "seed": seed, "n": 8, "direction": direction, "amount": amount,
                     "steps": 200, "seconds": 9.0},
                goal=f"{'more' if amount > 0 else 'less'} {direction.replace('_', ' ')}", lock=0.0)


_MAKERS = {"restore": _restore_case, "retouch": _retouch_case, "match": _match_case, "inpaint": _inpaint_case,
           "chat": _chat_case, "gan": _gan_case}
AVAILABLE = {  # kind -> the module its cases will exercise (generators for the last two: to do)
    "restore": None, "retouch": None, "match": None,
    "inpaint": "tools.inpaint", "gan": "tools.gan", "chat": "agent.chat",
}


def generate(gen: Generator, sources: list[str] | None = None) -> list[Case]:
    """The cases of a generator spec: one per index, sources used round-robin, all from `gen.seed`."""
    if gen.kind not in _MAKERS:
        raise UserError(f"suites of kind {gen.kind!r} (needing {AVAILABLE.get(gen.kind)}) have a case format "
                        "but no generator or runner yet; use restore, retouch, match, inpaint, chat or gan")
    srcs = list(sources if sources is not None else gen.sources)
    if not srcs:
        raise UserError("a suite needs at least one source image")
    rng = random.Random(gen.seed)
    return [_MAKERS[gen.kind](rng, i, srcs[i % len(srcs)], gen.size) for i in range(gen.count)]


# ------------------------------------------------------------------ loading


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.json"))


def read_suite(name_or_path: str | Path) -> Suite:
    """A bundled suite by name (restore, retouch, match) or a suite JSON file by path."""
    p = Path(name_or_path)
    if not p.suffix:
        p = SUITE_DIR / f"{name_or_path}.json"
        if not p.is_file():
            raise UserError(f"no suite named {name_or_path!r}; bundled: {', '.join(suite_names())} "
                            "(or give a path to a suite .json)")
    try:
        suite = Suite.model_validate_json(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"suite file {p} does not exist") from None
    except ValueError as exc:
        raise UserError(f"suite file {p} is not a valid suite: {str(exc).splitlines()[0]}") from None
    if suite.imagent_suite > SUITE_FORMAT:
        raise UserError(f"suite {p} uses format {suite.imagent_suite}; upgrade imagent")
    if suite.generator.kind not in _MAKERS:
        raise UserError(f"suite {suite.name!r} is of kind {suite.generator.kind!r}, which cannot run yet "
                        "(restore, retouch, match, inpaint, chat and gan can)")
    return suite


def load_suite(name_or_path: str | Path, *, images: str | Path | None = None, limit: int | None = None,
               size: int | None = None) -> Suite:
    """Read a suite; with `images`, regenerate its cases over every photo in that folder."""
    suite = read_suite(name_or_path)
    gen = suite.generator
    if size is not None:
        gen = gen.model_copy(update={"size": size})
    if images is not None:
        folder = Path(images)
        if not folder.is_dir():
            raise UserError(f"--images {folder} is not a folder of photos")
        files = sorted(str(f.resolve()) for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"no photos ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
        gen = gen.model_copy(update={"sources": files, "count": max(gen.count, len(files))})
    if images is not None or size is not None:
        suite = suite.model_copy(update={"generator": gen, "cases": generate(gen)})
    if limit is not None:
        if limit < 1:
            raise UserError(f"--limit {limit}: give a positive number of cases")
        suite = suite.model_copy(update={"cases": suite.cases[:limit]})
    return suite


def write_suite(suite: Suite, path: Path) -> Path:
    from tools.io import atomic_write_bytes

    return atomic_write_bytes(path, (suite.model_dump_json(indent=1, exclude_defaults=True) + "\n").encode())


# ------------------------------------------------------------------ building inputs


def load_source(source: str, size: int) -> torch.Tensor:
    """The source photo as a (1,3,H,W) tensor with its long side resized to `size` (area filter)."""
    import cv2
    import numpy as np

    from tools.io import load_image, to_array, to_tensor

    if source.startswith("skimage:"):
        import skimage.data

        name = source.split(":", 1)[1]
        fn = getattr(skimage.data, name, None)
        if fn is None:
            raise UserError(f"unknown bundled sample {source!r}")
        arr = np.asarray(fn())
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, -1)
        arr = np.ascontiguousarray(arr[..., :3])
    else:
        arr = to_array(load_image(source).image)
    h, w = arr.shape[:2]
    scale = size / max(h, w)
    if scale < 1:
        dsize = (max(1, round(w * scale)), max(1, round(h * scale)))
        arr = cv2.resize(arr, dsize, interpolation=cv2.INTER_AREA)
    return to_tensor(arr)


def apply_degradations(image: torch.Tensor, degrade: list[Degradation]) -> torch.Tensor:
    from tools import degrade as dg

    out = image
    for d in degrade:
        ints = ("seed", "quality", "factor") if d.op == "downscale" else ("seed", "quality")  # low_contrast's factor is a float
        out = getattr(dg, d.op)(out, **{k: int(v) if k in ints else v for k, v in d.params.items()})
    return out


def look_recipe(case: Case) -> Any:
    from tools.recipe import Recipe, Step

    return Recipe(steps=[Step.of(s["tool"], s.get("params", {})) for s in case.look])


def build_case(case: Case) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(input, reference) of a case; the reference is None for retouch (judged by targets)."""
    if case.kind not in _MAKERS:
        raise UserError(f"case {case.id}: {case.kind!r} cases cannot be run yet (restore, retouch, match, inpaint, chat and gan can)")
    if case.kind == "gan":
        from evals.gan import build

        return build(case)
    clean = load_source(case.source, case.size)
    if case.kind == "restore":
        # a downscale's reference is the clean photo cut to whole multiples of its factor
        f = max([int(d.params.get("factor", 4)) for d in case.degrade if d.op == "downscale"], default=1)
        clean = clean[..., : clean.shape[-2] // f * f, : clean.shape[-1] // f * f]
        return apply_degradations(clean, case.degrade), clean
    if case.kind == "match":
        from tools.recipe import apply_recipe

        return clean, apply_recipe(clean, look_recipe(case))
    if case.kind == "inpaint":
        hole = case_mask(case, *clean.shape[-2:])
        return torch.where(hole > 0, torch.full_like(clean, HOLE_VALUE), clean), clean
    return clean, None


def main() -> None:
    """`python -m evals.suites`: regenerate the bundled suite files from their specs."""
    specs = {
        "restore": ("2-3 degradations (exposure, cast, haze, contrast, blur, noise, JPEG); restore the clean photo",
                    Generator(kind="restore", seed=8, count=12)),
        "retouch": ("instruction goals with measurable targets, relative to the input",
                    Generator(kind="retouch", seed=8, count=8)),
        "match": ("a hidden random look (exposure, white balance, contrast, saturation); match the reference",
                  Generator(kind="match", seed=8, count=8)),
        "chat": ("scripted conversations (brighter, a bit more, undo that ...) judged on the image they end on",
                 Generator(kind="chat", seed=8, count=8)),
        "gan": ("inversion fidelity on generated faces; direction edits judged by the attribute scorers",
                Generator(kind="gan", seed=8, count=6, size=64)),
        "inpaint": ("holes (spots, scratches, 64 px squares, brush strokes) painted white; fill them back",
                    Generator(kind="inpaint", seed=8, count=8)),
    }
    for name, (text, gen) in specs.items():
        path = write_suite(Suite(name=name, description=text, generator=gen, cases=generate(gen)),
                           SUITE_DIR / f"{name}.json")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
