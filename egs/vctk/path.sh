# Environment for the recipe: sourced by run.sh.
export LC_ALL=C                 # byte-order sorting, as Kaldi's data dirs need
export PYTHONUNBUFFERED=1
# Use the repository's virtual environment when there is one (README "Install").
if [ -f ../../.venv/bin/activate ] && [ -z "${VIRTUAL_ENV:-}" ]; then
  . ../../.venv/bin/activate
fi
if ! command -v vqaudio >/dev/null 2>&1; then
  echo "path.sh: the vqaudio command is not on PATH; install the package first (see README.md)" 1>&2
  exit 1
fi
