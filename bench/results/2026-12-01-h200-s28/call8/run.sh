( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
git log -1 --format=%H > $OUT/env.txt 2>/dev/null
KUNLUNC_AUTOTUNE=0 timeout 100 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_window_hopper.py -k "forward" -x 2>&1 | tail -15 > $OUT/tests.txt
cat $OUT/tests.txt
timeout 150 python3 bench/bench_window.py --shapes 0,1 --json $OUT/bench_window.json 2>&1 | grep -v "Warning\|_warn_once" > $OUT/bench_window.txt
tail -40 $OUT/bench_window.txt
