#!/usr/bin/env bash
# One device call: the GPU tests, then every kernel benchmark; logs and JSON under $OUT.
# Usage on the device tool (carry .whl, the pydantic wheels from ../shared/wheels-device):
#   bash bench/gpu_run.sh [tests|tests2|bench|models|calibrate|profile|ncu|firststep|gluon|gluonbwd|hopper|gdpahopper|hopperfwd|autotune|fusedbwd|cache|ab|all]
# ab: the models run (RUNS; default kunlun_60g graphed @256 without the per-block timing; RUNS=none
#   skips it), then AB_CMD if set (a benchmark command), in this tree on GPU 0 and in tmp/base (made
#   by bench/ab_prepare.sh COMMIT; carry it) on GPU 1, at the same time, each on half the cores:
#   a change timed against its baseline in one call. AB_SWAP=1 swaps the GPUs (this tree on GPU 1).
# gluon: bench/gdpa_gluon.py, the Gluon GDPA forward experiment, under its own limit (GLUON_TIMEOUT;
#   a wrong mbarrier phase would hang rather than fail).
# gluonbwd: bench/gdpa_gluon_bwd.py (GDPA dK/dV and dQ) and bench/window_gluon_bwd.py (window dK/dV), the
#   Gluon backward experiments (GLUON_BWD picks), each --quick first (correctness at the schedule's
#   edges), then its timing shapes, under GLUON_TIMEOUT.
# hopper: bench/window_hopper.py --quick (the Gluon window backward at odd shapes, every layout), then
#   --variants (each build of it at bench_window.py's shapes, beside Triton's and the serial control)
#   under HOPPER_QUICK_TIMEOUT and HOPPER_TIMEOUT.
# gdpahopper: the Gluon GDPA backward (templates/kernels/gdpa_hopper.py): its gpu tests and GDPA's
#   (GDPA_HOPPER_TESTS_TIMEOUT), bench/gdpa_hopper.py --quick, then its timing shapes (HOPPER_TIMEOUT).
# hopperfwd: bench/gdpa_hopper_fwd.py (the warp-specialized GDPA forward with jagged padded/packed rows,
#   heads views, every activation) --quick under HOPPER_QUICK_TIMEOUT (a wrong mbarrier phase hangs), then
#   its timing shapes against the Triton forward under HOPPER_TIMEOUT; then bench/gdpa_gluon_ws.py at D 64
#   (its bf16x2 activation variant beside the fp32 one).
# autotune: bench/autotune_picks.py (Triton's eager autotuner against inductor's, same configs, at
#   kunlun_60g's click tower) with the seed-pooling backward's old list, then as the kernels are,
#   each under AUTOTUNE_TIMEOUT.
# fusedbwd: bench/window_bwd_fused.py and bench/gdpa_bwd_fused.py, the one-pass backwards (dQ by
#   atomic adds) against the two-pass ones, checked and timed (FUSEDBWD_TIMEOUT each).
# tests: TESTS="tests/test_packed.py ..." picks test files (default: all), TESTS_TIMEOUT seconds.
# tests2: the same over two GPUs at once (an nvidia-h200-x2), split by file (bench/gpu_test_split.py).
# models: RUNS="kunlun_60g:fused@64 ..." picks runs (default: bench_models.py's sweep, >10 min).
#   NO_BLOCKS=1 skips the per-block timing.
# firststep: FIRST_STEP="kunlun_6g@1024" runs bench/first_step_check.py watched and with two candidate
#   fixes at once, on cold caches (FIRST_STEP_NOSWAP=1: the second candidate becomes the copy-back off).
# ncu: Nsight Compute's counters for each attention kernel (bench/ncu_kernels.py; NCU_CASES picks cases,
#   NCU_ARGS="--layout packed" profiles the models' jagged rows instead of full lengths).
# profile: PROFILE="kunlun_60g@64 ..." profiles one training step of each generated package;
#   PROFILE_ARGS="--compile --scope model" passes options to bench/profile_step.py.
#
# Two jobs at once on a two-GPU machine (nvidia-h200-x2): give each its GPU, $OUT and build folder,
#   CUDA_VISIBLE_DEVICES=0 OUT=$OUT/g0 WORK=/tmp/kb0 NO_ENV_FILE=1 bash bench/gpu_run.sh models > $OUT/g0.txt & ...; wait
# (in one tree they share its compile caches, which are safe for concurrent writers). At most 8 files come back
# from a call: NO_ENV_FILE=1 prints the environment instead of writing env.txt (a file per job).
#
# Compile caches across sessions (each session gets a fresh machine; a cold kunlun_60g first step
# spends ~3 minutes compiling and autotuning): inductor's cache (its graphs and each kernel's
# best config) and Triton's autotune choices live under /tmp/kunlunc-cache/tree-<its path's hash>. Where .gpucache/
# holds cache.part* (carry ".gpucache"), they are unpacked first; SAVE_CACHE=1 packs them into
# $OUT/cache.part* (15 MiB parts, at most CACHE_PARTS, default 4; compiled binaries are left out, they are rebuilt from
# source quickly) for the next session: copy them into .gpucache/ (ignored by git).
set -uo pipefail
export PYTHONUNBUFFERED=1 TRITON_CACHE_AUTOTUNING=1  # tune once per machine, not per process
what=${1:-all}
OUT=${OUT:-/tmp/kunlunc-out}; mkdir -p "$OUT"
# One cache per tree: torch.compile's AOTAutograd cache keys a traced Triton op by its kernels'
# source only, not by the host code or autotune configs around them, so two trees of an A/B run
# sharing one cache can run each other's compiled graphs (the twentieth session's seed-pooling A/B
# did: BENCHMARKS.md, seed pooling, twenty-first session).
CACHE=${KUNLUNC_GPU_CACHE:-/tmp/kunlunc-cache/tree-$(pwd -P | sha1sum | cut -c1-10)}
export TORCHINDUCTOR_CACHE_DIR=$CACHE/inductor TRITON_CACHE_DIR=$CACHE/triton
if compgen -G ".gpucache/cache.part*" > /dev/null; then
  first=$(ls .gpucache/cache.part* | head -1)   # xz where the saving machine had it, else gzip
  unpack=-z; [ "$(head -c 2 "$first" | od -An -tx1 | tr -d ' \n')" = fd37 ] && unpack=-J
  mkdir -p "$CACHE" && cat .gpucache/cache.part* | tar "$unpack" -xf - -C "$CACHE" \
    && echo "compile caches restored: $(du -sh "$CACHE" | cut -f1)" || echo "compile caches: restore failed"
