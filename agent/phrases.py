"""Example phrases per intent: the words the embedding matcher (agent/embedder.py) compares a clause with.

A label is one intent or several joined by "+"; UNSUPPORTED collects wishes no tool can grant, so
they are recognised and reported instead of mapped to the nearest edit. After editing the table run
`python -m agent.intents --rebuild` to refresh the shipped vectors (agent/data/phrase-embeddings.npz).
"""

from __future__ import annotations

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
        "I don't like the colors", "the colors look weird",
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
        "clean it up", "tidy up the photo",
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
        "the horizon is crooked", "the picture is tilted", "straighten it",
        "add some grain", "with film grain", "add noise",
        # small talk, not a wish for the photo
        "what lovely weather", "it's freezing out there", "I'm feeling down", "how was your weekend",
        # a question about the photo or what it shows, not a wish for it
        "is this a good photo", "what do you think of this picture", "do you like it", "rate this photo",
        "a landscape photo", "this is a picture of my dog", "a photo of my family", "a portrait of my friend",
    ),
}


def labels(label: str) -> tuple[str, ...]:
    """The intents a phrase label names ("denoise+sharpen" -> both)."""
    return tuple(label.split("+"))
