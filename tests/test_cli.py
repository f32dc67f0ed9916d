"""The `imagent` command line as a user runs it: one clear line on errors, files as promised."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import run_cli, sample
from tools.degrade import color_cast, underexpose
from tools.io import load_image, save_image


@pytest.fixture
def dark_png(tmp_path: Path) -> Path:
    p = tmp_path / "dark.png"
    save_image(color_cast(underexpose(sample("astronaut", (96, 72)), 1.3), r=0.9, b=1.2), p)
    return p


def test_tools_lists_every_tool_and_json_is_strict(capsys) -> None:
    code, out, _ = run_cli(["tools"], capsys)
    assert code == 0 and "exposure" in out and "white_balance" in out
    code, out, _ = run_cli(["tools", "--json"], capsys)
    specs = json.loads(out)
    assert code == 0 and all(s["function"]["strict"] for s in specs)
    assert {s["function"]["name"] for s in specs} >= {"exposure", "curves", "dehaze", "measure"}


def test_info_shows_size_depth_and_stats(dark_png: Path, capsys) -> None:
    code, out, _ = run_cli(["info", str(dark_png)], capsys)
    assert code == 0 and "96x72" in out and "8-bit" in out and "mean_L" in out
    code, out, _ = run_cli(["info", "--json", str(dark_png)], capsys)
    data = json.loads(out)
    assert data["stats"]["mean_L"] < 40 and data["bit_depth"] == 8


def test_apply_replays_a_recipe_and_refuses_to_overwrite_the_input(dark_png: Path, tmp_path: Path, capsys) -> None:
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"steps": [{"tool": "exposure", "params": {"stops": 1.3}}]}))
    out = tmp_path / "out.png"
    code, stdout, _ = run_cli(["apply", str(recipe), str(dark_png), "-o", str(out)], capsys)
    assert code == 0 and out.exists()
    assert load_image(out).image.mean() > load_image(dark_png).image.mean() + 0.1
    before = dark_png.read_bytes()
    code, _, err = run_cli(["apply", str(recipe), str(dark_png), "-o", str(dark_png)], capsys)
    assert code == 2 and "refusing to overwrite the original" in err and "Traceback" not in err
    assert dark_png.read_bytes() == before


@pytest.mark.parametrize(
    "setup, args, message",
    [
        ("text", ["info", "{p}"], "not"),
        ("missing", ["info", "{p}"], "no such file|does not exist|not found"),
        ("badrecipe", ["apply", "{r}", "{img}", "-o", "{o}"], "step 1: unknown tool 'sharpenn'"),
    ],
)
def test_errors_are_one_line_without_traceback(setup, args, message, tmp_path: Path, dark_png: Path, capsys) -> None:
    p = tmp_path / "x.png"
    if setup == "text":
        p.write_text("hello, not an image")
    r = tmp_path / "r.json"
    r.write_text('{"steps": [{"tool": "sharpenn"}]}')
    argv = [a.format(p=p, r=r, img=dark_png, o=tmp_path / "o.png") for a in args]
    code, _, err = run_cli(argv, capsys)
    assert code != 0
    assert "Traceback" not in err
    import re

    assert re.search(message, err, re.I), err


def test_edit_writes_output_recipe_and_trace_and_meets_the_goal(dark_png: Path, tmp_path: Path, capsys) -> None:
    out, rec, trace = tmp_path / "e.jpg", tmp_path / "e.json", tmp_path / "t.json"
    code, stdout, err = run_cli(["edit", str(dark_png), "-g", "fix the exposure and the blue cast", "-o", str(out),
                             "--recipe", str(rec), "--trace", str(trace)], capsys)
    assert code == 0, err
    assert out.exists() and "targets met" in stdout
    t = json.loads(trace.read_text())
    assert t["score"]["targets_met"] == t["score"]["targets_total"] and t["steps"]
    assert t["stats_after"]["mean_L"] > t["stats_before"]["mean_L"] + 10
    # the written recipe replays to the same picture
    code, _, _ = run_cli(["apply", str(rec), str(dark_png), "-o", str(tmp_path / "again.png")], capsys)
    again = load_image(tmp_path / "again.png").image
    edited = load_image(out).image
    assert (again - edited).abs().mean() < 0.02  # JPEG vs PNG of the same pixels


def test_batch_finishes_the_rest_and_reports_a_corrupt_and_a_huge_file(tmp_path: Path, capsys) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i, name in enumerate(["astronaut", "coffee"]):
        save_image(underexpose(sample(name, (80, 60)), 1.2), src / f"ok{i}.png")
    (src / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    save_image(torch.full((1, 3, 40, 40), 0.5), src / "huge.png")
    snapshot = {p.name: p.read_bytes() for p in src.iterdir()}
    code, out, err = run_cli(["batch", str(src), "-g", "brighten it", "-o", str(dst), "--max-pixels", "1000"], capsys)
    rows = {r["file"]: r for r in csv.DictReader((dst / "summary.csv").open())}
    assert rows["huge.png"]["status"] == "unreadable" and "limit" in rows["huge.png"]["error"]
    assert rows["corrupt.jpg"]["status"] == "unreadable"
    # 80x60 = 4800 px is over 1000 too: give the good ones room and run again
    code, out, err = run_cli(["batch", str(src), "-g", "brighten it", "-o", str(dst), "--max-pixels", "5000"], capsys)
    rows = {r["file"]: r for r in csv.DictReader((dst / "summary.csv").open())}
    assert code == 2  # the worst photo decides: corrupt.jpg is unreadable
    assert rows["ok0.png"]["status"] == "ok" and rows["ok1.png"]["status"] == "ok"
    assert rows["corrupt.jpg"]["status"] == "unreadable" and rows["huge.png"]["status"] == "ok"
    assert (dst / "ok0.png").exists() and not (dst / "corrupt.jpg").exists()
    assert {p.name: p.read_bytes() for p in src.iterdir()} == snapshot, "originals untouched"


def test_batch_reports_a_bad_model_once_before_any_photo(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        save_image(sample("coffee", (48, 32)), src / f"p{i}.png")
    for flag, spec, says in (("--model", "openai:gpt-4o-mini", "OPENAI_API_KEY"), ("--critic", "nosuch", "critic")):
        code, out, err = run_cli(["batch", str(src), "-g", "brighten", "-o", str(tmp_path / "out"), flag, spec], capsys)
        assert code != 0 and says in err and err.count("error") == 1, err
        assert not (tmp_path / "out").exists(), "nothing is written for a batch that cannot run"
    code, _, err = run_cli(["eval", "restore", "--model", "openai:gpt-4o-mini", "--limit", "1", "-o",
                            str(tmp_path / "ev")], capsys)
    assert code != 0 and "OPENAI_API_KEY" in err and not (tmp_path / "ev").exists()


def test_batch_refuses_to_write_into_the_input_folder(tmp_path: Path, capsys) -> None:
    save_image(sample(), tmp_path / "a.png")
    code, _, err = run_cli(["batch", str(tmp_path), "-g", "brighten", "-o", str(tmp_path)], capsys)
    assert code != 0 and "input folder" in err


def test_console_script_help_is_fast_and_lists_commands() -> None:
    exe = Path(sys.executable).with_name("imagent")
    res = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    for cmd in ("edit", "batch", "apply", "tools", "info"):
        assert cmd in res.stdout
    assert np is not None


def test_batch_on_ray_gives_the_same_results_as_local(tmp_path: Path, capsys, ray_cluster: None) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i, name in enumerate(["astronaut", "chelsea"]):
        save_image(underexpose(sample(name, (64, 48)), 1.2), src / f"p{i}.png")
    out = {}
    for engine in ("local", "ray"):
        dst = tmp_path / engine
        code, _, err = run_cli(["batch", str(src), "-g", "brighten it", "-o", str(dst), "--engine", engine,
                            "--workers", "2"], capsys)
        assert code == 0, err
        out[engine] = {r["file"]: (r["status"], r["mean_L_after"]) for r in csv.DictReader((dst / "summary.csv").open())}
    assert out["ray"] == out["local"] and all(s == "ok" for s, _ in out["local"].values())
    for name in ("p0.png", "p1.png"):
        assert torch.equal(load_image(tmp_path / "ray" / name).image, load_image(tmp_path / "local" / name).image)


@pytest.mark.parametrize("args", [
    [], ["foo"], ["edit", "photo.jpg", "-o", "x.png"], ["edit", "p.jpg", "-g", "hi", "-o", "x.png", "--max-steps", "abc"],
    ["edit", "--keep-metadata"], ["batch"], ["inpaint", "p.jpg"],
])
def test_usage_errors_are_one_line_and_exit_2(args: list[str], capsys) -> None:
    code, out, err = run_cli(args, capsys)
    assert code == 2 and "Traceback" not in out + err
    if args:  # a bare `imagent` prints the help instead
        assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1 and "--help" in err


def test_help_lists_exit_statuses_and_keeps_brackets(capsys) -> None:
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0 and "3 written but the goal" in " ".join(out.split()) and "<bool>" not in out
    code, out, _ = run_cli(["batch", "--help"], capsys)
    assert "imagent[ray]" in out and "<bool>" not in out


def test_an_unexpected_error_is_one_line_with_the_debug_hint(dark_png: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    import tools.analysis

    monkeypatch.setattr(tools.analysis, "measure", lambda *a, **k: 1 / 0)
    code, out, err = run_cli(["info", str(dark_png)], capsys)
    assert code == 1 and "ZeroDivisionError" in err and "--debug" in err and "Traceback" not in err
    with pytest.raises(ZeroDivisionError):
        run_cli(["--debug", "info", str(dark_png)], capsys)


def test_edit_exit_status_tells_met_not_met_and_nothing_understood(dark_png: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "o.png"
    code, _, _ = run_cli(["edit", str(dark_png), "-g", "brighten a bit", "-o", str(out), "--critic", "none"], capsys)
    assert code == 0 and out.exists()
    out.unlink()
    code, _, err = run_cli(["edit", str(dark_png), "-g", "xyzzy plugh", "-o", str(out)], capsys)
    assert code == 4 and "nothing understood" in err and "xyzzy plugh" in err and not out.exists()
    # structure locked at 0.999: the contrast boost asked for cannot be reached
    code, _, err = run_cli(["edit", str(dark_png), "-g", "much more contrast", "-o", str(out), "--lock", "0.999",
                            "--critic", "none", "--max-steps", "2"], capsys)
    assert code == 3 and "goal not met" in err and out.exists()


@pytest.mark.parametrize("flag", ["--recipe", "--trace"])
def test_a_side_output_never_replaces_an_input(flag: str, dark_png: Path, tmp_path: Path, capsys) -> None:
    before = dark_png.read_bytes()
    code, _, err = run_cli(["edit", str(dark_png), "-g", "brighter", "-o", str(tmp_path / "o.png"), flag, str(dark_png)], capsys)
    assert code == 2 and "refusing to overwrite" in err and dark_png.read_bytes() == before
    assert not (tmp_path / "o.png").exists()
    code, _, err = run_cli(["edit", str(dark_png), "-g", "brighter", "-o", str(tmp_path / "o.png"),
                            flag, str(tmp_path / "o.png")], capsys)
    assert code == 2 and "same file" in err


@pytest.mark.parametrize("where", ["../outside.png", "ABS", "link.png"])
def test_apply_refuses_recipe_masks_outside_the_recipe_folder(where: str, dark_png: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "recipes"
    folder.mkdir()
    outside = tmp_path / "outside.png"
    save_image(torch.ones(1, 3, 72, 96), outside)
    if where == "ABS":
        where = str(outside)
    if where == "link.png":
        (folder / "link.png").symlink_to(outside)
    recipe = folder / "r.json"
    recipe.write_text(json.dumps({"steps": [{"tool": "exposure", "params": {"stops": 1}, "mask": "m"}],
                                  "masks": {"m": {"path": where}}}))
    code, _, err = run_cli(["apply", str(recipe), str(dark_png), "-o", str(tmp_path / "o.png")], capsys)
    assert code == 2 and "outside the recipe's folder" in err and not (tmp_path / "o.png").exists()


def test_a_warning_is_one_line_without_a_source_line(tmp_path: Path, capsys) -> None:
    rgba = torch.rand(1, 3, 32, 32)
    src = tmp_path / "alpha.png"
    from PIL import Image

    Image.fromarray((np.dstack([rgba[0].permute(1, 2, 0).numpy(), np.full((32, 32, 1), 0.5)]) * 255)
                    .astype(np.uint8), "RGBA").save(src)
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"steps": [{"tool": "exposure", "params": {"stops": 0.5}}]}))
    code, _, err = run_cli(["apply", str(recipe), str(src), "-o", str(tmp_path / "o.jpg")], capsys)
    lines = err.strip().splitlines()
    assert code == 0 and len(lines) == 1 and lines[0].startswith("warning:") and "UserWarning" not in err


def test_edit_takes_vision_and_critique_every_through_edit_options(dark_png: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "o.png"
    for flag, value in (("--vision", "sometimes"), ("--critique-every", "0"), ("--lock", "2")):
        code, _, err = run_cli(["edit", str(dark_png), "-g", "brighten a bit", "-o", str(out), flag, value], capsys)
        assert code == 2 and f"edit option '{flag[2:].replace('-', '_')}'" in err and not out.exists(), err
        assert len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["edit", str(dark_png), "-g", "brighten a bit", "-o", str(out), "--critic", "none",
                            "--vision", "off", "--critique-every", "2"], capsys)
    assert code == 0 and out.exists(), err
    code, out_text, _ = run_cli(["chat", "--help"], capsys)
    assert "--vision" in out_text and "--critique-every" in out_text
