"""RegionMetric: the typed region metric and its one text form."""

from __future__ import annotations

import pytest
import torch

from tools.masks import local_metrics
from tools.region_metric import RegionMetric


@pytest.mark.parametrize("text, kind, mask, box", [
    ("dL@face", "dL", "face", None), ("db@sky", "db", "sky", None), ("defects_left", "defects_left", None, None),
    ("gan_smile@face", "gan_smile", "face", None), ("changed@0.1000,0.2000,0.3000,0.4000", "changed", None,
                                                    (0.1, 0.2, 0.3, 0.4)),
])
def test_text_form_round_trips(text: str, kind: str, mask: str | None, box: tuple[float, ...] | None) -> None:
    r = RegionMetric.parse(text)
    assert r is not None and (r.kind, r.mask, r.box) == (kind, mask, box)
    assert str(r) == text and RegionMetric.parse(str(r)) == r


@pytest.mark.parametrize("text", ["mean_L", "dL", "changed@1,2", "changed@a,b,c,d", "glow@face"])
def test_whole_image_and_malformed_names_are_not_region_metrics(text: str) -> None:
    assert RegionMetric.parse(text) is None


def test_a_region_metric_needs_its_region() -> None:
    with pytest.raises(ValueError, match="box"):
        RegionMetric(kind="changed")
    with pytest.raises(ValueError, match="mask"):
        RegionMetric(kind="dL")


def test_scale_names_the_region() -> None:
    assert RegionMetric(kind="dL", mask="sky").scale == (5.0, 0.0, "L* change in the sky")


def test_local_metrics_read_the_typed_region() -> None:
    original = torch.full((1, 3, 32, 32), 0.4)
    image = original.clone()
    image[..., :16, :] = 0.6  # the top half brighter
    top = torch.zeros(1, 1, 32, 32)
    top[..., :16, :] = 1.0
    box = str(RegionMetric(kind="changed", box=(0.0, 0.5, 1.0, 0.5)))  # the bottom half: untouched
    got = local_metrics(original, image, ["dL@top", box, "mean_L"], lambda n: top if n == "top" else None)
    assert set(got) == {"dL@top", box} and got["dL@top"] > 10 and got[box] < 1e-3
