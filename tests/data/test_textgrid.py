"""TextGrid I/O: round trip, MFA-style labels normalised, frame labels."""

from __future__ import annotations

import math

import pytest

from vqaudio.data.textgrid import Alignment, Interval, frame_labels, read_textgrid, write_textgrid
from vqaudio.errors import DataError
from vqaudio.phones import PHONES


def test_round_trip(tmp_path):
    ali = Alignment(1.234, phones=[Interval(0.0, 0.1, "sil"), Interval(0.1, 0.35, "HH"), Interval(0.35, 0.6, "AY"),
                                   Interval(0.6, 1.234, "sil")],
                    words=[Interval(0.1, 0.6, "hi")])
    write_textgrid(tmp_path / "a.TextGrid", ali)
    back = read_textgrid(tmp_path / "a.TextGrid")
    assert back.duration == pytest.approx(1.234)
    assert [(round(i.start, 6), round(i.end, 6), i.label) for i in back.phones] == [
        (0.0, 0.1, "sil"), (0.1, 0.35, "HH"), (0.35, 0.6, "AY"), (0.6, 1.234, "sil")]
    assert [w.label for w in back.words] == ["hi"]
    assert not list(tmp_path.glob(".*"))  # atomic write left no temp file


def test_mfa_labels_are_normalised(tmp_path):
    from praatio import textgrid

    tg = textgrid.Textgrid(minTimestamp=0.0, maxTimestamp=1.0)
    tg.addTier(textgrid.IntervalTier("words", [(0.1, 0.5, "about")], 0.0, 1.0))
    tg.addTier(textgrid.IntervalTier("phones", [(0.0, 0.1, "sp"), (0.1, 0.2, "AH0"), (0.2, 0.3, "b"),
                                                (0.3, 0.4, "AW1"), (0.4, 0.5, "T"), (0.5, 0.6, "spn"),
                                                (0.6, 0.7, "XYZ")], 0.0, 1.0))
    tg.save(str(tmp_path / "mfa.TextGrid"), format="short_textgrid", includeBlankSpaces=True)
    ali = read_textgrid(tmp_path / "mfa.TextGrid")
    assert [i.label for i in ali.phones] == ["sil", "AH", "B", "AW", "T", "spn", "spn"]
    labels = frame_labels(ali)
    assert len(labels) == 100 and set(labels) <= set(PHONES)
    assert labels[95] == "sil"  # the empty stretch after 0.7 s


def test_phone_tier_found_by_name_and_missing(tmp_path):
    from praatio import textgrid

    tg = textgrid.Textgrid(minTimestamp=0.0, maxTimestamp=1.0)
    tg.addTier(textgrid.IntervalTier("speaker - phone", [(0.2, 0.4, "IY1")], 0.0, 1.0))
    tg.save(str(tmp_path / "p.TextGrid"), format="long_textgrid", includeBlankSpaces=True)
    assert [i.label for i in read_textgrid(tmp_path / "p.TextGrid").phones] == ["IY"]
    tg.removeTier("speaker - phone")
    tg.addTier(textgrid.IntervalTier("words", [(0.2, 0.4, "see")], 0.0, 1.0))
    tg.save(str(tmp_path / "w.TextGrid"), format="long_textgrid", includeBlankSpaces=True)
    with pytest.raises(DataError, match="no phones tier"):
        read_textgrid(tmp_path / "w.TextGrid")
    (tmp_path / "junk.TextGrid").write_text("this is not a TextGrid")
    with pytest.raises(DataError, match="not a readable TextGrid"):
        read_textgrid(tmp_path / "junk.TextGrid")


@pytest.mark.parametrize("duration", [0.255, 0.3, 1.0, 0.001])
def test_frame_labels_length_and_content(duration):
    ali = Alignment(duration, phones=[Interval(0.1, 0.2, "AH")])
    labels = frame_labels(ali)
    assert len(labels) == math.ceil(round(duration / 0.01, 6))
    # frame i covers [i/100, (i+1)/100): frames 10..19 have their centre inside [0.1, 0.2)
    expected = ["AH" if 10 <= i < 20 else "sil" for i in range(len(labels))]
    assert labels == expected


def test_write_clips_and_drops_empty(tmp_path):
    ali = Alignment(0.5, phones=[Interval(-0.1, 0.2, "S"), Interval(0.2, 0.2, "T"), Interval(0.3, 0.9, "")],
                    words=[])
    write_textgrid(tmp_path / "c.TextGrid", ali)
    back = read_textgrid(tmp_path / "c.TextGrid")
    assert [(i.start, i.end, i.label) for i in back.phones] == [(0.0, 0.2, "S")]


def test_write_float_noise_duration_is_quiet(tmp_path, capsys):
    duration = 0.25 + 0.03 * 3  # 0.33999999999999997
    write_textgrid(tmp_path / "q.TextGrid", Alignment(duration, phones=[Interval(0.05, duration, "AH")]))
    assert capsys.readouterr().out == ""
    assert read_textgrid(tmp_path / "q.TextGrid").duration == pytest.approx(duration)
