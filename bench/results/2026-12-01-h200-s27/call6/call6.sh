set -u
( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD TRITON_CACHE_AUTOTUNING=1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv >> $OUT/env.txt
t0=$(date +%s)
KUNLUNC_AUTOTUNE=0 timeout 330 python3 -m pytest -q -m gpu --tb=short tests/test_triton_model.py tests/test_packed.py tests/test_bench_entry.py tests/test_stream.py tests/test_wukong_experts.py tests/test_benchutil.py > $OUT/tests_models.txt 2>&1; echo "model tests rc=$? $(( $(date +%s)-t0 ))s" | tee -a $OUT/steps.txt
tail -15 $OUT/tests_models.txt
