"""How `vqaudio evaluate-real`'s judges hear the model's own voices saying digits: speaker-ID and PocketSphinx.

The ideal conversion of a real recording of one spoken digit into a model voice is that voice saying the digit. For
a model trained on the embedded eSpeak corpus that audio can be made: each voice's eSpeak settings render the ten
digits, one word each, as the real set's recordings are. This scores them as `evaluate-real` scores conversions:
- with its two speaker-IDs (trained as `evaluate-real` trains them: the duration-matched judge, and the earlier one
  on the voices' whole train utterances), beside each judge's accuracy on the real sources, so that a judge that
  cannot hear the genuine voice in short speech shows it;
- with PocketSphinx under the digits' grammar, per voice: the word accuracy a conversion into that voice could
  reach if it were perfect, beside the real sources'.
Only for models of the embedded corpus (voices p225... made by `vqaudio.data.synth`); the real set as `evaluate-real`
reads it (`--id-per-speaker` recordings per speaker train the judges, `--convert-per-speaker` others are scored).

    python benchmarks/judges_on_digits.py REAL_DIR DATA_DIR MODEL.pt [--id-per-speaker 30]
"""

from __future__ import annotations

import argparse
from collections import Counter

WORDS = "zero one two three four five six seven eight nine".split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("real_dir")
    parser.add_argument("data_dir")
    parser.add_argument("model")
    parser.add_argument("--id-per-speaker", type=int, default=30)
    parser.add_argument("--convert-per-speaker", type=int, default=16)
    args = parser.parse_args()

    from vqaudio.data.synth import render_utterance, select_speakers
    from vqaudio.errors import VQAudioError
    from vqaudio.evaluate.heard import to_16k
    from vqaudio.evaluate.real import RealOptions, fit_judges, read_real_set
    from vqaudio.evaluate.recognize import WordRecognizer, word_accuracy
    from vqaudio.evaluate.splits import load, load_split

    opts = RealOptions(convert_per_speaker=args.convert_per_speaker, id_per_speaker=args.id_per_speaker)
    try:  # a missing folder, split or model file: one line, as the CLI says it
        loaded, _ = load(args.model)
        sr, hop = loaded.sample_rate, loaded.hop_length
        scored, rest = read_real_set(args.real_dir, opts, sr, hop)
        train = load_split(loaded, args.data_dir, "train", per_speaker=opts.train_per_speaker)
    except VQAudioError as err:
        raise SystemExit(f"error: {err}") from None
    ids = [train.data.utt2spk[u] for u in train.utterances]
    fitted = fit_judges(sr, [train.wavs[u] for u in train.utterances], ids, rest)
    judges = {"duration-matched": fitted.matched, "whole utterances": fitted.whole}

    voices = {v.id: v for v in select_speakers(len(loaded.speakers) + 1)}
    own, own_ids = [], []
    for spk in sorted(set(ids)):
        if spk not in voices:
            raise SystemExit(f"error: {spk} is not a voice of the embedded corpus; this check needs one")
        for word in WORDS:
            audio = render_utterance(word, voices[spk], sr).audio
            own.append(audio[: len(audio) // hop * hop])
            own_ids.append(spk)
    print(f"{len(own)} digits in {len(set(own_ids))} voices; real: {len(rest)} recordings train the judges, "
          f"{len(scored)} scored")
    for name, clf in judges.items():
        got = clf.score(own, own_ids)
        wrong = Counter(p for p, t in zip(got.predicted, own_ids, strict=True) if p != t)
        real = clf.score([r.wav for r in scored], [r.speaker for r in scored]).target_share
        print(f"{name}: the voices' own digits identified as their voice {100 * got.target_share:.1f}% "
              f"(the rest: {dict(wrong.most_common())}); real sources identified {100 * real:.1f}%")

    rec = WordRecognizer(sorted({w for r in scored + rest for w in r.words} | set(WORDS)),
                         max_words=max(len(r.words) for r in scored + rest))
    source = word_accuracy([r.words for r in scored], [rec.recognize(to_16k(r.wav, sr)) for r in scored])
    hyps = [rec.recognize(to_16k(w, sr)) for w in own]
    words = [[WORDS[i % len(WORDS)]] for i in range(len(own))]
    by_voice = {spk: word_accuracy([w for w, o in zip(words, own_ids, strict=True) if o == spk],
                                   [h for h, o in zip(hyps, own_ids, strict=True) if o == spk])
                for spk in dict.fromkeys(own_ids)}
    print(f"PocketSphinx word accuracy: real sources {100 * source:.1f}%; the voices' own digits "
          f"{100 * word_accuracy(words, hyps):.1f}%: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in by_voice.items()))


if __name__ == "__main__":
    main()
