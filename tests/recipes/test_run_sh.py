"""The recipe's control flow: option parsing, stage markers, resuming an interrupted run.

The `vqaudio` command is replaced by a stand-in on PATH that logs its arguments, creates what
later stages read, and fails on request, so these tests check run.sh itself in a second; the
real end-to-end `run.sh --quick true` runs in .ci/run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FAKE_VQAUDIO = r"""#!/usr/bin/env bash
echo "$*" >> "$CALLS"
if [ -n "${FAIL_ON:-}" ] && [[ "$*" == *"$FAIL_ON"* ]]; then echo "fake failure" >&2; exit 3; fi
case "$1 ${2:-}" in
  "data prepare") for s in train dev test test_unseen; do mkdir -p "$4/$s"; echo "sil" > "$4/$s/phone_ali";
                  echo "p225_001 /x/p225_001.flac" > "$4/$s/wav.scp"; echo "p225 p225_001" > "$4/$s/spk2utt"; done ;;
  "data add-voices") mkdir -p "$4/train"
                     printf 'p225 p225_001\nh_kal h_kal_001\nh_slt h_slt_001\n' > "$4/train/spk2utt" ;;
esac
if [ "$1" = evaluate ]; then
  out=$(echo "$*" | sed -n 's/.*--out \([^ ]*\).*/\1/p'); mkdir -p "$out"; echo "| probe | 1 |" > "$out/results.md"
