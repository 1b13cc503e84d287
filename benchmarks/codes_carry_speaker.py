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
from pathlib import Path

import numpy as np
import torch

from vqaudio import codec
from vqaudio.audio import load_audio
from vqaudio.data.kaldi import DataDir
from vqaudio.progress import progress


def utterance_features(loaded, split: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> code histograms [U, K], quantised mean + std [U, 2D], speaker labels [U] of every utterance."""
    data = DataDir.load(split)
    book = loaded.model.quantizer.codebook.detach().cpu().numpy()
    hist, stats, speakers = [], [], []
    with progress() as bar:
        task = bar.add_task(f"encoding {split.name}", total=len(data.wav_scp), info="")
        for utt, path in sorted(data.wav_scp.items()):
            codes = codec.encode(loaded, load_audio(path, loaded.sample_rate))
            hist.append(np.bincount(codes, minlength=len(book)) / len(codes))
            vectors = book[codes]
            stats.append(np.concatenate([vectors.mean(0), vectors.std(0)]))
            speakers.append(data.utt2spk[utt])
            bar.advance(task)
    return np.array(hist), np.array(stats), np.array(speakers)


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

    train, test = Path(args.data_dir) / "train", Path(args.data_dir) / "test"
    if not (train / "wav.scp").is_file() or not (test / "wav.scp").is_file():
        raise SystemExit(f"{args.data_dir}: needs train/ and test/ data dirs (`vqaudio data prepare`)")
    loaded = codec.load_codec(args.model)
    train_hist, train_stats, train_spk = utterance_features(loaded, train)
    test_hist, test_stats, test_spk = utterance_features(loaded, test)
    n_speakers = len(set(train_spk))
    print(f"model {args.model or 'shipped default'}; {len(train_spk)} train / {len(test_spk)} test utterances, "
          f"{n_speakers} speakers, chance {1 / n_speakers:.1%}")
    for name, x_train, x_test in (("code histogram", train_hist, test_hist),
                                  ("quantised vectors, mean + std", train_stats, test_stats)):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(x_train, train_spk)
        print(f"speaker id from the {name}: {np.mean(clf.predict(x_test) == test_spk):.1%} of test utterances")


if __name__ == "__main__":
    main()
