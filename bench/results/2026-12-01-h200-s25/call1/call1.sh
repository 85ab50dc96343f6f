set -u
( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $OUT/env.txt; git log -1 --format=%H >> $OUT/env.txt 2>/dev/null
t0=$(date +%s)
timeout 120 python3 bench/window_hopper.py --quick --hopper-dq --json $OUT/quick.json > $OUT/quick.txt 2>&1; echo "quick rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
timeout 150 python3 -m pytest -q -m gpu tests/test_window_hopper.py > $OUT/tests.txt 2>&1; echo "tests rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
tail -3 $OUT/tests.txt
timeout 300 python3 bench/window_hopper.py --variants --json $OUT/variants.json > $OUT/variants.txt 2>&1; echo "variants rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
cat $OUT/variants.txt | cut -c1-400
tail -5 $OUT/quick.txt
