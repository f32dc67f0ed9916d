"""The chat suite: scripted conversations judged on the image they end on."""

from __future__ import annotations

from pathlib import Path

from evals.runner import read_results, run_eval
from evals.suites import CHAT_SCRIPTS, Case, Generator, Suite, TargetSpec, generate, read_suite


def _case(i: int, script: int) -> Case:
    turns, targets = CHAT_SCRIPTS[script]
    return Case(id=f"chat-{i}", kind="chat", source="skimage:coffee", size=64, goal=" / ".join(turns), turns=turns,
                targets=[TargetSpec(**t, relative_to="input") for t in targets])


def test_bundled_chat_suite_is_its_seed_and_has_undo() -> None:
    suite = read_suite("chat")
    assert [c.model_dump() for c in generate(suite.generator)] == [c.model_dump() for c in suite.cases]
    assert all(c.turns and c.targets for c in suite.cases)
    assert any("undo that" in c.turns for c in suite.cases)


def test_offline_agent_follows_the_conversation_and_doing_nothing_does_not(tmp_path: Path) -> None:
    cases = [_case(0, 0), _case(1, 2)]  # brighter + a bit more; warmer + undo that
    suite = Suite(name="tiny-chat", generator=Generator(kind="chat", count=2, size=64), cases=cases)
    rows = {r["system"]: r for r in run_eval(suite, ["identity", "offline"], tmp_path, report=False)}
    assert rows["offline"]["success"] == 100.0
    recs = read_results(tmp_path)
    assert recs["chat-0"]["systems"]["identity"]["success"] is False, "doing nothing is not 'brighter'"
    undo = recs["chat-1"]["systems"]["offline"]
    assert undo["steps"] == 0 and "undone" in undo["trace"][-1], "undo returns to the original"
    assert (tmp_path / recs["chat-0"]["systems"]["offline"]["image"]).is_file()
