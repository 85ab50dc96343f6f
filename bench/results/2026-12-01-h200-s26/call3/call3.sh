set -u
( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
git log -1 --format=%H > $OUT/env.txt 2>/dev/null; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv >> $OUT/env.txt
t0=$(date +%s)
timeout 200 python3 bench/seed_pooling_ab.py --kernel base=tmp/c3/base_seed_pooling.py --kernel new=templates/kernels/seed_pooling.py --json $OUT/ab.json > $OUT/ab.txt 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
timeout 120 python3 bench/bench_seed_pooling.py --json $OUT/bsp.json > $OUT/bsp.txt 2>&1; echo "bsp rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
timeout 60 python3 tmp/c3/host.py > $OUT/host.txt 2>&1; echo "host rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
head -4 $OUT/host.txt
grep -v Warn $OUT/ab.txt | cut -c1-500 | tail -16
grep -v Warn $OUT/bsp.txt | cut -c1-200 | tail -26
