"""The language suite: enough goals per language and kind, well-formed labels, and a runner that scores them."""

from collections import Counter

from evals import language


def test_the_suite_covers_six_languages_and_every_kind():
    cases = language.cases()
    assert len(cases) >= 150
    per_lang = Counter(c["lang"] for c in cases)
    assert set(per_lang) == {"en", "zh", "de", "fr", "es", "ja"} and min(per_lang.values()) >= 20
    kinds = Counter(c["kind"] for c in cases)
    assert {"plain", "negation", "look", "region", "geometry", "nonsense"} <= set(kinds)
    assert all(not c["expect"] for c in cases if c["kind"] == "nonsense")
    assert len({c["goal"] for c in cases}) == len(cases)


def test_scores_are_exact_label_sets(monkeypatch):
    monkeypatch.setattr(language, "cases", lambda: [
        {"goal": "make it brighter", "lang": "en", "kind": "plain", "expect": ["brighten"]},
        {"goal": "make it brighter", "lang": "en", "kind": "plain", "expect": ["darken"]},
        {"goal": "asdf qwer zxcv", "lang": "en", "kind": "nonsense", "expect": []},
    ])
    rows = language.run("keyword")
    assert [r["right"] for r in rows] == [True, False, True]
    assert language.table(rows, "lang") == {"en": (2, 3)}
