"""`imagent` command line: tools, info, apply, edit, batch.

Heavy imports (torch, kornia, langchain) happen inside the commands so that
`imagent --help` answers at once. Errors print one clear line and exit non-zero;
`--debug` shows the traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from agent.errors import UserError

app = typer.Typer(
    name="imagent",
    help="An agent that edits photos with typed, measurable tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output (CI logs, `make demo | tee`) gets a readable width instead of 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=150)
err_console = Console(stderr=True, soft_wrap=True)  # one line, however long
_STATE = {"debug": False}


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    _STATE["debug"] = debug


@app.command("tools")
def tools_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON schemas the LLM sees.")] = False,
) -> None:
    """List the editing tools: name, family, flags and what each does."""
    from tools.registry import all_tools, json_schema

    tools = all_tools()
    if as_json:
        print(json.dumps([json_schema(t) for t in tools], indent=2))
        return
    table = Table(title=f"{len(tools)} tools")
    for col in ("tool", "family", "flags", "what it does", "arguments"):
        table.add_column(col, overflow="fold")
    for t in tools:
        flags = [f for f in ("per_channel", "pointwise", "read_only") if getattr(t, f)]
        if t.supports_mask and not t.read_only:
            flags.append("mask")
        args = []
        for name, f in t.params.model_fields.items():
            meta = {type(m).__name__: m for m in f.metadata}
            lo = getattr(meta.get("Ge"), "ge", None)
            hi = getattr(meta.get("Le"), "le", None)
            rng = f" [{lo}..{hi}]" if lo is not None and hi is not None else ""
            args.append(f"{name}{rng}")
        table.add_row(t.name, t.family, " ".join(flags), t.description, ", ".join(args))
    console.print(table)


@app.command("info")
def info_cmd(
    image: Annotated[Path, typer.Argument(help="Photo to inspect.")],
    max_pixels: Annotated[int, typer.Option(help="Refuse images larger than this many pixels.")] = 100_000_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stats as JSON.")] = False,
) -> None:
    """Size, mode, bit depth and the measured stats (exposure, contrast, cast, noise ...)."""
    from tools.analysis import measure
    from tools.io import load_image

    img = load_image(image, max_pixels=max_pixels)
    stats = measure(img.image)
    if as_json:
        print(json.dumps({"file": str(image), "format": img.format, "mode": img.mode,
                          "bit_depth": img.bit_depth, "alpha": img.alpha is not None,
                          "stats": stats.model_dump()}, indent=2))
        return
    w, h = img.size
    table = Table(title=f"{image.name}: {img.format} {w}x{h} ({w * h / 1e6:.1f} MP), {img.mode}, "
                        f"{img.bit_depth}-bit{', alpha' if img.alpha is not None else ''}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    for name, field in type(stats).model_fields.items():
        if name in ("width", "height"):
            continue
        value = getattr(stats, name)
        table.add_row(name, f"{value:.4g}" if isinstance(value, float) else str(value), field.description or "")
    console.print(table)
    console.print(stats.summary())


@app.command("apply")
def apply_cmd(
    recipe: Annotated[Path, typer.Argument(help="Recipe JSON (from `imagent edit --recipe` or hand-written).")],
    image: Annotated[Path, typer.Argument(help="Photo to apply it to, at full resolution.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the result.")],
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality 1-100.")] = 95,
    bit_depth: Annotated[int | None, typer.Option(help="8 or 16 (PNG/TIFF); default: the source's.")] = None,
    keep_metadata: Annotated[bool, typer.Option(help="Keep EXIF (GPS included).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Allow writing over the input file.")] = False,
    max_pixels: Annotated[int, typer.Option(help="Refuse images larger than this many pixels.")] = 100_000_000,
) -> None:
    """Replay a recipe on a photo (deterministic: same recipe, same pixels)."""
    from tools.io import load_image, save_image
    from tools.recipe import Recipe, apply_recipe

    rec = Recipe.load(recipe)
    masks = load_recipe_masks(rec, recipe.parent, max_pixels)
    src = load_image(image, max_pixels=max_pixels)
    out = apply_recipe(src.image, rec, masks)
    path = save_image(out, output, like=src, quality=quality, bit_depth=bit_depth,
                      keep_metadata=keep_metadata, overwrite=overwrite, source=image)
    console.print(f"applied {len(rec.steps)} step(s) -> {path}")


@app.command("edit")
def edit_cmd(
    image: Annotated[Path, typer.Argument(help="Photo to edit (never modified).")],
    goal: Annotated[str, typer.Option("-g", "--goal", help='What you want, in words: "brighten a bit, fix the blue cast".')],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the edited photo.")],
    model: Annotated[str | None, typer.Option(help="offline | provider:model (openai:gpt-4o-mini, ...) | hf:/local/path [default: offline]")] = None,
    critic: Annotated[str | None, typer.Option(help="offline | none | provider:model (a vision model) | hf:/local/path [default: offline]")] = None,
    reference: Annotated[Path | None, typer.Option(help="A photo whose look to match.")] = None,
    mask: Annotated[Path | None, typer.Option(help="Grayscale PNG (white = edit): restrict the goal to this region.")] = None,
    lock: Annotated[float, typer.Option(help="Minimum structural similarity to the original (0-1).")] = 0.80,
    max_steps: Annotated[int, typer.Option(help="Most edits to try.")] = 8,
    max_seconds: Annotated[float | None, typer.Option(help="Time budget in seconds [default: 120].")] = None,
    max_calls: Annotated[int | None, typer.Option(help="Most model calls, planner and critic [default: 24].")] = None,
    max_cost: Annotated[float | None, typer.Option(help="Cost budget in USD (needs the models' prices).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds before a model request is retried [default: 60].")] = None,
    preview: Annotated[int, typer.Option(help="Long side of the working preview in px.")] = 1024,
    recipe: Annotated[Path | None, typer.Option(help="Also write the recipe (JSON) here.")] = None,
    trace: Annotated[Path | None, typer.Option(help="Also write the trace (JSON) here.")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL (vLLM, llama.cpp, LM Studio).")] = None,
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality 1-100.")] = 95,
    overwrite: Annotated[bool, typer.Option(help="Allow writing over the input file.")] = False,
    max_pixels: Annotated[int, typer.Option(help="Refuse images larger than this many pixels.")] = 100_000_000,
) -> None:
    """Edit one photo toward a goal: plan, apply, score, iterate; write the best version."""
    from rich.live import Live

    from agent.api import edit
    from tools.io import check_output_path

    check_output_path(output, source=image, overwrite=overwrite)
    region = None
    if mask is not None:
        from tools.io import load_image
        from tools.masks import mask_from_image

        region = mask_from_image(load_image(mask, max_pixels=max_pixels).image)
    table = _steps_table()
    with Live(table, console=console, refresh_per_second=8, transient=False):
        result = edit(image, goal, model=model, reference=reference, lock=lock, max_steps=max_steps,
                      max_seconds=max_seconds, preview=preview, base_url=base_url, max_pixels=max_pixels,
                      on_event=lambda e: _add_step_row(table, e), critic=critic, max_model_calls=max_calls,
                      max_cost_usd=max_cost, timeout=timeout, region=region)
    console.print()  # the live table's last line ends without a newline
    path = result.save(output, quality=quality, overwrite=overwrite)
    if mask is not None:  # `apply` reads the user's own mask file
        result.recipe = result.recipe.model_copy(
            update={"masks": {**result.recipe.masks, "region": {"path": str(mask.resolve())}}})
    if recipe is not None:
        result.save_recipe(recipe)  # masks the agent made are written beside it
    if trace is not None:
        _write_text(trace, json.dumps(result.trace_dict(), indent=2, default=str))
    _print_result(result, path)


def _steps_table() -> Table:
    table = Table(title="steps")
    for col in ("turn", "tool", "params", "outcome", "structure", "score", "what changed"):
        table.add_column(col, overflow="fold")
    return table


def _add_step_row(table: Table, e: Any) -> None:
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in e.params.items() if v not in (0, 0.0, None, False, [], {}))
    colour = {"kept": "green", "rolled_back": "yellow", "error": "red"}.get(e.outcome, "white")
    table.add_row(str(e.turn), e.tool + (f" @{e.mask}" if e.mask else ""), params[:60],
                  f"[{colour}]{e.outcome}[/]", _fmt(e.structure), _fmt(e.combined), e.reason[:90])


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _print_result(result: Any, path: Path) -> None:
    s, s0 = result.score, result.original_score
    table = Table(title=f"result: {result.stop_reason}")
    table.add_column("")
    table.add_column("original", justify="right")
    table.add_column(f"chosen ({result.version})", justify="right")
    table.add_row("targets met", f"{s0.targets_met}/{s0.targets_total}", f"{s.targets_met}/{s.targets_total}")
    table.add_row("combined score", f"{s0.combined:.3f}", f"{s.combined:.3f}")
    table.add_row("structure vs original", "1.000", f"{s.structure:.3f}")
    for t in s.targets:
        before = next((x for x in s0.targets if x.label == t.label), None)
        table.add_row(t.label, _fmt(before.value if before else None), f"{_fmt(t.value)} {'ok' if t.met else 'not met'}")
    lr = result.loop
    table.add_row("model calls / tokens", "", f"{lr.model_calls} / {lr.input_tokens}+{lr.output_tokens}")
    if lr.usage.get("calls"):
        unpriced = lr.usage.get("unpriced_models") or []
        table.add_row("cost (USD)", "", f"{lr.cost_usd:.4f}" + (f" + unpriced {', '.join(unpriced)}" if unpriced else ""))
    crit = getattr(result.loop.best, "critique", None)
    if crit is not None:
        table.add_row(f"critic ({crit.critic})", "", f"{crit.score:.1f}/10 {'satisfied' if crit.goal_met else ', '.join(crit.issues)}"
                      + ("" if crit.reliable else " (unreliable)"))
    table.add_row("seconds", "", f"{lr.seconds:.1f}")
    console.print(table)
    if result.goal.unmapped:
        console.print(f"[yellow]not understood:[/] {'; '.join(result.goal.unmapped)}")
    console.print(f"wrote {path}")


def _write_text(path: Path, text: str) -> None:
    from tools.io import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


def load_recipe_masks(rec: Any, base: Path, max_pixels: int) -> dict[str, Any]:
    """Read the PNG masks a recipe names (paths relative to the recipe file)."""
    from tools.io import load_image

    masks = {}
    for name, spec in rec.masks.items():
        if "path" not in spec:
            raise UserError(f"recipe mask {name!r} has no \"path\"; give a grayscale PNG (white = edit)")
        p = Path(spec["path"])
        m = load_image(p if p.is_absolute() else base / p, max_pixels=max_pixels)
        masks[name] = m.image.mean(1, keepdim=True)
    return masks


def _load_command_groups() -> None:
    import importlib
    import pkgutil

    import agent.commands

    for mod in sorted(m.name for m in pkgutil.iter_modules(agent.commands.__path__)):
        importlib.import_module(f"agent.commands.{mod}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the app, turning known errors into one line."""
    _load_command_groups()
    from tools.registry import ToolError

    known: tuple[type[BaseException], ...] = (UserError, ToolError, FileNotFoundError)
    try:
        from tools.io import ImageLoadError, ImageSaveError

        known += (ImageLoadError, ImageSaveError)
    except ImportError:
        pass
    try:
        app(args=argv, standalone_mode=False)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code or 0)
    except known as exc:
        if _STATE["debug"]:
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except Exception as exc:  # click usage errors, aborts
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
