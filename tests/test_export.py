"""`imagent export --cube` and `--look`: a recipe out as a .cube, a user's .cube in as a step."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from evals.cube_check import delta_e
from tests.helpers import run_cli, sample
from tools.io import load_image, save_image
from tools.recipe import Recipe

WARM = Recipe().then("white_balance", {"temperature": 25}).then("contrast", {"amount": 20}).then(
    "saturation", {"amount": 20})


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """tmp_path with photo.png (16-bit), warm.json (colour only) and sharp.json (a spatial step)."""
    save_image(sample("astronaut", (96, 72)), tmp_path / "photo.png", bit_depth=16)
    (tmp_path / "warm.json").write_text(WARM.to_json())
    (tmp_path / "sharp.json").write_text(WARM.then("sharpen", {"amount": 1}).to_json())
    return tmp_path


def test_export_writes_a_cube_and_refuses_to_overwrite_it(work: Path, capsys) -> None:
    cube = work / "warm.cube"
    code, out, err = run_cli(["export", str(work / "warm.json"), "--cube", str(cube)], capsys)
    assert code == 0, err
    assert "33x33x33" in out and cube.read_text().splitlines()[1] == "LUT_3D_SIZE 33"
    before = cube.read_bytes()
    code, _, err = run_cli(["export", str(work / "warm.json"), "--cube", str(cube), "--size", "65"], capsys)
    assert code == 2 and "already exists; pass --overwrite" in err and cube.read_bytes() == before
    code, _, err = run_cli(["export", str(work / "warm.json"), "--cube", str(cube), "--size", "65", "--overwrite"], capsys)
    assert code == 0, err
    assert cube.read_text().splitlines()[1] == "LUT_3D_SIZE 65"
    assert [p.name for p in work.iterdir() if p.name.startswith(".")] == []  # no temp file left


@pytest.mark.parametrize(("args", "message"), [
    (["sharp.json", "--cube", "s.cube"], "step 4 `sharpen` is not colour-only (it looks at neighbouring pixels)"),
    (["warm.json", "--cube", "s.txt"], "must end in .cube"),
    (["warm.json", "--cube", "s.cube", "--size", "17"], "--size 17 is not offered"),
    (["missing.json", "--cube", "s.cube"], "cannot read recipe"),
])
def test_export_errors_are_one_line_and_exit_2(work: Path, args: list[str], message: str, capsys) -> None:
    argv = ["export", str(work / args[0]), *[str(work / a) if a.endswith((".cube", ".txt")) else a for a in args[1:]]]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (work / "s.cube").exists()


def test_look_round_trip_through_a_recipe(work: Path, capsys) -> None:
    """apply --look = a lut3d step: the exported look reapplied renders the recipe, and a recipe
    naming the .cube replays it from beside itself, refusing a changed file."""
    cube = work / "warm.cube"
    assert run_cli(["export", str(work / "warm.json"), "--cube", str(cube)], capsys)[0] == 0
    (work / "none.json").write_text(Recipe().to_json())
    code, _, err = run_cli(["apply", str(work / "none.json"), str(work / "photo.png"), "-o", str(work / "looked.png"),
                            "--look", str(cube)], capsys)
    assert code == 0, err
    assert run_cli(["apply", str(work / "warm.json"), str(work / "photo.png"), "-o", str(work / "ref.png")], capsys)[0] == 0
    mean, peak = delta_e(load_image(work / "looked.png").image, load_image(work / "ref.png").image)
    assert mean < 0.5 and peak < 3

    sha = hashlib.sha256(cube.read_bytes()).hexdigest()
    step = {"tool": "lut3d", "params": {"cube": "warm.cube", "sha256": sha}}
    (work / "named.json").write_text(json.dumps({"steps": [step]}))
    code, _, err = run_cli(["apply", str(work / "named.json"), str(work / "photo.png"), "-o", str(work / "again.png")],
                           capsys)
    assert code == 0, err
    assert (load_image(work / "again.png").image - load_image(work / "looked.png").image).abs().max() < 1e-4

    cube.write_text(cube.read_text() + "# edited\n")
    code, _, err = run_cli(["apply", str(work / "named.json"), str(work / "photo.png"), "-o", str(work / "x.png")], capsys)
    assert code == 2 and "is not the .cube the recipe was made with" in err
    (work / "out.json").write_text(json.dumps({"steps": [{**step, "params": {**step["params"], "cube": "../w.cube"}}]}))
    code, _, err = run_cli(["apply", str(work / "out.json"), str(work / "photo.png"), "-o", str(work / "x.png")], capsys)
    assert code == 2 and "outside the recipe's folder" in err
    (work / "bad.cube").write_text("LUT_3D_SIZE 2\n0 0 0\n")
    code, _, err = run_cli(["apply", str(work / "none.json"), str(work / "photo.png"), "-o", str(work / "x.png"),
                            "--look", str(work / "bad.cube")], capsys)
    assert code == 2 and "need 8 rows, found 1" in err


def test_edit_with_a_look_writes_a_recipe_that_replays(work: Path, tmp_path_factory, capsys) -> None:
    looks = tmp_path_factory.mktemp("looks")
    cube = looks / "warm.cube"
    assert run_cli(["export", str(work / "warm.json"), "--cube", str(cube)], capsys)[0] == 0
    out, rec = work / "edited.png", work / "edited.json"
    code, _, err = run_cli(["edit", str(work / "photo.png"), "-g", "brighten a bit", "-o", str(out), "--critic", "none",
                            "--recipe", str(rec), "--look", str(cube)], capsys)
    assert code in (0, 3), err
    steps = json.loads(rec.read_text())["steps"]
    assert steps[-1]["tool"] == "lut3d" and (work / "warm.cube").read_bytes() == cube.read_bytes()
    code, _, err = run_cli(["apply", str(rec), str(work / "photo.png"), "-o", str(work / "replayed.png")], capsys)
    assert code == 0, err
    assert (load_image(work / "replayed.png").image - load_image(out).image).abs().max() < 2 / 255


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (apt-get install ffmpeg)")
def test_ffmpeg_renders_the_exported_cube_as_imagent_does(work: Path, capsys) -> None:
    cube = work / "warm.cube"
    assert run_cli(["export", str(work / "warm.json"), "--cube", str(cube)], capsys)[0] == 0
    ff = work / "ffmpeg.png"
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(work / "photo.png"),
                    "-vf", f"lut3d=file={cube}:interp=tetrahedral", "-pix_fmt", "rgb48be", str(ff)],
                   check=True, capture_output=True, timeout=60)
    theirs = load_image(ff)
    assert theirs.bit_depth == 16 and theirs.mode == "RGB"
    assert run_cli(["apply", str(work / "warm.json"), str(work / "photo.png"), "-o", str(work / "ours.png")], capsys)[0] == 0
    mean, peak = delta_e(theirs.image, load_image(work / "ours.png").image)
    assert mean < 1 and peak < 3, (mean, peak)
    # the lut3d tool's tetrahedral interpolation is ffmpeg's: the same .cube gives the same pixels
    (work / "none.json").write_text(Recipe().to_json())
    assert run_cli(["apply", str(work / "none.json"), str(work / "photo.png"), "-o", str(work / "tool.png"),
                    "--look", str(cube)], capsys)[0] == 0
    mean, peak = delta_e(theirs.image, load_image(work / "tool.png").image)
    assert mean < 0.005 and peak < 0.05, (mean, peak)
