"""The goal's types: intents, measurable targets, the goal, and the metrics targets may name.

`Target.metric` is a `tools.analysis.Stats` field name, ssim_ref / delta_e_ref, or a region
metric's text form (`tools.region_metric.RegionMetric`: "dL@face"); `Target.region` gives the
typed value. How each intent's targets are computed: agent/recipes.py; the intents: agent/intent_spec.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, model_validator

from agent.options import Budget
from tools.region_metric import RegionMetric

if TYPE_CHECKING:
    from tools.analysis import Stats

# metric -> (absolute scale, relative scale, name): distance = gap / max(abs, rel*|bound|),
# so one "unit" of distance is a comparable, clearly visible miss on every metric.
METRICS: dict[str, tuple[float, float, str]] = {
    "width": (100.0, 0.0, "width"),
    "height": (100.0, 0.0, "height"),
    "mean_L": (10.0, 0.0, "mean L*"),
    "median_L": (10.0, 0.0, "median L*"),
    "p01_L": (10.0, 0.0, "1st percentile L*"),
    "p05_L": (10.0, 0.0, "5th percentile L*"),
    "p95_L": (10.0, 0.0, "95th percentile L*"),
    "p99_L": (10.0, 0.0, "99th percentile L*"),
    "clipped_shadows_pct": (2.0, 0.0, "clipped shadows %"),
    "clipped_highlights_pct": (2.0, 0.0, "clipped highlights %"),
    "rms_contrast": (0.05, 0.0, "RMS contrast"),
    "colorfulness": (10.0, 0.0, "colourfulness"),
    "cast_a": (5.0, 0.0, "cast a*"),
    "cast_b": (5.0, 0.0, "cast b*"),
    "cast": (5.0, 0.0, "colour cast"),
    "mean_saturation": (0.1, 0.0, "mean saturation"),
    "noise_sigma": (0.002, 0.5, "noise sigma"),
    "sharpness": (1e-9, 0.5, "sharpness"),
    "dynamic_range": (1.0, 0.0, "dynamic range (stops)"),
    "illuminant_a": (5.0, 0.0, "the light's cast a*"),
    "illuminant_b": (5.0, 0.0, "the light's cast b*"),
    "blur_sigma": (0.1, 0.0, "blur (px)"),
    "blockiness": (0.5, 0.0, "JPEG blockiness"),
    "ssim_ref": (0.05, 0.0, "SSIM to the reference"),
    "delta_e_ref": (3.0, 0.0, "mean deltaE to the reference"),
}


def fmt(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 1:
        return f"{x:.1f}".removesuffix(".0")
    return f"{x:.3g}"


def lstar(y: float) -> float:
    """CIE L* (0-100) of a relative luminance Y in [0, 1]."""
    y = min(max(y, 0.0), 1.0)
    return 116.0 * y ** (1 / 3) - 16.0 if y > 216 / 24389 else y * 24389 / 27


def luminance_of(lstar_value: float) -> float:
    """Relative luminance Y in [0, 1] of a CIE L* value."""
    value = min(max(lstar_value, 0.0), 100.0)
    return ((value + 16.0) / 116.0) ** 3 if value > 8 else value * 27 / 24389


class Target(BaseModel):
    """One measurable wish: a metric of the edited image and the range it should land in."""

    metric: str = Field(description="a Stats field name, ssim_ref / delta_e_ref, or a region metric (tools.region_metric)")
    op: Literal["between", ">=", "<="]
    low: float | None = None
    high: float | None = None
    label: str = ""
    weight: float = Field(1.0, gt=0, le=10)
    intent: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Target:
        if self.metric not in METRICS and self.region is None:
            raise ValueError(f"unknown metric {self.metric!r}; use one of {', '.join(METRICS)}")
        need = {"between": ("low", "high"), ">=": ("low",), "<=": ("high",)}[self.op]
        for name in need:
            if getattr(self, name) is None:
                raise ValueError(f"target on {self.metric} with op {self.op!r} needs {name}")
        if self.op == "between" and self.low > self.high:  # type: ignore[operator]
            raise ValueError(f"target on {self.metric}: low {self.low} > high {self.high}")
        if not self.label:
            self.label = self.describe()
        return self

    def describe(self) -> str:
        name = self.scale[2]
        if self.op == "between":
            return f"{name} between {fmt(self.low)} and {fmt(self.high)}"  # type: ignore[arg-type]
        bound = self.low if self.op == ">=" else self.high
        return f"{name} {self.op} {fmt(bound)}"  # type: ignore[arg-type]

    @property
    def region(self) -> RegionMetric | None:
        """The region metric this target names (None: a whole-image metric)."""
        return RegionMetric.parse(self.metric)

    @property
    def scale(self) -> tuple[float, float, str]:
        """(absolute scale, relative scale, name) of the metric: see METRICS."""
        region = self.region
        return METRICS[self.metric] if region is None else region.scale

    @property
    def bounds(self) -> tuple[float, float]:
        lo = self.low if self.op in ("between", ">=") and self.low is not None else -math.inf
        hi = self.high if self.op in ("between", "<=") and self.high is not None else math.inf
        return lo, hi

    def met(self, value: float) -> bool:
        lo, hi = self.bounds
        return lo <= value <= hi

    def distance(self, value: float) -> float:
        """0 when met; otherwise the gap in units of the metric's scale (1 = a clear miss)."""
        lo, hi = self.bounds
        if value < lo:
            gap, bound = lo - value, lo
        elif value > hi:
            gap, bound = value - hi, hi
        else:
            return 0.0
        absolute, relative, _ = self.scale
        return gap / max(absolute, relative * abs(bound))

    def check(self, values: Stats | Mapping[str, float]) -> dict[str, Any]:
        """label, metric, op, low, high, value, met, distance: one row of a progress report."""
        v = value_of(values, self.metric)
        return {"label": self.label, "metric": self.metric, "op": self.op, "low": self.low,
                "high": self.high, "value": v, "met": self.met(v), "distance": self.distance(v)}


