"""How one edit may run: the options the CLI, the API, batch, chat and the loop all carry.

`EditOptions` is declared once here; `imagent edit`'s flags, `agent.api.edit`'s keywords,
a batch job's options, a chat session's settings and `agent.loop.run_loop` read the same
object, so an option is added in one place. `Budget` (what the loop may spend) is part of it.
Settings that come from the environment or imagent.toml (model, critic, keys, prices) live
in `agent.settings`; an edit's options are per call.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_PREVIEW = 1024  # px, the long side the loop iterates on; the full resolution renders once
# Defaults that agent.settings (IMAGENT_* / imagent.toml) shares: declared here, once.
MAX_SECONDS = 120.0  # wall-clock seconds per photo
MAX_MODEL_CALLS = 24  # planner + critic calls per photo
OP_TIMEOUT = 30.0  # seconds one tool call may run (the loop also stops waiting when the time budget ends)
MAX_INVALID_CALLS = 8  # tool calls refused for their arguments before the run ends
Vision = Literal["auto", "on", "off"]


class Budget(BaseModel):
    """How much the loop may spend on one goal."""

    max_steps: int = Field(8, ge=1, le=1000)
    max_seconds: float = Field(MAX_SECONDS, gt=0)
    max_model_calls: int = Field(MAX_MODEL_CALLS, ge=0)
    max_cost_usd: float | None = Field(None, ge=0)


class EditOptions(BaseModel):
    """One edit's options (everything but the photo, the goal and the models)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    budget: Budget = Field(default_factory=Budget)
    lock: float = Field(0.80, gt=0, le=1, description="structure similarity to the original a step must keep")
    preview: int = Field(DEFAULT_PREVIEW, ge=64, description="long side of the preview the loop edits on, px")
    max_pixels: int | None = Field(None, ge=1, description="refuse larger inputs (default: tools.io.pixel_limit)")
    prior: bool = Field(True, description="magnitudes from the learned prior (agent/natural.py); False: rules")
    vision: Vision = Field("auto", description="send the planner the preview as an image: auto = when the "
                           "model's profile says it accepts images")
    critique_every: int = Field(1, ge=1, description="with a critic, critique the result every N turns")
    op_timeout: float = Field(OP_TIMEOUT, gt=0, description="seconds one tool call may run")
    max_invalid_calls: int = Field(MAX_INVALID_CALLS, ge=0, description="tool calls refused before the run ends")
    op_retries: int = Field(2, ge=0, description="retries of an op that ran out of memory")
