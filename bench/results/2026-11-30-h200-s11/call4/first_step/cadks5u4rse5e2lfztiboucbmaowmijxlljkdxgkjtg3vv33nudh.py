# AOT ID: ['15_backward']
from ctypes import c_void_p, c_long, c_int
import torch
import math
import random
import os
import tempfile
from math import inf, nan
from cmath import nanj
from torch._inductor.hooks import run_intermediate_hooks
from torch._inductor.utils import maybe_profile
from torch._inductor.codegen.memory_planning import _align as align
from torch import device, empty_strided
from torch._inductor.async_compile import AsyncCompile
from torch._inductor.select_algorithm import extern_kernels
import triton
import triton.language as tl
from torch._inductor.runtime.triton_heuristics import start_graph, end_graph
from torch._C import _cuda_getCurrentRawStream as get_raw_stream

aten = torch.ops.aten
inductor_ops = torch.ops.inductor
_quantized = torch.ops._quantized
assert_size_stride = torch._C._dynamo.guards.assert_size_stride
assert_alignment = torch._C._dynamo.guards.assert_alignment
empty_strided_cpu = torch._C._dynamo.guards._empty_strided_cpu
empty_strided_cpu_pinned = torch._C._dynamo.guards._empty_strided_cpu_pinned
empty_strided_cuda = torch._C._dynamo.guards._empty_strided_cuda
empty_strided_xpu = torch._C._dynamo.guards._empty_strided_xpu
empty_strided_mtia = torch._C._dynamo.guards._empty_strided_mtia
reinterpret_tensor = torch._C._dynamo.guards._reinterpret_tensor
alloc_from_pool = torch.ops.inductor._alloc_from_pool
async_compile = AsyncCompile()
empty_strided_p2p = torch._C._distributed_c10d._SymmetricMemory.empty_strided_p2p


# kernel path: /tmp/first-step-ymhhjg7u/inductor/rk/crkqhsxnww35znuxwjezp2kn5t7znc2dygumqq4emlmzhpnessgp.py
# Topologically Sorted Source Nodes: [convert_element_type_12, mul_3, mul_4, sum_1, add, layer_norm, mul_5, sum_2, mul_6, sub_2, sub_3, div, mul_7, mul_8, sum_3, sum_4, convert_element_type_13], Original ATen: [aten._to_copy, aten.native_layer_norm_backward, aten.add, aten.native_layer_norm]
# Source node to ATen node mapping:
#   add => add
#   convert_element_type_12 => convert_element_type_12
#   convert_element_type_13 => convert_element_type_13
#   div => div
#   layer_norm => convert_element_type_10, mul, sub
#   mul_3 => mul_3
#   mul_4 => mul_4
#   mul_5 => mul_5
#   mul_6 => mul_6
#   mul_7 => mul_7
#   mul_8 => mul_8
#   sub_2 => sub_2
#   sub_3 => sub_3
#   sum_1 => sum_1
#   sum_2 => sum_2
#   sum_3 => sum_3
#   sum_4 => sum_4
# Graph fragment:
#   %tangents_1 : Tensor "bf16[634880, 256][256, 1]cuda:0" = PlaceHolder[target=tangents_1]
#   %primals_8 : Tensor "f32[256][1]cuda:0" = PlaceHolder[target=primals_8]
#   %primals_4 : Tensor "bf16[634880, 256][256, 1]cuda:0" = PlaceHolder[target=primals_4]
#   %addmm_1 : Tensor "bf16[634880, 256][256, 1]cuda:0" = PlaceHolder[target=addmm_1]
#   %getitem_8 : Tensor "f32[634880, 1][1, 1]cuda:0" = PlaceHolder[target=getitem_8]
#   %rsqrt : Tensor "f32[634880, 1][1, 1]cuda:0" = PlaceHolder[target=rsqrt]
#   %sum_1 : Tensor "f32[634880, 1][1, 634880]cuda:0" = PlaceHolder[target=sum_1]
#   %sum_2 : Tensor "f32[634880, 1][1, 634880]cuda:0" = PlaceHolder[target=sum_2]
#   %convert_element_type_12 : Tensor "f32[634880, 256][256, 1]cuda:0"[num_users=3] = call_function[target=torch.ops.prims.convert_element_type.default](args = (%tangents_1, torch.float32), kwargs = {})
#   %mul_3 : Tensor "f32[634880, 256][256, 1]cuda:0"[num_users=3] = call_function[target=torch.ops.aten.mul.Tensor](args = (%convert_element_type_12, %primals_8), kwargs = {})
#   %mul_4 : Tensor "f32[634880, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.mul.Tensor](args = (%mul_3, 256), kwargs = {})
#   %sum_1 : Tensor "f32[634880, 1][1, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.sum.dim_IntList](args = (%mul_3, [1], True), kwargs = {})
#   %add : Tensor "bf16[634880, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.add.Tensor](args = (%primals_4, %addmm_1), kwargs = {})
#   %convert_element_type_10 : Tensor "f32[634880, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.prims.convert_element_type.default](args = (%add, torch.float32), kwargs = {})
#   %sub : Tensor "f32[634880, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.sub.Tensor](args = (%convert_element_type_10, %getitem_8), kwargs = {})
#   %mul : Tensor "f32[634880, 256][256, 1]cuda:0"[num_users=3] = call_function[target=torch.ops.aten.mul.Tensor](args = (%sub, %rsqrt), kwargs = {})
#   %mul_5 : Tensor "f32[634880, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.mul.Tensor](args = (%mul_3, %mul), kwargs = {})
#   %sum_2 : Tensor "f32[634880, 1][1, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.sum.dim_IntList](args = (%mul_5, [1], True), kwargs = {})
#   %mul_6 : Tensor "f32[634880, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.mul.Tensor](args = (%mul, %sum_2), kwargs = {})
#   %sub_2 : Tensor "f32[634880, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.sub.Tensor](args = (%mul_4, %sum_1), kwargs = {})
#   %sub_3 : Tensor "f32[634880, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.sub.Tensor](args = (%sub_2, %mul_6), kwargs = {})
#   %div : Tensor "f32[634880, 1][1, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.div.Tensor](args = (%rsqrt, 256), kwargs = {})
#   %mul_7 : Tensor "f32[634880, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.mul.Tensor](args = (%div, %sub_3), kwargs = {})
#   %mul_8 : Tensor "f32[634880, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.mul.Tensor](args = (%convert_element_type_12, %mul), kwargs = {})
#   %sum_3 : Tensor "f32[256][1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.sum.dim_IntList](args = (%mul_8, [0]), kwargs = {})
#   %sum_4 : Tensor "f32[256][1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.sum.dim_IntList](args = (%convert_element_type_12, [0]), kwargs = {})
#   %convert_element_type_13 : Tensor "bf16[634880, 256][256, 1]cuda:0"[num_users=4] = call_function[target=torch.ops.prims.convert_element_type.default](args = (%mul_7, torch.bfloat16), kwargs = {})
#   return %sum_1,%sum_2,%convert_element_type_13
triton_per_fused__to_copy_add_native_layer_norm_native_layer_norm_backward_0 = async_compile.triton('triton_per_fused__to_copy_add_native_layer_norm_native_layer_norm_backward_0', '''
import triton
import triton.language as tl

from torch._inductor.runtime import triton_helpers, triton_heuristics
from torch._inductor.runtime.triton_helpers import libdevice, math as tl_math
from torch._inductor.runtime.hints import AutotuneHint, ReductionHint, TileHint, DeviceProperties
triton_helpers.set_driver_to_gpu()

@triton_heuristics.persistent_reduction(
    size_hints={'x': 1048576, 'r0_': 256},
    reduction_hint=ReductionHint.INNER,
    filename=__file__,
    triton_meta={'signature': {'in_ptr0': '*bf16', 'in_ptr1': '*fp32', 'in_ptr2': '*bf16', 'in_ptr3': '*bf16', 'in_ptr4': '*fp32', 'in_ptr5': '*fp32', 'out_ptr2': '*bf16', 'ws_ptr': '*fp32', 'xnumel': 'i32', 'r0_numel': 'i32', 'XBLOCK': 'constexpr', 'RSPLIT_SIZE': 'constexpr', 'NUM_STAGES': 'constexpr'}, 'device': DeviceProperties(type='cuda', index=0, multi_processor_count=132, cc=90, major=9, regs_per_multiprocessor=65536, max_threads_per_multi_processor=2048, max_threads_per_block=1024, warp_size=32), 'constants': {}, 'native_matmul': False, 'enable_fp_fusion': True, 'launch_pdl': False, 'disable_ftz': False, 'configs': [{(0,): [['tt.divisibility', 16]], (1,): [['tt.divisibility', 16]], (2,): [['tt.divisibility', 16]], (3,): [['tt.divisibility', 16]], (4,): [['tt.divisibility', 16]], (5,): [['tt.divisibility', 16]], (6,): [['tt.divisibility', 16]], (7,): [['tt.divisibility', 16]], (8,): [['tt.divisibility', 16]], (9,): [['tt.divisibility', 16]]}]},
    inductor_meta={'grid_type': 'MixOrderReductionGrid', 'autotune_hints': set(), 'kernel_name': 'triton_per_fused__to_copy_add_native_layer_norm_native_layer_norm_backward_0', 'mutated_arg_names': [], 'optimize_mem': True, 'no_x_dim': None, 'atomic_add_found': False, 'num_load': 6, 'num_store': -1, 'num_reduction': 2, 'backend_hash': '91D1D1166449D9E2EB66EB9770C9E2C3B0FEB787341F27FEB4D3F0338DA50336', 'assert_indirect_indexing': True, 'autotune_local_cache': True, 'autotune_pointwise': True, 'autotune_remote_cache': None, 'force_disable_caches': False, 'dynamic_scale_rblock': True, 'max_autotune': False, 'max_autotune_pointwise': False, 'min_split_scan_rblock': 256, 'spill_threshold': 16, 'store_cubin': False, 'deterministic': False, 'force_filter_reduction_configs': False, 'mix_order_reduction_allow_multi_stages': False, 'are_deterministic_algorithms_enabled': False, 'RSPLIT_SIZE': 128}
)
@triton.jit
def triton_per_fused__to_copy_add_native_layer_norm_native_layer_norm_backward_0(in_ptr0, in_ptr1, in_ptr2, in_ptr3, in_ptr4, in_ptr5, out_ptr2, ws_ptr, xnumel, r0_numel, XBLOCK : tl.constexpr, RSPLIT_SIZE : tl.constexpr, NUM_STAGES : tl.constexpr):
    xnumel = 634880
    r0_numel = 256
    R0_BLOCK: tl.constexpr = 256
    rnumel = r0_numel
    RBLOCK: tl.constexpr = R0_BLOCK
    xoffset = tl.program_id(0) * RSPLIT_SIZE
    xindex = xoffset + tl.arange(0, XBLOCK)[:, None]
    xmask = tl.full([XBLOCK], True, tl.int1)[:, None]
    r0_index = tl.arange(0, R0_BLOCK)[None, :]
    r0_offset = 0
    r0_mask = tl.full([R0_BLOCK], True, tl.int1)[None, :]
    roffset = r0_offset
    rindex = r0_index
    r0_1 = r0_index
    accum0 = tl.full([R0_BLOCK], 0, tl.float32)[None, :]
    accum1 = tl.full([R0_BLOCK], 0, tl.float32)[None, :]
    split_size = min(RSPLIT_SIZE, xnumel - xoffset)
    for _ in tl.range(0, split_size, XBLOCK, num_stages=NUM_STAGES):
        x0 = xindex
        xindex += XBLOCK
        tmp0 = tl.load(in_ptr0 + (r0_1 + 256*x0), None).to(tl.float32)
        tmp2 = tl.load(in_ptr1 + (r0_1), None, eviction_policy='evict_last')
        tmp7 = tl.load(in_ptr2 + (r0_1 + 256*x0), None).to(tl.float32)
        tmp8 = tl.load(in_ptr3 + (r0_1 + 256*x0), None).to(tl.float32)
        tmp11 = tl.load(in_ptr4 + (x0), None, eviction_policy='evict_last')
        tmp13 = tl.load(in_ptr5 + (x0), None, eviction_policy='evict_last')
        tmp1 = tmp0.to(tl.float32)
        tmp3 = tmp1 * tmp2
        tmp4 = tl.broadcast_to(tmp3, [XBLOCK, R0_BLOCK])
        tmp6 = tl.sum(tmp4, 1)[:, None].to(tl.float32)
        tmp9 = tmp7 + tmp8
        tmp10 = tmp9.to(tl.float32)
        tmp12 = tmp10 - tmp11
        tmp14 = tmp12 * tmp13
        tmp15 = tmp3 * tmp14
        tmp16 = tl.broadcast_to(tmp15, [XBLOCK, R0_BLOCK])
        tmp18 = tl.sum(tmp16, 1)[:, None].to(tl.float32)
        tmp19 = tl.full([1, 1], 0.00390625, tl.float32)
        tmp20 = tmp13 * tmp19
        tmp21 = tl.full([1, 1], 256.0, tl.float32)
        tmp22 = tmp3 * tmp21
        tmp23 = tmp22 - tmp6
        tmp24 = tmp14 * tmp18
        tmp25 = tmp23 - tmp24
        tmp26 = tmp20 * tmp25
        tmp27 = tmp26.to(tl.float32)
        tmp28 = tmp1 * tmp14
        tl.store(out_ptr2 + (r0_1 + 256*x0), tmp27, None)
        tmp29 = tl.sum(tmp28, 0)
        tmp30 = accum0 + tmp29
        accum0 = tmp30
        tmp31 = tl.sum(tmp1, 0)
        tmp32 = accum1 + tmp31
        accum1 = tmp32
    tl.store(ws_ptr + (tl.program_id(0) + 0 * tl.num_programs(0)) * r0_numel + r0_index, accum0, r0_mask)
    tl.store(ws_ptr + (tl.program_id(0) + 1 * tl.num_programs(0)) * r0_numel + r0_index, accum1, r0_mask)
''', device_str='cuda')


