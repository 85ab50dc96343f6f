( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw,power.limit,temperature.gpu --format=csv > $OUT/env.txt
git log -1 --format=%H >> $OUT/env.txt 2>/dev/null
for s in 2 0 1; do
  timeout 200 python3 bench/sustained_configs.py --shape $s --cool-s 4 --json $OUT/sustained_s$s.json 2>&1 | tee $OUT/sustained_s$s.txt
done
