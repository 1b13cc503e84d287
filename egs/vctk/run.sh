#!/usr/bin/env bash
# VQ-VAE on VCTK (or, by default, on vqaudio's embedded eSpeak NG corpus), from raw corpus to results.
#
#   bash run.sh                          # the documented mini run on the embedded corpus (~44-47 min, 2 CPU cores)
#   bash run.sh --quick true             # every stage on a tiny corpus with a few steps (minutes)
#   bash run.sh --vctk-root /data/VCTK-Corpus-0.92 --conf conf/paper.yaml   # real VCTK
#   bash run.sh --stage 4 --stop-stage 4 # one stage
#
# Stages (each leaves a marker in $exp_root/.done/; re-running resumes at the first stage without one):
#   0 corpus      VCTK from --vctk-root, or downloaded with --download true, else the embedded corpus
#   1 data        Kaldi data dirs data/{train,dev,test,test_unseen}; phone alignments (corpus TextGrids,
#                 --alignments DIR from MFA, or PocketSphinx forced alignment)
#   2 train       WORLD features (vocoder decoder) and VQ-VAE training ($train_cmd: local, torchrun, or Slurm)
#   3 prior       code extraction and latent WaveNet prior training
#   4 probe       phoneme probe (the paper's code -> phone mapping, frame accuracy vs chance)
#   5 convert     conversion of test utterances to the target speakers (WAVs to listen to)
#   6 evaluate    codec, voice-conversion and ABX evaluation; the results table
#   7 enroll      (with --enroll true) enrol each held-out speaker from --num-enroll utterances, score conversions
#   8 real        (with --real-dir DIR) real recordings converted into the model's voices and scored; with
#                 --aux-voices, into the English human-derived voices (--voice-targets) too
set -euo pipefail

# ---- defaults (every one can be set as --name value) ----
stage=0
stop_stage=100
quick=false             # true: tiny corpus, the `quick` config, a few steps per stage
vctk_root=""            # an unpacked VCTK 0.92 (wav48_silence_trimmed/, txt/, speaker-info.txt)
download=false          # true: download VCTK 0.92 (~11 GB) into $corpus_dir, checksum verified
alignments=""           # TextGrids made elsewhere (MFA output for VCTK); default: corpus's own or PocketSphinx
corpus_dir=corpus/embedded
num_speakers=12         # embedded corpus size
num_utts=80             # utterances per speaker (embedded corpus)
seed=0
conf=conf/mini.yaml     # VQ-VAE and prior config (a preset name like `mini` works too)
train_set=""            # options passed to training, e.g. "train.max_minutes=30 model.vq.codebook_size=256"
prior_set=""            # the same for the prior
targets=""              # target speakers for conversion and evaluation (training speakers); "": the first 3
num_convert=4           # test utterances converted to each target in stage 5
max_eval_utts=24        # test utterances scored in stage 6
enroll=false            # true: stage 7, enrolment of the held-out (test_unseen) speakers as new target voices
num_enroll=10           # utterances of each held-out speaker used to enrol it (stage 7)
real_dir=""             # real recordings, one folder per speaker with .txt transcripts (e.g.
                        # ../../../shared/realspeech/fsdd): stage 8 converts them into the model's voices and scores
                        # speaker-ID, PocketSphinx word accuracy and the probe (vqaudio evaluate-real)
real_per_speaker=16     # real recordings of each speaker converted (into each target) and scored in stage 8
aux_voices=0            # > 0: stage 1 adds voices built from human recordings (Festival/Flite, Debian packages:
                        # vqaudio data add-voices), each reading this many train sentences, into data/<corpus>_voices,
                        # and stage 2 trains on that with them in an --aux-share of the windows; the rest evaluate on
                        # data/<corpus>
aux_share=0.25          # the share of training windows the added voices get (train.aux_share)
voice_targets="h_kal h_ked h_rms h_awb h_slt"  # with --aux-voices: stage 8 also converts into these (the English
                        # human-derived voices, exact names; those in the training data), judged among all its voices
tag=""                  # experiment name suffix
help_message="Usage: $0 [--option value ...]; options: --stage --stop-stage --quick --vctk-root --download
  --alignments --corpus-dir --num-speakers --num-utts --seed --conf --train-set --prior-set --targets
  --num-convert --max-eval-utts --enroll --num-enroll --real-dir --real-per-speaker --aux-voices --aux-share
  --voice-targets --tag (see the defaults at the top of $0)"

