"""`imagent eval SUITE ...` and `imagent eval compare RUN_A RUN_B`: the eval harness from the shell.

The command lives with the harness, on top of the agent: this module adds it to `agent.cli.app`,
and the CLI finds it through the package's `imagent.commands` entry point (pyproject.toml), so
the agent layer never imports evals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli import app, console
from agent.errors import UserError


@app.command("eval")
def eval_cmd(
    suite: Annotated[str, typer.Argument(help="restore | retouch | match | a suite .json | compare (then two run folders)")],
    runs: Annotated[list[Path] | None, typer.Argument(help="compare: the two run folders, RUN_A RUN_B.", show_default=False)] = None,
    model: Annotated[list[str] | None, typer.Option("--model", help="Also run the agent with this planner (repeatable): provider:model, hf:/path.")] = None,
    critic: Annotated[str | None, typer.Option(help="Critic for the agent runs (passed to agent.api.edit when it supports one).")] = None,
    systems: Annotated[str | None, typer.Option(help="Comma list of systems to run instead of the default (identity,auto,oracle,fit,offline + --model).")] = None,
    limit: Annotated[int | None, typer.Option(help="Run only the first N cases.")] = None,
    engine: Annotated[str, typer.Option(help="local (threads) or ray (pip install 'imagent[ray]').")] = "local",
    workers: Annotated[int, typer.Option(help="Cases run at once (threads, or CPUs of a local Ray).")] = 1,
    ray_address: Annotated[str | None, typer.Option(help="Address of an existing Ray cluster (default: start one here).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (default out/eval/SUITE).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue a run in --out: only cases without a result are run.")] = False,
    images: Annotated[Path | None, typer.Option(help="Make the cases from your own photos in this folder.")] = None,
    size: Annotated[int | None, typer.Option(help="Long side (px) the sources are resized to (default: the suite's).")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL for --model.")] = None,
    metric: Annotated[str, typer.Option(help="compare: the metric to rank changed cases by.")] = "psnr",
    top: Annotated[int, typer.Option(help="compare: how many changed cases to list.")] = 5,
) -> None:
    """Run an eval suite through the baselines and the agent; write results, summary.csv and report.html.

    `imagent eval compare RUN_A RUN_B` prints per-metric deltas and the cases that changed most.
    """
    if suite == "compare":
        _compare(runs or [], metric, top)
        return
    if runs:
        raise UserError(f"unexpected argument(s) {' '.join(map(str, runs))}; only `eval compare` takes run folders")
    from rich.table import Table

    from evals.baselines import BASELINES, default_systems
    from evals.runner import SUMMARY, run_eval
    from evals.suites import load_suite

    if workers < 1:
        raise UserError(f"--workers {workers}: give at least 1")
    s = load_suite(suite, images=images, limit=limit, size=size)
    chosen = default_systems(s.generator.kind, list(model or []))
    if systems:
        chosen = list(dict.fromkeys([x.strip() for x in systems.split(",") if x.strip()] + list(model or [])))
        if not chosen:
            raise UserError("--systems is empty; name at least one of identity, auto, oracle, fit, offline")
    unknown = [x for x in chosen if x not in BASELINES and x not in ("offline", "rules") and ":" not in x]
    if unknown:
        raise UserError(f"unknown system(s) {', '.join(unknown)}: use {', '.join(BASELINES)}, offline, rules, "
                        "or a planner as provider:model / hf:/path")
    from agent.critics import check_specs

    for spec in [x for x in chosen if ":" in x] + [None]:  # a bad planner or critic fails once, here
        check_specs(spec, critic if spec is None else None, base_url)
    out_dir = out or Path("out/eval") / Path(suite).stem
    options = {"critic": critic, "base_url": base_url}
    console.print(f"suite {s.name}: {len(s.cases)} case(s), systems {', '.join(chosen)}, engine {engine} -> {out_dir}")
    rows = run_eval(s, chosen, out_dir, engine=engine, workers=workers, resume=resume, ray_address=ray_address,
                    options=options, console=console)
    table = Table(title=f"{s.name}: {len(s.cases)} case(s)", padding=(0, 0, 0, 1))
    shown = [(k, h) for k, h, _ in SUMMARY if k not in ("tool_calls", "tokens")
             and any(r.get(k) is not None for r in rows)]  # hole metrics only for inpainting suites
    cells = [[r["system"], *[_cell(r.get(k)) for k, _ in shown]] for r in rows]
    # values are never cut ("ident…"): each column is as wide as its widest value; headers wrap
    for i, header in enumerate(["system"] + [h for _, h in shown]):
        widest = max((len(c[i]) for c in cells), default=1)
        table.add_column(header, justify="left" if i == 0 else "right", min_width=widest, overflow="fold")
    for c in cells:
        table.add_row(*c)
    console.print(table)
    console.print(f"results: {out_dir / 'results.jsonl'}  summary: {out_dir / 'summary.csv'}  report: {out_dir / 'report.html'}")
    if rows and all(r["cases"] == 0 for r in rows):
        raise typer.Exit(1)


def _cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 100 else f"{v:.3f}"
    return str(v)


def _compare(runs: list[Path], metric: str, top: int) -> None:
    from rich.table import Table

    from evals.compare import compare_runs

    if len(runs) != 2:
        raise UserError("usage: imagent eval compare RUN_A RUN_B (two run folders)")
    result = compare_runs(runs[0], runs[1], metric=metric, top=top)
    table = Table(title=f"{runs[0]} -> {runs[1]}: {result['common']} common case(s), mean deltas (B - A)")
    table.add_column("system")
    for key in result["metrics"]:
        table.add_column(key, justify="right")
    for system, deltas in result["deltas"].items():
        table.add_row(system, *[_delta(deltas.get(k)) for k in result["metrics"]])
    console.print(table)
    for system, cases in result["changed"].items():
        if not cases:
            continue
        t = Table(title=f"{system}: cases that changed most in {metric}")
        for col in ("case", "A", "B", "delta"):
            t.add_column(col, justify="right" if col != "case" else "left")
        for c in cases:
            t.add_row(c["case"], _cell(c["a"]), _cell(c["b"]), _delta(c["delta"]))
        console.print(t)


def _delta(v: float | None) -> str:
    return "-" if v is None else f"{v:+.3f}"
