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
    assert gloss("明天怎么样") == ("zh", "明天怎么样")  # ("天气" is in the table now: weather small talk)


@pytest.mark.parametrize("text, lang, english", [
    ("Kontrast erhöhen", "de", "more contrast"),  # the verb after its object
    ("Farbstich entfernen", "de", "fix the colour cast"),
    ("饱和度不要增加", "zh", "don't more saturation"),  # the negation after its object
    ("亮度不变", "zh", "keep brightness"),
    ("暗くしないで", "ja", "don't darker"),  # the negation after what it negates
    ("n'assombris pas", "fr", "don't darken"),  # elision and ne ... pas
    ("éclaircis-la", "fr", "brighten"),  # the clitic pronoun
    ("mas oscura", "es", "darker"),  # typed without accents
    ("waermer bitte", "de", "warmer please"),  # typed without umlauts
    ("90 Grad gegen den Uhrzeigersinn", "de", "rotate 90 degrees counterclockwise"),  # an angle without a verb
    ("16:9にして", "ja", "crop to 16:9"),  # a ratio without a verb
    ("裁成16比9", "zh", "crop to 16:9"),
    ("heller, aber Farben lassen", "de", "brighter, leave colours"),  # a constraint, not a wish
])
def test_word_order_and_spelling_are_undone(text, lang, english):
    assert gloss(text) == (lang, english)


@pytest.mark.parametrize("text", ["make it warmer", "a stark black and white", "matte finish",
                                  "mirror the image", "warm up the colours"])
def test_english_words_in_the_tables_are_no_evidence(text):
    assert language_of(text) == "en"


@pytest.mark.parametrize("text", ["彩度を少し落として", "明るさを落として", "コントラストを落として"])
def test_japanese_otosu_lowers(text):
    """落とす ('drop') lowers what it names: 'saturation a little' alone was read as more saturation."""
    english = gloss(text)[1]
    assert "less" in english and "落" not in english
