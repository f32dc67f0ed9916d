"""report.html for a run folder: one self-contained page (images and plots as data URIs).

Sections: the summary table (every system x metric, the best of each directional
metric in bold), metric distributions (matplotlib box plots), then one row per
case with input / reference / output thumbnails, each system's metrics, cost,
time and step trace.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Any

from evals.runner import SUMMARY, read_results, summarize

THUMB = 160  # long side of the thumbnails, px
PLOTTED = (("psnr", "PSNR (dB)"), ("ssim", "SSIM"), ("delta_e", "mean deltaE2000"), ("seconds", "seconds"))
CSS = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}.case img{display:block;max-width:160px}.trace{font:12px monospace;text-align:left;
white-space:pre-wrap;max-width:360px}.failed{color:#b00}.na{color:#888}figure{display:inline-block;margin:0 1em}"""


def thumbnail_uri(path: Path) -> str:
    """A PNG file as a JPEG data URI, long side at most THUMB px."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read {path}")
    h, w = img.shape[:2]
    if max(h, w) > THUMB:
        s = THUMB / max(h, w)
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 88])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


class OutsideRun(ValueError):
    """An image path in results.jsonl that leads outside the run folder."""


def run_file(out_dir: Path, rel: str) -> Path:
    """`rel` (a path from results.jsonl) inside the run folder after realpath; OutsideRun if not.

    results.jsonl is data that can be edited or shared: an absolute path, `..` or a link must not
    pull a file from elsewhere into a self-contained report."""
    root = os.path.realpath(out_dir)
    path = os.path.realpath(os.path.join(root, str(rel)))
    if os.path.commonpath([root, path]) != root:
        raise OutsideRun(f"{rel!r} is outside the run folder {out_dir}; results.jsonl may have been edited, "
                         "so the image is not shown")
    return Path(path)


def _img(out_dir: Path, rel: str, alt: str) -> str:
    try:
        return f'<img alt="{html.escape(alt)}" src="{thumbnail_uri(run_file(out_dir, rel))}">'
    except OutsideRun as exc:
        return f"<div class=failed>{html.escape(str(exc))}</div>"


def _fmt(v: Any, key: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if key == "usd":
            return f"{v:.4f}"
        return f"{v:.2f}" if abs(v) >= 10 or key in ("success", "seconds", "psnr") else f"{v:.3f}"
    return html.escape(str(v))


def _summary_table(rows: list[dict[str, Any]]) -> str:
    best: dict[str, float] = {}
    for key, _, direction in SUMMARY:
        vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        if direction and len(vals) > 1:
            best[key] = max(vals) if direction > 0 else min(vals)
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in SUMMARY)
    body = []
    for r in rows:
        cells = []
        for key, _, _ in SUMMARY:
            text = _fmt(r.get(key), key)
            cells.append(f"<td><b>{text}</b></td>" if key in best and r.get(key) == best[key] else f"<td>{text}</td>")
        body.append(f"<tr><th class=l>{html.escape(r['system'])}</th>{''.join(cells)}</tr>")
    return f"<table><tr><th class=l>system</th>{head}</tr>{''.join(body)}</table>"


def _plots(records: list[dict[str, Any]], systems: list[str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    for key, label in PLOTTED:
        data, names = [], []
        for s in systems:
            vals = [r["systems"][s][key] for r in records
                    if r.get("systems", {}).get(s, {}).get("status") == "ok" and isinstance(r["systems"][s].get(key), (int, float))]
            if vals:
                data.append(vals)
                names.append(s)
        if not data:
            continue
        fig, ax = plt.subplots(figsize=(4.2, 2.8), dpi=90)
        ax.boxplot(data, tick_labels=names, showmeans=True)
        ax.set_title(label)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        figures.append(f'<figure><img alt="{html.escape(label)} distribution" src="{uri}"></figure>')
    return "".join(figures)


def _case_rows(out_dir: Path, records: list[dict[str, Any]], systems: list[str]) -> str:
    cols = "".join(f"<th>{html.escape(s)}</th>" for s in systems)
    rows = []
    for r in records:
        first = [f"<b>{html.escape(r['case'])}</b><br>{html.escape(r.get('goal', ''))}<br>"
                 f"<small>{html.escape(Path(r.get('source', '')).name)}</small>"]
        if r.get("status") == "failed" and not r.get("systems"):
            first.append(f"<div class=failed>{html.escape(r.get('error') or 'failed')}</div>")
            rows.append(f"<tr class=case><td class=l>{''.join(first)}</td><td colspan={len(systems) + 2} class='l failed'>"
                        f"case failed: {html.escape(r.get('error') or '')}</td></tr>")
            continue
        cells = [f"<td class=l>{''.join(first)}</td>"]
        for key in ("input", "reference"):
            rel = r.get(key)
            if rel:
                extra = ""
                if key == "input" and r.get("input_metrics"):
                    m = r["input_metrics"]
                    extra = f"PSNR {_fmt(m.get('psnr'), 'psnr')} dB · dE {_fmt(m.get('delta_e'))}"
                cells.append(f"<td class=l>{_img(out_dir, rel, key)}{extra}</td>")
            else:
                cells.append("<td class=na>no reference: judged by targets</td>")
        for s in systems:
            e = r.get("systems", {}).get(s)
            if e is None:
                cells.append("<td class=na>not run</td>")
            elif e["status"] == "n/a":
                cells.append(f"<td class=na>n/a: {html.escape(e.get('note', ''))}</td>")
            elif e["status"] == "failed":
                cells.append(f"<td class='l failed'>failed: {html.escape(e.get('error', ''))}</td>")
            else:
                lines = []
                if e.get("psnr") is not None:
                    lines.append(f"PSNR {_fmt(e['psnr'], 'psnr')} · SSIM {_fmt(e.get('ssim'))} · dE {_fmt(e.get('delta_e'))}")
                if e.get("targets_total"):
                    lines.append(f"targets {e['targets_met']}/{e['targets_total']}")
                lock = " <span class=failed>lock broken</span>" if e.get("lock_violation") else ""
                lines.append(f"structure {_fmt(e.get('structure'))}{lock}")
                usd = "" if e.get("usd") is None else f" · ${e['usd']:.4f}"
                lines.append(f"{e.get('seconds', 0):.2f} s · {e.get('steps', 0)} steps · {e.get('model_calls', 0)} calls"
                             f" · {e.get('tokens', 0)} tok{usd}")
                trace = "\n".join(e.get("trace") or [])
                if e.get("stop_reason"):
                    trace += f"\n→ {e['stop_reason']}"
                if e.get("note"):
                    trace += f"\n{e['note']}"
                cells.append(f"<td class=l>{_img(out_dir, e['image'], f'{s} output')}"
                             f"{'<br>'.join(lines)}<div class=trace>{html.escape(trace.strip())}</div></td>")
        rows.append(f"<tr class=case>{''.join(cells)}</tr>")
    return (f"<table><tr><th class=l>case</th><th>input</th><th>reference</th>{cols}</tr>"
            f"{''.join(rows)}</table>")


def write_report(out_dir: str | Path) -> Path:
    """Render OUT/report.html from OUT/run.json and OUT/results.jsonl."""
    from tools.io import atomic_write_bytes

    out = Path(out_dir)
    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    systems = meta["systems"]
    order = {c: i for i, c in enumerate(meta.get("cases", []))}
    records = sorted(read_results(out).values(), key=lambda r: order.get(r["case"], len(order)))
    rows = summarize(records, systems)
    opts = ", ".join(f"{k}={v}" for k, v in meta.get("options", {}).items())
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>imagent eval: {html.escape(meta['suite'])}</title>"
            f"<style>{CSS}</style></head><body><h1>imagent eval: {html.escape(meta['suite'])}</h1>"
            f"<p>{len(records)} case(s), systems: {html.escape(', '.join(systems))}; engine {html.escape(meta.get('engine', ''))}"
            f"{'; ' + html.escape(opts) if opts else ''}. Best of each metric in <b>bold</b>; "
            "PSNR, SSIM, MS-SSIM and deltaE against the reference; structure against the input.</p>"
            f"<h2>Summary</h2>{_summary_table(rows)}<h2>Distributions</h2>{_plots(records, systems)}"
            f"<h2>Cases</h2>{_case_rows(out, records, systems)}</body></html>")
    return atomic_write_bytes(out / "report.html", page.encode("utf-8"))
