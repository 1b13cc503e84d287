"""The phoneme probe: how much the discrete codes say about the phones (VQ-VAE paper, section 4.3).

Time matching. Codes come at `code_rate` Hz (sample_rate / hop: 250 Hz for hop 64 at 16 kHz,
25 Hz in the paper's phoneme setting); labels at 100 Hz (`phone_ali`, frame i covers [i, i+1) * 10 ms).
We score on *label frames*: each 10 ms label frame takes the code whose span covers the frame's
centre time (i + 0.5) * 10 ms. So every figure is a share of 10 ms of speech whatever the code rate,
and the chance figures (computed on the same label frames) are directly comparable; at 25 Hz a code
counts four times, as long as it lasts. Label frames whose centre lies past the last code (audio cut
to a multiple of the hop) are dropped.

The paper's probe maps each code to the phone it co-occurs with most often on the training split
and reports frame accuracy on held-out data (49.3% vs 7.2% for the most frequent phone; 128 codes, 25 Hz).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from vqaudio.phones import FRAME_SHIFT, PHONES, phone_ids

N_PHONES = len(PHONES)


def code_index_for_labels(n_labels: int, n_codes: int, code_rate: float) -> np.ndarray:
    """Index of the code covering the centre of each label frame, [n_labels] int; -1 past the last code.

    Code n spans [n, n+1) / code_rate seconds; label frame i has its centre at (i + 0.5) * 10 ms.
    """
    centres = (np.arange(n_labels) + 0.5) * FRAME_SHIFT
    idx = np.floor(centres * code_rate + 1e-9).astype(np.int64)
    idx[idx >= n_codes] = -1
    return idx


def label_index_for_codes(n_codes: int, n_labels: int, code_rate: float) -> np.ndarray:
    """The other direction: the label frame at each code frame's centre, [n_codes] int; -1 past the labels."""
    centres = (np.arange(n_codes) + 0.5) / code_rate
    idx = np.floor(centres / FRAME_SHIFT + 1e-9).astype(np.int64)
    idx[idx >= n_labels] = -1
    return idx


@dataclass
class FramePairs:
    """Codes and phone ids on matched label frames, over many utterances."""

    codes: np.ndarray  # [F] int, the code covering each label frame
    phones: np.ndarray  # [F] int phone id
    code_index: np.ndarray  # [F] int, position of that code in its utterance (for context features)
    utterance: np.ndarray  # [F] int, which utterance (index into `utterances`)
    utterances: list[str] = field(default_factory=list)


def match_frames(codes: dict[str, np.ndarray], labels: dict[str, list[str]], code_rate: float) -> FramePairs:
    """Pair every label frame of every utterance present in both dicts with its code (see module doc)."""
    utts = sorted(set(codes) & set(labels))
    parts: list[tuple[np.ndarray, ...]] = []
    for u, utt in enumerate(utts):
        c, ph = np.asarray(codes[utt]).reshape(-1), phone_ids(labels[utt])
        idx = code_index_for_labels(len(ph), len(c), code_rate)
        keep = idx >= 0
        parts.append((c[idx[keep]], ph[keep], idx[keep], np.full(int(keep.sum()), u)))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return FramePairs(empty, empty, empty, empty, utts)
    cols = [np.concatenate([p[k] for p in parts]).astype(np.int64) for k in range(4)]
    return FramePairs(*cols, utterances=utts)


def fit_majority(codes: np.ndarray, phones: np.ndarray, codebook_size: int) -> np.ndarray:
    """Map each code to the phone it co-occurs with most often; unseen codes get the most frequent phone.

    Returns: [K] int phone id per code.
    """
    joint = np.zeros((codebook_size, N_PHONES), dtype=np.int64)
    np.add.at(joint, (codes, phones), 1)
    mapping = joint.argmax(axis=1)
    mapping[joint.sum(axis=1) == 0] = np.bincount(phones, minlength=N_PHONES).argmax()
    return mapping


