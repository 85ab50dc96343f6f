set -u
( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
git log -1 --format=%H > $OUT/env.txt 2>/dev/null; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv >> $OUT/env.txt
t0=$(date +%s)
KUNLUNC_AUTOTUNE=0 timeout 90 python3 -m pytest -q -m gpu --tb=short tests/test_triton_seed_pooling.py > $OUT/tests_untuned.txt 2>&1; echo "sp tests untuned rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
left=$(( 230 - ($(date +%s)-t0) ))
timeout $left python3 -m pytest -q -m gpu --tb=short tests/test_triton_seed_pooling.py > $OUT/tests_tuned.txt 2>&1; echo "sp tests tuned rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
tail -3 $OUT/tests_untuned.txt; tail -3 $OUT/tests_tuned.txt
