"""Shared data fixtures: a tiny embedded corpus built once per test session.

`tiny_corpus` is a folder in VCTK 0.92 layout (see `vqaudio.data.synth`): 4 speakers (p225..p228: American F,
RP English M, Scottish F, Caribbean M) x 6 utterances, the first 5 shared by all speakers, 16 kHz FLAC,
with TextGrid alignments. About 1.5 minutes of audio; built in about a second. Tests must not modify it:
copy it (`shutil.copytree`) first if they need to.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_SPEAKERS, TINY_UTTERANCES, TINY_SHARED, TINY_SEED = 4, 6, 5, 0


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a read-only tiny embedded corpus (4 speakers x 6 utterances, seed 0)."""
    from vqaudio.data.synth import build_corpus

    out = tmp_path_factory.mktemp("tiny_corpus") / "corpus"
    build_corpus(out, speakers=TINY_SPEAKERS, utterances=TINY_UTTERANCES, shared=TINY_SHARED, seed=TINY_SEED,
                 show_progress=False)
    return out
