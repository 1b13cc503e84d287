"""The project's own English sentence generator: a small grammar over word lists of its own.

Sentences are 8 to 13 words long and deterministic given a seed. Phoneme coverage is built in:
every block of `BLOCK` consecutive sentences of one `generate_sentences` call holds at least one
word from each of the `COVERAGE` groups, words chosen for the rarer English phonemes (ZH as in
"treasure", OY, UH, TH, JH, CH, NG, AW, Y, HH, ER, AO, AA, UW, SH); the frequent ones (DH from
"the", vowels, stops, nasals, liquids) come with every sentence.

    >>> generate_sentences(2, seed=1)   # doctest: +SKIP
    ['The lazy boy washed that garden behind their treasure.', ...]
"""

from __future__ import annotations

import random

BLOCK = 5  # sentences per coverage block


def _w(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Nouns chosen for one rare phoneme each (ARPAbet label -> words). eSpeak NG pronounces these with the
# target phoneme in every English accent it has (Caribbean English has no TH/DH: it says t/d, as speakers do).
COVERAGE: dict[str, tuple[str, ...]] = {
    "ZH": _w("treasure measure vision television decision pleasure collision explosion"),
    "OY": _w("boy toy coin voice oil noise choice poison oyster"),
    "UH": _w("book wood foot cook wool sugar hook cushion woman wolf"),
    "TH": _w("thumb path mouth month earth theatre thief moth"),
    "JH": _w("judge jacket giant village bridge page jelly engine cabbage jungle"),
    "CH": _w("church chair cheese teacher kitchen watch lunch beach chicken bench"),
    "NG": _w("king ring song singer morning string swing wing"),
    "AW": _w("house mouse cloud town owl mountain crowd fountain"),
    "Y": _w("yard yacht yogurt uniform youth yolk"),
    "HH": _w("horse hat hill hammer harbour hotel honey helmet"),
    "ER": _w("bird girl nurse shirt turtle germ purse worm"),
    "AO": _w("ball hall wall daughter sauce law straw hawk chalk"),
    "AA": _w("father palm spa llama lava drama"),
    "UW": _w("moon food spoon shoe juice roof school tooth"),
    "SH": _w("ship fish shop shell sheep"),
}
NOUNS = _w(
    "garden goat gate egg bag van valley river glove oven window water wheel zoo zebra rose nose boat road "
    "stone phone kite tiger island lion cake rain train table lake snail paper apple basket bottle bucket "
    "button candle carpet castle cat cup desk door drum farmer feather flag friend ladder lamp letter map "
    "mirror monkey needle orange parcel pencil pepper picture pillow pocket rabbit ribbon sandwich sister "
    "brother soldier spider ticket tunnel umbrella wagon basket doctor pilot baker clock bell dragon"
) + tuple(w for words in COVERAGE.values() for w in words)
ADJECTIVES = _w(
    "old small red green quiet heavy bright empty strange yellow golden tiny huge gentle purple cheap rough "
    "smooth thick thin young wooden noisy shiny frozen lazy hungry careful clever friendly ugly cold warm "
    "muddy dusty broken sleepy curious enormous silver pleasant"
)
# (base form, past tense) of transitive verbs.
VERBS: tuple[tuple[str, str], ...] = tuple(tuple(pair.split("/")) for pair in _w(
    "find/found buy/bought paint/painted carry/carried wash/washed watch/watched push/pushed pull/pulled "
    "move/moved clean/cleaned open/opened drop/dropped lift/lifted fix/fixed sell/sold show/showed "
    "borrow/borrowed notice/noticed follow/followed visit/visited describe/described enjoy/enjoyed "
    "join/joined change/changed choose/chose throw/threw hold/held keep/kept bring/brought catch/caught "
    "draw/drew hide/hid touch/touched measure/measured judge/judged share/shared"
))  # type: ignore[assignment]
DETERMINERS = _w("the the the the the this that my your his her our their every one each")
PREPOSITIONS = _w("near behind under beside inside across above along through toward from into with")
NAMES = _w("Anna Peter Sarah Thomas George Judy Oliver Charlotte Harry Joyce Martin Lucy Victor Ruth Edward Zoe")
TIMES = ("this morning", "last night", "yesterday", "on Sunday", "every day", "at noon", "in the evening",
         "after lunch", "quite slowly", "very quickly", "again", "twice", "once more", "in June")

# Slots: D determiner, A adjective, N noun, V past verb, B base verb, P preposition, M name, T time phrase.
TEMPLATES: tuple[str, ...] = (
    "D A N V D N P D N .",
    "M V D A N and D N P D N .",
    "M said that D N V D A N P D N .",
    "T , D N V D N P D A N .",
    "Why did D N B D N P D N ?",
    "D A N and D N V D N T .",
    "M and M V D A N P D N P D N .",
    "Please B D N P D A N for D N .",
)


def generate_sentences(count: int, seed: int | str = 0) -> list[str]:
    """`count` sentences from the grammar, deterministic given `seed`.

    Each block of `BLOCK` sentences (0..4, 5..9, ...) holds a word of every `COVERAGE` group:
    the 15 groups are dealt out three per sentence and fill the sentence's three noun slots.
    """
    rng = random.Random(f"vqaudio-sentences-{seed}")
    out: list[str] = []
    required: list[list[str]] = []
    for i in range(count):
        if i % BLOCK == 0:
            required = _deal_coverage(rng)
        out.append(_sentence(rng, required[i % BLOCK]))
    return out


def _deal_coverage(rng: random.Random) -> list[list[str]]:
    """One word of each coverage group, shuffled and dealt into `BLOCK` lists of three."""
    groups = list(COVERAGE)
    rng.shuffle(groups)
    words = [rng.choice(COVERAGE[g]) for g in groups]
    per = -(-len(words) // BLOCK)
    return [words[k * per:(k + 1) * per] for k in range(BLOCK)]


def _sentence(rng: random.Random, nouns_first: list[str]) -> str:
    """Fill a random template; the first noun slots take `nouns_first` in order."""
    template = rng.choice(TEMPLATES).split()
    pending = list(nouns_first)
    words: list[str] = []
    for slot in template:
        if slot == "N":
            words.append(pending.pop(0) if pending else rng.choice(NOUNS))
        elif slot in ("V", "B"):
            base, past = rng.choice(VERBS)
            words.append(past if slot == "V" else base)
        else:
            words.append(_fill(rng, slot))
    assert not pending, "every template has at least three noun slots"
    return _punctuate(words)


def _fill(rng: random.Random, slot: str) -> str:
    table = {"D": DETERMINERS, "A": ADJECTIVES, "P": PREPOSITIONS, "M": NAMES, "T": TIMES}
    return rng.choice(table[slot]) if slot in table else slot


def _punctuate(words: list[str]) -> str:
    """Join words, attach punctuation, capitalise the first letter."""
    text = " ".join(words).replace(" ,", ",").replace(" .", ".").replace(" ?", "?")
    return text[0].upper() + text[1:]


def word_count(sentence: str) -> int:
    """Number of words (whitespace-separated tokens, punctuation ignored)."""
    return sum(1 for tok in sentence.split() if any(c.isalpha() for c in tok))
