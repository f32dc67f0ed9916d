"""report.html: self-contained, every image of the run embedded, best of each metric in bold."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from evals.report import write_report
from evals.runner import read_results, run_eval
from evals.suites import Case, Suite, load_suite


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    suite = load_suite("restore", limit=2, size=40)
    broken = Case(id="restore-broken", kind="restore", source=str(out / "missing.png"), goal="restore this photo")
    suite = Suite(name=suite.name, generator=suite.generator, cases=[*suite.cases, broken])
    run_eval(suite, ["identity", "auto", "oracle"], out)
    return out


def test_report_embeds_every_image_and_nothing_external(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    pngs = sorted((run_dir / "images").rglob("*.png"))
    assert len(pngs) == 2 * (2 + 3), "input, reference and 3 outputs per good case"
    thumbs = re.findall(r'<img alt="[^"]*" src="(data:image/jpeg;base64,[^"]+)"', page)
    assert len(thumbs) == len(pngs), "one thumbnail per image of the run"
    plots = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(plots) >= 3, "PSNR, SSIM, deltaE and time distributions"
    assert not re.search(r'src="(?!data:)', page), "self-contained: no linked files"
    for uri in thumbs[:2]:
        img = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and max(img.shape[:2]) == 40
    assert "restore-broken" in page and "missing.png" in page, "the failed case is shown with its error"
    records = read_results(run_dir)
    trace = records["restore-000"]["systems"]["oracle"]["trace"]
    assert trace and trace[0] in page, "step trace shown"


def test_best_of_each_metric_is_bold(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    table = page.split("<h2>Summary</h2>", 1)[1].split("</table>", 1)[0]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"<tr><th class=l>(\w+)</th>(<td>.*?)</tr>", table)}
    assert set(rows) == {"identity", "auto", "oracle"}
    psnr_cells = {name: re.findall(r"<td>(.*?)</td>", cells)[2] for name, cells in rows.items()}
    best = max(psnr_cells, key=lambda n: float(re.sub(r"</?b>", "", psnr_cells[n])))
    assert psnr_cells[best].startswith("<b>") and sum(c.startswith("<b>") for c in psnr_cells.values()) == 1


def test_report_rerenders_from_the_folder_alone(run_dir: Path) -> None:
    before = (run_dir / "report.html").read_bytes()
    path = write_report(run_dir)
    assert path.read_bytes() == before
    assert not list(run_dir.glob(".*.tmp")), "no temporary file left"
