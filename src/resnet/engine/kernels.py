"""Convolutions on tiny feature maps as one matrix product (im2col), picked by shape.

The last stages of a ResNet run on tiny maps: ResNet-18 at 64x64 ends on 2x2, ResNet-9 at
28x28 on 3x3, a 3D ResNet at 32x32x32 on 2x2x2 and 1x1x1. There oneDNN's CPU convolution keeps
the matrix units mostly idle: measured on a 2-core Xeon with AMX (``python
bench/small_map_conv.py``), forward + both backward passes of ResNet-18's 512-channel 3x3
convolution on 2x2 maps take 37.2 ms in bfloat16 (63.8 ms in float32), and the same
convolution written as im2col + one matmul 6.4 ms (22.8 ms). From 7x7 maps up oneDNN wins
again. So ``SmallMapConvolutions`` sends every CPU ``conv2d`` and ``conv3d`` whose output has
at most ``max_output_positions(dtype)`` positions (for the dtype it computes in, on this CPU)
to ``small_map_conv`` and leaves the rest alone.

im2col here reads the zero-padded channels-last input through one strided view, (B, *out,
*kernel, C), so the columns are a single copy and the output (B*out, O) is already channels
last. The backward is the same two products (grad_out @ W for the input, grad_out^T @ columns
for the weight) and a col2im that sums the shifted slices, one per kernel tap, in float32.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from resnet.device import cpu_capabilities

__all__ = [
    "SmallMapConvolutions", "cpu_has_amx", "max_output_positions", "small_map_conv",
    "takes_small_map",
]  # fmt: skip

# Output positions (product of the output sizes) up to which the matmul kernel runs, by the
# dtype it computes in and whether the CPU has AMX. Forward + backward against oneDNN
# (bench/small_map_conv.py): on a 2-core Xeon with AMX, bfloat16 5.8x at 2x2, 1.4x at 3x3,
# 1.25-3.8x at 4x4; float32 2.4-2.8x at 2x2, 1.05x at 3x3, 0.88x at 4x4. On a 2-core AVX2 EPYC,
# float32 3.2-3.9x at 2x2 and 3.0-3.5x at 2x2x2, but 0.82-0.94x at 3x3. On a 2-core EPYC with
# AVX512-BF16 and no AMX (2026-12-03), bfloat16 1.4-2.5x at 2x2 and 1.8-2.2x at 2x2x2 but
# 0.76-0.81x at 3x3 and 0.80-0.82x at 4x4 (float32 1.7x at 2x2, 3.3x at 2x2x2, 0.61x at 3x3).
# So bfloat16 goes up to 4x4 only where AMX tiles do the products, and everything else stops at
# 8 positions, where every machine gains. At 7x7 and up oneDNN is faster in every case measured
# (0.4-0.9x); 4x4x4 (64 positions) stays with oneDNN.
_MAX_POSITIONS = 8
_MAX_POSITIONS_ON_AMX = {torch.bfloat16: 16, torch.float16: 16}


@functools.cache
def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles, read once: the choice is made for every convolution."""
    return bool(cpu_capabilities()["amx"])


def max_output_positions(dtype: torch.dtype) -> int:
    """The most output positions a convolution computing in ``dtype`` may have to run as
    ``small_map_conv`` on this CPU (0 for dtypes it does not take)."""
    if not dtype.is_floating_point:
        return 0
    if cpu_has_amx():
        return _MAX_POSITIONS_ON_AMX.get(dtype, _MAX_POSITIONS)
    return _MAX_POSITIONS


_CONVOLUTIONS = {F.conv2d: 2, F.conv3d: 3}  # function -> spatial dimensions


def _tuple(value: Any, dims: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * dims
    values = tuple(int(v) for v in value)
    return values * dims if len(values) == 1 else values


def _channels_last(dims: int) -> torch.memory_format:
    return torch.channels_last if dims == 2 else torch.channels_last_3d


def _out_size(size, kernel, stride, padding) -> tuple[int, ...]:
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding))


def _columns(x: Tensor, kernel, stride, padding) -> tuple[Tensor, tuple[int, ...]]:
    """(B, C, *size) -> columns (B*prod(out), prod(kernel)*C) in (*kernel, C) order, and out."""
    batch, channels, *size = x.shape
    padded = x.new_zeros(batch, *(n + 2 * p for n, p in zip(size, padding)), channels)
    inner = tuple(slice(p, p + n) for n, p in zip(size, padding))
    padded[(slice(None), *inner)] = x.movedim(1, -1)
    out = _out_size(size, kernel, stride, padding)
    s_batch, *s_space, s_channel = padded.stride()
    windows = padded.as_strided(
        (batch, *out, *kernel, channels),
        (s_batch, *(s * step for s, step in zip(s_space, stride)), *s_space, s_channel),
    )
    return windows.reshape(batch * math.prod(out), -1), out


