#!/usr/bin/env bash
# The paper's Table 1 and Table 2 (MNIST rows) at the paper's scale on the CPU: full MNIST (50k train, 10k val,
# 10k test), LeNet, SGD momentum 0.9, batch 128, lr 0.01 with the cosine schedule planned over 100 epochs, the
# first epoch trained (§4.1-4.2). After the epoch the model is also evaluated on the first 10 000 training images
# (--eval-train): the paper's "epoch 1 acc." may be that end-of-epoch accuracy or the mean over the epoch's steps,
# and both are reported. Resumable: rerun the same command and the finished chunks of seeds are reused.
#
#   bash benchmarks/paper/run.sh [OUT_ROOT [NAME ...]]   # default OUT_ROOT: benchmarks/paper; default: every run
#
# The runs and their arguments are the lines of benchmarks/paper/runs.txt, in order (each its own --out):
#   table1                  base, rewired, min_sv, max_sv; Kaiming normal; 100 seeds; standardized (the default)
#   table1_raw              the same without standardization, 30 seeds (the paper does not say which it used)
#   table2_<init>           base vs rewired for kaiming_uniform, truncated_normal, orthogonal; 30 seeds each
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT_ROOT=${1:-benchmarks/paper}
shift || true
RUNS=benchmarks/paper/runs.txt
read -r -a COMMON <<<"$(awk '$1 == "common" { $1 = ""; print }' "$RUNS")"

for name in $(awk '!/^#/ && $1 != "common" { print $1 }' "$RUNS"); do
  if [[ $# -gt 0 && ! " $* " =~ " $name " ]]; then
    continue
  fi
  read -r -a ARGS <<<"$(awk -v n="$name" '$1 == n { $1 = ""; print }' "$RUNS")"
  echo "== $name: python -m parewire_jax compare ${COMMON[*]} ${ARGS[*]} --out $OUT_ROOT/$name"
  /usr/bin/time -f "$name wall %e s" python3 -m parewire_jax compare "${COMMON[@]}" "${ARGS[@]}" --out "$OUT_ROOT/$name"
done
