"""The CPU bridge: 16-bit lookup tables, the HWC layout round trip, work split over threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tools import colorspace as cs

RAMP = torch.linspace(0, 1, cs.LUT_SIZE, dtype=torch.float64)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_lut_picks_the_nearest_grid_entry() -> None:
    x = torch.cat([_rand(1, 3, 40, 50), torch.randint(0, 256, (1, 3, 40, 50)) / 255]).float()
    table = RAMP**0.5
    pos = x.double() * (cs.LUT_SIZE - 1)
    out = cs.apply_lut(x, table).double()
    # the float32 index maths may round a near-tie either way: never past a neighbour
    assert (out >= table[pos.floor().long()].float()).all() and (out <= table[pos.ceil().long()].float()).all()
    nearest = table[pos.round().long()].float()
    assert float((out != nearest).double().mean()) < 0.01
    assert torch.equal(out[1:], nearest[1:]), "8-bit values sit on the 16-bit grid: exact"


def test_lut_cpu_bands_and_torch_gather_agree() -> None:
    """The OpenCV path (bands, threads) and the any-device path index the same entries."""
    x = _rand(2, 3, 300, 500, seed=1) * 1.4 - 0.2  # past both ends, several bands per plane
    tables = torch.stack([RAMP, RAMP.sqrt(), RAMP**2])
    tables = torch.stack([tables, 1 - tables])  # (B, C, LUT): per image and channel
    out = cs.apply_lut(x, tables)
    same = cs._lut_torch(x, tables.float(), [0, 1, 2], torch.empty_like(x))
    assert torch.equal(out, same)
    assert float(out[0, 0][x[0, 0] <= 0].max()) == 0 and float(out[0, 0][x[0, 0] >= 1].min()) == 1
    assert float(out[1, 0][x[1, 0] >= 1].max()) == 0, "second image used its own table"


def test_lut_maps_only_the_chosen_channels_and_keeps_the_input() -> None:
    x = _rand(1, 3, 20, 30, seed=2)
    before = x.clone()
    out = cs.apply_lut(x, 1 - RAMP, channels=[1])
    assert torch.equal(out[:, [0, 2]], x[:, [0, 2]])
    assert torch.allclose(out[:, 1], 1 - x[:, 1], atol=1e-5)
    assert torch.equal(x, before)


def test_lut_nan_takes_the_first_entry_and_half_floats_work() -> None:
    x = torch.tensor([float("nan"), 0.25, 0.5, 1.0]).view(1, 1, 1, 4)
    assert cs.apply_lut(x, RAMP + 1)[0, 0, 0].tolist() == pytest.approx([1.0, 1.25, 1.5, 2.0], abs=1e-4)
    half = cs.apply_lut(x.half(), RAMP + 1)  # torch path: a half cannot hold the index
    assert half.dtype == torch.float16 and half[0, 0, 0].tolist() == pytest.approx([1, 1.25, 1.5, 2], abs=2e-3)


def test_hwc_round_trip_is_exact() -> None:
    x = _rand(2, 3, 31, 45, seed=3)[..., ::2]  # not contiguous
    arrays = cs.to_hwc(x)
    assert all(a.flags.c_contiguous and a.shape == (31, 23, 3) for a in arrays)
    assert np.array_equal(arrays[1], x[1].permute(1, 2, 0).numpy())
    back = cs.from_hwc(arrays, x)
    assert torch.equal(back, x) and back.is_contiguous()


def test_in_threads_runs_every_job_once_and_raises_errors() -> None:
    seen: list[int] = []
    cs.in_threads(seen.append, list(range(37)))
    assert sorted(seen) == list(range(37))

    def boom(job: int) -> None:
        if job == 5:
            raise ValueError("job 5 failed")

    with pytest.raises(ValueError, match="job 5"):
        cs.in_threads(boom, list(range(8)))
