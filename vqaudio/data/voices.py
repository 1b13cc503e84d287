"""Voices built from human recordings (Debian's Festival and Flite) as extra training speakers.

The embedded corpus is eSpeak NG's formant synthesis, and real speech reaches its codes worse than eSpeak's: on the
shipped model real digits converted into p225 keep 56% of PocketSphinx's words where the voices' own eSpeak digits
keep 75%, at the same 8 kHz band; the codes misname real /f/ and /θ/ onsets and the decoder voices them
(egs/vctk/RESULTS.md, "Where the voiceless onsets go"). The voices here are made from recordings of people:
Festival's diphone voices (concatenated recorded diphones: kal, ked in US English; lp, pc Italian; mv, lj Finnish;
dita, krb, machac, ph Czech), its HTS voices (statistical models of one speaker's recordings: slt, US English; ona,
Catalan) and Flite's awb and rms (Scottish and US English). Every one reads the training split's English
transcripts, the non-English ones with their own language's letter-to-sound rules: accented English, human
formant transitions and onsets, 14 voices no eSpeak setting makes.

`add_voices(DATA, OUT)` writes a new data dir OUT: every split of DATA as it is, and the train split with each
installed voice reading `utterances` sentences drawn from DATA's train transcripts (audio in OUT/voices/<speaker>/,
speakers `h_<name>`, no phone alignments). The recipe trains on OUT and evaluates on DATA, so the judges, targets
and test material stay the corpus's own; `train.aux_speakers: "h_*"` with `train.aux_share` draws the voices in a
fixed share of the training windows.

Needs the Debian packages (as root): `apt-get install festival flite festvox-kallpc16k festvox-kdlpc16k
festvox-us-slt-hts festvox-italp16k festvox-itapc16k festvox-suopuhe-lj festvox-suopuhe-mv festvox-czech-dita
festvox-czech-krb festvox-czech-machac festvox-czech-ph festvox-ca-ona-hts`; voices not installed are left out.
"""

from __future__ import annotations

import functools
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from vqaudio.audio import resample, save_audio
from vqaudio.data.corpus import SpeakerInfo
from vqaudio.data.kaldi import DataDir
from vqaudio.data.prepare import SPLITS, write_speakers_tsv
from vqaudio.errors import DataError
from vqaudio.fileio import atomic_write_text

FESTIVAL_VOICES = Path("/usr/share/festival/voices")
MARKER = "voices.txt"  # in OUT: what add_voices wrote (its voices and options); OUT without it is not ours
PEAK = 0.5  # peak level of the written audio (training scales every utterance to the model's speech level)
MIN_SECONDS = 0.5  # a rendering shorter than this is a failure (an empty or truncated synthesis)


@dataclass(frozen=True)
class HumanVoice:
    """A Festival or Flite voice made from one person's recordings, as a training speaker."""

    id: str  # speaker id, `h_<name>`
    engine: str  # "festival" or "flite"
    name: str  # the engine's voice name (Festival: `(voice_<name>)`; Flite: `-voice <name>`)
    gender: str  # "f" or "m"
    language: str  # the voice's own language (it reads English text with that language's rules)
    package: str  # the Debian package that installs it

    def installed(self) -> bool:
        if self.engine == "festival":
            return shutil.which("text2wave") is not None and any(FESTIVAL_VOICES.glob(f"*/{self.name}"))
        return shutil.which("flite") is not None and self.name in _flite_voices()

    def info(self) -> str:
        return (f"{self.language}, {self.engine}:{self.name}, built from recordings of a human speaker "
                f"(Debian {self.package}); reads English text with its language's rules")


