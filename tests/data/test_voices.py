"""Festival/Flite voices as extra training speakers: the new data dir, refusals, and (where installed) rendering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers.train_fixtures import make_data_root
from typer.testing import CliRunner

from vqaudio.cli import app
from vqaudio.data import voices as V
from vqaudio.data.kaldi import DataDir
from vqaudio.errors import DataError

TWO = [V.VOICES[0], V.VOICES[2]]  # h_kal (m), h_slt (f)


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    root = make_data_root(tmp_path / "data", speakers=("p225", "p226"), utts=4)
    train = DataDir.load(root / "train")
    train.text = {u: f"sentence number {i} is here" for i, u in enumerate(train.utterances)}
    train.save()
    return root


@pytest.fixture()
def fake_render(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the engines by a tone whose pitch names the voice; texts with 'number 3' fail."""
    seen: list[str] = []

    def render(voice: V.HumanVoice, text: str, sample_rate: int = 16000) -> np.ndarray:
        if "number 3" in text:
            raise DataError("engine failed")
        seen.append(text)
        t = np.arange(sample_rate) / sample_rate
        return (0.5 * np.sin(2 * np.pi * (100 + 10 * V.VOICES.index(voice)) * t)).astype(np.float32)

    monkeypatch.setattr(V, "render", render)
    return seen


def test_the_voices_join_the_train_split_only(data: Path, tmp_path: Path, fake_render: list[str]) -> None:
    out = tmp_path / "out"
    summary = V.add_voices(data, out, utterances=3, seed=1, voices=TWO, show_progress=False)
    train, src = DataDir.load(out / "train"), DataDir.load(data / "train")
    assert train.speakers == ["h_kal", "h_slt", "p225", "p226"] and summary.voices == ["h_kal", "h_slt"]
    assert DataDir.load(out / "dev").wav_scp == DataDir.load(data / "dev").wav_scp
    added = [u for u in train.utterances if u.startswith("h_")]
    assert len(added) == summary.utterances == 6 - len(summary.failed)
    assert all(train.text[u] in src.text.values() and Path(train.wav_scp[u]).is_file() for u in added)
    assert all(train.wav_scp[u] == src.wav_scp[u] for u in src.utterances)
    assert train.spk2gender["h_kal"] == "m" and train.spk2gender["h_slt"] == "f"
    assert sf.info(train.wav_scp[added[0]]).samplerate == 16000
    tsv = (out / "speakers.tsv").read_text()
    assert tsv.count("\n") == 4 and "h_slt\tf\tUS English, festival:cmu_us_slt_arctic_hts" in tsv
    again = V.add_voices(data, tmp_path / "again", utterances=3, seed=1, voices=TWO, show_progress=False)
    assert again.utterances == summary.utterances  # the draw is seeded


def test_refusals(data: Path, tmp_path: Path, fake_render: list[str]) -> None:
    out = tmp_path / "out"
    V.add_voices(data, out, utterances=2, voices=TWO, show_progress=False)
    with pytest.raises(DataError, match="--force"):
        V.add_voices(data, out, utterances=2, voices=TWO, show_progress=False)
    V.add_voices(data, out, utterances=1, voices=TWO, force=True, show_progress=False)
    assert len(DataDir.load(out / "train").speakers) == 4
    with pytest.raises(DataError, match="not the data dir"):
        V.add_voices(data, data, utterances=1, voices=TWO, force=True, show_progress=False)
    with pytest.raises(DataError, match="not written by add-voices"):
        V.add_voices(data, data / "train", utterances=1, voices=TWO, force=True, show_progress=False)
    with pytest.raises(DataError, match="--utterances 99"):
        V.add_voices(data, tmp_path / "x", utterances=99, voices=TWO, show_progress=False)
    with pytest.raises(DataError, match="apt-get install festival"):
        V.add_voices(data, tmp_path / "y", utterances=1, voices=[], show_progress=False)


def test_apt_packages_render_exactly_the_voices_named() -> None:
    by_id = {v.id: v for v in V.VOICES}
    assert V.apt_packages([by_id["h_awb"], by_id["h_rms"]]) == ("flite",)  # Flite's voices: no Festival
    assert V.apt_packages([by_id["h_kal"], by_id["h_awb"]]) == ("festival", "festvox-kallpc16k", "flite")
    assert V.APT_PACKAGES[0] == "festival" and len(V.APT_PACKAGES) == len(set(V.APT_PACKAGES)) == 14


def test_the_command_says_one_line_on_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "add-voices", str(tmp_path / "missing"), str(tmp_path / "out")])
    assert result.exit_code != 0 and "Traceback" not in result.output and "missing" in result.output


@pytest.mark.skipif(not V.VOICES[0].installed(), reason="Festival's kal_diphone not installed (Debian festival, "
                                                        "festvox-kallpc16k)")
def test_festival_reads_a_sentence() -> None:
    audio = V.render(V.VOICES[0], "Please call Stella.")
    assert 0.5 < len(audio) / 16000 < 4 and np.abs(audio).max() == pytest.approx(V.PEAK, rel=1e-3)
