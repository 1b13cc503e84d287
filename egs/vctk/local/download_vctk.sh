#!/usr/bin/env bash
# Usage: local/download_vctk.sh DEST_DIR
#
# Downloads VCTK 0.92 (CSTR, University of Edinburgh; CC BY 4.0; ~11 GB zip) into DEST_DIR,
# verifies its SHA-256 (the checksum torchaudio's VCTK_092 dataset uses), and unpacks it so that
# DEST_DIR holds wav48_silence_trimmed/, txt/ and speaker-info.txt. A partial download is resumed.
set -euo pipefail
[ $# -eq 1 ] || { echo "Usage: $0 DEST_DIR" 1>&2; exit 1; }
dest=$1
url=https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip
sha256=f96258be9fdc2cbff6559541aae7ea4f59df3fcaf5cf963aae5ca647357e359c
zip=$dest/VCTK-Corpus-0.92.zip

if [ -f "$dest/speaker-info.txt" ] && [ -d "$dest/wav48_silence_trimmed" ]; then
  echo "$0: VCTK already unpacked in $dest"; exit 0
fi
mkdir -p "$dest"
command -v wget >/dev/null || { echo "$0: wget is needed to download VCTK" 1>&2; exit 1; }
wget --continue -O "$zip" "$url"
echo "$sha256  $zip" | sha256sum --check --status || {
  echo "$0: checksum mismatch for $zip (corrupt or incomplete download; delete it and retry)" 1>&2; exit 1; }
command -v unzip >/dev/null || { echo "$0: unzip is needed to unpack VCTK" 1>&2; exit 1; }
unzip -q -o "$zip" -d "$dest"
local/check_vctk.sh "$dest"
