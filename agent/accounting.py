"""What a run costs: model calls, tokens, seconds and US dollars, per call, per turn and in total.

Tokens come from each answer's `usage_metadata` (what the provider reported, not an
estimate). Dollars come from a price table in USD per million tokens, keyed
"provider:model"; a dated or suffixed model name ("gpt-4o-mini-2024-07-18") uses
the longest listed prefix. Local providers (offline, ollama, hf, gguf) cost nothing.
Users add or change prices in settings (`[prices."openai:my-model"]` in
imagent.toml or IMAGENT_PRICES); the table below is a dated default, not a quote.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Price(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0, description="USD per million input (prompt) tokens")
    output: float = Field(ge=0, description="USD per million output (completion) tokens")


# List prices as published in 2025 (USD per million tokens); extend them in settings.
DEFAULT_PRICES: dict[str, Price] = {
    k: Price(input=i, output=o)
    for k, (i, o) in {
        "openai:gpt-4o": (2.5, 10.0),
        "openai:gpt-4o-mini": (0.15, 0.6),
        "openai:gpt-4.1": (2.0, 8.0),
        "openai:gpt-4.1-mini": (0.4, 1.6),
        "openai:gpt-4.1-nano": (0.1, 0.4),
        "openai:gpt-5": (1.25, 10.0),
        "openai:gpt-5-mini": (0.25, 2.0),
        "anthropic:claude-sonnet-4-5": (3.0, 15.0),
        "anthropic:claude-haiku-4-5": (1.0, 5.0),
        "anthropic:claude-opus-4-1": (15.0, 75.0),
        "google_genai:gemini-2.5-flash": (0.3, 2.5),
        "google_genai:gemini-2.5-pro": (1.25, 10.0),
    }.items()
}
FREE_PROVIDERS = {"imagent", "offline", "ollama", "hf", "huggingface", "scripted", "gguf"}


def price_of(key: str, extra: dict[str, Price] | None = None) -> Price | None:
    """The price of "provider:model" (user prices first, then the defaults); None when unknown."""
    provider = key.partition(":")[0]
    if provider in FREE_PROVIDERS:
        return Price(input=0, output=0)
    for table in (extra or {}, DEFAULT_PRICES):
        if key in table:
            return table[key]
        prefixes = [k for k in table if key.startswith(k + "-")]
        if prefixes:
            return table[max(prefixes, key=len)]
    return None


def model_key(model: Any) -> str:
    """"provider:model" of a LangChain chat model, as LangSmith names it (ChatOpenAI -> openai:...)."""
    try:
        ls = model._get_ls_params()
        provider, name = ls.get("ls_provider"), ls.get("ls_model_name")
    except Exception:  # not a BaseChatModel: a custom critic or planner
        provider, name = None, None
    name = name or getattr(model, "model_name", None) or getattr(model, "model", None) or type(model).__name__
    return f"{provider or 'unknown'}:{name}"


@dataclass
class Call:
    """One model request that answered (or failed): who asked, what it cost."""

    turn: int
    role: str  # planner | critic
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    cost_usd: float | None = 0.0  # None: no price known for this model
    error: str | None = None


@dataclass
class Accountant:
    """Counts calls, tokens, seconds and dollars of one run; the loop's budgets read it."""

    prices: dict[str, Price] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def record(self, turn: int, role: str, model: str, message: Any = None, seconds: float = 0.0,
               error: str | None = None) -> Call:
        usage = getattr(message, "usage_metadata", None) or {}
        tin, tout = int(usage.get("input_tokens", 0) or 0), int(usage.get("output_tokens", 0) or 0)
        price = price_of(model, self.prices)
        cost = None if price is None else (tin * price.input + tout * price.output) / 1e6
        call = Call(turn, role, model, tin, tout, round(seconds, 4), cost, error)
        self.calls.append(call)
        return call

    @property
    def n_calls(self) -> int:
        return len(self.calls)

    @property
    def input_tokens(self) -> int:
        return sum(c.input_tokens for c in self.calls)

    @property
    def output_tokens(self) -> int:
        return sum(c.output_tokens for c in self.calls)

    @property
    def cost_usd(self) -> float:
        return sum(c.cost_usd or 0.0 for c in self.calls)

    @property
    def unpriced(self) -> list[str]:
        """Models that answered with tokens but have no price (their cost counts as 0)."""
        return sorted({c.model for c in self.calls if c.cost_usd is None})

    def last_cost(self, role: str) -> float:
        """The cost of the latest call in `role`: the estimate of what the next one will cost."""
        return next((c.cost_usd or 0.0 for c in reversed(self.calls) if c.role == role), 0.0)

    def per_turn(self) -> list[dict[str, Any]]:
        """Calls, tokens, seconds and USD summed per loop turn."""
        turns: dict[int, dict[str, Any]] = {}
        for c in self.calls:
            t = turns.setdefault(c.turn, {"turn": c.turn, "calls": 0, "input_tokens": 0, "output_tokens": 0,
                                          "seconds": 0.0, "cost_usd": 0.0})
            t["calls"] += 1
            t["input_tokens"] += c.input_tokens
            t["output_tokens"] += c.output_tokens
            t["seconds"] = round(t["seconds"] + c.seconds, 4)
            t["cost_usd"] += c.cost_usd or 0.0
        return [turns[k] for k in sorted(turns)]

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.n_calls, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "seconds": round(sum(c.seconds for c in self.calls), 3), "cost_usd": self.cost_usd,
                "unpriced_models": self.unpriced, "per_turn": self.per_turn(),
                "per_call": [asdict(c) for c in self.calls]}