fi
save_cache() {
  [ -n "${SAVE_CACHE:-}" ] && [ -d "$CACHE" ] || return 0
  rm -f "$OUT"/cache.part*
  # xz packs the caches' text about a third smaller than gzip (four 15 MiB parts at most come back)
  tar -cf - -C "$CACHE" --exclude='*.cubin' --exclude='*.so' --exclude='*.hsaco' --exclude='*.llir' \
    --exclude='*.ptx' --exclude='*.ttgir' --exclude='*.ttir' --exclude='*.json.tmp*' . 2>/dev/null \
    | { if command -v xz > /dev/null; then xz -T0 -6; else gzip; fi; } | split -b 15m - "$OUT/cache.part"
  local parts; parts=$(ls "$OUT"/cache.part* | wc -l)
  if [ "$parts" -gt "${CACHE_PARTS:-4}" ]; then
    echo "compile caches: $parts parts of 15 MiB, more than CACHE_PARTS=${CACHE_PARTS:-4}; not saved"; rm -f "$OUT"/cache.part*
  else
    echo "compile caches saved: $(du -ch "$OUT"/cache.part* | tail -1 | cut -f1) in $parts part(s)"
  fi
}
trap save_cache EXIT
if [ "$what" = ab ] && [ ! -f tmp/base/bench/gpu_run.sh ]; then
  echo "ab: no baseline tree in tmp/base: run bash bench/ab_prepare.sh COMMIT on the machine that" \
    "starts the call, and carry tmp/base"; exit 1
fi
# (once per machine, under a lock: two jobs may start together, one per GPU of an x2 machine)
( flock 9; [ -f /tmp/site/.kunlunc-installed ] || { python3 -m pip install -q --no-index --no-deps --no-compile \
  --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && touch /tmp/site/.kunlunc-installed; } ) 9>/tmp/site.lock \
  && export PYTHONPATH=/tmp/site:$PWD || exit 1
env_file=$OUT/env.txt; [ -n "${NO_ENV_FILE:-}" ] || [ "$what" = ab ] && env_file=/dev/null   # NO_ENV_FILE=1: stdout only
{ date -u; echo "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-all}"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv;
  python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)'; } \
  | tee "$env_file"
