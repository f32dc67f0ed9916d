"""The page: Gradio Blocks components, their wiring to agent.web.handlers, and launch().

Each event finds its tab by Gradio's per-tab session hash, calls one handler and shows the
View it returns; every output list is OUTPUTS, in the order _show() fills it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from agent.runtime import quiet_environment
from agent.web import handlers as H
from agent.web.masks import KINDS
from agent.web.tabs import Config, Tabs
from agent.web.views import STEP_COLUMNS, TARGET_COLUMNS, View

WHOLE = "(whole photo)"
IMAGE_TYPES = [".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"]
CSS = "#status p { margin: 0.2em 0 } #versions { min-height: 140px }"


def build(tabs: Tabs, uploads: Path | None = None) -> gr.Blocks:
    """The app for `tabs` (`uploads`: Gradio's upload folder, the only place an upload may come from)."""
    config = tabs.config
    with gr.Blocks(title="imagent", analytics_enabled=False) as demo:
        c = _components(config)
        outputs = [c[k] for k in ("status", "chat", "compare", "versions", "steps", "targets", "cost", "confine",
                                  "editor", "file", "sessions")]

        def on(fn: Callable[..., View], n: int) -> Callable[..., tuple[Any, ...]]:
            """fn(tab, *inputs) as a Gradio listener of `n` inputs and the tab's request."""
            def run(*args: Any) -> tuple[Any, ...]:
                *values, request = args
                return _show(fn(tabs.get(request.session_hash), *values))
            return _with_request(run, n)

        def on_say(text: str, mask: str, request: gr.Request) -> Iterator[tuple[Any, ...]]:
            for view in H.say(tabs.get(request.session_hash), text, None if mask == WHOLE else mask):
                yield _show(view)

        def on_pick(evt: gr.SelectData, request: gr.Request) -> tuple[Any, ...]:
            return _show(H.checkout(tabs.get(request.session_hash), evt.index))

        c["upload"].upload(on(lambda tab, f: H.upload(tab, f, uploads), 1), [c["upload"]], outputs)
        c["open"].click(on(lambda tab, name: H.reopen(tab, name, tabs), 1), [c["sessions"]], outputs)
        c["refresh"].click(on(H.view_of, 0), [], outputs)
        for trigger in (c["send"].click, c["goal"].submit):
            trigger(on_say, [c["goal"], c["confine"]], outputs).then(lambda: "", None, c["goal"])
        c["undo"].click(on(H.undo, 0), [], outputs)
        c["redo"].click(on(H.redo, 0), [], outputs)
        c["versions"].select(on_pick, [], outputs)
        c["make_mask"].click(on(H.add_mask, 3), [c["kind"], c["editor"], c["colour"]], outputs)
        c["use_model"].click(on(H.set_planner, 4), [c["model"], c["critic"], c["base_url"], c["key"]], outputs)
        c["use_budget"].click(on(H.set_budget, 2), [c["max_steps"], c["max_seconds"]], outputs)
        for what in ("image", "recipe", "cube"):
            c[f"get_{what}"].click(on(lambda tab, w=what: H.download(tab, w), 0), [], outputs)
        demo.load(on(H.view_of, 0), [], outputs)
        demo.load(lambda: gr.update(choices=config.planner_choices()), None, c["model"])

        def on_close(request: gr.Request) -> None:
            tabs.drop(request.session_hash)

        demo.unload(on_close)
    return demo


def _with_request(fn: Callable[..., Any], n: int) -> Callable[..., Any]:
    """Give `fn(*args)` a signature of n inputs and a trailing gr.Request, which Gradio fills in."""
    params = [inspect.Parameter(f"input_{i}", inspect.Parameter.POSITIONAL_OR_KEYWORD) for i in range(n)]
    params.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request))
    fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    fn.__annotations__ = {"request": gr.Request}
    return fn


