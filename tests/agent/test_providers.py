"""Real provider wiring, end to end through langchain-openai against a local scripted server.

The fixture is an OpenAI-compatible HTTP server (standard library, a thread on
127.0.0.1) that plays scripted answers per model name — tool calls, structured
critiques, 429 then success, 500, an answer slower than the timeout, malformed
tool-call JSON — and records every request it receives.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent.errors import ExitCode
from tests.helpers import run_cli, sample
from tools.degrade import underexpose
from tools.io import save_image
from tools.lut3d import FILE_BACKED

pytest.importorskip("langchain_openai")


# ----------------------------------------------------------------------------- the server


def completion(message: dict[str, Any], usage: tuple[int, int], model: str) -> dict[str, Any]:
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    return {"id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": {"role": "assistant", **message},
                                         "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                      "total_tokens": usage[0] + usage[1]}}


def tool_reply(name: str, arguments: str | dict[str, Any], usage: tuple[int, int] = (100, 20)) -> dict[str, Any]:
    """A tool call; `arguments` as a string is sent verbatim (malformed JSON included)."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    msg = {"content": None, "tool_calls": [{"id": f"call_{time.monotonic_ns()}", "type": "function",
                                            "function": {"name": name, "arguments": args}}]}
    return {"message": msg, "usage": usage}


def text_reply(text: str, usage: tuple[int, int] = (100, 10)) -> dict[str, Any]:
    return {"message": {"content": text}, "usage": usage}


def critique_reply(usage: tuple[int, int] = (900, 40), **fields: Any) -> dict[str, Any]:
    body = {"goal_met": True, "score": 8.0, "issues": [], "evidence": ["the face is well exposed now"],
            "suggestions": [], **fields}
    return {"message": {"content": json.dumps(body)}, "usage": usage}


def error(status: int) -> dict[str, Any]:
    # retry-after-ms keeps the client's backoff short; the client honours it as the server asks
    return {"status": status, "headers": {"retry-after-ms": "10"},
            "body": {"error": {"message": f"scripted {status}", "type": "server_error", "code": None}}}


