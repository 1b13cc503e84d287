"""Decoded copies: the speaker copies of the training utterances remade by the model being trained.

`perturb.decoded_from` = f > 0 splits the VQ-VAE's training in two phases (`vqaudio.training.vqvae.train_vqvae`).
The first trains to the fraction f of the run (of `max_steps` and `max_minutes`, whichever comes first) with the
WORLD speaker copies of `vqaudio.data.perturb`. Then the model, as exported at that step, makes each training
utterance's `perturb.copies` copies itself: copy 0 its reconstruction (the utterance's codes decoded in its own voice),
copies 1.. conversions of it to other training voices drawn at random, decoded as the finished model would convert
(its F0 mode and postfilter, the postfilter's reference of each voice measured then on the model's own decoding of
its training utterances, as training records it at the end). The second phase trains on with these in place of the
WORLD copies, the decoder's targets still the clean features.

Why: re-encoding a conversion is how the content of a conversion is measured (the probe on re-encoded conversions,
`vqaudio evaluate`), and the WORLD copies only shift pitch and warp formants of the utterance's own features, where a
conversion changes the whole voice through the decoder. Trained on its own conversions, the encoder learns to read
the words in them: in a resume pilot the content gap fell from 10.6 to 9.0 points (egs/vctk/RESULTS.md, "Decoded
copies").

The copies are kept in EXP_DIR/cache/decoded-copies.npy (int16 [copies, S], laid out like the dataset's samples),
with `decoded-copies.json` (the step they were made at) written last: a resumed run reuses them, a fresh run (no
checkpoint in EXP_DIR) discards any it finds. A run killed while they were being made makes them again from the
latest exported model.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from vqaudio.audio import INT16_SCALE, level_gain, to_int16
from vqaudio.data.dataset import SegmentDataset
from vqaudio.data.kaldi import pick
from vqaudio.data.world import WorldSettings
from vqaudio.fileio import atomic_path, atomic_write_text, load_array_pair, save_array_pair
from vqaudio.inference.codec import encode
from vqaudio.inference.vocode import CALIBRATION_UTTERANCES, POSTFILTER_KEY, calibrate_postfilter, synthesize_codes
from vqaudio.models.io import LoadedModel
from vqaudio.progress import progress

CHUNK = 1024  # copies decoded and rendered at a time: bounds the memory (~0.5 GB of features and audio for 4 s
# utterances) and the number of process pools started


def _files(cache: Path) -> tuple[Path, Path, Path]:
    """(copies .npy, lengths .npy, marker .json) in the cache folder."""
    return cache / "decoded-copies.npy", cache / "decoded-copies.lengths.npy", cache / "decoded-copies.json"


def copy_targets(speaker_index: np.ndarray, n_speakers: int, copies: int, seed: int) -> np.ndarray:
    """int [U, copies]: the voice each copy of each utterance is decoded in; column 0 the utterance's own speaker,
    the others distinct other speakers drawn at random (repeating only when there are fewer than copies - 1)."""
    rng = np.random.default_rng([seed, 15485863])
    out = np.empty((len(speaker_index), copies), np.int64)
    for u, own in enumerate(speaker_index):
        others = np.array([s for s in range(n_speakers) if s != own] or [int(own)])
        out[u, 0] = own
        out[u, 1:] = rng.choice(others, copies - 1, replace=len(others) < copies - 1)
    return out


def make_decoded_copies(loaded: LoadedModel, data: SegmentDataset, copies: int, seed: int, out: np.ndarray,
                        show_progress: bool | None = None) -> np.ndarray:
    """Fill `out` (int16 [copies, S], S = data.samples) with the model's copies of every utterance of `data`
    (`copy_targets`; decoded as the model converts, with its F0 mode and postfilter, except that "mapped" takes the
    decoder's F0: no source F0 is analysed), each scaled to the model's speech level like the WORLD copies. Codes
    once per utterance; WORLD synthesis on every core."""
    settings = WorldSettings.from_config(loaded.config)
    offsets = data.offsets
    targets = copy_targets(data.speaker_index, len(loaded.speakers), copies, seed)
    jobs = [(u, c) for u in range(len(data)) for c in range(copies)]
    with progress(disable=None if show_progress is None else not show_progress) as bar:
        task = bar.add_task(f"decoded copies: {copies} per training utterance", total=len(jobs), info="")
        codes = [encode(loaded, data.samples[offsets[u]:offsets[u + 1]] / INT16_SCALE) for u in range(len(data))]
        if POSTFILTER_KEY not in loaded.extra:  # as the exported model will decode once training records it
            voices = np.asarray(data.speaker_index)
            some = [u for v in np.unique(voices) for u in pick(np.flatnonzero(voices == v), CALIBRATION_UTTERANCES)]
            calibrate_postfilter(loaded, [codes[u] for u in some], [int(voices[u]) for u in some])
        for k in range(0, len(jobs), CHUNK):
            chunk = jobs[k:k + CHUNK]
            wavs = synthesize_codes(loaded, [codes[u] for u, _ in chunk], [int(targets[u, c]) for u, c in chunk],
                                    workers=0)
            for (u, c), wav in zip(chunk, wavs, strict=True):
                wav = wav[:data.lengths[u]]
                out[c, offsets[u]:offsets[u + 1]] = to_int16(wav * level_gain(wav, settings.level_db,
                                                                              settings.sample_rate))
            bar.advance(task, len(chunk))
    return out


def _marker(cache: Path) -> dict:
    path = _files(cache)[2]
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def cached_decoded_copies(cache: Path, data: SegmentDataset, copies: int, seed: int, step: int
                          ) -> np.ndarray | None:
    """The copies kept in `cache` for this data and these settings, made at or before `step`; else None."""
    marker = _marker(cache)
    if marker.get("copies") != copies or marker.get("seed") != seed or marker.get("step", step + 1) > step:
        return None
    pair = load_array_pair(*_files(cache)[:2])
    if pair is None or not np.array_equal(pair[1], data.lengths) or pair[0].shape != (copies, len(data.samples)):
        return None
    return pair[0]


def discard_decoded_copies(cache: Path) -> None:
    """Remove the decoded copies kept in `cache` (marker first): a fresh run must not take another run's copies,
    which would pass the marker's checks whenever the data and settings are the same."""
    for path in reversed(_files(cache)):
        path.unlink(missing_ok=True)


def decoded_copies(model_path: Path, cache: Path, data: SegmentDataset, copies: int, seed: int, step: int,
                   main: bool = True, show_progress: bool | None = None, device: str | torch.device = "cpu"
                   ) -> np.ndarray:
    """The decoded copies for the second phase at `step`: from `cache` when made before, else made now from the
    model file `model_path` (run on `device`, the training's) and kept there (int16 [copies, S], memory-mapped).
    Under DDP only the main rank makes them; the others wait for the marker."""
    found = cached_decoded_copies(cache, data, copies, seed, step)
    if found is not None:
        return found
    if not main:
        while (found := cached_decoded_copies(cache, data, copies, seed, step)) is None:
            time.sleep(2.0)
        return found
    from vqaudio.inference.codec import load_codec

    loaded = load_codec(model_path, device)
    cache.mkdir(parents=True, exist_ok=True)
    values_path, lengths_path, marker_path = _files(cache)
    marker_path.unlink(missing_ok=True)
    with atomic_path(values_path, suffix=".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int16, shape=(copies, len(data.samples)))
        make_decoded_copies(loaded, data, copies, seed, out, show_progress).flush()
        del out
    save_array_pair(values_path, lengths_path, None, data.lengths)
    atomic_write_text(marker_path, json.dumps({"step": step, "copies": copies, "seed": seed}))
    return load_array_pair(values_path, lengths_path)[0]
