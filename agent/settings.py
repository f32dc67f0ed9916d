"""Settings: command-line options > IMAGENT_* environment variables > imagent.toml files.

    # imagent.toml (in the working folder, or ~/.config/imagent/imagent.toml)
    model = "openai:gpt-4o-mini"
    critic = "openai:gpt-4o-mini"
    timeout = 60
    max_cost_usd = 0.50

    [prices."openai:my-finetune"]     # USD per million tokens
    input = 3.0
    output = 12.0

The same keys as environment variables: IMAGENT_MODEL, IMAGENT_CRITIC, IMAGENT_BASE_URL,
IMAGENT_TIMEOUT, IMAGENT_MAX_COST_USD, IMAGENT_MAX_PIXELS, IMAGENT_MAX_PHOTO_SECONDS,
IMAGENT_MAX_PHOTO_MEMORY=4G, IMAGENT_PRICES='{"openai:x": {"input": 1, "output": 2}}'.
A file in the working folder overrides the one in the user's config folder key by key.
The budgets (max_seconds, max_model_calls, max_cost_usd), op_timeout and max_invalid_calls are a
person's defaults for every edit: `agent.configure.edit_options` fills the `EditOptions` fields
an edit leaves unset from them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agent.accounting import Price
from agent.errors import UserError
from agent.options import MAX_INVALID_CALLS, MAX_MODEL_CALLS, MAX_SECONDS, OP_TIMEOUT

FILE_NAME = "imagent.toml"


def config_files() -> list[Path]:
    """The settings files read, lowest priority first (missing ones are skipped)."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [base / "imagent" / FILE_NAME, Path.cwd() / FILE_NAME]


class Settings(BaseSettings):
    """Which models plan and critique, how patiently they are called, what a run may spend."""

    model_config = SettingsConfigDict(env_prefix="IMAGENT_", extra="forbid")

    model: str = Field("offline", description="planner: offline | local | gguf:/path | provider:model | hf:/local/path")
    critic: str = Field("offline", description="critic: offline | none | provider:model | hf:/local/path")
    base_url: str | None = Field(None, description="OpenAI-compatible server for the planner (and critic)")
    critic_base_url: str | None = Field(None, description="another server for the critic; default base_url")
    timeout: float = Field(60.0, gt=0, description="seconds before one model request is abandoned")
    max_retries: int = Field(3, ge=0, le=10, description="retries of a request on 429, 5xx or a lost connection")
    max_model_calls: int = Field(MAX_MODEL_CALLS, ge=0, description="planner + critic calls per photo")
    max_seconds: float = Field(MAX_SECONDS, gt=0, description="wall-clock seconds per photo")
    max_cost_usd: float | None = Field(None, ge=0, description="USD per photo; None = no cost budget")
    op_timeout: float = Field(OP_TIMEOUT, gt=0, description="seconds one tool call may run before the loop "
                              "stops waiting for it (its result is discarded)")
    max_invalid_calls: int = Field(MAX_INVALID_CALLS, ge=0, description="tool calls with bad arguments per photo "
                                   "(they do not use up the step budget)")
    prices: dict[str, Price] = Field(default_factory=dict,
                                     description="extra or changed prices, USD per million tokens")
    # Resource policy (ImageMagick's policy.xml, in one place): every decoder and every batch worker obeys it.
    max_pixels: int = Field(100_000_000, ge=1, description="largest image any decoder opens, in pixels "
                            "(imagent's header check, Pillow's bomb guard, OpenCV's limit)")
    max_photo_seconds: float | None = Field(600.0, gt=0, description="batch: a photo still running after "
                                            "this many seconds is stopped (its worker is killed); None = no cap")
    max_photo_memory: int | None = Field(4 << 30, ge=1 << 20, description="batch: bytes of memory one photo "
                                         "may add to its worker (\"4G\", \"512M\"); None = no cap")

    @field_validator("max_photo_memory", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return parse_size(value) if isinstance(value, str) else value or None

    @field_validator("max_photo_seconds", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        return None if str(value).strip().lower() in ("none", "0", "0.0") else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Files are looked up when settings are loaded, so the working folder is the caller's.
        files = [TomlConfigSettingsSource(settings_cls, toml_file=p)
                 for p in reversed(config_files()) if p.is_file()]
        return (init_settings, env_settings, *files)


def load_settings(**overrides: Any) -> Settings:
    """Settings from files and environment, with `overrides` (None values ignored) on top.

    A bad value or an unknown key is a UserError naming the key and where settings come from.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(x) for x in err["loc"]) or "?"
        files = [str(p) for p in config_files() if p.is_file()]
        where = f"the options, IMAGENT_* variables or {', '.join(files)}" if files else \
            "the options or IMAGENT_* variables"
        hint = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
        known = ", ".join(Settings.model_fields)
        raise UserError(f"setting {key!r}: {hint}, in {where} (known settings: {known})") from None
    except (OSError, ValueError) as exc:  # a TOML syntax error
        raise UserError(f"could not read settings: {exc}") from None


_UNITS = {"": 1 << 20, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int | None:
    """"4G", "512M", "300k", "1.5g" -> bytes; a bare number is MB; "none" or "0" -> None (no cap)."""
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    if t in ("none", "0", ""):
        return None
    unit = t[-1] if t[-1:] in _UNITS else ""
    try:
        number = float(t[: len(t) - len(unit)])
    except ValueError:
        raise ValueError(f"{text!r} is not a size; write it like 4G, 512M or 300k") from None
    return int(number * _UNITS[unit])
