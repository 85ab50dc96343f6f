set -u
( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
t0=$(date +%s)
timeout 160 python3 -m pytest -q -m gpu tests/test_window_hopper.py > $OUT/tests.txt 2>&1; echo "tests rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
tail -3 $OUT/tests.txt
export RUNS="kunlun_60g:compiled_packed_bf16_graphed@256" NO_BLOCKS=1 MODELS_TIMEOUT=200 RUN_TIMEOUT=195 NO_ENV_FILE=1
mkdir -p $OUT/new $OUT/base
OUT=$OUT/new WORK=/tmp/kb-new bash bench/gpu_run.sh models > $OUT/new/run.txt 2>&1; echo "new rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
( cd tmp/base && PYTHONPATH=/tmp/site:$PWD OUT=$OUT/base WORK=/tmp/kb-base bash bench/gpu_run.sh models > $OUT/base/run.txt 2>&1 ); echo "base rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
for s in new base; do echo "== $s"; grep '^| ' $OUT/$s/models.log | grep -v '^|---'; done
