#!/usr/bin/env bash
# Usage: local/ship_model.sh EXP_DIR [PACKAGE_DIR]
#   e.g. local/ship_model.sh exp/embedded_mini          (from egs/vctk, after a full run.sh)
#
# Copies a finished experiment's VQ-VAE (EXP_DIR/vqvae/model.pt) and latent prior (EXP_DIR/prior/prior.pt)
# into the package as the default model (PACKAGE_DIR, default ../../vqaudio/pretrained: vqvae.pt, prior.pt)
# and writes MODEL_CARD.md beside them: identities, sizes, training steps and time (from the logs), the
# run.sh commands that made them (EXP_DIR/commands.txt, with their options), and the experiment's results.
# The files are copied unchanged (fp32), so the shipped model is exactly the one the results were measured on
# and the prior still pairs with it.
# Refuses files over 15 MB together (the package budget).
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' 1>&2; exit 1
fi
exp=$1
dest=${2:-../../vqaudio/pretrained}
model=$exp/vqvae/model.pt
prior=$exp/prior/prior.pt
for f in "$model" "$prior" "$exp/RESULTS.md" "$exp/vqvae/log.jsonl" "$exp/prior/log.jsonl"; do
  [ -s "$f" ] || { echo "$0: $f is missing: run the recipe to the end first" 1>&2; exit 1; }
done
total=$(( $(stat -c %s "$model") + $(stat -c %s "$prior") ))
if [ "$total" -gt 15000000 ]; then
  echo "$0: model + prior are $total bytes, over the 15 MB budget (vqaudio export --half shrinks the VQ-VAE)" 1>&2
  exit 1
fi

mkdir -p "$dest"
cp "$model" "$dest/vqvae.pt.tmp" && mv "$dest/vqvae.pt.tmp" "$dest/vqvae.pt"
cp "$prior" "$dest/prior.pt.tmp" && mv "$dest/prior.pt.tmp" "$dest/prior.pt"

python - "$exp" "$dest" <<'EOF'
import sys
from pathlib import Path

from vqaudio.training.checkpoint import last_records
from vqaudio.models.io import load_model
from vqaudio.inference.prior import load_prior
from vqaudio.data.voices import VOICES, apt_packages

exp, dest = Path(sys.argv[1]), Path(sys.argv[2])
VOICE_IDS = {voice.id for voice in VOICES}

model, prior = load_model(dest / "vqvae.pt"), load_prior(dest / "prior.pt")
vq_train, vq_valid = last_records(exp / "vqvae" / "log.jsonl")
pr_train, _ = last_records(exp / "prior" / "log.jsonl")
kind = model.model.kind
decoder = ("frame-level WaveNet decoder predicting WORLD vocoder parameters (WORLD synthesis)" if kind == "vocoder"
           else "sample-level WaveNet decoder (mu-law)")
valid = (f"dev NLL {vq_valid.get('nll', float('nan')):.3f} nats/sample" if kind == "wavenet"
         else f"dev feature loss {vq_valid.get('recon', float('nan')):.3f}")
commands = exp / "commands.txt"  # run.sh's invocations of this experiment: "DATE TIME bash run.sh OPTIONS"
if commands.exists():
    runs = [line.split(" ", 2)[2] for line in commands.read_text().splitlines() if line.count(" ") >= 2]
    logged = f"the experiment's runs as logged in `{exp}/commands.txt`"
else:
    runs = ["bash run.sh"]
    logged = f"`{exp}` has no commands.txt (made before run.sh logged its options): the default run"
made_by = "\n".join(f"    {run}" for run in runs)
human = [s for s in model.speakers if s in VOICE_IDS]
# the Debian packages of exactly these voices (add-voices renders every installed one: more would make another model)
packages = " ".join(apt_packages([v for v in VOICES if v.id in human]))
corpus_voices = [s for s in model.speakers if s not in VOICE_IDS]
if human:
    voices = (f"{', '.join(corpus_voices)} are the corpus's voices (the embedded corpus: synthetic eSpeak NG "
              f"voices, not people); {', '.join(human)} are Festival/Flite voices built from recordings of "
              f"people (`vqaudio data add-voices`), added for training and decoder voices too. Remaking the model "
              f"needs them installed (Debian, as root: `apt-get install {packages}`); using it "
              f"does not")
else:
    voices = f"{', '.join(model.speakers)} (the embedded corpus: synthetic eSpeak NG voices, not people)"
heading = "the mini run on the embedded corpus" + (", with voices built from human recordings" if human else "")
card = f"""# vqaudio default model: {heading}

Made by the recipe (`egs/vctk`), {logged}:

{made_by}

then `bash local/ship_model.sh {exp}`. The files are the experiment's own, unchanged (fp32).

| file | what | size | identity | training |
|---|---|---|---|---|
| vqvae.pt | VQ-VAE: encoder, K={model.config.vq.codebook_size} x D={model.config.vq.dim} codebook, \
{model.sample_rate // model.hop_length} codes/s, speaker-conditioned {decoder} | \
{(dest / 'vqvae.pt').stat().st_size / 1e6:.1f} MB | {model.identity} | {vq_train.get('step')} steps, \
{vq_train.get('elapsed_s', 0) / 60:.0f} min; {valid} |
| prior.pt | latent WaveNet prior over the codes | {(dest / 'prior.pt').stat().st_size / 1e6:.1f} MB | \
{prior.identity} (for VQ-VAE {prior.model_identity}) | {pr_train.get('step')} steps, \
{pr_train.get('elapsed_s', 0) / 60:.0f} min |

Speakers (decoder voices): {voices}. Real speech enters only as input: how well the model reconstructs and
converts it is what the results below measured (speaker id of conversions, STOI, PESQ; real recordings in
stage 8 when it ran): read them first.

## The experiment's results (`{exp}/RESULTS.md`)

{(exp / 'RESULTS.md').read_text()}
"""
extra = [("Enrolled voices (`{}/enroll/results.md`)", exp / "enroll" / "results.md"),
         ("Real recordings in (`{}/real/real.md`)", exp / "real" / "real.md"),
         ("Real recordings into the human-derived voices (`{}/real_voices/real.md`)", exp / "real_voices" / "real.md")]
for title, path in extra:  # stages 7 and 8 of the recipe, when they ran
    if path.exists():
        body = path.read_text().split("\n", 1)[1] if path.read_text().startswith("# ") else path.read_text()
        card += f"\n## {title.format(exp)}\n{body}"
(dest / "MODEL_CARD.md").write_text(card)
print(f"shipped {dest}/vqvae.pt ({model.identity}), {dest}/prior.pt ({prior.identity}), {dest}/MODEL_CARD.md")
EOF