def confusion(phones: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Confusion counts [41, 41]: rows true phone, columns predicted phone."""
    mat = np.zeros((N_PHONES, N_PHONES), dtype=np.int64)
    np.add.at(mat, (phones, predicted), 1)
    return mat


def per_phone_accuracy(mat: np.ndarray) -> dict[str, float]:
    """Recall of each phone present in the evaluation frames, from a confusion matrix [41, 41]."""
    totals = mat.sum(axis=1)
    return {PHONES[i]: float(mat[i, i] / totals[i]) for i in range(N_PHONES) if totals[i] > 0}


@dataclass
class ChanceFigures:
    most_frequent_phone: str  # of the training split
    most_frequent_accuracy: float  # always guessing it, on the evaluation frames (the paper's 7.2%)
    frequency_guess_accuracy: float  # guessing at random by training frequency: sum_i p_i q_i


def chance(train_phones: np.ndarray, eval_phones: np.ndarray) -> ChanceFigures:
    """Baselines that ignore the codes: training-split phone frequencies p applied to evaluation frames q."""
    p = np.bincount(train_phones, minlength=N_PHONES) / max(len(train_phones), 1)
    q = np.bincount(eval_phones, minlength=N_PHONES) / max(len(eval_phones), 1)
    top = int(p.argmax())
    return ChanceFigures(PHONES[top], float(q[top]), float((p * q).sum()))


def nmi_purity(codes: np.ndarray, phones: np.ndarray) -> tuple[float, float]:
    """Normalised mutual information (arithmetic mean) and purity between codes and phones on the same frames.

    Purity = share of frames whose phone is its code's majority phone *on these frames*: an oracle
    mapping fitted on the data it scores, so an upper bound of the majority probe, not a held-out figure.
    Both are biased upward when there are few frames per (code, phone) cell: compare models on the same frames.
    """
    from sklearn.metrics import normalized_mutual_info_score

    if len(codes) == 0:
        return float("nan"), float("nan")
    nmi = normalized_mutual_info_score(phones, codes)
    _, code_ids = np.unique(codes, return_inverse=True)
    joint = np.zeros((int(code_ids.max()) + 1, N_PHONES), dtype=np.int64)
    np.add.at(joint, (code_ids, phones), 1)
    return float(nmi), float(joint.max(axis=1).sum() / len(codes))


@dataclass
class MajorityProbeScore:
    """The paper's probe on one evaluation split."""

    split: str
    frames: int
    accuracy: float  # frame accuracy of code -> most likely training phone
    chance: ChanceFigures
    nmi: float
    purity: float  # oracle (fitted on these frames), see `nmi_purity`
    per_phone: dict[str, float]
    confusion: list[list[int]]  # [41, 41] rows true, columns predicted


def score_majority(split: str, mapping: np.ndarray, train: FramePairs, test: FramePairs) -> MajorityProbeScore:
    """Score a code -> phone `mapping` [K] on `test` frames, with chance figures from `train`."""
    pred = mapping[test.codes] if len(test.codes) else test.codes
    mat = confusion(test.phones, pred)
    nmi, purity = nmi_purity(test.codes, test.phones)
    acc = float((pred == test.phones).mean()) if len(pred) else float("nan")
    return MajorityProbeScore(
        split=split, frames=int(len(test.phones)), accuracy=acc, chance=chance(train.phones, test.phones),
        nmi=nmi, purity=purity, per_phone=per_phone_accuracy(mat), confusion=mat.tolist(),
    )


def context_features(codebook: np.ndarray, codes: list[np.ndarray], pairs: FramePairs, context: int) -> np.ndarray:
    """Each matched frame's quantised vector stacked with `context` code frames either side (edges repeat).

    Args:
        codebook: [K, D] the vector of each code.
        codes: per utterance of `pairs.utterances`, its codes [N_u].
    Returns:
        [F, (2 * context + 1) * D] float32.
    """
    lengths = np.array([len(c) for c in codes], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    flat = np.concatenate(codes).astype(np.int64) if codes else np.zeros(0, np.int64)
    offsets = np.arange(-context, context + 1)
    if len(pairs.codes) == 0:
        return np.zeros((0, len(offsets) * codebook.shape[1]), dtype=np.float32)
    pos = np.clip(pairs.code_index[:, None] + offsets[None, :], 0, lengths[pairs.utterance][:, None] - 1)
    ids = flat[starts[pairs.utterance][:, None] + pos]  # [F, 2c+1]
    return codebook[ids].reshape(len(pairs.codes), -1).astype(np.float32)


def subsample(n: int, limit: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most `limit` of `n` items, drawn without replacement (deterministic)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def select_frames(pairs: FramePairs, index: np.ndarray) -> FramePairs:
    """The frames `index` [F'] of `pairs` (same utterance list)."""
    return FramePairs(pairs.codes[index], pairs.phones[index], pairs.code_index[index], pairs.utterance[index],
                      pairs.utterances)


@dataclass
class LinearProbe:
    """Multinomial logistic regression from stacked quantised vectors to phones (beyond the paper)."""

    context: int  # code frames either side
    train_frames: int  # frames it was fitted on (subsampled)
    classifier: object  # sklearn Pipeline(StandardScaler, LogisticRegression)
    converged: bool = True  # False: lbfgs stopped at max_iter (reported, not printed as a warning)

    def accuracy(self, x: np.ndarray, phones: np.ndarray) -> float:
        """Frame accuracy on features x [F, dim] against phone ids [F]."""
        if len(phones) == 0:
            return float("nan")
        return float((self.classifier.predict(x) == phones).mean())


def linear_accuracy(probe: LinearProbe, codebook: np.ndarray, codes: list[np.ndarray], pairs: FramePairs,
                    block: int = 50000) -> float:
    """Frame accuracy of the linear probe on all frames of `pairs`, built `block` frames at a time (bounded memory)."""
    if len(pairs.codes) == 0:
        return float("nan")
    correct = 0
    for b0 in range(0, len(pairs.codes), block):
        part = select_frames(pairs, np.arange(b0, min(b0 + block, len(pairs.codes))))
        x = context_features(codebook, codes, part, probe.context)
        correct += int((probe.classifier.predict(x) == part.phones).sum())
    return correct / len(pairs.codes)


def fit_linear_probe(x: np.ndarray, phones: np.ndarray, context: int, max_frames: int = 20000,
                     seed: int = 0, max_iter: int = 300) -> LinearProbe:
    """Fit the linear probe on at most `max_frames` training frames x [F, dim], phones [F].

    lbfgs stops after `max_iter` iterations; whether it converged is recorded (`converged`) and reported
    with the accuracy instead of sklearn's multi-line warning.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    keep = subsample(len(phones), max_frames, seed)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, C=1.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(x[keep], phones[keep])
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return LinearProbe(context=context, train_frames=int(len(keep)), classifier=clf, converged=converged)


# --------------------------------------------------------------------------- the probe report


@dataclass
class LabelledCodes:
    """One split's codes and phone labels, per utterance, and the codebook they index."""

    name: str
    codes: dict[str, np.ndarray]  # [N] int
    labels: dict[str, list[str]]  # 10 ms phone labels
    codebook: np.ndarray  # [K, D] quantised vector of each code


@dataclass
class ProbeSplit:
    split: str
    utterances: int
    majority: MajorityProbeScore
    linear_accuracy: float


@dataclass
class ProbeReport:
    model: dict  # facts about the model (path, identity, codebook_size, code_rate, ...)
    train_utterances: int
    train_frames: int
    train_accuracy: float  # the majority mapping on its own training frames (not a held-out figure)
    linear_context: int
    linear_train_frames: int
    splits: list[ProbeSplit]
    mapping: list[str]  # [K] code -> phone
    linear_converged: bool = True  # False: the linear probe's lbfgs hit its iteration limit


def probe_report(train: LabelledCodes, evals: list[LabelledCodes], code_rate: float, codebook_size: int,
                 context: int = 2, max_frames: int = 20000, seed: int = 0) -> ProbeReport:
    """Fit the majority mapping and the linear probe on `train`; score every split of `evals`."""
    from vqaudio.errors import DataError

    tr = match_frames(train.codes, train.labels, code_rate)
    if len(tr.codes) == 0:
        raise DataError(f"{train.name}: no labelled frames to fit the probe on")
    mapping = fit_majority(tr.codes, tr.phones, codebook_size)
    # Subsample before stacking context: a full VCTK train split would need gigabytes of features.
    sub = select_frames(tr, subsample(len(tr.codes), max_frames, seed))
    linear = fit_linear_probe(context_features(train.codebook, [train.codes[u] for u in sub.utterances], sub, context),
                              sub.phones, context, max_frames, seed)
    results = []
    for split in evals:
        te = match_frames(split.codes, split.labels, code_rate)
        results.append(ProbeSplit(split.name, len(te.utterances), score_majority(split.name, mapping, tr, te),
                                  linear_accuracy(linear, split.codebook, [split.codes[u] for u in te.utterances], te)))
    return ProbeReport(
        model={}, train_utterances=len(tr.utterances), train_frames=int(len(tr.codes)),
        train_accuracy=float((mapping[tr.codes] == tr.phones).mean()), linear_context=context,
        linear_train_frames=linear.train_frames, splits=results, mapping=[PHONES[i] for i in mapping],
        linear_converged=linear.converged,
    )


def probe_accuracy(mapping: list[str], codes: dict[str, np.ndarray], labels: dict[str, list[str]],
                   code_rate: float) -> float:
    """Frame accuracy of a fitted code -> phone `mapping` on other codes (e.g. of converted audio)."""
    pairs = match_frames(codes, labels, code_rate)
    if len(pairs.codes) == 0:
        return float("nan")
    return float((phone_ids(mapping)[pairs.codes] == pairs.phones).mean())


def probe_tables(report: ProbeReport) -> list:
    """The probe's figures as a `report.Table` (accuracies in %), with notes on what they mean."""
    from vqaudio.evaluate.report import Table, fmt

    m = report.model
    t = Table(f"Phoneme probe ({m.get('codebook_size')} codes at {fmt(m.get('code_rate'), 1)} Hz)",
              ["split", "utts", "frames", "probe", "linear", "top phone", "freq. guess", "NMI", "purity"])
    for s in report.splits:
        maj = s.majority
        t.add(s.split, s.utterances, maj.frames, fmt(maj.accuracy, percent=True), fmt(s.linear_accuracy, percent=True),
              f"{fmt(maj.chance.most_frequent_accuracy, percent=True)} {maj.chance.most_frequent_phone}",
              fmt(maj.chance.frequency_guess_accuracy, percent=True), maj.nmi, maj.purity)
    t.notes = [
        f"probe: each code -> its most frequent phone on train ({report.train_utterances} utterances, "
        f"{report.train_frames} frames; {fmt(report.train_accuracy, percent=True)} on those training frames)",
        "frame accuracy over 10 ms label frames, each taking the code that covers its centre",
        f"linear: logistic regression on quantised vectors ±{report.linear_context} code frames "
        f"({report.linear_train_frames} training frames"
        f"{'' if report.linear_converged else '; lbfgs stopped at its iteration limit before converging'})",
        "top phone: always the most frequent training phone; freq. guess: sum p_i q_i; purity is fitted on the "
        "split it scores (an upper bound). Paper (128 codes, 25 Hz): 49.3% vs 7.2%",
    ]
    if m.get("phone_loss"):
        t.notes.append(f"this model's encoder was trained with phone labels (model.phone_loss {m['phone_loss']:g}): "
                       "the probe reads codes learnt with supervision, not without labels as the paper's")
    return [t]
