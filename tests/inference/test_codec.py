"""Codec library: chunked encoding, segment-batched decoding, conversion, codes files, model resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.tiny_models import tiny_config

from vqaudio.errors import VQAudioError
from vqaudio.inference import codec
from vqaudio.inference import codes as codes_file
from vqaudio.models import build_vqvae
from vqaudio.models.io import save_model

SR = 16000
SPEAKERS = ["p225", "p226", "p227"]


def tiny_model() -> torch.nn.Module:
    """A random tiny VQ-VAE whose codebook holds encoder outputs of test audio (so codes vary, as trained)."""
    torch.manual_seed(0)
    model = build_vqvae(tiny_config(), len(SPEAKERS)).eval()
    with torch.no_grad():
        wav = torch.from_numpy(np.concatenate([voiced(1.0, f0, seed=i) for i, f0 in enumerate((110, 170, 260))]))
        proj = model.encoder.proj
        z = model.encoder(wav[None, None]).transpose(1, 2)[0]  # random encoder: a large common offset
        proj.bias.sub_(z.mean(0))
        proj.weight.div_(z.std(0)[:, None, None])
        proj.bias.div_(z.std(0))
        z = model.encoder(wav[None, None]).transpose(1, 2)[0]
        model.quantizer.codebook.copy_(z[torch.randperm(len(z))[:32]])
    return model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(path, tiny_model(), tiny_config(), SPEAKERS, {s: f"F 2{i} test speaker" for i, s in enumerate(SPEAKERS)})
    return path


@pytest.fixture(scope="module")
def loaded(model_path):
    return codec.load_codec(model_path, device="cpu")


def voiced(seconds: float, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """Harmonics of f0 with a syllable-rate envelope and a little noise, float32 [T] at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    wav = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
    return (0.3 * wav + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def test_chunked_encoding_equals_one_pass(loaded) -> None:
    wav = voiced(2.3)
    whole = codec.encode(loaded, wav, chunk_seconds=100.0)
    seen = []
    chunked = codec.encode(loaded, wav, chunk_seconds=0.2, on_progress=lambda d, t: seen.append((d, t)))
    assert whole.shape == (int(np.ceil(len(wav) / loaded.hop_length)),)
    assert len(set(whole.tolist())) > 10  # the comparison is not between constant sequences
    differ = np.flatnonzero(chunked != whole)
    assert len(differ) <= 2 and all(is_tie(loaded, wav, f) for f in differ), differ
    assert len(seen) > 5 and seen[-1] == (len(whole), len(whole))


def test_chunked_encoding_equals_one_pass_with_the_sliding_norm(tmp_path, loaded) -> None:
    """output_norm "sliding": each frame's statistics reach half a window beyond its receptive field, and
    encoder_context counts that reach, so chunks still give the one pass's codes; a change beyond the context
    leaves a frame's latent unchanged."""
    cfg = tiny_config()
    cfg.encoder.output_norm, cfg.encoder.norm_frames = "sliding", 21
    torch.manual_seed(0)
    model = build_vqvae(cfg, len(SPEAKERS)).eval()
    with torch.no_grad():
        wav = torch.from_numpy(np.concatenate([voiced(1.0, f0, seed=i) for i, f0 in enumerate((110, 170, 260))]))
        z = model.encoder(wav[None, None]).transpose(1, 2)[0]
        model.quantizer.codebook.copy_(z[torch.randperm(len(z))[:32]])
    save_model(tmp_path / "m.pt", model, cfg, SPEAKERS, {s: "F 20 test" for s in SPEAKERS})
    slid = codec.load_codec(tmp_path / "m.pt", device="cpu")
    hop, ctx = slid.hop_length, codec.encoder_context(slid)
    assert ctx == codec.encoder_context(loaded) + 10 * hop  # the same encoder with the batch norm, + 21 // 2
    wav = voiced(2.3)
    whole = codec.encode(slid, wav, chunk_seconds=100.0)
    chunked = codec.encode(slid, wav, chunk_seconds=0.2)
    assert len(set(whole.tolist())) > 5
    differ = np.flatnonzero(chunked != whole)
    assert len(differ) <= 2 and all(is_tie(slid, wav, f) for f in differ), differ
    frame, changed = 40, wav.copy()
    changed[(frame + 1) * hop + ctx:] = np.random.default_rng(1).standard_normal(len(wav) - (frame + 1) * hop - ctx)
    with torch.inference_mode():
        z = [slid.model.encoder(torch.from_numpy(w)[None, None, :len(w) // hop * hop]) for w in (wav, changed)]
    torch.testing.assert_close(z[0][:, :, frame], z[1][:, :, frame])


def is_tie(loaded, wav: np.ndarray, frame: int) -> bool:
    """The two nearest codes of a frame are equally near (to 0.1%): the VQ's matmul distances may pick either."""
    hop = loaded.hop_length
    x = np.zeros(int(np.ceil(len(wav) / hop)) * hop, np.float32)
    x[:len(wav)] = wav
    with torch.inference_mode():
        z = loaded.model.encoder(torch.from_numpy(x)[None, None])[0, :, frame]
        d = torch.cdist(z[None], loaded.model.quantizer.codebook, compute_mode="donot_use_mm_for_euclid_dist")[0]
    best = d.sort().values
    return bool(best[1] - best[0] < 1e-3 * best[0])


def test_encoder_context_bounds_the_receptive_field(loaded) -> None:
    """Changing the signal beyond the context on one side leaves a frame's code unchanged."""
    ctx, hop = codec.encoder_context(loaded), loaded.hop_length
    assert ctx % hop == 0 and ctx >= hop
    wav = voiced(1.0)
    frame = 5
    changed = wav.copy()
    changed[(frame + 1) * hop + ctx:] = np.random.default_rng(1).standard_normal(len(wav) - (frame + 1) * hop - ctx)
    with torch.inference_mode():
        z = [loaded.model.encoder(torch.from_numpy(w)[None, None, :len(w) // hop * hop]) for w in (wav, changed)]
    torch.testing.assert_close(z[0][:, :, frame], z[1][:, :, frame])


def test_segment_plan_covers_every_frame_once_outside_overlaps() -> None:
    for n in (1, 10, 260, 263, 264, 1000, 1001):
        segs = codec.plan_segments(n, 250, 13)
        assert segs[0][0] == 0 and segs[-1][1] == n
        for (_, e0), (s1, e1) in zip(segs, segs[1:], strict=False):
            assert e0 - s1 == 13 and e1 > e0  # neighbours share exactly the overlap
        assert max(e - s for s, e in segs) <= 250 + 13


def test_auto_segments_fill_the_batch_within_bounds() -> None:
    assert codec.auto_segment_seconds(4.0) == 0.25  # short input: finest segments
    assert codec.auto_segment_seconds(16.0) == 0.5  # 32 columns of 0.5 s
    assert codec.auto_segment_seconds(600.0) == 1.0  # long input: 1 s segments, in groups of 32


def test_crossfades_sum_to_one() -> None:
    length, fade = 100, 20
    a = codec.crossfade_weights(length, 0, fade)
    b = codec.crossfade_weights(length, fade, 0)
    total = np.zeros(180, np.float32)
    total[:100] += a
    total[80:] += b
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert a[0] == 1.0 and 0 < b[0] < 0.05


def test_synthesize_batches_segments_and_is_reproducible(loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    import vqaudio.inference.generate as gen

    calls, real = [], gen.generate

    def spy(net, cond, *args, **kwargs):
        calls.append(tuple(cond.shape))
        return real(net, cond, *args, **kwargs)

    monkeypatch.setattr(gen, "generate", spy)
    codes = [codec.encode(loaded, voiced(0.9, seed=s)) for s in range(2)]
    out = codec.synthesize(loaded, codes, [0, 2], seed=3, segment_seconds=0.25, overlap_seconds=0.02)
    assert [len(o) for o in out] == [len(c) * loaded.hop_length for c in codes]
    assert len(calls) == 1 and calls[0][0] == 8  # 2 utterances x 4 segments, one batch
    again = codec.synthesize(loaded, codes, [0, 2], seed=3, segment_seconds=0.25, overlap_seconds=0.02)
    other = codec.synthesize(loaded, codes, [0, 2], seed=4, segment_seconds=0.25, overlap_seconds=0.02)
    assert all(np.array_equal(x, y) for x, y in zip(out, again, strict=True))
    assert not np.array_equal(out[0], other[0])
    assert all(np.abs(o).max() <= 1.0 and np.abs(o).std() > 0 for o in out)


def test_segments_cover_the_input_in_whole_columns(loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    """4 s in 0.25 s segments is 16 columns: segment length rounds up (62.5 frames rounded down made 17 columns,
    and RTF 0.59 instead of 0.44 in benchmarks/generation_speed.py)."""
    import vqaudio.inference.generate as gen

    shapes = []

    def spy(net, cond, n, *args, **kwargs):
        shapes.append(tuple(cond.shape))
        return torch.zeros(cond.shape[0], n, dtype=torch.long)

    monkeypatch.setattr(gen, "generate", spy)
    codes = np.zeros(4 * 16000 // loaded.hop_length, np.int64)
    codec.synthesize(loaded, [codes], [0], segment_seconds=0.25)
    assert shapes[0][0] == 16


def test_synthesize_in_groups_when_columns_are_capped(loaded) -> None:
    codes = [codec.encode(loaded, voiced(0.6))]
    seen = []
    out = codec.synthesize(loaded, codes, [1], seed=0, segment_seconds=0.1, max_columns=2,
                           on_progress=lambda d, t: seen.append((d, t)))
    assert len(out[0]) == len(codes[0]) * loaded.hop_length
    assert seen[-1][0] == seen[-1][1]  # progress reaches the total over several groups


def test_decode_and_convert(loaded) -> None:
    codes = codec.encode(loaded, voiced(0.5))
    wav = codec.decode(loaded, codes, "p226", seed=1, temperature=0.7)
    assert wav.dtype == np.float32 and len(wav) == len(codes) * loaded.hop_length
    inputs = [voiced(0.5), voiced(0.3, 200.0)]
    outs = codec.convert(loaded, inputs, "p227", seed=0)
    assert [len(o) for o in outs] == [len(w) for w in inputs]
    with pytest.raises(VQAudioError, match="temperature must be >= 0"):
        codec.decode(loaded, codes, "p226", temperature=-1.0)


def test_unknown_speaker_lists_the_known_ones(loaded) -> None:
    with pytest.raises(VQAudioError, match="unknown speaker 'p999'.*p225, p226, p227"):
        codec.speaker_index(loaded, "p999")


@pytest.mark.parametrize("bad, message", [
    (np.array([1.0, 2.0]), "must be integers"),
    (np.zeros((2, 3), np.int16), "1-D"),
    (np.array([0, 32], np.int16), r"\[0, 32\)"),
    (np.array([-1, 3], np.int64), r"\[0, 32\)"),
    (np.array([], np.int16), "no codes"),
])
def test_bad_codes_are_refused(bad: np.ndarray, message: str) -> None:
    with pytest.raises(codes_file.CodesError, match=message):
        codes_file.check_codes(bad, 32)


def test_codes_files_round_trip_and_refusals(tmp_path) -> None:
    path = tmp_path / "codes.npy"
    codes_file.save_codes(path, np.array([0, 5, 31]))
    assert np.load(path).dtype == np.int16
    np.testing.assert_array_equal(codes_file.load_codes(path, 32), [0, 5, 31])
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "text.npy").write_text("not numpy")
    np.savez(tmp_path / "two.npz", a=np.zeros(2), b=np.zeros(2))
    for name, message in [("obj.npy", "not a codes file"), ("text.npy", "not a codes file"),
                          ("two.npz", "several arrays"), ("missing.npy", "no such file")]:
        with pytest.raises(codes_file.CodesError, match=message):
            codes_file.load_codes(tmp_path / name, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.npy", "obj.npy", "text.npy", "two.npz"]


def test_default_model_resolution(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(codec.MODEL_ENV, raising=False)
    monkeypatch.setattr(codec, "PRETRAINED_MODEL", tmp_path / "absent.pt")
    with pytest.raises(VQAudioError, match="pass --model"):
        codec.default_model_path()
    monkeypatch.setenv(codec.MODEL_ENV, str(tmp_path / "env.pt"))
    assert codec.default_model_path() == tmp_path / "env.pt"
