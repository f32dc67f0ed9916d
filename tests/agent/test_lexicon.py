"""The phrase tables gloss goals in five languages into the parser's English; English is untouched."""

import pytest

from agent.lexicon import gloss, language_of


@pytest.mark.parametrize("text, lang, english", [
    ("让照片更亮一些", "zh", "make the photo brighter"),
    ("不要变亮，只增加对比度", "zh", "don't brighten, just more contrast"),
    ("明るくしないで、コントラストだけ上げて", "ja", "don't brighten, just more contrast"),
    ("Etwas heller und wärmer", "de", "a little brighter and warmer"),
    ("Um 90 Grad im Uhrzeigersinn drehen", "de", "rotate 90 degrees clockwise"),  # verb-final too
    ("Des couleurs plus vives, mais pas plus claire", "fr", "more vivid colours, but not brighter"),
    ("Más contraste", "es", "more contrast"),
    ("彩度を下げて", "ja", "less saturation"),  # verb-final: the direction must not be lost
    ("明るくして、でも彩度は上げないで", "ja", "brighten, but not more saturation"),
    ("No más clara, solo más contraste", "es", "not brighter, just more contrast"),
])
def test_goals_gloss_into_english(text, lang, english):
    assert gloss(text) == (lang, english)


@pytest.mark.parametrize("text", ["make it brighter", "remove the object at 10,10,20,20", "the sky is dull",
                                  "restore this photo", "fix this photo"])  # "photo" is French too: no evidence
def test_english_is_left_alone(text):
    assert language_of(text) == "en" and gloss(text) == ("en", text)


def test_what_the_table_lacks_stays_as_it_was():
    assert gloss("明天天气怎么样") == ("zh", "明天天气怎么样")
