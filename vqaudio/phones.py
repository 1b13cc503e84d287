"""The 41-phone inventory used everywhere in vqaudio: 39 ARPAbet phonemes plus `sil` and `spn`.

Frame-level phone labels (the `phone_ali` file of a data dir) use a 10 ms frame shift.
"""

from __future__ import annotations

import numpy as np

ARPABET: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY",
    "F", "G", "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P",
    "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
PHONES: tuple[str, ...] = ARPABET + ("sil", "spn")
PHONE_TO_ID: dict[str, int] = {p: i for i, p in enumerate(PHONES)}
FRAME_SHIFT: float = 0.01  # seconds per label frame in `phone_ali`
SILENCE = "sil"
SPOKEN_NOISE = "spn"

assert len(ARPABET) == 39 and len(PHONES) == 41


def normalise_phone(label: str) -> str:
    """Map an aligner's label (`AH0`, `ah`, `SIL`, `sp`, ``) onto the 41-phone inventory.

    Stress digits are dropped; silence-like labels become `sil`; anything unknown
    becomes `spn` (spoken noise), as Kaldi does for out-of-inventory phones.
    """
    stripped = label.strip()
    if stripped.lower() in ("", "sil", "sp", "<sil>", "silence", "pau", "(null)"):
        return SILENCE
    base = stripped.rstrip("012").upper()
    if base in PHONE_TO_ID and base not in ("SIL", "SPN"):
        return base
    return SPOKEN_NOISE


def phone_ids(labels: list[str]) -> np.ndarray:
    """Label strings -> int ids [n] in the 41-phone inventory (unknown labels -> spn)."""
    spn = PHONE_TO_ID[SPOKEN_NOISE]
    return np.array([PHONE_TO_ID.get(p, spn) for p in labels], dtype=np.int64)
