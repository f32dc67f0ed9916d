"""IntentSpec: every intent declared once, in `INTENTS`.

An intent is one thing a user can ask for ("brighten", "dehaze") or the measurements can
find ("set_levels"). Its spec says what it means, how its targets are computed (a recipe in
agent/recipes.py), which intent it contradicts, which of the offline planner's strategies it
tries first (names in `agent.strategies.NAMED`), what a clause may add to it (a region, an
exact exposure, a box), how the measurements or the learned prior settle it, and what damage
the naturalness guard tolerates for it. Its example phrases are data, in agent/phrases.py
under its name (`IntentSpec.phrases()`).

Readers: agent.goals (parsing, settling, targets, refusals, the wishes a language model may
name), agent.offline (strategies first), agent.scoring (the guard's allowances), agent.intents
(the phrases the matcher knows); chat and evals reach it through goals. Adding an
intent: one `IntentSpec` entry below (+ a recipe in agent/recipes.py, + phrases in
agent/phrases.py when words ask for it, + a named strategy in agent/strategies.py if none fits).
Code outside this package that adds one at run time calls `register`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from agent import recipes as r
from agent import settle
from agent.phrases import PHRASES, labels

NO_FIRST: Mapping[str, tuple[str, ...]] = MappingProxyType({})
# What the naturalness guard (agent/scoring.py) lets a goal with this intent do: clip a little more at
# the highlights' or the shadows' end, raise luma or chroma noise more, expose a noisy night shot first
# (its noise target judges the noise), or change content (retouch, generative, resampling: the halo,
# detail and tint checks would read the change asked for as damage; the structure lock judges those).
Allowance = Literal["highlights", "shadows", "noise", "chroma", "noise_first", "content"]


@dataclass(frozen=True)
class IntentSpec:
    """One intent: meaning, targets, opposite, planner strategy and what a clause may add."""

    name: str
    description: str
    targets: r.Recipe = r.nothing  # (intent, original's stats, reference's stats) -> targets
    opposite: tuple[str, ...] = ()  # intents it contradicts: of two, the one asked later wins
    first: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: NO_FIRST)  # metric -> strategies tried first
    asked: bool = True  # asked in words (phrases in agent/phrases.py); False: found by measurement only
    offered: bool = True  # named to a language model that reads the clauses nothing else reads
    holds: bool = False  # "not brighter": a refused one keeps its metrics on the original's side
    region: bool = False  # may be limited to a named region ("brighten the face", "a bluer sky")
    stops: bool = False  # takes an exact exposure change ("+1 stop")
    box: bool = False  # takes the box of an object ("remove the object at x,y,w,h")
    allows: frozenset[Allowance] = frozenset()  # damage the naturalness guard tolerates more of (see Allowance)
    saturation: float = 0.0  # +1 / -1: asks for more / less colour (the guard lets neutrals' colour scale so)
    settle: settle.Settler | None = None  # names it by the measurements ("fix the exposure" -> brighten)
    prior: bool = False  # takes its magnitude from the learned prior (agent/natural.py) when there is one
    removes_noise: bool = False  # relaxes the structure lock to what the clean photo would keep (goals.noise_lock)

    def phrases(self) -> tuple[str, ...]:
        """Its example phrases (agent/phrases.py: every label that names it); none when only measurements find it."""
        return tuple(p for label, ps in PHRASES.items() if self.name in labels(label) for p in ps)

    def __post_init__(self) -> None:
        if self.name in self.opposite:
            raise ValueError(f"intent {self.name!r} lists itself as its opposite; name another intent")


def _allows(*names: Allowance) -> frozenset[Allowance]:
    return frozenset(names)


TONE = _allows("highlights", "shadows", "noise", "chroma")  # an exposure fixed either way
CONTENT = _allows("content")


def _light(name: str, opposite: str, description: str, allows: frozenset[Allowance]) -> IntentSpec:
    return IntentSpec(name, description, r.light, (opposite,), holds=True, region=True, stops=True, allows=allows,
                      prior=True)


_SPECS = [
    _light("brighten", "darken", "raise the overall exposure / brightness", _allows("highlights", "noise", "chroma")),
    _light("darken", "brighten", "lower the overall exposure / brightness", _allows("shadows")),
    IntentSpec("fix_exposure", "bring the exposure into a normal range (direction settled by measurement)",
               r.fix_exposure, allows=TONE, settle=settle.fix_exposure, prior=True),
    IntentSpec("more_contrast", "increase global contrast", r.contrast, ("less_contrast",), holds=True,
               allows=_allows("highlights", "shadows", "noise")),
    IntentSpec("less_contrast", "decrease global contrast", r.contrast, ("more_contrast",), holds=True),
    IntentSpec("warmer", "shift white balance toward yellow/amber", r.temperature, ("cooler",), holds=True,
               allows=_allows("chroma")),
    IntentSpec("cooler", "shift white balance toward blue", r.temperature, ("warmer",), holds=True,
               allows=_allows("chroma")),
    IntentSpec("neutralize_cast", "remove a colour cast so neutrals are neutral", r.neutralize_cast,
               allows=_allows("chroma")),
    IntentSpec("fix_color", "correct the colour (cast or dullness, settled by measurement)", allows=_allows("chroma"),
               settle=settle.fix_color),
    IntentSpec("more_saturation", "more saturated / vivid colours", r.saturation,
               ("less_saturation", "black_and_white"), holds=True, allows=_allows("chroma"), saturation=1.0),
    IntentSpec("less_saturation", "less saturated / more muted colours", r.saturation, ("more_saturation",),
               holds=True, saturation=-1.0),
    IntentSpec("black_and_white", "convert to monochrome", r.black_and_white, ("more_saturation",),
               first={"mean_saturation": ("mono",), "colorfulness": ("mono",)}, saturation=-1.0),
    # Noise first, as raw converters do: levels and contrast amplify it, and after them a
    # denoise strong enough for the target (relative to the original's noise) breaks the lock.
    IntentSpec("denoise", "reduce noise / grain", r.denoise,
               first={"noise_sigma": ("neural_denoise", "denoise_first")}, removes_noise=True),
    IntentSpec("sharpen", "increase sharpness / detail", r.sharpen, ("soften",), holds=True, allows=_allows("noise")),
    IntentSpec("soften", "reduce sharpness, softer look", r.soften, ("sharpen",), holds=True, allows=CONTENT),
    IntentSpec("dehaze", "remove haze / fog", r.contrast,
               first={"rms_contrast": ("dehaze",), "p05_L": ("dehaze_blacks",), "p01_L": ("dehaze_blacks",),
                      "colorfulness": ("dehaze_colour",)}, allows=TONE),
    IntentSpec("lift_shadows", "brighten the shadows without moving the highlights", r.lift_shadows, holds=True),
    IntentSpec("recover_highlights", "bring back clipped or very bright highlights", r.recover_highlights,
               holds=True),
    IntentSpec("match_reference", "match the look of a reference image", r.match_reference, offered=False,
               allows=_allows("chroma")),
    IntentSpec("enhance", "general improvement (problems found by measurement)", offered=False, allows=TONE,
               settle=settle.enhance, prior=True),
    IntentSpec("remove_defects", "remove dust spots and thin scratches (found automatically, then filled)",
               r.remove_defects, allows=CONTENT),
    IntentSpec("remove_object", "remove the object inside a given box (cut out, then filled from around)",
               r.remove_object, offered=False, box=True, allows=CONTENT),
    IntentSpec("smile", "make the person smile (face generator edit of the face)",
               r.face_edit("gan_smile", 0.6, None), allows=CONTENT),
    IntentSpec("add_glasses", "put eyeglasses on the face (face generator edit)",
               r.face_edit("gan_eyeglasses", 2.5, None), allows=CONTENT),
    IntentSpec("remove_glasses", "take the eyeglasses off the face (face generator edit)",
               r.face_edit("gan_eyeglasses", None, -2.5), allows=CONTENT),
    IntentSpec("face_lighting", "brighter light on the face (face generator relighting)",
               r.face_edit("gan_lighting", 0.05, None), allows=CONTENT),
    # A dark shot: exposure first, in one step of up to 4 stops (an exact inverse of too little
    # light, and half-way the noise target is missed while the light is not yet right; Zero-DCE++'s curves
    # scored 9.8 dB against exposure's 22.9 at -3 EV on train photos, so they are the fallback),
    # then the noise that brightening revealed, neural first.
    IntentSpec("low_light", "a night or very dark shot: bring up the light, then clean the noise it reveals",
               r.low_light, first={"p99_L": ("night_exposure", "low_light"), "noise_sigma": ("neural_denoise_last",)},
               allows=_allows("highlights", "noise", "chroma", "noise_first"), removes_noise=True),
    IntentSpec("upscale", "enlarge the photo 2x or 4x with new detail (super-resolution)", r.upscale, allows=CONTENT),
    IntentSpec("bluer", "a deeper blue in a region (the sky), the rest left as it is", r.bluer, region=True,
               settle=settle.bluer),
    # found by measurement only ("restore this photo"): no phrases, never named by a language model
    IntentSpec("set_levels", "set the black and white points of a veiled photo", r.set_levels, asked=False,
               offered=False, first={"p01_L": ("levels",), "p99_L": ("levels",)}, allows=_allows("highlights", "shadows")),
    IntentSpec("deblur", "undo a measured blur with one solved unsharp mask", r.deblur, asked=False, offered=False,
               allows=_allows("noise")),
    IntentSpec("deblock", "smooth JPEG blocks and ringing in one pass", r.deblock, asked=False, offered=False),
    IntentSpec("neutralize_light", "remove part of the light's measured cast", r.neutralize_light, asked=False,
               offered=False),
    IntentSpec("natural", "the learned prior's correction (agent/natural.py)", r.natural, asked=False,
               offered=False),
]

INTENTS: dict[str, IntentSpec] = {s.name: s for s in _SPECS}


def register(*specs: IntentSpec) -> None:
    """Add (or replace) intents; each opposite must be registered (here or before) and name it back."""
    before = dict(INTENTS)
    INTENTS.update({spec.name: spec for spec in specs})
    try:
        check()
    except ValueError:
        INTENTS.clear()
        INTENTS.update(before)
        raise


def check() -> None:
    """Every opposite is a registered intent that names its partner back."""
    for spec in INTENTS.values():
        for other in spec.opposite:
            if spec.name not in opposites(other):
                raise ValueError(f"intent {spec.name!r}: its opposite {other!r} must be registered and list "
                                 f"{spec.name!r} in its own `opposite`")


def allowed(names: set[str], allowance: Allowance) -> bool:
    """Whether any of the intents `names` lets the naturalness guard tolerate `allowance`."""
    return any(allowance in INTENTS[n].allows for n in names & INTENTS.keys())


def opposites(name: str) -> set[str]:
    """The intents `name` contradicts (empty for an unknown name)."""
    spec = INTENTS.get(name)
    return set(spec.opposite) if spec else set()
