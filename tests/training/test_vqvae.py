"""The VQ-VAE task: auxiliary speakers (train.aux_speakers) drawn in a fixed share of the training windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.train_fixtures import make_data_root, quick_config

from vqaudio.errors import ConfigError
from vqaudio.training.vqvae import vqvae_task


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_data_root(tmp_path_factory.mktemp("aux") / "data", speakers=("h_kal", "h_slt", "p225", "p226"))


def test_the_auxiliary_speakers_get_their_share_of_windows(data: Path) -> None:
    task = vqvae_task(data, quick_config("train.aux_speakers=h_*", "train.aux_share=0.2"), show_progress=False)
    aux = np.isin(task.train_data.speaker_index, [task.speakers.index("h_kal"), task.speakers.index("h_slt")])
    assert task.train_data.weights[aux].sum() == pytest.approx(0.2)
    plain = vqvae_task(data, quick_config(), show_progress=False)  # by length: the four speakers alike here
    assert plain.train_data.weights[aux].sum() == pytest.approx(0.5)


@pytest.mark.parametrize("overrides", [("train.aux_speakers=x_*", "train.aux_share=0.2"),
                                       ("train.aux_speakers=*", "train.aux_share=0.2"),
                                       ("train.aux_share=0.2",),
                                       ("train.aux_speakers=h_*", "train.aux_share=1.5")])
def test_a_share_without_a_proper_group_is_refused(data: Path, overrides: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError, match="aux_share"):
        vqvae_task(data, quick_config(*overrides), show_progress=False)
