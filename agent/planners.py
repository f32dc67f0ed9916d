"""How the planning model is made: the offline planner, any LangChain provider, local HF models.

`make_planner("offline")` is the embedded default: a deterministic chat model
that reads the loop's `<imagent-state>` block and answers with tool calls whose
arguments are computed from the measurements (the policy is `agent.offline`).
`make_planner("openai:gpt-4o-mini")` (or anthropic:, ollama:, ...) goes through
`langchain.chat_models.init_chat_model`; `make_planner("hf:/path/to/model")`
wraps a local Hugging Face model. Nothing here touches the network at
construction time; provider packages are imported only when asked for.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from agent.errors import UserError
from agent.offline import BoundTool, decide
from agent.protocol import parse_state

ACCEPTED = ("'offline', 'provider:model' (e.g. 'openai:gpt-4o-mini', 'anthropic:claude-sonnet-4-5', "
            "'ollama:llama3.1'), 'hf:/path/to/local/model', 'local' (after `make llm`) or "
            "'gguf:/path/to/model.gguf'")

NO_GOAL_REPLY = (
    "I am imagent's offline planner: I edit by measurement, not by conversation. Give me a goal "
    "(for example `imagent edit photo.jpg \"brighten a bit and fix the blue cast\"`) and I will "
    "plan tool calls from the photo's measured exposure, contrast, colour cast, noise and sharpness."
)


class PlannerError(UserError, ValueError):
    """The planning model cannot be made as asked; the message says what to change."""


class OfflinePlanner(BaseChatModel):
    """Deterministic, network-free planner: reads the `<imagent-state>` block, computes tool calls.

    It behaves like a tool-calling chat model (bind_tools, AIMessage.tool_calls
    with ids, usage_metadata) so the loop treats it exactly like a hosted one.
    Standard chat-model arguments (temperature, max_tokens, timeout, ...) are
    accepted for interchangeability and have no effect: the policy has no sampling.
    """

    model: str = "imagent-offline-1"
    temperature: float | None = 0.0
    max_tokens: int | None = None
    timeout: float | None = None
    stop: list[str] | None = None
    max_retries: int = 0
    streaming: bool = False
    max_calls_per_turn: int = 3

    @property
    def _llm_type(self) -> str:
        return "imagent-offline"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "max_calls_per_turn": self.max_calls_per_turn}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "imagent"
        params["ls_model_name"] = kwargs.get("model") or self.model
        return params

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools like a hosted model does: the planner only ever calls tools bound here."""
        formatted = [_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools = _bound_tools(kwargs.get("tools") or [])
        state = parse_state(messages)
        if state is None:
            text, calls = NO_GOAL_REPLY, []
        elif not tools:
            text, calls = ("I can see the goal, but no editing tools are bound to me; "
                           "call bind_tools with the registry's tools first."), []
        else:
            plan = decide(state, tools, max_calls=self.max_calls_per_turn)
            text, calls = plan.text, plan.calls
        turn = sum(isinstance(m, AIMessage) for m in messages)
        tool_calls = [{"name": c.name, "args": c.args, "id": f"call_offline_{turn}_{i}", "type": "tool_call"}
                      for i, c in enumerate(calls)]
        in_tokens = _estimate_tokens(messages)
        out_tokens = _tokens_of(text) + sum(_tokens_of(c.name + json.dumps(c.args)) for c in calls)
        msg = AIMessage(
            content=text,
            tool_calls=tool_calls,
            usage_metadata={"input_tokens": in_tokens, "output_tokens": out_tokens,
                            "total_tokens": in_tokens + out_tokens},
            response_metadata={"model_name": self.model, "finish_reason": "tool_calls" if calls else "stop"},
        )
        return ChatResult(generations=[ChatGeneration(message=msg)])


def _bound_tools(specs: list[dict[str, Any]]) -> dict[str, BoundTool]:
    """Names and argument schemas of the tools bound to the model (OpenAI function format)."""
    out = {}
    for spec in specs:
        fn = spec.get("function", spec)
        name = fn.get("name")
        if name:
            out[name] = BoundTool(name, fn.get("parameters", {}).get("properties", {}))
    return out


def _tokens_of(text: str) -> int:
    # ~4 characters per token is the usual rule of thumb for English and JSON.
    return max(1, (len(text) + 3) // 4) if text else 0


IMAGE_TOKENS = 85  # what hosted vision models bill for a low-detail image


def _estimate_tokens(messages: list[BaseMessage]) -> int:
    total = 0
    for m in messages:
        content = m.content
        if isinstance(content, list):
            texts = [p.get("text", "") if isinstance(p, dict) else str(p) for p in content]
            total += IMAGE_TOKENS * sum(isinstance(p, dict) and p.get("type") != "text" for p in content)
            content = " ".join(texts)
        total += _tokens_of(str(content)) + 4  # role and framing
    for m in messages:
        for call in getattr(m, "tool_calls", None) or []:
            total += _tokens_of(call["name"] + json.dumps(call.get("args", {})))
    return total


# ----------------------------------------------------------------------------- factory


def make_planner(
    spec: str = "offline",
    *,
    base_url: str | None = None,
    temperature: float = 0,
    **kwargs: Any,
) -> BaseChatModel:
    """The planning chat model named by `spec`: 'offline', 'provider:model', 'hf:/local/path',
    'local[:NAME]' (a cached GGUF model, `make llm`) or 'gguf:/path/model.gguf'."""
    text = (spec or "").strip()
    if text.lower() == "offline":
        return OfflinePlanner(temperature=temperature, **kwargs)
    if text.lower() == "local" or text.lower().startswith("local:"):
        from agent.local_llm import make_local

        return make_local(text.lower(), temperature=temperature, **kwargs)
    provider, sep, name = text.partition(":")
    provider = provider.strip().lower().replace("-", "_")
    name = name.strip()
    if not sep or not provider or not name:
        raise PlannerError(f"planner {spec!r} is not understood; use {ACCEPTED}")
    if provider == "hf":
        return _huggingface(name, temperature=temperature, **kwargs)
    if provider == "gguf":
        from agent.local_llm import make_local

        return make_local(name, temperature=temperature, **kwargs)
    if provider == "offline":
        raise PlannerError(f"the offline planner takes no model name; use 'offline', not {spec!r}")
    if provider == "huggingface":  # langchain's route would download weights from the Hub
        raise PlannerError(f"imagent does not download models; give a local copy as 'hf:/path/to/{name}'")
    return _provider(provider, name, base_url=base_url, temperature=temperature, **kwargs)


# Providers whose LangChain class takes `timeout` and `max_retries` (retries with exponential
# backoff on 429, 5xx and connection errors, honouring Retry-After).
RETRYING = {"openai", "azure_openai", "anthropic", "google_genai", "mistralai", "groq", "deepseek", "xai",
            "fireworks", "together", "perplexity"}
API_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "google_genai": "GOOGLE_API_KEY",
            "mistralai": "MISTRAL_API_KEY", "groq": "GROQ_API_KEY", "azure_openai": "AZURE_OPENAI_API_KEY"}


def _provider(provider: str, name: str, *, base_url: str | None, temperature: float,
              timeout: float | None = None, max_retries: int | None = None, **kwargs: Any) -> BaseChatModel:
    import os

    from langchain.chat_models import init_chat_model

    if base_url is not None:
        kwargs["base_url"] = base_url
        # Local OpenAI-compatible servers (vLLM, llama.cpp, Ollama) take any key; the client wants one.
        if provider == "openai" and not os.environ.get("OPENAI_API_KEY") and "api_key" not in kwargs:
            kwargs["api_key"] = "not-needed"
    if provider in RETRYING:
        kwargs.update({k: v for k, v in (("timeout", timeout), ("max_retries", max_retries)) if v is not None})
    elif provider == "ollama" and timeout is not None:
        kwargs.setdefault("client_kwargs", {"timeout": timeout})
    try:
        return init_chat_model(name, model_provider=provider, temperature=temperature, **kwargs)
    except ImportError:
        pkg = _package_of(provider)
        raise PlannerError(f"install {pkg} to use {provider}: models (pip install {pkg})") from None
    except ValueError as exc:
        if "Unsupported" in str(exc):
            raise PlannerError(f"unknown model provider {provider!r}; use {ACCEPTED}") from None
        raise PlannerError(f"could not set up {provider}:{name}: {exc}") from exc
    except Exception as exc:  # e.g. a missing API key: the provider's message says which
        if "api_key" in str(exc).lower().replace(" ", "_"):
            var = API_KEYS.get(provider, f"{provider.upper()}_API_KEY")
            raise PlannerError(f"set {var} to use {provider}: models (export {var}=...)") from None
        raise PlannerError(f"could not set up {provider}:{name}: {type(exc).__name__}: {exc}") from exc


def _package_of(provider: str) -> str:
    """The pip package of a provider's LangChain integration (as langchain itself maps it)."""
    try:
        from langchain.chat_models.base import _BUILTIN_PROVIDERS

        module = _BUILTIN_PROVIDERS[provider][0]
    except (ImportError, KeyError):
        module = f"langchain_{provider}"
    return module.split(".", 1)[0].replace("_", "-")


def _huggingface(path: str, *, temperature: float, **kwargs: Any) -> BaseChatModel:
    """A local Hugging Face chat model; weights come from `path` only, never from the Hub."""
    kwargs.pop("timeout", None)  # a local pipeline has no requests to time out or retry
    kwargs.pop("max_retries", None)
    local = Path(path).expanduser()
    if not local.is_dir():
        raise PlannerError(f"hf: model folder {str(local)!r} does not exist; give the path of a "
                           "downloaded model (a folder with config.json and the weights)")
    try:
        from langchain_huggingface import ChatHuggingFace, HuggingFacePipeline
    except ImportError:
        raise PlannerError("install langchain-huggingface to use hf: models") from None
    # return_full_text=False: the answer only, not the prompt echoed back in front of it
    pipeline_kwargs = {"max_new_tokens": 512, "return_full_text": False, **kwargs.pop("pipeline_kwargs", {})}
    if temperature > 0:
        pipeline_kwargs.update(do_sample=True, temperature=temperature)
    model_kwargs = {"local_files_only": True, **kwargs.pop("model_kwargs", {})}
    try:
        llm = HuggingFacePipeline.from_model_id(model_id=str(local), task="text-generation",
                                                model_kwargs=model_kwargs,
                                                pipeline_kwargs=pipeline_kwargs, **kwargs)
        return ChatHuggingFace(llm=llm)
    except Exception as exc:  # transformers' errors are long; keep the first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PlannerError(f"could not load the Hugging Face model at {str(local)!r}: {first}") from exc


_FORMATTED: dict[tuple[Any, ...], dict[str, Any]] = {}


def _openai_tool(tool: Any) -> dict[str, Any]:
    """convert_to_openai_tool, remembered for registry tools (44 schemas cost ~0.1 s a run)."""
    schema = getattr(tool, "args_schema", None)
    if not isinstance(schema, type):
        return convert_to_openai_tool(tool)
    key = (tool.name, tool.description, schema)
    if key not in _FORMATTED:
        _FORMATTED[key] = convert_to_openai_tool(tool)
    return _FORMATTED[key]
