"""Convolutions on tiny feature maps as one matrix product (im2col), picked by shape.

The last stages of a ResNet run on tiny maps: ResNet-18 at 64x64 ends on 2x2, ResNet-9 at
28x28 on 3x3. There oneDNN's CPU convolution keeps the matrix units mostly idle: measured on a
2-core Xeon with AMX (``python bench/small_map_conv.py``), forward + both backward passes of
ResNet-18's 512-channel 3x3 convolution on 2x2 maps take 37.6 ms in bfloat16 (49.6 ms in
float32), and the same convolution written as im2col + one matmul 4.3 ms (16.3 ms). From 7x7
maps up oneDNN wins again. So ``SmallMapConvolutions`` sends every CPU ``conv2d`` whose output
has at most ``MAX_OUTPUT_PIXELS`` positions (for the dtype it computes in) to
``small_map_conv2d`` and leaves the rest alone.

im2col here reads the zero-padded NHWC input through one strided view, (B, Ho, Wo, kh, kw, C),
so the columns are a single copy and the output (B*Ho*Wo, O) is already channels_last. The
backward is the same two products (grad_out @ W for the input, grad_out^T @ columns for the
weight) and a col2im that sums the kh*kw shifted slices in float32.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

__all__ = ["MAX_OUTPUT_PIXELS", "SmallMapConvolutions", "small_map_conv2d", "takes_small_map"]

# Output positions (Ho * Wo) up to which the matmul kernel runs, by the dtype it computes in.
# Forward + backward against oneDNN (bench/small_map_conv.py, 2-core Xeon with AMX): bfloat16
# 5.8x at 2x2, 1.4x at 3x3, 1.25-3.8x at 4x4; float32 2.4-2.8x at 2x2, 1.05x at 3x3, 0.88x at
# 4x4. At 7x7 and up oneDNN is faster in both (0.4-0.6x).
MAX_OUTPUT_PIXELS = {torch.bfloat16: 16, torch.float16: 16, torch.float32: 9, torch.float64: 9}


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def _columns(x: Tensor, kernel: tuple[int, int], stride, padding) -> tuple[Tensor, int, int]:
    """(B, C, H, W) -> columns (B*Ho*Wo, kh*kw*C) in (kh, kw, C) order, and Ho, Wo."""
    batch, channels, height, width = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    padded = x.new_zeros(batch, height + 2 * ph, width + 2 * pw, channels)
    padded[:, ph : ph + height, pw : pw + width] = x.permute(0, 2, 3, 1)
    out_h, out_w = (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
    s_b, s_h, s_w, s_c = padded.stride()
    windows = padded.as_strided(
        (batch, out_h, out_w, kh, kw, channels), (s_b, s_h * sh, s_w * sw, s_h, s_w, s_c)
    )
    return windows.reshape(batch * out_h * out_w, kh * kw * channels), out_h, out_w


def _image(columns: Tensor, shape, kernel, stride, padding, out_hw) -> Tensor:
    """col2im: the gradient of ``_columns``, summing overlapping windows in float32."""
    batch, channels, height, width = shape
    (kh, kw), (sh, sw), (ph, pw), (out_h, out_w) = kernel, stride, padding, out_hw
    windows = columns.view(batch, out_h, out_w, kh, kw, channels)
    accumulate = torch.promote_types(columns.dtype, torch.float32)  # bf16 sums in float32
    padded = columns.new_zeros(batch, height + 2 * ph, width + 2 * pw, channels, dtype=accumulate)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i, i + (out_h - 1) * sh + 1, sh)
            cols = slice(j, j + (out_w - 1) * sw + 1, sw)
            padded[:, rows, cols] += windows[:, :, :, i, j]
    return padded[:, ph : ph + height, pw : pw + width].permute(0, 3, 1, 2)


class _SmallMapConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):  # type: ignore[override]
        out_c, _, kh, kw = weight.shape
        columns, out_h, out_w = _columns(x, (kh, kw), stride, padding)
        flat_weight = weight.permute(0, 2, 3, 1).reshape(out_c, -1)  # (O, kh*kw*C)
        out = columns @ flat_weight.t()  # (B*Ho*Wo, O)
        if bias is not None:
            out += bias
        ctx.save_for_backward(columns, flat_weight)
        ctx.geometry = (x.shape, x.dtype, (kh, kw), stride, padding, (out_h, out_w))
        ctx.has_bias = bias is not None
        # The weight's gradient comes back in the weight's own layout (DDP's gradient buckets
        # and the optimizers' foreach kernels expect the parameter's strides).
        ctx.weight_format = (
            torch.channels_last
            if weight.is_contiguous(memory_format=torch.channels_last)
            else torch.contiguous_format
        )
        out = out.view(x.shape[0], out_h, out_w, out_c).permute(0, 3, 1, 2)
        channels_last = x.is_contiguous(memory_format=torch.channels_last)
        return out if channels_last else out.contiguous()

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        columns, flat_weight = ctx.saved_tensors
        shape, dtype, kernel, stride, padding, out_hw = ctx.geometry
        grad = grad_out.to(columns.dtype).permute(0, 2, 3, 1).reshape(-1, flat_weight.shape[0])
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_columns = grad @ flat_weight
            grad_x = _image(grad_columns, shape, kernel, stride, padding, out_hw).to(dtype)
        if ctx.needs_input_grad[1]:
            out_c, kh, kw = flat_weight.shape[0], kernel[0], kernel[1]
            grad_w = (grad.t() @ columns).view(out_c, kh, kw, -1).permute(0, 3, 1, 2)
            grad_w = grad_w.contiguous(memory_format=ctx.weight_format)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=(0, 2, 3))
        return grad_x, grad_w, grad_b, None, None


def _compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype ``F.conv2d`` would compute ``x`` in: CPU autocast's where it is on."""
    if torch.is_autocast_enabled("cpu"):
        return torch.get_autocast_dtype("cpu")
    return x.dtype