def _components(config: Config) -> dict[str, Any]:
    c: dict[str, Any] = {}
    gr.Markdown("## imagent - say what the photo needs")
    c["status"] = gr.Markdown(elem_id="status")
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row():
                c["upload"] = gr.UploadButton("Upload a photo", file_types=IMAGE_TYPES, type="filepath",
                                              elem_id="upload", scale=1)
                c["sessions"] = gr.Dropdown(label="Sessions", choices=[], elem_id="sessions", scale=3)
                c["open"] = gr.Button("Open", elem_id="open", scale=1)
                c["refresh"] = gr.Button("Refresh", elem_id="refresh", scale=1)
            c["compare"] = gr.ImageSlider(label="before | after", type="numpy", interactive=False, format="png",
                                          elem_id="compare", max_height=560)
            c["versions"] = gr.Gallery(label="Versions (click one to branch from it)", columns=8, height=170,
                                       allow_preview=False, elem_id="versions", format="png")
            with gr.Row():
                c["undo"] = gr.Button("Undo", elem_id="undo")
                c["redo"] = gr.Button("Redo", elem_id="redo")
        with gr.Column(scale=3):
            c["chat"] = gr.Chatbot(label="Conversation", elem_id="chat", height=260)
            with gr.Row():
                c["goal"] = gr.Textbox(placeholder="make it brighter", show_label=False, elem_id="goal", scale=4)
                c["send"] = gr.Button("Send", variant="primary", elem_id="send", scale=1)
            c["confine"] = gr.Dropdown([WHOLE], value=WHOLE, label="Confine requests to", elem_id="confine")
            c["steps"] = gr.Dataframe(headers=STEP_COLUMNS, label="Steps", elem_id="steps", interactive=False,
                                      wrap=True, max_height=320, max_chars=70)
            c["targets"] = gr.Dataframe(headers=TARGET_COLUMNS, label="Targets before | after", elem_id="targets",
                                        interactive=False, wrap=True,
                                        column_widths=["58%", "14%", "14%", "14%"])
            c["cost"] = gr.Markdown(elem_id="cost")
    _mask_panel(c)
    _settings_panel(c, config)
    with gr.Row():
        c["get_image"] = gr.Button("Image (full size PNG)", elem_id="get-image")
        c["get_recipe"] = gr.Button("Recipe", elem_id="get-recipe")
        c["get_cube"] = gr.Button(".cube LUT", elem_id="get-cube")
        c["file"] = gr.File(label="Download", interactive=False, elem_id="download")
    return c


def _mask_panel(c: dict[str, Any]) -> None:
    with gr.Accordion("Mask: paint or detect the part to edit", open=False, elem_id="mask-panel"):
        c["editor"] = gr.ImageEditor(type="numpy", sources=[], transforms=[], layers=False, label="Paint with the brush",
                                     brush=gr.Brush(colors=[("#ff3030", 0.55)], color_mode="fixed"),
                                     elem_id="editor", height=420)
        with gr.Row():
            c["kind"] = gr.Radio(list(KINDS), value="brush", label="Mask from", elem_id="mask-kind")
            c["colour"] = gr.ColorPicker("#3070d0", label="colour (for 'colour')")
            c["make_mask"] = gr.Button("Make mask", elem_id="make-mask")


def _settings_panel(c: dict[str, Any], config: Config) -> None:
    with gr.Accordion("Planner, critic and budgets", open=False):
        with gr.Row():
            c["model"] = gr.Dropdown(config.planners, value=config.model, allow_custom_value=True,
                                     label="Planner: offline, local (after make llm), provider:model")
            c["critic"] = gr.Dropdown(["offline", "none"], value=config.critic, allow_custom_value=True,
                                      label="Critic: offline, none, provider:model")
            c["base_url"] = gr.Textbox(label="Server URL (OpenAI-compatible, optional)")
            c["key"] = gr.Textbox(label="API key (kept in this server's memory only)", type="password")
            c["use_model"] = gr.Button("Use these")
        with gr.Row():
            c["max_steps"] = gr.Slider(1, 50, value=8, step=1, label="Most edits per request")
            c["max_seconds"] = gr.Slider(5, 600, value=120, step=5, label="Most seconds per request")
            c["use_budget"] = gr.Button("Set budget")


def _table(rows: list[list[Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def _show(v: View) -> tuple[Any, ...]:
    """A View as the values of OUTPUTS (while a request runs, the images are left as they are)."""
    skip = gr.skip()
    confine = gr.update(choices=[WHOLE, *v.masks], value=v.mask or WHOLE)
    steps = _table(v.steps, STEP_COLUMNS)
    if v.partial:
        return (v.status, skip, skip, skip, steps, skip, skip, skip, skip, skip, skip)
    editor = {"background": v.editor, "layers": [], "composite": None} if v.editor is not None else None
    return (v.status, v.chat, v.compare, v.versions, steps, _table(v.targets, TARGET_COLUMNS), v.cost, confine,
            editor, v.download, gr.update(choices=v.sessions))


def launch(config: Config, host: str = "127.0.0.1", port: int = 7860, quiet: bool = False) -> None:
    """Serve until interrupted (Ctrl+C or SIGTERM); the sessions of open tabs are closed on the way out."""
    import signal

    quiet_environment()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops it as Ctrl+C does: cleanly
    tabs = Tabs(config)
    from gradio.utils import get_upload_folder

    demo = build(tabs, Path(get_upload_folder()))
    demo.queue(default_concurrency_limit=4)
    try:
        demo.launch(server_name=host, server_port=port, share=False, quiet=quiet, show_error=False,
                    max_file_size=config.max_upload_bytes,
                    footer_links=[], ssr_mode=False, pwa=False, mcp_server=False, css=CSS,
                    theme=gr.themes.Default(font=["system-ui", "sans-serif"],
                                            font_mono=["ui-monospace", "monospace"]))
    finally:
        tabs.close_all()
