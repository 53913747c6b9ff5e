#!/usr/bin/env bash
# Run the reliability tests N times in a row (default 5) while two busy loops compete for the cores,
# to show that they wait for conditions rather than hope for timings. Prints each run's summary.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
busy=()
for _ in 1 2; do yes > /dev/null & busy+=($!); done
trap 'kill "${busy[@]}" 2>/dev/null' EXIT
failed=0
for i in $(seq 1 "$runs"); do
  echo "== run $i of $runs, $(date -u +%H:%M:%S)"
  .venv/bin/python -m pytest tests/reliability -q -p no:cacheprovider 2>&1 | tail -1 || failed=1
done
exit $failed
