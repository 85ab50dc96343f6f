set -u
( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
t0=$(date +%s)
timeout 170 python3 -m pytest -q -x -m gpu tests/test_window_hopper.py > $OUT/tests.txt 2>&1; echo "tests rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
tail -3 $OUT/tests.txt
timeout 330 python3 bench/window_hopper.py --variants --json $OUT/variants.json > $OUT/variants.txt 2>&1; echo "variants rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
grep "^B" $OUT/variants.txt | cut -c1-400
