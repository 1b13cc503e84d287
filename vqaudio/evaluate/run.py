"""What `vqaudio probe` and `vqaudio evaluate` run: the phoneme probe, codec quality (with Codec2 / Opus), voice
conversion (`vqaudio.evaluate.conversion`) and ABX on the splits of a data dir (`vqaudio.evaluate.splits`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vqaudio.data.kaldi import DataDir
from vqaudio.data.world import check_decoding
from vqaudio.errors import DataError
from vqaudio.evaluate import probe as P
from vqaudio.evaluate.conversion import vc_section
from vqaudio.evaluate.splits import (
    SplitData,
    choose_targets,
    decode_codes,
    load,
    load_split,
    model_summary,
    pick,
    set_decoding,
    split_dir,
)
from vqaudio.models.io import LoadedModel

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
    f0: str | None = None  # vocoder kind: F0 of conversions, a data.world.F0_MODES name (None: the model's f0_mode)
    gv_strength: float | None = None  # vocoder kind: postfilter strength 0..1 (None: the model's gv_strength)
    gv_scale: str | None = None  # vocoder kind: postfilter scale, "speaker" or "utterance" (None: the model's)


def signal_scores(refs: list[np.ndarray], outs: list[np.ndarray], sample_rate: int) -> dict[str, float]:
    """Mean STOI, PESQ-WB, MCD (dB) and log-mel distance (dB) of `outs` against `refs` (NaN-aware)."""
    from vqaudio.evaluate import metrics as M

    rows = [(M.stoi_score(r, o, sample_rate), M.pesq_wb(r, o, sample_rate), M.mcd(r, o, sample_rate),
             M.log_mel_distance(r, o, sample_rate)) for r, o in zip(refs, outs, strict=True)]
    arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
    means = [float(np.nanmean(c)) if np.isfinite(c).any() else float("nan") for c in arr.T]
    return dict(zip(("stoi", "pesq_wb", "mcd_db", "log_mel_db"), means, strict=True))


def entropy_bitrate(prior_path: str | None, loaded: LoadedModel, split: SplitData) -> tuple[float, str]:
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


def codec_section(loaded: LoadedModel, test: SplitData, utts: list[str], recon: list[np.ndarray],
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


def mfcc_frames(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """13 MFCCs [N, 13] every 10 ms, frame n centred at (n + 0.5) * 10 ms (the ABX baseline features)."""
    import librosa

    hop = int(round(0.01 * sample_rate))
    shifted = np.asarray(wav[hop // 2:], dtype=np.float32)  # librosa centres frame n at n * hop
    return librosa.feature.mfcc(y=shifted, sr=sample_rate, n_mfcc=13, n_fft=int(512 * sample_rate / 16000),
                                win_length=int(0.025 * sample_rate), hop_length=hop, n_mels=40).T


def abx_section(loaded: LoadedModel, test: SplitData, opts: EvaluateOptions) -> dict[str, Any]:
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
    from vqaudio.evaluate.report import write_json, write_markdown
    from vqaudio.evaluate.tables import evaluation_tables

    opts = opts or EvaluateOptions()
    check_decoding(opts.f0, opts.gv_strength, opts.gv_scale)
    for s in ("train", "test"):
        split_dir(data_dir, s)
    loaded, model_path = load(model_path)
    set_decoding(loaded, opts.gv_strength, opts.gv_scale)
    rate, k = loaded.sample_rate / loaded.hop_length, int(loaded.config.vq.codebook_size)
    targets = choose_targets(loaded, DataDir.load(split_dir(data_dir, "train")).speakers, opts.targets, opts.n_targets)
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
    results["voice_conversion"], convs = vc_section(loaded, train, test, utts, recon, targets, mapping,
                                                            opts.temperature, opts.seed, opts.f0)
    results["abx"] = abx_section(loaded, test, opts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results["figures"] = write_evaluation_figures(out, results, {u: test.wavs[u] for u in utts[: opts.plots]},
                                                  dict(zip(utts, recon, strict=True)), convs, loaded.sample_rate)
    write_json(out / "results.json", results)
    write_markdown(out / "results.md", evaluation_tables(results), title=f"vqaudio evaluate: {model_path}")
    return results