def takes_small_map(x: Tensor, weight: Tensor, stride=1, padding=0, dilation=1, groups=1) -> bool:
    """Whether ``small_map_conv2d`` runs this ``conv2d``: a CPU tensor, a dense (groups 1,
    dilation 1) convolution with numeric padding, and an output of at most
    ``MAX_OUTPUT_PIXELS`` positions for the dtype it computes in."""
    if x.device.type != "cpu" or x.dim() != 4 or weight.dim() != 4 or groups != 1:
        return False
    if isinstance(padding, str) or _pair(dilation) != (1, 1) or not x.is_floating_point():
        return False
    (kh, kw), (sh, sw), (ph, pw) = weight.shape[2:], _pair(stride), _pair(padding)
    out_h = (x.shape[2] + 2 * ph - kh) // sh + 1
    out_w = (x.shape[3] + 2 * pw - kw) // sw + 1
    limit = MAX_OUTPUT_PIXELS.get(_compute_dtype(x), 0)
    return out_h * out_w <= limit and x.shape[1] == weight.shape[1]


def small_map_conv2d(
    x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=1, padding=0
) -> Tensor:
    """``F.conv2d`` (zero padding, dilation 1, groups 1) as im2col + matmul, differentiable.

    Under CPU autocast it computes in the autocast dtype, as ``F.conv2d`` would.
    """
    dtype = _compute_dtype(x)
    with torch.autocast("cpu", enabled=False):
        bias = None if bias is None else bias.to(dtype)
        return _SmallMapConv2d.apply(
            x.to(dtype), weight.to(dtype), bias, _pair(stride), _pair(padding)
        )


class SmallMapConvolutions(TorchFunctionMode):
    """Within this context, CPU convolutions with tiny outputs run as ``small_map_conv2d``.

    Results match ``F.conv2d`` to rounding; parameters and checkpoints are untouched (it
    intercepts the call, it does not replace modules). The engine enters it around each
    training step and evaluation when ``conv_kernels`` is ``auto``.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.conv2d:
            call = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
            call.update(zip(("input", "weight", *call), args), **kwargs)
            x, weight = call.pop("input"), call.pop("weight")
            if takes_small_map(x, weight, call["stride"], call["padding"], call["dilation"],
                               call["groups"]):  # fmt: skip
                return small_map_conv2d(x, weight, call["bias"], call["stride"], call["padding"])
        return func(*args, **kwargs)
