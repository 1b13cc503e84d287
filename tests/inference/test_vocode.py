"""Vocoder-kind decoding: the envelope postfilter and the F0 modes on hand-made WORLD features."""

from __future__ import annotations

import numpy as np

from vqaudio.config import load_config
from vqaudio.data.world import WorldSettings
from vqaudio.inference.vocode import normalize_f0, postfilter

S = WorldSettings.from_config(load_config("quick").model)


def features(frames: int = 400, seed: int = 0) -> np.ndarray:
    """Random WORLD-shaped features [frames, dims]: the first quarter unvoiced."""
    rng = np.random.default_rng(seed)
    f = rng.normal(0.5, 0.3, (frames, S.dims)).astype(np.float32)
    f[:, S.lf0_index] = np.log(150.0) + 0.1 * rng.standard_normal(frames)
    f[:, S.vuv_index] = 1.0
    f[: frames // 4, S.vuv_index] = 0.0
    return f


def test_postfilter_moves_voiced_variance_toward_the_speaker_gv_by_the_strength() -> None:
    f = features()
    e, voiced = S.lf0_index, f[:, S.vuv_index] >= 0.5
    var = f[voiced, :e].astype(np.float64).var(axis=0)
    gv = 4.0 * var  # the speaker's envelopes vary 4x as much: the full GV scales deviations by 2
    envelope = np.stack([gv, np.zeros(e)])
    for strength, factor in ((0.0, 1.0), (0.5, 4.0 ** 0.5), (1.0, 4.0)):
        out = postfilter(f, S, envelope, strength)
        new_var = out[voiced, :e].astype(np.float64).var(axis=0)
        np.testing.assert_allclose(new_var[1:], factor * var[1:], rtol=1e-4)
        np.testing.assert_allclose(out[voiced, :e].mean(axis=0), f[voiced, :e].mean(axis=0), atol=1e-5)  # mean kept
        np.testing.assert_array_equal(out[voiced, 0], f[voiced, 0])  # frame energy left alone
        np.testing.assert_array_equal(out[~voiced], f[~voiced])  # unvoiced frames untouched
        np.testing.assert_array_equal(out[:, e:], f[:, e:])  # F0 and voicing untouched


def test_postfilter_adds_the_bias_and_skips_unknown_statistics() -> None:
    f = features(seed=1)
    e, voiced = S.lf0_index, f[:, S.vuv_index] >= 0.5
    bias = np.linspace(0.0, 0.3, e)
    out = postfilter(f, S, np.stack([np.full(e, 0.09), bias]), 0.0)
    np.testing.assert_allclose(out[voiced, :e] - f[voiced, :e], np.broadcast_to(bias, (voiced.sum(), e)), atol=1e-6)
    unknown = np.stack([np.full(e, np.nan), bias])  # a model file from before the statistics: nothing done
    np.testing.assert_array_equal(postfilter(f, S, unknown, 1.0), f)
    f[:, S.vuv_index] = 0.0  # no voiced frames: nothing to measure the utterance by
    np.testing.assert_array_equal(postfilter(f, S, np.stack([np.full(e, 0.09), bias]), 1.0), f)


def test_postfilter_with_the_decoded_gv_scales_every_utterance_alike() -> None:
    """With the voice's decoded GV the factor is (GV / decoded GV) ** (strength / 2) whatever the utterance's own
    spread: a narrow utterance (a spoken digit) is stretched as far as a wide one, not further."""
    wide = features(seed=3)
    e, voiced = S.lf0_index, wide[:, S.vuv_index] >= 0.5
    mean = wide[voiced, :e].mean(axis=0)
    narrow = wide.copy()
    narrow[voiced, :e] = mean + 0.5 * (wide[voiced, :e] - mean)  # a quarter of the variance
    decoded_gv = wide[voiced, :e].astype(np.float64).var(axis=0)
    envelope = np.stack([4.0 * decoded_gv, np.zeros(e)])
    for f in (wide, narrow):
        var = f[voiced, :e].astype(np.float64).var(axis=0)
        out = postfilter(f, S, envelope, 0.5, decoded_gv)
        np.testing.assert_allclose(out[voiced, :e].astype(np.float64).var(axis=0)[1:], 2.0 * var[1:], rtol=1e-4)
        np.testing.assert_array_equal(out[voiced, 0], f[voiced, 0])
    per_utterance = postfilter(narrow, S, envelope, 0.5)  # the utterance's own variance: 4x further for the narrow
    np.testing.assert_allclose(per_utterance[voiced, 1:e].astype(np.float64).var(axis=0),
                               4.0 * narrow[voiced, 1:e].astype(np.float64).var(axis=0), rtol=1e-4)
    unknown = np.full(e, np.nan)  # no record for the voice: the utterance's own, as before
    np.testing.assert_array_equal(postfilter(narrow, S, envelope, 0.5, unknown), per_utterance)


def test_calibration_records_each_voice_and_synthesis_uses_it(tmp_path, monkeypatch) -> None:
    """`calibrate_postfilter` keeps, per voice, the mean variance of what the decoder makes for it; other voices keep
    their record; `postfilter_reference` reads it (all NaN under gv_scale "utterance"); synthesis passes it on."""
    import torch

    import vqaudio.inference.vocode as V
    from vqaudio.inference.codec import load_codec
    from vqaudio.models import build_vqvae
    from vqaudio.models.io import save_model
    from vqaudio.models.vocoder import envelope_statistics

    cfg = load_config("quick", ["model.vocoder.gv_strength=1.0", "model.vocoder.f0_mode=predicted"])
    torch.manual_seed(0)
    model = build_vqvae(cfg.model, 2).eval()
    with torch.no_grad():
        model.decoder.speaker_envelope[:, 0] = 1.0
    save_model(tmp_path / "m.pt", model, cfg, ["a", "b"])
    loaded = load_codec(tmp_path / "m.pt", "cpu")
    rng = np.random.default_rng(0)
    codes = [rng.integers(0, 32, n) for n in (40, 60, 50)]
    assert np.isnan(V.postfilter_reference(loaded)).all()  # nothing recorded yet
    monkeypatch.setattr(V, "decode_features", lambda _, c, s: [features(len(x) * 8, seed=len(x)) for x in c])
    assert V.calibrate_postfilter(loaded, codes[:2], [1, 1]) == {"b": 2}
    made = [features(len(x) * 8, seed=len(x)) for x in codes[:2]]
    expected = np.mean([envelope_statistics(f, S)[1] for f in made], axis=0)
    ref = V.postfilter_reference(loaded)
    assert np.isnan(ref[0]).all()
    np.testing.assert_allclose(ref[1], expected)
    V.calibrate_postfilter(loaded, codes[2:], [0])
    assert loaded.extra["postfilter"]["utterances"] == {"b": 2, "a": 1}
    np.testing.assert_allclose(V.postfilter_reference(loaded)[1], expected)  # b kept
    seen = []
    monkeypatch.setattr(V, "postfilter", lambda f, s, env, strength, ref: seen.append(ref) or f)
    monkeypatch.setattr(V, "synthesis_job", lambda job: np.zeros(job[2], np.float32))
    V.synthesize_codes(loaded, codes[:2], [1, 0])
    np.testing.assert_allclose(seen[0], expected)
    np.testing.assert_allclose(seen[1], V.postfilter_reference(loaded)[0])
    loaded.config.vocoder.gv_scale = "utterance"
    assert np.isnan(V.postfilter_reference(loaded)).all()


def test_a_bad_postfilter_scale_is_refused() -> None:
    import pytest

    from vqaudio.errors import ConfigError
    from vqaudio.models import build_vqvae

    with pytest.raises(ConfigError, match="gv_scale must be one of speaker, utterance"):
        build_vqvae(load_config("quick", ["model.vocoder.gv_scale=sentence"]).model, 2)


def test_normalized_f0_takes_the_target_statistics_and_keeps_the_contour() -> None:
    f = features(seed=2)
    voiced = f[:, S.vuv_index] >= 0.5
    target = (np.log(220.0), 0.15)
    out = normalize_f0(f, S, target)
    lf0 = out[voiced, S.lf0_index].astype(np.float64)
    assert abs(lf0.mean() - target[0]) < 1e-4 and abs(lf0.std() - target[1]) < 1e-4
    assert np.corrcoef(lf0, f[voiced, S.lf0_index])[0, 1] > 0.999  # the same contour, moved and scaled
    np.testing.assert_array_equal(out[:, S.vuv_index], f[:, S.vuv_index])
    np.testing.assert_array_equal(out[:, : S.lf0_index], f[:, : S.lf0_index])
    f[:, S.vuv_index] = 0.0
    np.testing.assert_array_equal(normalize_f0(f, S, target), f)  # nothing voiced: unchanged


def test_synthesis_postfilters_with_each_utterances_own_speaker(tmp_path, monkeypatch) -> None:
    """`synthesize_codes` hands WORLD the decoded features of each utterance with its own speaker's bias added to the
    voiced frames (strength 0: the bias alone), after F0 is settled."""
    import torch

    import vqaudio.inference.vocode as V
    from vqaudio.inference.codec import load_codec
    from vqaudio.models import build_vqvae
    from vqaudio.models.io import save_model

    cfg = load_config("quick", ["model.vocoder.gv_strength=0.0", "model.vocoder.f0_mode=predicted"])
    torch.manual_seed(0)
    model = build_vqvae(cfg.model, 2).eval()
    e = model.decoder.settings.lf0_index
    with torch.no_grad():
        model.decoder.speaker_envelope[:, 0] = 1.0
        model.decoder.speaker_envelope[0, 1] = 0.0
        model.decoder.speaker_envelope[1, 1] = torch.linspace(0.1, 0.5, e)
    save_model(tmp_path / "m.pt", model, cfg, ["a", "b"])
    loaded = load_codec(tmp_path / "m.pt", "cpu")
    codes = [np.random.default_rng(0).integers(0, 32, 60)] * 2
    decoded = V.decode_features(loaded, codes, [0, 1])
    plain = [features(len(d), seed=k) for k, d in enumerate(decoded)]  # a quarter unvoiced (an untrained decoder's
    monkeypatch.setattr(V, "decode_features", lambda *_: [p.copy() for p in plain])  # voicing is anybody's guess)
    seen = []
    monkeypatch.setattr(V, "synthesis_job", lambda job: seen.append(job[0]) or np.zeros(job[2], np.float32))
    V.synthesize_codes(loaded, codes, [0, 1])
    for f, p, k in zip(seen, plain, [0, 1], strict=True):
        voiced = p[:, loaded.model.decoder.settings.vuv_index] >= 0.5
        bias = loaded.model.decoder.speaker_envelope[k, 1].numpy()
        np.testing.assert_allclose(f[voiced, :e] - p[voiced, :e], np.broadcast_to(bias, (voiced.sum(), e)), atol=1e-5)
        np.testing.assert_array_equal(f[~voiced], p[~voiced])


def test_synthesis_on_every_core_gives_the_same_audio(tmp_path) -> None:
    """`workers=0` renders in a process pool; the audio equals rendering in this process, in input order."""
    import torch

    from vqaudio.inference.codec import load_codec
    from vqaudio.inference.vocode import synthesize_codes
    from vqaudio.models import build_vqvae
    from vqaudio.models.io import save_model

    cfg = load_config("quick")
    torch.manual_seed(0)
    save_model(tmp_path / "m.pt", build_vqvae(cfg.model, 2).eval(), cfg, ["a", "b"])
    loaded = load_codec(tmp_path / "m.pt", "cpu")
    rng = np.random.default_rng(0)
    codes = [rng.integers(0, 32, n) for n in (40, 25, 60)]
    alone = synthesize_codes(loaded, codes, [0, 1, 0])
    pooled = synthesize_codes(loaded, codes, [0, 1, 0], workers=0)
    assert [len(a) for a in alone] == [n * loaded.hop_length for n in (40, 25, 60)]
    assert all(np.array_equal(a, b) for a, b in zip(alone, pooled, strict=True))
