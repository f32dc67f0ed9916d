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

from agent.errors import ExitCode, UserError
from agent.runtime import pixel_policy, quiet_environment

app = typer.Typer(
    name="imagent",
    help="An agent that edits photos with typed, measurable tools.\n\n"
    "Exit statuses: 0 goal met; 1 other error; 2 usage error or bad input; 3 written but the goal "
    "not met; 4 nothing understood / nothing to do (batch: the worst photo's status).",
    rich_markup_mode=None,  # help text is plain: "pip install 'imagent[ray]'" keeps its brackets
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output (CI logs, `make demo | tee`) gets a readable width instead of 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=150)
err_console = Console(stderr=True, soft_wrap=True)  # one line, however long


MaxPixelsOpt = Annotated[int | None, typer.Option(
    help="Refuse images larger than this many pixels, in every decoder "
         "[default: IMAGENT_MAX_PIXELS or 100000000].")]


LookOpt = Annotated[Path | None, typer.Option(
    help="A .cube 3-D LUT (from Resolve, Lightroom, `imagent export`): applied as the last step.")]

# The models' flags (settings: agent.settings.Settings; IMAGENT_MODEL, IMAGENT_CRITIC, IMAGENT_BASE_URL)
ModelOpt = Annotated[str | None, typer.Option(
    help="offline | local (after `make llm`) | gguf:/path/model.gguf | provider:model (openai:gpt-4o-mini, ...) "
         "| hf:/local/path [default: offline]")]
CriticOpt = Annotated[str | None, typer.Option(
    help="offline | none | provider:model (a vision model) | hf:/local/path [default: offline]")]
BaseUrlOpt = Annotated[str | None, typer.Option(help="OpenAI-compatible server URL (vLLM, llama.cpp, LM Studio).")]

# The flags of an edit's options (agent.options.EditOptions), shared by edit, batch and chat;
# a flag left out (None) takes the setting (IMAGENT_*, imagent.toml), else EditOptions' default.
LockOpt = Annotated[float | None, typer.Option(help="Minimum structural similarity to the original (0-1) [default: 0.8].")]
MaxStepsOpt = Annotated[int | None, typer.Option(help="Most edits to try [default: 8].")]
MaxSecondsOpt = Annotated[float | None, typer.Option(help="Time budget in seconds [default: 120].")]
MaxCallsOpt = Annotated[int | None, typer.Option(help="Most model calls, planner and critic [default: 24].")]
MaxCostOpt = Annotated[float | None, typer.Option(help="Cost budget in USD (needs the models' prices).")]
PreviewOpt = Annotated[int | None, typer.Option(help="Long side of the working preview in px [default: 1024].")]
VisionOpt = Annotated[str | None, typer.Option(
    help="auto | on | off: show the planner the preview as an image (auto: when the model accepts images) "
         "[default: auto].")]
CritiqueEveryOpt = Annotated[int | None, typer.Option(
    help="With a model critic, critique the result every N turns [default: 1].")]