VOICES = (
    HumanVoice("h_kal", "festival", "kal_diphone", "m", "US English", "festvox-kallpc16k"),
    HumanVoice("h_ked", "festival", "ked_diphone", "m", "US English", "festvox-kdlpc16k"),
    HumanVoice("h_slt", "festival", "cmu_us_slt_arctic_hts", "f", "US English", "festvox-us-slt-hts"),
    HumanVoice("h_dita", "festival", "czech_dita", "f", "Czech", "festvox-czech-dita"),
    HumanVoice("h_krb", "festival", "czech_krb", "m", "Czech", "festvox-czech-krb"),
    HumanVoice("h_machac", "festival", "czech_machac", "m", "Czech", "festvox-czech-machac"),
    HumanVoice("h_ph", "festival", "czech_ph", "m", "Czech", "festvox-czech-ph"),
    HumanVoice("h_lp", "festival", "lp_diphone", "f", "Italian", "festvox-italp16k"),
    HumanVoice("h_pc", "festival", "pc_diphone", "m", "Italian", "festvox-itapc16k"),
    HumanVoice("h_mv", "festival", "hy_fi_mv_diphone", "m", "Finnish", "festvox-suopuhe-mv"),
    HumanVoice("h_lj", "festival", "suo_fi_lj_diphone", "f", "Finnish", "festvox-suopuhe-lj"),
    HumanVoice("h_ona", "festival", "upc_ca_ona_hts", "f", "Catalan", "festvox-ca-ona-hts"),
    HumanVoice("h_awb", "flite", "awb", "m", "Scottish English", "flite"),
    HumanVoice("h_rms", "flite", "rms", "m", "US English", "flite"),
)


def apt_packages(voices: list[HumanVoice] | tuple[HumanVoice, ...]) -> tuple[str, ...]:
    """The Debian packages that render exactly `voices`: Festival itself when one of them is Festival's, then each
    voice's own package (Flite's voices are compiled into `flite`)."""
    engine = ("festival",) if any(v.engine == "festival" for v in voices) else ()
    return tuple(dict.fromkeys((*engine, *(v.package for v in voices))))


APT_PACKAGES = apt_packages(VOICES)


@functools.cache
def _flite_voices() -> frozenset[str]:
    """Flite's compiled-in voices (`flite -lv`; asked once per process)."""
    try:
        out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(out.partition(":")[2].split())


def installed_voices() -> list[HumanVoice]:
    """The voices of `VOICES` this machine can render."""
    return [v for v in VOICES if v.installed()]


