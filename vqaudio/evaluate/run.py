"""What `vqaudio probe` and `vqaudio evaluate` run: load splits, encode them, and assemble the figures.

Utterances are cut to a multiple of the hop before encoding (as `vqaudio.inference.prior.encode_utterance`), so
code n covers samples [n * hop, (n + 1) * hop) of the cut waveform, and every reconstruction has the
length of the cut source. Subsets (`max_utts`) are evenly spaced over the byte-sorted utterance list,
so they are deterministic and cover every speaker of a split in proportion.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqaudio.data.kaldi import DataDir
from vqaudio.errors import DataError
from vqaudio.evaluate import probe as P
from vqaudio.progress import progress


def pick(items: list[str], limit: int | None) -> list[str]:
    """At most `limit` of `items`, evenly spaced (all of them when limit is None or 0)."""
    if not limit or len(items) <= limit:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


@dataclass
class SplitData:
    """One data split, encoded: its codes, the codebook they index, and (optionally) the audio, cut to N * hop."""

    name: str
    data: DataDir
    utterances: list[str]
    wavs: dict[str, np.ndarray]  # [T] float32, T = N * hop (empty unless kept)
    codes: dict[str, np.ndarray]  # [N] int64
    codebook: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # [K, D]

    def vectors(self, utt: str) -> np.ndarray:
        """Quantised vectors [N, D] of one utterance."""
        return self.codebook[self.codes[utt]]

    @property
    def labels(self) -> dict[str, list[str]]:
        return {u: self.data.phone_ali[u] for u in self.utterances if u in self.data.phone_ali}

    def labelled(self) -> P.LabelledCodes:
        return P.LabelledCodes(self.name, self.codes, self.labels, self.codebook)


def split_dir(data_dir: str | os.PathLike, split: str) -> Path:
    """`DATA_DIR/split`, refused with one line when it is not a data directory."""
    path = Path(data_dir) / split
    if not (path / "wav.scp").exists():
        raise DataError(f"{path}: no such data split (expected DATA_DIR/{split}/wav.scp)")
    return path


def encode_wav(loaded: Any, wav: np.ndarray) -> np.ndarray:
    """Codes int64 [N] of a waveform [T] already cut to N * hop samples (the codec library's encoder)."""
    from vqaudio.inference.codec import encode

    return encode(loaded, np.ascontiguousarray(wav, np.float32))


def codebook_vectors(loaded: Any) -> np.ndarray:
    """The vector of every code [K, D], as the decoder sees it (`codes_to_latent` of 0..K-1)."""
    k = int(loaded.config.vq.codebook_size)
    device = next(loaded.model.parameters()).device
    with torch.inference_mode():
        vec = loaded.model.codes_to_latent(torch.arange(k, device=device)[None])
    return vec[0].T.float().cpu().numpy()


def load_split(loaded: Any, data_dir: str | os.PathLike, split: str, max_utts: int | None = None,
               need_labels: bool = False, per_speaker: int | None = None, keep_audio: bool = True) -> SplitData:
    """Read, cut and encode (a subset of) one split: at most `max_utts` in all, `per_speaker` per speaker.

    `need_labels` keeps only utterances with phone labels and refuses a split without phone_ali;
    `keep_audio=False` keeps only the codes (a whole VCTK train split would not fit in memory as audio).
    """
    from vqaudio.audio import load_audio

    path = split_dir(data_dir, split)
    data = DataDir.load(path)
    utts = data.utterances
    if need_labels:
        if not data.phone_ali:
            raise DataError(f"{path}: no phone_ali (frame-level phone labels); the phoneme probe needs them")
        utts = [u for u in utts if u in data.phone_ali]
    if per_speaker:
        keep = set(utts)
        utts = sorted(u for us in data.spk2utt().values() for u in pick([u for u in us if u in keep], per_speaker))
    utts = pick(utts, max_utts)
    hop = loaded.hop_length
    out = SplitData(split, data, [], {}, {}, codebook_vectors(loaded))
    with progress() as bar:
        task = bar.add_task(f"encode {split}", total=len(utts), info="")
        for utt in utts:
            wav = load_audio(data.wav_scp[utt], loaded.sample_rate)
            wav = wav[: len(wav) // hop * hop]
            bar.advance(task)
            if len(wav) == 0:
                continue  # shorter than one hop: nothing to encode
            out.utterances.append(utt)
            out.codes[utt] = encode_wav(loaded, wav)
            if keep_audio:
                out.wavs[utt] = wav
    return out


def load(model_path: str | os.PathLike | None) -> tuple[Any, Path]:
    """The model at `model_path` (default: the codec library's resolution), and the path it came from."""
    from vqaudio.inference.codec import default_model_path, load_codec

    path = Path(model_path) if model_path is not None else default_model_path()
    return load_codec(path), path


def model_summary(loaded: Any, path: str | os.PathLike) -> dict[str, Any]:
    """The facts about a model that every report starts with."""
    k = int(loaded.config.vq.codebook_size)
    return {"path": str(path), "identity": loaded.identity, "codebook_size": k, "sample_rate": loaded.sample_rate,
            "hop_length": loaded.hop_length, "code_rate": loaded.sample_rate / loaded.hop_length,
            "speakers": len(loaded.speakers)}


# --------------------------------------------------------------------------- the phoneme probe


def run_probe(data_dir: str | os.PathLike, model_path: str | os.PathLike | None, splits: list[str] | None = None,
              max_utts: int | None = None, context: int = 2, max_frames: int = 20000) -> P.ProbeReport:
    """The phoneme probe of a model file, fitted on `DATA_DIR/train`, scored on `DATA_DIR/{splits}`.

    Default splits: test (held-out utterances of the training speakers) and test_unseen (held-out
    speakers), whichever exist. Every split used must have phone_ali.
    """
    if splits is None:
        splits = [s for s in ("test", "test_unseen") if (Path(data_dir) / s / "wav.scp").exists()]
        if not splits:
            raise DataError(f"{data_dir}: neither a test nor a test_unseen split found")
    split_dir(data_dir, "train")
    for s in splits:
        split_dir(data_dir, s)
    loaded, model_path = load(model_path)
    train = load_split(loaded, data_dir, "train", max_utts, need_labels=True, keep_audio=False)
    evals = [load_split(loaded, data_dir, s, max_utts, need_labels=True, keep_audio=False).labelled() for s in splits]
    rate = loaded.sample_rate / loaded.hop_length
    report = P.probe_report(train.labelled(), evals, rate, int(loaded.config.vq.codebook_size), context, max_frames)
    report.model = model_summary(loaded, model_path)
    return report


# --------------------------------------------------------------------------- vqaudio evaluate


@dataclass
class EvaluateOptions:
    """What `vqaudio evaluate` runs on; the defaults keep a CPU run to minutes for a small model."""

    max_utts: int = 10  # test utterances reconstructed and converted
    targets: list[str] | None = None  # conversion targets (default: `n_targets` training speakers, evenly spaced)
    n_targets: int = 2
    train_per_speaker: int = 10  # train utterances per speaker for the probe and the speaker-id model
    abx_utts: int = 60  # test utterances for ABX (encoded only, cheap)
    abx_triplets: int = 1000  # per condition (within, across)
    temperature: float = 1.0  # decoder sampling temperature
    seed: int = 0
    prior: str | None = None  # prior file for the entropy-coded bitrate
    baselines: bool = True  # Codec2 / Opus when installed
    plots: int = 2  # utterances with spectrograms and audio samples written


def decode_codes(loaded: Any, codes: list[np.ndarray], speakers: list[str], temperature: float = 1.0,
                 seed: int = 0, label: str = "decode", sources: list[np.ndarray] | None = None
                 ) -> list[np.ndarray]:
    """Waveforms [N_i * hop] decoded from codes [N_i], each in its speaker's voice (ids of `loaded.speakers`),
    in one batch through the codec library (`vqaudio.inference.codec.synthesize`), with a progress bar. `sources`: the
    waveforms the codes came from (the vocoder kind's F0 mapping uses them, as `vqaudio convert` does)."""
    from vqaudio.inference.codec import speaker_index, synthesize

    index = [speaker_index(loaded, s) for s in speakers]
    with progress() as bar:
        task = bar.add_task(label, total=1, info="")
        outs = synthesize(loaded, codes, index, temperature, seed, sources=sources,
                          on_progress=lambda done, total: bar.update(task, completed=done, total=total))
    return outs


def signal_scores(refs: list[np.ndarray], outs: list[np.ndarray], sample_rate: int) -> dict[str, float]:
    """Mean STOI, PESQ-WB, MCD (dB) and log-mel distance (dB) of `outs` against `refs` (NaN-aware)."""
    from vqaudio.evaluate import metrics as M

    rows = [(M.stoi_score(r, o, sample_rate), M.pesq_wb(r, o, sample_rate), M.mcd(r, o, sample_rate),
             M.log_mel_distance(r, o, sample_rate)) for r, o in zip(refs, outs, strict=True)]
    arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
    means = [float(np.nanmean(c)) if np.isfinite(c).any() else float("nan") for c in arr.T]
    return dict(zip(("stoi", "pesq_wb", "mcd_db", "log_mel_db"), means, strict=True))


def entropy_bitrate(prior_path: str | None, loaded: Any, split: SplitData) -> tuple[float, str]:
    """(bit/s of the codes under the prior, i.e. ideal entropy coding, or NaN; a note on how or why not)."""
    if not prior_path:
        return float("nan"), "entropy-coded bitrate: skipped (no --prior given)"
    try:
        from vqaudio.inference.prior import CodeSet, check_pair, load_prior, prior_nll_bits
    except ImportError:
        return float("nan"), "entropy-coded bitrate: skipped (this vqaudio has no latent prior)"
    prior = load_prior(prior_path)
    check_pair(prior, loaded.identity, prior_path)
    index = {s: i for i, s in enumerate(loaded.speakers)}
    utts = split.utterances
    codeset = CodeSet(utts, [split.codes[u] for u in utts],
                      np.array([index.get(split.data.utt2spk[u], -1) for u in utts], dtype=np.int64), loaded.identity)
    bits = prior_nll_bits(prior.prior, codeset)
    return bits * loaded.sample_rate / loaded.hop_length, f"entropy-coded: prior cross-entropy {bits:.3f} bits/code"


def codec_section(loaded: Any, test: SplitData, utts: list[str], recon: list[np.ndarray],
                  opts: EvaluateOptions) -> dict[str, Any]:
    """Reconstruction quality of the model (and baselines) on `utts`, code usage and bitrates."""
    from vqaudio.evaluate import baselines as B
    from vqaudio.evaluate import metrics as M

    sr, k = loaded.sample_rate, int(loaded.config.vq.codebook_size)
    refs = [test.wavs[u] for u in utts]
    ent_bps, ent_note = entropy_bitrate(opts.prior, loaded, test)
    systems = {"vq-vae": {"bitrate": M.raw_bitrate(sr, loaded.hop_length, k), "entropy_bitrate": ent_bps,
                          **signal_scores(refs, recon, sr)}}
    notes = [ent_note]
    found, skipped = B.available_baselines() if opts.baselines else ([], ["baselines: off (--no-baselines)"])
    notes += skipped
    for b in found:
        try:
            outs = [B.run_baseline(b, r, sr) for r in refs]
        except B.BaselineError as e:
            notes.append(f"{b.name} failed: {e}")
            continue
        systems[b.name] = {"bitrate": b.bitrate, "entropy_bitrate": float("nan"), **signal_scores(refs, outs, sr)}
    usage = M.codebook_usage(np.concatenate([test.codes[u] for u in test.utterances]), k)
    return {"utterances": utts, "systems": systems, "usage": usage, "notes": notes}


def choose_targets(loaded: Any, train_speakers: list[str], opts: EvaluateOptions) -> list[str]:
    """Conversion targets: `opts.targets` checked, or `n_targets` training speakers evenly spaced."""
    known = [s for s in loaded.speakers if s in set(train_speakers)]
    if opts.targets:
        bad = [t for t in opts.targets if t not in known]
        if bad:
            raise DataError(f"--targets: {', '.join(bad)} not a training speaker of this model and data "
                            f"(known: {', '.join(known[:10])}{'...' if len(known) > 10 else ''})")
        return list(opts.targets)
    return pick(known, opts.n_targets)


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


def vc_section(loaded: Any, train: SplitData, test: SplitData, utts: list[str], recon: list[np.ndarray],
               targets: list[str], mapping: list[str] | None, opts: EvaluateOptions
               ) -> tuple[dict[str, Any], dict[tuple[str, str], np.ndarray]]:
    """Voice conversion of `utts` to `targets`: speaker similarity, content preservation, shared-sentence MCD."""
    from vqaudio.evaluate.speaker_id import SpeakerClassifier

    sr, rate, spk = loaded.sample_rate, loaded.sample_rate / loaded.hop_length, test.data.utt2spk
    clf = SpeakerClassifier(sr).fit([train.wavs[u] for u in train.utterances],
                                    [train.data.utt2spk[u] for u in train.utterances])
    real = [u for u in test.utterances if spk[u] in clf.speakers]
    pairs = [(u, t) for u in utts for t in targets if t != spk[u]]
    conv = decode_codes(loaded, [test.codes[u] for u, _ in pairs], [t for _, t in pairs], opts.temperature,
                        opts.seed + 1, label="convert", sources=[test.wavs[u] for u, _ in pairs])
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


def mfcc_frames(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """13 MFCCs [N, 13] every 10 ms, frame n centred at (n + 0.5) * 10 ms (the ABX baseline features)."""
    import librosa

    hop = int(round(0.01 * sample_rate))
    shifted = np.asarray(wav[hop // 2:], dtype=np.float32)  # librosa centres frame n at n * hop
    return librosa.feature.mfcc(y=shifted, sr=sample_rate, n_mfcc=13, n_fft=int(512 * sample_rate / 16000),
                                win_length=int(0.025 * sample_rate), hop_length=hop, n_mels=40).T


def abx_section(loaded: Any, test: SplitData, opts: EvaluateOptions) -> dict[str, Any]:
    """ABX error within and across speakers for the quantised codes and for MFCCs, on the test split."""
    from vqaudio.evaluate.abx import abx_error

    labels = test.labels
    if not labels:
        return {"skipped": f"{test.data.path}: no phone_ali"}
    spk, rate = test.data.utt2spk, loaded.sample_rate / loaded.hop_length
    mfcc = {u: mfcc_frames(test.wavs[u], loaded.sample_rate) for u in labels}
    return {
        "utterances": len(labels),
        "codes": abx_error({u: test.vectors(u) for u in labels}, rate, labels, spk, opts.abx_triplets, opts.seed),
        "mfcc": abx_error(mfcc, 100.0, labels, spk, opts.abx_triplets, opts.seed),
    }


def run_evaluate(data_dir: str | os.PathLike, model_path: str | os.PathLike | None, out_dir: str | os.PathLike,
                 opts: EvaluateOptions | None = None) -> dict[str, Any]:
    """Codec, voice-conversion, probe and ABX figures of a model on `DATA_DIR/{train,test[,test_unseen]}`.

    Writes OUT_DIR/results.json, results.md, plots/*.png and samples/*.wav; returns the results.
    """
    from vqaudio.evaluate.plots import write_evaluation_figures
    from vqaudio.evaluate.report import evaluation_tables, write_json, write_markdown

    opts = opts or EvaluateOptions()
    for s in ("train", "test"):
        split_dir(data_dir, s)
    loaded, model_path = load(model_path)
    rate, k = loaded.sample_rate / loaded.hop_length, int(loaded.config.vq.codebook_size)
    targets = choose_targets(loaded, DataDir.load(split_dir(data_dir, "train")).speakers, opts)
    train = load_split(loaded, data_dir, "train", per_speaker=opts.train_per_speaker)
    test = load_split(loaded, data_dir, "test", max(opts.abx_utts, opts.max_utts))
    spk = test.data.utt2spk
    utts = [u for u in pick(test.utterances, opts.max_utts) if spk[u] in loaded.speakers]
    if not utts:
        raise DataError(f"{test.data.path}: no utterance of a speaker this model was trained on")
    results: dict[str, Any] = {"model": model_summary(loaded, model_path), "options": opts}
    evals = [test.labelled()]
    if (Path(data_dir) / "test_unseen" / "wav.scp").exists():
        evals.append(load_split(loaded, data_dir, "test_unseen", opts.abx_utts, keep_audio=False).labelled())
    mapping = None
    if train.labels and test.labels:
        probe = P.probe_report(train.labelled(), [e for e in evals if e.labels], rate, k, seed=opts.seed)
        probe.model, mapping = results["model"], probe.mapping
        results["probe"] = probe
    else:
        results["probe"] = {"skipped": "train or test split without phone_ali"}
    recon = decode_codes(loaded, [test.codes[u] for u in utts], [spk[u] for u in utts], opts.temperature,
                         opts.seed, label="reconstruct")
    results["codec"] = codec_section(loaded, test, utts, recon, opts)
    results["voice_conversion"], convs = vc_section(loaded, train, test, utts, recon, targets, mapping, opts)
    results["abx"] = abx_section(loaded, test, opts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results["figures"] = write_evaluation_figures(out, results, {u: test.wavs[u] for u in utts[: opts.plots]},
                                                  dict(zip(utts, recon, strict=True)), convs, loaded.sample_rate)
    write_json(out / "results.json", results)
    write_markdown(out / "results.md", evaluation_tables(results), title=f"vqaudio evaluate: {model_path}")
    return results