[ "$what" = cache ] && exit 0   # nothing to run: SAVE_CACHE=1 packs what the jobs before it compiled
if [ "$what" = ab ]; then
  # Both trees at once, one GPU and half the cores each: the models run (RUNS, default below;
  # RUNS=none skips it), then AB_CMD if given (e.g. "python3 bench/bench_seed_pooling.py") in each
  # tree, its output in $OUT/{new,base}/cmd.log.
  export RUNS=${RUNS:-kunlun_60g:compiled_packed_bf16_graphed@256} NO_BLOCKS=${NO_BLOCKS-1}
  ln -sfn "$PWD/.whl" tmp/base/.whl
  cores=$(nproc); half=$((cores / 2))
  side_run() {   # side, tree, GPU, cores
    local out="$OUT/$1"; mkdir -p "$out"
    ( cd "$2" && export CUDA_VISIBLE_DEVICES="$3" OUT="$out" WORK="/tmp/kunlunc-ab-$1" NO_ENV_FILE=1 \
        PYTHONPATH="/tmp/site:$PWD"
      [ "$RUNS" = none ] || taskset -c "$4" bash bench/gpu_run.sh models > "$out/run.txt" 2>&1
      [ -z "${AB_CMD:-}" ] || taskset -c "$4" timeout "${AB_TIMEOUT:-300}" bash -c "$AB_CMD" 2>&1 \
        | grep -v DEBUG > "$out/cmd.log" )
  }
  g_new=0; g_base=1; [ -n "${AB_SWAP:-}" ] && { g_new=1; g_base=0; }   # AB_SWAP=1: the other GPU each
  side_run new . $g_new "0-$((half - 1))" &
  side_run base tmp/base $g_base "$half-$((cores - 1))" &
  wait
  for side in new base; do
    label="this tree"; [ "$side" = base ] && label="base $(cat tmp/base/.ab-commit 2>/dev/null)"
    echo "== $side: $label"
    [ "$RUNS" = none ] || grep '^| ' "$OUT/$side/models.log" 2>/dev/null | grep -v '^|---' || tail -5 "$OUT/$side/run.txt"
    [ -z "${AB_CMD:-}" ] || tail -"${AB_TAIL:-20}" "$OUT/$side/cmd.log"
  done
  exit 0
fi
if [ "$what" = tests2 ]; then
  # every gpu-marked test (or those of TESTS) over the machine's two GPUs at once, split by file
  # (bench/gpu_test_split.py), each half on half the cores, under TESTS_TIMEOUT each; set
  # KUNLUNC_AUTOTUNE=0 to keep the kernels' compile short
  split=$(python3 bench/gpu_test_split.py 2 ${TESTS:-tests}) || exit 1   # (an empty group would run all)
  mapfile -t groups <<< "$split"
  half=$(($(nproc) / 2))
  for g in 0 1; do
    [ -n "${groups[$g]:-}" ] || continue   # fewer test files than GPUs
    mkdir -p "$OUT/gpu$g"
    cores="$((g * half))-$((g * half + half - 1))"
    ( CUDA_VISIBLE_DEVICES=$g taskset -c "$cores" timeout ${TESTS_TIMEOUT:-300} python3 -m pytest -q -m gpu \
        ${groups[$g]} -p no:cacheprovider > "$OUT/gpu$g/gpu_tests.log" 2>&1 ) &
  done
  wait
  for g in 0 1; do
    [ -n "${groups[$g]:-}" ] && { echo "== GPU $g: ${groups[$g]}"; grep -v DEBUG "$OUT/gpu$g/gpu_tests.log" | tail -12; }
  done
  exit 0
fi
if [ "$what" = calibrate ]; then
  timeout ${CALIBRATE_TIMEOUT:-480} python3 bench/calibrate.py --target h200 --out "$OUT/h200.json" ${CALIBRATE_ARGS:-} 2>&1 \
    | tee "$OUT/calibrate.log" | tail -30
  exit 0
fi
if [ "$what" = gluon ]; then   # correctness at the schedule's edges first, then the timing shapes
  timeout 150 python3 bench/gdpa_gluon.py --quick --json "$OUT/gdpa_gluon_quick.json" 2>&1 \
    | tee "$OUT/gdpa_gluon_quick.log" | tail -8
  timeout ${GLUON_TIMEOUT:-300} python3 bench/gdpa_gluon.py --json "$OUT/gdpa_gluon.json" 2>&1 \
    | tee "$OUT/gdpa_gluon.log" | tail -12
  exit 0
fi
if [ "$what" = gluonbwd ]; then   # the Gluon backwards: correctness at the schedule's edges, then timing
  for b in ${GLUON_BWD:-gdpa_gluon_bwd window_gluon_bwd}; do
    timeout 150 python3 "bench/$b.py" --quick --json "$OUT/${b}_quick.json" 2>&1 | tee "$OUT/${b}_quick.log" | tail -8
    timeout ${GLUON_TIMEOUT:-300} python3 "bench/$b.py" --json "$OUT/$b.json" 2>&1 | tee "$OUT/$b.log" | tail -12
  done
  exit 0