# kernel path: /tmp/first-step-ymhhjg7u/inductor/ir/circxkkk7634dhuvswuhyfw6vy3qzvksuwsiygdxfdqoajnfwvx2.py
# Topologically Sorted Source Nodes: [sum_5], Original ATen: [aten.sum]
# Source node to ATen node mapping:
#   sum_5 => sum_5
# Graph fragment:
#   %convert_element_type_13 : Tensor "bf16[634880, 256][256, 1]cuda:0" = PlaceHolder[target=convert_element_type_13]
#   %sum_5 : Tensor "f32[1, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.sum.dim_IntList](args = (%convert_element_type_13, [0], True), kwargs = {dtype: torch.float32})
#   return %buf9
triton_red_fused_sum_1 = async_compile.triton('triton_red_fused_sum_1', '''
import triton
import triton.language as tl

from torch._inductor.runtime import triton_helpers, triton_heuristics
from torch._inductor.runtime.triton_helpers import libdevice, math as tl_math
from torch._inductor.runtime.hints import AutotuneHint, ReductionHint, TileHint, DeviceProperties
triton_helpers.set_driver_to_gpu()

@triton_heuristics.reduction(
    size_hints={'x': 131072, 'r0_': 2048},
    reduction_hint=ReductionHint.OUTER,
    filename=__file__,
    triton_meta={'signature': {'in_ptr0': '*bf16', 'out_ptr0': '*fp32', 'xnumel': 'i32', 'r0_numel': 'i32', 'XBLOCK': 'constexpr', 'R0_BLOCK': 'constexpr'}, 'device': DeviceProperties(type='cuda', index=0, multi_processor_count=132, cc=90, major=9, regs_per_multiprocessor=65536, max_threads_per_multi_processor=2048, max_threads_per_block=1024, warp_size=32), 'constants': {}, 'native_matmul': False, 'enable_fp_fusion': True, 'launch_pdl': False, 'disable_ftz': False, 'configs': [{(0,): [['tt.divisibility', 16]], (1,): [['tt.divisibility', 16]], (2,): [['tt.divisibility', 16]], (3,): [['tt.divisibility', 16]]}]},
    inductor_meta={'grid_type': 'Grid1D', 'autotune_hints': set(), 'kernel_name': 'triton_red_fused_sum_1', 'mutated_arg_names': [], 'optimize_mem': True, 'no_x_dim': False, 'atomic_add_found': False, 'num_load': 1, 'num_store': 1, 'num_reduction': 1, 'backend_hash': '91D1D1166449D9E2EB66EB9770C9E2C3B0FEB787341F27FEB4D3F0338DA50336', 'assert_indirect_indexing': True, 'autotune_local_cache': True, 'autotune_pointwise': True, 'autotune_remote_cache': None, 'force_disable_caches': False, 'dynamic_scale_rblock': True, 'max_autotune': False, 'max_autotune_pointwise': False, 'min_split_scan_rblock': 256, 'spill_threshold': 16, 'store_cubin': False, 'deterministic': False, 'force_filter_reduction_configs': False, 'mix_order_reduction_allow_multi_stages': False, 'are_deterministic_algorithms_enabled': False, 'tiling_scores': {'x': 325693440, 'r0_': 0}}
)
@triton.jit
def triton_red_fused_sum_1(in_ptr0, out_ptr0, xnumel, r0_numel, XBLOCK : tl.constexpr, R0_BLOCK : tl.constexpr):
    xnumel = 79360
    r0_numel = 2048
    rnumel = r0_numel
    RBLOCK: tl.constexpr = R0_BLOCK
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:, None]
    xmask = xindex < xnumel
    r0_base = tl.arange(0, R0_BLOCK)[None, :]
    rbase = r0_base
    x0 = (xindex % 256)
    x1 = xindex // 256
    _tmp3 = tl.full([XBLOCK, R0_BLOCK], 0, tl.float32)
    x3 = xindex
    for r0_offset in tl.range(0, r0_numel, R0_BLOCK):
        r0_index = r0_offset + r0_base
        r0_mask = r0_index < r0_numel
        roffset = r0_offset
        rindex = r0_index
        r0_2 = r0_index
        tmp0 = tl.load(in_ptr0 + (x0 + 256*r0_2 + 524288*x1), r0_mask & xmask, eviction_policy='evict_first', other=0.0).to(tl.float32)
        tmp1 = tmp0.to(tl.float32)
        tmp2 = tl.broadcast_to(tmp1, [XBLOCK, R0_BLOCK])
        tmp4 = _tmp3 + tmp2
        _tmp3 = tl.where(r0_mask & xmask, tmp4, _tmp3)
    tmp3 = tl.sum(_tmp3, 1)[:, None]
    tl.store(out_ptr0 + (x3), tmp3, xmask)
''', device_str='cuda')


# kernel path: /tmp/first-step-ymhhjg7u/inductor/ph/cphrledbnvolniixyrgpmle3ehumxle25jxl7zutf5sx73mxaco7.py
# Topologically Sorted Source Nodes: [sum_5], Original ATen: [aten.sum]
# Source node to ATen node mapping:
#   sum_5 => sum_5
# Graph fragment:
#   %buf9 : Tensor "f32[1, 256, 310][79360, 1, 256]cuda:0" = PlaceHolder[target=buf9]
#   %sum_5 : Tensor "f32[1, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.sum.dim_IntList](args = (%convert_element_type_13, [0], True), kwargs = {dtype: torch.float32})
#   return %sum_5
triton_red_fused_sum_2 = async_compile.triton('triton_red_fused_sum_2', '''
import triton
import triton.language as tl

from torch._inductor.runtime import triton_helpers, triton_heuristics
from torch._inductor.runtime.triton_helpers import libdevice, math as tl_math
from torch._inductor.runtime.hints import AutotuneHint, ReductionHint, TileHint, DeviceProperties
triton_helpers.set_driver_to_gpu()

@triton_heuristics.reduction(
    size_hints={'x': 256, 'r0_': 512},
    reduction_hint=ReductionHint.OUTER_TINY,
    filename=__file__,
    triton_meta={'signature': {'in_ptr0': '*fp32', 'out_ptr0': '*fp32', 'xnumel': 'i32', 'r0_numel': 'i32', 'XBLOCK': 'constexpr', 'R0_BLOCK': 'constexpr'}, 'device': DeviceProperties(type='cuda', index=0, multi_processor_count=132, cc=90, major=9, regs_per_multiprocessor=65536, max_threads_per_multi_processor=2048, max_threads_per_block=1024, warp_size=32), 'constants': {}, 'native_matmul': False, 'enable_fp_fusion': True, 'launch_pdl': False, 'disable_ftz': False, 'configs': [{(0,): [['tt.divisibility', 16]], (1,): [['tt.divisibility', 16]], (2,): [['tt.divisibility', 16]]}]},
    inductor_meta={'grid_type': 'Grid1D', 'autotune_hints': set(), 'kernel_name': 'triton_red_fused_sum_2', 'mutated_arg_names': [], 'optimize_mem': True, 'no_x_dim': False, 'atomic_add_found': False, 'num_load': 1, 'num_store': 1, 'num_reduction': 1, 'backend_hash': '91D1D1166449D9E2EB66EB9770C9E2C3B0FEB787341F27FEB4D3F0338DA50336', 'assert_indirect_indexing': True, 'autotune_local_cache': True, 'autotune_pointwise': True, 'autotune_remote_cache': None, 'force_disable_caches': False, 'dynamic_scale_rblock': True, 'max_autotune': False, 'max_autotune_pointwise': False, 'min_split_scan_rblock': 256, 'spill_threshold': 16, 'store_cubin': False, 'deterministic': False, 'force_filter_reduction_configs': False, 'mix_order_reduction_allow_multi_stages': False, 'are_deterministic_algorithms_enabled': False, 'tiling_scores': {'x': 319488, 'r0_': 0}}
)
@triton.jit
def triton_red_fused_sum_2(in_ptr0, out_ptr0, xnumel, r0_numel, XBLOCK : tl.constexpr, R0_BLOCK : tl.constexpr):
    xnumel = 256
    r0_numel = 310
    rnumel = r0_numel
    RBLOCK: tl.constexpr = R0_BLOCK
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:, None]
    xmask = xindex < xnumel
    r0_base = tl.arange(0, R0_BLOCK)[None, :]
    rbase = r0_base
    x0 = xindex
    _tmp2 = tl.full([XBLOCK, R0_BLOCK], 0, tl.float32)
    for r0_offset in tl.range(0, r0_numel, R0_BLOCK):
        r0_index = r0_offset + r0_base
        r0_mask = r0_index < r0_numel
        roffset = r0_offset
        rindex = r0_index
        r0_1 = r0_index
        tmp0 = tl.load(in_ptr0 + (x0 + 256*r0_1), r0_mask & xmask, eviction_policy='evict_first', other=0.0)
        tmp1 = tl.broadcast_to(tmp0, [XBLOCK, R0_BLOCK])
        tmp3 = _tmp2 + tmp1
        _tmp2 = tl.where(r0_mask & xmask, tmp3, _tmp2)
    tmp2 = tl.sum(_tmp2, 1)[:, None]
    tl.store(out_ptr0 + (x0), tmp2, xmask)
''', device_str='cuda')


# kernel path: /tmp/first-step-ymhhjg7u/inductor/dl/cdlfieb2sp27outz2rexk7wrvlhyhczefskmg6fgnr4vskoj3ydr.py
# Topologically Sorted Source Nodes: [convert_element_type_19], Original ATen: [aten._to_copy]
# Source node to ATen node mapping:
#   convert_element_type_19 => convert_element_type_19
# Graph fragment:
#   %mm_1 : Tensor "bf16[256, 256][256, 1]cuda:0" = PlaceHolder[target=mm_1]
#   %convert_element_type_19 : Tensor "f32[256, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.prims.convert_element_type.default](args = (%mm_1, torch.float32), kwargs = {})
#   return %convert_element_type_19
triton_poi_fused__to_copy_3 = async_compile.triton('triton_poi_fused__to_copy_3', '''
import triton
import triton.language as tl

from torch._inductor.runtime import triton_helpers, triton_heuristics
from torch._inductor.runtime.triton_helpers import libdevice, math as tl_math
from torch._inductor.runtime.hints import AutotuneHint, ReductionHint, TileHint, DeviceProperties
triton_helpers.set_driver_to_gpu()

@triton_heuristics.pointwise(
    size_hints={'x': 65536}, 
    filename=__file__,
    triton_meta={'signature': {'in_ptr0': '*bf16', 'out_ptr0': '*fp32', 'xnumel': 'i32', 'XBLOCK': 'constexpr'}, 'device': DeviceProperties(type='cuda', index=0, multi_processor_count=132, cc=90, major=9, regs_per_multiprocessor=65536, max_threads_per_multi_processor=2048, max_threads_per_block=1024, warp_size=32), 'constants': {}, 'native_matmul': False, 'enable_fp_fusion': True, 'launch_pdl': False, 'disable_ftz': False, 'configs': [{(0,): [['tt.divisibility', 16]], (1,): [['tt.divisibility', 16]], (2,): [['tt.divisibility', 16]]}]},
    inductor_meta={'grid_type': 'Grid1D', 'autotune_hints': set(), 'kernel_name': 'triton_poi_fused__to_copy_3', 'mutated_arg_names': [], 'optimize_mem': True, 'no_x_dim': False, 'atomic_add_found': False, 'num_load': 1, 'num_store': 1, 'num_reduction': 0, 'backend_hash': '91D1D1166449D9E2EB66EB9770C9E2C3B0FEB787341F27FEB4D3F0338DA50336', 'assert_indirect_indexing': True, 'autotune_local_cache': True, 'autotune_pointwise': True, 'autotune_remote_cache': None, 'force_disable_caches': False, 'dynamic_scale_rblock': True, 'max_autotune': False, 'max_autotune_pointwise': False, 'min_split_scan_rblock': 256, 'spill_threshold': 16, 'store_cubin': False, 'deterministic': False, 'force_filter_reduction_configs': False, 'mix_order_reduction_allow_multi_stages': False, 'are_deterministic_algorithms_enabled': False, 'tiling_scores': {'x': 655360}},
    min_elem_per_thread=0
)
@triton.jit
def triton_poi_fused__to_copy_3(in_ptr0, out_ptr0, xnumel, XBLOCK : tl.constexpr):
    xnumel = 65536
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:]
    xmask = tl.full([XBLOCK], True, tl.int1)[:]
    x0 = xindex
    tmp0 = tl.load(in_ptr0 + (x0), None).to(tl.float32)
    tmp1 = tmp0.to(tl.float32)
    tl.store(out_ptr0 + (x0), tmp1, None)
''', device_str='cuda')


