"""ABX: informative features give ~0 error, uninformative ones ~50%."""

from __future__ import annotations

import numpy as np
import pytest

from vqaudio.evaluate import abx
from vqaudio.phones import PHONES

VOWELS = ["AA", "IY", "UW", "EH"]


def corpus(seed: int = 0, speakers: int = 3, utts: int = 4):
    """Utterances of CVC patterns: sil B <vowel> D sil ... with 10 ms labels."""
    rng = np.random.default_rng(seed)
    labels, utt2spk = {}, {}
    for s in range(speakers):
        for u in range(utts):
            seq = ["sil"] * 5
            for _ in range(8):
                for ph in ("B", str(rng.choice(VOWELS)), "D"):
                    seq += [ph] * int(rng.integers(5, 12))
                seq += ["sil"] * 3
            labels[f"s{s}_{u:03d}"] = seq
            utt2spk[f"s{s}_{u:03d}"] = f"s{s}"
    return labels, utt2spk


def one_hot(labels: dict[str, list[str]], noise: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    eye = np.eye(len(PHONES))
    return {u: eye[[PHONES.index(p) for p in lab]] + noise * rng.standard_normal((len(lab), len(PHONES)))
            for u, lab in labels.items()}


def test_tokens_are_triphones_without_silent_centres():
    labels, utt2spk = corpus()
    tokens = abx.triphone_tokens(labels, utt2spk)
    assert tokens and all(t.centre not in ("sil", "spn") for t in tokens)
    vowel = [t for t in tokens if t.centre in VOWELS]
    assert all(t.context == ("B", "D") for t in vowel)
    assert all(t.end > t.start for t in tokens)


def test_informative_features_give_low_error_and_shuffled_give_chance():
    labels, utt2spk = corpus()
    feats = one_hot(labels, 0.1, 0)
    good = abx.abx_error(feats, 100.0, labels, utt2spk, max_triplets=300)
    assert good.triplets_within > 100 and good.triplets_across > 100
    assert good.within < 0.02 and good.across < 0.02
    rng = np.random.default_rng(1)
    shuffled = {u: rng.standard_normal(f.shape) for u, f in feats.items()}
    bad = abx.abx_error(shuffled, 100.0, labels, utt2spk, max_triplets=300)
    assert bad.within == pytest.approx(0.5, abs=0.1) and bad.across == pytest.approx(0.5, abs=0.1)


def test_abx_is_deterministic_and_works_at_a_lower_frame_rate():
    labels, utt2spk = corpus()
    feats = one_hot(labels, 0.3, 2)
    a = abx.abx_error(feats, 100.0, labels, utt2spk, max_triplets=100, seed=3)
    b = abx.abx_error(feats, 100.0, labels, utt2spk, max_triplets=100, seed=3)
    assert a == b
    slow = {u: f[::4] for u, f in feats.items()}  # 25 Hz frames: tokens may hold one frame or none
    low = abx.abx_error(slow, 25.0, labels, utt2spk, max_triplets=100)
    assert low.within < 0.3


def test_constant_features_are_all_ties():
    """A model that emits one code everywhere: every triplet is a tie, 50% exactly."""
    labels, utt2spk = corpus()
    const = {u: np.tile(np.array([0.3, -1.2, 0.7]), (len(lab), 1)) for u, lab in labels.items()}
    res = abx.abx_error(const, 100.0, labels, utt2spk, max_triplets=100)
    assert res.within == 0.5 and res.across == 0.5
