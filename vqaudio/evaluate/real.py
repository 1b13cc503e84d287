"""`vqaudio evaluate-real`: how a model does on real recordings (a folder per speaker, transcripts beside the audio).

Real speech differs from the training corpus in voice, room, microphone and bandwidth. For each real speaker, a few
utterances are scored (`convert_per_speaker`, evenly spaced over its files) and others (`id_per_speaker`) only
train the speaker-ID. Figures:

- **speaker**: the toolkit's speaker-ID (`vqaudio.evaluate.speaker_id`) trained on the model's voices (their real
  `train` utterances of DATA_DIR) plus the real speakers (their unscored utterances); conversions of the scored
  utterances into the target voices, identified as the target and as the real source speaker, and for each target
  how many of its conversions went to each class (`conversions_heard_as`). The model voices' utterances are cut
  into pieces as long as the real ones (`duration_matched`, as many per voice as each real speaker has): the
  speaker-ID's statistics (MFCC means and deviations) depend on an utterance's length and content, and a judge
  trained on whole sentences for the voices and on short real recordings for the real speakers heard the voices' own
  eSpeak renditions of the digits as their voice in only 65% of cases (egs/vctk/RESULTS.md, "The speaker-ID on
  short real utterances"). That earlier judge is scored too (`whole_utterance`), and each judge's controls: the model
  voices' held-out `test` speech cut the same way, identified as its voice (`voice_pieces_accuracy`), and WORLD
  copies of the real sources (vocoded, not converted), identified as their speaker and as any model voice.
- **content by recognition**: PocketSphinx under a grammar of the transcripts' words
  (`vqaudio.evaluate.recognize`) on the sources, their reconstructions and their conversions (all resampled to
  PocketSphinx's 16 kHz); word accuracy of each. A reconstruction of a real speaker is decoded in the model voice
  the whole-utterance speaker-ID finds nearest to that speaker (the model has no voice of its own for it). For the
  vocoder kind, also on WORLD copies of the sources (analysis and synthesis with the model's settings, no model and
  no postfilter): the round trip through the coded WORLD features, roughly the vocoder's ceiling (None for other
  kinds).
- **content by the phoneme probe**: the paper's code -> phone mapping fitted on DATA_DIR's train split, scored on
  the real sources against PocketSphinx forced alignments of their transcripts, and on re-encoded conversions.

    results = run_real_evaluation("../shared/realspeech/fsdd", "data/embedded", "exp/m/model.pt", "exp/m/real")
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vqaudio.data.kaldi import DataDir
from vqaudio.data.world import check_decoding
from vqaudio.errors import DataError
from vqaudio.evaluate import probe as P
from vqaudio.evaluate.heard import Heard, RealUtterance, adapt_recognizers, adapted_seconds_note, to_16k
from vqaudio.evaluate.report import Table, fmt, write_json, write_markdown
from vqaudio.evaluate.speaker_id import SpeakerClassifier
from vqaudio.evaluate.splits import (
    choose_targets,
    decode_codes,
    decoding_summary,
    encode_wav,
    load,
    load_split,
    model_summary,
    pick,
    set_decoding,
)
from vqaudio.models.io import LoadedModel
from vqaudio.phones import PHONES


@dataclass
class RealOptions:
    """What `vqaudio evaluate-real` runs on."""

    convert_per_speaker: int = 8  # real utterances per speaker reconstructed, converted and recognised
    id_per_speaker: int = 30  # other real utterances per speaker, for the speaker-ID only
    targets: list[str] | None = None  # model voices to convert to (default: `n_targets`, evenly spaced)
    n_targets: int = 3
    train_per_speaker: int = 10  # DATA_DIR train utterances per model voice (speaker-ID, probe mapping)
    seed: int = 0
    f0: str | None = None  # vocoder kind: F0 of reconstructions and conversions (None: the model's f0_mode)
    gv_strength: float | None = None  # vocoder kind: postfilter strength 0..1 (None: the model's gv_strength)
    gv_scale: str | None = None  # vocoder kind: postfilter scale, "speaker" or "utterance" (None: the model's)
    adapt_seconds: float = 30.0  # each speaker's speech for its MLLR transform of the recogniser (0: no adaptation)


def read_real_set(folder: str | os.PathLike, opts: RealOptions, sample_rate: int, hop: int
                  ) -> tuple[list[RealUtterance], list[RealUtterance]]:
    """(scored, speaker-ID only) utterances of FOLDER/<speaker>/*.{wav,flac,ogg} with `.txt` transcripts."""
    from vqaudio.audio import load_audio
    from vqaudio.data.align import words_of
    from vqaudio.data.corpus import scan_folders

    root = check_real_dir(folder)
    if opts.convert_per_speaker < 1 or opts.id_per_speaker < 1:
        raise DataError("--convert-per-speaker and --id-per-speaker must be at least 1")
    by_speaker: dict[str, list] = {}
    for u in scan_folders(root):
        if u.text and words_of(u.text):
            by_speaker.setdefault(u.speaker, []).append(u)
    if not by_speaker:
        raise DataError(f"{root}: no transcribed audio found (FOLDER/<speaker>/<name>.wav with <name>.txt)")

    def read(u) -> RealUtterance | None:
        wav = load_audio(u.audio, sample_rate)
        wav = wav[: len(wav) // hop * hop]
        return RealUtterance(u.utt, u.speaker, words_of(u.text), wav) if len(wav) else None

    scored, rest = [], []
    for utts in by_speaker.values():
        chosen = set(pick([u.utt for u in utts], opts.convert_per_speaker))
        others = set(pick([u.utt for u in utts if u.utt not in chosen], opts.id_per_speaker))
        scored += [r for u in utts if u.utt in chosen and (r := read(u)) is not None]
        rest += [r for u in utts if u.utt in others and (r := read(u)) is not None]
    short = sorted({r.speaker for r in scored} - {r.speaker for r in rest})
    if short:
        raise DataError(f"{root}: too few recordings of {', '.join(short)} to both convert "
                        f"{opts.convert_per_speaker} and train the speaker-ID (lower --convert-per-speaker; "
                        "run.sh: --real-per-speaker)")
    return scored, rest


def check_real_dir(folder: str | os.PathLike) -> Path:
    """FOLDER as a Path, refused (one line) when it is not a folder."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (expected FOLDER/<speaker>/<audio> with .txt transcripts)")
    return root


def duration_matched(wavs: list[np.ndarray], speakers: list[str], lengths: list[int], per_speaker: int | None
                     ) -> tuple[list[np.ndarray], list[str]]:
    """Each waveform cut into consecutive pieces whose lengths (samples) are `lengths` in turn, continuing through
    the list from one waveform to the next (a remainder shorter than the next length is dropped; a waveform shorter
    than its first length is one piece, whole); then at most `per_speaker` pieces per speaker, evenly spaced over
    its pieces. Returns (pieces, their speakers)."""
    if not lengths or min(lengths) < 1:
        raise ValueError("duration_matched needs positive lengths")
    pieces, owners, k = [], [], 0
    for wav, spk in zip(wavs, speakers, strict=True):
        at, n = 0, lengths[k % len(lengths)]
        if 0 < len(wav) < n:  # real recordings longer than the voice's utterances: the utterance whole
            n = len(wav)
        while at + n <= len(wav):
            pieces.append(wav[at:at + n])
            owners.append(spk)
            at, k = at + n, k + 1
            n = lengths[k % len(lengths)]
    keep = set()
    for spk in dict.fromkeys(owners):
        keep.update(pick([i for i, o in enumerate(owners) if o == spk], per_speaker))
    return [p for i, p in enumerate(pieces) if i in keep], [o for i, o in enumerate(owners) if i in keep]


@dataclass
class Judges:
    """`evaluate-real`'s two speaker-IDs, trained on the model voices' utterances and the real speakers' unscored
    recordings: `matched` on the voices' utterances cut to the real recordings' lengths (`duration_matched`, as many
    pieces per voice as the real speakers have recordings), `whole` on them uncut (the earlier judge)."""

    matched: SpeakerClassifier
    whole: SpeakerClassifier
    lengths: list[int]  # the real recordings' lengths (samples), which the pieces follow
    per_voice: int
    pieces: int  # pieces that trained `matched`

    def cut(self, wavs: list[np.ndarray], speakers: list[str]) -> tuple[list[np.ndarray], list[str]]:
        """Other speech of the voices cut as the training pieces were (`duration_matched`)."""
        return duration_matched(wavs, speakers, self.lengths, self.per_voice)


def fit_judges(sample_rate: int, voice_wavs: list[np.ndarray], voice_ids: list[str],
               rest: list[RealUtterance]) -> Judges:
    """The two speaker-IDs (`Judges`) from the voices' utterances and the real recordings kept for the speaker-ID."""
    lengths = [len(r.wav) for r in rest]
    per_voice = max(Counter(r.speaker for r in rest).values())  # as many as a real speaker has (id_per_speaker)
    pieces, piece_ids = duration_matched(voice_wavs, voice_ids, lengths, per_voice)
    real_wavs, real_ids = [r.wav for r in rest], [r.speaker for r in rest]
    return Judges(SpeakerClassifier(sample_rate).fit(pieces + real_wavs, piece_ids + real_ids),
                  SpeakerClassifier(sample_rate).fit(voice_wavs + real_wavs, voice_ids + real_ids),
                  lengths, per_voice, len(pieces))


def _judge_figures(clf, convs: list[np.ndarray], pairs: list, scored: list[RealUtterance],
                   copies: list[np.ndarray] | None, held_out: tuple[list[np.ndarray], list[str]] | None,
                   voices: list[str]) -> dict[str, Any]:
    """One speaker-ID's figures: conversions as target / as source (and where they went), real sources identified,
    and its controls (held-out voice pieces identified; WORLD copies of the sources as their speaker / as a voice)."""
    conv_id = clf.score(convs, [t for _, t in pairs], [r.speaker for r, _ in pairs])
    nan = float("nan")
    copy_id = clf.score(copies, [r.speaker for r in scored]) if copies is not None else None
    return {
        "real_source_accuracy": clf.score([r.wav for r in scored], [r.speaker for r in scored]).target_share,
        "conversion_as_target": conv_id.target_share, "conversion_as_source": conv_id.source_share,
        "conversions_heard_as": heard_as([t for _, t in pairs], conv_id.predicted),
        "voice_pieces_accuracy": clf.score(*held_out).target_share if held_out and held_out[0] else nan,
        "world_copy_as_source": copy_id.target_share if copy_id else nan,
        "world_copy_as_voice": float(np.mean([p in voices for p in copy_id.predicted])) if copy_id else nan,
    }


def _own_voice(loaded: LoadedModel, scored: list[RealUtterance], rest: list[RealUtterance],
               codes: dict[str, np.ndarray], opts: RealOptions) -> tuple[list[np.ndarray] | None, dict[str, Any]]:
    """Reconstructions of the scored utterances in each real speaker's own voice, enrolled (`vqaudio enroll`'s
    `enroll_wavs`, the default steps and opts.seed) from its speaker-ID recordings, which are never scored: what the
    codec gives a user who enrols the speaker. Vocoder kind only ((None, {}) otherwise). Enrols into `loaded`, so it
    runs after everything that lists the model's voices. A speaker with too little speech to enrol: (None,
    {"skipped": why})."""
    from vqaudio.errors import VQAudioError
    from vqaudio.training.enroll import enroll_wavs, nearest_voice

    if loaded.model.kind != "vocoder":
        return None, {}
    enrolled = {}
    for spk in dict.fromkeys(r.speaker for r in scored):
        own = [r for r in rest if r.speaker == spk]
        try:
            record = enroll_wavs(loaded, spk, [r.wav for r in own], [r.utt for r in own], seed=opts.seed)
        except VQAudioError as err:  # too little speech to enrol (a few short recordings): no own-voice figure
            return None, {"skipped": f"{spk}: {err}"}
        enrolled[spk] = {"utterances": len(own), "seconds": record["seconds"],
                         "nearest": nearest_voice(record["mixture"]),
                         "envelope_statistics": record["envelope_statistics"], "band_hz": record["band_hz"]}
    recon = decode_codes(loaded, [codes[r.utt] for r in scored], [r.speaker for r in scored], seed=opts.seed,
                         label="own voice", sources=[r.wav for r in scored], f0_mode=opts.f0)
    return recon, enrolled


def _nearest_voices(clf, rest: list[RealUtterance], voices: list[str]) -> dict[str, str]:
    """For each real speaker, the model voice with the highest mean speaker-ID probability over its utterances."""
    out = {}
    for spk in sorted({r.speaker for r in rest}):
        probs = clf.probabilities([r.wav for r in rest if r.speaker == spk]).mean(axis=0)
        allowed = [clf.speakers.index(v) for v in voices]
        out[spk] = clf.speakers[allowed[int(np.argmax(probs[allowed]))]]
    return out


def _align(scored: list[RealUtterance], sample_rate: int) -> dict[str, list[str]]:
    """10 ms phone labels of each scored utterance from a PocketSphinx forced alignment of its words."""
    from vqaudio.data.align import Aligner
    from vqaudio.data.textgrid import frame_labels

    aligner, labels = Aligner(), {}
    for r in scored:
        result = aligner.align(to_16k(r.wav, sample_rate), " ".join(r.words)) if r.wav.size else None
        if result is not None:
            labels[r.utt] = frame_labels(result.alignment)
    return labels


def world_copies(loaded: LoadedModel, wavs: list[np.ndarray]) -> list[np.ndarray] | None:
    """WORLD analysis -> synthesis of each waveform with the vocoder model's settings (None for other kinds)."""
    from vqaudio.data.world import WorldSettings, analyze, synthesize

    if loaded.model.kind != "vocoder":
        return None
    settings = WorldSettings.from_config(loaded.config)
    return [synthesize(analyze(w, settings), settings, length=len(w)) for w in wavs]


def heard_as(targets: list[str], predicted: list[str]) -> dict[str, dict[str, int]]:
    """For each target voice, how many of its conversions the speaker-ID gave to each class (most first)."""
    out: dict[str, dict[str, int]] = {}
    for t in dict.fromkeys(targets):
        counts = Counter(p for tt, p in zip(targets, predicted, strict=True) if tt == t)
        out[t] = dict(counts.most_common())
    return out


def run_real_evaluation(real_dir: str | os.PathLike, data_dir: str | os.PathLike,
                        model_path: str | os.PathLike | None, out_dir: str | os.PathLike,
                        opts: RealOptions | None = None) -> dict[str, Any]:
    """Speaker and content figures of a model on a folder of real recordings; writes OUT_DIR/real.json, real.md."""
    from vqaudio.evaluate.recognize import WordRecognizer

    opts = opts or RealOptions()
    check_decoding(opts.f0, opts.gv_strength, opts.gv_scale)
    if not 0 <= opts.adapt_seconds < float("inf"):
        raise DataError(f"--adapt-seconds {opts.adapt_seconds}: give seconds of speech >= 0 (0: no adaptation)")
    check_real_dir(real_dir)  # before the model is loaded: the folder is the likelier mistake
    loaded, model_path = load(model_path)
    set_decoding(loaded, opts.gv_strength, opts.gv_scale)
    sr, hop, rate = loaded.sample_rate, loaded.hop_length, loaded.sample_rate / loaded.hop_length
    targets = choose_targets(loaded, DataDir.load(Path(data_dir) / "train").speakers, opts.targets, opts.n_targets)
    scored, rest = read_real_set(real_dir, opts, sr, hop)
    clash = sorted({r.speaker for r in scored} & set(loaded.speakers))
    if clash:  # the speaker-ID's classes and the recognisers' transforms are keyed by name
        raise DataError(f"{real_dir}: real speaker {', '.join(clash)} has the name of a model voice; rename its folder")
    train = load_split(loaded, data_dir, "train", per_speaker=opts.train_per_speaker)
    voices = [s for s in loaded.speakers if s in {train.data.utt2spk[u] for u in train.utterances}]
    judges = fit_judges(sr, [train.wavs[u] for u in train.utterances],
                        [train.data.utt2spk[u] for u in train.utterances], rest)
    clf, whole = judges.matched, judges.whole
    held_out = None
    if (Path(data_dir) / "test" / "wav.scp").exists():  # held-out speech of the voices, for the controls
        test = load_split(loaded, data_dir, "test", per_speaker=opts.train_per_speaker)
        mine = [u for u in test.utterances if test.data.utt2spk[u] in voices]
        held_out = judges.cut([test.wavs[u] for u in mine], [test.data.utt2spk[u] for u in mine])
    codes = {r.utt: encode_wav(loaded, r.wav) for r in scored}
    pairs = [(r, t) for r in scored for t in targets]
    convs = decode_codes(loaded, [codes[r.utt] for r, _ in pairs], [t for _, t in pairs], seed=opts.seed + 1,
                         label="convert", sources=[r.wav for r, _ in pairs], f0_mode=opts.f0)
    # reconstructions keep the voice the earlier judge finds nearest: their words measure the codes' content,
    # comparable across runs, and the voice choice is not the conversions' score
    nearest = _nearest_voices(whole, rest, voices)
    recon = decode_codes(loaded, [codes[r.utt] for r in scored], [nearest[r.speaker] for r in scored],
                         seed=opts.seed, label="reconstruct", sources=[r.wav for r in scored], f0_mode=opts.f0)
    copies = world_copies(loaded, [r.wav for r in scored])
    summary, decoding = model_summary(loaded, model_path), decoding_summary(loaded, opts.f0)  # before the enrolments
    own_voice, enrolled = _own_voice(loaded, scored, rest, codes, opts)
    rec = WordRecognizer(sorted({w for r in scored + rest for w in r.words}),
                         max_words=max(len(r.words) for r in scored + rest))
    labels = _align(scored, sr)
    mapping = None
    if train.labels:  # the paper's code -> phone mapping, as `probe_report` fits it (no linear probe needed here)
        fitted = P.match_frames(train.codes, train.labels, rate)
        majority = P.fit_majority(fitted.codes, fitted.phones, int(loaded.config.vq.codebook_size))
        mapping = [PHONES[i] for i in majority]
    re_conv = {f"{r.utt}>{t}": encode_wav(loaded, w) for (r, t), w in zip(pairs, convs, strict=True)}
    conv_labels = {f"{r.utt}>{t}": labels[r.utt] for r, t in pairs if r.utt in labels}

    def probe(c: dict[str, np.ndarray], lab: dict[str, list[str]]) -> float:
        return P.probe_accuracy(mapping, c, lab, rate) if mapping and lab else float("nan")

    heard = Heard(sr, scored, pairs, convs, recon, copies, own_voice)
    adapted, adaptation = adapt_recognizers(
        opts.adapt_seconds, real_dir, data_dir, scored, sorted(set(targets) | set(nearest.values())), rec.words,
        rec.max_words, sr, (lambda wavs: world_copies(loaded, wavs)) if copies is not None else None)
    results = {
        "model": summary, "options": opts, "real_dir": str(real_dir),
        "real_speakers": sorted({r.speaker for r in scored}), "scored_utterances": len(scored),
        "speaker_id_utterances": len(rest), "targets": targets, "conversions": len(pairs),
        "nearest_voice": nearest, "enrolled": enrolled, "decoding": decoding,
        "speaker_id": {
            "classes": clf.speakers, "judge": "duration-matched", "voice_pieces": judges.pieces,
            **_judge_figures(clf, convs, pairs, scored, copies, held_out, voices),
            "whole_utterance": _judge_figures(whole, convs, pairs, scored, copies, held_out, voices),
        },
        "word_accuracy": heard.word_figures(lambda speaker, vocoded: rec, nearest),
        "word_accuracy_adapted": (heard.word_figures(lambda speaker, vocoded: adapted[(speaker, vocoded)], nearest)
                                  if adapted else None),
        "adaptation": adaptation,
        "probe": {"aligned_utterances": len(labels), "source": probe(codes, labels),
                  "conversion_reencoded": probe(re_conv, conv_labels)},
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "real.json", results)
    write_markdown(out / "real.md", real_tables(results), title=f"vqaudio evaluate-real: {model_path} on {real_dir}")
    return results


def real_tables(results: dict[str, Any]) -> list[Table]:
    """The figures of `run_real_evaluation` as tables."""
    sid, words, probe = results["speaker_id"], results["word_accuracy"], results["probe"]
    speaker = Table(f"Real speech: voice conversion ({results['conversions']} conversions, speaker-ID)",
                    ["speaker-ID", "as target", "as real source", "real sources identified",
                     "voices' held-out pieces identified", "WORLD copies: as their speaker / as a voice"])
    judges = [("duration-matched", sid)]
    if "whole_utterance" in sid:
        judges.append(("whole utterances (before 2026-12-02)", sid["whole_utterance"]))
    for name, j in judges:
        speaker.add(name, fmt(j["conversion_as_target"], percent=True), fmt(j["conversion_as_source"], percent=True),
                    fmt(j["real_source_accuracy"], percent=True), fmt(j.get("voice_pieces_accuracy"), percent=True),
                    f"{fmt(j.get('world_copy_as_source'), percent=True)} / "
                    f"{fmt(j.get('world_copy_as_voice'), percent=True)}")
    speaker.notes.append(f"classes: {', '.join(sid['classes'])}; targets: {', '.join(results['targets'])}")
    speaker.notes.append("duration-matched: the voices' train utterances cut into pieces as long as the real "
                         "recordings, as many per voice as each real speaker has; whole utterances: the earlier judge")
    for t, counts in sid.get("conversions_heard_as", {}).items():
        speaker.notes.append(f"conversions to {t} heard as: " + ", ".join(f"{k} {n}" for k, n in counts.items()))
    adapted = results.get("word_accuracy_adapted") or {}
    content = Table("Real speech: content", ["audio", "word accuracy (PocketSphinx, grammar)",
                                             "word accuracy, speaker-adapted", "phoneme probe"])
    rows = [("real source", "source", fmt(probe["source"], percent=True)),
            ("WORLD copy (roughly the vocoder's ceiling)", "world_copy", ""),
            ("reconstruction (nearest voice)", "reconstruction", ""),
            ("reconstruction (own voice, enrolled)", "reconstruction_own_voice", ""),
            ("conversions", "conversion", fmt(probe["conversion_reencoded"], percent=True) + " (re-encoded)")]
    for label, key, probed in rows:
        if words.get(key) is not None:
            content.add(label, fmt(words[key], percent=True), fmt(adapted.get(key), percent=True), probed)
    for name, figures in (("", words), (", speaker-adapted", adapted)):
        if figures.get("conversion_by_target"):
            content.notes.append(f"conversions' word accuracy by target{name}: " + ", ".join(
                f"{t} {fmt(a, percent=True)}" for t, a in figures["conversion_by_target"].items()))
    if results.get("adaptation"):
        content.notes.append(adapted_seconds_note(results["adaptation"]))
    content.notes.append(f"{results['scored_utterances']} real utterances scored, {probe['aligned_utterances']} "
                         f"force-aligned; nearest voices: "
                         + ", ".join(f"{k} -> {v}" for k, v in results["nearest_voice"].items()))
    if (results.get("enrolled") or {}).get("skipped"):
        content.notes.append(f"own voice not enrolled: {results['enrolled']['skipped']}")
    elif results.get("enrolled"):
        content.notes.append("own voice: each real speaker enrolled from its speaker-ID recordings (not scored): "
                             + ", ".join(f"{k} {v['seconds']:.0f} s, nearest {v['nearest']}"
                                         + ("" if v["envelope_statistics"] else ", postfilter off (band-limited)")
                                         for k, v in results["enrolled"].items()))
    if results.get("decoding"):
        content.notes.append("vocoder decoding: F0 {f0_mode}, postfilter strength {gv_strength} ({gv_scale} scale)"
                             .format(**{"gv_scale": "utterance", **results["decoding"]}))
    return [speaker, content]