# kernel path: /tmp/first-step-ymhhjg7u/inductor/4j/c4jg44wd5n6enx4ovnyobrtiorevotyjwsigolotolob7d7ln2p5.py
# Topologically Sorted Source Nodes: [as_strided_default, clone_default], Original ATen: []
# Source node to ATen node mapping:
#   as_strided_default => as_strided_default
#   clone_default => clone_default
# Graph fragment:
#   %getitem_5 : Tensor "i64[1024][1]cuda:0" = PlaceHolder[target=getitem_5]
#   %as_strided_default : Tensor "i64[1024][1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.as_strided.default](args = (%getitem_5, [1024], [1], 0), kwargs = {})
#   %clone_default : Tensor "i64[1024][1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.clone.default](args = (%as_strided_default,), kwargs = {})
#   return %clone_default
triton_poi_fused_4 = async_compile.triton('triton_poi_fused_4', '''
import triton
import triton.language as tl

from torch._inductor.runtime import triton_helpers, triton_heuristics
from torch._inductor.runtime.triton_helpers import libdevice, math as tl_math
from torch._inductor.runtime.hints import AutotuneHint, ReductionHint, TileHint, DeviceProperties
triton_helpers.set_driver_to_gpu()

@triton_heuristics.pointwise(
    size_hints={'x': 1024}, 
    filename=__file__,
    triton_meta={'signature': {'in_out_ptr0': '*i64', 'xnumel': 'i32', 'XBLOCK': 'constexpr'}, 'device': DeviceProperties(type='cuda', index=0, multi_processor_count=132, cc=90, major=9, regs_per_multiprocessor=65536, max_threads_per_multi_processor=2048, max_threads_per_block=1024, warp_size=32), 'constants': {}, 'native_matmul': False, 'enable_fp_fusion': True, 'launch_pdl': False, 'disable_ftz': False, 'configs': [{(0,): [['tt.divisibility', 16]], (1,): [['tt.divisibility', 16]]}]},
    inductor_meta={'grid_type': 'Grid1D', 'autotune_hints': set(), 'kernel_name': 'triton_poi_fused_4', 'mutated_arg_names': ['in_out_ptr0'], 'optimize_mem': True, 'no_x_dim': False, 'atomic_add_found': False, 'num_load': 1, 'num_store': 1, 'num_reduction': 0, 'backend_hash': '91D1D1166449D9E2EB66EB9770C9E2C3B0FEB787341F27FEB4D3F0338DA50336', 'assert_indirect_indexing': True, 'autotune_local_cache': True, 'autotune_pointwise': True, 'autotune_remote_cache': None, 'force_disable_caches': False, 'dynamic_scale_rblock': True, 'max_autotune': False, 'max_autotune_pointwise': False, 'min_split_scan_rblock': 256, 'spill_threshold': 16, 'store_cubin': False, 'deterministic': False, 'force_filter_reduction_configs': False, 'mix_order_reduction_allow_multi_stages': False, 'are_deterministic_algorithms_enabled': False, 'tiling_scores': {'x': 24576}},
    min_elem_per_thread=0
)
@triton.jit
def triton_poi_fused_4(in_out_ptr0, xnumel, XBLOCK : tl.constexpr):
    xnumel = 1024
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:]
    xmask = xindex < xnumel
    x0 = xindex
    tmp0 = tl.load(in_out_ptr0 + (x0), xmask)
    tl.store(in_out_ptr0 + (x0), tmp0, xmask)
''', device_str='cuda')


# Original path: /work/main/generated/kunlun_6g/kernels/window_attention.py:271
_bwd_delta_kernel_0 = async_compile.triton('_bwd_delta_kernel', '''

import triton
import triton.language as tl

from torch._inductor.runtime import triton_helpers, triton_heuristics
from torch._inductor.runtime.triton_helpers import libdevice, math as tl_math
from torch._inductor.runtime.hints import AutotuneHint, ReductionHint, TileHint, DeviceProperties

@triton_heuristics.user_autotune(
    configs=[],
    inductor_meta={'grid_type': 'FixedGrid', 'fixed_grid': ['_grid_0', '_grid_1', '_grid_2'], 'extra_launcher_args': ['_grid_0', '_grid_1', '_grid_2'], 'kernel_name': '_bwd_delta_kernel_0', 'backend_hash': '91D1D1166449D9E2EB66EB9770C9E2C3B0FEB787341F27FEB4D3F0338DA50336', 'assert_indirect_indexing': True, 'autotune_local_cache': True, 'autotune_pointwise': True, 'autotune_remote_cache': None, 'force_disable_caches': False, 'dynamic_scale_rblock': True, 'max_autotune': False, 'max_autotune_pointwise': False, 'min_split_scan_rblock': 256, 'spill_threshold': 16, 'store_cubin': False, 'deterministic': False, 'force_filter_reduction_configs': False, 'mix_order_reduction_allow_multi_stages': False, 'are_deterministic_algorithms_enabled': False},
    triton_meta={'signature': {'O': '*bf16', 'DO': '*bf16', 'DELTA': '*fp32', 'LENGTHS': '*i64', 'STARTS': '*i64', 'stride_ob': 'i32', 'stride_oh': 'i32', 'stride_ot': 'i32', 'stride_od': 'constexpr', 'stride_gb': 'i32', 'stride_gh': 'i32', 'stride_gt': 'i32', 'stride_gd': 'constexpr', 'H': 'i32', 'T': 'i32', 'HEAD_D': 'constexpr', 'BLOCK_D': 'constexpr', 'BLOCK_M': 'constexpr', 'PACKED': 'constexpr'}, 'device': DeviceProperties(type='cuda', index=0, multi_processor_count=132, cc=90, major=9, regs_per_multiprocessor=65536, max_threads_per_multi_processor=2048, max_threads_per_block=1024, warp_size=32), 'constants': {'stride_od': 1, 'stride_gd': 1, 'HEAD_D': 64, 'BLOCK_D': 64, 'BLOCK_M': 64, 'PACKED': True}, 'configs': [{(0,): [['tt.divisibility', 16]], (1,): [['tt.divisibility', 16]], (2,): [['tt.divisibility', 16]], (3,): [['tt.divisibility', 16]], (4,): [['tt.divisibility', 16]], (5,): [['tt.divisibility', 16]], (6,): [['tt.divisibility', 16]], (7,): [['tt.divisibility', 16]], (9,): [['tt.divisibility', 16]], (10,): [['tt.divisibility', 16]], (11,): [['tt.divisibility', 16]], (14,): [['tt.divisibility', 16]]}]},
    filename=__file__,
    custom_kernel=True,
)
@triton.jit
def _bwd_delta_kernel(O, DO, DELTA, LENGTHS, STARTS,
                      stride_ob, stride_oh, stride_ot, stride_od,
                      stride_gb, stride_gh, stride_gt, stride_gd,
                      H, T,
                      HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
                      PACKED: tl.constexpr):
    """delta_i = rowsum(dO_i ⊙ O_i) in fp32; 0 past the length (dO there may be garbage)."""
    start_m, b, h, bh, length, row0, limit = _program_tile(T, LENGTHS, STARTS, H, BLOCK_M, PACKED)
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    o = _load_rows(_head(O, b, h, row0, stride_ob, stride_oh, stride_ot), offs_m, offs_d,
                   stride_ot, stride_od, length, HEAD_D, BLOCK_D, True)
    do = _load_rows(_head(DO, b, h, row0, stride_gb, stride_gh, stride_gt), offs_m, offs_d,
                    stride_gt, stride_gd, length, HEAD_D, BLOCK_D, True)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(DELTA + bh.to(tl.int64) * T + offs_m, delta, mask=offs_m < T)

@triton.jit
def _program_tile(T, LENGTHS, STARTS, H, BLOCK: tl.constexpr, PACKED: tl.constexpr):
    """(tile start, b, h, bh, length, row0, limit) of this program; the tile index varies fastest.

    Padded layout: example b's rows are its own [T] axis (row0 = 0) and every row up to T is
    written (zeros past the length). Packed layout (PACKED): example b's rows start at row
    STARTS[b] of one [N] axis shared by the batch, and nothing past its length is written (those
    rows belong to the next example)."""
    pid = tl.program_id(0)
    n_tiles = tl.cdiv(T, BLOCK)
    bh = pid // n_tiles
    start = (pid % n_tiles) * BLOCK
    b = bh // H
    length = tl.load(LENGTHS + b).to(tl.int32)
    length = tl.minimum(tl.maximum(length, 0), T)
    if PACKED:
        row0 = tl.load(STARTS + b).to(tl.int64)
        limit = length
    else:
        row0 = tl.program_id(0).to(tl.int64) * 0  # a 0-d int64 that every backend accepts
        limit = T
    return start, b, bh - b * H, bh, length, row0, limit

@triton.jit
def _load_rows(base, rows, cols, stride_r, stride_c, limit,
               HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, CHECK_ROWS: tl.constexpr):
    """Tile [len(rows), BLOCK_D]; rows >= limit and padded columns read as 0 (never garbage)."""
    ptrs = base + rows[:, None] * stride_r + cols[None, :] * stride_c
    if CHECK_ROWS:
        mask = rows[:, None] < limit
        if HEAD_D != BLOCK_D:
            mask = mask & (cols[None, :] < HEAD_D)
        x = tl.load(ptrs, mask=mask, other=0.0)
    elif HEAD_D != BLOCK_D:
        x = tl.load(ptrs, mask=cols[None, :] < HEAD_D, other=0.0)
    else:
        x = tl.load(ptrs)
    return x

@triton.jit
def _head(X, b, h, row0, stride_b, stride_h, stride_t):
    """Pointer to row 0 of example b, head h (int64 offsets)."""
    return X + b.to(tl.int64) * stride_b + h.to(tl.int64) * stride_h + row0 * stride_t
''', device_str='cuda')