def _image(columns: Tensor, shape, kernel, stride, padding, out) -> Tensor:
    """col2im: the gradient of ``_columns``, summing overlapping windows in float32."""
    batch, channels, *size = shape
    windows = columns.view(batch, *out, *kernel, channels)
    accumulate = torch.promote_types(columns.dtype, torch.float32)  # bf16 sums in float32
    padded = columns.new_zeros(
        batch, *(n + 2 * p for n, p in zip(size, padding)), channels, dtype=accumulate
    )
    leading = (slice(None),) * (1 + len(out))
    for offset in itertools.product(*(range(k) for k in kernel)):
        target = tuple(slice(o, o + (n - 1) * s + 1, s) for o, n, s in zip(offset, out, stride))
        padded[(slice(None), *target)] += windows[leading + offset]
    inner = tuple(slice(p, p + n) for n, p in zip(size, padding))
    return padded[(slice(None), *inner)].movedim(-1, 1)


class _SmallMapConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):  # type: ignore[override]
        out_c, _, *kernel = weight.shape
        fmt = _channels_last(len(kernel))
        columns, out = _columns(x, kernel, stride, padding)
        flat_weight = weight.movedim(1, -1).reshape(out_c, -1)  # (O, prod(kernel)*C)
        # The product is written into the channels-last output's own memory: an output that
        # were a view of it could not be changed in place (an inplace ReLU after SE's fc1).
        y = torch.empty(
            (x.shape[0], out_c, *out), dtype=columns.dtype, device=x.device, memory_format=fmt
        )
        flat_y = y.movedim(1, -1).view(-1, out_c)  # (B*prod(out), O)
        torch.mm(columns, flat_weight.t(), out=flat_y)
        if bias is not None:
            flat_y += bias
        ctx.save_for_backward(columns, flat_weight)
        ctx.geometry = (x.shape, tuple(kernel), stride, padding, out)
        ctx.has_bias = bias is not None
        # The weight's gradient comes back in the weight's own layout (DDP's gradient buckets
        # and the optimizers' foreach kernels expect the parameter's strides).
        ctx.weight_format = (
            fmt if weight.is_contiguous(memory_format=fmt) else torch.contiguous_format
        )
        return y if x.is_contiguous(memory_format=fmt) else y.contiguous()

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        columns, flat_weight = ctx.saved_tensors
        shape, kernel, stride, padding, out = ctx.geometry
        out_c, dtype = flat_weight.shape[0], columns.dtype  # x, weight and output share it
        grad = grad_out.movedim(1, -1).reshape(-1, out_c)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_columns = grad @ flat_weight
            grad_x = _image(grad_columns, shape, kernel, stride, padding, out).to(dtype)
        if ctx.needs_input_grad[1]:
            grad_w = (grad.t() @ columns).view(out_c, *kernel, -1).movedim(-1, 1)
            grad_w = grad_w.contiguous(memory_format=ctx.weight_format)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=(0, *range(2, grad_out.dim())))
        return grad_x, grad_w, grad_b, None, None


def _compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype a CPU convolution would compute ``x`` in: CPU autocast's where it is on."""
    if torch.is_autocast_enabled("cpu"):
        return torch.get_autocast_dtype("cpu")
    return x.dtype


def takes_small_map(x: Tensor, weight: Tensor, stride=1, padding=0, dilation=1, groups=1) -> bool:
    """Whether ``small_map_conv`` runs this ``conv2d``/``conv3d`` (told apart by the weight):
    a batched CPU tensor, a dense (groups 1, dilation 1) convolution with numeric padding, and
    an output of at most ``max_output_positions`` for the dtype it computes in."""
    dims = weight.dim() - 2
    if x.device.type != "cpu" or dims not in (2, 3) or x.dim() != dims + 2 or groups != 1:
        return False
    if isinstance(padding, str) or set(_tuple(dilation, dims)) != {1}:
        return False
    if not x.is_floating_point() or x.shape[1] != weight.shape[1]:
        return False
    out = _out_size(x.shape[2:], weight.shape[2:], _tuple(stride, dims), _tuple(padding, dims))
    if min(out) < 1:  # a kernel larger than the padded input: conv's own error says so
        return False
    return math.prod(out) <= max_output_positions(_compute_dtype(x))


def small_map_conv(
    x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=1, padding=0
) -> Tensor:
    """``F.conv2d``/``F.conv3d`` (zero padding, dilation 1, groups 1) as im2col + matmul,
    differentiable. Under CPU autocast it computes in the autocast dtype, as they would."""
    dtype, dims = _compute_dtype(x), weight.dim() - 2
    with torch.autocast("cpu", enabled=False):
        bias = None if bias is None else bias.to(dtype)
        return _SmallMapConv.apply(
            x.to(dtype), weight.to(dtype), bias, _tuple(stride, dims), _tuple(padding, dims)
        )


class SmallMapConvolutions(TorchFunctionMode):
    """Within this context, CPU convolutions (2D, 3D) with tiny outputs run as
    ``small_map_conv``.

    Results match ``F.conv2d``/``F.conv3d`` to rounding; parameters and checkpoints are
    untouched (it intercepts the call, it does not replace modules). The engine enters it
    around each training step and evaluation when ``conv_kernels`` is ``auto``.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _CONVOLUTIONS:
            call = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
            call.update(zip(("input", "weight", *call), args), **kwargs)
            x, weight = call.pop("input"), call.pop("weight")
            bias, stride, padding = call["bias"], call["stride"], call["padding"]
            if weight.dim() == _CONVOLUTIONS[func] + 2 and takes_small_map(
                x, weight, stride, padding, call["dilation"], call["groups"]
            ):
                return small_map_conv(x, weight, bias, stride, padding)
        return func(*args, **kwargs)
