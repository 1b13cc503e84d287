"""`vqaudio evaluate-enrollment`: conversion to voices the model never heard, enrolled from a few recordings.

For each held-out speaker of `DATA_DIR/test_unseen` (never seen in training): `n_enroll` of its utterances (evenly
spaced over its list) enrol it (`vqaudio.training.enroll.enroll_voice`; every voice into one model, written once as
`OUT_DIR/enrolled.pt`), its other utterances are kept for scoring. Training speakers' `test` utterances are then
converted to each enrolled voice and judged by the toolkit's speaker-ID (`vqaudio.evaluate.speaker_id`), trained on
training speakers' train utterances and on half of the held-out speakers' scoring utterances (never on enrolment
audio), all speakers as classes; its accuracy on the other half of the scoring utterances is its own check.
Content: the phoneme probe (mapping fitted on `train`) on the re-encoded conversions against the source codes'.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from vqaudio.data.kaldi import DataDir
from vqaudio.errors import DataError
from vqaudio.evaluate import probe as P
from vqaudio.evaluate.splits import decode_codes, encode_wav, load, load_split, pick, split_dir


def enrolment_split(data: DataDir, n_enroll: int) -> dict[str, tuple[list[str], list[str]]]:
    """{speaker: (enrolment utterances, scoring utterances)}: n_enroll evenly spaced for enrolment, the rest kept.
    Refuses n_enroll < 1 and speakers with fewer than n_enroll + 2 utterances (nothing left to score)."""
    if n_enroll < 1:
        raise DataError(f"--n-enroll must be >= 1, got {n_enroll}")
    out = {}
    for spk, utts in sorted(data.spk2utt().items()):
        if len(utts) < n_enroll + 2:
            raise DataError(f"{data.path}: speaker {spk} has {len(utts)} utterances; enrolling from {n_enroll} "
                            "needs at least 2 more to score")
        enrol = pick(utts, n_enroll)
        out[spk] = (enrol, [u for u in utts if u not in set(enrol)])
    return out


def _enrol_all(model_path: str | os.PathLike | None, unseen: DataDir, plan: dict, out: Path, steps: int,
               seed: int) -> dict[str, float]:
    """Enrol every planned voice into one model, written to OUT/enrolled.pt; returns seconds per voice."""
    from vqaudio.training.enroll import enroll_voice, save_enrolled

    loaded, _ = load(model_path)
    loaded.model.cpu()
    timings = {}
    for spk, (enrol, _) in plan.items():
        t0 = time.perf_counter()
        enroll_voice(loaded, spk, [unseen.wav_scp[u] for u in enrol], steps=steps, seed=seed, replace=True)
        timings[spk] = time.perf_counter() - t0
    save_enrolled(loaded, out / "enrolled.pt")
    return timings


def run_enrollment_eval(data_dir: str | os.PathLike, model_path: str | os.PathLike | None,
                        out_dir: str | os.PathLike, n_enroll: int = 10, max_utts: int = 12, steps: int = 300,
                        train_per_speaker: int = 10, seed: int = 0) -> dict[str, Any]:
    """Enrol every test_unseen speaker, convert `max_utts` test utterances to each, score; writes
    OUT_DIR/enrolled.pt, results.json and results.md; returns the results."""
    from vqaudio.evaluate.report import write_json
    from vqaudio.evaluate.speaker_id import SpeakerClassifier

    if max_utts < 1:
        raise DataError(f"--max-utts must be >= 1, got {max_utts}")
    out = Path(out_dir)
    unseen = DataDir.load(split_dir(data_dir, "test_unseen"))
    for split in ("train", "test"):
        split_dir(data_dir, split)
    plan = enrolment_split(unseen, n_enroll)
    out.mkdir(parents=True, exist_ok=True)
    timings = _enrol_all(model_path, unseen, plan, out, steps, seed)
    loaded, _ = load(out / "enrolled.pt")
    train = load_split(loaded, data_dir, "train", per_speaker=train_per_speaker)
    test = load_split(loaded, data_dir, "test", max_utts)
    scoring = load_split(loaded, data_dir, "test_unseen")
    fit_half = {u for _, (_, score) in plan.items() for u in score[0::2]}
    check_half = [u for _, (_, score) in plan.items() for u in score[1::2] if u in scoring.wavs]
    fit = [u for u in scoring.utterances if u in fit_half]
    clf = SpeakerClassifier(loaded.sample_rate).fit(
        [train.wavs[u] for u in train.utterances] + [scoring.wavs[u] for u in fit],
        [train.data.utt2spk[u] for u in train.utterances] + [unseen.utt2spk[u] for u in fit])
    pairs = [(u, t) for u in test.utterances for t in plan]
    conv = decode_codes(loaded, [test.codes[u] for u, _ in pairs], [t for _, t in pairs], seed=seed,
                        label="convert to enrolled", sources=[test.wavs[u] for u, _ in pairs])
    scores = clf.score(conv, [t for _, t in pairs], [test.data.utt2spk[u] for u, _ in pairs])
    rate, k = loaded.sample_rate / loaded.hop_length, int(loaded.config.vq.codebook_size)
    labels = test.labels
    mapping = P.probe_report(train.labelled(), [test.labelled()], rate, k, seed=seed).mapping if labels else None
    re_conv = {f"{u}>{t}": encode_wav(loaded, w) for (u, t), w in zip(pairs, conv, strict=True)}
    conv_labels = {f"{u}>{t}": labels[u] for u, t in pairs if u in labels}
    per_voice = {t: float(np.mean([p == t for p, (_, tt) in zip(scores.predicted, pairs, strict=True) if tt == t]))
                 for t in plan}
    results = {
        "model": str(model_path), "enrolled_model": str(out / "enrolled.pt"), "n_enroll": n_enroll, "steps": steps,
        "voices": {s: {"enrolment_utterances": len(e), "scoring_utterances": len(sc), "seconds": timings[s],
                       "conversion_as_voice": per_voice[s]} for s, (e, sc) in plan.items()},
        "conversions": len(pairs), "classifier_classes": clf.speakers,
        "real_scoring_accuracy": clf.score([scoring.wavs[u] for u in check_half],
                                           [unseen.utt2spk[u] for u in check_half]).target_share,
        "conversion_as_target": scores.target_share, "conversion_as_source": scores.source_share,
        "probe_source": P.probe_accuracy(mapping, test.codes, labels, rate) if mapping else float("nan"),
        "probe_conversion": P.probe_accuracy(mapping, re_conv, conv_labels, rate) if mapping else float("nan"),
        "enrolment_seconds_max": max(timings.values()),
    }
    write_json(out / "results.json", results)
    (out / "results.md").write_text(enrollment_markdown(results), encoding="utf-8")
    return results


def enrollment_markdown(r: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    rows = [
        ("voices enrolled (test_unseen speakers)", str(len(r["voices"]))),
        ("enrolment utterances per voice", str(r["n_enroll"])),
        ("conversions (training speakers' test utterances x voices)", str(r["conversions"])),
        ("speaker id: held-out real utterances of the enrolled speakers correct", pct(r["real_scoring_accuracy"])),
        ("speaker id: conversions identified as the enrolled voice", pct(r["conversion_as_target"])),
        ("speaker id: conversions still identified as the source", pct(r["conversion_as_source"])),
        ("probe accuracy: source codes", pct(r["probe_source"])),
        ("probe accuracy: conversions re-encoded", pct(r["probe_conversion"])),
        ("longest enrolment (s)", f"{r['enrolment_seconds_max']:.1f}"),
    ]
    lines = ["# Enrolment of unseen voices", "", "| figure | value |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    lines += ["", "| voice | enrolment utts | scoring utts | enrolment s | conversions identified as it |",
              "|---|---|---|---|---|"]
    lines += [f"| {s} | {v['enrolment_utterances']} | {v['scoring_utterances']} | {v['seconds']:.1f} | "
              f"{pct(v['conversion_as_voice'])} |" for s, v in r["voices"].items()]
    return "\n".join(lines) + "\n"
