"""The systems an eval compares: baselines and agents, each `(case, input, reference) -> Output`.

- identity: returns the input (what doing nothing scores).
- auto: classic one-click enhancement with OpenCV: grey-world white balance in
  linear light, auto levels (0.5 / 99.5 % luminance percentiles to black and
  white), then CLAHE on L* (clip limit 2).
- oracle: the exact inverse of the case's known degradation where one exists
  (exposure, cast, contrast, haze, desaturation; noise, blur and JPEG have none
  and are left), or the hidden look itself for `match`. An upper reference, not a
  competitor.
- fit (match only): the continuous parameters of a fixed pointwise chain
  (exposure, white balance, contrast, saturation) fitted to the reference by
  least squares on a 64 px preview (Powell), then applied at full size.
- fill-telea, fill-ns, fill-exemplar, fill-auto (inpaint only): `tools.inpaint`
  with that method on the case's known hole.
- prior: the learned prior's correction (`tools.prior`) applied as it is: no goal, no planning.
- rules: the offline agent with every magnitude from the rules (`agent.api.edit(prior=False)`):
  what the agent did before the prior.
- any other name is an agent (on inpaint cases only spots and scratches, which it
  can find itself; it is not told where a square or stroke hole is): `agent.api.edit` with that planner ("offline",
  "openai:gpt-4o-mini", "hf:/path" ...).
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

FILL_METHODS = ("telea", "ns", "exemplar", "auto")
GAN_SYSTEMS = ("gan-encoder", "gan-invert", "gan-latent")
LEARNED_SYSTEMS = ("nlm", "bilateral", "neural", "exposure", "exposure+nlm", "exposure+neural", "low_light",
                   "bicubic", "lanczos")  # evals/learned.py SYSTEMS (a test keeps them equal)
BASELINES = ("identity", "auto", "oracle", "fit", "prior", *(f"fill-{m}" for m in FILL_METHODS), *GAN_SYSTEMS,
             *LEARNED_SYSTEMS)
FIT_CHAIN = (("exposure", "stops", -2.0, 2.0), ("white_balance", "temperature", -100.0, 100.0),
             ("white_balance", "tint", -100.0, 100.0), ("contrast", "amount", -100.0, 100.0),
             ("saturation", "amount", -100.0, 100.0))


class NotApplicable(Exception):
    """This system has nothing to offer on this case (an oracle without a known inverse)."""


@dataclass
class Output:
    """What a system made of one case, with its accounting."""

    image: torch.Tensor
    steps: int = 0
    tool_calls: int = 0
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    trace: list[str] = field(default_factory=list)
    stop_reason: str = ""
    note: str = ""
    usd: float | None = 0.0  # None: a model without a known price was called
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific record fields (gan: moved)


def identity(case: Any, image: torch.Tensor, reference: torch.Tensor | None) -> Output:
    """Do nothing."""
    return Output(image=image.clone())


def auto_enhance(case: Any, image: torch.Tensor, reference: torch.Tensor | None) -> Output:
    """Grey-world white balance, auto levels, CLAHE on lightness (OpenCV)."""
    import cv2
    import numpy as np

    from tools.colorspace import linear_to_srgb, srgb_to_linear
    from tools.io import to_array, to_tensor

    lin = srgb_to_linear(image)
    means = lin.mean(dim=(2, 3), keepdim=True).clamp_min(1e-4)
    lin = (lin * means.mean(1, keepdim=True) / means).clamp(0, 1)
    x = linear_to_srgb(lin)
    luma = (x * torch.tensor([0.2126, 0.7152, 0.0722]).view(1, 3, 1, 1)).sum(1)
    lo, hi = (float(v) for v in torch.quantile(luma.flatten(), torch.tensor([0.005, 0.995])))
    if hi - lo > 1e-3:
        x = ((x - lo) / (hi - lo)).clamp(0, 1)
    lab = cv2.cvtColor(to_array(x), cv2.COLOR_RGB2LAB)
    tiles = max(2, min(8, min(lab.shape[:2]) // 32))
    lab[..., 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(tiles, tiles)).apply(np.ascontiguousarray(lab[..., 0]))
    return Output(image=to_tensor(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)), steps=3,
                  trace=["grey-world WB", f"levels {lo:.3f}..{hi:.3f}", f"CLAHE clip 2 tiles {tiles}"])


def _inverse(image: torch.Tensor, op: str, p: dict[str, float]) -> torch.Tensor | None:
    from tools import degrade as dg

    w = torch.tensor([0.2126, 0.7152, 0.0722], dtype=image.dtype).view(1, 3, 1, 1)
    if op == "underexpose":
        return dg.underexpose(image, -p["stops"])
    if op == "color_cast":
        return dg.color_cast(image, 1 / p.get("r", 1.0), 1 / p.get("g", 1.0), 1 / p.get("b", 1.0))
    if op == "low_contrast":
        return (0.5 + (image - 0.5) / p.get("factor", 0.6)).clamp(0, 1)
    if op == "haze":
        t, a = p.get("transmission", 0.6), p.get("airlight", 0.9)
        return ((image - a * (1 - t)) / t).clamp(0, 1)
    if op == "desaturate" and p.get("amount", 0.5) < 1:
        grey = (image * w).sum(1, keepdim=True)
        return (grey + (image - grey) / (1 - p.get("amount", 0.5))).clamp(0, 1)
    return None  # noise, blur, JPEG: information is lost


def oracle(case: Any, image: torch.Tensor, reference: torch.Tensor | None) -> Output:
    """Undo the known degradation (restore) or apply the hidden look (match)."""
    if case.kind == "match":
        if reference is None:
            raise NotApplicable("this match case has no reference look")
        return Output(image=reference.clone(), steps=len(case.look), trace=[f"{s['tool']} (hidden look)" for s in case.look])
    if case.kind != "restore":
        raise NotApplicable(f"no oracle for {case.kind} cases")
    out, done, left = image, [], []
    for d in reversed(case.degrade):
        inv = _inverse(out, d.op, dict(d.params))
        if inv is None:
            left.append(d.op)
        else:
            out = inv
            done.append(f"inverse {d.op}")
    return Output(image=out, steps=len(done), trace=done,
                  note=f"no inverse for {', '.join(left)}" if left else "")


def prior_only(case: Any, image: torch.Tensor, reference: torch.Tensor | None) -> Output:
    """The learned prior's whole correction of the input, applied as it is."""
    from tools.prior import correction_steps, estimate
    from tools.recipe import Recipe, Step, apply_recipe

    steps = correction_steps(estimate(image))
    recipe = Recipe(steps=[Step.of(s["tool"], s["params"]) for s in steps])
    return Output(image=apply_recipe(image, recipe), steps=len(steps),
                  trace=[f"{s['tool']}({', '.join(f'{k}={_short(v)}' for k, v in s['params'].items())})" for s in steps])


