"""Goals in any words: negations are refused and held, other languages read through the phrase tables."""

from __future__ import annotations

import pytest

from agent.goals import parse_goal
from tests.agent.test_goals import names, stats


@pytest.mark.parametrize("text, wanted, refused", [
    ("make it more vivid but not brighter", {"more_saturation"}, "brighten"),
    ("don't make it brighter, just more contrast", {"more_contrast"}, "brighten"),
    ("warmer, without more contrast", {"warmer"}, "more_contrast"),
    ("no more saturation, just sharpen it", {"sharpen"}, "more_saturation"),
    ("warmer, but don't make it too bright", {"warmer"}, "brighten"),  # a limit not asked elsewhere is held
])
def test_a_refused_intent_is_dropped_and_held(text, wanted, refused):
    goal = parse_goal(text, stats(mean_L=45))
    assert names(goal) == wanted
    held = [t for t in goal.targets if t.intent == f"not_{refused}"]
    assert held and all(t.op in ("<=", ">=") for t in held)
    if refused == "brighten":
        assert held[0].metric == "mean_L" and held[0].high == pytest.approx(45 + 1.5)


def test_leave_it_alone_is_still_no_edit():
    goal = parse_goal("don't touch the sky, brighten it", stats())
    assert names(goal) == {"brighten"} and not [t for t in goal.targets if t.intent.startswith("not_")]


@pytest.mark.parametrize("text, wanted", [
    ("让照片更亮一些", {"brighten"}),
    ("不要变亮，只增加对比度", {"more_contrast"}),
    ("Etwas heller und wärmer", {"brighten", "warmer"}),
    ("Des couleurs plus vives, mais pas plus claire", {"more_saturation"}),
    ("Elimina el ruido", {"denoise"}),
    ("少し明るくして暖かくして", {"brighten", "warmer"}),
])
def test_goals_in_other_languages(text, wanted):
    goal = parse_goal(text, stats(mean_L=45))
    assert names(goal) == wanted
    assert goal.instruction == text and any(n.startswith("read as:") for n in goal.notes)


def test_nonsense_in_any_language_maps_nothing():
    for text in ("明天天气怎么样", "Erzähl mir einen Witz", "asdf qwer"):
        goal = parse_goal(text, stats())
        assert not [i for i in goal.intents if i.source != "measurement"] and goal.unmapped


def test_a_mapper_reads_what_nothing_else_could():
    asked = []

    def mapper(clause: str) -> list[str]:
        asked.append(clause)
        return {"zzgrok it": ["sharpen", "look:sepia", "not_a_name"]}.get(clause, [])

    goal = parse_goal("make it brighter, zzgrok it", stats(), mapper=mapper)
    assert asked == ["zzgrok it"]  # only the clause the rules could not read
    assert {(i.name, i.source, i.argument) for i in goal.intents} == {
        ("brighten", "rule", None), ("sharpen", "llm", None), ("look", "rule", "sepia")}
    assert not goal.unmapped


@pytest.mark.parametrize("text, wanted", [
    ("Farben nicht verändern, nur schärfen", {"sharpen"}),  # the verb last
    ("Kontrast erhöhen ohne dunkler zu werden", {"more_contrast"}),
    ("n'assombris pas, enlève la brume", {"dehaze"}),  # ne ... pas around the verb
    ("no la oscurezcas, pero quita la neblina", {"dehaze"}),
    ("シャープにせずにノイズを取って", {"denoise"}),  # the negation after what it negates
    ("提亮，对比度不用动", {"brighten"}),
    ("暖一点，但饱和度不要增加", {"warmer"}),
])
def test_a_negation_in_its_own_languages_word_order(text, wanted):
    assert names(parse_goal(text, stats(mean_L=45))) == wanted


@pytest.mark.parametrize("text, wanted", [
    ("ノイズを減らして", {"denoise"}),  # 減らす: less of what precedes it
    ("¿puedes aclarar un poco la foto?", {"brighten"}),
    ("rends les couleurs plus éclatantes", {"more_saturation"}),
    ("kein Rauschen mehr bitte", {"denoise"}),  # "kein ... mehr": no more noise, a flaw removed
    ("柔和一点", {"soften"}),  # soft, not the pastel look
    ("rends-la plus douce", {"soften"}),
    ("la photo manque de contraste", {"more_contrast"}),  # lacks contrast
    ("nicht so hell, bitte", {"darken"}),
    ("别太亮，稍微暖一点", {"warmer"}),  # "don't (make it) too bright": a limit, the wish is warmer
    ("éclaircis-la sans la rendre plus saturée", {"brighten"}),  # sans + pronoun + verb
    ("les détails sont flous", {"sharpen"}),
    ("recadre en carré puis tourne de 90 degrés", {"crop", "rotate"}),  # puis: then
    ("más nítida pero sin más ruido", {"sharpen"}),
    ("weniger gesättigt bitte", {"less_saturation"}),
    ("hazla más brillante", {"brighten"}),
    ("tiene un tono verde, corrígelo", {"neutralize_cast"}),
    ("もう少し涼しい色に", {"cooler"}),
    ("elle paraît un peu froide", {"warmer"}),
    ("n'éclaircis pas le ciel, éclaircis les visages", {"brighten"}),  # the faces, not the sky
    ("不要裁剪，也不要旋转，只要降噪", {"denoise"}),  # 也: "and (don't rotate)"
    ("no más saturación, más calidez", {"warmer"}),
])
def test_more_everyday_words_in_other_languages(text, wanted):
    goal = parse_goal(text, stats(mean_L=45))
    assert names(goal) == wanted and not goal.unmapped


def test_weather_talk_in_other_languages_maps_nothing():
    for text in ("今天好冷啊", "es ist kalt draußen", "il fait froid dehors aujourd'hui", "hoy hace calor"):
        goal = parse_goal(text, stats())
        assert not [i for i in goal.intents if i.source != "measurement"], text


def test_sans_toucher_keeps_the_region_out_of_the_edit():
    goal = parse_goal("éclaircis sans toucher au ciel", stats(mean_L=45))
    assert [(i.name, i.region) for i in goal.intents] == [("brighten", None)]