def edit_flags(*, settings: Any = None, max_calls: int | None = None, max_cost: float | None = None,
               **flags: Any) -> Any:
    """The EditOptions of a command's flags (the *Opt flags above: lock, max_steps, max_seconds,
    preview, vision, critique_every, max_pixels; max_calls, max_cost), `settings` (default: loaded)
    filling the rest."""
    from agent.configure import edit_options

    return edit_options(settings=settings, max_model_calls=max_calls, max_cost_usd=max_cost, **flags)


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    """Exit statuses: 0 goal met; 1 other error; 2 usage error or bad input; 3 written but the goal
    not met; 4 nothing understood / nothing to do (batch: the worst photo's status)."""


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
    max_pixels: MaxPixelsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stats as JSON.")] = False,
) -> None:
    """Size, mode, bit depth and the measured stats (exposure, contrast, cast, noise ...)."""
    from tools.analysis import measure
    from tools.io import load_image

    max_pixels = pixel_policy(max_pixels)
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
    look: LookOpt = None,
    max_pixels: MaxPixelsOpt = None,
) -> None:
    """Replay a recipe on a photo (deterministic: same recipe, same pixels)."""
    from agent.cubes import load_recipe_cubes, look_step
    from tools.io import load_image, save_image
    from tools.recipe import Recipe
    from tools.render8 import render_source

    check_outputs({"-o": output}, {"photo": image, "recipe": recipe, "--look": look}, overwrite=overwrite)
    max_pixels = pixel_policy(max_pixels)
    rec = Recipe.load(recipe)
    masks = load_recipe_masks(rec, recipe.parent, max_pixels)
    load_recipe_cubes(rec, recipe.parent)  # the .cube files of its lut3d steps, checked by sha256
    if look is not None:
        rec = rec.model_copy(update={"steps": [*rec.steps, look_step(look)]})
    src = load_image(image, max_pixels=max_pixels)
    out = render_source(src, rec, masks, bit_depth)  # one uint8 LUT when an 8-bit photo allows it
    path = save_image(out, output, like=src, quality=quality, bit_depth=bit_depth,
                      keep_metadata=keep_metadata, overwrite=overwrite, source=image)
    console.print(f"applied {len(rec.steps)} step(s) -> {path}")


@app.command("edit")
def edit_cmd(
    image: Annotated[Path, typer.Argument(help="Photo to edit (never modified).")],
    goal: Annotated[str, typer.Option("-g", "--goal", help='What you want, in words: "brighten a bit, fix the blue cast".')],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the edited photo.")],
    model: ModelOpt = None,
    critic: CriticOpt = None,
    reference: Annotated[Path | None, typer.Option(help="A photo whose look to match.")] = None,
    mask: Annotated[Path | None, typer.Option(help="Grayscale PNG (white = edit): restrict the goal to this region.")] = None,
    lock: LockOpt = None,
    max_steps: MaxStepsOpt = None,
    max_seconds: MaxSecondsOpt = None,
    max_calls: MaxCallsOpt = None,
    max_cost: MaxCostOpt = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds before a model request is retried [default: 60].")] = None,
    preview: PreviewOpt = None,
    vision: VisionOpt = None,
    critique_every: CritiqueEveryOpt = None,
    recipe: Annotated[Path | None, typer.Option(help="Also write the recipe (JSON) here.")] = None,
    trace: Annotated[Path | None, typer.Option(help="Also write the trace (JSON) here.")] = None,
    base_url: BaseUrlOpt = None,
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality 1-100.")] = 95,
    overwrite: Annotated[bool, typer.Option(help="Allow writing over the input file.")] = False,
    look: LookOpt = None,
    max_pixels: MaxPixelsOpt = None,
) -> None:
    """Edit one photo toward a goal: plan, apply, score, iterate; write the best version.

    With --look, the .cube is applied after the goal's edits (scores are measured before it).
    Exit status: 0 goal met, 3 written but not met, 4 nothing understood (nothing written).
    """
    from rich.live import Live

    from agent.api import edit
    from agent.cubes import copy_beside, look_step
    from tools.io import check_output_path, load_image

    check_outputs({"-o": output, "--recipe": recipe, "--trace": trace},
                  {"photo": image, "--reference": reference, "--mask": mask, "--look": look}, overwrite=overwrite)
    check_output_path(output, source=image, overwrite=overwrite)
    max_pixels = pixel_policy(max_pixels)
    options = edit_flags(lock=lock, max_steps=max_steps, max_seconds=max_seconds, max_calls=max_calls,
                         max_cost=max_cost, preview=preview, vision=vision, critique_every=critique_every,
                         max_pixels=max_pixels)  # a bad value fails before any photo is read
    looked = look_step(look, beside=recipe) if look is not None else None
    source = load_image(image, max_pixels=max_pixels)  # a bad input fails before any table is drawn
    region = None
    if mask is not None:
        from tools.masks import mask_from_image

        region = mask_from_image(load_image(mask, max_pixels=max_pixels).image)
    from rich.spinner import Spinner

    table = _steps_table()
    # a model may load first (the phrase embedder, a local LLM): something moves meanwhile
    waiting = Spinner("dots", text="reading the goal, loading the models, measuring the photo ...")
    with Live(waiting, console=console, refresh_per_second=8, transient=True) as live:
        def on_event(e: Any) -> None:
            _add_step_row(table, e)
            live.update(table)

        result = edit(source, goal, model=model, options=options, reference=reference, critic=critic,
                      region=region, on_event=on_event, base_url=base_url, timeout=timeout)
    if table.row_count:
        console.print(table)
    if result.outcome == "nothing" and not result.goal.intents:
        raise typer.Exit(_nothing_understood(result.goal))
    if looked is not None:  # re-rendered from the recipe: `imagent apply` gives the same pixels
        from tools.recipe import apply_recipe

        result.recipe = result.recipe.model_copy(update={"steps": [*result.recipe.steps, looked]})
        result.image = apply_recipe(source.image, result.recipe, result.masks)
    path = result.save(output, quality=quality, overwrite=overwrite)
    if recipe is not None:
        result.save_recipe(recipe)  # masks the agent made are written beside it
        if look is not None:
            copy_beside(look, recipe)
    if trace is not None:
        _write_text(trace, json.dumps(result.trace_dict(), indent=2, default=str))
    _print_result(result, path)
    raise typer.Exit(result.exit_code)


