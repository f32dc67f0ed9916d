"""report.html embeds only images inside the run folder: a path in results.jsonl that leads
elsewhere (absolute, `..`, or a link) is refused, not read (issue 18, item 2)."""

from __future__ import annotations

import json
from pathlib import Path

from evals.report import write_report
from tests.helpers import sample
from tools.io import save_image


def test_image_paths_in_results_are_confined_to_the_run_folder(tmp_path: Path) -> None:
    run, secret = tmp_path / "run", tmp_path / "secret.png"
    (run / "images").mkdir(parents=True)
    save_image(sample("coffee", (40, 30)), secret)
    save_image(sample("astronaut", (40, 30)), run / "images" / "in.png")
    (run / "images" / "link.png").symlink_to(secret)
    (run / "run.json").write_text(json.dumps({"suite": "t", "systems": ["identity"], "cases": ["c1"]}))
    record = {"case": "c1", "goal": "g", "source": "in.png", "input": "../secret.png", "reference": "images/link.png",
              "systems": {"identity": {"status": "ok", "image": str(secret), "seconds": 0.1,
                                       "usd": None}}}
    (run / "results.jsonl").write_text(json.dumps(record) + "\n")
    page = write_report(run).read_text()
    assert "data:image/jpeg" not in page, "an image outside the run folder was embedded"
    assert page.count("is outside the run folder") == 3, "absolute, '..' and link each refused"
    record["input"] = "images/in.png"
    (run / "results.jsonl").write_text(json.dumps(record) + "\n")
    assert write_report(run).read_text().count("data:image/jpeg") == 1, "an image inside is still shown"
