#!/usr/bin/env bash
# Usage: local/check_vctk.sh VCTK_ROOT
#
# Checks that VCTK_ROOT looks like an unpacked VCTK 0.92: speaker-info.txt, txt/ and
# wav48_silence_trimmed/ with per-speaker folders of *_mic1.flac files.
set -euo pipefail
[ $# -eq 1 ] || { echo "Usage: $0 VCTK_ROOT" 1>&2; exit 1; }
root=$1
for f in speaker-info.txt txt wav48_silence_trimmed; do
  [ -e "$root/$f" ] || { echo "$0: $root is not a VCTK 0.92 folder (no $f)" 1>&2; exit 1; }
done
n=$(find "$root/wav48_silence_trimmed" -name '*_mic1.flac' | head -n 100 | wc -l)
[ "$n" -gt 0 ] || { echo "$0: no *_mic1.flac files under $root/wav48_silence_trimmed" 1>&2; exit 1; }
echo "$0: $root looks like VCTK 0.92"