def _chain(image: torch.Tensor, values: Any) -> torch.Tensor:
    from tools.registry import get

    params: dict[str, dict[str, float]] = {}
    for (tool, name, lo, hi), v in zip(FIT_CHAIN, values, strict=True):
        params.setdefault(tool, {})[name] = float(min(max(v, lo), hi))
    out = image
    for tool in dict.fromkeys(t for t, *_ in FIT_CHAIN):
        out = get(tool)(out, params[tool])
    return out


def parametric_fit(case: Any, image: torch.Tensor, reference: torch.Tensor | None) -> Output:
    """Fit exposure, white balance, contrast and saturation to the reference (least squares)."""
    import numpy as np
    from scipy.optimize import minimize

    from agent.state import preview_of

    if reference is None or case.kind != "match":
        raise NotApplicable("the parametric fit needs a reference look (match cases)")
    x, ref = preview_of(image, 64), preview_of(reference, 64)
    if x.shape != ref.shape:
        raise NotApplicable("reference and input differ in size")
    # A tensor that wants gradients takes the tools' direct torch path: on a 64 px preview
    # that is ~100x cheaper than building their 16-bit lookup tables at every evaluation.
    x = x.clone().requires_grad_(True)

    def loss(v: Any) -> float:
        with torch.enable_grad():
            return float((_chain(x, v) - ref).pow(2).mean().detach())

    bounds = [(lo, hi) for *_, lo, hi in FIT_CHAIN]
    res = minimize(loss, np.zeros(len(FIT_CHAIN)), method="Powell", bounds=bounds,
                   options={"maxfev": 600, "xtol": 1e-3, "ftol": 1e-9})
    trace = [f"{t}.{n}={v:.3g}" for (t, n, *_), v in zip(FIT_CHAIN, res.x, strict=True)]
    return Output(image=_chain(image, res.x), steps=len(FIT_CHAIN), trace=trace,
                  note=f"{res.nfev} evaluations, mse {res.fun:.2e}")


def fill_hole(method: str, case: Any, image: torch.Tensor, reference: torch.Tensor | None) -> Output:
    """Fill the case's known hole with one method of `tools.inpaint` (inpaint cases only)."""
    from evals.suites import case_mask
    from tools.inpaint import inpaint

    if case.kind != "inpaint":
        raise NotApplicable("hole filling needs an inpaint case (a known hole)")
    hole = case_mask(case, *image.shape[-2:])
    return Output(image=inpaint(image, hole, method=method), steps=1,
                  trace=[f"inpaint(method={method}) on {int(hole.sum())} px"])


def run_chat(model: str, case: Any, image: torch.Tensor, *, base_url: str | None = None) -> Output:
    """A scripted conversation (`case.turns`) with the chat engine; the output is the version it ends on."""
    import tempfile

    from agent.chat import Session

    with tempfile.TemporaryDirectory(prefix="imagent-eval-chat-") as tmp:
        with Session.open(image, session=Path(tmp) / "s", model=model, base_url=base_url,
                          options=_case_options(case, image)) as s:
            trace, calls = [], 0
            for text in case.turns:
                reply = s.say(text)
                calls += len(reply.trace)
                trace.append(f"{text!r} -> {reply.version}: {reply.text.splitlines()[0][:80] if reply.text else ''}")
            out = s.render()
            steps = len(s.recipe().steps)
    return Output(image=out, steps=steps, tool_calls=calls, trace=trace, stop_reason=f"{len(case.turns)} turns")


