#!/usr/bin/env bash
# Print the path of the first Python among the versions given (e.g. `3.13 3.12 3.11 3.10`) that runs:
# python3.X on the PATH, else one that pyenv has installed, else python3 if it is one of them.
# Exit 1, saying which versions are accepted, when none is found.
set -uo pipefail
versions=("$@")

runs() { "$1" -c 'import sys' >/dev/null 2>&1; }

for v in "${versions[@]}"; do
  if command -v "python$v" >/dev/null && runs "python$v"; then
    command -v "python$v"
    exit 0
  fi
  if command -v pyenv >/dev/null; then
    for prefix in "$(pyenv root)"/versions/"$v".*; do
      [ -x "$prefix/bin/python$v" ] && runs "$prefix/bin/python$v" && { echo "$prefix/bin/python$v"; exit 0; }
    done
  fi
done
if command -v python3 >/dev/null; then
  current=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
  for v in "${versions[@]}"; do
    [ "$current" = "$v" ] && { command -v python3; exit 0; }
  done
fi
echo "no supported Python found: install one of Python ${versions[*]}, or pass PYTHON=/path/to/python" >&2
exit 1
