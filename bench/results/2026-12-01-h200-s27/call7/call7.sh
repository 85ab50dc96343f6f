set -u
( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >> $OUT/env.txt
t0=$(date +%s)
timeout 150 python3 tmp/c7/flex_clock.py > $OUT/flex_clock.txt 2>&1; echo "flex clock rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
grep -v "Warn\|warn" $OUT/flex_clock.txt