# Original path: /work/main/generated/kunlun_6g/kernels/window_attention.py:327
_bwd_dkdv_kernel_1 = async_compile.triton('_bwd_dkdv_kernel', '''

import triton
import triton.language as tl

from torch._inductor.runtime import triton_helpers, triton_heuristics
from torch._inductor.runtime.triton_helpers import libdevice, math as tl_math
from torch._inductor.runtime.hints import AutotuneHint, ReductionHint, TileHint, DeviceProperties

@triton_heuristics.user_autotune(
    configs=[{'BLOCK_M': 64, 'BLOCK_N': 32, 'num_warps': 8, 'num_stages': 3}, {'BLOCK_M': 32, 'BLOCK_N': 128, 'num_warps': 4, 'num_stages': 3}, {'BLOCK_M': 64, 'BLOCK_N': 128, 'num_warps': 8, 'num_stages': 3}, {'BLOCK_M': 64, 'BLOCK_N': 64, 'num_warps': 4, 'num_stages': 3}, {'BLOCK_M': 32, 'BLOCK_N': 64, 'num_warps': 4, 'num_stages': 3}, {'BLOCK_M': 32, 'BLOCK_N': 128, 'num_warps': 8, 'num_stages': 2}, {'BLOCK_M': 32, 'BLOCK_N': 64, 'num_warps': 8, 'num_stages': 3}, {'BLOCK_M': 64, 'BLOCK_N': 64, 'num_warps': 8, 'num_stages': 3}, {'BLOCK_M': 32, 'BLOCK_N': 32, 'num_warps': 4, 'num_stages': 3}],
    inductor_meta={'grid_type': 'PrecomputedGrid', 'precomputed_grids': [{'config': {'BLOCK_M': 64, 'BLOCK_N': 32, 'num_warps': 8, 'num_stages': 3}, 'python': ['131072', '1', '1'], 'cpp': ['131072L', '1L', '1L'], 'python_slow': ['131072', '1', '1']}, {'config': {'BLOCK_M': 32, 'BLOCK_N': 128, 'num_warps': 4, 'num_stages': 3}, 'python': ['32768', '1', '1'], 'cpp': ['32768L', '1L', '1L'], 'python_slow': ['32768', '1', '1']}, {'config': {'BLOCK_M': 64, 'BLOCK_N': 128, 'num_warps': 8, 'num_stages': 3}, 'python': ['32768', '1', '1'], 'cpp': ['32768L', '1L', '1L'], 'python_slow': ['32768', '1', '1']}, {'config': {'BLOCK_M': 64, 'BLOCK_N': 64, 'num_warps': 4, 'num_stages': 3}, 'python': ['65536', '1', '1'], 'cpp': ['65536L', '1L', '1L'], 'python_slow': ['65536', '1', '1']}, {'config': {'BLOCK_M': 32, 'BLOCK_N': 64, 'num_warps': 4, 'num_stages': 3}, 'python': ['65536', '1', '1'], 'cpp': ['65536L', '1L', '1L'], 'python_slow': ['65536', '1', '1']}, {'config': {'BLOCK_M': 32, 'BLOCK_N': 128, 'num_warps': 8, 'num_stages': 2}, 'python': ['32768', '1', '1'], 'cpp': ['32768L', '1L', '1L'], 'python_slow': ['32768', '1', '1']}, {'config': {'BLOCK_M': 32, 'BLOCK_N': 64, 'num_warps': 8, 'num_stages': 3}, 'python': ['65536', '1', '1'], 'cpp': ['65536L', '1L', '1L'], 'python_slow': ['65536', '1', '1']}, {'config': {'BLOCK_M': 64, 'BLOCK_N': 64, 'num_warps': 8, 'num_stages': 3}, 'python': ['65536', '1', '1'], 'cpp': ['65536L', '1L', '1L'], 'python_slow': ['65536', '1', '1']}, {'config': {'BLOCK_M': 32, 'BLOCK_N': 32, 'num_warps': 4, 'num_stages': 3}, 'python': ['131072', '1', '1'], 'cpp': ['131072L', '1L', '1L'], 'python_slow': ['131072', '1', '1']}], 'extra_launcher_args': [], 'kernel_name': '_bwd_dkdv_kernel_1', 'backend_hash': '91D1D1166449D9E2EB66EB9770C9E2C3B0FEB787341F27FEB4D3F0338DA50336', 'assert_indirect_indexing': True, 'autotune_local_cache': True, 'autotune_pointwise': True, 'autotune_remote_cache': None, 'force_disable_caches': False, 'dynamic_scale_rblock': True, 'max_autotune': False, 'max_autotune_pointwise': False, 'min_split_scan_rblock': 256, 'spill_threshold': 16, 'store_cubin': False, 'deterministic': False, 'force_filter_reduction_configs': False, 'mix_order_reduction_allow_multi_stages': False, 'are_deterministic_algorithms_enabled': False},
    triton_meta={'signature': {'Q': '*bf16', 'K': '*bf16', 'V': '*bf16', 'DO': '*bf16', 'LSE': '*fp32', 'DELTA': '*fp32', 'DK': '*bf16', 'DV': '*bf16', 'LENGTHS': '*i64', 'STARTS': '*i64', 'stride_qb': 'i32', 'stride_qh': 'i32', 'stride_qt': 'i32', 'stride_qd': 'constexpr', 'stride_kb': 'i32', 'stride_kh': 'i32', 'stride_kt': 'i32', 'stride_kd': 'constexpr', 'stride_vb': 'i32', 'stride_vh': 'i32', 'stride_vt': 'i32', 'stride_vd': 'constexpr', 'stride_gb': 'i32', 'stride_gh': 'i32', 'stride_gt': 'i32', 'stride_gd': 'constexpr', 'stride_dkb': 'i32', 'stride_dkh': 'i32', 'stride_dkt': 'i32', 'stride_dkd': 'constexpr', 'stride_dvb': 'i32', 'stride_dvh': 'i32', 'stride_dvt': 'i32', 'stride_dvd': 'constexpr', 'H': 'i32', 'T': 'i32', 'LEFT': 'i32', 'RIGHT': 'i32', 'scale': 'fp64', 'scale_log2': 'fp64', 'HEAD_D': 'constexpr', 'BLOCK_D': 'constexpr', 'PRECISION': 'constexpr', 'PACKED': 'constexpr', 'BLOCK_M': 'constexpr', 'BLOCK_N': 'constexpr'}, 'device': DeviceProperties(type='cuda', index=0, multi_processor_count=132, cc=90, major=9, regs_per_multiprocessor=65536, max_threads_per_multi_processor=2048, max_threads_per_block=1024, warp_size=32), 'constants': {'stride_qd': 1, 'stride_kd': 1, 'stride_vd': 1, 'stride_gd': 1, 'stride_dkd': 1, 'stride_dvd': 1, 'HEAD_D': 64, 'BLOCK_D': 64, 'PRECISION': 'tf32', 'PACKED': True}, 'configs': [{(0,): [['tt.divisibility', 16]], (1,): [['tt.divisibility', 16]], (2,): [['tt.divisibility', 16]], (3,): [['tt.divisibility', 16]], (4,): [['tt.divisibility', 16]], (5,): [['tt.divisibility', 16]], (6,): [['tt.divisibility', 16]], (7,): [['tt.divisibility', 16]], (8,): [['tt.divisibility', 16]], (9,): [['tt.divisibility', 16]], (10,): [['tt.divisibility', 16]], (11,): [['tt.divisibility', 16]], (12,): [['tt.divisibility', 16]], (14,): [['tt.divisibility', 16]], (15,): [['tt.divisibility', 16]], (16,): [['tt.divisibility', 16]], (18,): [['tt.divisibility', 16]], (19,): [['tt.divisibility', 16]], (20,): [['tt.divisibility', 16]], (22,): [['tt.divisibility', 16]], (23,): [['tt.divisibility', 16]], (24,): [['tt.divisibility', 16]], (26,): [['tt.divisibility', 16]], (27,): [['tt.divisibility', 16]], (28,): [['tt.divisibility', 16]], (30,): [['tt.divisibility', 16]], (31,): [['tt.divisibility', 16]], (32,): [['tt.divisibility', 16]], (35,): [['tt.divisibility', 16]], (36,): [['tt.divisibility', 16]], (37,): [['tt.divisibility', 16]]}]},
    filename=__file__,
    custom_kernel=True,
)
@triton.jit
def _bwd_dkdv_kernel(Q, K, V, DO, LSE, DELTA, DK, DV, LENGTHS, STARTS,
                     stride_qb, stride_qh, stride_qt, stride_qd,
                     stride_kb, stride_kh, stride_kt, stride_kd,
                     stride_vb, stride_vh, stride_vt, stride_vd,
                     stride_gb, stride_gh, stride_gt, stride_gd,
                     stride_dkb, stride_dkh, stride_dkt, stride_dkd,
                     stride_dvb, stride_dvh, stride_dvt, stride_dvd,
                     H, T, LEFT, RIGHT, scale, scale_log2,
                     HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr, PACKED: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # torch.compile passes Python floats as fp64: compute in fp32 as eager launches do
    scale, scale_log2 = tl.cast(scale, tl.float32), tl.cast(scale_log2, tl.float32)
    start_n, b, h, bh, length, row0, limit = _program_tile(T, LENGTHS, STARTS, H, BLOCK_N, PACKED)
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    dk_base = _head(DK, b, h, row0, stride_dkb, stride_dkh, stride_dkt)
    dv_base = _head(DV, b, h, row0, stride_dvb, stride_dvh, stride_dvt)
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    if start_n >= length:  # the whole key tile is padding: zero gradients, nothing computed
        _store_rows(dk_base, offs_n, offs_d, stride_dkt, stride_dkd, dk, limit, HEAD_D, BLOCK_D)
        _store_rows(dv_base, offs_n, offs_d, stride_dvt, stride_dvd, dv, limit, HEAD_D, BLOCK_D)
        return

    k = _load_rows(_head(K, b, h, row0, stride_kb, stride_kh, stride_kt), offs_n, offs_d,
                   stride_kt, stride_kd, length, HEAD_D, BLOCK_D, True)
    v = _load_rows(_head(V, b, h, row0, stride_vb, stride_vh, stride_vt), offs_n, offs_d,
                   stride_vt, stride_vd, length, HEAD_D, BLOCK_D, True)
    q_base = _head(Q, b, h, row0, stride_qb, stride_qh, stride_qt)
    do_base = _head(DO, b, h, row0, stride_gb, stride_gh, stride_gt)
    lse_base = LSE + bh.to(tl.int64) * T
    delta_base = DELTA + bh.to(tl.int64) * T
    # Queries that see key j satisfy j - RIGHT <= i <= j + LEFT.
    lo, mid_lo, mid_hi, hi = _tile_ranges(start_n, length, RIGHT, LEFT, BLOCK_N, BLOCK_M)
    dk, dv = _dkdv_tiles(dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qt,
                         stride_qd, stride_gt, stride_gd, offs_n, offs_d, lo, mid_lo, mid_hi, hi,
                         length, LEFT, RIGHT, scale_log2, HEAD_D, BLOCK_D, BLOCK_M, True,
                         PRECISION)
    dk, dv = _dkdv_tiles(dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qt,
                         stride_qd, stride_gt, stride_gd, offs_n, offs_d, lo, mid_lo, mid_hi, hi,
                         length, LEFT, RIGHT, scale_log2, HEAD_D, BLOCK_D, BLOCK_M, False,
                         PRECISION)
    # Keys past the length were never masked out of P^T: drop their rows here.
    keep = (offs_n < length)[:, None]
    _store_rows(dk_base, offs_n, offs_d, stride_dkt, stride_dkd, tl.where(keep, dk * scale, 0.0),
                limit, HEAD_D, BLOCK_D)
    _store_rows(dv_base, offs_n, offs_d, stride_dvt, stride_dvd, tl.where(keep, dv, 0.0),
                limit, HEAD_D, BLOCK_D)

@triton.jit
def _program_tile(T, LENGTHS, STARTS, H, BLOCK: tl.constexpr, PACKED: tl.constexpr):
    """(tile start, b, h, bh, length, row0, limit) of this program; the tile index varies fastest.

    Padded layout: example b's rows are its own [T] axis (row0 = 0) and every row up to T is
    written (zeros past the length). Packed layout (PACKED): example b's rows start at row
    STARTS[b] of one [N] axis shared by the batch, and nothing past its length is written (those
    rows belong to the next example)."""
    pid = tl.program_id(0)
    n_tiles = tl.cdiv(T, BLOCK)
    bh = pid // n_tiles
    start = (pid % n_tiles) * BLOCK
    b = bh // H
    length = tl.load(LENGTHS + b).to(tl.int32)
    length = tl.minimum(tl.maximum(length, 0), T)
    if PACKED:
        row0 = tl.load(STARTS + b).to(tl.int64)
        limit = length
    else:
        row0 = tl.program_id(0).to(tl.int64) * 0  # a 0-d int64 that every backend accepts
        limit = T
    return start, b, bh - b * H, bh, length, row0, limit

@triton.jit
def _head(X, b, h, row0, stride_b, stride_h, stride_t):
    """Pointer to row 0 of example b, head h (int64 offsets)."""
    return X + b.to(tl.int64) * stride_b + h.to(tl.int64) * stride_h + row0 * stride_t

@triton.jit
def _store_rows(base, rows, cols, stride_r, stride_c, value, limit,
                HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr):
    ptrs = base + rows[:, None] * stride_r + cols[None, :] * stride_c
    mask = rows[:, None] < limit
    if HEAD_D != BLOCK_D:
        mask = mask & (cols[None, :] < HEAD_D)
    tl.store(ptrs, value.to(base.dtype.element_ty), mask=mask)

@triton.jit
def _load_rows(base, rows, cols, stride_r, stride_c, limit,
               HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, CHECK_ROWS: tl.constexpr):
    """Tile [len(rows), BLOCK_D]; rows >= limit and padded columns read as 0 (never garbage)."""
    ptrs = base + rows[:, None] * stride_r + cols[None, :] * stride_c
    if CHECK_ROWS:
        mask = rows[:, None] < limit
        if HEAD_D != BLOCK_D:
            mask = mask & (cols[None, :] < HEAD_D)
        x = tl.load(ptrs, mask=mask, other=0.0)
    elif HEAD_D != BLOCK_D:
        x = tl.load(ptrs, mask=cols[None, :] < HEAD_D, other=0.0)
    else:
        x = tl.load(ptrs)
    return x

@triton.jit
def _tile_ranges(start, length, before, after, OWN: tl.constexpr, STEP: tl.constexpr):
    """Tiles of the other axis (step STEP) seen by own positions [start, start + OWN).

    Other position o may pair with own position p when -before <= o - p <= after and o < length.
    Returns lo, mid_lo, mid_hi, hi: [lo, mid_lo) and [mid_hi, hi) need a mask, [mid_lo, mid_hi)
    holds whole tiles where every pair is allowed for every valid own row (and o < length).
    """
    end = tl.minimum(start + OWN, length)  # own rows past the length are discarded later
    lo = tl.maximum(start - before, 0) // STEP * STEP
    hi = tl.minimum(end + after, length)
    hi_tiles = (hi + STEP - 1) // STEP * STEP
    # Interior: o >= (last own row) - before, and o + STEP - 1 <= (first own row) + after.
    mid_lo = (tl.maximum(end - 1 - before, 0) + STEP - 1) // STEP * STEP
    mid_lo = tl.minimum(tl.maximum(mid_lo, lo), hi_tiles)
    mid_hi = tl.minimum(start + after + 1, length) // STEP * STEP
    mid_hi = tl.maximum(mid_hi, mid_lo)
    return lo, mid_lo, mid_hi, hi

@triton.jit
def _dkdv_tiles(dk, dv, k, v, q_base, do_base, LSE, DELTA,
                stride_qt, stride_qd, stride_gt, stride_gd,
                offs_n, offs_d, lo, mid_lo, mid_hi, hi, length, LEFT, RIGHT, scale_log2,
                HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
                MASKED: tl.constexpr, PRECISION: tl.constexpr):
    """Accumulates dK (unscaled) and dV of one key tile over the edge query tiles (MASKED) or
    the interior ones. Works on transposed tiles [BLOCK_N, BLOCK_M] so that no P is transposed."""
    for i in tl.range(0, _tile_count(lo, mid_lo, mid_hi, hi, BLOCK_M, MASKED)):
        offs_m = _tile_start(i, lo, mid_lo, mid_hi, BLOCK_M, MASKED) + tl.arange(0, BLOCK_M)
        q = _load_rows(q_base, offs_m, offs_d, stride_qt, stride_qd, length, HEAD_D, BLOCK_D, MASKED)
        do = _load_rows(do_base, offs_m, offs_d, stride_gt, stride_gd, length, HEAD_D, BLOCK_D,
                        MASKED)
        lse, delta = _load_row_stats(LSE, DELTA, offs_m, length, MASKED)
        qk_t = tl.dot(k, tl.trans(q), input_precision=PRECISION)  # [BLOCK_N, BLOCK_M]
        p_t = tl.exp2(qk_t * scale_log2 - lse[None, :])
        if MASKED:  # own = keys, other = queries: i - j in [-RIGHT, LEFT]
            p_t = tl.where(_band_mask(offs_n, offs_m, length, RIGHT, LEFT), p_t, 0.0)
        dv = tl.dot(p_t.to(do.dtype), do, dv, input_precision=PRECISION)
        dp_t = tl.dot(v, tl.trans(do), input_precision=PRECISION)
        ds_t = p_t * (dp_t - delta[None, :])
        dk = tl.dot(ds_t.to(q.dtype), q, dk, input_precision=PRECISION)
    return dk, dv

@triton.jit
def _tile_count(lo, mid_lo, mid_hi, hi, STEP: tl.constexpr, EDGES: tl.constexpr):
    """Tiles one loop visits: the edge tiles [lo, mid_lo) + [mid_hi, hi), or the interior."""
    if EDGES:
        n = (mid_lo - lo) // STEP + (hi - mid_hi + STEP - 1) // STEP  # (never negative)
    else:
        n = (mid_hi - mid_lo) // STEP
    return n

@triton.jit
def _tile_start(i, lo, mid_lo, mid_hi, STEP: tl.constexpr, EDGES: tl.constexpr):
    """First position of the i-th tile of that loop; the edge loop jumps over the interior, so
    both edges share one pipelined loop (one copy of the loop body, not two)."""
    if EDGES:
        start = lo + i * STEP
        start = tl.where(start >= mid_lo, start + (mid_hi - mid_lo), start)
    else:
        start = mid_lo + i * STEP
    return start

@triton.jit
def _load_row_stats(LSE, DELTA, rows, length, CHECK_ROWS: tl.constexpr):
    """lse (in log2 units) and delta of query rows; a missing row gets lse = +inf, so P = 0."""
    if CHECK_ROWS:
        lse = tl.load(LSE + rows, mask=rows < length, other=float("inf"))
        delta = tl.load(DELTA + rows, mask=rows < length, other=0.0)
    else:
        lse = tl.load(LSE + rows)
        delta = tl.load(DELTA + rows)
    return lse * 1.4426950408889634, delta

@triton.jit
def _band_mask(own, other, length, before, after):
    """[len(own), len(other)] bool: the pair is in the band and the other position exists."""
    rel = other[None, :] - own[:, None]
    return (rel >= -before) & (rel <= after) & (other[None, :] < length)
''', device_str='cuda')


