"""The phoneme probe: time matching, majority mapping, chance figures, linear probe."""

from __future__ import annotations

import numpy as np
import pytest

from vqaudio.evaluate import probe
from vqaudio.phones import PHONES


def test_time_matching_at_250_hz():
    # 250 Hz codes (4 ms): label frame i (centre 10 i + 5 ms) lies in code floor((10 i + 5) / 4).
    idx = probe.code_index_for_labels(5, 12, 250.0)
    assert idx.tolist() == [1, 3, 6, 8, 11]
    assert probe.code_index_for_labels(5, 10, 250.0).tolist() == [1, 3, 6, 8, -1]
    # other direction: code n (centre 4 n + 2 ms) -> label floor((4 n + 2) / 10)
    assert probe.label_index_for_codes(6, 2, 250.0).tolist() == [0, 0, 1, 1, 1, -1]


def test_time_matching_at_25_hz():
    # 25 Hz codes (40 ms): each code covers exactly four label frames
    idx = probe.code_index_for_labels(12, 3, 25.0)
    assert idx.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert probe.label_index_for_codes(3, 12, 25.0).tolist() == [2, 6, 10]


def _utterances(rng, n_utts=20, frames=200, rate=25.0, informative=True):
    """Labels in runs of 4 frames (one code each at 25 Hz); codes = phone id, or random."""
    labels, codes = {}, {}
    for u in range(n_utts):
        ph = rng.integers(0, 41, size=frames // 4)
        labels[f"u{u:03d}"] = [PHONES[p] for p in np.repeat(ph, 4)]
        codes[f"u{u:03d}"] = ph * 3 + rng.integers(0, 3, size=len(ph)) if informative else rng.integers(0, 128, len(ph))
    return labels, codes


def test_perfect_codes_give_full_accuracy():
    rng = np.random.default_rng(0)
    lab_tr, code_tr = _utterances(rng)
    lab_te, code_te = _utterances(rng)
    train = probe.match_frames(code_tr, lab_tr, 25.0)
    test = probe.match_frames(code_te, lab_te, 25.0)
    mapping = probe.fit_majority(train.codes, train.phones, 128)
    score = probe.score_majority("test", mapping, train, test)
    assert score.accuracy == pytest.approx(1.0)
    assert score.purity == pytest.approx(1.0) and score.nmi > 0.8
    assert all(v == 1.0 for v in score.per_phone.values())
    assert score.chance.most_frequent_accuracy < 0.1


def test_random_codes_give_about_chance():
    rng = np.random.default_rng(1)
    lab_tr, code_tr = _utterances(rng, informative=False)
    lab_te, code_te = _utterances(rng, informative=False)
    train = probe.match_frames(code_tr, lab_tr, 25.0)
    test = probe.match_frames(code_te, lab_te, 25.0)
    score = probe.score_majority("test", probe.fit_majority(train.codes, train.phones, 128), train, test)
    assert score.accuracy < 0.06  # chance with 41 uniform phones is 1/41 = 2.4%
    assert score.chance.frequency_guess_accuracy == pytest.approx(1 / 41, abs=0.005)
    assert score.nmi < 0.5  # NMI is biased upward on few frames; far below the informative case


def test_chance_figures():
    train = np.array([0, 0, 0, 1])
    test = np.array([0, 1, 1, 1])
    ch = probe.chance(train, test)
    assert ch.most_frequent_phone == PHONES[0]
    assert ch.most_frequent_accuracy == pytest.approx(0.25)
    assert ch.frequency_guess_accuracy == pytest.approx(0.75 * 0.25 + 0.25 * 0.75)


def test_linear_probe_learns_from_informative_vectors_only():
    rng = np.random.default_rng(2)
    lab_tr, code_tr = _utterances(rng, n_utts=10)
    lab_te, code_te = _utterances(rng, n_utts=5)
    table = 2.0 * np.eye(41)[np.minimum(np.arange(128) // 3, 40)] + 0.3 * rng.standard_normal((128, 41))
    train = probe.match_frames(code_tr, lab_tr, 25.0)
    test = probe.match_frames(code_te, lab_te, 25.0)
    xtr = probe.context_features(table, [code_tr[u] for u in train.utterances], train, context=1)
    xte = probe.context_features(table, [code_te[u] for u in test.utterances], test, context=1)
    assert xtr.shape == (len(train.codes), 3 * 41)
    lin = probe.fit_linear_probe(xtr, train.phones, context=1, max_frames=1500)
    assert lin.train_frames == 1500
    assert lin.accuracy(xte, test.phones) > 0.9
    shuffled = probe.fit_linear_probe(xtr, rng.permutation(train.phones), context=1, max_frames=1500)
    assert shuffled.accuracy(xte, test.phones) < 0.1
    blocks = probe.linear_accuracy(lin, table, [code_te[u] for u in test.utterances], test, block=333)
    assert blocks == pytest.approx(lin.accuracy(xte, test.phones))


def test_linear_probe_records_non_convergence_without_a_warning(recwarn):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((600, 20))
    phones = rng.integers(0, 41, 600)
    assert not probe.fit_linear_probe(x, phones, context=0, max_iter=2).converged
    assert probe.fit_linear_probe(x[:, :2], phones % 2, context=0, max_iter=1000).converged
    assert not [w for w in recwarn if "converge" in str(w.message)]


def test_context_features_repeat_edges_within_each_utterance():
    table = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)  # code c -> [c, c]
    codes = {"a": np.array([1, 2, 3]), "b": np.array([7, 8])}
    labels = {"a": ["AA"] * 12, "b": ["B"] * 8}  # 25 Hz codes: 4 label frames each
    pairs = probe.match_frames(codes, labels, 25.0)
    x = probe.context_features(table, [codes[u] for u in pairs.utterances], pairs, context=1)
    assert x.shape == (20, 6)
    assert x[0, ::2].tolist() == [1, 1, 2]  # first frame of "a": left edge repeats
    assert x[11, ::2].tolist() == [2, 3, 3]  # last frame of "a": right edge repeats, never reaches "b"
    assert x[12, ::2].tolist() == [7, 7, 8]


def test_the_report_says_when_the_codes_were_trained_with_phone_labels():
    """A model trained with the phone head (model.phone_loss) gets a note that its probe is not unsupervised."""
    rng = np.random.default_rng(0)
    lab_tr, code_tr = _utterances(rng)
    lab_te, code_te = _utterances(rng)
    codebook = rng.standard_normal((128, 4)).astype(np.float32)
    report = probe.probe_report(probe.LabelledCodes("train", code_tr, lab_tr, codebook),
                                [probe.LabelledCodes("test", code_te, lab_te, codebook)], 25.0, 128, max_frames=500)
    report.model = {"codebook_size": 128, "code_rate": 25.0, "phone_loss": 0.0}
    assert not any("phone labels" in n for n in probe.probe_tables(report)[0].notes)
    report.model["phone_loss"] = 1.0
    assert any("trained with phone labels" in n for n in probe.probe_tables(report)[0].notes)
