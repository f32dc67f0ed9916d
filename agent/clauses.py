"""Clause-level wording: one spelling, clause splitting, and the amounts a clause asks for.

How much ("a bit": 0.5, "much": 2), how many stops or percent ("+1 stop", "20% more"), how many
times larger ("4x", "for print"): one table of degree words and amount patterns, read by the
intent matcher (agent/intents.py), the embedder's example phrases and the goal recipes.
"""

from __future__ import annotations

import re

_SPELL = [
    (r"\bcolour", "color"), (r"\bgrey", "gray"), (r"\bneutralis", "neutraliz"),
    (r"\bsaturat(e|ion)\b", r"saturat\1"), (r"\bdesaturis", "desaturiz"),
    (r"\b(black\s*(?:and|&|n'?)\s*white|b\s*[&/+]\s*w)\b", "black-and-white"),
    (r"\s&\s", " and "),  # "contrast & saturation"
    (r"\bwide-?screen\b", "16:9 format"),  # the widescreen format is 16:9
    (r"\b(counter|anti) clockwise\b", r"\1clockwise"),
    (r"[’‘]", "'"), (r"[−–]", "-"),
    (r"(?<=\d)\s*,\s*(?=\d)", " "),  # "at 120,80,60,40" is one box, not four clauses
]
_SPLIT = re.compile(
    r"\s*(?:[,;!?]|\.(?=\s|$)|\s(?:and then|and also|and|then|also|plus|as well as|though|although)\s|"
    r"(?<!\beverything)(?<!\banything)(?<!\ball)\sbut\s|"  # "everything but the sky" is one clause
    r"\swith\s(?=(?:strong|stronger|more|less|high|higher|low|lower|extra|some|deep|deeper|punchy|punchier)\b)|"
    # "more contrast without making it darker": the refusal is a clause of its own (agent.intents.negated)
    r"\s(?=without\s(?:\w+ing|more|any more|extra)\b))\s*"
)
_FILLER = re.compile(
    r"^(please|pls|thanks?( you)?|cheers|can you|could you|would you|ok(ay)?|hi|hello|"
    r"and|also|then|too|as well|for me|if possible|that'?s all)$"
)
_DEGREE = [
    (re.compile(r"\b((?:a )?(?:tiny |little )?bit|a (?:tiny )?touch|(?:a )?tad|a little|"
                r"slightly|somewhat|subtly|a hint|(?:a )?smidge|gently|marginally|lightly|(?:a )?notch)\b"), 0.5),
    (re.compile(r"(?<!too )\b(much|a lot(?! of)|lots|heaps|very|way|really|significantly|heavily|hugely|"
                r"massively|strongly|far|extremely|seriously|dramatically|super)\b"), 2.0),
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