def render(voice: HumanVoice, text: str, sample_rate: int = 16000) -> np.ndarray:
    """`voice` reading `text`: float32 [T] at `sample_rate`, peak `PEAK`. Raises DataError when the engine fails or
    returns less than `MIN_SECONDS` of audio."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        if voice.engine == "festival":
            cmd = ["text2wave", "-eval", f"(voice_{voice.name})", "-scale", "0.5", "-o", str(wav)]  # no clipping
            stdin = text
        else:
            cmd, stdin = ["flite", "-voice", voice.name, "-t", text, "-o", str(wav)], None
        try:
            subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, check=True)
            audio, sr = sf.read(wav, dtype="float32", always_2d=True)
        except (OSError, subprocess.SubprocessError, sf.LibsndfileError) as e:
            raise DataError(f"{voice.engine} voice {voice.name} could not read {text[:40]!r}: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    audio = audio.mean(axis=1)
    if len(audio) < MIN_SECONDS * sr or not np.abs(audio).max() > 0:
        raise DataError(f"{voice.engine} voice {voice.name}: no audio for {text[:40]!r}")
    audio = resample(audio, sr, sample_rate)
    return (audio * (PEAK / np.abs(audio).max())).astype(np.float32)


@dataclass
class VoicesSummary:
    """What `add_voices` wrote: the voices, utterances read, their audio in seconds, and renderings that failed."""

    voices: list[str]
    utterances: int
    seconds: float
    failed: list[str] = field(default_factory=list)  # utterance ids whose rendering failed (left out)


def add_voices(data_dir: str | Path, out_dir: str | Path, utterances: int = 50, seed: int = 0, force: bool = False,
               voices: list[HumanVoice] | None = None, sample_rate: int = 16000,
               show_progress: bool | None = None) -> VoicesSummary:
    """Write OUT: DATA's splits, its train split joined by `voices` (default: the installed ones) reading
    `utterances` sentences each, drawn (seeded by `seed`) from DATA's train transcripts.

    Refuses a non-empty OUT unless add_voices wrote it and `force` is set (then it is replaced), and DATA without
    transcripts or voices to read them. A rendering that fails is left out and listed in the summary."""
    src, out = Path(data_dir), Path(out_dir)
    train = DataDir.load(src / "train")
    texts = sorted({t for t in train.text.values() if t.strip()})
    if not 1 <= utterances <= len(texts):
        raise DataError(f"--utterances {utterances}: must be between 1 and the {len(texts)} distinct transcripts "
                        f"of {src / 'train'}")
    voices = installed_voices() if voices is None else voices
    if not voices:
        raise DataError("no Festival or Flite voice installed; as root: apt-get install " + " ".join(APT_PACKAGES))
    _prepare_out(src, out, force)
    atomic_write_text(out / MARKER, "incomplete: an interrupted add-voices (rerun with --force)\n")
    rng = random.Random(seed)
    jobs = [(v, f"{v.id}_{n:03d}", text) for v in voices for n, text in enumerate(rng.sample(texts, utterances), 1)]
    done = _render_all(jobs, out / "voices", sample_rate, show_progress)
    for split in SPLITS:
        if split != "train" and (src / split / "wav.scp").exists():  # train is written below, with the voices
            DataDir.load(src / split).save(out / split)
    for voice, utt, text in jobs:
        if utt in done:
            train.wav_scp[utt], train.utt2spk[utt], train.text[utt] = str(done[utt][0]), voice.id, text
    train.spk2gender.update({v.id: v.gender for v in voices})
    train.save(out / "train")
    _write_speakers(src / "speakers.tsv", out / "speakers.tsv", voices)
    failed = sorted(utt for _, utt, _ in jobs if utt not in done)
    atomic_write_text(out / MARKER, f"vqaudio add-voices: {src} with {len(voices)} voices x {utterances} "
                                    f"utterances, seed {seed}: {', '.join(v.id for v in voices)}\n")
    return VoicesSummary([v.id for v in voices], len(done), sum(s for _, s in done.values()), failed)


def _prepare_out(src: Path, out: Path, force: bool) -> None:
    """Refuse OUT = DATA and a non-empty OUT that add_voices did not write; clear ours with `force`."""
    if out.exists() and src.resolve() == out.resolve():
        raise DataError(f"{out}: the output must be a new folder, not the data dir itself")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise DataError(f"{out}: not empty and not written by add-voices; choose an empty or new folder")
        if not force:
            raise DataError(f"{out}: holds an earlier add-voices output; pass --force to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _render_all(jobs: list[tuple[HumanVoice, str, str]], audio_dir: Path, sample_rate: int,
                show_progress: bool | None) -> dict[str, tuple[Path, float]]:
    """Render and write every (voice, utterance id, text) on two threads (each runs an engine process);
    returns {utterance id: (audio path, seconds)} of those that worked."""
    from vqaudio.progress import progress

    def one(job: tuple[HumanVoice, str, str]) -> tuple[str, Path, float] | None:
        voice, utt, text = job
        try:
            audio = render(voice, text, sample_rate)
        except DataError:
            return None
        path = (audio_dir / voice.id / f"{utt}.flac").resolve()
        save_audio(path, audio, sample_rate)
        return utt, path, len(audio) / sample_rate

    done: dict[str, tuple[Path, float]] = {}
    disable = None if show_progress is None else not show_progress
    with progress(disable=disable) as bar, ThreadPoolExecutor(2) as pool:
        task = bar.add_task("voices", total=len(jobs), info="")
        for job, result in zip(jobs, pool.map(one, jobs), strict=True):
            if result is not None:
                done[result[0]] = result[1:]
            bar.update(task, advance=1, info=job[0].id)
    return done


def _write_speakers(src: Path, out: Path, voices: list[HumanVoice]) -> None:
    """speakers.tsv of DATA (when it has one) plus a line per voice."""
    info = {}
    for line in src.read_text(encoding="utf-8").splitlines() if src.exists() else []:
        if line.strip():
            spk, gender, text = (line.split("\t", 2) + ["", ""])[:3]
            info[spk] = SpeakerInfo(spk, gender or None, text)
    info.update({v.id: SpeakerInfo(v.id, v.gender, v.info()) for v in voices})
    write_speakers_tsv(out, list(info), info)
