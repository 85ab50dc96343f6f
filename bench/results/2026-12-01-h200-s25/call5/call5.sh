set -u
( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
timeout 140 python3 -m pytest -x -q -m gpu --tb=short -p no:cacheprovider "tests/test_window_hopper.py::test_gpu_hopper_backward_packed_and_fused_projection" > $OUT/tests.txt 2>&1; echo "rc=$?"
grep -v "^\s*$" $OUT/tests.txt | tail -40 | cut -c1-300