fi
if [ "$what" = hopper ]; then   # the Gluon window backward against Triton's: odd shapes, then each build
  timeout ${HOPPER_QUICK_TIMEOUT:-120} python3 bench/window_hopper.py --quick --json "$OUT/window_hopper_quick.json" \
    2>&1 | tee "$OUT/window_hopper_quick.log" | grep -v -i warn | tail -12
  timeout ${HOPPER_TIMEOUT:-400} python3 bench/window_hopper.py --variants --json "$OUT/window_hopper_variants.json" \
    2>&1 | tee "$OUT/window_hopper_variants.log" | grep -v -i warn | tail -14
  exit 0
fi
if [ "$what" = gdpahopper ]; then   # the Gluon GDPA backward: its gpu tests and odd shapes, then timed against Triton's
  KUNLUNC_AUTOTUNE=0 timeout ${GDPA_HOPPER_TESTS_TIMEOUT:-300} python3 -m pytest -q -m gpu tests/test_gdpa_hopper.py \
    tests/test_triton_gdpa.py -p no:cacheprovider 2>&1 | grep -v DEBUG > "$OUT/gdpa_hopper_tests.log"; tail -4 "$OUT/gdpa_hopper_tests.log"
  KUNLUNC_AUTOTUNE=0 timeout ${HOPPER_QUICK_TIMEOUT:-120} python3 bench/gdpa_hopper.py --quick \
    --json "$OUT/gdpa_hopper_quick.json" 2>&1 | tee "$OUT/gdpa_hopper_quick.log" | grep -v -i warn | tail -18
  timeout ${HOPPER_TIMEOUT:-300} python3 bench/gdpa_hopper.py --json "$OUT/gdpa_hopper.json" 2>&1 \
    | tee "$OUT/gdpa_hopper.log" | grep -v -i warn | tail -15
  exit 0
fi
if [ "$what" = autotune ]; then   # which config each kernel runs, eager against torch.compile
  for variant in old current; do   # a cache each: the two differ only by the list set at run time
    TORCHINDUCTOR_CACHE_DIR=$CACHE/inductor-$variant timeout ${AUTOTUNE_TIMEOUT:-280} python3 bench/autotune_picks.py $([ $variant = old ] && echo --old-seed-list) \
      --json "$OUT/autotune_picks_$variant.json" 2>&1 | tee "$OUT/autotune_picks_$variant.log" | grep -v -i warn | tail -30
  done
  exit 0
fi
if [ "$what" = hopperfwd ]; then   # the warp-specialized GDPA forward, production scope: odd shapes, then timed
  KUNLUNC_AUTOTUNE=0 timeout ${HOPPER_QUICK_TIMEOUT:-120} python3 bench/gdpa_hopper_fwd.py --quick \
    --json "$OUT/gdpa_hopper_fwd_quick.json" 2>&1 | tee "$OUT/gdpa_hopper_fwd_quick.log" | grep -v -i warn | tail -20
  timeout ${HOPPER_TIMEOUT:-300} python3 bench/gdpa_hopper_fwd.py --json "$OUT/gdpa_hopper_fwd.json" 2>&1 \
    | tee "$OUT/gdpa_hopper_fwd.log" | grep -v -i warn | tail -16
  # the schedule's tile sweep at D 64 with the bf16x2 activation variant beside the fp32 one
  timeout ${HOPPER_TIMEOUT:-300} python3 bench/gdpa_gluon_ws.py --head-dim 64 --json "$OUT/gdpa_gluon_ws_d64.json" 2>&1 \
    | tee "$OUT/gdpa_gluon_ws_d64.log" | grep -v -i warn | tail -16
  exit 0
fi
if [ "$what" = fusedbwd ]; then   # the one-pass backwards (dQ by atomic adds) against the two-pass ones
  for b in window_bwd_fused gdpa_bwd_fused; do
    timeout ${FUSEDBWD_TIMEOUT:-280} python3 "bench/$b.py" --json "$OUT/$b.json" 2>&1 | tee "$OUT/$b.log" | tail -8
  done
  exit 0
