#!/usr/bin/env bash
# Records a command-line run as a newcomer sees it: the command runs in a detached 120×50 tmux pane whose
# content is captured every 5 s (with the seconds since the start), under /usr/bin/time -v.
#
#   bash benchmarks/record_run.sh OUT [ARGS...]     e.g.  bash benchmarks/record_run.sh /tmp/rec compare
#
# Writes OUT/captures.txt (the pane every 5 s), OUT/final.txt (the whole scrollback at the end), OUT/time.txt
# (/usr/bin/time -v) and the run's own outputs in OUT/run (passed as --out). ARGS default to `compare`.
set -euo pipefail
OUT=$(realpath -m "$1")
shift
ARGS=("${@:-compare}")
cd "$(dirname "$0")/.."
rm -rf "$OUT"
mkdir -p "$OUT"
SESSION="record-run-$$"
tmux new-session -d -s "$SESSION" -x 120 -y 50 \
  "/usr/bin/time -v -o '$OUT/time.txt' python3 -m parewire_jax ${ARGS[*]} --out '$OUT/run'; touch '$OUT/finished'; sleep 600"
start=$(date +%s.%N)
while [[ ! -f $OUT/finished ]]; do
  echo "=== t=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')" >>"$OUT/captures.txt"
  tmux capture-pane -p -t "$SESSION" >>"$OUT/captures.txt"
  sleep 5
done
echo "=== end t=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')" >>"$OUT/captures.txt"
tmux capture-pane -p -S - -E - -t "$SESSION" >"$OUT/final.txt"
tmux kill-session -t "$SESSION"
grep -E "Elapsed|Maximum resident" "$OUT/time.txt"
