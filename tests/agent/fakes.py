"""Scripted chat models: fixed tool-call sequences that drive the loop in tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

_ids = itertools.count(1)


def call(name: str, /, **args: Any) -> dict[str, Any]:
    """A tool call as a chat model would emit it."""
    return {"name": name, "args": args, "id": f"call_{next(_ids)}", "type": "tool_call"}


def say(*calls: dict[str, Any], text: str = "") -> AIMessage:
    return AIMessage(content=text, tool_calls=list(calls), usage_metadata={
        "input_tokens": 100, "output_tokens": 10 + 5 * len(calls), "total_tokens": 110 + 5 * len(calls)})


class ScriptedModel(BaseChatModel):
    """Answers turn k with script[k] (an AIMessage or a function of the messages); repeats the last."""

    script: Sequence[Any] = Field(default_factory=list)
    seen: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:
        self.bound_tools = [getattr(t, "name", str(t)) for t in tools]
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        step = self.script[min(len(self.seen) - 1, len(self.script) - 1)]
        msg = step(messages) if isinstance(step, Callable) else step
        if isinstance(msg, AIMessage):  # fresh ids each turn, like a real model
            msg = msg.model_copy(update={"tool_calls": [{**c, "id": f"call_{next(_ids)}"} for c in msg.tool_calls]})
        return ChatResult(generations=[ChatGeneration(message=msg)])
