"""Voice conversion figures of `vqaudio evaluate`: speaker identification of conversions and reconstructions,
content kept (the phoneme probe on re-encoded audio), MCD to the target's own reading, and pitch (mean F0 nearer
the target's than the source's)."""

from __future__ import annotations

from typing import Any

import numpy as np

from vqaudio.evaluate import probe as P
from vqaudio.evaluate.splits import SplitData, decode_codes, decoding_summary, encode_wav
from vqaudio.models.io import LoadedModel


def _agreement(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Share of code frames equal in a and b (same keys, same lengths)."""
    same = sum(int((a[k] == b[k]).sum()) for k in a)
    total = sum(len(a[k]) for k in a)
    return same / total if total else float("nan")


def _shared_mcd(test: SplitData, convs: dict[tuple[str, str], np.ndarray], sr: int) -> dict[str, Any]:
    """MCD (DTW) of conversions against the target speaker's own reading of the same sentence."""
    from vqaudio.audio import load_audio
    from vqaudio.evaluate.metrics import mcd

    data = test.data
    reading = {(data.utt2spk[v], " ".join(t.lower().split())): v for v, t in data.text.items()}
    conv_mcd, src_mcd = [], []
    for (u, tgt), wav in convs.items():
        v = reading.get((tgt, " ".join(data.text.get(u, "").lower().split())))
        if v is None or not data.text.get(u):
            continue
        ref = load_audio(data.wav_scp[v], sr)
        conv_mcd.append(mcd(ref, wav, sr, align=True))
        src_mcd.append(mcd(ref, test.wavs[u], sr, align=True))
    return {"pairs": len(conv_mcd), "mcd_conversion_to_target_db": _mean(conv_mcd),
            "mcd_source_to_target_db": _mean(src_mcd)}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def vc_section(loaded: LoadedModel, train: SplitData, test: SplitData, utts: list[str], recon: list[np.ndarray],
               targets: list[str], mapping: list[str] | None, temperature: float = 1.0, seed: int = 0,
               f0_mode: str | None = None
               ) -> tuple[dict[str, Any], dict[tuple[str, str], np.ndarray]]:
    """Voice conversion of `utts` to `targets`: speaker similarity, content preservation, shared-sentence MCD."""
    from vqaudio.evaluate.speaker_id import SpeakerClassifier

    sr, rate, spk = loaded.sample_rate, loaded.sample_rate / loaded.hop_length, test.data.utt2spk
    clf = SpeakerClassifier(sr).fit([train.wavs[u] for u in train.utterances],
                                    [train.data.utt2spk[u] for u in train.utterances])
    real = [u for u in test.utterances if spk[u] in clf.speakers]
    pairs = [(u, t) for u in utts for t in targets if t != spk[u]]
    conv = decode_codes(loaded, [test.codes[u] for u, _ in pairs], [t for _, t in pairs], temperature,
                        seed + 1, label="convert", sources=[test.wavs[u] for u, _ in pairs], f0_mode=f0_mode)
    convs = dict(zip(pairs, conv, strict=True))
    conv_id = clf.score(conv, [t for _, t in pairs], [spk[u] for u, _ in pairs])
    re_recon = {u: encode_wav(loaded, w) for u, w in zip(utts, recon, strict=True)}
    re_conv = {f"{u}>{t}": encode_wav(loaded, w) for (u, t), w in convs.items()}
    labels = test.labels
    conv_labels = {f"{u}>{t}": labels[u] for u, t in pairs if u in labels}

    def probe(codes: dict[str, np.ndarray], lab: dict[str, list[str]]) -> float:
        return P.probe_accuracy(mapping, codes, lab, rate) if mapping else float("nan")

    return {
        "targets": targets, "conversions": len(pairs),
        "speaker_id": {
            "classes": clf.speakers, "train_utterances": len(train.utterances),
            "real_test_accuracy": clf.score([test.wavs[u] for u in real], [spk[u] for u in real]).target_share,
            "reconstruction_as_source": clf.score(recon, [spk[u] for u in utts]).target_share,
            "conversion_as_target": conv_id.target_share, "conversion_as_source": conv_id.source_share,
        },
        "content": {
            "probe_source": probe({u: test.codes[u] for u in utts}, labels),
            "probe_reconstruction": probe(re_recon, labels), "probe_conversion": probe(re_conv, conv_labels),
            "code_agreement_reconstruction": _agreement(re_recon, {u: test.codes[u] for u in utts}),
            "code_agreement_conversion": _agreement(re_conv, {f"{u}>{t}": test.codes[u] for u, t in pairs}),
        },
        "shared_sentences": _shared_mcd(test, convs, sr),
        "f0": f0_section(train, test, convs, sr),
        "decoding": decoding_summary(loaded, f0_mode),
    }, convs


def f0_section(train: SplitData, test: SplitData, convs: dict[tuple[str, str], np.ndarray], sr: int
               ) -> dict[str, Any]:
    """Whether conversions take the target's pitch: each speaker's mean log-F0 over its train utterances, each
    conversion's mean log-F0, the share nearer the target's than the source's (all pairs, same-gender pairs)."""
    from vqaudio.evaluate.metrics import f0_nearer_target, mean_log_f0

    spk = train.data.utt2spk
    per_speaker: dict[str, list[float]] = {}
    for u in train.utterances:
        per_speaker.setdefault(spk[u], []).append(mean_log_f0(train.wavs[u], sr))
    speaker_lf0 = {s: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
                   for s, v in per_speaker.items()}
    gender = {**test.data.spk2gender, **train.data.spk2gender}
    src_spk = test.data.utt2spk
    rows = [(mean_log_f0(w, sr), speaker_lf0.get(t, float("nan")), speaker_lf0.get(src_spk[u], float("nan")),
             gender.get(t) is not None and gender.get(t) == gender.get(src_spk[u])) for (u, t), w in convs.items()]
    same = [r for r in rows if r[3]]
    return {
        "speaker_mean_f0_hz": {s: float(np.exp(v)) for s, v in speaker_lf0.items()},
        "nearer_target": f0_nearer_target(*[[r[i] for r in rows] for i in range(3)]) if rows else float("nan"),
        "nearer_target_same_gender": f0_nearer_target(*[[r[i] for r in same] for i in range(3)])
        if same else float("nan"),
        "same_gender_pairs": len(same),
    }
