"""The Python API: `edit(image_or_path, goal, options=EditOptions(...), **options) -> EditResult`.

    from agent.api import edit
    result = edit("photo.jpg", "brighten a bit and fix the blue cast")
    result = edit("photo.jpg", "warmer", lock=0.9, max_steps=4)   # single options as keywords
    result.save("photo-edited.jpg")
    print(result.summary())
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from agent import wishes
from agent.accounting import Accountant, model_key, price_of
from agent.chat import Session  # noqa: F401  (conversational sessions: Session.open(...).say(...))
from agent.configure import BUDGET_FIELDS, OPTION_FIELDS, edit_options, loop_options
from agent.critics import make_critic
from agent.errors import ExitCode, UserError
from agent.goals import Goal, parse_goal
from agent.loop import LoopResult, TraceEntry, run_loop
from agent.natural import natural_of
from agent.options import EditOptions
from agent.planners import make_planner
from agent.settings import Settings, load_settings
from agent.state import EditSession, preview_of
from tools.analysis import measure
from tools.io import LoadedImage, atomic_write_bytes, load_image, pixel_limit, save_image
from tools.masks import fit_mask
from tools.recipe import Recipe, apply_recipe


@dataclass
class EditResult:
    """What an edit produced: the full-resolution image, how to reproduce it, and why it stopped."""

    image: torch.Tensor  # (1,3,H,W) full resolution
    recipe: Recipe
    goal: Any  # agent.goals.Goal
    score: Any  # agent.scoring.Score of the chosen version
    original_score: Any
    stats_before: Any  # tools.analysis.Stats (preview)
    stats_after: Any
    version: str
    stop_reason: str
    loop: LoopResult
    source: Any = None  # tools.io.LoadedImage when loaded from a file
    masks: dict[str, torch.Tensor] = field(default_factory=dict)  # full-size masks the recipe names

    def save_recipe(self, path: str | Path) -> Path:
        """Write the recipe as JSON, with every mask it uses as a 16-bit PNG beside it.

        `imagent apply` then replays it exactly, masks the agent made (faces, sky) included.
        """
        path = Path(path)
        used = sorted({s.mask for s in self.recipe.steps if s.mask is not None})
        masks = dict(self.recipe.masks)
        for name in used:
            if name in self.masks and "path" not in masks.get(name, {}):
                png = path.with_name(f"{path.stem}.mask-{name}.png")
                save_image(self.masks[name].expand(-1, 3, -1, -1), png, bit_depth=16)
                masks[name] = {"path": png.name}
        rec = self.recipe.model_copy(update={"masks": masks})
        return atomic_write_bytes(path, rec.to_json().encode("utf-8"))

    @property
    def outcome(self) -> str:
        """"met" | "not_met" | "nothing" (nothing understood or nothing done): the exit status's source."""
        if not self.goal.intents:
            return "nothing"
        if self.score.targets_total:  # every target met and the critic, if any, satisfied (LoopResult.goal_met)
            met = self.score.targets_met == self.score.targets_total and self.loop.goal_met
            return "met" if met else "not_met"
        return "met" if self.recipe.steps else "nothing"

    @property
    def exit_code(self) -> int:
        return {"met": ExitCode.MET, "not_met": ExitCode.NOT_MET, "nothing": ExitCode.NOTHING}[self.outcome]

    @property
    def trace(self) -> list[TraceEntry]:
        return self.loop.trace

    def save(self, path: str | Path, **options: Any) -> Path:
        """Write the image (atomic; refuses to overwrite the source unless overwrite=True)."""
        src = self.source
        return save_image(self.image, path, like=src, source=getattr(src, "path", None), **options)

    def trace_dict(self) -> dict[str, Any]:
        """The run as JSON-ready data: goal, every step, scores, accounting."""
        lr = self.loop
        return {
            "goal": self.goal.model_dump(mode="json"),
            "stop_reason": self.stop_reason,
            "chosen_version": self.version,
            "score": self.score.model_dump(mode="json"),
            "original_score": self.original_score.model_dump(mode="json"),
            "stats_before": self.stats_before.model_dump(),
            "stats_after": self.stats_after.model_dump(),
            "steps": [e.__dict__ for e in lr.trace],
            "turns": lr.turns,
            "model_calls": lr.model_calls,
            "input_tokens": lr.input_tokens,
            "output_tokens": lr.output_tokens,
            "seconds": round(lr.seconds, 3),
            "cost_usd": lr.cost_usd,
            "usage": lr.usage,
            "recipe": json.loads(self.recipe.to_json()),
        }

    def summary(self) -> str:
        s = self.score
        return (f"{self.stop_reason}; chose {self.version} ({len(self.recipe.steps)} step(s)); "
                f"targets met {s.targets_met}/{s.targets_total}; structure {s.structure:.3f}; "
                f"{self.stats_before.summary()} -> {self.stats_after.summary()}")


