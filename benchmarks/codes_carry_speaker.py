"""Do the codes carry the speaker? Speaker identification from the codes alone, on held-out utterances.

Voice conversion decodes one speaker's codes with another's embedding; whatever identifies the source
speaker in the codes is carried into the conversion. This fits a logistic regression from utterance-level
code features to the training speakers on the `train` split and scores it on `test` (held-out utterances of
the same speakers): with speaker-free codes it would sit near chance (1 / speakers). Two features: the
histogram of the code indices, and the mean and standard deviation of the quantised vectors.

    python benchmarks/codes_carry_speaker.py DATA_DIR [MODEL.pt]     # default: the shipped model
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from vqaudio.errors import VQAudioError
from vqaudio.evaluate.splits import load, load_split


def utterance_features(loaded, data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> code histograms [U, K], quantised mean + std [U, 2D], speaker labels [U] of every utterance of
    `data_dir/split` (encoded as `vqaudio evaluate` encodes it: `vqaudio.evaluate.splits.load_split`)."""
    encoded = load_split(loaded, data_dir, split, keep_audio=False)
    utts, k = encoded.utterances, len(encoded.codebook)
    hist = [np.bincount(encoded.codes[u], minlength=k) / len(encoded.codes[u]) for u in utts]
    stats = [np.concatenate([v.mean(0), v.std(0)]) for v in map(encoded.vectors, utts)]
    return np.array(hist), np.array(stats), np.array([encoded.data.utt2spk[u] for u in utts])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("model", nargs="?", default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    try:  # a missing split or model file: one line, as the CLI says it
        loaded, _ = load(args.model)
        train_hist, train_stats, train_spk = utterance_features(loaded, args.data_dir, "train")
        test_hist, test_stats, test_spk = utterance_features(loaded, args.data_dir, "test")
    except VQAudioError as err:
        raise SystemExit(f"error: {err}") from None
    n_speakers = len(set(train_spk))
    print(f"model {args.model or 'shipped default'}; {len(train_spk)} train / {len(test_spk)} test utterances, "
          f"{n_speakers} speakers, chance {1 / n_speakers:.1%}")
    for name, x_train, x_test in (("code histogram", train_hist, test_hist),
                                  ("quantised vectors, mean + std", train_stats, test_stats)):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(x_train, train_spk)
        print(f"speaker id from the {name}: {np.mean(clf.predict(x_test) == test_spk):.1%} of test utterances")


if __name__ == "__main__":
    main()
