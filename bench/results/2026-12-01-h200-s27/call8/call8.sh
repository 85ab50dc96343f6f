set -u
( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1 KUNLUNC_AUTOTUNE=0
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv >> $OUT/env.txt
t0=$(date +%s)
timeout 190 python3 tmp/c8/eager_step.py > $OUT/eager_step.txt 2>&1; echo "eager step rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
grep -v "Warn\|warn" $OUT/eager_step.txt | tail -20
