#!/usr/bin/env bash
# Usage: . utils/lib.sh        (sourced by a recipe)
#
# Helpers shared by every corpus recipe:
#   log MESSAGE...            timestamped message on stderr, prefixed with the calling script
#   stage_wanted N            true when stage N lies in [$stage, $stop_stage]
#   stage_done N NAME         true when stage N's marker $exp_root/.done/N.NAME exists (it is skipped)
#   mark_done N NAME          write that marker (only after the stage's commands all succeeded)
# A stage is re-run from its start when its marker is missing, so an interrupted run resumes at the
# stage it stopped in. Delete a marker (or all of $exp_root/.done/) to redo its stage.

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" 1>&2
}

stage_wanted() { [ "$1" -ge "$stage" ] && [ "$1" -le "$stop_stage" ]; }

stage_done() { [ -f "$exp_root/.done/$1.$2" ]; }

mark_done() { mkdir -p "$exp_root/.done" && date > "$exp_root/.done/$1.$2"; }

# run_stage N NAME FUNCTION: run FUNCTION as stage N unless it is outside the range or already done.
run_stage() {
  local n=$1 name=$2 func=$3
  stage_wanted "$n" || return 0
  if stage_done "$n" "$name"; then
    log "stage $n ($name): done before (marker $exp_root/.done/$n.$name), skipped"
    return 0
  fi
  log "stage $n ($name): start"
  "$func"
  mark_done "$n" "$name"
  log "stage $n ($name): done"
}
