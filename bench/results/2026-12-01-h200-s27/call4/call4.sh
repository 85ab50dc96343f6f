set -u
( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
git log -1 --format=%H > $OUT/env.txt 2>/dev/null; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv >> $OUT/env.txt
t0=$(date +%s)
timeout 150 python3 tmp/c4/host.py > $OUT/host.txt 2>&1; echo "host rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
KUNLUNC_AUTOTUNE=0 timeout 200 python3 -m pytest -q -x -m gpu --tb=short tests/test_triton_window.py tests/test_triton_gdpa.py > $OUT/tests_triton.txt 2>&1; echo "triton tests rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
KUNLUNC_AUTOTUNE=0 timeout 140 python3 -m pytest -q -x -m gpu --tb=short tests/test_window_hopper.py tests/test_gdpa_hopper.py > $OUT/tests_hopper.txt 2>&1; echo "hopper tests rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
left=$(( 560 - ($(date +%s)-t0) ))
KUNLUNC_AUTOTUNE=0 timeout $left python3 -m pytest -q -x -m gpu --tb=short tests/test_triton_model.py -k "fp32" > $OUT/tests_model.txt 2>&1; echo "model fp32 test rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
grep -v Warn $OUT/host.txt
tail -3 $OUT/tests_triton.txt; tail -3 $OUT/tests_hopper.txt; tail -3 $OUT/tests_model.txt
