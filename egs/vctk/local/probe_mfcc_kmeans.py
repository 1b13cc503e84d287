"""A reference for the phoneme probe: the paper's mapping on k-means clusters of MFCCs instead of codes.

Each train and test utterance of DATA_DIR is cut into frames at the code rate (16 kHz / HOP), described by 13 MFCCs
(25 ms window) with or without their deltas and per-utterance mean and variance normalisation (CMVN), and the
frames are clustered by k-means (K clusters, fitted on train). Then the probe of `vqaudio probe`: each cluster is
mapped to the phone it co-occurs with most often on train, frame accuracy on test (10 ms label frames, each taking
the cluster of the frame that covers its centre). It tells how far a plain clustering of a textbook front end gets
on the same labels, at the same rate and K as the codes. With `--model`, also the same clustering of that model's
continuous encoder output before the VQ (z_e, at the model's own hop): does the encoder or the quantiser lose
the phones?

    python egs/vctk/local/probe_mfcc_kmeans.py DATA_DIR [--hop 128] [--clusters 512] [--split test] [--model M.pt]
"""

from __future__ import annotations

import argparse
from functools import partial

import librosa
import numpy as np
import torch
from sklearn.cluster import MiniBatchKMeans

from vqaudio.audio import load_audio
from vqaudio.data.kaldi import DataDir
from vqaudio.errors import VQAudioError
from vqaudio.evaluate import probe as P
from vqaudio.inference.codec import encoder_input

VARIANTS = {"13 MFCC": (False, False), "13 MFCC + CMVN": (False, True), "39 (deltas)": (True, False),
            "39 (deltas) + CMVN": (True, True)}


def mfcc_frames(wav: np.ndarray, hop: int, deltas: bool, cmvn: bool) -> np.ndarray:
    """[N, 13 or 39] MFCC frames of `wav`, one per `hop` samples (N = len(wav) // hop)."""
    f = librosa.feature.mfcc(y=wav, sr=16000, n_mfcc=13, n_fft=400, hop_length=hop, center=True)
    if deltas:
        f = np.vstack([f, librosa.feature.delta(f), librosa.feature.delta(f, order=2)])
    if cmvn:
        f = (f - f.mean(axis=1, keepdims=True)) / (f.std(axis=1, keepdims=True) + 1e-5)
    return f.T[: len(wav) // hop]


def encoder_frames(loaded, wav: np.ndarray) -> np.ndarray:
    """[N, D] continuous encoder output z_e of `wav` (the input prepared as `encode` prepares it)."""
    x = np.ascontiguousarray(encoder_input(loaded, wav), np.float32)
    with torch.inference_mode():
        return loaded.model.encoder(torch.from_numpy(x)[None, None])[0].T.float().numpy()


def split_frames(data_dir: str, split: str, hop: int) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Audio (cut to whole frames) and phone labels of every labelled utterance of one split."""
    data = DataDir.load(f"{data_dir}/{split}")
    wavs = {}
    for utt in data.utterances:
        if utt in data.phone_ali:
            wav = load_audio(data.wav_scp[utt], 16000)
            wavs[utt] = wav[: len(wav) // hop * hop]
    return wavs, {u: data.phone_ali[u] for u in wavs}


def matched(frames, wavs: dict[str, np.ndarray], pairs: P.FramePairs) -> np.ndarray:
    """The frame (of `frames(wav) -> [N, dims]`) matched to each label frame of `pairs`, [F, dims]."""
    return np.concatenate([frames(wavs[u])[pairs.code_index[pairs.utterance == i]]
                           for i, u in enumerate(pairs.utterances)])


def cluster_probe(x_train: np.ndarray, train: P.FramePairs, x_test: np.ndarray, test: P.FramePairs,
                  clusters: int) -> float:
    """The paper's mapping on k-means clusters (fitted on train) instead of codes: frame accuracy on test."""
    km = MiniBatchKMeans(clusters, random_state=0, n_init=1, batch_size=4096).fit(x_train[::2])
    mapping = P.fit_majority(km.predict(x_train), train.phones, clusters)
    return float((mapping[km.predict(x_test)] == test.phones).mean())


def frame_pairs(wavs: dict[str, np.ndarray], labels: dict[str, list[str]], hop: int) -> P.FramePairs:
    """Label frames matched to frames of `hop` samples (`match_frames` with placeholder codes)."""
    return P.match_frames({u: np.zeros(len(w) // hop, int) for u, w in wavs.items()}, labels, 16000 / hop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("--hop", type=int, default=128, help="samples per frame (128: the mini codes' 125 Hz)")
    parser.add_argument("--clusters", type=int, default=512)
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", help="also cluster this model's encoder output z_e (its own hop)")
    args = parser.parse_args()
    try:  # a missing split, a split without phone labels, a bad model file: one line, as the CLI says it
        report(args)
    except VQAudioError as err:
        raise SystemExit(f"error: {err}") from None


def report(args: argparse.Namespace) -> None:
    """Print the probe of each MFCC variant (and of the model's z_e) on `args.split`."""
    from vqaudio.evaluate.splits import load

    loaded = load(args.model)[0] if args.model else None  # first: a bad model file is refused before the work
    train_wavs, train_labels = split_frames(args.data_dir, "train", args.hop)
    test_wavs, test_labels = split_frames(args.data_dir, args.split, args.hop)
    train, test = frame_pairs(train_wavs, train_labels, args.hop), frame_pairs(test_wavs, test_labels, args.hop)
    print(f"{len(train.utterances)} train / {len(test.utterances)} {args.split} utterances, {16000 / args.hop:g} Hz, "
          f"K={args.clusters}; {args.split} chance (most frequent train phone): "
          f"{P.chance(train.phones, test.phones).most_frequent_accuracy:.1%}")
    for name, (deltas, cmvn) in VARIANTS.items():
        frames = partial(mfcc_frames, hop=args.hop, deltas=deltas, cmvn=cmvn)
        acc = cluster_probe(matched(frames, train_wavs, train), train, matched(frames, test_wavs, test), test,
                            args.clusters)
        print(f"MFCC: {name:22s} probe on {args.split}: {acc:.1%}")
    if loaded is not None:
        torch.set_num_threads(2)
        hop = loaded.hop_length
        tr, te = frame_pairs(train_wavs, train_labels, hop), frame_pairs(test_wavs, test_labels, hop)
        frames = lambda wav: encoder_frames(loaded, wav[: len(wav) // hop * hop])  # noqa: E731
        acc = cluster_probe(matched(frames, train_wavs, tr), tr, matched(frames, test_wavs, te), te, args.clusters)
        print(f"encoder output z_e of {args.model} (hop {hop}) probe on {args.split}: {acc:.1%}")


if __name__ == "__main__":
    main()
