"""A small ctypes binding of libespeak-ng (from the `espeakng-loader` wheel): audio plus phoneme events.

eSpeak NG is driven in AUDIO_OUTPUT_SYNCHRONOUS mode with phoneme events enabled, so one call of
`synthesize` returns the whole waveform and, for each phoneme, its eSpeak mnemonic and start sample.
The library is process-global (one voice, one callback) and keeps state between calls in static variables
no API resets, so it runs in a helper process (`python -m vqaudio.data.espeak --serve`) that initialises it
once and forks a fresh child per call: the same arguments always give the same samples. Calls from threads
are serialised by a module lock. Cost: about 8 ms per short sentence, 0.5 s to start the helper.

    from vqaudio.data.espeak import synthesize
    result = synthesize("the boy reads a book.", voice="en-us+f3", pitch=60, rate=170)
    result.audio        # float32 [T] at result.sample_rate (22050 Hz)
    result.phonemes     # [PhonemeEvent(sample=..., name="D"), ...]

Struct layouts follow espeak-ng/speak_lib.h (API revision 12) on x86-64.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import pickle
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from vqaudio.errors import VQAudioError

# speak_lib.h: espeak_AUDIO_OUTPUT, espeak_EVENT_TYPE, espeak_PARAMETER, option and flag bits.
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_DONT_EXIT = 0x8000
EVENT_LIST_TERMINATED, EVENT_WORD, EVENT_SENTENCE, EVENT_END, EVENT_MSG_TERMINATED, EVENT_PHONEME = 0, 1, 2, 5, 6, 7
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE, PARAM_WORDGAP = 1, 2, 3, 4, 7
POS_CHARACTER = 1
CHARS_UTF8 = 1
ENDPAUSE = 0x1000


class EspeakError(VQAudioError):
    """libespeak-ng could not be loaded, initialised, or given the requested voice."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """espeak_EVENT: 6 ints (24 bytes), user_data pointer at offset 24, 8-byte id union at 32; 40 bytes."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


assert ctypes.sizeof(_Event) == 40 and _Event.id.offset == 32

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class PhonemeEvent:
    """One eSpeak phoneme: its mnemonic (`aI`, `tS`, `_:` for a pause) and start in samples."""

    sample: int
    name: str
    audio_ms: int = 0  # eSpeak's own millisecond position (audio_position)


@dataclass(frozen=True)
class WordEvent:
    """Start of a word: character span [text_start, text_start + length) of the input (0-based) and its sample."""

    sample: int
    text_start: int
    length: int


@dataclass
class Synthesis:
    """Audio and events of one `synthesize` call."""

    audio: np.ndarray  # float32 [T], full scale 1.0
    sample_rate: int  # Hz (22050 for eSpeak NG)
    phonemes: list[PhonemeEvent] = field(default_factory=list)
    words: list[WordEvent] = field(default_factory=list)
    end_sample: int = 0  # sample of the last espeakEVENT_END (end of the final clause)


class _Engine:
    """The loaded library, its sample rate, and the buffers the callback fills."""

    def __init__(self) -> None:
        try:
            import espeakng_loader

            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data_path = espeakng_loader.get_data_path()
        except (ImportError, OSError, RuntimeError) as e:
            raise EspeakError(f"cannot load libespeak-ng from espeakng-loader ({e})") from None
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        # eSpeak's path argument is the folder that *contains* espeak-ng-data.
        parent = data_path.rsplit("/espeak-ng-data", 1)[0].encode()
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, parent,
                                     INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed with data at {data_path}")
        self.lib, self.sample_rate = lib, rate
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[int, int, int, int, int, bytes]] = []
        self.callback = _CALLBACK(self._on_audio)  # keep a reference: the library holds the pointer
        lib.espeak_SetSynthCallback(self.callback)

    def _on_audio(self, wav, count: int, events) -> int:
        if count > 0 and wav:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            ev = events[i]
            name = bytes(ev.id.string).split(b"\0", 1)[0] if ev.type == EVENT_PHONEME else b""
            self.events.append((ev.type, ev.sample, ev.audio_position, ev.text_position, ev.length, name))
            i += 1
        return 0


_libc = ctypes.CDLL(None)


