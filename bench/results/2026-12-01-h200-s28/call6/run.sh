( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
git log -1 --format=%H > $OUT/env.txt 2>/dev/null
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_triton_window.py -k "rescale" 2>&1 | tail -3 | tee $OUT/tests.txt
timeout 200 python3 bench/bench_seed_pooling.py --json $OUT/bsp.json 2>&1 | grep -v "Warning\|_warn_once" | tee $OUT/bsp.txt
