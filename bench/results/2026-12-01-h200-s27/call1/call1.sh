set -u
( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
git log -1 --format=%H > $OUT/env.txt 2>/dev/null; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv >> $OUT/env.txt
t0=$(date +%s)
timeout 90 python3 tmp/c1/host.py > $OUT/host.txt 2>&1; echo "host rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
timeout 100 python3 bench/bench_seed_pooling.py --json $OUT/bsp.json > $OUT/bsp.txt 2>&1; echo "bsp rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
KUNLUNC_AUTOTUNE=0 timeout 150 python3 -m pytest -q -x -m gpu --tb=short tests/test_window_hopper.py tests/test_gdpa_hopper.py tests/test_bound_launch.py > $OUT/tests.txt 2>&1; echo "hopper tests rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
KUNLUNC_AUTOTUNE=0 timeout 80 python3 -m pytest -q -x -m gpu --tb=short tests/test_triton_seed_pooling.py > $OUT/tests_sp.txt 2>&1; echo "sp tests rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
left=$(( 560 - ($(date +%s)-t0) ))
timeout $left python3 tmp/c1/window_d128.py > $OUT/window_d128.txt 2>&1; echo "window d128 rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
grep -v Warn $OUT/host.txt
tail -3 $OUT/tests.txt; tail -3 $OUT/tests_sp.txt
grep -v Warn $OUT/bsp.txt | cut -c1-200 | tail -26
cat $OUT/window_d128.txt | grep -v Warn | tail -40