def check_outputs(outputs: dict[str, Path | None], inputs: dict[str, Path | None], *,
                  overwrite: bool | None = False) -> None:
    """Refuse, before any work, an output that is one of the inputs or another output.

    Only the image output may replace the photo it was made from, and only with --overwrite
    (`overwrite=None`: the command has no such flag); a recipe, a trace or an export never
    replaces an input (a typo must not cost a photo).
    """
    import os

    def same(a: Path, b: Path) -> bool:
        try:
            return a.exists() and b.exists() and os.path.samefile(a, b) or a.resolve() == b.resolve()
        except OSError:
            return a.resolve() == b.resolve()

    seen: dict[str, Path] = {}
    for flag, out in outputs.items():
        if out is None:
            continue
        if not out.parent.is_dir():
            raise UserError(f"{flag} {out}: the folder {out.parent} does not exist; create it first")
        for name, src in inputs.items():
            if src is None or not same(out, src):
                continue
            if flag == "-o" and name == "photo" and overwrite:
                continue
            fix = "choose another path or pass --overwrite" \
                if flag == "-o" and name == "photo" and overwrite is not None else "choose another path"
            raise UserError(f"refusing to overwrite the original: {flag} {out} is the {name} you gave "
                            f"as input; {fix}")
        for other, p in seen.items():
            if same(out, p):
                raise UserError(f"{flag} {out} is the same file as {other}; give each output its own path")
        seen[flag] = out


def _nothing_understood(goal: Any) -> int:
    words = "; ".join(goal.unmapped) or goal.instruction
    err_console.print(f"[bold red]nothing understood:[/] {words!r} maps to no edit; nothing was written. "
                      "Try words like \"brighter\", \"warmer\", \"more contrast\", \"remove the noise\".",
                      highlight=False)
    return ExitCode.NOTHING


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
    if result.outcome == "not_met":
        unmet = list(dict.fromkeys([t.label for t in s.targets if not t.met] + list(result.loop.unmet)))
        err_console.print(f"[yellow]goal not met:[/] {', '.join(unmet)} (best version written; exit 3)",
                          highlight=False)
    elif result.outcome == "nothing":
        err_console.print("nothing to do: the photo already meets the goal; an unchanged copy was "
                          "written (exit 4)", highlight=False)


def _write_text(path: Path, text: str) -> None:
    from tools.io import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


def load_recipe_masks(rec: Any, base: Path, max_pixels: int) -> dict[str, Any]:
    """Read the PNG masks a recipe names: relative paths that stay inside the recipe's folder.

    A recipe is data people share: an absolute path, `..` or a symlink out of the folder is
    refused before anything is read, so a recipe cannot make imagent open other files.
    """
    from agent.cubes import beside_recipe
    from tools.io import load_image

    masks = {}
    for name, spec in rec.masks.items():
        raw = spec.get("path") if isinstance(spec, dict) else None
        if not isinstance(raw, str) or not raw:
            raise UserError(f"recipe mask {name!r} has no \"path\"; give a grayscale PNG (white = edit) "
                            "beside the recipe")
        m = load_image(beside_recipe(base, raw, f"recipe mask {name!r}", "masks", "PNG"), max_pixels=max_pixels)
        masks[name] = m.image.mean(1, keepdim=True)
    return masks


