"""Word recognition for content scoring: PocketSphinx (its bundled US-English model) under a grammar of given words.

Used on real recordings whose words are known and few (FSDD's digits): the source, its codec reconstruction and its
conversions are recognised with the same grammar, and their word accuracies compared. Any sequence of 1 to
`max_words` of the words is allowed (the longest transcript's length: an open-ended `( ... )+` loop let PocketSphinx
hear extra words in the leading silence of FSDD's single digits, 72% -> -7% word accuracy on 60 of them), so the
figure is about what the audio says, not about a language model.

    rec = WordRecognizer(["zero", "one", "two"], max_words=1)
    rec.recognize(wav16k)                      # ['two']
    word_accuracy([["two"]], [rec.recognize(wav16k)])
"""

from __future__ import annotations

import os

import numpy as np

from vqaudio.data.align import SAMPLE_RATE, decode_pcm, letter_to_sound, padded_pcm


class WordRecognizer:
    """PocketSphinx restricted to 1..`max_words` of `words` (out-of-dictionary words get a letter-to-sound guess);
    `mllr`: a speaker's MLLR transform of the model's means (`vqaudio.evaluate.adapt`), None for the model as is."""

    def __init__(self, words: list[str], max_words: int = 1, mllr: str | os.PathLike | None = None) -> None:
        from pocketsphinx import Decoder, get_model_path

        self.words = sorted({w.lower() for w in words if w.strip()})
        self.max_words = max_words
        if not self.words:
            from vqaudio.errors import DataError

            raise DataError("word recognition needs at least one word (the transcripts are empty)")
        extra = {"mllr": str(mllr)} if mllr is not None else {}
        self.decoder = Decoder(hmm=get_model_path("en-us/en-us"), dict=get_model_path("en-us/cmudict-en-us.dict"),
                               lm=None, samprate=SAMPLE_RATE, loglevel="FATAL", **extra)
        for w in self.words:
            if self.decoder.lookup_word(w) is None:
                self.decoder.add_word(w, letter_to_sound(w), True)
        rule = "<w>" + "".join(" [ <w>" for _ in range(max_words - 1)) + " ]" * (max_words - 1)
        self.decoder.add_jsgf_string("words", f"#JSGF V1.0;\ngrammar words;\n<w> = ( {' | '.join(self.words)} );\n"
                                              f"public <utt> = {rule};\n")
        self.decoder.activate_search("words")

    def recognize(self, wav: np.ndarray) -> list[str]:
        """The words heard in `wav` [T] float at 16 kHz ([] when nothing is recognised)."""
        if not decode_pcm(self.decoder, padded_pcm(wav)):
            return []
        hyp = self.decoder.hyp()
        return [w for w in (hyp.hypstr.split() if hyp is not None else []) if w in self.words]


def word_errors(ref: list[str], hyp: list[str]) -> int:
    """Substitutions + deletions + insertions turning `ref` into `hyp` (Levenshtein over words)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def word_accuracy(refs: list[list[str]], hyps: list[list[str]]) -> float:
    """1 - WER over all utterances: 1 - (errors / reference words); NaN without reference words."""
    total = sum(len(r) for r in refs)
    if total == 0:
        return float("nan")
    return 1.0 - sum(word_errors(r, h) for r, h in zip(refs, hyps, strict=True)) / total
