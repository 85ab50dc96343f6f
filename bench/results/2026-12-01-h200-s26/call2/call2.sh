set -u
( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
git log -1 --format=%H > $OUT/env.txt 2>/dev/null; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv >> $OUT/env.txt
t0=$(date +%s)
timeout 230 python3 bench/window_hopper.py --variants --json $OUT/variants.json > $OUT/variants.txt 2>&1; echo "variants rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
timeout 110 python3 bench/gdpa_hopper.py --txbars --json $OUT/gdpa_txbars.json > $OUT/gdpa_txbars.txt 2>&1; echo "gdpa txbars rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
# the gpu tests of both Hopper kernel files with TXBARS on (this copy of the tree only)
sed -i 's/"TXBARS": False/"TXBARS": True/g' templates/kernels/window_attention_hopper.py
sed -i 's/^TXBARS = {"dq": False, "dkdv": False}/TXBARS = {"dq": True, "dkdv": True}/' templates/kernels/gdpa_hopper.py
grep -c '"TXBARS": True' templates/kernels/window_attention_hopper.py >> $OUT/steps.txt; grep '^TXBARS' templates/kernels/gdpa_hopper.py >> $OUT/steps.txt
left=$(( 565 - ($(date +%s)-t0) ))
KUNLUNC_AUTOTUNE=0 timeout $left python3 -m pytest -q -x -m gpu --tb=short tests/test_window_hopper.py tests/test_gdpa_hopper.py > $OUT/tests.txt 2>&1; echo "tests rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
tail -4 $OUT/tests.txt
grep -v Warn $OUT/variants.txt | cut -c1-400 | tail -14
tail -4 $OUT/gdpa_txbars.txt
