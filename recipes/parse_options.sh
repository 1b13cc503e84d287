#!/usr/bin/env bash
# Usage: . recipes/parse_options.sh      (sourced, without arguments, by a recipe after its defaults:
#        it reads and shifts the recipe's own "$@", as Kaldi's utils/parse_options.sh does)
#
# Kaldi-style option parsing: every `--some-name value` (or `--some-name=value`) on the command
# line sets the shell variable `some_name`, which the recipe must already have defined (that is
# how defaults are declared). Unknown options are refused with a non-zero exit. `--help` prints
# the recipe's `help_message` (if set). Positional arguments are left in "$@".
# `--config FILE` sources FILE (shell assignments) before the remaining options are read.

while true; do
  [ -z "${1:-}" ] && break
  case "$1" in
    --help|-h)
      echo "${help_message:-no help message for $0}" 1>&2
      exit 0 ;;
    --*=*)
      __name="${1%%=*}"; __value="${1#*=}"; shift
      set -- "$__name" "$__value" "$@" ;;
    --*)
      __name=$(echo "${1#--}" | sed 's/-/_/g')
      if [ -z "${2+x}" ]; then
        echo "$0: option $1 needs a value" 1>&2; exit 1
      fi
      if [ "$__name" = config ] && ! eval '[ -n "${config+x}" ]'; then
        [ -f "$2" ] || { echo "$0: --config: no such file $2" 1>&2; exit 1; }
        . "$2"; shift 2; continue
      fi
      if ! eval '[ -n "${'"$__name"'+x}" ]'; then
        echo "$0: invalid option $1 (no default for '$__name' in the recipe)" 1>&2; exit 1
      fi
      __old=$(eval echo \"\${$__name}\")
      if [ "$__old" = true ] || [ "$__old" = false ]; then
        case "$2" in true|false) ;; *) echo "$0: option $1 takes true or false, not '$2'" 1>&2; exit 1 ;; esac
      fi
      eval "$__name=\"\$2\""
      shift 2 ;;
    *) break ;;
  esac
done
unset __name __value __old
true