PLUGIN_GROUP = "imagent.commands"  # entry points whose modules add commands to `app` (evals: `imagent eval`)


def _load_command_groups() -> None:
    """agent/commands/*, then the modules of the installed `imagent.commands` entry points: layers
    above the agent (the eval harness) add their commands without the agent importing them."""
    import importlib
    import pkgutil
    from importlib.metadata import entry_points

    import agent.commands

    for mod in sorted(m.name for m in pkgutil.iter_modules(agent.commands.__path__)):
        importlib.import_module(f"agent.commands.{mod}")
    for ep in entry_points(group=PLUGIN_GROUP):
        ep.load()


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can fix, from the modules already imported (importing torch for this
    would cost `imagent --help` a second)."""
    known: list[type[BaseException]] = [UserError, FileNotFoundError, IsADirectoryError, PermissionError]
    for module, names in (("tools.registry", ("ToolError",)), ("tools.io", ("ImageLoadError", "ImageSaveError"))):
        mod = sys.modules.get(module)
        known += [getattr(mod, n) for n in names if mod is not None and hasattr(mod, n)]
    return tuple(known)


# typer >= 0.22 bundles its own copy of click: its exceptions are not `click`'s, so they are
# found through a public typer name (pinned range in pyproject.toml).
_CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _command() -> Any:
    """The click command tree, with flags shown bare (typer 0.29 labels them `<bool>`)."""
    cmd = typer.main.get_command(app)
    todo = [cmd]
    while todo:
        c = todo.pop()
        todo += list(getattr(c, "commands", {}).values())
        for p in c.params:
            if getattr(p, "is_flag", False) and p.metavar is None:
                p.metavar = ""
    return cmd


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _show_warning(message: Any, category: type[Warning], *_: Any, **__: Any) -> None:
    err_console.print(f"[yellow]warning:[/] {_one_line(message)}", highlight=False, markup=True)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the app; every error is one line on stderr (`--debug`: traceback).

    Exit statuses (agent.errors.ExitCode): 0 goal met, 1 other error, 2 usage error or bad
    input, 3 written but goal not met, 4 nothing understood / nothing to do.
    """
    import warnings

    warnings.showwarning = _show_warning
    quiet_environment()  # before any library that reads it is imported
    _load_command_groups()
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        code = _command()(args=args, standalone_mode=False, prog_name="imagent")
        if isinstance(code, int) and code:  # click returns an Exit's code instead of raising
            sys.exit(code)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code or 0)
    except _CLICK_ERROR as exc:  # usage: unknown command or option, missing or bad value
        if debug:
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `imagent` / group: help was wanted
            ctx = getattr(exc, "ctx", None)
            if ctx is not None:
                print(ctx.get_help())
            sys.exit(ExitCode.USAGE)
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "imagent"
        err_console.print(f"[bold red]error:[/] {_one_line(exc.format_message())} (see `{where} --help`)",
                          highlight=False)
        sys.exit(ExitCode.USAGE)
    except KeyboardInterrupt:
        err_console.print("interrupted; nothing half-written was left behind", highlight=False)
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        if type(exc).__name__ == "Abort":
            sys.exit(130)
        if isinstance(exc, _user_errors()):
            err_console.print(f"[bold red]error:[/] {_one_line(exc)}", highlight=False)
            sys.exit(ExitCode.USAGE)
        err_console.print(f"[bold red]error:[/] {type(exc).__name__}: {_one_line(exc)} "
                          "(a bug or an environment problem; rerun with --debug for the traceback)",
                          highlight=False)
        sys.exit(ExitCode.ERROR)


if __name__ == "__main__":
    main()
