"""The loop as a graph (issue 13): a planner that says "done" too early is pushed back, a model critic
sees the original and the current photo every turn, tokens and cost add up through a real client,
a run resumed from its checkpoint keeps its budgets, trace and best version, vision follows options."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import Field

from agent.accounting import Accountant, Price
from agent.critics import VLMCritic
from agent.goals import Budget, parse_goal
from agent.loop import run_loop
from agent.nodes import MAX_REMINDERS
from agent.options import EditOptions
from agent.protocol import parse_state
from agent.state import EditSession
from tests.agent.fakes import ScriptedModel, call, say
from tests.agent.test_providers import ScriptedServer, critique_reply, text_reply, tool_reply
from tests.helpers import sample
from tools import registry
from tools.analysis import measure
from tools.degrade import underexpose

pytest.importorskip("langchain_openai")
PRICES = {"openai:test-model": Price(input=2.0, output=8.0), "openai:test-vlm": Price(input=10.0, output=30.0)}


@pytest.fixture
def dark() -> torch.Tensor:
    return underexpose(sample("astronaut", (96, 72)), 1.5)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("IMAGENT_NO_EMBEDDINGS", "1")
    s = ScriptedServer()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _client(server: ScriptedServer, name: str) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model=name, base_url=server.url, api_key="not-needed", max_retries=0, timeout=5)


def _goal(session: EditSession, max_steps: int = 6, max_model_calls: int = 24) -> Any:
    return parse_goal("brighten it", measure(session.original),
                      budget=Budget(max_steps=max_steps, max_model_calls=max_model_calls))


def _user_texts(request: dict[str, Any]) -> list[str]:
    out = []
    for m in request["body"]["messages"]:
        if m["role"] == "user":
            c = m["content"]
            out.append(c if isinstance(c, str) else " ".join(p.get("text", "") for p in c if p["type"] == "text"))
    return out


def test_a_planner_that_says_done_with_a_target_unmet_is_pushed_back(server: ScriptedServer) -> None:
    darker = underexpose(sample("astronaut", (96, 72)), 2.0)  # +0.8 EV: mean L* 32.8, wanted >= 33.1
    server.scripts["test-model"] = [tool_reply("exposure", {"stops": 0.8}), text_reply("The goal is met."),
                                    tool_reply("exposure", {"stops": 0.7}), text_reply("The goal is met.")]
    session = EditSession(darker)
    res = run_loop(session, _goal(session), _client(server, "test-model"), critic=None)
    planner = server.to("test-model")
    after_first = session.versions["v1"]
    assert after_first.score.targets_met < after_first.score.targets_total, "exposure 0.8 must leave a target unmet"
    told = _user_texts(planner[2])[-1]  # what the planner read after its early "The goal is met."
    assert told.startswith("Not done yet: ") and "mean_L" in told and "wanted" in told
    assert f"answering without tool calls {MAX_REMINDERS} more time(s) ends the run" in told
    assert [e.tool for e in res.trace] == ["exposure", "exposure"], "the run went on after the early 'done'"
    assert res.stop_reason.startswith("all targets met") and res.goal_met and len(planner) == 3


def test_a_planner_that_keeps_saying_done_ends_the_run_honestly(dark: torch.Tensor) -> None:
    model = ScriptedModel(script=[say(call("exposure", stops=0.3)), say(text="The goal is met.")])
    session = EditSession(dark)
    res = run_loop(session, _goal(session), model, critic=None)
    assert len(model.seen) == 2 + MAX_REMINDERS  # the reminders, then the end
    assert res.stop_reason.startswith(f"the planner finished after {MAX_REMINDERS} reminders of what is unmet (")
    assert not res.goal_met and res.unmet


def test_the_critic_sees_the_original_and_the_current_photo_every_turn_and_the_costs_add_up(
        server: ScriptedServer, dark: torch.Tensor) -> None:
    server.scripts["test-model"] = [tool_reply("exposure", {"stops": 0.3}, (300, 20)),
                                    tool_reply("exposure", {"stops": 0.3}, (400, 20)),
                                    tool_reply("exposure", {"stops": 0.6}, (500, 20)), text_reply("done")]
    unhappy = critique_reply((900, 40), goal_met=False, score=4.0, issues=["too_dark"],
                             suggestions=["brighten the midtones"])
    server.scripts["test-vlm"] = [unhappy, unhappy, critique_reply((800, 30))]
    session = EditSession(dark)
    acct = Accountant(prices=PRICES)
    res = run_loop(session, _goal(session), _client(server, "test-model"), accountant=acct,
                   critic=VLMCritic(_client(server, "test-vlm"), name="openai:test-vlm"))
    critic = server.to("test-vlm")
    assert len(critic) == 3 == res.turns, "one critique per turn"
    originals, currents = set(), []
    for r in critic:
        parts = r["body"]["messages"][-1]["content"]
        labels = [p["text"] for p in parts if p["type"] == "text"][1:]
        images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
        assert labels == ["ORIGINAL:", "CURRENT:"] and len(images) == 2
        originals.add(images[0])
        currents.append(images[1])
    assert len(originals) == 1 and len(set(currents)) == 3, "the same original, a new current version each turn"
    planned = parse_state([HumanMessage(content=_user_texts(server.to("test-model")[1])[-1])])
    assert planned.critique["suggestions"] == ["brighten the midtones"], "the planner reads the critique"
    assert res.stop_reason == "all targets met and the critic is satisfied"
    calls = res.usage["per_call"]
    assert [(c["role"], c["input_tokens"]) for c in calls] == [
        ("planner", 300), ("critic", 900), ("planner", 400), ("critic", 900), ("planner", 500), ("critic", 800)]
    assert res.input_tokens == 3800 and res.output_tokens == 170 and res.model_calls == 6
    cost = (1200 * 2.0 + 60 * 8.0 + 2600 * 10.0 + 110 * 30.0) / 1e6
    assert res.cost_usd == pytest.approx(cost) and sum(c["cost_usd"] for c in calls) == pytest.approx(cost)


def test_critique_every_two_turns(server: ScriptedServer, dark: torch.Tensor) -> None:
    server.scripts["test-model"] = [tool_reply("exposure", {"stops": 0.2})] * 4 + [tool_reply("exposure", {"stops": 0.2})]
    server.scripts["test-vlm"] = [critique_reply(goal_met=False, score=4.0, issues=["too_dark"])]
    session = EditSession(dark)
    res = run_loop(session, _goal(session, max_steps=4), _client(server, "test-model"),
                   EditOptions(budget=Budget(max_steps=4), critique_every=2),
                   critic=VLMCritic(_client(server, "test-vlm"), name="openai:test-vlm"))
    critiqued = sorted({e.turn for e in res.trace if e.tool.startswith("critic:")})
    assert res.turns == 4 and critiqued == [2, 4]


class StopParams(registry.Params):
    """A test op: brighter by a gain; the first call is cut off as by Ctrl-C."""

    gain: float = Field(1.2, ge=0.5, le=3.0, description="brightness gain")


def test_a_run_resumed_from_its_checkpoint_keeps_its_budgets_trace_and_best(dark: torch.Tensor,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    registry.all_tools()
    cut = []

    def cut_once(image: torch.Tensor, p: StopParams) -> torch.Tensor:
        if not cut:
            cut.append(1)
            raise KeyboardInterrupt
        return (image * p.gain).clamp(0, 1)

    monkeypatch.setitem(registry._REGISTRY, "cut", registry.Tool("cut", StopParams, cut_once, "tone"))
    model = ScriptedModel(script=[say(call("exposure", stops=0.2)), say(call("exposure", stops=0.1)),
                                  say(call("cut")), say(call("exposure", stops=0.05))])
    session = EditSession(dark)
    goal = parse_goal("brighten it a lot", measure(session.original), budget=Budget(max_steps=4))
    saver, events = InMemorySaver(), []
    with pytest.raises(KeyboardInterrupt):
        run_loop(session, goal, model, checkpointer=saver, thread_id="t", on_event=events.append)
    before = [e.tool for e in events]
    assert before == ["exposure", "exposure"] and session.current == "v2"
    snapshot = saver.get_tuple({"configurable": {"thread_id": "t"}}).checkpoint["channel_values"]
    assert snapshot["spent"]["steps"] == 2 and snapshot["spent"]["turns"] == 3 and snapshot["best"]["id"] == "v2"

    res = run_loop(session, goal, model, checkpointer=saver, thread_id="t")
    assert [e.tool for e in res.trace] == ["exposure", "exposure", "cut", "exposure"]
    assert [e.turn for e in res.trace] == [1, 2, 3, 4], "turns go on from the checkpoint"
    assert res.stop_reason == "step budget spent (4 edits)", "the resumed run has no fresh step budget"
    assert res.model_calls == 4 and res.input_tokens == 400 and len(model.seen) == 4
    assert res.usage["calls"] == 4 and [c["turn"] for c in res.usage["per_call"]] == [1, 2, 3, 4]
    best = max(session.versions.values(), key=lambda v: v.score.combined)
    assert res.best.id == best.id


def test_vision_follows_the_options_and_the_model_profile(dark: torch.Tensor) -> None:
    def first_content(options: EditOptions | None, **model_kw: Any) -> Any:
        model = ScriptedModel(script=[say()], **model_kw)
        session = EditSession(dark)
        run_loop(session, _goal(session), model, options, critic=None)
        return model.seen[0][-1].content

    sees = {"image_inputs": True}
    assert isinstance(first_content(None, profile=sees), list)  # auto: the profile accepts images
    assert isinstance(first_content(None), str)  # auto, no profile (offline, local models): text
    assert isinstance(first_content(EditOptions(vision="off"), profile=sees), str)
    content = first_content(EditOptions(vision="on"))
    assert content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_the_state_a_checkpoint_holds_is_plain_data_the_strict_serializer_loads(dark: torch.Tensor,
                                                                               tmp_path: Any) -> None:
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    from agent.critics import Review
    from agent.sessions import StrictSerializer

    class Picky:  # a critic that finds a fault once, so its review is in the state's trace
        name, model_key = "picky", None

        def __call__(self, session: Any, version: Any, *, goal: Any, reference: Any = None) -> Review:
            return Review(critic="picky", goal_met=version.id != "v1", score=6.0, issues=["noisy"],
                          suggestions=["denoise gently"])

    saver = SqliteSaver(sqlite3.connect(tmp_path / "c.sqlite", check_same_thread=False),
                        serde=StrictSerializer(tmp_path))
    session = EditSession(dark)
    script = [say(call("exposure", stops=9)), say(call("exposure", stops=1.5)), say(call("exposure", stops=0.05)),
              say()]
    res = run_loop(session, _goal(session), ScriptedModel(script=script), critic=Picky(), checkpointer=saver,
                   thread_id="t")
    assert res.stop_reason == "all targets met and the critic is satisfied"
    values = saver.get_tuple({"configurable": {"thread_id": "t"}}).checkpoint["channel_values"]  # loads strictly
    plain = {k: v for k, v in values.items() if k != "messages"}
    assert json.loads(json.dumps(plain)) == plain
    assert values["history"][0]["error"] == "bad_arguments" and values["history"][0]["fields"] == ["stops"]
    assert values["history"][1]["kind"] == "kept" and values["history"][1]["moved"] is True
    assert values["critic_phase"] and [e["critique"]["suggestions"] for e in values["trace"] if e["critique"]][0] == [
        "denoise gently"]