fi
exit 0
"""


@pytest.fixture
def recipe(tmp_path: Path) -> tuple[Path, dict]:
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    # tracked files only: a developer's corpus, data dirs and experiments stay behind
    shutil.copytree(REPO / "egs", tmp_path / "egs", symlinks=True,
                    ignore=shutil.ignore_patterns("exp", "data", "corpus"))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "vqaudio"
    fake.write_text(FAKE_VQAUDIO)
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", CALLS=str(tmp_path / "calls.log"),
               VIRTUAL_ENV="stand-in")
    return tmp_path / "egs" / "vctk" / "run.sh", env


def run(script: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=60)


def calls(env: dict) -> list[str]:
    path = Path(env["CALLS"])
    return path.read_text().splitlines() if path.exists() else []


def test_unknown_option_is_refused(recipe):
    script, env = recipe
    result = run(script, env, "--no-such-option", "1")
    assert result.returncode != 0
    assert "invalid option --no-such-option" in result.stderr
    assert calls(env) == []


def test_bad_boolean_and_stray_argument_are_refused(recipe):
    script, env = recipe
    assert run(script, env, "--quick", "maybe").returncode != 0
    assert run(script, env, "stray").returncode != 0
    assert calls(env) == []


def test_all_stages_run_in_order(recipe):
    script, env = recipe
    result = run(script, env, "--quick", "true")
    assert result.returncode == 0, result.stderr
    commands = [" ".join(c.split()[:2]) for c in calls(env)]
    firsts = [c.split()[0] if not c.startswith("data") else c for c in commands]
    assert firsts[:5] == ["data synth", "data prepare", "data features", "train", "train-prior"]
    assert firsts[5:7] == ["probe", "convert"] and firsts[-1] == "evaluate"
    assert (script.parent / "exp" / "quick_quick" / "RESULTS.md").exists()


def test_interrupted_run_resumes_at_the_stage_it_stopped_in(recipe):
    script, env = recipe
    failed = run(script, dict(env, FAIL_ON="train-prior"), "--quick", "true")
    assert failed.returncode != 0
    first_calls = calls(env)
    assert first_calls[-1].startswith("train-prior")
    resumed = run(script, env, "--quick", "true")
    assert resumed.returncode == 0, resumed.stderr
    second_calls = calls(env)[len(first_calls):]
    assert second_calls[0].startswith("train-prior"), second_calls
    assert not any(c.startswith(("data", "train ")) for c in second_calls)
    assert "done before" in resumed.stderr
    # both runs, options as given, are logged for the model card (local/ship_model.sh)
    logged = (script.parent / "exp" / "quick_quick" / "commands.txt").read_text().splitlines()
    assert len(logged) == 2 and all(line.endswith(" bash run.sh --quick true") for line in logged)


def test_options_with_spaces_are_logged_as_a_shell_would_read_them(recipe):
    script, env = recipe
    result = run(script, env, "--quick", "true", "--stage", "0", "--stop-stage", "0", "--train-set", "a=1 b=2")
    assert result.returncode == 0, result.stderr
    logged = (script.parent / "exp" / "quick_quick" / "commands.txt").read_text()
    assert logged.rstrip().endswith("bash run.sh --quick true --stage 0 --stop-stage 0 --train-set a=1\\ b=2")


def test_stage_range(recipe):
    script, env = recipe
    result = run(script, env, "--quick", "true", "--stage", "0", "--stop-stage", "1")
    assert result.returncode == 0, result.stderr
    assert [c.split()[1] for c in calls(env)] == ["synth", "prepare"]


def test_enrolment_stage_runs_only_when_asked(recipe):
    script, env = recipe
    result = run(script, env, "--quick", "true")
    assert result.returncode == 0, result.stderr
    assert not any(c.startswith("evaluate-enrollment") for c in calls(env))
    result = run(script, env, "--quick", "true", "--enroll", "true")
    assert result.returncode == 0, result.stderr
    enrol = [c for c in calls(env) if c.startswith("evaluate-enrollment")]
    assert len(enrol) == 1 and "--n-enroll 3" in enrol[0]


def test_added_voices_are_trained_on_and_the_corpus_is_evaluated(recipe):
    script, env = recipe
    assert run(script, env, "--quick", "true", "--aux-voices", "x").returncode != 0
    assert calls(env) == []
    result = run(script, env, "--quick", "true", "--aux-voices", "5", "--aux-share", "0.3")
    assert result.returncode == 0, result.stderr
    log = calls(env)
    add = [c for c in log if c.startswith("data add-voices")]
    assert add == ["data add-voices data/quick data/quick_voices --utterances 5 --seed 0 --force"]
    train = next(c for c in log if c.startswith("train "))
    assert train.startswith("train data/quick_voices ") and "train.aux_speakers=h_* --set train.aux_share=0.3" in train
    assert any(c.startswith("data features data/quick_voices") for c in log)
    assert all("_voices" not in c for c in log if c.startswith(("train-prior", "probe", "evaluate")))


def test_real_speech_goes_into_the_human_derived_voices_the_model_has(recipe):
    script, env = recipe
    result = run(script, env, "--quick", "true", "--real-dir", "/real")
    assert result.returncode == 0, result.stderr
    real = [c for c in calls(env) if c.startswith("evaluate-real")]
    assert len(real) == 1 and real[0].startswith("evaluate-real /real data/quick ") and "--targets p225 " in real[0]
    Path(env["CALLS"]).unlink()
    result = run(script, env, "--quick", "true", "--real-dir", "/real", "--aux-voices", "5", "--tag", "v",
                 "--voice-targets", "h_kal h_ked h_slt")
    assert result.returncode == 0, result.stderr
    real = [c for c in calls(env) if c.startswith("evaluate-real")]
    assert len(real) == 2 and real[0].startswith("evaluate-real /real data/quick ")
    # into the named voices the training data has (h_ked is not there), judged among all of its voices
    assert real[1].startswith("evaluate-real /real data/quick_voices ") and "--targets h_kal,h_slt " in real[1]
    assert "/real_voices " in real[1]
    Path(env["CALLS"]).unlink()
    result = run(script, env, "--quick", "true", "--real-dir", "/real", "--aux-voices", "5", "--tag", "w",
                 "--voice-targets", "h_ked h_*")
    assert result.returncode == 0, result.stderr
    assert len([c for c in calls(env) if c.startswith("evaluate-real")]) == 1  # none of them is there: said, not run
    said = result.stderr + result.stdout
    assert "no h_ked in data/quick_voices" in said and "none of --voice-targets" in said


def test_the_default_voice_targets_are_the_english_human_derived_voices():
    from vqaudio.data.voices import VOICES

    lines = (REPO / "egs" / "vctk" / "run.sh").read_text().splitlines()
    line = next(x for x in lines if x.startswith("voice_targets="))
    assert set(line.split('"')[1].split()) == {v.id for v in VOICES if "English" in v.language}