# Original path: /work/main/generated/kunlun_6g/kernels/window_attention.py:399
_bwd_dq_kernel_2 = async_compile.triton('_bwd_dq_kernel', '''

import triton
import triton.language as tl

from torch._inductor.runtime import triton_helpers, triton_heuristics
from torch._inductor.runtime.triton_helpers import libdevice, math as tl_math
from torch._inductor.runtime.hints import AutotuneHint, ReductionHint, TileHint, DeviceProperties

@triton_heuristics.user_autotune(
    configs=[{'BLOCK_M': 64, 'BLOCK_N': 32, 'num_warps': 8, 'num_stages': 3}, {'BLOCK_M': 128, 'BLOCK_N': 32, 'num_warps': 4, 'num_stages': 3}, {'BLOCK_M': 128, 'BLOCK_N': 64, 'num_warps': 8, 'num_stages': 3}, {'BLOCK_M': 64, 'BLOCK_N': 64, 'num_warps': 4, 'num_stages': 3}, {'BLOCK_M': 64, 'BLOCK_N': 32, 'num_warps': 4, 'num_stages': 3}, {'BLOCK_M': 128, 'BLOCK_N': 32, 'num_warps': 8, 'num_stages': 2}, {'BLOCK_M': 64, 'BLOCK_N': 64, 'num_warps': 8, 'num_stages': 3}],
    inductor_meta={'grid_type': 'PrecomputedGrid', 'precomputed_grids': [{'config': {'BLOCK_M': 64, 'BLOCK_N': 32, 'num_warps': 8, 'num_stages': 3}, 'python': ['65536', '1', '1'], 'cpp': ['65536L', '1L', '1L'], 'python_slow': ['65536', '1', '1']}, {'config': {'BLOCK_M': 128, 'BLOCK_N': 32, 'num_warps': 4, 'num_stages': 3}, 'python': ['32768', '1', '1'], 'cpp': ['32768L', '1L', '1L'], 'python_slow': ['32768', '1', '1']}, {'config': {'BLOCK_M': 128, 'BLOCK_N': 64, 'num_warps': 8, 'num_stages': 3}, 'python': ['32768', '1', '1'], 'cpp': ['32768L', '1L', '1L'], 'python_slow': ['32768', '1', '1']}, {'config': {'BLOCK_M': 64, 'BLOCK_N': 64, 'num_warps': 4, 'num_stages': 3}, 'python': ['65536', '1', '1'], 'cpp': ['65536L', '1L', '1L'], 'python_slow': ['65536', '1', '1']}, {'config': {'BLOCK_M': 64, 'BLOCK_N': 32, 'num_warps': 4, 'num_stages': 3}, 'python': ['65536', '1', '1'], 'cpp': ['65536L', '1L', '1L'], 'python_slow': ['65536', '1', '1']}, {'config': {'BLOCK_M': 128, 'BLOCK_N': 32, 'num_warps': 8, 'num_stages': 2}, 'python': ['32768', '1', '1'], 'cpp': ['32768L', '1L', '1L'], 'python_slow': ['32768', '1', '1']}, {'config': {'BLOCK_M': 64, 'BLOCK_N': 64, 'num_warps': 8, 'num_stages': 3}, 'python': ['65536', '1', '1'], 'cpp': ['65536L', '1L', '1L'], 'python_slow': ['65536', '1', '1']}], 'extra_launcher_args': [], 'kernel_name': '_bwd_dq_kernel_2', 'backend_hash': '91D1D1166449D9E2EB66EB9770C9E2C3B0FEB787341F27FEB4D3F0338DA50336', 'assert_indirect_indexing': True, 'autotune_local_cache': True, 'autotune_pointwise': True, 'autotune_remote_cache': None, 'force_disable_caches': False, 'dynamic_scale_rblock': True, 'max_autotune': False, 'max_autotune_pointwise': False, 'min_split_scan_rblock': 256, 'spill_threshold': 16, 'store_cubin': False, 'deterministic': False, 'force_filter_reduction_configs': False, 'mix_order_reduction_allow_multi_stages': False, 'are_deterministic_algorithms_enabled': False},
    triton_meta={'signature': {'Q': '*bf16', 'K': '*bf16', 'V': '*bf16', 'DO': '*bf16', 'LSE': '*fp32', 'DELTA': '*fp32', 'DQ': '*bf16', 'LENGTHS': '*i64', 'STARTS': '*i64', 'stride_qb': 'i32', 'stride_qh': 'i32', 'stride_qt': 'i32', 'stride_qd': 'constexpr', 'stride_kb': 'i32', 'stride_kh': 'i32', 'stride_kt': 'i32', 'stride_kd': 'constexpr', 'stride_vb': 'i32', 'stride_vh': 'i32', 'stride_vt': 'i32', 'stride_vd': 'constexpr', 'stride_gb': 'i32', 'stride_gh': 'i32', 'stride_gt': 'i32', 'stride_gd': 'constexpr', 'stride_dqb': 'i32', 'stride_dqh': 'i32', 'stride_dqt': 'i32', 'stride_dqd': 'constexpr', 'H': 'i32', 'T': 'i32', 'LEFT': 'i32', 'RIGHT': 'i32', 'scale': 'fp64', 'scale_log2': 'fp64', 'HEAD_D': 'constexpr', 'BLOCK_D': 'constexpr', 'PRECISION': 'constexpr', 'PACKED': 'constexpr', 'BLOCK_M': 'constexpr', 'BLOCK_N': 'constexpr'}, 'device': DeviceProperties(type='cuda', index=0, multi_processor_count=132, cc=90, major=9, regs_per_multiprocessor=65536, max_threads_per_multi_processor=2048, max_threads_per_block=1024, warp_size=32), 'constants': {'stride_qd': 1, 'stride_kd': 1, 'stride_vd': 1, 'stride_gd': 1, 'stride_dqd': 1, 'HEAD_D': 64, 'BLOCK_D': 64, 'PRECISION': 'tf32', 'PACKED': True}, 'configs': [{(0,): [['tt.divisibility', 16]], (1,): [['tt.divisibility', 16]], (2,): [['tt.divisibility', 16]], (3,): [['tt.divisibility', 16]], (4,): [['tt.divisibility', 16]], (5,): [['tt.divisibility', 16]], (6,): [['tt.divisibility', 16]], (7,): [['tt.divisibility', 16]], (8,): [['tt.divisibility', 16]], (9,): [['tt.divisibility', 16]], (10,): [['tt.divisibility', 16]], (11,): [['tt.divisibility', 16]], (13,): [['tt.divisibility', 16]], (14,): [['tt.divisibility', 16]], (15,): [['tt.divisibility', 16]], (17,): [['tt.divisibility', 16]], (18,): [['tt.divisibility', 16]], (19,): [['tt.divisibility', 16]], (21,): [['tt.divisibility', 16]], (22,): [['tt.divisibility', 16]], (23,): [['tt.divisibility', 16]], (25,): [['tt.divisibility', 16]], (26,): [['tt.divisibility', 16]], (27,): [['tt.divisibility', 16]], (30,): [['tt.divisibility', 16]], (31,): [['tt.divisibility', 16]], (32,): [['tt.divisibility', 16]]}]},
    filename=__file__,
    custom_kernel=True,
)
@triton.jit
def _bwd_dq_kernel(Q, K, V, DO, LSE, DELTA, DQ, LENGTHS, STARTS,
                   stride_qb, stride_qh, stride_qt, stride_qd,
                   stride_kb, stride_kh, stride_kt, stride_kd,
                   stride_vb, stride_vh, stride_vt, stride_vd,
                   stride_gb, stride_gh, stride_gt, stride_gd,
                   stride_dqb, stride_dqh, stride_dqt, stride_dqd,
                   H, T, LEFT, RIGHT, scale, scale_log2,
                   HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr, PACKED: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # torch.compile passes Python floats as fp64: compute in fp32 as eager launches do
    scale, scale_log2 = tl.cast(scale, tl.float32), tl.cast(scale_log2, tl.float32)
    start_m, b, h, bh, length, row0, limit = _program_tile(T, LENGTHS, STARTS, H, BLOCK_M, PACKED)
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    dq_base = _head(DQ, b, h, row0, stride_dqb, stride_dqh, stride_dqt)
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    if start_m >= length:  # the whole query tile is padding: zero gradient, nothing computed
        _store_rows(dq_base, offs_m, offs_d, stride_dqt, stride_dqd, dq, limit, HEAD_D, BLOCK_D)
        return

    q = _load_rows(_head(Q, b, h, row0, stride_qb, stride_qh, stride_qt), offs_m, offs_d,
                   stride_qt, stride_qd, length, HEAD_D, BLOCK_D, True)
    do = _load_rows(_head(DO, b, h, row0, stride_gb, stride_gh, stride_gt), offs_m, offs_d,
                    stride_gt, stride_gd, length, HEAD_D, BLOCK_D, True)
    lse, delta = _load_row_stats(LSE + bh.to(tl.int64) * T, DELTA + bh.to(tl.int64) * T,
                                 offs_m, length, True)
    k_base = _head(K, b, h, row0, stride_kb, stride_kh, stride_kt)
    v_base = _head(V, b, h, row0, stride_vb, stride_vh, stride_vt)
    lo, mid_lo, mid_hi, hi = _tile_ranges(start_m, length, LEFT, RIGHT, BLOCK_M, BLOCK_N)
    dq = _dq_tiles(dq, q, do, lse, delta, k_base, v_base, stride_kt, stride_kd, stride_vt,
                   stride_vd, offs_m, offs_d, lo, mid_lo, mid_hi, hi, length, LEFT, RIGHT,
                   scale_log2, HEAD_D, BLOCK_D, BLOCK_N, True, PRECISION)
    dq = _dq_tiles(dq, q, do, lse, delta, k_base, v_base, stride_kt, stride_kd, stride_vt,
                   stride_vd, offs_m, offs_d, lo, mid_lo, mid_hi, hi, length, LEFT, RIGHT,
                   scale_log2, HEAD_D, BLOCK_D, BLOCK_N, False, PRECISION)
    # Rows past the length were computed on zero queries (lse = +inf gives P = 0): drop them.
    dq = tl.where((offs_m < length)[:, None], dq * scale, 0.0)
    _store_rows(dq_base, offs_m, offs_d, stride_dqt, stride_dqd, dq, limit, HEAD_D, BLOCK_D)

@triton.jit
def _program_tile(T, LENGTHS, STARTS, H, BLOCK: tl.constexpr, PACKED: tl.constexpr):
    """(tile start, b, h, bh, length, row0, limit) of this program; the tile index varies fastest.

    Padded layout: example b's rows are its own [T] axis (row0 = 0) and every row up to T is
    written (zeros past the length). Packed layout (PACKED): example b's rows start at row
    STARTS[b] of one [N] axis shared by the batch, and nothing past its length is written (those
    rows belong to the next example)."""
    pid = tl.program_id(0)
    n_tiles = tl.cdiv(T, BLOCK)
    bh = pid // n_tiles
    start = (pid % n_tiles) * BLOCK
    b = bh // H
    length = tl.load(LENGTHS + b).to(tl.int32)
    length = tl.minimum(tl.maximum(length, 0), T)
    if PACKED:
        row0 = tl.load(STARTS + b).to(tl.int64)
        limit = length
    else:
        row0 = tl.program_id(0).to(tl.int64) * 0  # a 0-d int64 that every backend accepts
        limit = T
    return start, b, bh - b * H, bh, length, row0, limit

@triton.jit
def _head(X, b, h, row0, stride_b, stride_h, stride_t):
    """Pointer to row 0 of example b, head h (int64 offsets)."""
    return X + b.to(tl.int64) * stride_b + h.to(tl.int64) * stride_h + row0 * stride_t

@triton.jit
def _store_rows(base, rows, cols, stride_r, stride_c, value, limit,
                HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr):
    ptrs = base + rows[:, None] * stride_r + cols[None, :] * stride_c
    mask = rows[:, None] < limit
    if HEAD_D != BLOCK_D:
        mask = mask & (cols[None, :] < HEAD_D)
    tl.store(ptrs, value.to(base.dtype.element_ty), mask=mask)

@triton.jit
def _load_rows(base, rows, cols, stride_r, stride_c, limit,
               HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, CHECK_ROWS: tl.constexpr):
    """Tile [len(rows), BLOCK_D]; rows >= limit and padded columns read as 0 (never garbage)."""
    ptrs = base + rows[:, None] * stride_r + cols[None, :] * stride_c
    if CHECK_ROWS:
        mask = rows[:, None] < limit
        if HEAD_D != BLOCK_D:
            mask = mask & (cols[None, :] < HEAD_D)
        x = tl.load(ptrs, mask=mask, other=0.0)
    elif HEAD_D != BLOCK_D:
        x = tl.load(ptrs, mask=cols[None, :] < HEAD_D, other=0.0)
    else:
        x = tl.load(ptrs)
    return x

@triton.jit
def _load_row_stats(LSE, DELTA, rows, length, CHECK_ROWS: tl.constexpr):
    """lse (in log2 units) and delta of query rows; a missing row gets lse = +inf, so P = 0."""
    if CHECK_ROWS:
        lse = tl.load(LSE + rows, mask=rows < length, other=float("inf"))
        delta = tl.load(DELTA + rows, mask=rows < length, other=0.0)
    else:
        lse = tl.load(LSE + rows)
        delta = tl.load(DELTA + rows)
    return lse * 1.4426950408889634, delta

@triton.jit
def _tile_ranges(start, length, before, after, OWN: tl.constexpr, STEP: tl.constexpr):
    """Tiles of the other axis (step STEP) seen by own positions [start, start + OWN).

    Other position o may pair with own position p when -before <= o - p <= after and o < length.
    Returns lo, mid_lo, mid_hi, hi: [lo, mid_lo) and [mid_hi, hi) need a mask, [mid_lo, mid_hi)
    holds whole tiles where every pair is allowed for every valid own row (and o < length).
    """
    end = tl.minimum(start + OWN, length)  # own rows past the length are discarded later
    lo = tl.maximum(start - before, 0) // STEP * STEP
    hi = tl.minimum(end + after, length)
    hi_tiles = (hi + STEP - 1) // STEP * STEP
    # Interior: o >= (last own row) - before, and o + STEP - 1 <= (first own row) + after.
    mid_lo = (tl.maximum(end - 1 - before, 0) + STEP - 1) // STEP * STEP
    mid_lo = tl.minimum(tl.maximum(mid_lo, lo), hi_tiles)
    mid_hi = tl.minimum(start + after + 1, length) // STEP * STEP
    mid_hi = tl.maximum(mid_hi, mid_lo)
    return lo, mid_lo, mid_hi, hi

@triton.jit
def _dq_tiles(dq, q, do, lse, delta, k_base, v_base, stride_kt, stride_kd, stride_vt, stride_vd,
              offs_m, offs_d, lo, mid_lo, mid_hi, hi, length, LEFT, RIGHT, scale_log2,
              HEAD_D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
              MASKED: tl.constexpr, PRECISION: tl.constexpr):
    """Accumulates dQ (unscaled) of one query tile over the edge key tiles (MASKED) or the
    interior ones."""
    for i in tl.range(0, _tile_count(lo, mid_lo, mid_hi, hi, BLOCK_N, MASKED)):
        offs_n = _tile_start(i, lo, mid_lo, mid_hi, BLOCK_N, MASKED) + tl.arange(0, BLOCK_N)
        k = _load_rows(k_base, offs_n, offs_d, stride_kt, stride_kd, length, HEAD_D, BLOCK_D, MASKED)
        v = _load_rows(v_base, offs_n, offs_d, stride_vt, stride_vd, length, HEAD_D, BLOCK_D, MASKED)
        qk = tl.dot(q, tl.trans(k), input_precision=PRECISION)
        p = tl.exp2(qk * scale_log2 - lse[:, None])
        if MASKED:
            p = tl.where(_band_mask(offs_m, offs_n, length, LEFT, RIGHT), p, 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=PRECISION)
    return dq

@triton.jit
def _tile_count(lo, mid_lo, mid_hi, hi, STEP: tl.constexpr, EDGES: tl.constexpr):
    """Tiles one loop visits: the edge tiles [lo, mid_lo) + [mid_hi, hi), or the interior."""
    if EDGES:
        n = (mid_lo - lo) // STEP + (hi - mid_hi + STEP - 1) // STEP  # (never negative)
    else:
        n = (mid_hi - mid_lo) // STEP
    return n

@triton.jit
def _tile_start(i, lo, mid_lo, mid_hi, STEP: tl.constexpr, EDGES: tl.constexpr):
    """First position of the i-th tile of that loop; the edge loop jumps over the interior, so
    both edges share one pipelined loop (one copy of the loop body, not two)."""
    if EDGES:
        start = lo + i * STEP
        start = tl.where(start >= mid_lo, start + (mid_hi - mid_lo), start)
    else:
        start = mid_lo + i * STEP
    return start

@triton.jit
def _band_mask(own, other, length, before, after):
    """[len(own), len(other)] bool: the pair is in the band and the other position exists."""
    rel = other[None, :] - own[:, None]
    return (rel >= -before) & (rel <= after) & (other[None, :] < length)
''', device_str='cuda')


