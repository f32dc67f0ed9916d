"""Goals in Chinese, Japanese, German, French and Spanish, glossed into the English the parser reads.

The lexicon (`agent/data/lexicon.json`) pairs native words and phrases with English ones,
per language. `gloss` picks the goal's language (kana: Japanese; Han without kana: Chinese;
otherwise the Latin-script table with the most distinctive hits, or English when none hits)
and rewrites the goal with that table, longest phrase first: CJK phrases anywhere, others as
whole words, both in one spelling (`spelled`: lower case, French elisions, "ne ... pas" and clitics
undone, accents and umlauts folded so "mas clara" and "waermer" match). Then each clause is put in
English order where the language puts the verb or the negation last (zh, ja, de: "Kontrast erhöhen",
"饱和度不要增加", "暗くしないで"), and an angle or a ratio without its verb becomes a rotation or a
crop. What it cannot gloss stays as it was, so it stays unmapped and is reported.
Looks are named in every language in `looks.json` and matched there, not here.

This is a phrase table, not a translator: it covers the wishes imagent can carry out, and the
language suite (`python -m evals.language`) measures how far that goes.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache
from importlib import resources

_KANA = re.compile(r"[\u3040-\u30ff]")
_HAN = re.compile(r"[\u4e00-\u9fff]")
CJK = ("zh", "ja")
VERB_LAST = ("zh", "ja", "de")  # languages whose glossed clauses may put the verb after its object
NAMES = {"zh": "Chinese", "ja": "Japanese", "de": "German", "fr": "French", "es": "Spanish", "en": "English"}


@cache
def tables(fold: bool = True) -> dict[str, list[tuple[str, str]]]:
    """Per language, (native, English) pairs in `spelled` form, longest first."""
    data = json.loads(resources.files("agent").joinpath("data/lexicon.json").read_text(encoding="utf-8"))
    out = {}
    for lang, pairs in data.items():
        if lang.startswith("_"):
            continue
        table: dict[str, str] = {}  # two words spelled alike ("contraste", "contrasté"): the one written so wins
        for a, b in sorted(pairs, key=lambda p: spelled(lang, p[0], fold) != p[0].lower()):
            table.setdefault(spelled(lang, a, fold), b)
        out[lang] = sorted(table.items(), key=lambda p: -len(p[0]))
    return out


# French elision and the two-part negation, in one spelling for the table and the goal:
# "n'assombris pas" -> "ne assombris pas" -> "ne pas assombris"; "l'image" -> "le image"
_ELISION = re.compile(r"\b(l|d|n|j|c|s|m|t|qu)'(?=\w)")
_CLITIC = re.compile(r"(?<=\w)-(?:la|le|les|moi|lui|leur|en|y)\b")  # "éclaircis-la": the verb says it
_NE_PAS = re.compile(r"\bne (?:(?:le|la|les|lui|leur|me|te|se|y|en) )?([\w-]+) pas\b")
_UMLAUT = re.compile(r"(?<=[a-z])(?:ae|oe|ue)")  # "waermer", "schaerfer": German typed without umlauts
_KEIN_MEHR = re.compile(r"\b(kein(?:e|en|er)?) (\w+) mehr\b")  # "kein Rauschen mehr" -> "kein mehr Rauschen": no more


def spelled(lang: str, text: str, fold: bool = True) -> str:
    """The text in the spelling the table `lang` is written in: lower case, one apostrophe, French elisions
    undone, and with `fold` no accents, umlauts or ß ("mas clara", "eclaircis", "waermer", "schwarzweiss")."""
    text = text.lower().replace("\u2019", "'")
    if fold and lang not in CJK:
        text = _UMLAUT.sub(lambda m: m[0][0], text) if lang == "de" else text
        text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
        text = text.replace("ß", "ss")
    if lang == "de":
        text = _KEIN_MEHR.sub(r"\1 mehr \2", text)
    if lang == "fr":
        text = _NE_PAS.sub(r"ne pas \1", _ELISION.sub(r"\1e ", _CLITIC.sub("", text)))
    return text


@cache
def _pattern(lang: str, fold: bool = True) -> re.Pattern[str]:
    alts = "|".join(re.escape(a) for a, _ in tables(fold)[lang])
    if lang in CJK:
        return re.compile(alts)
    return re.compile(rf"(?<![\w'-])(?:{alts})(?![\w'-])")


def language_of(text: str) -> str:
    """'ja', 'zh', 'de', 'fr', 'es' or 'en' (the default: no table's distinctive words found).
    Among Latin-script tables the one matching the most characters wins ("más contraste": es); the
    text as written first, then without accents ("mas oscura") when nothing matched as written."""
    if _KANA.search(text):
        return "ja"
    if _HAN.search(text):
        return "zh"
    for fold in (False, True):
        best, hits = "en", 0
        for lang in tables():
            if lang in CJK:
                continue
            same = {a for a, b in tables(fold)[lang] if a == b.lower()}  # "photo" is French and English: no evidence
            found = [m.group(0) for m in _pattern(lang, fold).finditer(spelled(lang, text, fold)) if m.group(0) not in same]
            n = sum(len(w) for w in found if len(w) >= 4 or " " in w or not w.isascii())  # characters matched
            if n > hits:
                best, hits = lang, n
        if hits:
            return best
    return "en"


def gloss(text: str) -> tuple[str, str]:
    """(language, the goal in the parser's English); English goals come back unchanged."""
    lang = language_of(text)
    if lang == "en":
        return lang, text
    table = dict(tables()[lang])
    out = _pattern(lang).sub(lambda m: f" {table[m.group(0)]} ", spelled(lang, text))
    text = re.sub(r"(\s*,)+", ",", " ".join(out.split())).strip(" ,")
    text = _RATIO.sub(r"\1:\2", text)
    clauses = [_verb_first(c.strip()) if lang in VERB_LAST else c.strip() for c in text.split(",")]
    return lang, ", ".join(_verbless(_BUT_KEEP.sub("", c)) for c in clauses)


_RATIO = re.compile(r"\b(\d{1,2})\s*(?:/|比|対)\s*(\d{1,2})\b")  # "16/9", "16比9": a ratio
_BUT_KEEP = re.compile(r"^(?:but|and|just) (?=(?:keep|leave)\b)")  # "aber Farben lassen": a constraint, not a wish
_ROTATE = re.compile(r"^.*?(?=\b\d+\s*(?:degrees|°))")


def _verbless(clause: str) -> str:
    """An angle or a ratio without its verb: "90 Grad gegen den Uhrzeigersinn", "16:9にして"."""
    if "rotate" not in clause and _ROTATE.match(clause):
        return _ROTATE.sub(r"rotate \g<0>", clause)
    if re.fullmatch(r"(?:to |in )?\d{1,2}:\d{1,2}", clause):
        return f"crop to {clause.removeprefix('to ').removeprefix('in ')}"
    return clause


_PRE = r"^(?P<pre>(?:(?:but|just|and|then|please) )*)(?!(?:but|just|and|then|please|don't|not|no|keep|make)\b)"
_VERB_LAST = re.compile(_PRE + r"(?P<neg>(?:not|without) )?(?P<object>[a-z0-9][a-z0-9:° ]*?)\s+"
                        r"(?P<verb>more|less|remove|fix|brighten|darken|sharpen|recover|crop|rotate|flip|lift|add|brighter|darker)\s*"
                        r"(?P<not>ない|don't)?$")
# "brightness keep" (亮度不变), "saturation don't more" (饱和度不要增加), "colours not change" (Farben nicht ändern)
_NEGATION_LAST = re.compile(_PRE + r"(?P<object>[a-z][a-z ]*?)\s+(?P<verb>(?:don't|not|keep|leave)(?: [a-z ]+)?)$")


# "darker don't" (暗くしないで), "brighter don't" (明るくせずに): the negation follows what it negates
_NEGATED_LAST = re.compile(_PRE + r"(?P<object>[a-z][a-z ]*?)\s+don't$")


def _verb_first(clause: str) -> str:
    """A clause whose object comes before its verb, in English order; others as they are."""
    m = _VERB_LAST.match(clause)
    if m:
        verb = {"brighter": "brighten", "darker": "darken"}.get(m["verb"], m["verb"])  # "shadows brighter"
        return f"{m['pre'] or ''}{'not ' if m['not'] or m['neg'] else ''}{verb} {m['object']}"
    m = _NEGATION_LAST.match(clause)
    if m:
        return f"{m['pre'] or ''}{m['verb']} {m['object']}"
    m = _NEGATED_LAST.match(clause)
    if m:
        return f"{m['pre'] or ''}don't {m['object']}"
    return clause
