"""Region metrics: a measurement taken on one region of the photo, or against the original, as a typed value.

A goal's target on "the face's lightness" or "the box where the object was" names a
`RegionMetric`: which measure (`kind`) and where (`mask`: a session mask's name; `box`:
x, y, w, h as fractions of the width and height). Targets store metric names as strings
(goals, recipes and runs on disk are JSON), so a region metric has one text form,
written by `str()` and read by `RegionMetric.parse`, here and nowhere else:

    dL@face          mean L* inside the session mask "face" minus the original's there
    db@sky           mean b* inside the mask minus the original's there (below 0: bluer)
    changed@x,y,w,h  mean |change| of L* inside a box (the object is gone)
    defects_left     dust/scratch pixels find_defects flags now, as a share of the original's
    gan_smile@face   a face attribute's score change (tools.gan), also gan_eyeglasses, gan_lighting
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, model_validator

RegionKind = Literal["dL", "db", "changed", "defects_left", "gan_smile", "gan_eyeglasses", "gan_lighting"]
KINDS: tuple[str, ...] = get_args(RegionKind)
MASKED = ("dL", "db")  # kinds measured inside a named session mask
GAN_KINDS = ("gan_smile", "gan_eyeglasses", "gan_lighting")

# kind -> (absolute scale, relative scale, name with "{}" for the region): one unit of distance is
# a clearly visible miss (see agent.targets.METRICS for the whole-image metrics)
SCALES: dict[str, tuple[float, float, str]] = {
    "dL": (5.0, 0.0, "L* change in the {}"),
    "db": (5.0, 0.0, "b* change in the {} (below 0: bluer)"),
    "changed": (3.0, 0.0, "L* change inside box {}"),
    "defects_left": (0.3, 0.0, "dust and scratches left (share of the original's)"),
    "gan_smile": (0.5, 0.0, "smile score change of the {}"),
    "gan_eyeglasses": (1.0, 0.0, "eyeglasses score change of the {}"),
    "gan_lighting": (0.05, 0.0, "lighting change of the {} (0-1 luma)"),
}


class RegionMetric(BaseModel):
    """One region metric: `kind` measured in the mask `mask`, or in the box `box` (fractions)."""

    model_config = ConfigDict(frozen=True)

    kind: RegionKind
    mask: str | None = None
    box: tuple[float, float, float, float] | None = None

    @model_validator(mode="after")
    def _check(self) -> RegionMetric:
        if self.kind == "changed" and self.box is None:
            raise ValueError("region metric 'changed' needs box=(x, y, w, h) as fractions of the image")
        if self.kind in MASKED and not self.mask:
            raise ValueError(f"region metric {self.kind!r} needs mask=<a session mask's name, e.g. 'face'>")
        return self

    @property
    def where(self) -> str:
        """The region as written after '@': the mask's name or the box's four fractions."""
        if self.box is not None:
            return ",".join(f"{v:.4f}" for v in self.box)
        return self.mask or ""

    def __str__(self) -> str:
        return f"{self.kind}@{self.where}" if self.where else self.kind

    @property
    def scale(self) -> tuple[float, float, str]:
        """(absolute scale, relative scale, name) of this metric, for a target's distance and label."""
        absolute, relative, name = SCALES[self.kind]
        return absolute, relative, name.format(self.where)

    @classmethod
    def parse(cls, metric: str) -> RegionMetric | None:
        """The region metric a metric name spells; None for a whole-image metric or a malformed region."""
        kind, _, where = metric.partition("@")
        if kind not in KINDS:
            return None
        if kind == "changed":
            try:
                x, y, w, h = (float(v) for v in where.split(","))
            except ValueError:
                return None
            return cls(kind="changed", box=(x, y, w, h))
        if kind in MASKED and not where:
            return None
        return cls(kind=kind, mask=where or None)  # type: ignore[arg-type]


def region_of(metric: str) -> RegionMetric | None:
    """`RegionMetric.parse`, for call sites that read a target's metric name."""
    return RegionMetric.parse(metric)
