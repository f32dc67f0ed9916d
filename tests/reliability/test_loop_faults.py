"""The loop survives whatever a model or an op does (issue 18, item 4).

Scripted planners send every argument shape; fake ops registered for the test
raise, run out of memory, hang or return NaN. Each fault comes back to the
model as a typed observation (`TraceEntry.error` / `.cause`), the run goes on
and ends with the best version so far.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from pydantic import Field

from agent.goals import Budget, parse_goal
from agent.loop import run_loop
from agent.options import EditOptions
from agent.state import EditSession
from tests.agent.fakes import ScriptedModel, call, say
from tests.helpers import sample
from tools import registry
from tools.analysis import measure
from tools.degrade import underexpose


@pytest.fixture
def dark() -> torch.Tensor:
    return underexpose(sample("astronaut", (96, 72)), 1.5)


class FaultyParams(registry.Params):
    """A test op that misbehaves on purpose."""

    gain: float = Field(1.6, ge=0.5, le=3.0, description="brightness gain")


@pytest.fixture
def fake_op(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[..., Any]], None]:
    """Register `fn(image, p)` as the tool "faulty" for this test only."""
    registry.all_tools()  # the real families first, so none of them registers after the fake

    def install(fn: Callable[..., Any]) -> None:
        monkeypatch.setitem(registry._REGISTRY, "faulty", registry.Tool("faulty", FaultyParams, fn, "tone"))

    return install


def brighter(image: torch.Tensor, p: FaultyParams) -> torch.Tensor:
    return (image * p.gain).clamp(0, 1)


def _run(image: torch.Tensor, script: list[Any], instruction: str = "brighten it", max_steps: int = 6,
         max_seconds: float = 120.0, **kw: Any) -> tuple[EditSession, Any, Any]:
    session = EditSession(image)
    budget = Budget(max_steps=max_steps, max_seconds=max_seconds)
    goal = parse_goal(instruction, measure(session.original), budget=budget)
    model = kw.pop("model_override", None) or ScriptedModel(script=script)
    options = EditOptions(budget=budget, **{k: kw.pop(k) for k in ("op_timeout", "max_invalid_calls", "op_retries")
                                            if k in kw})
    return session, model, run_loop(session, goal, model, options, **kw)


def _told(model: ScriptedModel) -> list[str]:
    """Every observation the model was sent, last conversation."""
    return [m.content for m in model.seen[-1] if isinstance(m, (ToolMessage, HumanMessage))
            and isinstance(m.content, str)]


def _errors(res: Any) -> list[Any]:
    return [e for e in res.trace if e.outcome == "error"]


def _finite_versions(session: EditSession) -> bool:
    return all(bool(v.image.isfinite().all()) for v in session.versions.values())


# ----------------------------------------------------------------------------- what the model sends


@pytest.mark.parametrize("mask", [1, True, ["sky"], {"name": "sky"}])
def test_a_non_string_mask_is_a_field_level_observation(dark: torch.Tensor, mask: Any) -> None:
    session, model, res = _run(dark, [say(call("exposure", stops=1.5, mask=mask)),
                                      say(call("exposure", stops=1.5)), say()])
    first = _errors(res)[0]
    assert first.error == "bad_arguments" and first.tool == "exposure"
    assert "wrong value for `mask`" in first.reason and "a string" in first.reason
    assert any("wrong value for `mask`" in t for t in _told(model)), "the model reads the field-level error"
    assert res.stop_reason.startswith("all targets met")


def test_arguments_sent_as_a_list_are_an_observation_not_the_end(dark: torch.Tensor) -> None:
    def as_list(messages: list[Any]) -> AIMessage:
        # what langchain-openai does with `"arguments": "[1.5]"`: building the message fails validation
        return AIMessage(content="", tool_calls=[{"name": "exposure", "args": [1.5], "id": "c1", "type": "tool_call"}])

    session, model, res = _run(dark, [as_list, say(call("exposure", stops=1.5)), say()])
    first = _errors(res)[0]
    assert first.error == "model_output" and "JSON object of named fields, got a list" in first.reason
    assert any("got a list" in t for t in _told(model))
    assert res.stop_reason.startswith("all targets met") and res.invalid_calls == 1


def test_arguments_that_are_not_an_object_reaching_the_loop_are_refused(dark: torch.Tensor) -> None:
    # a model class that skips validation (model_construct) hands the loop a string
    bad = AIMessage.model_construct(content="", tool_calls=[{"name": "exposure", "args": "stops=1.5",
                                                             "id": "c1", "type": "tool_call"}],
                                    invalid_tool_calls=[], type="ai", additional_kwargs={}, response_metadata={})
    session, model, res = _run(dark, [lambda m: bad, say(call("exposure", stops=1.5)), say()])
    first = _errors(res)[0]
    assert first.error == "model_output" and first.cause == "not_an_object" and "got a string" in first.reason
    assert res.stop_reason.startswith("all targets met")


@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_not_numbers(dark: torch.Tensor, value: bool) -> None:
    session, model, res = _run(dark, [say(call("exposure", stops=value)), say(call("exposure", stops=1.5)), say()])
    first = _errors(res)[0]
    assert first.error == "bad_arguments" and first.cause is None
    assert "stops" in first.reason and "not true or false" in first.reason
    assert all(s.params.get("stops") is not value for v in session.versions.values() for s in v.recipe.steps)
    with pytest.raises(registry.ToolError) as info:
        registry.get("curves").validate({"points": [[0, 0], [1, True]]})
    assert info.value.fields == ("points",)


def test_invalid_calls_do_not_use_up_the_step_budget(dark: torch.Tensor) -> None:
    script = [say(call("exposure", stops=9), call("exposure", stops="lots"), call("nope")),
              say(call("exposure", stops=1.5)), say()]
    session, model, res = _run(dark, script, max_steps=1)
    assert res.stop_reason.startswith("all targets met"), res.stop_reason
    assert [e.error for e in _errors(res)] == ["bad_arguments"] * 3
    assert res.best.id != "v0" and res.invalid_calls == 3


def test_invalid_calls_have_their_own_budget(dark: torch.Tensor) -> None:
    # each turn one bad call and one tiny good one: never three failed turns in a row
    script = [say(call("exposure", stops=9), call("exposure", stops=0.02))]
    session, model, res = _run(dark, script, instruction="brighten it a lot", max_steps=50, max_invalid_calls=3)
    assert res.budget_spent == "invalid_calls" and "invalid-call budget spent" in res.stop_reason
    assert res.invalid_calls == 3 and res.best.id != "v0"


def test_no_invalid_calls_allowed_ends_the_run_at_the_first(dark: torch.Tensor) -> None:
    session, model, res = _run(dark, [say(call("exposure", stops=9)), say(call("exposure", stops=1.5))],
                               max_invalid_calls=0)
    assert res.budget_spent == "invalid_calls" and res.invalid_calls == 1 and res.model_calls == 1


# ----------------------------------------------------------------------------- what an op does


@pytest.mark.parametrize("exc", [RuntimeError("kernel exploded"), ValueError("bad shape"), ZeroDivisionError()])
def test_an_op_that_raises_is_an_observation_and_is_not_run_again(dark: torch.Tensor, fake_op: Any,
                                                                   exc: Exception) -> None:
    calls = []

    def boom(image: torch.Tensor, p: FaultyParams) -> torch.Tensor:
        calls.append(p)
        raise exc

    fake_op(boom)
    session, model, res = _run(dark, [say(call("faulty")), say(call("faulty", gain=2)),
                                      say(call("exposure", stops=1.5)), say()])
    first, second = _errors(res)[:2]
    assert (first.error, first.cause) == ("execution_failed", "error") and type(exc).__name__ in first.reason
    assert (second.error, second.cause) == ("bad_arguments", "failed_before")  # told once, not run twice
    assert len(calls) == 1
    assert res.stop_reason.startswith("all targets met") and "faulty" not in [s.tool for s in res.best.recipe.steps]


@pytest.mark.parametrize("oom", [torch.OutOfMemoryError, MemoryError])
def test_out_of_memory_once_is_retried(dark: torch.Tensor, fake_op: Any, oom: type[BaseException]) -> None:
    tries = []

    def flaky(image: torch.Tensor, p: FaultyParams) -> torch.Tensor:
        tries.append(1)
        if len(tries) == 1:
            raise oom("CUDA out of memory. Tried to allocate 2.00 GiB")
        return brighter(image, p)

    fake_op(flaky)
    session, model, res = _run(dark, [say(call("faulty")), say()])
    assert len(tries) == 2 and [e.outcome for e in res.trace] == ["kept"]
    assert res.best.recipe.steps[-1].tool == "faulty"


def test_out_of_memory_every_time_is_retried_a_bounded_number_of_times(dark: torch.Tensor, fake_op: Any) -> None:
    tries = []

    def hungry(image: torch.Tensor, p: FaultyParams) -> torch.Tensor:
        tries.append(1)
        raise torch.OutOfMemoryError("CUDA out of memory")

    fake_op(hungry)
    session, model, res = _run(dark, [say(call("faulty")), say(call("exposure", stops=1.5)), say()], op_retries=2)
    assert len(tries) == 3
    first = _errors(res)[0]
    assert (first.error, first.cause) == ("execution_failed", "out_of_memory") and "3 tries" in first.reason
    assert res.stop_reason.startswith("all targets met")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_an_op_returning_nan_or_inf_is_not_kept(dark: torch.Tensor, fake_op: Any, bad: float) -> None:
    def poison(image: torch.Tensor, p: FaultyParams) -> torch.Tensor:
        out = brighter(image, p).clone()
        out[..., :4, :4] = bad
        return out

    fake_op(poison)
    session, model, res = _run(dark, [say(call("faulty")), say(call("exposure", stops=1.5)), say()])
    first = _errors(res)[0]
    assert (first.error, first.cause) == ("execution_failed", "not_finite")
    assert _finite_versions(session) and bool(res.best.image.isfinite().all())
    assert res.stop_reason.startswith("all targets met")


@pytest.fixture
def hang(fake_op: Any) -> Iterator[dict[str, threading.Event]]:
    """The op "faulty" blocks until released (at most 60 s), then returns a brighter image."""
    ev = {"started": threading.Event(), "release": threading.Event(), "finished": threading.Event()}

    def stuck(image: torch.Tensor, p: FaultyParams) -> torch.Tensor:
        ev["started"].set()
        ev["release"].wait(60)
        ev["finished"].set()
        return brighter(image, p)

    fake_op(stuck)
    yield ev
    ev["release"].set()  # let the abandoned thread end


def test_a_hanging_op_is_abandoned_after_the_op_timeout(dark: torch.Tensor, hang: dict[str, threading.Event]) -> None:
    session, model, res = _run(dark, [say(call("faulty")), say(call("faulty")), say(call("exposure", stops=1.5)),
                                      say()], op_timeout=2.0)
    assert not hang["finished"].is_set(), "the loop returned while the op still hung"
    first = _errors(res)[0]
    assert (first.error, first.cause) == ("execution_failed", "timeout") and "op timeout" in first.reason
    assert _errors(res)[1].cause == "failed_before"  # a hung tool is not started again
    assert res.stop_reason.startswith("all targets met")
    kept = dict(session.versions)
    hang["release"].set()
    assert hang["finished"].wait(30)
    assert session.versions == kept and "faulty" not in [s.tool for s in res.best.recipe.steps], \
        "the late result is discarded"


def test_a_hanging_op_is_abandoned_when_the_time_budget_ends(dark: torch.Tensor,
                                                             hang: dict[str, threading.Event]) -> None:
    session, model, res = _run(dark, [say(call("exposure", stops=0.5), call("faulty")), say()],
                               max_seconds=3.0, op_timeout=600)
    assert not hang["finished"].is_set(), "the loop returned while the op still hung"
    assert "time budget spent" in res.stop_reason and res.budget_spent == "seconds"
    if hang["started"].is_set():  # on a very slow machine the budget may end before the op starts
        timeout = [e for e in _errors(res) if e.cause == "timeout"]
        assert timeout and "the time budget ends" in timeout[0].reason
    assert _finite_versions(session) and res.best.id == session.current


# ----------------------------------------------------------------------------- through a real client


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """tests/agent/test_providers.py's OpenAI-compatible scripted server on 127.0.0.1."""
    providers = pytest.importorskip("tests.agent.test_providers")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("IMAGENT_NO_EMBEDDINGS", "1")
    monkeypatch.setenv("IMAGENT_PRICES", json.dumps({"openai:test-model": {"input": 2.0, "output": 8.0},
                                                     "openai:test-vlm": {"input": 10.0, "output": 30.0}}))
    s = providers.ScriptedServer()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def test_non_string_masks_and_list_arguments_through_the_openai_client(server: Any, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from tests.agent.test_providers import critique_reply, edit_args, text_reply, tool_reply
    from tests.helpers import run_cli
    from tools.io import save_image

    monkeypatch.chdir(tmp_path)  # no imagent.toml of the developer's leaks in
    dark_png = tmp_path / "dark.png"
    save_image(underexpose(sample("astronaut", (96, 72)), 1.5), dark_png)
    masks = [tool_reply("exposure", {"stops": 1.5, "mask": m}) for m in (1, True, ["face"])]
    three = {**masks[0], "message": {"content": None,  # one answer, three calls
                                     "tool_calls": [r["message"]["tool_calls"][0] for r in masks]}}
    server.scripts["test-model"] = [three, tool_reply("exposure", "[1.5]"),
                                    tool_reply("exposure", {"stops": 1.5}), text_reply("done")]
    server.scripts["test-vlm"] = [critique_reply()]
    code, out, err = run_cli(edit_args(dark_png, server, "--max-steps", "1"), capsys)
    assert code == 0, err
    assert "Traceback" not in err and (dark_png.parent / "out.png").is_file()
    trace = json.loads((dark_png.parent / "trace.json").read_text())
    assert trace["stop_reason"] == "all targets met and the critic is satisfied"
    errors = [s for s in trace["steps"] if s["outcome"] == "error"]
    assert [s.get("error") for s in errors] == ["bad_arguments"] * 3 + ["model_output"]
    sent = server.to("test-model")[-1]["body"]["messages"]
    tool_msgs = [m["content"] for m in sent if m["role"] == "tool"]
    assert sum("wrong value for `mask`" in t for t in tool_msgs) == 3
    assert any("JSON object of named fields, got a list" in m["content"] for m in sent if m["role"] == "user")


def test_tool_calls_without_an_id_through_the_openai_client(server: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_openai import ChatOpenAI

    from tests.agent.test_providers import text_reply, tool_reply

    reply = tool_reply("exposure", {"stops": 1.5})
    del reply["message"]["tool_calls"][0]["id"]  # some local servers leave it out
    server.scripts["test-model"] = [reply, text_reply("done")]
    model = ChatOpenAI(model="test-model", base_url=server.url, api_key="not-needed", max_retries=0, timeout=5)
    session, _, res = _run(underexpose(sample("astronaut", (96, 72)), 1.5), [], model_override=model)
    assert res.stop_reason.startswith("all targets met") and res.best.id != "v0"


def test_the_op_timeout_and_invalid_call_budget_are_settings(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    from agent.settings import Settings, load_settings

    monkeypatch.chdir(tmp_path)
    defaults = EditOptions()  # what run_loop uses when no options are given
    assert defaults.op_timeout == Settings.model_fields["op_timeout"].default > 0
    assert defaults.max_invalid_calls == Settings.model_fields["max_invalid_calls"].default > 0
    monkeypatch.setenv("IMAGENT_OP_TIMEOUT", "2.5")
    monkeypatch.setenv("IMAGENT_MAX_INVALID_CALLS", "3")
    cfg = load_settings()
    assert (cfg.op_timeout, cfg.max_invalid_calls) == (2.5, 3)


@pytest.mark.parametrize("made", ["none", "uint8"])
def test_an_op_returning_something_unusable_costs_one_step(dark: torch.Tensor, fake_op: Any, made: str) -> None:
    def odd(image: torch.Tensor, p: FaultyParams) -> Any:
        return None if made == "none" else (image * 255).to(torch.uint8)

    fake_op(odd)
    session, model, res = _run(dark, [say(call("faulty")), say(call("exposure", stops=1.5)), say()], max_steps=2)
    first = _errors(res)[0]
    assert (first.error, first.cause) == ("execution_failed", "error")
    assert res.stop_reason.startswith("all targets met"), res.stop_reason
