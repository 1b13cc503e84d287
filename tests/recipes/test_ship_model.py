"""local/ship_model.sh: copies an experiment's model and prior into a package dir and writes its model card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers.tiny_models import tiny_config, tiny_prior

from vqaudio.inference.prior import save_prior
from vqaudio.models import build_vqvae
from vqaudio.models.io import load_model, save_model

SCRIPT = Path(__file__).resolve().parents[2] / "egs" / "vctk" / "local" / "ship_model.sh"
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # its `python`: this one


def ship(exp: Path, dest: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), str(exp), str(dest)], env=ENV, capture_output=True, text=True,
                          timeout=120)


def _experiment(exp: Path, speakers: list[str]) -> str:
    for sub in ("vqvae", "prior", "real_voices"):
        (exp / sub).mkdir(parents=True)
    cfg = tiny_config()
    identity = save_model(exp / "vqvae" / "model.pt", build_vqvae(cfg, len(speakers)), cfg, speakers)
    save_prior(exp / "prior" / "prior.pt", tiny_prior(len(speakers)), speakers, identity)
    for sub in ("vqvae", "prior"):
        (exp / sub / "log.jsonl").write_text(json.dumps({"kind": "train", "step": 7, "elapsed_s": 60}) + "\n")
    (exp / "RESULTS.md").write_text("# vqaudio evaluate\n\n| STOI | 0.5 |\n")
    (exp / "real_voices" / "real.md").write_text("# real\n\n| as target | 90% |\n")
    (exp / "commands.txt").write_text("2026-12-04 04:00:57 bash run.sh --aux-voices 50 --tag voices\n")
    return identity


def test_card_names_the_command_the_human_derived_voices_and_their_packages(tmp_path):
    exp, dest = tmp_path / "exp", tmp_path / "pretrained"
    identity = _experiment(exp, ["p225", "p226", "h_kal"])
    result = ship(exp, dest)
    assert result.returncode == 0, result.stderr
    assert load_model(dest / "vqvae.pt").identity == identity  # the experiment's own weights
    card = (dest / "MODEL_CARD.md").read_text()
    assert "    bash run.sh --aux-voices 50 --tag voices" in card and identity in card
    assert card.startswith("# vqaudio default model: the mini run on the embedded corpus, with voices built from")
    assert "p225, p226 are the corpus's voices" in card and "h_kal are Festival/Flite voices" in card
    assert "`apt-get install festival festvox-kallpc16k`" in card  # h_kal's packages, no other voice's
    assert "Real recordings into the human-derived voices" in card and "| as target | 90% |" in card
    assert "# real\n" not in card  # each section's own title gives way to the card's


def test_card_of_a_model_without_them_names_no_packages(tmp_path):
    exp, dest = tmp_path / "exp", tmp_path / "pretrained"
    _experiment(exp, ["p225", "p226"])
    result = ship(exp, dest)
    assert result.returncode == 0, result.stderr
    card = (dest / "MODEL_CARD.md").read_text()
    assert card.startswith("# vqaudio default model: the mini run on the embedded corpus\n")
    assert "p225, p226 (the embedded corpus: synthetic eSpeak NG voices, not people)" in card
    assert "apt-get" not in card


def test_an_unfinished_experiment_is_refused_in_one_line(tmp_path):
    exp = tmp_path / "exp"
    _experiment(exp, ["p225", "p226"])
    (exp / "prior" / "prior.pt").unlink()
    result = ship(exp, tmp_path / "pretrained")
    assert result.returncode == 1 and "prior.pt is missing" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "pretrained").exists()
