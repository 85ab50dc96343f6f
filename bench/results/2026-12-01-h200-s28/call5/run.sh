( flock 9; python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; touch /tmp/site/.kunlunc-installed ) 9>/tmp/site.lock
export PYTHONPATH=/tmp/site:$PWD
RUNS="kunlun_60g:compiled_packed_bf16_graphed@512" NO_BLOCKS=1 MODELS_TIMEOUT=500 RUN_TIMEOUT=480 bash bench/gpu_run.sh models 2>&1 | tail -40
ls $OUT