invocation="bash run.sh"  # as given (options included), recorded in $exp_root/commands.txt
if [ $# -gt 0 ]; then invocation+=$(printf ' %q' "$@"); fi
cd "$(dirname "$0")"
. ./path.sh
. ./cmd.sh
. utils/lib.sh
. utils/parse_options.sh

if [ $# -ne 0 ]; then
  echo "$0: unexpected argument(s): $*" 1>&2; echo "$help_message" 1>&2; exit 1
fi
if [ "$quick" = true ]; then
  conf=conf/quick.yaml; num_speakers=4; num_utts=14; num_convert=1; max_eval_utts=4; num_enroll=3; real_per_speaker=2
  corpus_dir=corpus/quick
fi
if [ -n "$vctk_root" ]; then corpus_dir=$vctk_root; fi
data=data/$(basename "$corpus_dir")
train_data=$data
aux_set=()
case $aux_voices in
  ''|*[!0-9]*) echo "$0: --aux-voices must be a whole number of sentences, got '$aux_voices'" 1>&2; exit 1 ;;
esac
if [ "$aux_voices" -gt 0 ]; then
  train_data=${data}_voices
  aux_set=(--set "train.aux_speakers=h_*" --set "train.aux_share=$aux_share")
fi
exp_root=exp/$(basename "$corpus_dir")_$(basename "${conf%.yaml}")${tag:+_$tag}
vqvae_dir=$exp_root/vqvae
prior_dir=$exp_root/prior
model=$vqvae_dir/model.pt
prior=$prior_dir/prior.pt
mkdir -p "$exp_root"
echo "$(date '+%Y-%m-%d %H:%M:%S') $invocation" >> "$exp_root/commands.txt"  # every run of this experiment
log "corpus $corpus_dir, data $data, experiment $exp_root"

corpus() {
  if [ -n "$vctk_root" ]; then
    local/check_vctk.sh "$vctk_root"
  elif [ "$download" = true ]; then
    local/download_vctk.sh "$corpus_dir"
  else
    $cmd data synth "$corpus_dir" --speakers "$num_speakers" --utterances "$num_utts" --seed "$seed"
  fi
}

data_prep() {
  $cmd data prepare "$corpus_dir" "$data" --seed "$seed" ${alignments:+--alignments "$alignments"}
  local split
  for split in train dev test test_unseen; do
    if [ -d "$data/$split" ] && [ ! -s "$data/$split/phone_ali" ]; then
      log "no phone alignments for $data/$split: forced alignment with PocketSphinx"
      $cmd data align "$data/$split"
    fi
  done
  if [ "$aux_voices" -gt 0 ]; then
    $cmd data add-voices "$data" "$train_data" --utterances "$aux_voices" --seed "$seed" --force
  fi
}

train() {
  # WORLD features of train and dev for the vocoder decoder (cached in $train_data/<split>/world; a no-op otherwise)
  # shellcheck disable=SC2086
  $cmd data features "$train_data" --config "$conf" $(for s in $train_set; do echo --set "$s"; done)
  # shellcheck disable=SC2086
  $train_cmd train "$train_data" "$vqvae_dir" --config "$conf" "${aux_set[@]}" \
    $(for s in $train_set; do echo --set "$s"; done)
}

prior_train() {
  # shellcheck disable=SC2086
  $train_cmd train-prior "$data" "$prior_dir" --model "$model" --config "$conf" \
    $(for s in $prior_set; do echo --set "$s"; done)
}

probe() {
  # test: the training speakers' held-out utterances; test_unseen: the held-out speakers
  $cmd probe "$data" --model "$model" --split test --split test_unseen --out "$exp_root/probe.json"
}

convert() {
  local spk wavs
  pick_targets
  wavs=$(head -n "$num_convert" "$data/test/wav.scp" | cut -d' ' -f2-)
  for spk in $targets; do
    # shellcheck disable=SC2086
    $cmd convert $wavs --out-dir "$exp_root/converted/$spk" --target-speaker "$spk" --model "$model" --seed "$seed"
  done
}

evaluate() {
  pick_targets
  $cmd evaluate "$data" --model "$model" --prior "$prior" --out "$exp_root/eval" \
    --targets "$(echo $targets | tr ' ' ',')" --max-utts "$max_eval_utts" --seed "$seed"
  cp "$exp_root/eval/results.md" "$exp_root/RESULTS.md"
  log "results: $exp_root/RESULTS.md"
  cat "$exp_root/RESULTS.md"
}

enroll_voices() {
  $cmd evaluate-enrollment "$data" --model "$model" --out "$exp_root/enroll" --n-enroll "$num_enroll" \
    --max-utts "$max_eval_utts" --seed "$seed"
  log "enrolment results: $exp_root/enroll/results.md"
}

real_speech() {
  pick_targets
  $cmd evaluate-real "$real_dir" "$data" --model "$model" --out "$exp_root/real" \
    --targets "$(echo $targets | tr ' ' ',')" --convert-per-speaker "$real_per_speaker" --seed "$seed"
  log "real-speech results: $exp_root/real/real.md"
  [ "$aux_voices" -gt 0 ] || return 0
  local voices=() spk names  # the human-derived voices named in --voice-targets that the training data has
  if [ ! -s "$train_data/train/spk2utt" ]; then
    echo "$0: $train_data/train/spk2utt is missing (stage 1 makes it with --aux-voices)" 1>&2; exit 1
  fi
  names=$(cut -d' ' -f1 "$train_data/train/spk2utt")
  for spk in $voice_targets; do
    if grep -Fxq -- "$spk" <<< "$names"; then voices+=("$spk"); else log "--voice-targets: no $spk in $train_data"; fi
  done
  if [ ${#voices[@]} -eq 0 ]; then
    log "none of --voice-targets ($voice_targets) is in $train_data: no conversions into human-derived voices"
    return 0
  fi
  # judged among every voice the model trained on ($train_data's train split), the eSpeak ones included
  $cmd evaluate-real "$real_dir" "$train_data" --model "$model" --out "$exp_root/real_voices" \
    --targets "$(IFS=,; echo "${voices[*]}")" --convert-per-speaker "$real_per_speaker" --seed "$seed"
  log "real-speech results into the human-derived voices: $exp_root/real_voices/real.md"
}

pick_targets() {  # the first 3 training speakers, unless --targets named some
  [ -n "$targets" ] || targets=$(cut -d' ' -f1 "$data/train/spk2utt" | head -n 3 | tr '\n' ' ')
}

run_stage 0 corpus corpus
run_stage 1 data data_prep
run_stage 2 train train
run_stage 3 prior prior_train
run_stage 4 probe probe
run_stage 5 convert convert
run_stage 6 evaluate evaluate
if [ "$enroll" = true ]; then run_stage 7 enroll enroll_voices; fi
if [ -n "$real_dir" ]; then run_stage 8 real real_speech; fi
log "all stages done; results in $exp_root/RESULTS.md"