def slow(reply: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {**reply, "delay": seconds}


class ScriptedServer:
    """Answers each model's requests from its script (the last entry repeats); records requests."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server.lock:
                    server.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                    script = server.scripts.get(body.get("model"), [error(404)])
                    step = script.pop(0) if len(script) > 1 else script[0]
                time.sleep(step.get("delay", 0))
                status = step.get("status", 200)
                payload = step.get("body") or completion(step["message"], step["usage"], body.get("model"))
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in step.get("headers", {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def to(self, model: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["body"].get("model") == model]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("IMAGENT_NO_EMBEDDINGS", "1")
    monkeypatch.setenv("IMAGENT_PRICES", json.dumps({"openai:test-model": {"input": 2.0, "output": 8.0},
                                                     "openai:test-vlm": {"input": 10.0, "output": 30.0}}))
    s = ScriptedServer()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def dark_png(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no imagent.toml of the developer's leaks in
    p = tmp_path / "dark.png"
    save_image(underexpose(sample("astronaut", (96, 72)), 1.5), p)
    return p



def edit_args(image: Path, server: ScriptedServer, *extra: str) -> list[str]:
    return ["edit", str(image), "-g", "brighten it", "-o", str(image.parent / "out.png"),
            "--model", "openai:test-model", "--critic", "openai:test-vlm", "--base-url", server.url,
            "--trace", str(image.parent / "trace.json"), "--timeout", "5", *extra]


# ----------------------------------------------------------------------------- end to end


def test_edit_end_to_end_through_the_openai_client(server: ScriptedServer, dark_png: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from tools.registry import all_tools, get, json_schema

    server.scripts["test-model"] = [error(429), tool_reply("exposure", "{stops: oops"),
                                    tool_reply("exposure", {"stops": 1.5}, (300, 25)), text_reply("done")]
    server.scripts["test-vlm"] = [error(500), critique_reply()]
    code, out, err = run_cli(edit_args(dark_png, server), capsys)
    assert code == 0, err
    assert (dark_png.parent / "out.png").is_file()
    trace = json.loads((dark_png.parent / "trace.json").read_text())
    assert trace["stop_reason"] == "all targets met and the critic is satisfied"

    planner, critic = server.to("test-model"), server.to("test-vlm")
    assert len(planner) == 3 and len(critic) == 2  # 429 and 500 were each retried once
    assert all(r["path"] == "/v1/chat/completions" for r in server.requests)

    # the tools sent are the registry's strict schemas, byte for byte
    sent = {t["function"]["name"]: t for t in planner[-1]["body"]["tools"]}
    assert {t.name for t in all_tools() if not t.read_only and t.name not in FILE_BACKED} <= sent.keys()
    assert sent == {name: json_schema(get(name)) for name in sent}
    assert all(t["function"]["strict"] is True for t in sent.values())

    # the malformed call came back to the model as an error observation
    tool_msgs = [m for m in planner[-1]["body"]["messages"] if m["role"] == "tool"]
    assert any("malformed tool call" in m["content"] for m in tool_msgs)

    # the critic gets the images as image parts and answers in the Critique schema
    parts = critic[-1]["body"]["messages"][-1]["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == 2 and all(p["image_url"]["url"].startswith("data:image/jpeg;base64,") for p in images)
    assert critic[-1]["body"]["response_format"]["json_schema"]["name"] == "Critique"
    assert any(s["tool"] == "critic:openai:test-vlm" and s["outcome"] == "critique" for s in trace["steps"])

    # tokens and cost add up from what the server reported
    usage = trace["usage"]
    assert [(c["role"], c["input_tokens"], c["output_tokens"]) for c in usage["per_call"]] == [
        ("planner", 100, 20), ("planner", 300, 25), ("critic", 900, 40)]
    assert trace["input_tokens"] == 1300 and trace["output_tokens"] == 85 and trace["model_calls"] == 3
    cost = (400 * 2.0 + 45 * 8.0 + 900 * 10.0 + 40 * 30.0) / 1e6
    assert trace["cost_usd"] == pytest.approx(cost)
    assert sum(t["cost_usd"] for t in usage["per_turn"]) == pytest.approx(cost)
    assert "cost (USD)" in out and f"{cost:.4f}" in out


def test_a_slow_answer_times_out_and_is_retried(server: ScriptedServer, dark_png: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # the slow answer says 1.4 stops, the retried one 1.5: the step kept shows which one was used
    server.scripts["test-model"] = [slow(tool_reply("exposure", {"stops": 1.4}), 3.0),
                                    tool_reply("exposure", {"stops": 1.5}), text_reply("done")]
    server.scripts["test-vlm"] = [critique_reply()]
    args = edit_args(dark_png, server)
    args[args.index("--timeout") + 1] = "0.5"
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert len(server.to("test-model")) == 2
    trace = json.loads((dark_png.parent / "trace.json").read_text())
    first = trace["steps"][0]
    assert first["tool"] == "exposure" and first["outcome"] == "kept"
    assert first["params"]["stops"] == 1.5  # it did not wait for the slow answer


def test_a_server_that_keeps_failing_ends_the_run_with_the_original(server: ScriptedServer, dark_png: Path,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGENT_MAX_RETRIES", "1")
    server.scripts["test-model"] = [error(500)]
    code, _, err = run_cli(edit_args(dark_png, server), capsys)
    assert code == ExitCode.NOT_MET, err  # the best version is written; the goal is not met
    assert len(server.to("test-model")) == 2  # one try and one retry
    trace = json.loads((dark_png.parent / "trace.json").read_text())
    assert "planning model failed" in trace["stop_reason"] and trace["chosen_version"] == "v0"
    assert "500" in trace["usage"]["per_call"][0]["error"]
    assert (dark_png.parent / "out.png").is_file()


def test_the_cost_budget_stops_the_run_and_says_so(server: ScriptedServer, dark_png: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # each planner call: 1000 prompt tokens at $2/M + 20 at $8/M = $0.00216; each critique of a
    # turn's result: 300 at $10/M + 10 at $30/M = $0.0033
    server.scripts["test-model"] = [tool_reply("exposure", {"stops": 0.2}, (1000, 20))]
    server.scripts["test-vlm"] = [critique_reply((300, 10), goal_met=False, score=4.0, issues=["too_dark"])]
    code, out, err = run_cli(edit_args(dark_png, server, "--max-cost", "0.01"), capsys)
    assert code == ExitCode.NOT_MET, err
    trace = json.loads((dark_png.parent / "trace.json").read_text())
    assert trace["stop_reason"].startswith("cost budget spent")
    # turn 1: planner + critique = $0.00546; turn 2: planner ($0.00762), its exposure runs (another
    # planner call would still fit) but its critique would pass $0.01: not asked; turn 3: planner
    # ($0.00978); its exposure is not run, since a next planner call would pass $0.01
    assert len(server.to("test-model")) == 3 and len(server.to("test-vlm")) == 1
    assert trace["cost_usd"] == pytest.approx(3 * 0.00216 + 0.0033) and trace["cost_usd"] <= 0.01
    assert [s["reason"][:49] for s in trace["steps"] if s["tool"].startswith("critic:")][:2] == [
        "not yet: score 4.0/10, too_dark", "the critic was not asked: cost budget spent ($0.0"]
    assert trace["chosen_version"] != "v0"  # the best so far is kept and written
    assert "cost budget spent" in out and (dark_png.parent / "out.png").is_file()


def test_the_call_budget_stops_the_run(server: ScriptedServer, dark_png: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    server.scripts["test-model"] = [tool_reply("exposure", {"stops": 0.1})]
    server.scripts["test-vlm"] = [critique_reply(goal_met=False, score=4.0, issues=["too_dark"])]
    code, out, err = run_cli(edit_args(dark_png, server, "--max-calls", "3"), capsys)
    assert code == ExitCode.NOT_MET, err
    # turn 1: the planner and the critique of its result; turn 2: the planner; its critique is not asked
    assert len(server.to("test-model")) == 2 and len(server.to("test-vlm")) == 1
    trace = json.loads((dark_png.parent / "trace.json").read_text())
    assert trace["stop_reason"] == "model-call budget spent (3 calls)"


def test_a_cost_budget_without_a_price_is_refused(server: ScriptedServer, dark_png: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMAGENT_PRICES")
    code, _, err = run_cli(edit_args(dark_png, server, "--max-cost", "0.01"), capsys)
    assert code == 2 and "needs the price of openai:test-model" in err and "Traceback" not in err
    assert not server.requests and not (dark_png.parent / "out.png").exists()


def test_a_missing_api_key_or_package_is_one_clear_line(dark_png: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, _, err = run_cli(["edit", str(dark_png), "-g", "brighten", "-o", str(dark_png.parent / "o.png"),
                        "--model", "openai:gpt-4o-mini"], capsys)
    assert code == 2 and "set OPENAI_API_KEY" in err and "Traceback" not in err
    code, _, err = run_cli(["edit", str(dark_png), "-g", "brighten", "-o", str(dark_png.parent / "o.png"),
                        "--critic", "anthropic:claude-sonnet-4-5"], capsys)
    assert code == 2 and ("install langchain-anthropic" in err or "set ANTHROPIC_API_KEY" in err)


# ----------------------------------------------------------------------------- hf: local models


def _tiny_hf_model(path: Path) -> None:
    """A 2-layer GPT-2 with random weights and a 13-word WordLevel tokenizer: no download."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = ["<unk>", "<pad>", "<eos>", "user", "assistant", "system", "photo", "brighten", "exposure",
             "stops", ":", "{", "}"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")
    fast.chat_template = "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}assistant :"
    fast.save_pretrained(path)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(words), n_positions=8192, n_embd=16, n_layer=2, n_head=2,
                     eos_token_id=2, bos_token_id=2, pad_token_id=1)
    GPT2LMHeadModel(cfg).save_pretrained(path)