def value_of(values: Stats | Mapping[str, float], metric: str) -> float:
    """A metric from a Stats object or a plain mapping (which may add ssim_ref, delta_e_ref)."""
    v = values.get(metric) if isinstance(values, Mapping) else getattr(values, metric, None)
    if v is None:
        raise KeyError(f"no value for metric {metric!r}: measure it (tools.analysis.measure) "
                       "or pass it in the mapping")
    return float(v)


class Intent(BaseModel):
    """One thing the user asked for, where it came from and how sure the parser is."""

    name: str
    degree: float = Field(1.0, gt=0, le=8, description="0.5 a bit, 1 default, 2 much")
    source: Literal["embedding", "keyword", "rule", "measurement", "llm"]
    confidence: float = Field(1.0, ge=0, le=1)
    clause: str = ""
    stops: float | None = Field(None, description="exact exposure change asked, in stops")
    percent: float | None = Field(None, description="relative change asked, in percent")
    region: str | None = Field(None, description="a named region the edit is limited to: face, sky")
    argument: str | None = Field(None, description="a direct wish's exact edit: look name, crop ratio W:H, "
                                 "rotation in degrees clockwise, flip axis (agent.wishes)")
    box: tuple[float, float, float, float] | None = Field(
        None, description="x, y, w, h of the object to remove, fractions of width and height")
    steps: list[dict[str, Any]] | None = Field(
        None, description="the learned prior's steps for this wish (agent/natural.py): the planner's first try")
    aim: dict[str, float | tuple[float, float]] | None = Field(
        None, description="metric -> the value the prior's steps reach on the preview (target +- NATURAL_TOL) "
                          "or the (low, high) range they may reach")


class Goal(BaseModel):
    """Instruction text + intents + measurable targets + the structure lock and the budget."""

    instruction: str
    intents: list[Intent] = Field(default_factory=list)
    targets: list[Target] = Field(default_factory=list)
    reference: str | None = None
    lock: float = Field(0.80, ge=0, le=1, description="minimum SSIM to the original")
    budget: Budget = Field(default_factory=Budget)
    unmapped: list[str] = Field(default_factory=list)
    parser: Literal["embedding", "keyword"] = "embedding"
    notes: list[str] = Field(default_factory=list)

    def check(self, values: Stats | Mapping[str, float]) -> list[dict[str, Any]]:
        return [t.check(values) for t in self.targets]

    def met(self, values: Stats | Mapping[str, float]) -> bool:
        return all(t.met(value_of(values, t.metric)) for t in self.targets)

    def distance(self, values: Stats | Mapping[str, float]) -> float:
        """Weighted sum of target distances: 0 when every target is met."""
        return sum(t.weight * t.distance(value_of(values, t.metric)) for t in self.targets)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> Goal:
        return cls.model_validate_json(text)



def make_target(metric: str | RegionMetric, lo: float | None, hi: float | None, intent: str, weight: float = 1.0,
       label: str = "") -> Target:
    op = "between" if lo is not None and hi is not None else (">=" if lo is not None else "<=")
    t = Target(metric=str(metric), op=op, low=lo, high=hi, intent=intent, weight=weight)
    if label:
        t.label = f"{t.label} ({label})"
    return t



def merge_targets(targets: list[Target]) -> tuple[list[Target], list[str]]:
    """One target per metric: ranges intersected; on a clash the heavier (then earlier) wins."""
    merged: dict[str, Target] = {}
    clashes: list[str] = []
    for t in sorted(targets, key=lambda t: -t.weight):
        have = merged.get(t.metric)
        if have is None:
            merged[t.metric] = t
            continue
        (lo1, hi1), (lo2, hi2) = have.bounds, t.bounds
        lo, hi = max(lo1, lo2), min(hi1, hi2)
        if lo > hi:
            if t.weight >= 1:
                clashes.append(f"'{t.label}' conflicts with '{have.label}'; kept the latter")
            continue
        merged[t.metric] = make_target(t.metric, None if lo == -math.inf else lo,
                              None if hi == math.inf else hi, have.intent or "",
                              max(have.weight, t.weight))
        merged[t.metric].label = f"{merged[t.metric].label} ({have.intent} + {t.intent})"
    first: dict[str, int] = {}
    for i, t in enumerate(targets):
        first.setdefault(t.metric, i)
    return sorted(merged.values(), key=lambda t: first[t.metric]), clashes
