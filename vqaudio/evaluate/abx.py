"""ZeroSpeech-style ABX phone discrimination (Schatz et al. 2013; Dunbar et al. 2017) on frame features.

Tokens are triphones cut from the frame alignments: a phone segment with its left and right neighbour
phones (the centre never silence or spoken noise). A triplet (A, B, X): A and X are the same triphone,
B has the same context and a different centre phone. The triplet is an error when X is closer to B
than to A (ties count half). Within speakers: A, B, X from one speaker; across: A and B from one
speaker, X from another. The error is averaged over the triplets of each (centre A, centre B) phone
pair, then over pairs, so frequent phones do not dominate. Distance: DTW over frames with the angular
distance arccos(cos) / pi, averaged along the path.

Triplets are drawn at random with a fixed seed (deterministic), at most `max_triplets` per condition.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from vqaudio.evaluate.metrics import dtw_distance
from vqaudio.phones import FRAME_SHIFT, SILENCE, SPOKEN_NOISE

TIE = 1e-6  # distances closer than this are a tie (identical frames give arccos(1 - rounding) ~ 1e-8)


@dataclass(frozen=True)
class Token:
    utterance: str
    speaker: str
    context: tuple[str, str]  # (left phone, right phone)
    centre: str
    start: float  # seconds
    end: float  # seconds


def triphone_tokens(labels: dict[str, list[str]], utt2spk: dict[str, str]) -> list[Token]:
    """Every phone segment with a neighbour on each side, from frame labels (10 ms frames)."""
    tokens = []
    for utt in sorted(labels):
        lab = labels[utt]
        bounds = [0] + [i for i in range(1, len(lab)) if lab[i] != lab[i - 1]] + [len(lab)]
        segs = [(lab[a], a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        for k in range(1, len(segs) - 1):
            phone, a, b = segs[k]
            if phone in (SILENCE, SPOKEN_NOISE):
                continue
            tokens.append(Token(utt, utt2spk[utt], (segs[k - 1][0], segs[k + 1][0]), phone,
                                a * FRAME_SHIFT, b * FRAME_SHIFT))
    return tokens


def token_frames(features: np.ndarray, frame_rate: float, token: Token) -> np.ndarray:
    """Feature frames [n, D] whose centres fall inside the token; the nearest frame when none does."""
    centres = (np.arange(len(features)) + 0.5) / frame_rate
    sel = (centres >= token.start) & (centres < token.end)
    if not sel.any():
        mid = int(np.clip(np.floor((token.start + token.end) / 2 * frame_rate), 0, len(features) - 1))
        return features[mid:mid + 1]
    return features[sel]


def angular_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """arccos(cosine similarity) / pi between rows of a [N, D] and b [M, D], in [0, 1]."""
    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.arccos(np.clip(an @ bn.T, -1.0, 1.0)) / np.pi


def _sample_triplets(tokens: list[Token], across: bool, max_triplets: int, seed: int) -> list[tuple[int, int, int]]:
    """Indices (A, B, X) into `tokens`, drawn uniformly over eligible (context, a, b, speaker[s]) cells."""
    rng = np.random.default_rng(seed + int(across))
    cells: dict[tuple, list[int]] = defaultdict(list)
    for i, t in enumerate(tokens):
        cells[(t.context, t.centre, t.speaker)].append(i)
    by_ctx: dict[tuple, list[tuple]] = defaultdict(list)
    for key in cells:
        by_ctx[key[0]].append(key)
    options = []
    for keys in by_ctx.values():
        for ka in keys:
            for kb in keys:
                if ka[1] == kb[1] or ka[2] != kb[2]:
                    continue  # B differs in centre phone; A and B from one speaker
                xs = [kx for kx in keys if kx[1] == ka[1] and (kx[2] != ka[2]) == across]
                if not across and len(cells[ka]) < 2:
                    continue  # within: A and X are two different tokens of the same cell
                if xs:
                    options.append((ka, kb, xs))
    if not options:
        return []
    out = []
    for n in rng.choice(len(options), size=min(max_triplets, len(options) * 4), replace=True):
        ka, kb, xs = options[n]
        a = int(rng.choice(cells[ka]))
        kx = xs[int(rng.integers(len(xs)))]
        x_pool = [i for i in cells[kx] if i != a]
        out.append((a, int(rng.choice(cells[kb])), int(rng.choice(x_pool))))
    return out


@dataclass
class ABXResult:
    within: float  # error rate in [0, 1] (0.5 is chance); NaN when no triplet could be formed
    across: float
    triplets_within: int
    triplets_across: int
    tokens: int


def _error(tokens: list[Token], triplets: list[tuple[int, int, int]], frames: dict[int, np.ndarray]) -> float:
    per_pair: dict[tuple[str, str], list[float]] = defaultdict(list)
    for a, b, x in triplets:
        dax = dtw_distance(angular_distance(frames[a], frames[x]))
        dbx = dtw_distance(angular_distance(frames[b], frames[x]))
        err = 0.5 if abs(dbx - dax) <= TIE else 1.0 if dbx < dax else 0.0
        per_pair[(tokens[a].centre, tokens[b].centre)].append(err)
    return float(np.mean([np.mean(v) for v in per_pair.values()])) if per_pair else float("nan")


def abx_error(features: dict[str, np.ndarray], frame_rate: float, labels: dict[str, list[str]],
              utt2spk: dict[str, str], max_triplets: int = 2000, seed: int = 0) -> ABXResult:
    """ABX error within and across speakers.

    Args:
        features: per utterance, frame features [N, D] at `frame_rate` Hz (frame n centred at (n + 0.5) / rate).
        labels: per utterance, 10 ms phone labels (`phone_ali`).
        utt2spk: utterance -> speaker.
    """
    utts = {u: labels[u] for u in labels if u in features}
    tokens = triphone_tokens(utts, utt2spk)
    within = _sample_triplets(tokens, False, max_triplets, seed)
    across = _sample_triplets(tokens, True, max_triplets, seed)
    used = {i for t in within + across for i in t}
    frames = {i: np.asarray(token_frames(features[tokens[i].utterance], frame_rate, tokens[i]), dtype=np.float64)
              for i in used}
    return ABXResult(
        within=_error(tokens, within, frames), across=_error(tokens, across, frames),
        triplets_within=len(within), triplets_across=len(across), tokens=len(tokens),
    )
