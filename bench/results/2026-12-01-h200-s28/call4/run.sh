( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
git log -1 --format=%H > $OUT/env.txt 2>/dev/null
timeout 500 python3 bench/fwd_ab.py window --kernel base=tmp/c4/base_window.py --kernel rowsum=tmp/c4/rowsum_window.py --kernel rowsum_r128=tmp/c4/rowsum_r128_window.py --rounds 3 --json $OUT/fwd_ab.json 2>&1 | grep -v "Warning\|_warn_once" | tee $OUT/fwd_ab.txt
