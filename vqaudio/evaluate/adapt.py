"""Speaker-adapted recognition: one MLLR transform of PocketSphinx's US-English model per speaker.

PocketSphinx's model hears some voices far worse than others: eSpeak NG's voices of the embedded corpus saying the
digits 45% against real speakers' 75% (egs/vctk/RESULTS.md, "The recogniser kept state; speaker-adapted
recognition"), so the word accuracy of a conversion into such a voice measures the recogniser's trouble with the
voice as much as the content the codes carried. Speaker adaptation is the standard remedy (Leggetter & Woodland
1995, MLLR): one affine transform of the model's Gaussian means per speaker, estimated from some of its transcribed
speech by sphinxtrain's `bw` (Baum-Welch counts) and `mllr_solve`, applied by PocketSphinx when decoding
(`WordRecognizer(mllr=...)`).

Every speaker is offered its utterances in the order given and adapted on those `bw` aligns to their transcripts
until `seconds` of audio is reached (the last may pass it); a voice far from the model's may align fewer than that.
PocketSphinx's bundled model keeps its mixture weights only as a quantised `sendump` and its model definition in
binary; `bw` reads `mixture_weights` and a text definition, so `prepare_model` writes that copy once per adapter.

Needs Debian's `sphinxtrain`, `pocketsphinx` and `sphinxbase-utils` (`missing_packages()` says which are absent).

    adapter = SpeakerAdapter(workdir)
    mllr = adapter.transform("george", wavs16k, [["zero"], ["one", "two"]], seconds=30)  # None: nothing aligned
    rec = WordRecognizer(words, mllr=mllr)
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vqaudio.errors import DataError

# tool -> the Debian package that has it
TOOLS = {"bw": "sphinxtrain", "mllr_solve": "sphinxtrain", "pocketsphinx_mdef_convert": "pocketsphinx",
         "sphinx_fe": "sphinxbase-utils"}
TOOL_DIRS = ("/usr/lib/sphinxtrain", "/usr/local/lib/sphinxtrain", "/usr/libexec/sphinxtrain")
MODEL_FILES = ("feat.params", "mdef", "means", "noisedict", "transition_matrices", "variances")
SENSCR_SHIFT, LOG_BASE = 10, 1.0001  # sendump holds -log_base(p) >> SENSCR_SHIFT in 8 bits (PocketSphinx ptm_mgau.c)
SAMPLE_RATE = 16000


def find_tool(name: str) -> str | None:
    """The path of a sphinxtrain / sphinxbase tool (sphinxtrain's are outside PATH on Debian), or None."""
    found = shutil.which(name)
    if found:
        return found
    return next((str(Path(d) / name) for d in TOOL_DIRS if os.access(Path(d) / name, os.X_OK)), None)


def missing_packages() -> list[str]:
    """Debian packages whose tools speaker adaptation needs and this machine lacks ([] when all are there)."""
    return sorted({pkg for tool, pkg in TOOLS.items() if find_tool(tool) is None})


def read_sendump(path: str | os.PathLike) -> np.ndarray:
    """Mixture weights [n_feat, n_density, n_senones] (probabilities) from PocketSphinx's 8-bit `sendump`."""
    raw = Path(path).read_bytes()
    at, header = 0, {}

    def int32() -> int:
        nonlocal at
        at += 4
        return struct.unpack_from("<i", raw, at - 4)[0]

    if not 0 < struct.unpack_from("<i", raw)[0] < 1000:
        raise DataError(f"{path}: not a little-endian PocketSphinx sendump")
    for i in range(1000):  # title, format description, then "name value" strings up to a zero length
        n = int32()
        if n == 0 and i >= 2:
            break
        text = raw[at:at + n].rstrip(b"\0").decode("ascii", "replace")
        at += n
        if " " in text and not text.startswith(("(", "<", "#", ".")):
            key, _, value = text.partition(" ")
            header[key] = value
    n_feat = int(header.get("feature_count", "1"))
    if int(header.get("cluster_count", "0")) != 0:
        raise DataError(f"{path}: a clustered (4-bit) sendump; speaker adaptation needs the 8-bit kind")
    rows, cols = int32(), int32()
    if at + n_feat * rows * cols != len(raw):
        raise DataError(f"{path}: {len(raw)} bytes do not hold {n_feat} x {rows} x {cols} mixture weights")
    quantised = np.frombuffer(raw, np.uint8, n_feat * rows * cols, at).reshape(n_feat, rows, cols)
    probs = np.exp(-quantised.astype(np.float64) * (1 << SENSCR_SHIFT) * np.log(LOG_BASE))
    return probs / probs.sum(axis=1, keepdims=True)


def write_mixture_weights(path: str | os.PathLike, probs: np.ndarray) -> None:
    """Sphinx-3 `mixture_weights` (float32 [n_senones, n_feat, n_density]) from `read_sendump`'s array."""
    data = np.ascontiguousarray(probs.transpose(2, 0, 1), dtype="<f4")
    with open(path, "wb") as f:
        f.write(b"s3\nversion 1.0\nendhdr\n" + struct.pack("<I", 0x11223344))
        f.write(struct.pack("<4i", *data.shape, data.size) + data.tobytes())


def prepare_model(dest: str | os.PathLike) -> Path:
    """A copy of PocketSphinx's en-us acoustic model in `dest` that `bw` can read (mixture_weights, mdef.txt)."""
    from pocketsphinx import get_model_path

    src, out = Path(get_model_path("en-us/en-us")), Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        shutil.copy(src / name, out / name)
    write_mixture_weights(out / "mixture_weights", read_sendump(src / "sendump"))
    _run([_tool("pocketsphinx_mdef_convert"), "-text", str(src / "mdef"), str(out / "mdef.txt")], out / "mdef.log")
    return out


@dataclass
class Adaptation:
    """One speaker's transform: the MLLR file (None when none of its utterances aligned) and what it was made of."""

    mllr: Path | None
    utterances: int  # utterances the transform was estimated on
    seconds: float  # their audio


class SpeakerAdapter:
    """Makes per-speaker MLLR transforms of PocketSphinx's en-us model under `workdir`."""

    def __init__(self, workdir: str | os.PathLike) -> None:
        missing = missing_packages()
        if missing:
            raise DataError(f"speaker adaptation needs Debian's {', '.join(missing)} (apt-get install "
                            f"{' '.join(missing)})")
        from pocketsphinx import get_model_path

        self.work = Path(workdir)
        self.model = prepare_model(self.work / "model")
        self.params = _feat_params(self.model / "feat.params")
        self.dictionary = Path(get_model_path("en-us/cmudict-en-us.dict"))
        self.known = {line.split(maxsplit=1)[0] for line in self.dictionary.read_text().splitlines() if line.strip()}

    def transform(self, name: str, wavs: list[np.ndarray], words: list[list[str]], seconds: float) -> Adaptation:
        """MLLR transform of speaker `name` from its utterances (float [T] at 16 kHz, in the order given) that `bw`
        aligns to their `words`, taken until `seconds` of audio is reached; utterances with a word outside the
        dictionary are skipped."""
        folder = self.work / "speakers" / _safe(name)
        feats = folder / "feats"
        feats.mkdir(parents=True, exist_ok=True)
        usable = [i for i, w in enumerate(words) if w and all(x in self.known for x in w) and len(wavs[i])]
        if not usable:
            return Adaptation(None, 0, 0.0)
        ids = [f"u{i:05d}" for i in usable]
        for i, uid in zip(usable, ids, strict=True):
            _write_wav(feats / f"{uid}.wav", wavs[i])
        _write_lines(folder / "all.ids", ids)
        _run([_tool("sphinx_fe"), "-argfile", str(self.model / "feat.params"), "-samprate", str(SAMPLE_RATE),
              "-c", str(folder / "all.ids"), "-di", str(feats), "-do", str(feats), "-ei", "wav", "-eo", "mfc",
              "-mswav", "yes"], folder / "fe.log")
        texts = {uid: words[i] for i, uid in zip(usable, ids, strict=True)}
        aligned = self._aligned(folder, "all", ids, texts)
        chosen, total = [], 0.0
        for i, uid in zip(usable, ids, strict=True):
            if uid in aligned and total < seconds:
                chosen.append(uid)
                total += len(wavs[i]) / SAMPLE_RATE
        if not chosen:
            return Adaptation(None, 0, 0.0)
        self._aligned(folder, "chosen", chosen, {uid: texts[uid] for uid in chosen})
        mllr = folder / "mllr_matrix"
        _run([_tool("mllr_solve"), "-meanfn", str(self.model / "means"), "-varfn", str(self.model / "variances"),
              "-outmllrfn", str(mllr), "-accumdir", str(folder / "chosen.acc")], folder / "mllr_solve.log")
        return Adaptation(mllr, len(chosen), total)

    def _aligned(self, folder: Path, tag: str, ids: list[str], words: dict[str, list[str]]) -> set[str]:
        """Baum-Welch counts of utterances `ids` into FOLDER/TAG.acc; the ids `bw` aligned to their words."""
        _write_lines(folder / f"{tag}.ids", ids)
        _write_lines(folder / f"{tag}.trans", [f"<s> {' '.join(words[u])} </s> ({u})" for u in ids])
        acc = folder / f"{tag}.acc"
        acc.mkdir(exist_ok=True)
        p = self.params
        log = _run([_tool("bw"), "-hmmdir", str(self.model), "-moddeffn", str(self.model / "mdef.txt"),
                    "-ts2cbfn", ".ptm.", "-feat", p.get("feat", "1s_c_d_dd"), "-svspec", p.get("svspec", ""),
                    "-cmn", p.get("cmn", "batch"), "-agc", p.get("agc", "none"), "-varnorm", p.get("varnorm", "no"),
                    "-dictfn", str(self.dictionary), "-fdictfn", str(self.model / "noisedict"),
                    "-ctlfn", str(folder / f"{tag}.ids"), "-lsnfn", str(folder / f"{tag}.trans"),
                    "-cepdir", str(folder / "feats"), "-accumdir", str(acc), "-timing", "no"], folder / f"{tag}.log")
        return set(ids) - _skipped(log, set(ids))


def _skipped(log: str, ids: set[str]) -> set[str]:
    """Utterance ids `bw` left out, by its log: "u0003 ignored" (no alignment), "utt u0003 too short", "Skipped
    utterance 'u0003'"."""
    out = set()
    for line in log.splitlines():
        if "ignored" in line or "too short" in line or "Skipped" in line:
            out.update(t for t in line.replace("'", " ").replace('"', " ").split() if t in ids)
    return out


def _feat_params(path: Path) -> dict[str, str]:
    """`-name value` lines of a model's feat.params as {name: value}."""
    pairs = (line.split(maxsplit=1) for line in path.read_text().splitlines() if line.startswith("-"))
    return {p[0][1:]: p[1].strip() for p in pairs if len(p) == 2}


def _tool(name: str) -> str:
    """`find_tool(name)`, or one line naming its Debian package."""
    path = find_tool(name)
    if path is None:
        raise DataError(f"speaker adaptation needs {name} (Debian package {TOOLS[name]})")
    return path


def _run(cmd: list[str], log: Path) -> str:
    """Run a sphinx tool; its output goes to `log`; a failure is one line naming the tool and the log."""
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    log.write_text(done.stdout)
    if done.returncode != 0:
        raise DataError(f"{Path(cmd[0]).name} failed (exit {done.returncode}); see {log}")
    return done.stdout


def _write_wav(path: Path, wav: np.ndarray) -> None:
    """16-bit PCM WAV of `wav` [T] at 16 kHz, for sphinx_fe."""
    import soundfile as sf

    sf.write(path, np.clip(wav, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")


def _write_lines(path: Path, lines: list[str]) -> None:
    """A sphinxtrain control or transcript file: one line each."""
    path.write_text("".join(f"{line}\n" for line in lines))


def _safe(name: str) -> str:
    """A speaker name as a folder name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "speaker"
