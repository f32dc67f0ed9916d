"""The eval runner: a tiny suite end to end, Ray = local, resume, a failing case, the CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from agent.errors import UserError
from evals.compare import compare_runs
from evals.runner import read_results, run_eval
from evals.suites import load_suite
from tests.helpers import run_cli, sample
from tools.io import save_image

AGENT_SYSTEMS = ["identity", "oracle", "offline"]


def _tiny(count: int = 2):
    return load_suite("restore", limit=count, size=48)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    run_eval(_tiny(), AGENT_SYSTEMS, out, report=False)
    return out


def _without_time(rec: dict) -> dict:
    rec = json.loads(json.dumps(rec))
    for e in rec["systems"].values():
        e.pop("seconds", None)
    return rec


def test_tiny_suite_end_to_end_on_the_local_engine(local_run: Path) -> None:
    lines = (local_run / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["case"] for x in lines] == ["restore-000", "restore-001"]
    records = read_results(local_run)
    for rec in records.values():
        assert rec["status"] == "ok" and set(rec["systems"]) == set(AGENT_SYSTEMS)
        ident, orc, agent = (rec["systems"][s] for s in AGENT_SYSTEMS)
        assert ident["psnr"] == pytest.approx(rec["input_metrics"]["psnr"])
        assert orc["psnr"] >= ident["psnr"] - 1e-6, "undoing the known degradation never hurts"
        assert agent["model_calls"] >= 1 and agent["tool_calls"] >= agent["steps"]
        # one trace line per tool call (the offline planner may rightly find nothing to do on a case)
        assert len(agent["trace"]) >= agent["tool_calls"] and all(isinstance(t, str) for t in agent["trace"])
        for e in rec["systems"].values():
            assert (local_run / e["image"]).is_file()
            assert all(math.isfinite(e[k]) for k in ("psnr", "ssim", "delta_e", "structure"))
            assert isinstance(e["success"], bool) and e["targets_total"] == 4
    assert any(r["systems"]["offline"]["trace"] for r in records.values()), "the agent edited at least one case"
    rows = list(csv.DictReader((local_run / "summary.csv").open()))
    assert [r["system"] for r in rows] == AGENT_SYSTEMS
    assert all(r["cases"] == "2" and r["failed"] == "0" for r in rows)
    assert float(rows[0]["usd"]) == 0.0


def test_ray_engine_gives_the_local_results(local_run: Path, tmp_path: Path, ray_cluster: None) -> None:
    run_eval(_tiny(), AGENT_SYSTEMS, tmp_path, engine="ray", workers=2, report=False)
    local, ray = read_results(local_run), read_results(tmp_path)
    assert ray.keys() == local.keys()
    for case in local:
        assert _without_time(ray[case]) == _without_time(local[case])


def test_resume_after_an_interruption(tmp_path: Path) -> None:
    suite = _tiny(3)
    systems = ["identity", "auto"]

    def stop(rec: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_eval(suite, systems, tmp_path, on_record=stop, report=False)
    first = read_results(tmp_path)
    assert len(first) == 1
    with (tmp_path / "results.jsonl").open("a") as f:
        f.write('{"case": "restore-00')  # a line torn by the crash
    with pytest.raises(UserError, match="--resume"):
        run_eval(suite, systems, tmp_path, report=False)
    ran: list[str] = []
    run_eval(suite, systems, tmp_path, resume=True, on_record=lambda r: ran.append(r["case"]), report=False)
    done = read_results(tmp_path)
    assert sorted(done) == ["restore-000", "restore-001", "restore-002"]
    assert len(ran) == 2 and not set(ran) & set(first), "finished cases are not run again"
    (case,) = first
    assert _without_time(done[case]) == _without_time(first[case])
    ran.clear()
    run_eval(suite, systems, tmp_path, resume=True, on_record=lambda r: ran.append(r["case"]), report=False)
    assert ran == []
    with pytest.raises(UserError, match="suite 'restore', not 'retouch'"):
        run_eval(load_suite("retouch", limit=1, size=40), systems, tmp_path, resume=True, report=False)


def test_a_corrupt_case_is_recorded_and_the_rest_complete(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    save_image(sample("coffee", (60, 40)), photos / "a.png")
    save_image(sample("chelsea", (60, 40)), photos / "b.png")
    (photos / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    suite = load_suite("retouch", images=photos, limit=3)
    rows = run_eval(suite, ["identity", "auto"], tmp_path / "out", report=False)
    records = read_results(tmp_path / "out")
    by_source = {Path(r["source"]).name: r for r in records.values()}
    assert by_source["c.png"]["status"] == "failed" and "c.png" in by_source["c.png"]["error"]
    assert by_source["a.png"]["status"] == by_source["b.png"]["status"] == "ok"
    assert all(r["cases"] == 2 and r["failed"] == 1 for r in rows)



def test_cli_eval_and_compare(tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    base = ["eval", "match", "--limit", "2", "--size", "40"]
    code, out, err = run_cli([*base, "--systems", "identity", "--out", str(a)], capsys)
    assert code == 0, err
    assert (a / "report.html").is_file() and "identity" in out
    code, out, err = run_cli([*base, "--systems", "identity,fit", "--out", str(b)], capsys)
    assert code == 0, err
    code, out, err = run_cli(["eval", "compare", str(a), str(b)], capsys)
    assert code == 0, err
    assert "2 common case(s)" in out and "identity" in out
    cmp = compare_runs(a, b)
    assert cmp["deltas"]["identity"]["psnr"] == 0.0 and cmp["changed"]["identity"] == []
    code, _, err = run_cli(["eval", "compare", str(a)], capsys)
    assert code == 2 and "two run folders" in err
    code, _, err = run_cli([*base, "--systems", "identity", "--out", str(a)], capsys)
    assert code == 2 and "--resume" in err
    code, _, err = run_cli([*base, "--systems", "bogus", "--out", str(tmp_path / "c")], capsys)
    assert code == 2 and "unknown system" in err
    code, _, err = run_cli(["eval", "restore", "--engine", "spark", "--out", str(tmp_path / "d")], capsys)
    assert code == 2 and "local or ray" in err