def _edit_supports(option: str) -> bool:
    from agent.api import edit

    return option in inspect.signature(edit).parameters


def run_agent(model: str, case: Any, image: torch.Tensor, reference: torch.Tensor | None, *,
              critic: str | None = None, base_url: str | None = None) -> Output:
    """The agent with planner `model` on one case (the reference is given only for match);
    model "rules" is the offline planner without the learned prior."""
    from agent.api import edit

    options: dict[str, Any] = {}
    prior = model != "rules"
    if model == "rules":
        model = "offline"
    if critic is not None:
        if not _edit_supports("critic"):
            from agent.errors import UserError

            raise UserError("--critic: this checkout's agent.api.edit takes no critic yet (agent/critics.py)")
        options["critic"] = critic
    if base_url is not None:
        options["base_url"] = base_url
    res = edit(image, case.goal, model=model, reference=reference if case.kind == "match" else None,
               options=_case_options(case, image, prior=prior), **options)
    lr = res.loop
    usage = getattr(lr, "usage", None) or {}
    usd = None if usage.get("unpriced_models") else round(float(getattr(lr, "cost_usd", 0.0) or 0.0), 6)
    trace = []
    for e in lr.trace:
        params = ", ".join(f"{k}={_short(v)}" for k, v in e.params.items() if v not in (0, 0.0, None, False, [], {}))
        trace.append(f"{e.tool}({params}) {e.outcome}")
    return Output(image=res.image, steps=len(res.recipe.steps), tool_calls=len(lr.trace), model_calls=lr.model_calls,
                  input_tokens=lr.input_tokens, output_tokens=lr.output_tokens, trace=trace,
                  stop_reason=res.stop_reason, usd=usd)


def _case_options(case: Any, image: torch.Tensor, prior: bool = True) -> Any:
    """The agent's EditOptions on a case: its lock and step budget; the image is its own preview."""
    from agent.options import DEFAULT_PREVIEW, Budget, EditOptions

    return EditOptions(lock=case.lock, budget=Budget(max_steps=case.max_steps),
                       preview=max(DEFAULT_PREVIEW, *image.shape[-2:]), prior=prior)


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)[:40]


def run_system(name: str, case: Any, image: torch.Tensor, reference: torch.Tensor | None,
               **agent_options: Any) -> tuple[Output, float]:
    """(output, seconds) of system `name` on one case; raises NotApplicable when it does not apply."""
    t0 = time.perf_counter()
    fn = {"identity": identity, "auto": auto_enhance, "oracle": oracle, "fit": parametric_fit,
          "prior": prior_only}.get(name)
    if name in GAN_SYSTEMS:
        if case.kind != "gan":
            raise NotApplicable(f"{name} works on generated faces (gan cases)")
        from evals.gan import run

        image_out, extra, trace = run(name, case, image)
        out = Output(image=image_out, steps=1, trace=trace, extra=extra)
    elif case.kind == "gan":
        raise NotApplicable("gan cases are run by the gan-* systems")
    elif name.startswith("fill-") and name[5:] in FILL_METHODS:
        out = fill_hole(name[5:], case, image, reference)
    elif name in LEARNED_SYSTEMS:  # the restore-learned suite's restorers (evals/learned.py)
        from evals.learned import run

        out = run(name, case, image)
    elif fn:
        out = fn(case, image, reference)
    else:
        if case.kind == "inpaint" and (case.mask or {}).get("shape") in ("square", "strokes"):
            raise NotApplicable("the agent is not told where a square or brush-stroke hole is")
        if case.kind == "chat":
            if agent_options.get("critic") is not None:
                raise NotApplicable("chat cases run without a critic")
            out = run_chat(name, case, image, base_url=agent_options.get("base_url"))
        else:
            out = run_agent(name, case, image, reference, **agent_options)
    return out, time.perf_counter() - t0


def default_systems(kind: str, models: list[str]) -> list[str]:
    """identity, auto, oracle (where one can exist), fit (match), the offline agent, then `models`."""
    if kind == "gan":
        return list(GAN_SYSTEMS)
    if kind == "chat":
        return ["identity", "offline"] + [m for m in models if m not in ("identity", "offline")]
    if kind == "inpaint":
        names = ["identity", *(f"fill-{m}" for m in FILL_METHODS)]
        return names + ["offline"] + [m for m in models if m not in names and m != "offline"]
    names = ["identity", "auto"]
    if kind in ("restore", "match"):
        names.append("oracle")
    if kind == "match":
        names.append("fit")
    return names + ["offline"] + [m for m in models if m not in names and m != "offline"]
