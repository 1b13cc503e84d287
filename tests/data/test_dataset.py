"""Training windows: shapes, speakers, padding, and determinism in (seed, rank, step)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers.train_fixtures import make_data_root

from vqaudio.data.dataset import SegmentDataset, read_speaker_info, resolve_data_dir
from vqaudio.data.kaldi import DataDir
from vqaudio.errors import DataError
from vqaudio.phones import PHONE_TO_ID, PHONES


def constant_dataset(segment: int = 256) -> SegmentDataset:
    """Three utterances whose samples equal (speaker + 1) / 10: a window tells which one it came from."""
    audio = [np.full(1000, 0.1, np.float32), np.full(3000, 0.2, np.float32), np.full(100, 0.3, np.float32)]
    return SegmentDataset.from_waveforms(audio, [0, 1, 2], segment, seed=7)


def test_windows_have_the_right_shape_and_speakers():
    batch = constant_dataset().batch(step=3, batch_size=16)
    assert batch.wav.shape == (16, 256) and batch.wav.dtype == torch.float32
    assert batch.speaker.dtype == torch.long
    for wav, spk in zip(batch.wav, batch.speaker, strict=True):
        level = (int(spk) + 1) / 10
        assert torch.allclose(wav[:100], torch.full((100,), level), atol=1e-4)  # int16 store: 3e-5 steps


def test_short_utterances_are_padded_with_silence():
    ds = constant_dataset()
    windows = torch.cat([ds.batch(s, 8).wav[ds.batch(s, 8).speaker == 2] for s in range(20)])
    assert len(windows) > 0, "the 100-sample utterance was never drawn"
    assert torch.all(windows[:, 100:] == 0) and torch.allclose(windows[:, :100], torch.tensor(0.3), atol=1e-4)


def test_utterances_are_drawn_in_proportion_to_their_length():
    speakers = torch.cat([constant_dataset().batch(s, 64).speaker for s in range(30)])
    share = torch.bincount(speakers, minlength=3).float() / len(speakers)
    assert torch.allclose(share, torch.tensor([1000, 3000, 100]) / 4100, atol=0.04)


def test_a_group_of_utterances_is_drawn_in_a_fixed_share():
    ds = constant_dataset()
    ds.set_share(np.array([False, False, True]), 0.5)  # the 100-sample utterance: half of all windows
    speakers = torch.cat([ds.batch(s, 64).speaker for s in range(30)])
    share = torch.bincount(speakers, minlength=3).float() / len(speakers)
    assert torch.allclose(share, torch.tensor([0.125, 0.375, 0.5]), atol=0.04)  # the others by length, 1:3
    for chosen, bad in (([True, True, True], 0.5), ([False, False, False], 0.5), ([True, False, False], 1.0),
                        ([True, False, False], 0.0), ([True, False], 0.5)):
        with pytest.raises(DataError, match="share"):
            ds.set_share(np.array(chosen), bad)


def test_batches_are_a_function_of_seed_rank_and_step():
    a, b = constant_dataset(), constant_dataset()
    audio = [np.random.default_rng(0).uniform(-1, 1, 5000).astype(np.float32)]
    noisy = SegmentDataset.from_waveforms(audio, [0], 256, seed=7)
    assert torch.equal(noisy.batch(5, 4).wav, noisy.batch(5, 4).wav)
    assert not torch.equal(noisy.batch(5, 4).wav, noisy.batch(6, 4).wav)
    assert not torch.equal(noisy.batch(5, 4, rank=0).wav, noisy.batch(5, 4, rank=1).wav)
    other_seed = SegmentDataset.from_waveforms(audio, [0], 256, seed=8)
    assert not torch.equal(noisy.batch(5, 4).wav, other_seed.batch(5, 4).wav)
    assert torch.equal(a.batch(9, 4).speaker, b.batch(9, 4).speaker)
    first, again = noisy.fixed_batches(2, 4), noisy.fixed_batches(2, 4)
    assert all(torch.equal(x.wav, y.wav) for x, y in zip(first, again, strict=True))
    assert not torch.equal(first[0].wav, first[1].wav)


def test_from_data_dir_keeps_the_models_speakers_in_order(tmp_path):
    root = make_data_root(tmp_path / "data", speakers=("p225", "p226", "p227"), utts=2)
    ds = SegmentDataset.from_data_dir(root / "train", ["p227", "p225"], 512, 16000, show_progress=False)
    assert len(ds) == 4 and sorted(set(ds.speaker_index.tolist())) == [0, 1]
    first = DataDir.load(root / "train").wav_scp["p225_train000"]
    wav, _ = sf.read(first, dtype="float32")
    assert np.allclose(ds.samples[:len(wav)] / 32767.0, wav, atol=1e-4)  # p225 comes first in the data dir
    assert ds.speaker_index[0] == 1  # ... and is speaker 1 of the model's list
    with pytest.raises(DataError, match="no utterance"):
        SegmentDataset.from_data_dir(root / "train", ["p999"], 512, 16000, show_progress=False)


def test_resolve_data_dir(tmp_path):
    root = make_data_root(tmp_path / "data")
    splits = resolve_data_dir(root)
    assert (splits.train, splits.dev, splits.speakers_tsv) == (root / "train", root / "dev", root / "speakers.tsv")
    single = resolve_data_dir(root / "train")
    assert single.train == root / "train" and single.dev is None and single.speakers_tsv == root / "speakers.tsv"
    with pytest.raises(DataError, match="no such data directory"):
        resolve_data_dir(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="vqaudio data prepare"):
        resolve_data_dir(tmp_path / "empty")


def test_read_speaker_info(tmp_path):
    tsv = tmp_path / "speakers.tsv"
    tsv.write_text("p225\tF\t23  English  Southern England\np226\tM\t\np999\tF\tnot ours\n", encoding="utf-8")
    assert read_speaker_info(tsv, ["p225", "p226"]) == {"p225": "F  23  English  Southern England", "p226": "M"}
    assert read_speaker_info(None, ["p225"]) == {}


def test_the_audio_cache_is_reused_and_renewed(tmp_path):
    root = make_data_root(tmp_path / "data", utts=2)
    cache = tmp_path / "cache"
    first = SegmentDataset.from_data_dir(root / "train", ["p225", "p226"], 512, 16000, show_progress=False,
                                         cache=cache)
    assert not isinstance(first.samples, np.memmap) and len(list(cache.glob("train-*.npy"))) == 2
    again = SegmentDataset.from_data_dir(root / "train", ["p225", "p226"], 512, 16000, show_progress=False,
                                         cache=cache)
    assert isinstance(again.samples, np.memmap) and np.array_equal(again.samples, first.samples)
    assert torch.equal(again.batch(3, 4).wav, first.batch(3, 4).wav)
    changed = DataDir.load(root / "train").wav_scp["p226_train001"]
    sf.write(changed, np.zeros(4000, np.float32), 16000)  # the data changed: the cache must not be used
    renewed = SegmentDataset.from_data_dir(root / "train", ["p225", "p226"], 512, 16000, show_progress=False,
                                           cache=cache)
    assert not isinstance(renewed.samples, np.memmap) and renewed.lengths[-1] == 4000
    assert len(list(cache.glob("train-*.npy"))) == 2  # the stale cache was replaced


def test_phone_labels_follow_each_code_of_a_window():
    """PhoneFrames.window: the 10 ms label at each code's centre (hop 128 at 16 kHz), -1 past the labels."""
    from vqaudio.data.dataset import PhoneFrames

    labels = [[PHONES[i % 39] for i in range(12)], None]
    frames = PhoneFrames.from_labels(labels, 16000, hop=128)
    assert frames.label_samples == 160 and list(frames.frames) == [12, 0]
    # code centres 384, 512, 640, 768, 896 samples -> label frames 2, 3, 4, 4, 5
    assert list(frames.window(0, 320, 5)) == [2, 3, 4, 4, 5]
    # centres 1600, 1728, 1856 -> 10, 10, 11; 1856, 1984, 2112 -> 11, then past the 12 labels
    assert list(frames.window(0, 1536, 3)) == [10, 10, 11]
    assert list(frames.window(0, 1792, 3)) == [11, -1, -1]
    assert list(frames.window(1, 0, 4)) == [-1, -1, -1, -1]


