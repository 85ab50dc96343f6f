( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
git log -1 --format=%H > $OUT/env.txt 2>/dev/null
timeout 150 python3 bench/window_gluon_fwd.py --quick --json $OUT/quick.json 2>&1 | grep -v "Warning\|_warn_once" | tee $OUT/quick.txt
echo "quick rc=$?"
timeout 330 python3 bench/window_gluon_fwd.py --json $OUT/full.json 2>&1 | grep -v "Warning\|_warn_once" | tee $OUT/full.txt
