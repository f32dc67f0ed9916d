"""One edit's `EditOptions`, assembled in one place: keywords or flags > settings > defaults.

`edit_options` turns flat keywords (`lock=0.7`, `max_steps=4`: `agent.api.edit`'s, a batch's,
a chat's, the CLI's flags) into an `agent.options.EditOptions`; an option is declared once, in
`EditOptions` or its `Budget`. What a person may set for every edit in imagent.toml or IMAGENT_*
(`agent.settings.Settings`: the time, call and cost budgets, the tool-call timeout, the invalid
call allowance) fills the fields neither the keywords nor a given `EditOptions` set.
`loop_options` is what `agent.loop.run_loop` runs a goal with.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agent.errors import UserError
from agent.options import Budget, EditOptions
from agent.settings import Settings, load_settings

BUDGET_FIELDS = tuple(Budget.model_fields)
OPTION_FIELDS = tuple(f for f in EditOptions.model_fields if f != "budget")
# Settings (imagent.toml, IMAGENT_*) that are a person's defaults for every edit, by field name
FROM_SETTINGS = {"budget": ("max_seconds", "max_model_calls", "max_cost_usd"),
                 "options": ("op_timeout", "max_invalid_calls")}


def edit_options(options: EditOptions | None = None, settings: Settings | None = None,
                 **flat: Any) -> EditOptions:
    """`options` with the flat keywords `flat` on top (None = not given), the rest from `settings`.

    `flat` takes any EditOptions field (lock, preview, prior, vision, critique_every, ...) and any
    Budget field (max_steps, max_seconds, max_model_calls, max_cost_usd). A field that neither
    `flat` nor `options` set explicitly comes from `settings` (default: `load_settings()`) when
    it is a setting, else from EditOptions' default. `vision` also takes True / False (on / off).
    """
    unknown = sorted(set(flat) - set(BUDGET_FIELDS) - set(OPTION_FIELDS))
    if unknown:
        raise TypeError(f"unknown edit option(s) {', '.join(unknown)}; known: "
                        f"{', '.join(BUDGET_FIELDS + OPTION_FIELDS)}")
    given = {k: v for k, v in flat.items() if v is not None}
    if isinstance(given.get("vision"), bool):
        given["vision"] = "on" if given["vision"] else "off"
    base = options or EditOptions()
    cfg = settings or load_settings()
    budget = {**base.budget.model_dump(),
              **{k: getattr(cfg, k) for k in FROM_SETTINGS["budget"] if k not in base.budget.model_fields_set},
              **{k: v for k, v in given.items() if k in BUDGET_FIELDS}}
    top = {**base.model_dump(exclude={"budget"}),
           **{k: getattr(cfg, k) for k in FROM_SETTINGS["options"] if k not in base.model_fields_set},
           **{k: v for k, v in given.items() if k in OPTION_FIELDS}}
    try:
        return EditOptions.model_validate({**top, "budget": budget})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][-1]) if err["loc"] else "?"
        raise UserError(f"edit option {key!r}: {err['msg'].lower()} (got {err.get('input')!r})") from None


def loop_options(options: EditOptions, goal: Any) -> EditOptions:
    """The options `agent.loop.run_loop` runs `goal` with: `options` with the goal's budget (a goal
    stored with a chat turn keeps the budget it was asked with when the turn resumes)."""
    budget = getattr(goal, "budget", None)
    return options if budget is None or budget == options.budget else options.model_copy(update={"budget": budget})