# kernel path: /tmp/first-step-ymhhjg7u/inductor/4r/c4rwwmenysbt5rbp5hi3a3jglxay36crqwqaegneklvjbiyzdh4p.py
# Topologically Sorted Source Nodes: [view_10, view_11, view_12, cat], Original ATen: [aten.view, aten.cat]
# Source node to ATen node mapping:
#   cat => cat
#   view_10 => view_10
#   view_11 => view_11
#   view_12 => view_12
# Graph fragment:
#   %buf25 : Tensor  = PlaceHolder[target=buf25]
#   %buf21 : Tensor  = PlaceHolder[target=buf21]
#   %buf22 : Tensor  = PlaceHolder[target=buf22]
#   %view_10 : Tensor "bf16[634880, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.reshape.default](args = (%empty_2, [634880, 256]), kwargs = {})
#   %view_11 : Tensor "bf16[634880, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.reshape.default](args = (%empty_3, [634880, 256]), kwargs = {})
#   %view_12 : Tensor "bf16[634880, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.reshape.default](args = (%empty_4, [634880, 256]), kwargs = {})
#   %cat : Tensor "bf16[634880, 768][768, 1]cuda:0"[num_users=3] = call_function[target=torch.ops.aten.cat.default](args = ([%view_10, %view_11, %view_12], 1), kwargs = {})
#   return %cat
triton_poi_fused_cat_view_5 = async_compile.triton('triton_poi_fused_cat_view_5', '''
import triton
import triton.language as tl

from torch._inductor.runtime import triton_helpers, triton_heuristics
from torch._inductor.runtime.triton_helpers import libdevice, math as tl_math
from torch._inductor.runtime.hints import AutotuneHint, ReductionHint, TileHint, DeviceProperties
triton_helpers.set_driver_to_gpu()

@triton_heuristics.pointwise(
    size_hints={'x': 536870912}, 
    filename=__file__,
    triton_meta={'signature': {'in_ptr0': '*bf16', 'in_ptr1': '*bf16', 'in_ptr2': '*bf16', 'out_ptr0': '*bf16', 'xnumel': 'i32', 'XBLOCK': 'constexpr'}, 'device': DeviceProperties(type='cuda', index=0, multi_processor_count=132, cc=90, major=9, regs_per_multiprocessor=65536, max_threads_per_multi_processor=2048, max_threads_per_block=1024, warp_size=32), 'constants': {}, 'native_matmul': False, 'enable_fp_fusion': True, 'launch_pdl': False, 'disable_ftz': False, 'configs': [{(0,): [['tt.divisibility', 16]], (1,): [['tt.divisibility', 16]], (2,): [['tt.divisibility', 16]], (3,): [['tt.divisibility', 16]], (4,): [['tt.divisibility', 16]]}]},
    inductor_meta={'grid_type': 'Grid1D', 'autotune_hints': set(), 'kernel_name': 'triton_poi_fused_cat_view_5', 'mutated_arg_names': [], 'optimize_mem': True, 'no_x_dim': False, 'atomic_add_found': False, 'num_load': 3, 'num_store': 1, 'num_reduction': 0, 'backend_hash': '91D1D1166449D9E2EB66EB9770C9E2C3B0FEB787341F27FEB4D3F0338DA50336', 'assert_indirect_indexing': True, 'autotune_local_cache': True, 'autotune_pointwise': True, 'autotune_remote_cache': None, 'force_disable_caches': False, 'dynamic_scale_rblock': True, 'max_autotune': False, 'max_autotune_pointwise': False, 'min_split_scan_rblock': 256, 'spill_threshold': 16, 'store_cubin': False, 'deterministic': False, 'force_filter_reduction_configs': False, 'mix_order_reduction_allow_multi_stages': False, 'are_deterministic_algorithms_enabled': False, 'tiling_scores': {'x': 1950351360}},
    min_elem_per_thread=0
)
@triton.jit
def triton_poi_fused_cat_view_5(in_ptr0, in_ptr1, in_ptr2, out_ptr0, xnumel, XBLOCK : tl.constexpr):
    xnumel = 487587840
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:]
    xmask = tl.full([XBLOCK], True, tl.int1)[:]
    x0 = (xindex % 768)
    x1 = xindex // 768
    x2 = xindex
    tmp0 = x0
    tmp1 = tl.full([1], 0, tl.int64)
    tmp2 = tmp0 >= tmp1
    tmp3 = tl.full([1], 256, tl.int64)
    tmp4 = tmp0 < tmp3
    tmp5 = tl.load(in_ptr0 + (256*x1 + (x0)), tmp4, eviction_policy='evict_last', other=0.0).to(tl.float32)
    tmp6 = tmp0 >= tmp3
    tmp7 = tl.full([1], 512, tl.int64)
    tmp8 = tmp0 < tmp7
    tmp9 = tmp6 & tmp8
    tmp10 = tl.load(in_ptr1 + (256*x1 + ((-256) + x0)), tmp9, eviction_policy='evict_last', other=0.0).to(tl.float32)
    tmp11 = tmp0 >= tmp7
    tmp12 = tl.full([1], 768, tl.int64)
    tmp13 = tmp0 < tmp12
    tmp14 = tl.load(in_ptr2 + (256*x1 + ((-512) + x0)), tmp11, eviction_policy='evict_last', other=0.0).to(tl.float32)
    tmp15 = tl.where(tmp9, tmp10, tmp14)
    tmp16 = tl.where(tmp4, tmp5, tmp15)
    tl.store(out_ptr0 + (x2), tmp16, None)
''', device_str='cuda')


# kernel path: /tmp/first-step-ymhhjg7u/inductor/sv/csvinilsywvkmnk6an37wcozh5ip2b4vqonjhw5ijofm6hk4eqmd.py
# Topologically Sorted Source Nodes: [sum_6], Original ATen: [aten.sum]
# Source node to ATen node mapping:
#   sum_6 => sum_6
# Graph fragment:
#   %cat : Tensor "bf16[634880, 768][768, 1]cuda:0" = PlaceHolder[target=cat]
#   %sum_6 : Tensor "f32[1, 768][768, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.sum.dim_IntList](args = (%cat, [0], True), kwargs = {dtype: torch.float32})
#   return %buf30
triton_red_fused_sum_6 = async_compile.triton('triton_red_fused_sum_6', '''
import triton
import triton.language as tl

from torch._inductor.runtime import triton_helpers, triton_heuristics
from torch._inductor.runtime.triton_helpers import libdevice, math as tl_math
from torch._inductor.runtime.hints import AutotuneHint, ReductionHint, TileHint, DeviceProperties
triton_helpers.set_driver_to_gpu()

@triton_heuristics.reduction(
    size_hints={'x': 262144, 'r0_': 2048},
    reduction_hint=ReductionHint.OUTER,
    filename=__file__,
    triton_meta={'signature': {'in_ptr0': '*bf16', 'out_ptr0': '*fp32', 'xnumel': 'i32', 'r0_numel': 'i32', 'XBLOCK': 'constexpr', 'R0_BLOCK': 'constexpr'}, 'device': DeviceProperties(type='cuda', index=0, multi_processor_count=132, cc=90, major=9, regs_per_multiprocessor=65536, max_threads_per_multi_processor=2048, max_threads_per_block=1024, warp_size=32), 'constants': {}, 'native_matmul': False, 'enable_fp_fusion': True, 'launch_pdl': False, 'disable_ftz': False, 'configs': [{(0,): [['tt.divisibility', 16]], (1,): [['tt.divisibility', 16]], (2,): [['tt.divisibility', 16]], (3,): [['tt.divisibility', 16]]}]},
    inductor_meta={'grid_type': 'Grid1D', 'autotune_hints': set(), 'kernel_name': 'triton_red_fused_sum_6', 'mutated_arg_names': [], 'optimize_mem': True, 'no_x_dim': False, 'atomic_add_found': False, 'num_load': 1, 'num_store': 1, 'num_reduction': 1, 'backend_hash': '91D1D1166449D9E2EB66EB9770C9E2C3B0FEB787341F27FEB4D3F0338DA50336', 'assert_indirect_indexing': True, 'autotune_local_cache': True, 'autotune_pointwise': True, 'autotune_remote_cache': None, 'force_disable_caches': False, 'dynamic_scale_rblock': True, 'max_autotune': False, 'max_autotune_pointwise': False, 'min_split_scan_rblock': 256, 'spill_threshold': 16, 'store_cubin': False, 'deterministic': False, 'force_filter_reduction_configs': False, 'mix_order_reduction_allow_multi_stages': False, 'are_deterministic_algorithms_enabled': False, 'tiling_scores': {'x': 977080320, 'r0_': 0}}
)
@triton.jit
def triton_red_fused_sum_6(in_ptr0, out_ptr0, xnumel, r0_numel, XBLOCK : tl.constexpr, R0_BLOCK : tl.constexpr):
    xnumel = 238080
    r0_numel = 2048
    rnumel = r0_numel
    RBLOCK: tl.constexpr = R0_BLOCK
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:, None]
    xmask = xindex < xnumel
    r0_base = tl.arange(0, R0_BLOCK)[None, :]
    rbase = r0_base
    x0 = (xindex % 768)
    x1 = xindex // 768
    _tmp3 = tl.full([XBLOCK, R0_BLOCK], 0, tl.float32)
    x3 = xindex
    for r0_offset in tl.range(0, r0_numel, R0_BLOCK):
        r0_index = r0_offset + r0_base
        r0_mask = r0_index < r0_numel
        roffset = r0_offset
        rindex = r0_index
        r0_2 = r0_index
        tmp0 = tl.load(in_ptr0 + (x0 + 768*r0_2 + 1572864*x1), r0_mask & xmask, eviction_policy='evict_first', other=0.0).to(tl.float32)
        tmp1 = tmp0.to(tl.float32)
        tmp2 = tl.broadcast_to(tmp1, [XBLOCK, R0_BLOCK])
        tmp4 = _tmp3 + tmp2
        _tmp3 = tl.where(r0_mask & xmask, tmp4, _tmp3)
    tmp3 = tl.sum(_tmp3, 1)[:, None]
    tl.store(out_ptr0 + (x3), tmp3, xmask)
''', device_str='cuda')


