"""An eager training step of the generated kunlun_6g (backend triton, packed, batch 16 and 128),
the twenty-seventh session's launch changes off (old: window and GDPA Triton kernels through
Triton's autotuner and JIT every launch, host TMA descriptors expanded by Triton's launcher) and
on (new), alternating in one process. Wall time a step over 30 steps after warm-up, and the GPU
kernel time a step for reference."""
import sys, time
sys.path.insert(0, "generated")
import torch
import kunlun_6g.bench as b
from kunlun_6g.kernels import window_attention as wa, gdpa as gd, seed_pooling as sp
bl = sp._bound_launch()
real = (wa._launch_tuned, gd._launch_tuned, bl._Descriptors.of)
def mode(new: bool):
    if new:
        wa._launch_tuned, gd._launch_tuned, bl._Descriptors.of = real
    else:
        wa._launch_tuned = gd._launch_tuned = lambda: None
        bl._Descriptors.of = staticmethod(lambda c: None)
    bl._BOUND.clear()
for batch in (16, 128):
    model, batches, step = b.training("cuda", batch_size=batch, backend="triton")
    for _ in range(3): step()
    torch.cuda.synchronize()
    for rnd in range(2):
        for new in (False, True):
            mode(new)
            for _ in range(5): step()
            torch.cuda.synchronize()
            n = 30
            t = time.perf_counter()
            for _ in range(n): step()
            torch.cuda.synchronize()
            wall = (time.perf_counter() - t) / n * 1e3
            gpu = b.kernel_seconds(step, 5) * 1e3
            print(f"batch {batch} round {rnd} {'new' if new else 'old'}: {wall:.2f} ms a step (wall), "
                  f"{gpu:.2f} ms of GPU kernels", flush=True)
    mode(True)
    del model, batches, step
    torch.cuda.empty_cache()