def edit(
    image: str | Path | torch.Tensor | LoadedImage,
    goal: str | Goal,
    *,
    model: str | Any | None = None,
    options: EditOptions | None = None,
    reference: str | Path | torch.Tensor | None = None,
    critic: str | Any | None = None,
    masks: dict[str, torch.Tensor] | None = None,
    region: torch.Tensor | None = None,
    settings: Settings | None = None,
    on_event: Any = None,
    **flat: Any,
) -> EditResult:
    """Edit a photo toward a goal in words; returns the best version found.

    `image`: a path, a (1,3,H,W) tensor in [0,1], or a `tools.io.LoadedImage`.
    `goal`: an instruction ("brighten a bit and fix the blue cast") or an `agent.goals.Goal`.
    `model`: "offline" (embedded planner), "provider:model", "hf:/path", or a LangChain chat model.
    `options`: an `agent.options.EditOptions` (lock, budget, preview, prior, vision, ...); `flat`
    keywords set single options on top of it (`lock=0.7`, `max_steps=4`, `prior=False`: the
    EditOptions and Budget fields) or, for the names of settings (`base_url`, `timeout`,
    `max_retries`, ...), override `settings` (default: `agent.settings.load_settings()`:
    IMAGENT_* variables and imagent.toml), which also fill the budgets left unset.
    `region`: a (1,1,H,W) mask (white = edit): every edit is confined to it and the photo is
    measured inside its bounding box (`imagent edit --mask`).
    `critic`: "offline" (measurements), "none", "provider:model" (a vision model), or a critic object.
    """
    given = {k: v for k, v in flat.items() if k not in BUDGET_FIELDS and k not in OPTION_FIELDS}
    unknown = sorted(set(given) - set(Settings.model_fields))
    if unknown:
        raise TypeError(f"edit() got unknown option(s) {', '.join(unknown)}; options: "
                        f"{', '.join(BUDGET_FIELDS + OPTION_FIELDS)}; settings: {', '.join(Settings.model_fields)}")
    cfg = settings or load_settings(model=model if isinstance(model, str) else None,
                                    critic=critic if isinstance(critic, str) else None, **given)
    opts = edit_options(options, cfg, **{k: v for k, v in flat.items() if k not in given})
    planner, judge = _models(cfg, model, critic)  # a missing package or key fails before any image is read
    accountant = Accountant(prices=dict(cfg.prices))
    source, full = _load(image, opts.max_pixels or pixel_limit())
    ref = None
    if reference is not None:
        ref = load_image(reference, max_pixels=opts.max_pixels or pixel_limit()).image \
            if isinstance(reference, (str, Path)) else reference
    start = _Start(goal, opts, masks or {}, region, ref)
    session, g = start(full)
    # Direct wishes (a look, a vignette; crop, rotate, flip): applied as asked, not searched for.
    # A look is the new starting point of the measured edits, the framing comes after them.
    before, after = wishes.recipes(g)
    if before.steps:
        session, g = start(apply_recipe(full, before))
    _check_prices(g.budget, accountant, planner, judge)
    result = run_loop(session, g, planner, loop_options(opts, g), reference=ref, on_event=on_event, critic=judge,
                      accountant=accountant, region="region" if region is not None else None)
    return _result(session, g, result, full, source, before, after)


