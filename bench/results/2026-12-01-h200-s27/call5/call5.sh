set -u
( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
git log -1 --format=%H > $OUT/env.txt 2>/dev/null; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv >> $OUT/env.txt
t0=$(date +%s)
timeout 240 python3 tmp/c5/lpt.py > $OUT/lpt.txt 2>&1; echo "lpt rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
grep -v Warn $OUT/lpt.txt
