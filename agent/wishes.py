"""Direct wishes: a look, a crop, a rotation, a flip, a vignette, an upscale. They name an exact edit, so
there is nothing to search: the agent applies them as the user said, not through the planner.

`find` reads them from a goal (looks by their names in six languages from `looks.json`,
geometry from the English the parser reads). `steps` turns them into recipe steps: looks and
the vignette come first (the planner then works on what is left of the goal, from the look),
framing (crop, rotate, flip) and an upscale (2x or 4x, Real-ESRGAN where it runs, else Lanczos)
last, after the measured edits, since the structure lock compares versions of the same size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agent.looks import looks

FRAMING = ("crop", "rotate", "flip")
_DEGREE_WORDS = ((re.compile(r"\b(a (little )?bit|slight(ly)?|subtle|a touch|a hint|light|gentle)\b"), 0.5),
                 (re.compile(r"\b(strong(ly)?|heavy|very|really|extreme|a lot|dramatic)\b"), 1.4))
_RATIO = re.compile(r"\b(\d+(?:\.\d+)?)\s*(?::|x|×|/|by)\s*(\d+(?:\.\d+)?)\b")
_CROP = re.compile(r"\bcrop|\bsquare\b|\baspect\b|\bformat\b|\bportrait\b|\blandscape\b|"
                   r"^(?:(?:make|set|change|turn|it|this|to|in|into|as|a|an|the|photo|image|picture|please) )*\d+(?:\.\d+)?:\d+(?:\.\d+)?(?: ratio| please)?$")
# a ratio names a frame's sides whichever way round it is written: "portrait 4:3" is 3 wide by 4 high
_ORIENTATION = re.compile(r"\b(?:(?P<tall>portrait|upright|tall)|(?P<wide>landscape|wide))\b")
# "turn" rotates only with an angle or a direction: "turn it into black and white" does not
_ROTATE = re.compile(r"\brotate\b|\bturn\b(?=.*\b(?:degrees?|90|180|270|left|right|clockwise|counter-?clockwise|"
                     r"anti-?clockwise|sideways)\b)|\bupside down\b")
_FLIP = re.compile(r"\b(flip|mirror)\b")
_VIGNETTE = re.compile(r"\bvignett")


@dataclass(frozen=True)
class Wish:
    """One direct wish: kind is look | crop | rotate | flip | vignette."""

    kind: str
    argument: str | None = None  # look name, "W:H", degrees clockwise, "horizontal" / "vertical"
    degree: float = 1.0
    clause: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.argument}" if self.argument else self.kind


def _degree(text: str) -> float:
    for pattern, value in _DEGREE_WORDS:
        if pattern.search(text):
            return value
    return 1.0


# "too moody", "it looks faded", "zu düster": a complaint about the photo, not a look to apply
_COMPLAINT = re.compile(r"(?:\b(?:too|so|overly|is|are|looks|seems|was|zu|trop|demasiado|not|no|don'?t)\s+|太|すぎ)$")


def find_look(text: str) -> Wish | None:
    """The look a text names (longest name first, in any of its languages), or None."""
    lowered = text.lower()
    words = sorted(((w.lower(), name) for name, look in looks().items() for w in (*look.words, name.replace("_", " "))),
                   key=lambda p: -len(p[0]))
    for word, name in words:
        hit = (re.search(rf"(?<!\w){re.escape(word)}(?!\w)", lowered) if word.isascii() else word in lowered)
        if hit and not _COMPLAINT.search(lowered[: lowered.find(word)]):
            return Wish("look", name, _degree(lowered), text)
    return None


_FILLER = {"a", "an", "the", "it", "very", "bit", "little", "and", "look", "style", "feel", "please", "give", "make",
           "go", "for", "vibe", "vibes", "mood", "tone", "tones", "effect", "finish", "grade", "some", "like", "with"}


def look_vocabulary(name: str) -> set[str]:
    """The words of a look's names (English tokens): a clause made only of them adds nothing to the look."""
    return {t for w in looks()[name].words for t in re.findall(r"[a-z]+", w.lower())} | _FILLER


def find_framing(clause: str) -> Wish | None:
    """A crop to a ratio, a rotation or a flip named in one English clause, or None."""
    if _CROP.search(clause):
        ratio = _RATIO.search(clause)
        if ratio:
            width, height = float(ratio[1]), float(ratio[2])
            turn = _ORIENTATION.search(clause)
            if turn and (width > height if turn["tall"] else width < height):
                width, height = height, width
            return Wish("crop", f"{width:g}:{height:g}", clause=clause)
        if "square" in clause:
            return Wish("crop", "1:1", clause=clause)
    if _ROTATE.search(clause):
        degrees = 180 if "upside down" in clause else int(m[1]) if (m := re.search(r"\b(90|180|270)\b", clause)) else 90
        counter = re.search(r"counter-?clockwise|anti-?clockwise|\bleft\b", clause)
        degrees = -degrees if counter and degrees != 180 else degrees
        return Wish("rotate", str(degrees), clause=clause)
    if _FLIP.search(clause):
        return Wish("flip", "vertical" if re.search(r"vertical|upside", clause) else "horizontal", clause=clause)
    if _VIGNETTE.search(clause):
        return Wish("vignette", None, _degree(clause), clause)
    return None


def steps(wishes: list[Wish]) -> tuple[list[tuple[str, dict]], list[tuple[str, dict]]]:
    """(steps before the planner, framing steps after it) as (tool, params) pairs."""
    first: list[tuple[str, dict]] = []
    last: list[tuple[str, dict]] = []
    upscale = None
    for w in wishes:
        if w.kind == "look":
            first += [(s.tool, s.params) for s in looks()[w.argument].recipe(min(w.degree, 1.5)).steps]
        elif w.kind == "vignette":
            first.append(("vignette", {"amount": -0.35 * w.degree}))
        elif w.kind == "crop":
            width, height = (float(v) for v in w.argument.split(":"))
            last.append(("crop", {"aspect": width / height}))
        elif w.kind == "rotate":
            last.append(("rotate", {"angle": -float(w.argument), "expand": True}))  # the tool turns counter-clockwise
        elif w.kind == "flip":
            last.append(("flip", {w.argument: True}))
        elif w.kind == "upscale":  # last of all: every other step runs at the original's size
            upscale = ("upscale", {"factor": int(w.argument or 2), "method": _upscaler()})
    return first, last + ([upscale] if upscale else [])


def _upscaler() -> str:
    """Real-ESRGAN where it runs here, else Lanczos (tools/neural.py says why not)."""
    from tools import neural

    return "neural" if neural.problem("esrgan") is None else "lanczos"


def of_goal(goal: Any) -> list[Wish]:
    """The direct wishes among a goal's intents (agent.goals keeps them as intents with an argument)."""
    kinds = ("look", "vignette", "upscale", *FRAMING)
    return [Wish(i.name, i.argument, i.degree, i.clause) for i in goal.intents if i.name in kinds]


def recipes(goal: Any) -> tuple[Any, Any]:
    """(the steps before the measured edits, the framing after them) of a goal, as tools.recipe.Recipe."""
    from tools.recipe import Recipe

    first, last = steps(of_goal(goal))
    before, after = Recipe(), Recipe()
    for tool, params in first:
        before = before.then(tool, params)
    for tool, params in last:
        after = after.then(tool, params)
    return before, after