def _models(cfg: Settings, model: str | Any | None, critic: str | Any | None) -> tuple[Any, Any]:
    """The planner and the critic: objects as given, names made from the settings."""
    calls = {"timeout": cfg.timeout, "max_retries": cfg.max_retries}
    planner = model if model is not None and not isinstance(model, str) else \
        make_planner(cfg.model, base_url=cfg.base_url, **calls)
    judge = critic if critic is not None and not isinstance(critic, str) else \
        make_critic(cfg.critic, base_url=cfg.critic_base_url or cfg.base_url, **calls)
    return planner, judge


def _load(image: str | Path | torch.Tensor | LoadedImage, max_pixels: int) -> tuple[LoadedImage | None, torch.Tensor]:
    """(the loaded file or None, the (1,3,H,W) image) of `edit`'s `image` argument."""
    source = None
    if isinstance(image, (str, Path)):
        source = load_image(image, max_pixels=max_pixels)
    elif isinstance(image, LoadedImage):
        source = image
    full = source.image if source is not None else image
    if not isinstance(full, torch.Tensor) or full.ndim != 4 or full.shape[:2] != (1, 3):
        raise ValueError("image must be a path, a LoadedImage or a (1,3,H,W) tensor in [0,1]")
    return source, full


@dataclass
class _Start:
    """An edit's starting point on an image: its EditSession (masks, region) and its parsed Goal."""

    goal: str | Goal
    options: EditOptions
    masks: dict[str, torch.Tensor]
    region: torch.Tensor | None
    reference: torch.Tensor | None

    def __call__(self, image: torch.Tensor) -> tuple[EditSession, Goal]:
        opts = self.options
        session = EditSession(image, preview_size=opts.preview)
        for name, m in self.masks.items():
            session.add_mask(name, m)
        if self.region is not None:
            session.add_mask("region", fit_mask(self.region, image, where="--mask"))
        if isinstance(self.goal, Goal):
            return session, self.goal
        ref_stats = None if self.reference is None else measure(preview_of(self.reference, opts.preview))
        seen = session.measure("v0", "region" if self.region is not None else None)
        natural = None
        if opts.prior and self.region is None:
            natural = lambda: natural_of(session.original)  # noqa: E731
        return session, parse_goal(str(self.goal), seen, reference_stats=ref_stats, lock=opts.lock,
                                   budget=opts.budget, natural=natural,
                                   image_size=(int(image.shape[-1]), int(image.shape[-2])))


def _result(session: EditSession, goal: Goal, result: LoopResult, full: torch.Tensor, source: Any,
            before: Recipe, after: Recipe) -> EditResult:
    """The EditResult of a finished loop: the best version rendered at full resolution."""
    best = result.best
    recipe, image = best.recipe, None
    if before.steps or after.steps:  # one recipe from the original, rendered as `imagent apply` renders it
        recipe = best.recipe.model_copy(update={"steps": [*before.steps, *best.recipe.steps, *after.steps]})
        image = apply_recipe(full, recipe, session.masks_full)
    return EditResult(
        image=session.render(best.id) if image is None else image,
        recipe=recipe,
        goal=goal,
        score=best.score,
        original_score=session.versions["v0"].score,
        stats_before=session.versions["v0"].stats,
        stats_after=best.stats,
        version=best.id,
        stop_reason=result.stop_reason,
        loop=result,
        source=source,
        masks={s.mask: session.masks_full[s.mask] for s in recipe.steps
               if s.mask is not None and s.mask in session.masks_full},
    )


def _check_prices(budget: Any, accountant: Any, planner: Any, critic: Any) -> None:
    """A cost budget needs a price for every model that will be called."""
    if budget.max_cost_usd is None:
        return
    keys = [model_key(planner)] + ([critic.model_key] if getattr(critic, "model_key", None) else [])
    for key in keys:
        if price_of(key, accountant.prices) is None:
            raise UserError(f"a cost budget needs the price of {key}; add it to imagent.toml as "
                            f"[prices.\"{key}\"] input = <USD per 1M tokens>, output = <USD per 1M tokens> "
                            f"(or IMAGENT_PRICES='{{\"{key}\": {{\"input\": 1, \"output\": 2}}}}')")