# kernel path: /tmp/first-step-ymhhjg7u/inductor/mg/cmgfdgmfnhwspeqhq2vngrutyg7pfu2vn3ff4725a7nid4lsrojw.py
# Topologically Sorted Source Nodes: [sum_6], Original ATen: [aten.sum]
# Source node to ATen node mapping:
#   sum_6 => sum_6
# Graph fragment:
#   %buf30 : Tensor "f32[1, 768, 310][238080, 1, 768]cuda:0" = PlaceHolder[target=buf30]
#   %sum_6 : Tensor "f32[1, 768][768, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.aten.sum.dim_IntList](args = (%cat, [0], True), kwargs = {dtype: torch.float32})
#   return %sum_6
triton_red_fused_sum_7 = async_compile.triton('triton_red_fused_sum_7', '''
import triton
import triton.language as tl

from torch._inductor.runtime import triton_helpers, triton_heuristics
from torch._inductor.runtime.triton_helpers import libdevice, math as tl_math
from torch._inductor.runtime.hints import AutotuneHint, ReductionHint, TileHint, DeviceProperties
triton_helpers.set_driver_to_gpu()

@triton_heuristics.reduction(
    size_hints={'x': 1024, 'r0_': 512},
    reduction_hint=ReductionHint.OUTER,
    filename=__file__,
    triton_meta={'signature': {'in_ptr0': '*fp32', 'out_ptr0': '*fp32', 'xnumel': 'i32', 'r0_numel': 'i32', 'XBLOCK': 'constexpr', 'R0_BLOCK': 'constexpr'}, 'device': DeviceProperties(type='cuda', index=0, multi_processor_count=132, cc=90, major=9, regs_per_multiprocessor=65536, max_threads_per_multi_processor=2048, max_threads_per_block=1024, warp_size=32), 'constants': {}, 'native_matmul': False, 'enable_fp_fusion': True, 'launch_pdl': False, 'disable_ftz': False, 'configs': [{(0,): [['tt.divisibility', 16]], (1,): [['tt.divisibility', 16]], (2,): [['tt.divisibility', 16]]}]},
    inductor_meta={'grid_type': 'Grid1D', 'autotune_hints': set(), 'kernel_name': 'triton_red_fused_sum_7', 'mutated_arg_names': [], 'optimize_mem': True, 'no_x_dim': False, 'atomic_add_found': False, 'num_load': 1, 'num_store': 1, 'num_reduction': 1, 'backend_hash': '91D1D1166449D9E2EB66EB9770C9E2C3B0FEB787341F27FEB4D3F0338DA50336', 'assert_indirect_indexing': True, 'autotune_local_cache': True, 'autotune_pointwise': True, 'autotune_remote_cache': None, 'force_disable_caches': False, 'dynamic_scale_rblock': True, 'max_autotune': False, 'max_autotune_pointwise': False, 'min_split_scan_rblock': 256, 'spill_threshold': 16, 'store_cubin': False, 'deterministic': False, 'force_filter_reduction_configs': False, 'mix_order_reduction_allow_multi_stages': False, 'are_deterministic_algorithms_enabled': False, 'tiling_scores': {'x': 958464, 'r0_': 0}}
)
@triton.jit
def triton_red_fused_sum_7(in_ptr0, out_ptr0, xnumel, r0_numel, XBLOCK : tl.constexpr, R0_BLOCK : tl.constexpr):
    xnumel = 768
    r0_numel = 310
    rnumel = r0_numel
    RBLOCK: tl.constexpr = R0_BLOCK
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:, None]
    xmask = xindex < xnumel
    r0_base = tl.arange(0, R0_BLOCK)[None, :]
    rbase = r0_base
    x0 = xindex
    _tmp2 = tl.full([XBLOCK, R0_BLOCK], 0, tl.float32)
    for r0_offset in tl.range(0, r0_numel, R0_BLOCK):
        r0_index = r0_offset + r0_base
        r0_mask = r0_index < r0_numel
        roffset = r0_offset
        rindex = r0_index
        r0_1 = r0_index
        tmp0 = tl.load(in_ptr0 + (x0 + 768*r0_1), r0_mask & xmask, eviction_policy='evict_first', other=0.0)
        tmp1 = tl.broadcast_to(tmp0, [XBLOCK, R0_BLOCK])
        tmp3 = _tmp2 + tmp1
        _tmp2 = tl.where(r0_mask & xmask, tmp3, _tmp2)
    tmp2 = tl.sum(_tmp2, 1)[:, None]
    tl.store(out_ptr0 + (x0), tmp2, xmask)
''', device_str='cuda')


# kernel path: /tmp/first-step-ymhhjg7u/inductor/ec/cecgogryw4mdid3nma2e354ujvq5nknrryrqrzbmt3ftavz5f2dk.py
# Topologically Sorted Source Nodes: [convert_element_type_26], Original ATen: [aten._to_copy]
# Source node to ATen node mapping:
#   convert_element_type_26 => convert_element_type_26
# Graph fragment:
#   %mm_3 : Tensor "bf16[768, 256][256, 1]cuda:0" = PlaceHolder[target=mm_3]
#   %convert_element_type_26 : Tensor "f32[768, 256][256, 1]cuda:0"[num_users=1] = call_function[target=torch.ops.prims.convert_element_type.default](args = (%mm_3, torch.float32), kwargs = {})
#   return %convert_element_type_26
triton_poi_fused__to_copy_8 = async_compile.triton('triton_poi_fused__to_copy_8', '''
import triton
import triton.language as tl

from torch._inductor.runtime import triton_helpers, triton_heuristics
from torch._inductor.runtime.triton_helpers import libdevice, math as tl_math
from torch._inductor.runtime.hints import AutotuneHint, ReductionHint, TileHint, DeviceProperties
triton_helpers.set_driver_to_gpu()

@triton_heuristics.pointwise(
    size_hints={'x': 262144}, 
    filename=__file__,
    triton_meta={'signature': {'in_ptr0': '*bf16', 'out_ptr0': '*fp32', 'xnumel': 'i32', 'XBLOCK': 'constexpr'}, 'device': DeviceProperties(type='cuda', index=0, multi_processor_count=132, cc=90, major=9, regs_per_multiprocessor=65536, max_threads_per_multi_processor=2048, max_threads_per_block=1024, warp_size=32), 'constants': {}, 'native_matmul': False, 'enable_fp_fusion': True, 'launch_pdl': False, 'disable_ftz': False, 'configs': [{(0,): [['tt.divisibility', 16]], (1,): [['tt.divisibility', 16]], (2,): [['tt.divisibility', 16]]}]},
    inductor_meta={'grid_type': 'Grid1D', 'autotune_hints': set(), 'kernel_name': 'triton_poi_fused__to_copy_8', 'mutated_arg_names': [], 'optimize_mem': True, 'no_x_dim': False, 'atomic_add_found': False, 'num_load': 1, 'num_store': 1, 'num_reduction': 0, 'backend_hash': '91D1D1166449D9E2EB66EB9770C9E2C3B0FEB787341F27FEB4D3F0338DA50336', 'assert_indirect_indexing': True, 'autotune_local_cache': True, 'autotune_pointwise': True, 'autotune_remote_cache': None, 'force_disable_caches': False, 'dynamic_scale_rblock': True, 'max_autotune': False, 'max_autotune_pointwise': False, 'min_split_scan_rblock': 256, 'spill_threshold': 16, 'store_cubin': False, 'deterministic': False, 'force_filter_reduction_configs': False, 'mix_order_reduction_allow_multi_stages': False, 'are_deterministic_algorithms_enabled': False, 'tiling_scores': {'x': 1966080}},
    min_elem_per_thread=0
)
@triton.jit
def triton_poi_fused__to_copy_8(in_ptr0, out_ptr0, xnumel, XBLOCK : tl.constexpr):
    xnumel = 196608
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:]
    xmask = tl.full([XBLOCK], True, tl.int1)[:]
    x0 = xindex
    tmp0 = tl.load(in_ptr0 + (x0), None).to(tl.float32)
    tmp1 = tmp0.to(tl.float32)
    tl.store(out_ptr0 + (x0), tmp1, None)
''', device_str='cuda')


# kernel path: /tmp/first-step-ymhhjg7u/inductor/f2/cf2chlfawqlvwi3fkpwecpxboyc3623by7fccomhtnyui7s3r5pq.py
# Topologically Sorted Source Nodes: [as_strided_default_3], Original ATen: [aten.copy_]
# Source node to ATen node mapping:
#   as_strided_default_3 => as_strided_default_3
# Graph fragment:
#   %buf27 : Tensor  = PlaceHolder[target=buf27]
#   %copy__2 : Tensor "i64[1024][1]cuda:0" = PlaceHolder[target=copy__2]
#   %as_strided_default_3 : Tensor "i64[1024][1]cuda:0"[num_users=4] = call_function[target=torch.ops.aten.as_strided.default](args = (%clone_default_1, [1024], [1], 0), kwargs = {})
#   %copy__2 : Tensor "i64[1024][1]cuda:0"[num_users=0] = call_function[target=torch.ops.aten.copy_.default](args = (%primals_1, %as_strided_default_3), kwargs = {})
#   return %buf34
triton_poi_fused_copy__9 = async_compile.triton('triton_poi_fused_copy__9', '''
import triton
import triton.language as tl

from torch._inductor.runtime import triton_helpers, triton_heuristics
from torch._inductor.runtime.triton_helpers import libdevice, math as tl_math
from torch._inductor.runtime.hints import AutotuneHint, ReductionHint, TileHint, DeviceProperties
triton_helpers.set_driver_to_gpu()

@triton_heuristics.pointwise(
    size_hints={'x': 1024}, 
    filename=__file__,
    triton_meta={'signature': {'in_ptr0': '*i64', 'out_ptr0': '*i64', 'xnumel': 'i32', 'XBLOCK': 'constexpr'}, 'device': DeviceProperties(type='cuda', index=0, multi_processor_count=132, cc=90, major=9, regs_per_multiprocessor=65536, max_threads_per_multi_processor=2048, max_threads_per_block=1024, warp_size=32), 'constants': {}, 'native_matmul': False, 'enable_fp_fusion': True, 'launch_pdl': False, 'disable_ftz': False, 'configs': [{(0,): [['tt.divisibility', 16]], (1,): [['tt.divisibility', 16]], (2,): [['tt.divisibility', 16]]}]},
    inductor_meta={'grid_type': 'Grid1D', 'autotune_hints': set(), 'kernel_name': 'triton_poi_fused_copy__9', 'mutated_arg_names': ['out_ptr0'], 'optimize_mem': True, 'no_x_dim': False, 'atomic_add_found': False, 'num_load': 1, 'num_store': 1, 'num_reduction': 0, 'backend_hash': '91D1D1166449D9E2EB66EB9770C9E2C3B0FEB787341F27FEB4D3F0338DA50336', 'assert_indirect_indexing': True, 'autotune_local_cache': True, 'autotune_pointwise': True, 'autotune_remote_cache': None, 'force_disable_caches': False, 'dynamic_scale_rblock': True, 'max_autotune': False, 'max_autotune_pointwise': False, 'min_split_scan_rblock': 256, 'spill_threshold': 16, 'store_cubin': False, 'deterministic': False, 'force_filter_reduction_configs': False, 'mix_order_reduction_allow_multi_stages': False, 'are_deterministic_algorithms_enabled': False, 'tiling_scores': {'x': 16384}},
    min_elem_per_thread=0
)
@triton.jit
def triton_poi_fused_copy__9(in_ptr0, out_ptr0, xnumel, XBLOCK : tl.constexpr):
    xnumel = 1024
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:]
    xmask = xindex < xnumel
    x0 = xindex
    tmp0 = tl.load(in_ptr0 + (x0), xmask)
    tl.store(out_ptr0 + (x0), tmp0, xmask)
''', device_str='cuda')