@pytest.mark.disable_socket
def test_hf_path_loads_a_local_model_and_drives_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("langchain_huggingface")
    from langchain_core.messages import HumanMessage

    from agent.goals import Budget, parse_goal
    from agent.loop import run_loop
    from agent.planners import make_planner
    from agent.state import EditSession
    from tools.analysis import measure

    monkeypatch.setenv("IMAGENT_NO_EMBEDDINGS", "1")
    _tiny_hf_model(tmp_path / "tiny")
    model = make_planner(f"hf:{tmp_path / 'tiny'}", pipeline_kwargs={"max_new_tokens": 6},
                         timeout=5, max_retries=2)  # call options a local pipeline ignores
    assert type(model).__name__ == "ChatHuggingFace"
    ai = model.invoke([HumanMessage(content="brighten photo")])
    assert isinstance(ai.content, str) and "brighten photo" not in ai.content  # the answer, not the prompt

    session = EditSession(underexpose(sample("astronaut", (64, 48)), 1.0))
    goal = parse_goal("brighten it", measure(session.original), budget=Budget(max_steps=2, max_model_calls=2))
    res = run_loop(session, goal, model)  # a random model: it may babble, it must not crash the loop
    assert res.model_calls >= 1 and "failed" not in res.stop_reason, res.stop_reason
    first = res.usage["per_call"][0]
    assert first["model"].startswith("huggingface:") and first["cost_usd"] == 0 and first["error"] is None