def _synthesize_here(eng: _Engine, request: tuple) -> tuple:
    """Run one synthesis in this process: (text, voice, params...) -> (int16 audio bytes, events)."""
    text, voice, pitch, pitch_range, rate, word_gap, volume = request
    if eng.lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise EspeakError(f"eSpeak NG has no voice '{voice}'")
    for param, value in ((PARAM_PITCH, pitch), (PARAM_RANGE, pitch_range), (PARAM_RATE, rate),
                         (PARAM_WORDGAP, word_gap), (PARAM_VOLUME, volume)):
        eng.lib.espeak_SetParameter(param, int(value), 0)
    eng.chunks, eng.events = [], []
    eng.lib.espeak_ng_SetRandSeed(0)  # eSpeak's own generator (noise), seeded from the clock at start-up
    _libc.srand(0)  # and libc's rand(), which some code paths still call
    data = text.encode("utf-8") + b"\0"
    buf = ctypes.create_string_buffer(data, len(data))
    err = eng.lib.espeak_Synth(buf, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
    if err != 0:
        raise EspeakError(f"espeak_Synth failed (error {err}) for {text[:40]!r}")
    eng.lib.espeak_Synchronize()
    audio = np.concatenate(eng.chunks) if eng.chunks else np.zeros(0, np.int16)
    return audio.astype(np.int16).tobytes(), eng.events


# --------------------------------------------------------------------------- the synthesis server
# libespeak-ng keeps state between calls in static variables that no API resets (the pitch flutter
# index, wave phase, echo buffer...), so the same text and voice give slightly different audio
# depending on what was spoken before. For byte-identical corpora every synthesis starts from the
# same pristine state: a helper process initialises the library once, never speaks itself, and
# forks a child per request; the child speaks, sends the result back and exits.


def _send(fd: int, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    os.write(fd, struct.pack("<Q", len(data)))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _receive(fd: int) -> object:
    head = _read_exact(fd, 8)
    return pickle.loads(_read_exact(fd, struct.unpack("<Q", head)[0]))


def _read_exact(fd: int, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("eSpeak helper closed its pipe")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _serve() -> None:
    """Helper main loop (`python -m vqaudio.data.espeak --serve`): protocol on fds 0/1, C output to stderr."""
    fd_in, fd_out = os.dup(0), os.dup(1)
    os.dup2(2, 1)  # anything the C library prints must not corrupt the protocol
    try:
        eng = _Engine()
        eng.lib.espeak_SetVoiceByName(b"en")  # load the English dictionary once, before any fork
        _send(fd_out, ("ready", eng.sample_rate, _version(eng)))
    except EspeakError as e:
        _send(fd_out, ("error", str(e)))
        return
    while True:
        try:
            request = _receive(fd_in)
        except EOFError:
            return
        pid = os.fork()
        if pid == 0:  # child: speak from the pristine state, answer, exit without cleanup
            try:
                reply: tuple = ("ok", *_synthesize_here(eng, request))
            except EspeakError as e:
                reply = ("error", str(e))
            _send(fd_out, reply)
            os._exit(0)
        os.waitpid(pid, 0)


class _Client:
    """The parent's handle on the helper process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "vqaudio.data.espeak", "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        reply = self.call(None)
        if reply[0] != "ready":
            raise EspeakError(reply[1])
        self.sample_rate, self.version = reply[1], reply[2]
        self.owner = os.getpid()
        atexit.register(self.close)

    def call(self, request: tuple | None) -> tuple:
        try:
            if request is not None:
                _send(self.proc.stdin.fileno(), request)
            return _receive(self.proc.stdout.fileno())  # type: ignore[return-value]
        except (EOFError, BrokenPipeError) as e:
            raise EspeakError(f"the eSpeak NG helper process failed ({e})") from None

    def close(self) -> None:
        if self.proc.poll() is None and self.owner == os.getpid():
            self.proc.stdin.close()
            self.proc.wait(timeout=10)


_lock = threading.Lock()
_client: _Client | None = None


def _get_client() -> _Client:
    global _client
    if _client is None or _client.proc.poll() is not None or _client.owner != os.getpid():
        _client = _Client()  # first use, helper died, or we are a forked child that must not share its pipes
    return _client


def sample_rate() -> int:
    """eSpeak NG's output rate in Hz (starts the helper if needed)."""
    with _lock:
        return _get_client().sample_rate


def synthesize(text: str, voice: str = "en-us", pitch: int = 50, pitch_range: int = 50, rate: int = 175,
               word_gap: int = 0, volume: int = 100) -> Synthesis:
    """Speak `text` with an eSpeak voice (`lang` or `lang+variant`, e.g. `en-gb-scotland+m3`).

    Args:
        pitch: base pitch 0..100 (50 = the voice's normal); pitch_range: 0 (monotone)..100 (50 = normal).
        rate: words per minute, 80..450; word_gap: extra pause between words in units of 10 ms.
        volume: 0..200, 100 = eSpeak's normal (which clips some voices' loudest vowels).

    Returns a `Synthesis` with float32 audio and phoneme / word events in samples. Deterministic: the same
    arguments give the same result whatever was spoken before (see the synthesis server above).
    """
    _check_variant(voice)
    with _lock:
        client = _get_client()
        reply = client.call((text, voice, pitch, pitch_range, rate, word_gap, volume))
    if reply[0] != "ok":
        raise EspeakError(reply[1])
    audio = np.frombuffer(reply[1], dtype=np.int16).astype(np.float32) / 32768.0
    return _collect(audio, client.sample_rate, reply[2], text)


@lru_cache(maxsize=1)
def variants() -> list[str]:
    """Voice variants shipped in espeak-ng-data/voices/!v (`m1`..`m8`, `f1`..`f5`, `klatt`..., named ones)."""
    import espeakng_loader

    folder = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def _check_variant(voice: str) -> None:
    """eSpeak silently ignores an unknown `+variant`; refuse it instead."""
    if "+" in voice:
        variant = voice.split("+", 1)[1]
        if variant not in variants():
            raise EspeakError(f"eSpeak NG has no voice variant '{variant}' (voices/!v has {len(variants())})")


def _collect(audio: np.ndarray, sr: int, events: list, text: str) -> Synthesis:
    """Turn raw callback events into a `Synthesis` (text positions converted from 1-based chars)."""
    out = Synthesis(audio=audio, sample_rate=sr, end_sample=len(audio))
    for kind, sample, ms, text_pos, length, name in events:
        if kind == EVENT_PHONEME:
            out.phonemes.append(PhonemeEvent(sample=sample, name=name.decode("utf-8", "replace"), audio_ms=ms))
        elif kind == EVENT_WORD:
            out.words.append(WordEvent(sample=sample, text_start=max(0, text_pos - 1), length=length))
        elif kind == EVENT_END:
            out.end_sample = sample
    return out


def version() -> str:
    """eSpeak NG's version string, e.g. `1.52.0`."""
    with _lock:
        return _get_client().version


def _version(eng: _Engine) -> str:
    eng.lib.espeak_Info.restype = ctypes.c_char_p
    eng.lib.espeak_Info.argtypes = [ctypes.c_void_p]
    return (eng.lib.espeak_Info(None) or b"unknown").decode()


# --------------------------------------------------------------------------- English phoneme labels

# eSpeak NG's English phoneme mnemonics (phsource/ph_english*, all accents it ships) -> ARPAbet, following
# CMUdict's conventions (`3` and `3:` are ER, `i` of "happy" is IY, `A@` of "car" is AA R). A pair splits the
# phoneme's time between two labels; `None` merges the phoneme into the one before (`;`, eSpeak's linking
# glide between vowels). Stress marks are stripped before the look-up.
ARPABET_OF: dict[str, tuple[str, ...] | None] = {
    # vowels
    "@": ("AH",), "@2": ("AH",), "@5": ("AH",), "@-": ("AH",), "a#": ("AH",), "V": ("AH",), "VR": ("ER",),
    "3": ("ER",), "3:": ("ER",), "IR": ("ER",), "ER": ("ER",), "@L": ("AH", "L"),
    "a": ("AE",), "aa": ("AE",), "a2": ("AE",), "A": ("AA",), "A:": ("AA",), "A#": ("AA",), "0": ("AA",),
    "0#": ("AA",), "A@": ("AA", "R"), "E": ("EH",), "e": ("EY",), "e:": ("EY",), "e@": ("EH", "R"),
    "eI": ("EY",), "eI@": ("EY", "AH"), "I": ("IH",), "I#": ("IH",), "I2": ("IH",), "I@": ("IH", "R"),
    "i": ("IY",), "i:": ("IY",), "i@": ("IY", "AH"), "i@3": ("IH", "R"), "O": ("AO",), "O:": ("AO",),
    "O2": ("AO",), "O@": ("AO", "R"), "o@": ("AO", "R"), "o": ("OW",), "o:": ("OW",), "oU": ("OW",),
    "oU#": ("OW",), "oU@": ("OW", "ER"), "OI": ("OY",), "U": ("UH",), "U@": ("UH", "R"), "u": ("UW",),
    "u:": ("UW",), "u:@": ("UW", "ER"), "ju:": ("Y", "UW"), "aI": ("AY",), "aI2": ("AY",), "aI@": ("AY", "ER"),
    "aI3": ("AY", "ER"), "aU": ("AW",), "aU@": ("AW", "ER"),
    # consonants
    "p": ("P",), "b": ("B",), "t": ("T",), "t#": ("T",), "t2": ("T",), "t[": ("T",), "?": ("T",),
    "d": ("D",), "d#": ("D",), "d[": ("D",), "k": ("K",), "g": ("G",), "x": ("HH",), "f": ("F",),
    "v": ("V",), "T": ("TH",), "D": ("DH",), "s": ("S",), "z": ("Z",), "z/": ("Z",), "S": ("SH",),
    "Z": ("ZH",), "tS": ("CH",), "dZ": ("JH",), "h": ("HH",), "m": ("M",), "n": ("N",), "N": ("NG",),
    "m-": ("AH", "M"), "n-": ("AH", "N"), "l": ("L",), "l/": ("L",), "L": ("L",), "r": ("R",), "r-": ("R",),
    "w": ("W",), "w#": ("W",), "j": ("Y",), ";": None,
    # pauses
    "_": ("sil",), "_:": ("sil",), "_!": ("sil",), "_|": ("sil",), "_^_": ("sil",), "": ("sil",),
}
STRESS_MARKS = "'\",%=!"


def to_arpabet(name: str) -> tuple[str, ...] | None:
    """ARPAbet labels for an eSpeak phoneme name (stress marks dropped); unknown names give `("spn",)`."""
    base = name.lstrip(STRESS_MARKS)
    if base in ARPABET_OF:
        return ARPABET_OF[base]
    return ("spn",)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