async_compile.wait(globals())
del async_compile

class Runner:
    def __init__(self, partitions):
        self.partitions = partitions

    def recursively_apply_fns(self, fns):
        new_callables = []
        for fn, c in zip(fns, self.partitions):
            new_callables.append(fn(c))
        self.partitions = new_callables

    def call(self, args):
        primals_1, primals_4, primals_5, primals_8, view, view_1, view_2, getitem_3, getitem_4, getitem_5, getitem_6, addmm_1, getitem_8, rsqrt, permute_2, permute_6, tangents_1 = args
        args.clear()
        assert_size_stride(primals_1, (1024, ), (1, ))
        assert_size_stride(primals_4, (634880, 256), (256, 1))
        assert_size_stride(primals_5, (1024, ), (1, ))
        assert_size_stride(primals_8, (256, ), (1, ))
        assert_size_stride(view, (634880, 4, 64), (768, 64, 1))
        assert_size_stride(view_1, (634880, 4, 64), (768, 64, 1))
        assert_size_stride(view_2, (634880, 4, 64), (768, 64, 1))
        assert_size_stride(getitem_3, (634880, 4, 64), (256, 64, 1))
        assert_size_stride(getitem_4, (1024, 4, 1024), (4096, 1024, 1))
        assert_size_stride(getitem_5, (1024, ), (1, ))
        assert_size_stride(getitem_6, (1024, ), (1, ))
        assert_size_stride(addmm_1, (634880, 256), (256, 1))
        assert_size_stride(getitem_8, (634880, 1), (1, 1))
        assert_size_stride(rsqrt, (634880, 1), (1, 1))
        assert_size_stride(permute_2, (256, 256), (256, 1))
        assert_size_stride(permute_6, (768, 256), (256, 1))
        assert_size_stride(tangents_1, (634880, 256), (256, 1))
        with torch.cuda._DeviceGuard(0):
            torch.cuda.set_device(0)
            buf6 = empty_strided_cuda((634880, 256), (256, 1), torch.bfloat16)
            # Call mix order reduction kernel
            # Topologically Sorted Source Nodes: [convert_element_type_12, mul_3, mul_4, sum_1, add, layer_norm, mul_5, sum_2, mul_6, sub_2, sub_3, div, mul_7, mul_8, sum_3, sum_4, convert_element_type_13], Original ATen: [aten._to_copy, aten.native_layer_norm_backward, aten.add, aten.native_layer_norm]
            workspace_0 = empty_strided_cuda((2539520, ), (1, ), torch.float32)
            stream0 = get_raw_stream(0)
            triton_per_fused__to_copy_add_native_layer_norm_native_layer_norm_backward_0.run(tangents_1, primals_8, primals_4, addmm_1, getitem_8, rsqrt, buf6, workspace_0, 634880, 256, stream=stream0)
            buf3 = workspace_0[0 * 4960 * 256 : (0 + 1) * 4960 * 256].view(4960, 256).sum(dim=0)
            buf5 = workspace_0[1 * 4960 * 256 : (1 + 1) * 4960 * 256].view(4960, 256).sum(dim=0)
            del workspace_0
            del addmm_1
            del getitem_8
            del primals_8
            del rsqrt
            del tangents_1
            buf7 = empty_strided_cuda((634880, 256), (256, 1), torch.bfloat16)
            # Topologically Sorted Source Nodes: [mm], Original ATen: [aten.mm]
            extern_kernels.mm(buf6, permute_2, out=buf7)
            del permute_2
            buf8 = empty_strided_cuda((256, 256), (256, 1), torch.bfloat16)
            # Topologically Sorted Source Nodes: [permute_3, linear_1, mm_1], Original ATen: [aten.t, aten.view, aten.mm]
            extern_kernels.mm(reinterpret_tensor(buf6, (256, 634880), (1, 256), 0), reinterpret_tensor(getitem_3, (634880, 256), (256, 1), 0), out=buf8)
            buf9 = empty_strided_cuda((1, 256, 310), (79360, 1, 256), torch.float32)
            # Topologically Sorted Source Nodes: [sum_5], Original ATen: [aten.sum]
            stream0 = get_raw_stream(0)
            triton_red_fused_sum_1.run(buf6, buf9, 79360, 2048, stream=stream0)
            buf10 = empty_strided_cuda((1, 256), (256, 1), torch.float32)
            # Topologically Sorted Source Nodes: [sum_5], Original ATen: [aten.sum]
            stream0 = get_raw_stream(0)
            triton_red_fused_sum_2.run(buf9, buf10, 256, 310, stream=stream0)
            del buf9
            buf11 = empty_strided_cuda((256, 256), (256, 1), torch.float32)
            # Topologically Sorted Source Nodes: [convert_element_type_19], Original ATen: [aten._to_copy]
            stream0 = get_raw_stream(0)
            triton_poi_fused__to_copy_3.run(buf8, buf11, 65536, stream=stream0)
            del buf8
            buf12 = empty_strided_cuda((634880, 4, 64), (256, 64, 1), torch.bfloat16)
            buf13 = empty_strided_cuda((634880, 4, 64), (256, 64, 1), torch.bfloat16)
            buf14 = empty_strided_cuda((634880, 4, 64), (256, 64, 1), torch.bfloat16)
            buf15 = empty_strided_cuda((1024, 4, 1024), (4096, 1024, 1), torch.float32)
            buf16 = getitem_5; del getitem_5  # reuse
            # Topologically Sorted Source Nodes: [as_strided_default, clone_default], Original ATen: []
            stream0 = get_raw_stream(0)
            triton_poi_fused_4.run(buf16, 1024, stream=stream0)
            buf17 = getitem_6; del getitem_6  # reuse
            # Topologically Sorted Source Nodes: [as_strided_default_2, clone_default_1], Original ATen: []
            stream0 = get_raw_stream(0)
            triton_poi_fused_4.run(buf17, 1024, stream=stream0)
            # Topologically Sorted Source Nodes: [view_6, as_strided_default_1, as_strided_default_3, triton_kernel_wrapper_mutation_2], Original ATen: [aten.view]
            stream0 = get_raw_stream(0)
            _bwd_delta_kernel_0.run(getitem_3, reinterpret_tensor(buf7, (634880, 4, 64), (256, 64, 1), 0), buf15, buf16, buf17, 0, 64, 256, 1, 0, 64, 256, 1, 4, 1024, 65536, 1, 1, stream=stream0)
            del getitem_3
            # Topologically Sorted Source Nodes: [view_6, as_strided_default_1, as_strided_default_3, triton_kernel_wrapper_mutation_1], Original ATen: [aten.view]
            stream0 = get_raw_stream(0)
            _bwd_dkdv_kernel_1.run(view, view_1, view_2, reinterpret_tensor(buf7, (634880, 4, 64), (256, 64, 1), 0), getitem_4, buf15, buf13, buf14, buf16, buf17, 0, 64, 768, 1, 0, 64, 768, 1, 0, 64, 768, 1, 0, 64, 256, 1, 0, 64, 256, 1, 0, 64, 256, 1, 4, 1024, 128, 128, 0.125, 0.18033688011112042, stream=stream0)
            # Topologically Sorted Source Nodes: [view_6, as_strided_default_1, as_strided_default_3, triton_kernel_wrapper_mutation], Original ATen: [aten.view]
            stream0 = get_raw_stream(0)
            _bwd_dq_kernel_2.run(view, view_1, view_2, reinterpret_tensor(buf7, (634880, 4, 64), (256, 64, 1), 0), getitem_4, buf15, buf12, buf16, buf17, 0, 64, 768, 1, 0, 64, 768, 1, 0, 64, 768, 1, 0, 64, 256, 1, 0, 64, 256, 1, 4, 1024, 128, 128, 0.125, 0.18033688011112042, stream=stream0)
            del buf15
            del buf7
            del getitem_4
            del view
            del view_1
            del view_2
            buf28 = empty_strided_cuda((634880, 768), (768, 1), torch.bfloat16)
            # Topologically Sorted Source Nodes: [view_10, view_11, view_12, cat], Original ATen: [aten.view, aten.cat]
            stream0 = get_raw_stream(0)
            triton_poi_fused_cat_view_5.run(buf12, buf13, buf14, buf28, 487587840, stream=stream0)
            del buf12
            del buf13
            buf29 = empty_strided_cuda((768, 256), (256, 1), torch.bfloat16)
            # Topologically Sorted Source Nodes: [view_10, view_11, view_12, cat, permute_7, mm_3], Original ATen: [aten.view, aten.cat, aten.t, aten.mm]
            extern_kernels.mm(reinterpret_tensor(buf28, (768, 634880), (1, 768), 0), primals_4, out=buf29)
            del primals_4
            buf30 = empty_strided_cuda((1, 768, 310), (238080, 1, 768), torch.float32)
            # Topologically Sorted Source Nodes: [sum_6], Original ATen: [aten.sum]
            stream0 = get_raw_stream(0)
            triton_red_fused_sum_6.run(buf28, buf30, 238080, 2048, stream=stream0)
            buf31 = empty_strided_cuda((1, 768), (768, 1), torch.float32)
            # Topologically Sorted Source Nodes: [sum_6], Original ATen: [aten.sum]
            stream0 = get_raw_stream(0)
            triton_red_fused_sum_7.run(buf30, buf31, 768, 310, stream=stream0)
            del buf30
            buf32 = reinterpret_tensor(buf14, (634880, 256), (256, 1), 0); del buf14  # reuse
            # Topologically Sorted Source Nodes: [], Original ATen: [aten.addmm]
            extern_kernels.addmm(buf6, buf28, permute_6, alpha=1, beta=1, out=buf32)
            del buf28
            del buf6
            del permute_6
            buf33 = empty_strided_cuda((768, 256), (256, 1), torch.float32)
            # Topologically Sorted Source Nodes: [convert_element_type_26], Original ATen: [aten._to_copy]
            stream0 = get_raw_stream(0)
            triton_poi_fused__to_copy_8.run(buf29, buf33, 196608, stream=stream0)
            del buf29
            # Topologically Sorted Source Nodes: [as_strided_default_3], Original ATen: [aten.copy_]
            stream0 = get_raw_stream(0)
            triton_poi_fused_copy__9.run(buf17, primals_1, 1024, stream=stream0)
            del buf17
            del primals_1
            # Topologically Sorted Source Nodes: [as_strided_default_1], Original ATen: [aten.copy_]
            stream0 = get_raw_stream(0)
            triton_poi_fused_copy__9.run(buf16, primals_5, 1024, stream=stream0)
            del buf16
            del primals_5
        return (None, buf33, reinterpret_tensor(buf31, (768, ), (1, ), 0), buf32, None, buf11, reinterpret_tensor(buf10, (256, ), (1, ), 0), buf3, buf5, )

runner = Runner(partitions=[])
call = runner.call
recursively_apply_fns = runner.recursively_apply_fns


def get_args():
    from torch._dynamo.testing import rand_strided
    primals_1 = rand_strided((1024, ), (1, ), device='cuda:0', dtype=torch.int64)
    primals_4 = rand_strided((634880, 256), (256, 1), device='cuda:0', dtype=torch.bfloat16)
    primals_5 = rand_strided((1024, ), (1, ), device='cuda:0', dtype=torch.int64)
    primals_8 = rand_strided((256, ), (1, ), device='cuda:0', dtype=torch.float32)
    view = rand_strided((634880, 4, 64), (768, 64, 1), device='cuda:0', dtype=torch.bfloat16)
    view_1 = rand_strided((634880, 4, 64), (768, 64, 1), device='cuda:0', dtype=torch.bfloat16)
    view_2 = rand_strided((634880, 4, 64), (768, 64, 1), device='cuda:0', dtype=torch.bfloat16)
    getitem_3 = rand_strided((634880, 4, 64), (256, 64, 1), device='cuda:0', dtype=torch.bfloat16)
    getitem_4 = rand_strided((1024, 4, 1024), (4096, 1024, 1), device='cuda:0', dtype=torch.float32)
    getitem_5 = rand_strided((1024, ), (1, ), device='cuda:0', dtype=torch.int64)
    getitem_6 = rand_strided((1024, ), (1, ), device='cuda:0', dtype=torch.int64)
    addmm_1 = rand_strided((634880, 256), (256, 1), device='cuda:0', dtype=torch.bfloat16)
    getitem_8 = rand_strided((634880, 1), (1, 1), device='cuda:0', dtype=torch.float32)
    rsqrt = rand_strided((634880, 1), (1, 1), device='cuda:0', dtype=torch.float32)
    permute_2 = rand_strided((256, 256), (256, 1), device='cuda:0', dtype=torch.bfloat16)
    permute_6 = rand_strided((768, 256), (256, 1), device='cuda:0', dtype=torch.bfloat16)
    tangents_1 = rand_strided((634880, 256), (256, 1), device='cuda:0', dtype=torch.bfloat16)
    return [primals_1, primals_4, primals_5, primals_8, view, view_1, view_2, getitem_3, getitem_4, getitem_5, getitem_6, addmm_1, getitem_8, rsqrt, permute_2, permute_6, tangents_1]


def benchmark_compiled_module(args, times=10, repeat=10):
    from torch._inductor.utils import print_performance
    fn = lambda: call(list(args))
    return print_performance(fn, times=times, repeat=repeat)


if __name__ == "__main__":
    from torch._inductor.wrapper_benchmark import compiled_module_main
    args = get_args()
    compiled_module_main('None', lambda times, repeat: benchmark_compiled_module(args, times=times, repeat=repeat))
