"""Shared data fixtures: a tiny embedded corpus built once per test session.

`tiny_corpus` is a folder in VCTK 0.92 layout (see `vqaudio.data.synth`): 4 speakers (p225..p228: American F,
RP English M, Scottish F, Caribbean M) x 6 utterances, the first 5 shared by all speakers, 16 kHz FLAC,
with TextGrid alignments. About 1.5 minutes of audio; built in about a second. Tests must not modify it:
copy it (`shutil.copytree`) first if they need to.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_CORPUS_ARGS = {"speakers": 4, "utterances": 6, "shared": 5, "seed": 0}


@pytest.fixture(scope="session")
def tiny_corpus_args() -> dict[str, int]:
    """The `build_corpus` arguments `tiny_corpus` was built with (speakers, utterances, shared, seed)."""
    return dict(TINY_CORPUS_ARGS)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a read-only tiny embedded corpus (4 speakers x 6 utterances, 5 shared, seed 0)."""
    from vqaudio.data.synth import build_corpus

    out = tmp_path_factory.mktemp("tiny_corpus") / "corpus"
    build_corpus(out, **TINY_CORPUS_ARGS, show_progress=False)
    return out