def test_windows_carry_phone_labels_from_the_data_dir(tmp_path):
    """from_data_dir(phone_hop=...): every window has one phone id per code; an utterance without labels gives -1;
    a data dir without any labels is refused in one line."""
    root = make_data_root(tmp_path / "data", speakers=("p225", "p226"), utts=2, dev=False)
    data = DataDir.load(root / "train")
    data.phone_ali = {u: ["AA"] * 40 + ["S"] * 40 for u in data.utterances if data.utt2spk[u] == "p225"}
    data.save()
    ds = SegmentDataset.from_data_dir(root / "train", ["p225", "p226"], 1280, 16000, phone_hop=128)
    batch = ds.batch(0, 16)
    assert batch.phones.shape == (16, 10) and batch.phones.dtype == torch.long
    labelled = batch.speaker == 0
    assert labelled.any() and (~labelled).any()
    assert torch.all(batch.phones[~labelled] == -1)
    ids = {PHONE_TO_ID["AA"], PHONE_TO_ID["S"], -1}  # -1 only past the 0.8 s of labels
    assert set(batch.phones[labelled].unique().tolist()) <= ids and (batch.phones[labelled] >= 0).any()
    assert SegmentDataset.from_data_dir(root / "train", ["p225", "p226"], 1280, 16000).batch(0, 2).phones is None
    bare = make_data_root(tmp_path / "bare", dev=False)
    with pytest.raises(DataError, match="no phone labels"):
        SegmentDataset.from_data_dir(bare / "train", ["p225", "p226"], 1280, 16000, phone_hop=128)
