set -u
( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
git log -1 --format=%H > $OUT/env.txt 2>/dev/null; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv >> $OUT/env.txt
t0=$(date +%s)
timeout 200 python3 bench/bench_window.py --shapes 2 --json $OUT/bench_window.json > $OUT/bench_window.txt 2>&1; echo "bench_window rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
timeout 120 python3 tmp/c2/window_d128.py > $OUT/window_d128.txt 2>&1; echo "window d128 rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
grep -v "Warn\|warn" $OUT/bench_window.txt | cut -c1-240
grep -v "Warn\|warn" $OUT/window_d128.txt
