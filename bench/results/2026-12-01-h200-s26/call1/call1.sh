set -u
( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
git log -1 --format=%H > $OUT/env.txt 2>/dev/null; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv >> $OUT/env.txt
t0=$(date +%s)
timeout 190 python3 bench/bench_window.py --json $OUT/bench_window.json > $OUT/bench_window.txt 2>&1; echo "bench_window rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
timeout 280 python3 -m pytest -q -m gpu --tb=short tests/test_window_hopper.py tests/test_triton_window.py > $OUT/tests.txt 2>&1; echo "tests rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
left=$(( 560 - ($(date +%s)-t0) )); [ $left -gt 30 ] && { timeout $left python3 bench/bench_seed_pooling.py --json $OUT/bsp.json > $OUT/bsp.txt 2>&1; echo "bsp rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt; }
tail -5 $OUT/tests.txt
grep -v Warn $OUT/bench_window.txt | cut -c1-250 | tail -30
grep -v Warn $OUT/bsp.txt 2>/dev/null | cut -c1-250 | tail -30
