"""The sentence generator: determinism, length, variety and built-in phoneme coverage."""

from __future__ import annotations

import pytest

from vqaudio.data import espeak
from vqaudio.data.sentences import BLOCK, COVERAGE, generate_sentences, word_count


def test_deterministic_for_a_seed_and_different_across_seeds():
    assert generate_sentences(20, seed=3) == generate_sentences(20, seed=3)
    assert generate_sentences(20, seed=3) != generate_sentences(20, seed=4)
    assert generate_sentences(20, seed="p225") != generate_sentences(20, seed="p226")


def test_length_and_variety():
    sentences = generate_sentences(300, seed=1)
    counts = [word_count(s) for s in sentences]
    assert min(counts) >= 6 and max(counts) <= 14
    assert len(set(sentences)) >= 295
    assert all(s[0].isupper() and s[-1] in ".?" for s in sentences)


def test_every_block_covers_every_group():
    sentences = generate_sentences(4 * BLOCK, seed=7)
    for start in range(0, len(sentences), BLOCK):
        words = {w.strip(".,?").lower() for s in sentences[start:start + BLOCK] for w in s.split()}
        missing = [g for g, group in COVERAGE.items() if not words & set(group)]
        assert not missing, f"block at {start} lacks {missing}"


@pytest.mark.parametrize("voice", ["en-us", "en-gb-x-rp"])
def test_coverage_words_carry_their_phoneme_in_espeak(voice):
    """Each coverage word, spoken by eSpeak, holds the ARPAbet phoneme its group promises."""
    wrong = []
    for target, words in COVERAGE.items():
        for word in words:
            labels = {lab for p in espeak.synthesize(word, voice=voice).phonemes
                      for lab in (espeak.to_arpabet(p.name) or ())}
            if target not in labels:
                wrong.append(word)
    assert not wrong