fi
if [ "$what" = firststep ]; then
  # a cold first compiled step three ways at once (compilation is CPU work; each has its own caches):
  # watched; with one config per pointwise kernel; without AOT autograd's donated buffers (or, with
  # FIRST_STEP_NOSWAP=1, with inductor's autotune copy-back off). kunlun_6g@1024 is ~45 GB each.
  run=${FIRST_STEP:-kunlun_6g@1024}; args="${run%@*} --batch-size ${run#*@}"
  timeout ${FIRST_STEP_TIMEOUT:-400} python3 bench/first_step_check.py $args --out "$OUT/first_step" > "$OUT/first_step_watch.txt" 2>&1 &
  timeout ${FIRST_STEP_TIMEOUT:-400} python3 bench/first_step_check.py $args \
    --inductor-option triton.autotune_pointwise=False > "$OUT/first_step_pointwise.txt" 2>&1 &
  if [ -n "${FIRST_STEP_NOSWAP:-}" ]; then
    timeout ${FIRST_STEP_TIMEOUT:-400} python3 bench/first_step_check.py $args --no-swap > "$OUT/first_step_noswap.txt" 2>&1 &
  else
    timeout ${FIRST_STEP_TIMEOUT:-400} python3 bench/first_step_check.py $args \
      --functorch-option donated_buffer=False > "$OUT/first_step_nodonate.txt" 2>&1 &
  fi
  wait
  for f in "$OUT"/first_step_*.txt; do echo "== $f"; grep -E "^(step|copy-back|inductor options|functorch option)" "$f" | sort | uniq -c | head -20; done
  exit 0
fi
if [ "$what" = profile ]; then
  # (a cold compile of a whole kunlun_60g step takes about 190 s, of one group's blocks 35-65 s)
  for run in ${PROFILE:-kunlun_60g@64}; do
    log="$OUT/profile_${run%@*}_b${run#*@}.txt"
    timeout ${PROFILE_TIMEOUT:-300} env PYTHONPATH="$PYTHONPATH:$PWD/generated" python3 bench/profile_step.py \
      "${run%@*}" --batch-size "${run#*@}" ${PROFILE_ARGS:-} > "$log" 2>&1 \
      || echo "profile of $run: exit status $? (124: past PROFILE_TIMEOUT=${PROFILE_TIMEOUT:-300} s)" | tee -a "$log"
    head -45 "$log"  # (a pipe into head would cut the file short)
  done
  exit 0
fi
if [ "$what" = ncu ]; then
  # Nsight Compute over bench/ncu_kernels.py (NCU_CASES: its --only), twice: the sections (speed of
  # light, pipes, memory, occupancy, scheduler, launch) into ncu.txt, then the warps' stall reasons
  # an issued instruction and the pipes' shares into ncu_stalls.txt. --clock-control none: the
  # clocks are left as the GPU sets them (METHOD.md); each run about 70-80 s.
  ncu_bin=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  [ -n "$ncu_bin" ] || { echo "ncu: not found"; exit 1; }
  only="${NCU_CASES:+--only $NCU_CASES} ${NCU_ARGS:-}"   # NCU_ARGS="--layout packed": the models' jagged rows
  timeout ${NCU_TIMEOUT:-240} "$ncu_bin" --profile-from-start off --clock-control none --section SpeedOfLight \
    --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section Occupancy --section SchedulerStats \
    --section WarpStateStats --section LaunchStats python3 bench/ncu_kernels.py $only > "$OUT/ncu.txt" 2>&1
  echo "ncu sections: exit status $?"
  timeout ${NCU_TIMEOUT:-240} "$ncu_bin" --profile-from-start off --clock-control none --metrics \
    "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active,sm__pipe_alu_cycles_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active,gpc__cycles_elapsed.avg.per_second" \
    python3 bench/ncu_kernels.py $only > "$OUT/ncu_stalls.txt" 2>&1
  echo "ncu stalls: exit status $?"
  python3 bench/ncu_summary.py "$OUT/ncu.txt" "$OUT/ncu_stalls.txt"   # the table BENCHMARKS.md shows
  exit 0
fi
if [ "$what" = models ]; then
  timeout ${MODELS_TIMEOUT:-420} python3 bench/bench_models.py --json "$OUT/models.json" --timeout ${RUN_TIMEOUT:-200} \
    --work ${WORK:-/tmp/kunlunc-bench} ${RUNS:+--runs $RUNS} ${NO_BLOCKS:+--no-blocks} 2>&1 | tee "$OUT/models.log" | tail -60
  exit 0
fi
if [ "$what" != bench ]; then
  timeout ${TESTS_TIMEOUT:-300} python3 -m pytest -q -m gpu ${TESTS:-tests} -p no:cacheprovider 2>&1 | tee "$OUT/gpu_tests.log" | tail -25
fi
if [ "$what" != tests ]; then
  for b in gdpa window seed_pooling; do
    timeout 240 python3 "bench/bench_$b.py" --json "$OUT/bench_$b.json" 2>&1 | tee "$OUT/bench_$b.log" | tail -30
  done
fi
