"""The ctypes eSpeak NG binding: struct layout, events, voices, determinism, phoneme table."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from vqaudio.data import espeak
from vqaudio.phones import PHONES


def test_event_struct_matches_speak_lib_h_on_x86_64():
    assert ctypes.sizeof(espeak._Event) == 40
    assert espeak._Event.audio_position.offset == 16 and espeak._Event.sample.offset == 20
    assert espeak._Event.user_data.offset == 24 and espeak._Event.id.offset == 32
    assert ctypes.sizeof(espeak._EventId) == 8


def test_synthesize_gives_audio_and_ordered_events():
    text = "The boy judged the treasure."
    out = espeak.synthesize(text, voice="en-us")
    assert out.sample_rate == espeak.sample_rate() == 22050
    assert out.audio.dtype == np.float32 and len(out.audio) > 0.5 * out.sample_rate
    assert 0.01 < np.abs(out.audio).max() <= 1.0
    samples = [p.sample for p in out.phonemes]
    assert samples == sorted(samples) and 0 <= samples[0] and samples[-1] <= len(out.audio)
    # audio_position (ms) and sample are separate struct fields: both decoded means the layout is right.
    for p in out.phonemes:
        assert abs(p.audio_ms - 1000 * p.sample / out.sample_rate) <= 2
    names = [p.name.lstrip(espeak.STRESS_MARKS) for p in out.phonemes]
    for expected in ("b", "OI", "dZ", "Z", "D"):
        assert expected in names
    words = [text[w.text_start:w.text_start + w.length] for w in out.words]
    assert words == ["The", "boy", "judged", "the", "treasure"]


def test_voice_variants_change_the_voice_and_bad_voices_are_refused():
    assert {"m1", "m3", "f1", "f3", "klatt"} <= set(espeak.variants())
    low = espeak.synthesize("a quiet morning", voice="en-us+m1", pitch=40)
    high = espeak.synthesize("a quiet morning", voice="en-us+f3", pitch=70)
    assert not np.array_equal(low.audio[:1000], high.audio[:1000])
    with pytest.raises(espeak.EspeakError, match="variant"):
        espeak.synthesize("hello", voice="en-us+nosuchvariant")
    with pytest.raises(espeak.EspeakError, match="no voice"):
        espeak.synthesize("hello", voice="xx-nosuchlanguage")


@pytest.mark.parametrize("voice", ["en-gb-scotland+m3", "en-us+klatt"])
def test_synthesize_is_deterministic(voice):
    a = espeak.synthesize("Fresh cheese and a yellow hat.", voice=voice, pitch=55, rate=160)
    b = espeak.synthesize("Fresh cheese and a yellow hat.", voice=voice, pitch=55, rate=160)
    assert np.array_equal(a.audio, b.audio) and a.phonemes == b.phonemes


def test_arpabet_table_targets_the_inventory():
    for name, labels in espeak.ARPABET_OF.items():
        assert labels is None or all(lab in PHONES and lab != "spn" for lab in labels), name
    assert espeak.to_arpabet("'aI") == ("AY",) and espeak.to_arpabet(",tS") == ("CH",)
    assert espeak.to_arpabet("_:") == ("sil",) and espeak.to_arpabet(";") is None
    assert espeak.to_arpabet("qq#") == ("spn",)
